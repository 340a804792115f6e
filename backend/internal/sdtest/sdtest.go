// Package sdtest builds Stable-Diffusion-shaped model folders with random
// weights, for tests: what a user gets from Optimum's ONNX export
// (`optimum-cli export onnx --model <sd> <dir>`) of SD 1.5 or SD 2.1, laid
// out the same way, with the same ONNX input and output names and diffusers'
// module structure and node names, but narrow, so that a test runs the whole
// engine on it in seconds. The images are noise by design: what the tests
// check is structure, shapes, determinism and that controls reach the UNet.
//
// The folder (Write) holds model_index.json, text_encoder/, unet/,
// vae_encoder/, vae_decoder/ (each model.onnx and config.json),
// scheduler/scheduler_config.json and tokenizer/. The UNet is
// UNet2DConditionModel with SD's block layout: three CrossAttnDownBlock2D
// and a DownBlock2D, a UNetMidBlock2DCrossAttn, an UpBlock2D and three
// CrossAttnUpBlock2D, two resnets per down block and three per up block,
// so its 16 transformers (32 attention Softmax nodes, attn1 and attn2) sit
// at the same relative resolutions as in the real model. The SDXL-shaped
// folder has SDXL's layout instead (three blocks, attention in the lower
// two with 2 and 10 transformer blocks each, 10 in the mid block: 140
// attention layers), the text_embeds and time_ids inputs, and a second
// text encoder with projection in text_encoder_2/, and tokenizer_2/ padding
// with "!" as SDXL's does. The families
// differ as the real ones do: SD 1.5 has 1×1-conv proj_in/proj_out, eight
// heads everywhere, a quick-GELU text encoder 768 wide and ε-prediction;
// SD 2.1 has Linear proj_in/proj_out (use_linear_projection), a fixed head
// width, a GELU text encoder 1024 wide and v-prediction. Small widths keep
// those ratios (48 and 64 wide text states).
//
// Everything is built in Go at test time (no Python, no downloads, no
// generated files in the repository), deterministically from Config.Seed.
// Small gives the test sizes; Full the real ones (an SD 1.5 UNet of 859.52 M
// parameters, as the real one has), its weights streamed into Optimum's
// model.onnx_data files, for benchmarks.
package sdtest

import (
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/onnxpb"
)

// Family is the model family a folder is shaped like.
type Family string

// The families Write builds.
const (
	SD15 Family = "sd15"
	SD21 Family = "sd21"
	SDXL Family = "sdxl"
)

// layersPerBlock is diffusers' layers_per_block for SD's UNet.
const layersPerBlock = 2

// Config sizes a folder.
type Config struct {
	Family Family
	// SampleSize is the UNet's sample_size, the latent side; the images
	// are 8× that (the VAE downsamples three times).
	SampleSize int
	// Channels is block_out_channels (SD: 320, 640, 1280, 1280); every
	// entry a multiple of 32, the GroupNorm groups.
	Channels []int
	// Heads is the attention heads of every UNet transformer (SD 1.5's
	// attention_head_dim, 8); 0 means HeadDim-wide heads (SD 2.1: 64).
	Heads, HeadDim int
	// Attention says which down blocks are CrossAttnDownBlock2D (the
	// others DownBlock2D); up block i mirrors down block n−1−i. Depth is
	// each down block's transformer_layers_per_block (SD: 1; SDXL: 1, 2,
	// 10), mirrored the same way; the mid block takes the last block's.
	Attention []bool
	Depth     []int
	// LinearProjection is use_linear_projection (SD 2.x, SDXL).
	LinearProjection bool
	// TextTime is SDXL's addition_embed_type "text_time": the UNet also
	// takes text_embeds [batch, TextEmbedsDim] (the second text encoder's
	// pooled projection) and time_ids [batch, 6] (sizes and crop), each
	// time id embedded AddTimeDim wide.
	TextTime                  bool
	TextEmbedsDim, AddTimeDim int
	// CrossDim is the text encoder's width, the UNet's
	// cross_attention_dim (SD 1.5: 768, SD 2.1: 1024).
	CrossDim int
	// TextLayers and TextHeads size the text encoder; TextGELU uses GELU
	// (SD 2.x's OpenCLIP) instead of CLIP's quick GELU.
	TextLayers, TextHeads int
	TextGELU              bool
	// VAEChannels is the VAE's block_out_channels (SD: 128, 256, 512,
	// 512); four blocks, so 8× down and up; multiples of 8.
	VAEChannels []int
	// Prediction is the scheduler's prediction_type.
	Prediction string
	// FixedLatent declares the UNet's sample height and width as
	// SampleSize instead of leaving them dynamic as Optimum does (an export
	// with static shapes, which tools that need a fixed size, such as `reword
	// bench instrument`, can measure).
	FixedLatent bool
	// ScalarTimestep declares the UNet's timestep input as a scalar (rank
	// 0), one timestep for the whole batch, as some exports do (diffusers'
	// own UNet takes a 0-d timestep and broadcasts it), instead of
	// Optimum's [steps].
	ScalarTimestep bool
	// ExternalData writes each component's weights into model.onnx_data
	// beside its model.onnx, as Optimum does past protobuf's 2 GB limit
	// (Full's UNet is 3.4 GB).
	ExternalData bool
	Seed         int64
}

