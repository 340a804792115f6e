package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Conventions used when a diffusers export does not state them.
const (
	sdScalingFactor   = 0.18215 // SD 1.x and 2.x VAE; docs/algorithm.md, section 9
	sdxlScalingFactor = 0.13025 // SDXL's VAE
	sdVAEFactor       = 8       // pixels per latent cell
	sdSampleSize      = 64      // latent cells per side at 512 px
	sdxlSampleSize    = 128     // SDXL's 1024 px
)

// sdPreviewMatrix are ComfyUI's SD 1.5 latent→RGB factors (no bias).
var sdPreviewMatrix = [][3]float64{
	{0.3512, 0.2297, 0.3227},
	{0.3250, 0.4974, 0.2350},
	{-0.2829, 0.1762, 0.2721},
	{-0.2120, -0.2616, -0.7177},
}

// sdxlPreviewMatrix and sdxlPreviewBias are ComfyUI's SDXL latent→RGB
// factors: SDXL's VAE has latents of another scale and colour basis.
var (
	sdxlPreviewMatrix = [][3]float64{
		{0.3651, 0.4232, 0.4341},
		{-0.2533, -0.0042, 0.1068},
		{0.1076, 0.1111, -0.0362},
		{-0.3165, -0.2492, -0.2188},
	}
	sdxlPreviewBias = []float64{0.1084, -0.0175, -0.0011}
)

// unetConfig is what a manifest is derived from in unet/config.json.
type unetConfig struct {
	SampleSize *int `json:"sample_size"`
	InChannels *int `json:"in_channels"`
	// AdditionEmbedType "text_time" is SDXL's UNet, which also takes
	// text_embeds and time_ids.
	AdditionEmbedType string `json:"addition_embed_type"`
}

// deriveManifest builds a manifest for a diffusers ONNX export without a
// model.json from scheduler/scheduler_config.json, unet/config.json,
// vae_decoder/config.json and the tokenizers' configs where present, and
// the family's conventions otherwise: SD 1.x/2.x, or SDXL (base) when the
// folder has a second text encoder and a "text_time" UNet (deriveSDXL).
func deriveManifest(dir string) (*Manifest, error) {
	var unet unetConfig
	unetFound, err := readOptionalJSON(filepath.Join(dir, "unet", "config.json"), &unet)
	if err != nil {
		return nil, err
	}
	xl, err := isSDXL(dir, unet, unetFound)
	if err != nil {
		return nil, err
	}
	fam, size, scale := SD1, sdSampleSize, sdScalingFactor
	m := &Manifest{Format: ManifestFormat, Name: filepath.Base(filepath.Clean(dir)), Derived: true}
	m.Description = "Stable Diffusion ONNX export (manifest derived from the folder's configs)"
	if xl {
		fam, size, scale = SDXL, sdxlSampleSize, sdxlScalingFactor
		m.Description = "Stable Diffusion XL ONNX export (manifest derived from the folder's configs)"
	}

	// The family's schedule, with what the export's scheduler config
	// states.
	var sched statedSchedule
	if _, err := readOptionalJSON(filepath.Join(dir, "scheduler", "scheduler_config.json"), &sched); err != nil {
		return nil, err
	}
	// Stable Diffusion pipelines force steps_offset to 1 whatever the
	// config says (diffusers rewrites any other offset when it builds the
	// pipeline), so the derived manifest does too.
	one := 1
	sched.StepsOffset = &one
	m.Family = fam.Name
	m.Schedule = sched.over(fam.Schedule)
	m.Defaults = statedDefaults{}.over(fam.Defaults)
	m.UNet.PredictionType = string(m.Schedule.Prediction)

	var vae struct {
		ScalingFactor *float64 `json:"scaling_factor"`
	}
	if _, err := readOptionalJSON(filepath.Join(dir, "vae_decoder", "config.json"), &vae); err != nil {
		return nil, err
	}
	channels := 4
	setIf(&size, unet.SampleSize)
	setIf(&channels, unet.InChannels)
	m.Latent.Channels, m.Latent.Width, m.Latent.Height = channels, size, size
	m.Latent.ScalingFactor = scale
	setIf(&m.Latent.ScalingFactor, vae.ScalingFactor)
	m.Latent.DownsamplingFactor = sdVAEFactor
	m.Image.Width, m.Image.Height, m.Image.Channels = size*sdVAEFactor, size*sdVAEFactor, 3

	m.TextEncoder = TextEncoder{Component: Component{File: "text_encoder/model.onnx", Input: "input_ids", Output: "last_hidden_state"}}
	m.UNet.Component = Component{File: "unet/model.onnx", Input: "sample", Output: "out_sample"}
	m.VAEDecoder = Component{File: "vae_decoder/model.onnx", Input: "latent_sample", Output: "sample"}
	// The encoder's output depends on the exporter; UseEncoderOutputs
	// settles it from the file when the engine loads it.
	m.VAEEncoder.Component = Component{File: "vae_encoder/model.onnx", Input: "sample", Output: sampleEncoderOutput}
	m.VAEEncoder.OutputKind = "sample"
	if channels != len(sdPreviewMatrix) {
		return nil, fmt.Errorf("model %s: the UNet has %d latent channels; only 4-channel Stable Diffusion 1.x/2.x/XL exports are supported without a model.json", dir, channels)
	}
	m.Preview.LatentRGBMatrix = sdPreviewMatrix
	if xl {
		m.Preview.LatentRGBMatrix, m.Preview.LatentRGBBias = sdxlPreviewMatrix, sdxlPreviewBias
		if err := deriveSDXL(dir, m); err != nil {
			return nil, err
		}
	} else if m.TextEncoder.PadToken, _, err = readPadToken(dir, "tokenizer"); err != nil {
		return nil, err
	}
	return m, m.validate()
}

// Output names of the VAE encoder in a diffusers-layout ONNX export, which
// no config file states.
const (
	// optimumEncoderOutput is Optimum's: the posterior's mean and
	// log-variance, channels first (current Optimum versions).
	optimumEncoderOutput = "latent_parameters"
	// sampleEncoderOutput is diffusers' conversion script's (and older
	// Optimum's): a random draw of the posterior.
	sampleEncoderOutput = "latent_sample"
)

// UseEncoderOutputs completes a derived manifest with the output names of
// its VAE encoder file: an encoder with latent_parameters gives the
// posterior mean exactly and is used as it is; one with only latent_sample
// returns a random draw, which the engine rewrites to return the mean when
// it loads the encoder (graph.PosteriorMean). A manifest read from
// model.json states its encoder and is left as it is.
func (m *Manifest) UseEncoderOutputs(names []string) error {
	if !m.Derived {
		return nil
	}
	switch {
	case slices.Contains(names, optimumEncoderOutput):
		m.VAEEncoder.Output, m.VAEEncoder.OutputKind = optimumEncoderOutput, "mean_logvar"
	case slices.Contains(names, sampleEncoderOutput):
		m.VAEEncoder.Output, m.VAEEncoder.OutputKind = sampleEncoderOutput, "sample"
	default:
		return fmt.Errorf("model %s: the VAE encoder %s has outputs %v; without a model.json it must have %q (Optimum's export) or %q (diffusers' conversion script)",
			m.Dir, m.VAEEncoder.File, names, optimumEncoderOutput, sampleEncoderOutput)
	}
	return nil
}

// readOptionalJSON decodes path into v and reports whether the file
// exists; a missing file leaves v unchanged.
func readOptionalJSON(path string, v any) (bool, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}
