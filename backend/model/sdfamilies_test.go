package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reword/backend/internal/sdtest"
	"reword/backend/scheduler"
	"reword/shared/clip"
)

// The manifest of an Optimum export of SD 1.5 or SD 2.1 comes from its
// config files (backend/internal/sdtest writes them as diffusers does):
// the latent and image size from unet/config.json's sample_size and the
// VAE's 8×, the scaling factor from vae_decoder/config.json, the schedule
// (SD 2.1: v-prediction) from scheduler/scheduler_config.json, and
// Optimum's file and tensor names.
func TestDerivedManifestOfSDShapedExports(t *testing.T) {
	for f, want := range map[sdtest.Family]scheduler.Prediction{sdtest.SD15: scheduler.Epsilon, sdtest.SD21: scheduler.VPrediction} {
		cfg := sdtest.Small(f)
		dir := t.TempDir()
		if err := sdtest.Write(dir, cfg); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		side := cfg.SampleSize
		if !m.Derived || m.Family != SD1.Name || m.Latent.Width != side || m.Latent.Height != side || m.Latent.Channels != 4 ||
			m.Image.Width != 8*side || m.Image.Height != 8*side || m.Latent.ScalingFactor != 0.18215 {
			t.Errorf("%s: derived %v family %q latent %+v image %+v", f, m.Derived, m.Family, m.Latent, m.Image)
		}
		s := m.Schedule
		if s.Prediction != want || m.UNet.PredictionType != string(want) || s.BetaSchedule != scheduler.ScaledLinear ||
			s.BetaStart != 0.00085 || s.BetaEnd != 0.012 || s.StepsOffset != 1 || s.TrainTimesteps != 1000 {
			t.Errorf("%s: schedule %+v, UNet prediction %q", f, s, m.UNet.PredictionType)
		}
		if m.TextEncoder.Input != "input_ids" || m.TextEncoder.Output != "last_hidden_state" || m.UNet.Output != "out_sample" ||
			m.VAEDecoder.Input != "latent_sample" || m.VAEDecoder.Output != "sample" || m.VAEEncoder.Input != "sample" {
			t.Errorf("%s: component names %+v %+v %+v %+v", f, m.TextEncoder, m.UNet, m.VAEEncoder, m.VAEDecoder)
		}
		if err := m.UseEncoderOutputs([]string{"latent_parameters"}); err != nil || m.VAEEncoder.OutputKind != "mean_logvar" {
			t.Errorf("%s: Optimum's encoder output: %v, kind %q", f, err, m.VAEEncoder.OutputKind)
		}
	}
}

// The manifest of an Optimum SDXL export (sdtest's SDXL-shaped folder):
// the SDXL family (guidance 5), both text encoders with their penultimate
// states and pad tokens (the second pads with "!"), the pooled text_embeds,
// the UNet's text_time inputs, force_zeros_for_empty_prompt from
// model_index.json, the VAE's 0.13025 and the size from sample_size.
func TestDerivedManifestOfSDXLExport(t *testing.T) {
	cfg := sdtest.Small(sdtest.SDXL)
	dir := t.TempDir()
	if err := sdtest.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	side := cfg.SampleSize
	if !m.Derived || m.Family != SDXL.Name || m.Latent.Width != side || m.Image.Width != 8*side || m.Latent.ScalingFactor != 0.13025 ||
		m.Defaults.GuidanceScale != 5 || !strings.Contains(m.Description, "XL") {
		t.Errorf("derived %v family %q latent %+v image %+v guidance %v (%s)", m.Derived, m.Family, m.Latent, m.Image, m.Defaults.GuidanceScale, m.Description)
	}
	penultimate := fmt.Sprintf("hidden_states.%d", cfg.TextLayers-1)
	want1 := TextEncoder{Component: Component{File: "text_encoder/model.onnx", Input: "input_ids", Output: penultimate}, PadToken: "<|endoftext|>"}
	want2 := TextEncoder{Component: Component{File: "text_encoder_2/model.onnx", Input: "input_ids", Output: penultimate}, PadToken: "!", Pooled: "text_embeds"}
	if m.TextEncoder != want1 || m.TextEncoder2 == nil || *m.TextEncoder2 != want2 {
		t.Errorf("text encoders %+v and %+v; want %+v and %+v", m.TextEncoder, m.TextEncoder2, want1, want2)
	}
	if !m.UNet.TextTime || !m.ZeroEmptyNegative || m.UNet.Output != "out_sample" || len(m.Preview.LatentRGBBias) != 3 {
		t.Errorf("text_time %v, zero empty negative %v, UNet %+v, preview bias %v", m.UNet.TextTime, m.ZeroEmptyNegative, m.UNet, m.Preview.LatentRGBBias)
	}
	for i, e := range []TextEncoder{m.TextEncoder, *m.TextEncoder2} {
		if id, err := e.PadID(); err != nil || id != []int32{clip.EOS, 0}[i] {
			t.Errorf("encoder %d pads with %d (%v)", i+1, id, err)
		}
	}
}