// Small is family f at test width: a 16×16 latent (128 px images), UNet
// widths 32, 64, 64, 64, text states 1/16 of the real width.
func Small(f Family) Config {
	c := Config{Family: f, SampleSize: 16, Channels: []int{32, 64, 64, 64}, TextLayers: 2, TextHeads: 4,
		Attention: []bool{true, true, true, false}, Depth: []int{1, 1, 1, 1}, VAEChannels: []int{8, 16, 16, 16}, Seed: 1}
	switch f {
	case SDXL:
		// Three blocks (320, 640, 1280 wide), attention in the lower two
		// with 2 and 10 transformer blocks, 64-wide heads, text states 2048
		// wide (both encoders' penultimate states), pooled 1280.
		c.Channels, c.Attention, c.Depth = []int{32, 64, 64}, []bool{false, true, true}, []int{1, 2, 10}
		c.HeadDim, c.LinearProjection, c.CrossDim, c.Prediction = 8, true, 2048/16, "epsilon"
		c.TextTime, c.TextEmbedsDim, c.AddTimeDim = true, 1280/16, 256/16
	case SD21:
		c.HeadDim, c.LinearProjection, c.CrossDim, c.TextGELU, c.Prediction = 8, true, 1024/16, true, "v_prediction"
	default:
		c.Heads, c.CrossDim, c.Prediction = 8, 768/16, "epsilon"
	}
	return c
}

// Full is family f at the real model's size: SD 1.5 at 512 px (UNet 860 M
// parameters, 3.4 GB float32), SD 2.1 at 768 px, SDXL at 1024 px, with
// their text encoders' widths and depths and the VAE's widths, and every
// weight in external data files. It is for benchmarks on a machine with
// the disk and memory for it, not for tests.
func Full(f Family) Config {
	c := Small(f)
	c.Channels, c.CrossDim, c.TextLayers, c.TextHeads = []int{320, 640, 1280, 1280}, 768, 12, 12
	c.SampleSize, c.VAEChannels, c.ExternalData = 64, []int{128, 256, 512, 512}, true
	switch f {
	case SD21:
		c.SampleSize, c.HeadDim, c.CrossDim, c.TextLayers, c.TextHeads = 96, 64, 1024, 23, 16
	case SDXL:
		c.SampleSize, c.Channels, c.HeadDim, c.CrossDim = 128, []int{320, 640, 1280}, 64, 2048
		c.TextEmbedsDim, c.AddTimeDim, c.TextHeads = 1280, 256, 4 // heads dividing both encoders' widths
	}
	return c
}

// heads is the head count of a transformer c channels wide.
func (c Config) heads(channels int) int {
	if c.Heads > 0 {
		return c.Heads
	}
	return channels / c.HeadDim
}

// Layer is one attention layer a UNet built from the config has.
type Layer struct {
	// Name is the attention module's scope, as backend/graph names layers
	// (/down_blocks.0/attentions.0/transformer_blocks.0/attn1).
	Name string
	// Cross is true for attn2 (keys from the text).
	Cross bool
	// Stride is latent positions per side of one query position.
	Stride int
	// Heads is the layer's head count.
	Heads int
}

