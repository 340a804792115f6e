package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"reword/backend/diffusion/scheduler"
)

// Manifest is what the engine needs to know about a model folder beyond its
// ONNX files: sizes, the latent scale, the noise schedule, defaults and the
// latent→RGB preview factors. Reword's own models carry it as model.json;
// for a user's Stable Diffusion export Load derives it from the diffusers
// config files.
type Manifest struct {
	// Dir is the folder the manifest describes.
	Dir string `json:"-"`
	// Derived is true when there was no model.json and the manifest was
	// built from the folder's diffusers configs and SD 1.x conventions.
	Derived bool `json:"-"`

	Format      string `json:"format"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Image       struct {
		Width    int `json:"width"`
		Height   int `json:"height"`
		Channels int `json:"channels"`
	} `json:"image"`
	Latent struct {
		Channels      int     `json:"channels"`
		Height        int     `json:"height"`
		Width         int     `json:"width"`
		ScalingFactor float64 `json:"scaling_factor"`
	} `json:"latent"`
	TextEncoder Component `json:"text_encoder"`
	UNet        struct {
		Component
		PredictionType string `json:"prediction_type"`
	} `json:"unet"`
	VAEEncoder struct {
		Component
		// OutputKind is "mean_logvar" (latent_parameters, 2C channels) or
		// "sample" (a random draw of the posterior, the standard export).
		OutputKind string `json:"output_kind"`
	} `json:"vae_encoder"`
	VAEDecoder Component `json:"vae_decoder"`
	Scheduler  struct {
		NumTrainTimesteps int     `json:"num_train_timesteps"`
		BetaStart         float64 `json:"beta_start"`
		BetaEnd           float64 `json:"beta_end"`
		BetaSchedule      string  `json:"beta_schedule"`
		PredictionType    string  `json:"prediction_type"`
		TimestepSpacing   string  `json:"timestep_spacing"`
		StepsOffset       int     `json:"steps_offset"`
		SetAlphaToOne     bool    `json:"set_alpha_to_one"`
	} `json:"scheduler"`
	Defaults struct {
		Steps         int     `json:"steps"`
		GuidanceScale float64 `json:"guidance_scale"`
		// CrossReplace and SelfReplace are the Prompt-to-Prompt windows
		// (fractions of the steps) tuned for this model; 0 = the
		// reference's 0.8 and 0.4.
		CrossReplace float64 `json:"cross_replace,omitempty"`
		SelfReplace  float64 `json:"self_replace,omitempty"`
		// SelfReplaceMaxTokens: self-attention layers with at most this
		// many query positions get the self-replace edit when the UNet is
		// instrumented; 0 = backend/graph's default (16×16 at 512 px).
		SelfReplaceMaxTokens int `json:"self_replace_max_tokens,omitempty"`
	} `json:"defaults"`
	Preview struct {
		// LatentRGBMatrix has one row per latent channel and columns R, G,
		// B: rgb = Σ_k z_k·M[k] + bias, in [−1, 1], for latents in UNet
		// scale (already multiplied by the scaling factor).
		LatentRGBMatrix [][3]float64 `json:"latent_rgb_matrix"`
		LatentRGBBias   []float64    `json:"latent_rgb_bias"`
	} `json:"preview"`
}

// Component names one ONNX file of the model and its main input and output.
type Component struct {
	File   string `json:"file"`
	Input  string `json:"input"`
	Output string `json:"output"`
}

// ManifestFormat is the format string of the model.json files this code reads.
const ManifestFormat = "reword-model/1"

// Load reads the manifest of the model folder dir: model.json when present,
// otherwise one derived from a diffusers-layout Stable Diffusion 1.x/2.x ONNX
// export. Every file the manifest names must exist.
func Load(dir string) (*Manifest, error) {
	st, err := Check(dir)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	var m *Manifest
	switch {
	case err == nil:
		m, err = parseManifest(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if !st.Ready() {
			return nil, errors.New(st.Problem())
		}
		m, err = deriveManifest(dir)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("reading model manifest: %w", err)
	}
	m.Dir = dir
	for _, c := range []struct{ what, file string }{
		{"text_encoder", m.TextEncoder.File}, {"unet", m.UNet.File},
		{"vae_decoder", m.VAEDecoder.File}, {"vae_encoder", m.VAEEncoder.File},
	} {
		if _, err := os.Stat(m.Path(c.file)); err != nil {
			return nil, fmt.Errorf("model %s: %s file: %w", dir, c.what, err)
		}
	}
	return m, nil
}

// Path resolves a file named in the manifest against the model folder.
func (m *Manifest) Path(rel string) string { return filepath.Join(m.Dir, filepath.FromSlash(rel)) }

// ID is the model's name, or the folder name when the manifest has none.
func (m *Manifest) ID() string {
	if m.Name != "" {
		return m.Name
	}
	return filepath.Base(filepath.Clean(m.Dir))
}

func parseManifest(raw []byte) (*Manifest, error) {
	var m Manifest
	// Unknown fields are allowed: model.json also records how the model
	// was trained, which the engine does not need.
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&m); err != nil {
		return nil, fmt.Errorf("not a valid model manifest: %w", err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("format %q is not %q", m.Format, ManifestFormat)
	}
	return &m, m.validate()
}

// validate reports the first missing or impossible value, naming its field.
func (m *Manifest) validate() error {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if m.Image.Width <= 0 || m.Image.Height <= 0 || m.Image.Channels != 3 {
		bad("image: want positive width and height and 3 channels, got %dx%dx%d", m.Image.Width, m.Image.Height, m.Image.Channels)
	}
	l := m.Latent
	if l.Channels <= 0 || l.Width <= 0 || l.Height <= 0 || !(l.ScalingFactor > 0) {
		bad("latent: want positive channels, width, height and scaling_factor, got %+v", l)
	}
	for _, c := range []struct {
		name string
		c    Component
	}{{"text_encoder", m.TextEncoder}, {"unet", m.UNet.Component}, {"vae_encoder", m.VAEEncoder.Component}, {"vae_decoder", m.VAEDecoder}} {
		// The UNet's inputs are the fixed diffusers names (sample,
		// timestep, encoder_hidden_states), so only its output is named.
		if c.c.File == "" || c.c.Output == "" || (c.c.Input == "" && c.name != "unet") {
			bad("%s: file, input and output are required", c.name)
		}
		if filepath.IsAbs(c.c.File) || strings.HasPrefix(filepath.Clean(filepath.FromSlash(c.c.File)), "..") {
			bad("%s: file %q must be a path inside the model folder", c.name, c.c.File)
		}
	}
	if k := m.VAEEncoder.OutputKind; k != "mean_logvar" && k != "sample" {
		bad("vae_encoder.output_kind: %q is not \"mean_logvar\" or \"sample\"", k)
	}
	if _, err := m.SchedulerConfig(); err != nil {
		bad("%v", err)
	}
	if m.Defaults.Steps < 1 || !(m.Defaults.GuidanceScale >= 0) {
		bad("defaults: want steps ≥ 1 and guidance_scale ≥ 0, got %d and %v", m.Defaults.Steps, m.Defaults.GuidanceScale)
	}
	if d := m.Defaults; !(d.CrossReplace >= 0 && d.CrossReplace <= 1 && d.SelfReplace >= 0 && d.SelfReplace <= 1) {
		bad("defaults: cross_replace and self_replace are fractions in [0, 1], got %v and %v", d.CrossReplace, d.SelfReplace)
	}
	if m.Defaults.SelfReplaceMaxTokens < 0 {
		bad("defaults: self_replace_max_tokens is %d; want ≥ 0 (0 = the default layers)", m.Defaults.SelfReplaceMaxTokens)
	}
	if len(m.Preview.LatentRGBMatrix) != l.Channels {
		bad("preview.latent_rgb_matrix: want %d rows (one per latent channel), got %d", l.Channels, len(m.Preview.LatentRGBMatrix))
	}
	if b := len(m.Preview.LatentRGBBias); b != 0 && b != 3 {
		bad("preview.latent_rgb_bias: want 3 values (R, G, B) or none, got %d", b)
	}
	if len(problems) > 0 {
		return errors.New("invalid model manifest: " + strings.Join(problems, "; "))
	}
	return nil
}

// SchedulerConfig returns the noise schedule in the scheduler package's terms.
func (m *Manifest) SchedulerConfig() (scheduler.Config, error) {
	s := m.Scheduler
	pred := s.PredictionType
	if pred == "" {
		pred = m.UNet.PredictionType
	}
	spacing := s.TimestepSpacing
	if spacing == "" {
		spacing = string(scheduler.Leading) // diffusers' default for DDIM and PNDM configs
	}
	cfg := scheduler.Config{
		TrainTimesteps: s.NumTrainTimesteps, BetaStart: s.BetaStart, BetaEnd: s.BetaEnd,
		BetaSchedule: scheduler.BetaSchedule(s.BetaSchedule), Spacing: scheduler.Spacing(spacing),
		StepsOffset: s.StepsOffset, SetAlphaToOne: s.SetAlphaToOne, Prediction: scheduler.Prediction(pred),
	}
	return cfg, cfg.Validate()
}