// SD 2.x's tokenizer pads with "!" (id 0), SD 1.x's with EOS: the derived
// manifests take it from tokenizer/'s configs, so Reword pads as the
// export's own tokenizer does.
func TestDerivedPadTokens(t *testing.T) {
	for f, want := range map[sdtest.Family]int32{sdtest.SD15: clip.EOS, sdtest.SD21: 0} {
		dir := t.TempDir()
		if err := sdtest.Write(dir, sdtest.Small(f)); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := m.TextEncoder.PadID(); err != nil || id != want || m.TextEncoder2 != nil {
			t.Errorf("%s: pads with %d (%v), want %d; second encoder %v", f, id, err, want, m.TextEncoder2)
		}
	}
}

// sdxlFiles are the config files of an SDXL base export as Optimum writes
// them (placeholder ONNX files: deriving reads no model).
func sdxlFiles() map[string]string {
	return map[string]string{
		secondEncoder:                         "onnx",
		"model_index.json":                    `{"_class_name":"ORTStableDiffusionXLPipeline","force_zeros_for_empty_prompt":true}`,
		"unet/config.json":                    `{"sample_size":128,"addition_embed_type":"text_time","in_channels":4}`,
		"text_encoder/config.json":            `{"num_hidden_layers":12}`,
		"text_encoder_2/config.json":          `{"num_hidden_layers":32}`,
		"tokenizer/special_tokens_map.json":   `{"pad_token":"<|endoftext|>"}`,
		"tokenizer_2/tokenizer_config.json":   `{"pad_token":{"__type":"AddedToken","content":"!","lstrip":false}}`,
		"tokenizer_2/special_tokens_map.json": `{"pad_token":"!"}`,
	}
}

