package sdtest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// diffusersVersion is the version the config files claim to come from.
const diffusersVersion = "0.30.0"

// writeConfigs writes the JSON files of an Optimum export folder, with the
// keys diffusers and transformers write for the family. Reword reads
// scheduler_config.json, unet/config.json, vae_decoder/config.json and the
// tokenizers' pad tokens, and for SDXL model_index.json and the text
// encoders' config.json (backend/model); the others are there so that the
// folder is complete. The tokenizer folders hold the configs only: Reword
// tokenizes with its embedded CLIP tokenizer (shared/clip), so vocab.json
// and merges.txt are left out.
func writeConfigs(dir string, c Config) error {
	sched, pipeline := "PNDMScheduler", "ORTStableDiffusionPipeline"
	switch c.Family {
	case SD21:
		sched = "DDIMScheduler"
	case SDXL:
		sched, pipeline = "EulerDiscreteScheduler", "ORTStableDiffusionXLPipeline"
	}
	index := map[string]any{
		"_class_name": pipeline, "_diffusers_version": diffusersVersion,
		"scheduler": []string{"diffusers", sched}, "text_encoder": []string{"transformers", "CLIPTextModel"},
		"tokenizer": []string{"transformers", "CLIPTokenizer"}, "unet": []string{"diffusers", "UNet2DConditionModel"},
		"vae_encoder": []string{"diffusers", "AutoencoderKL"}, "vae_decoder": []string{"diffusers", "AutoencoderKL"},
	}
	if c.Family == SDXL {
		index["text_encoder_2"] = []string{"transformers", "CLIPTextModelWithProjection"}
		index["tokenizer_2"] = []string{"transformers", "CLIPTokenizer"}
		index["force_zeros_for_empty_prompt"] = true
	} else {
		index["feature_extractor"], index["safety_checker"], index["requires_safety_checker"] = []any{nil, nil}, []any{nil, nil}, false
	}
	files := map[string]any{
		"model_index.json": index,
		"scheduler/scheduler_config.json": map[string]any{
			"_class_name": sched, "_diffusers_version": diffusersVersion,
			"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": false,
			"num_train_timesteps": 1000, "prediction_type": c.Prediction, "set_alpha_to_one": false,
			"skip_prk_steps": true, "steps_offset": 1, "trained_betas": nil,
		},
		"unet/config.json":                  unetConfig(c),
		"vae_encoder/config.json":           vaeConfig(c),
		"vae_decoder/config.json":           vaeConfig(c),
		"text_encoder/config.json":          textConfig(c.textSpecs()[0], "CLIPTextModel"),
		"tokenizer/tokenizer_config.json":   tokenizerConfig(padToken(c, 0)),
		"tokenizer/special_tokens_map.json": specialTokens(padToken(c, 0)),
	}
	if c.Family == SDXL {
		files["text_encoder_2/config.json"] = textConfig(c.textSpecs()[1], "CLIPTextModelWithProjection")
		files["tokenizer_2/tokenizer_config.json"] = tokenizerConfig(padToken(c, 1))
		files["tokenizer_2/special_tokens_map.json"] = specialTokens(padToken(c, 1))
	}
	for rel, v := range files {
		raw, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("sdtest: %s: %w", rel, err)
		}
		if err := writeFile(filepath.Join(dir, rel), append(raw, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// padToken is the pad token of the family's tokenizer i (0: tokenizer/,
// 1: tokenizer_2/): SD 2.x's OpenCLIP tokenizer pads with "!", and so does
// SDXL's second; SD 1.x's and SDXL's first pad with EOS.
func padToken(c Config, i int) string {
	if c.Family == SD21 || c.Family == SDXL && i == 1 {
		return "!"
	}
	return "<|endoftext|>"
}

// tokenizerConfig is a CLIPTokenizer's tokenizer_config.json, with the
// pad token as transformers writes an AddedToken (an object), which is
// how current Hub folders state it.
func tokenizerConfig(pad string) map[string]any {
	return map[string]any{
		"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": true,
		"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
		"pad_token": map[string]any{"__type": "AddedToken", "content": pad, "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
	}
}

// specialTokens is a CLIPTokenizer's special_tokens_map.json.
func specialTokens(pad string) map[string]any {
	return map[string]any{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": pad}
}

func unetConfig(c Config) map[string]any {
	down := make([]string, len(c.Channels))
	up := make([]string, len(c.Channels))
	for i := range down {
		down[i], up[i] = "CrossAttnDownBlock2D", "CrossAttnUpBlock2D"
	}
	for i, attn := range c.Attention {
		if !attn {
			down[i], up[len(up)-1-i] = "DownBlock2D", "UpBlock2D"
		}
	}
	cfg := map[string]any{
		"_class_name": "UNet2DConditionModel", "_diffusers_version": diffusersVersion,
		"act_fn": "silu", "block_out_channels": c.Channels, "center_input_sample": false,
		"cross_attention_dim": c.CrossDim, "down_block_types": down, "up_block_types": up,
		"downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "out_channels": 4,
		"layers_per_block": layersPerBlock, "mid_block_scale_factor": 1, "norm_eps": 1e-5, "norm_num_groups": normGroups,
		"sample_size": c.SampleSize, "use_linear_projection": c.LinearProjection,
	}
	// diffusers' attention_head_dim is, for SD, the head count: one number
	// in SD 1.x, one per block in SD 2.x.
	if c.Heads > 0 {
		cfg["attention_head_dim"] = c.Heads
	} else {
		heads := make([]int, len(c.Channels))
		for i, ch := range c.Channels {
			heads[i] = c.heads(ch)
		}
		cfg["attention_head_dim"] = heads
		cfg["upcast_attention"] = c.Family == SD21
	}
	if c.Family == SDXL {
		cfg["transformer_layers_per_block"] = c.Depth
		cfg["addition_embed_type"] = "text_time"
		cfg["addition_time_embed_dim"] = c.AddTimeDim
		cfg["projection_class_embeddings_input_dim"] = c.TextEmbedsDim + sdxlTimeIDs*c.AddTimeDim
	}
	return cfg
}

func vaeConfig(c Config) map[string]any {
	return map[string]any{
		"_class_name": "AutoencoderKL", "_diffusers_version": diffusersVersion,
		"act_fn": "silu", "block_out_channels": c.VAEChannels, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
		"down_block_types": []string{"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"},
		"up_block_types":   []string{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"},
		"layers_per_block": vaeResnetsPerBlk, "norm_num_groups": vaeGroups, "sample_size": 8 * c.SampleSize,
		"scaling_factor": scalingFactor(c),
	}
}

// scalingFactor is the family's VAE latent scale.
func scalingFactor(c Config) float64 {
	if c.Family == SDXL {
		return 0.13025
	}
	return 0.18215
}

func textConfig(s textSpec, arch string) map[string]any {
	act := "quick_gelu"
	if s.gelu {
		act = "gelu"
	}
	cfg := map[string]any{
		"architectures": []string{arch}, "model_type": "clip_text_model",
		"hidden_act": act, "hidden_size": s.width, "intermediate_size": 4 * s.width,
		"max_position_embeddings": 77, "num_attention_heads": s.heads, "num_hidden_layers": s.layers,
		"vocab_size": vocabSize, "layer_norm_eps": 1e-5, "torch_dtype": "float32",
	}
	if s.projection {
		cfg["projection_dim"] = s.width
	}
	return cfg
}