// Layers lists the UNet's attention layers in graph order.
func (c Config) Layers() []Layer {
	var out []Layer
	add := func(scope string, depth, stride, channels int) {
		for k := 0; k < depth; k++ {
			for _, a := range []string{"attn1", "attn2"} {
				out = append(out, Layer{Name: fmt.Sprintf("%s/transformer_blocks.%d/%s", scope, k, a), Cross: a == "attn2",
					Stride: stride, Heads: c.heads(channels)})
			}
		}
	}
	n := len(c.Channels)
	for i := 0; i < n; i++ {
		for j := 0; j < layersPerBlock && c.Attention[i]; j++ {
			add(fmt.Sprintf("/down_blocks.%d/attentions.%d", i, j), c.Depth[i], 1<<i, c.Channels[i])
		}
	}
	// The last down block has no downsampler: the mid block runs at its
	// resolution.
	add("/mid_block/attentions.0", c.Depth[n-1], 1<<(n-1), c.Channels[n-1])
	for i := 0; i < n; i++ {
		for j := 0; j <= layersPerBlock && c.Attention[n-1-i]; j++ {
			add(fmt.Sprintf("/up_blocks.%d/attentions.%d", i, j), c.Depth[n-1-i], 1<<(n-1-i), c.Channels[n-1-i])
		}
	}
	return out
}

// Write builds the folder into dir (created if needed).
func Write(dir string, c Config) error {
	if err := c.validate(); err != nil {
		return err
	}
	specs := c.textSpecs()
	models := map[string]func(*externalData) *onnxpb.ModelProto{
		"text_encoder": func(e *externalData) *onnxpb.ModelProto { return textEncoder(specs[0], e) },
		"unet":         func(e *externalData) *onnxpb.ModelProto { return buildUNet(c, e) },
		"vae_encoder":  func(e *externalData) *onnxpb.ModelProto { return buildVAEEncoder(c, e) },
		"vae_decoder":  func(e *externalData) *onnxpb.ModelProto { return buildVAEDecoder(c, e) },
	}
	if len(specs) > 1 {
		models["text_encoder_2"] = func(e *externalData) *onnxpb.ModelProto { return textEncoder(specs[1], e) }
	}
	for sub, build := range models {
		if err := writeModel(filepath.Join(dir, sub), c.ExternalData, build); err != nil {
			return err
		}
	}
	return writeConfigs(dir, c)
}

// writeModel builds one component into dir/model.onnx, with its weights in
// dir/model.onnx_data when external is set.
func writeModel(dir string, external bool, build func(*externalData) *onnxpb.ModelProto) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var ext *externalData
	if external {
		var err error
		if ext, err = newExternalData(filepath.Join(dir, externalFile)); err != nil {
			return err
		}
	}
	m := build(ext)
	if ext != nil {
		if err := ext.close(); err != nil {
			return fmt.Errorf("sdtest: %s: %w", dir, err)
		}
	}
	raw, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("sdtest: encoding %s: %w", dir, err)
	}
	return writeFile(filepath.Join(dir, "model.onnx"), raw)
}

func (c Config) validate() error {
	if len(c.Channels) < 2 || len(c.Attention) != len(c.Channels) || len(c.Depth) != len(c.Channels) ||
		c.SampleSize < 1<<(len(c.Channels)-1) || c.CrossDim <= 0 || c.TextHeads <= 0 ||
		c.CrossDim%c.TextHeads != 0 || len(c.VAEChannels) != 4 || (c.Heads <= 0) == (c.HeadDim <= 0) {
		return fmt.Errorf("sdtest: bad config %+v", c)
	}
	for _, ch := range c.Channels {
		if ch%normGroups != 0 || ch%c.heads(ch) != 0 {
			return fmt.Errorf("sdtest: UNet width %d is not a multiple of %d groups and of its heads", ch, normGroups)
		}
	}
	for _, ch := range c.VAEChannels {
		if ch%vaeGroups != 0 {
			return fmt.Errorf("sdtest: VAE width %d is not a multiple of %d", ch, vaeGroups)
		}
	}
	return nil
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