// A real SDXL base folder's configs (1024 px, 12- and 32-layer encoders)
// give SDXL's defaults where the folder states nothing else: 1024 px,
// 0.13025, the penultimate states hidden_states.11 and .31.
func TestDerivedSDXLDefaults(t *testing.T) {
	files := sdxlFiles()
	files["model_index.json"] = `{"_class_name":"ORTStableDiffusionXLPipeline"}`
	m, err := Load(writeFolder(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if m.Image.Width != 1024 || m.Latent.ScalingFactor != 0.13025 || m.TextEncoder.Output != "hidden_states.11" ||
		m.TextEncoder2.Output != "hidden_states.31" || !m.ZeroEmptyNegative {
		t.Errorf("image %d, scale %v, outputs %q %q, zero empty negative %v", m.Image.Width, m.Latent.ScalingFactor,
			m.TextEncoder.Output, m.TextEncoder2.Output, m.ZeroEmptyNegative)
	}
	files = sdxlFiles()
	files["model_index.json"] = `{"force_zeros_for_empty_prompt":false}`
	if m, err := Load(writeFolder(t, files)); err != nil || m.ZeroEmptyNegative {
		t.Errorf("force_zeros_for_empty_prompt false: %v, %v", err, m)
	}
}

// A malformed or incomplete SDXL folder is refused with what is wrong and
// what is allowed, never misread as SD 1.x.
func TestSDXLFolderErrors(t *testing.T) {
	for name, c := range map[string]struct {
		change func(files map[string]string)
		want   []string
	}{
		"no second encoder": {func(f map[string]string) { delete(f, secondEncoder) },
			[]string{`"text_time" (SDXL) but text_encoder_2/model.onnx is missing`, "both text encoders"}},
		"no unet config": {func(f map[string]string) { delete(f, "unet/config.json") },
			[]string{"no unet/config.json", `addition_embed_type "text_time"`}},
		"no addition embed": {func(f map[string]string) { f["unet/config.json"] = `{"sample_size":128}` },
			[]string{"states no addition_embed_type", "text_encoder/ only"}},
		"other addition embed": {func(f map[string]string) { f["unet/config.json"] = `{"addition_embed_type":"image"}` },
			[]string{`addition_embed_type is "image"`, `"text_time" (SDXL base)`}},
		"no encoder config": {func(f map[string]string) { delete(f, "text_encoder_2/config.json") },
			[]string{"text_encoder_2/config.json is missing", "hidden_states.<n−1>"}},
		"one layer": {func(f map[string]string) { f["text_encoder/config.json"] = `{"num_hidden_layers":1}` },
			[]string{"num_hidden_layers 1", "at least 2"}},
		"no pad token": {func(f map[string]string) {
			delete(f, "tokenizer_2/tokenizer_config.json")
			delete(f, "tokenizer_2/special_tokens_map.json")
		}, []string{"tokenizer_2/ states no pad_token", `pads with "!"`}},
		"pad tokens disagree": {func(f map[string]string) { f["tokenizer_2/special_tokens_map.json"] = `{"pad_token":"<|endoftext|>"}` },
			[]string{`pad_token "!"`, "must agree"}},
		"pad token outside the vocabulary": {func(f map[string]string) {
			f["tokenizer_2/tokenizer_config.json"] = `{"pad_token":"[PAD]"}`
			delete(f, "tokenizer_2/special_tokens_map.json")
		}, []string{`"[PAD]" is not in CLIP's vocabulary`}},
		"pad token of another type": {func(f map[string]string) { f["tokenizer_2/tokenizer_config.json"] = `{"pad_token":0}` },
			[]string{"pad_token: 0 is neither a string nor an object"}},
		"refiner index": {func(f map[string]string) { f["model_index.json"] = `{"requires_aesthetics_score":true}` },
			[]string{"SDXL refiner export", "SDXL base exports"}},
	} {
		files := sdxlFiles()
		c.change(files)
		_, err := Load(writeFolder(t, files))
		for _, want := range c.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: err = %v, want it to say %q", name, err, want)
			}
		}
	}
	// A refiner has text_encoder_2/ and no text_encoder/.
	dir := writeFolder(t, sdxlFiles())
	if err := os.Remove(filepath.Join(dir, "text_encoder", "model.onnx")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no text_encoder/model.onnx: an SDXL refiner export") {
		t.Errorf("refiner folder: %v", err)
	}
}

// A model.json may describe an SDXL-shaped model itself; its parts come
// together or not at all.
func TestSDXLManifestFields(t *testing.T) {
	sdxl := strings.Replace(validManifest, `"text_encoder":{`, `"text_encoder_2":{"file":"text_encoder_2/model.onnx","input":"input_ids",`+
		`"output":"hidden_states.1","pad_token":"!","pooled_output":"text_embeds"},"text_encoder":{`, 1)
	sdxl = strings.Replace(sdxl, `"unet":{`, `"unet":{"text_time":true,`, 1)
	files := map[string]string{ManifestFile: sdxl, secondEncoder: "onnx"}
	m, err := Load(writeFolder(t, files))
	if err != nil || m.TextEncoder2 == nil || m.TextEncoder2.PadToken != "!" || !m.UNet.TextTime {
		t.Fatalf("SDXL-shaped model.json: %v", err)
	}
	for name, c := range map[string]struct{ body, want string }{
		"no text_time":   {strings.Replace(sdxl, `"text_time":true,`, "", 1), "text_encoder_2 is set but unet.text_time is not"},
		"no encoder":     {strings.Replace(validManifest, `"unet":{`, `"unet":{"text_time":true,`, 1), "unet.text_time is set but text_encoder_2 is not"},
		"no pooled":      {strings.Replace(sdxl, `,"pooled_output":"text_embeds"`, "", 1), "text_encoder_2.pooled_output is required"},
		"bad pad":        {strings.Replace(sdxl, `"pad_token":"!"`, `"pad_token":"<pad>"`, 1), `text_encoder_2.pad_token: clip: pad token "<pad>"`},
		"first pooled":   {strings.Replace(sdxl, `"text_encoder":{`, `"text_encoder":{"pooled_output":"x",`, 1), "only text_encoder_2"},
		"no second file": {strings.Replace(sdxl, `"file":"text_encoder_2/model.onnx",`, "", 1), "text_encoder_2: file, input and output are required"},
	} {
		files := map[string]string{ManifestFile: c.body, secondEncoder: "onnx"}
		if _, err := Load(writeFolder(t, files)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, c.want)
		}
	}
}
