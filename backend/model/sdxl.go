package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"reword/shared/clip"
)

// An SDXL (base) export as Optimum writes it (`optimum-cli export onnx
// --model stabilityai/stable-diffusion-xl-base-1.0`): SD's folders plus
// text_encoder_2/ (CLIPTextModelWithProjection) and tokenizer_2/, a UNet
// whose config states addition_embed_type "text_time", and
// force_zeros_for_empty_prompt in model_index.json. What the manifest
// takes from it, as diffusers' StableDiffusionXLPipeline encodes prompts:
//
//   - each encoder's penultimate hidden states (Optimum's output
//     hidden_states.<n−1> of an n-layer encoder, n from its config.json),
//     concatenated on the feature axis, the first encoder's first;
//   - the second encoder's pooled projection, text_embeds, the UNet's
//     text_embeds input;
//   - each tokenizer's pad token (the second pads with "!");
//   - force_zeros_for_empty_prompt (diffusers' default: true).

// secondEncoder is the file of SDXL's second text encoder.
const secondEncoder = "text_encoder_2/model.onnx"

// isSDXL tells an SDXL export from an SD 1.x/2.x one by its second text
// encoder and its UNet's addition_embed_type, which must agree: a folder
// with one and not the other is refused with what is wrong, since it would
// otherwise fail later on a missing UNet input or a text width mismatch, in
// words that do not say why.
func isSDXL(dir string, unet unetConfig, unetFound bool) (bool, error) {
	second := exists(filepath.Join(dir, filepath.FromSlash(secondEncoder)))
	switch kind := unet.AdditionEmbedType; {
	case kind == "text_time" && second:
		return true, nil
	case kind == "text_time":
		return false, fmt.Errorf("model %s: unet/config.json's addition_embed_type is \"text_time\" (SDXL) but %s is missing: "+
			"an SDXL export needs both text encoders (text_encoder/ and text_encoder_2/, as optimum-cli export onnx writes them)", dir, secondEncoder)
	case kind != "":
		return false, fmt.Errorf("model %s: unet/config.json's addition_embed_type is %q: Reword runs UNets without one (Stable Diffusion 1.x and 2.x) "+
			"and with \"text_time\" (SDXL base)", dir, kind)
	case second && !unetFound:
		return false, fmt.Errorf("model %s has a second text encoder (%s, SDXL) but no unet/config.json: an SDXL export's UNet config "+
			"states addition_embed_type \"text_time\" and the sample size, and Reword needs it (optimum-cli export onnx writes it)", dir, secondEncoder)
	case second:
		return false, fmt.Errorf("model %s has a second text encoder (%s) but unet/config.json states no addition_embed_type: "+
			"a second text encoder is SDXL's, whose UNet config states addition_embed_type \"text_time\" (it takes text_embeds and time_ids); "+
			"an SD 1.x/2.x export has text_encoder/ only", dir, secondEncoder)
	}
	return false, nil
}

// deriveSDXL completes the derived manifest m of an SDXL export: both text
// encoders with their penultimate states and pad tokens, the pooled
// output, the UNet's extra inputs and force_zeros_for_empty_prompt.
func deriveSDXL(dir string, m *Manifest) error {
	var index struct {
		ForceZeros *bool `json:"force_zeros_for_empty_prompt"`
		// RequiresAestheticsScore marks the refiner, whose time_ids hold
		// an aesthetic score instead of the target size.
		RequiresAestheticsScore bool `json:"requires_aesthetics_score"`
	}
	if _, err := readOptionalJSON(filepath.Join(dir, "model_index.json"), &index); err != nil {
		return err
	}
	if index.RequiresAestheticsScore {
		return fmt.Errorf("model %s: model_index.json states requires_aesthetics_score: an SDXL refiner export, which Reword does not run "+
			"(it runs SDXL base exports and SD 1.x/2.x ones)", dir)
	}
	// diffusers' StableDiffusionXLPipeline defaults it to true.
	m.ZeroEmptyNegative = true
	setIf(&m.ZeroEmptyNegative, index.ForceZeros)
	encoders := [2]TextEncoder{}
	for i, sub := range []string{"text_encoder", "text_encoder_2"} {
		out, err := penultimateOutput(dir, sub)
		if err != nil {
			return err
		}
		tokenizer := "tokenizer"
		if i == 1 {
			tokenizer = "tokenizer_2"
		}
		pad, stated, err := readPadToken(dir, tokenizer)
		if err != nil {
			return err
		}
		// The first tokenizer pads with EOS like SD 1.x's when it states
		// nothing; the second's "!" is no default to guess.
		if !stated && i == 1 {
			return fmt.Errorf("model %s: %s/ states no pad_token (in tokenizer_config.json or special_tokens_map.json): "+
				"SDXL's second tokenizer pads with \"!\" and its first with \"<|endoftext|>\", and Reword pads as the export's tokenizers state "+
				"(optimum-cli export onnx copies both tokenizer folders)", dir, tokenizer)
		}
		encoders[i] = TextEncoder{Component: Component{File: sub + "/model.onnx", Input: "input_ids", Output: out}, PadToken: pad}
	}
	encoders[1].Pooled = "text_embeds"
	m.TextEncoder, m.TextEncoder2 = encoders[0], &encoders[1]
	m.UNet.TextTime = true
	return nil
}

// penultimateOutput is the name of the output of text encoder sub that
// holds its penultimate layer's states, which SDXL's UNet reads:
// hidden_states.<n−1> for an encoder of n layers (Optimum exports every
// layer's, hidden_states.0 being the embeddings).
func penultimateOutput(dir, sub string) (string, error) {
	var cfg struct {
		Layers *int `json:"num_hidden_layers"`
	}
	path := filepath.Join(dir, sub, "config.json")
	found, err := readOptionalJSON(path, &cfg)
	switch {
	case err != nil:
		return "", err
	case !found:
		return "", fmt.Errorf("model %s: %s/config.json is missing: SDXL's UNet reads each text encoder's penultimate layer "+
			"(Optimum's output hidden_states.<n−1>), and Reword reads n from num_hidden_layers there", dir, sub)
	case cfg.Layers == nil || *cfg.Layers < 2:
		n := "no num_hidden_layers"
		if cfg.Layers != nil {
			n = fmt.Sprintf("num_hidden_layers %d", *cfg.Layers)
		}
		return "", fmt.Errorf("model %s: %s states %s; want at least 2 (SDXL's UNet reads the penultimate layer's states)", dir, path, n)
	}
	return fmt.Sprintf("hidden_states.%d", *cfg.Layers-1), nil
}

// readPadToken reads the pad token of the Hugging Face tokenizer folder
// dir/sub: pad_token in tokenizer_config.json, else in
// special_tokens_map.json; stated is false when neither states one (or
// the folder is missing), and the token is then "" (EOS). The files must
// agree when both state one: transformers versions differ on which wins.
func readPadToken(dir, sub string) (token string, stated bool, err error) {
	var found []string
	var from []string
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		path := filepath.Join(dir, sub, name)
		var cfg struct {
			Pad json.RawMessage `json:"pad_token"`
		}
		if _, err := readOptionalJSON(path, &cfg); err != nil {
			return "", false, err
		}
		tok, ok, err := padTokenString(cfg.Pad)
		if err != nil {
			return "", false, fmt.Errorf("%s: pad_token: %w", path, err)
		}
		if ok {
			found, from = append(found, tok), append(from, path)
		}
	}
	switch {
	case len(found) == 0:
		return "", false, nil
	case len(found) == 2 && found[0] != found[1]:
		return "", false, fmt.Errorf("model %s: %s states pad_token %q and %s %q: they must agree", dir, from[0], found[0], from[1], found[1])
	}
	tok, err := clip.Default()
	if err != nil {
		return "", false, err
	}
	if _, err := tok.PadID(found[0]); err != nil {
		return "", false, fmt.Errorf("model %s: %s: %w", dir, from[0], err)
	}
	return found[0], true, nil
}

// padTokenString reads a pad_token value as transformers writes it: a
// string, or an AddedToken object with the string in "content"; null or
// absent states none.
func padTokenString(raw json.RawMessage) (string, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var added struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &added); err != nil || added.Content == nil {
		return "", false, fmt.Errorf("%s is neither a string nor an object with a \"content\" string", raw)
	}
	return *added.Content, true, nil
}

// missingFiles explains why a folder without model.json cannot be loaded:
// its missing files, or that it is an SDXL refiner export (text_encoder_2/
// without text_encoder/).
func missingFiles(dir string, st Status) error {
	if slices.Contains(st.Missing, "text_encoder/model.onnx") && exists(filepath.Join(dir, filepath.FromSlash(secondEncoder))) {
		return fmt.Errorf("model %s has %s but no text_encoder/model.onnx: an SDXL refiner export, which Reword does not run "+
			"(it runs SDXL base exports, with both text encoders, and SD 1.x/2.x ones)", dir, secondEncoder)
	}
	return errors.New(st.Problem())
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
