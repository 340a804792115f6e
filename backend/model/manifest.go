package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"reword/backend/scheduler"
	"reword/shared/clip"
	"reword/shared/edit"
)

// Manifest is what the engine needs to know about a model folder beyond its
// ONNX files: sizes, the latent scale, the noise schedule, defaults and the
// latent→RGB preview factors. Reword's own models carry it as model.json;
// for a user's Stable Diffusion export Load derives it from the diffusers
// config files. The noise schedule and the defaults are its family's
// (Family), with whatever the manifest states itself.
type Manifest struct {
	// Dir is the folder the manifest describes.
	Dir string `json:"-"`
	// Derived is true when there was no model.json and the manifest was
	// built from the folder's diffusers configs and its family's
	// conventions (SD 1.x/2.x or SDXL).
	Derived bool `json:"-"`

	Format      string `json:"format"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Family names the model family whose schedule and defaults the
	// manifest starts from; "" is SD1.
	Family string `json:"family,omitempty"`
	Image  struct {
		Width    int `json:"width"`
		Height   int `json:"height"`
		Channels int `json:"channels"`
	} `json:"image"`
	Latent struct {
		Channels int `json:"channels"`
		Height   int `json:"height"`
		Width    int `json:"width"`
		// DownsamplingFactor is the VAE's: image pixels per latent cell
		// along each side (8 for Stable Diffusion, 4 for Reword's tiny
		// model); 0 when model.json leaves it out.
		DownsamplingFactor int     `json:"downsampling_factor,omitempty"`
		ScalingFactor      float64 `json:"scaling_factor"`
	} `json:"latent"`
	TextEncoder TextEncoder `json:"text_encoder"`
	// TextEncoder2 is SDXL's second text encoder (nil: the model has one).
	// Both encode every prompt; their states are concatenated token by
	// token, the first's then the second's, into the UNet's text states,
	// and its Pooled output is the UNet's text_embeds.
	TextEncoder2 *TextEncoder `json:"text_encoder_2,omitempty"`
	UNet         struct {
		Component
		PredictionType string `json:"prediction_type"`
		// TextTime is SDXL's addition_embed_type "text_time": the UNet
		// also takes text_embeds (the second encoder's pooled output) and
		// time_ids (original size, crop corner, target size).
		TextTime bool `json:"text_time,omitempty"`
	} `json:"unet"`
	// ZeroEmptyNegative is diffusers' force_zeros_for_empty_prompt (SDXL):
	// a run without a negative prompt gives its unconditional rows zero
	// text states and a zero pooled embedding instead of the encoding of
	// the empty prompt, as the model was trained to be guided.
	ZeroEmptyNegative bool `json:"force_zeros_for_empty_prompt,omitempty"`
	VAEEncoder        struct {
		Component
		// OutputKind is "mean_logvar" (latent_parameters, 2C channels:
		// Optimum's export) or "sample" (latent_sample, C channels, a
		// random draw mean + std·ε in diffusers' conversion script, which
		// the engine rewrites to return the mean when it loads it).
		OutputKind string `json:"output_kind"`
	} `json:"vae_encoder"`
	VAEDecoder Component `json:"vae_decoder"`
	// Schedule is the noise schedule: the family's, with what the
	// manifest's "scheduler" object (or a diffusers export's
	// scheduler_config.json) states; its prediction type, when neither
	// states one, is the UNet's "prediction_type".
	Schedule scheduler.Config `json:"-"`
	// Defaults are the settings an edit starts from: the family's, with
	// what the manifest's "defaults" object states.
	Defaults Defaults `json:"-"`
	Preview  struct {
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

// TextEncoder is one text encoder and how its tokenizer pads prompts.
type TextEncoder struct {
	Component
	// PadToken is the tokenizer's pad token, as Hugging Face's tokenizer
	// configs state it: "" (or "<|endoftext|>") pads with EOS, as SD 1.x's
	// tokenizer and Reword's models do; SD 2.x's and SDXL's second
	// tokenizer pad with "!" (shared/clip, Tokenizer.PadID).
	PadToken string `json:"pad_token,omitempty"`
	// Pooled names the output the UNet takes as text_embeds (SDXL's second
	// encoder: "text_embeds"); "" when the UNet takes none from it.
	Pooled string `json:"pooled_output,omitempty"`
}

// PadID is the id the encoder's prompts are padded with.
func (t TextEncoder) PadID() (int32, error) {
	tok, err := clip.Default()
	if err != nil {
		return 0, err
	}
	return tok.PadID(t.PadToken)
}

// ManifestFormat is the format string of the model.json files this code reads.
const ManifestFormat = "reword-model/1"

// Load reads the manifest of the model folder dir: model.json when present,
// otherwise one derived from a diffusers-layout Stable Diffusion 1.x/2.x/XL ONNX
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
			return nil, missingFiles(dir, st)
		}
		m, err = deriveManifest(dir)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("reading model manifest: %w", err)
	}
	m.Dir = dir
	files := []struct{ what, file string }{
		{"text_encoder", m.TextEncoder.File}, {"unet", m.UNet.File},
		{"vae_decoder", m.VAEDecoder.File}, {"vae_encoder", m.VAEEncoder.File},
	}
	if m.TextEncoder2 != nil {
		files = append(files, struct{ what, file string }{"text_encoder_2", m.TextEncoder2.File})
	}
	for _, c := range files {
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
	// The parts a family owns are read on their own, so that a value the
	// manifest leaves out is told apart from a zero it states.
	var stated struct {
		Scheduler statedSchedule `json:"scheduler"`
		Defaults  statedDefaults `json:"defaults"`
	}
	// Unknown fields are allowed: model.json also records how the model
	// was trained, which the engine does not need.
	for _, v := range []any{&m, &stated} {
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(v); err != nil {
			return nil, fmt.Errorf("not a valid model manifest: %w", err)
		}
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("format %q is not %q", m.Format, ManifestFormat)
	}
	if err := m.applyFamily(stated.Scheduler, stated.Defaults); err != nil {
		return nil, err
	}
	return &m, m.validate()
}

// applyFamily resolves the schedule and the defaults: the family's values,
// overridden by those the manifest states.
func (m *Manifest) applyFamily(sched statedSchedule, defaults statedDefaults) error {
	name := m.Family
	if name == "" {
		name = SD1.Name
	}
	f, err := LookupFamily(name)
	if err != nil {
		return err
	}
	if sched.PredictionType == nil && m.UNet.PredictionType != "" {
		sched.PredictionType = &m.UNet.PredictionType
	}
	m.Schedule = sched.over(f.Schedule)
	m.Defaults = defaults.over(f.Defaults)
	return nil
}

// validate reports the first missing or impossible value, naming its field.
func (m *Manifest) validate() error {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if m.Image.Width <= 0 || m.Image.Height <= 0 || m.Image.Channels != 3 {
		bad("image: want positive width and height and 3 channels, got %dx%dx%d", m.Image.Width, m.Image.Height, m.Image.Channels)
	}
	l := m.Latent
	if l.Channels <= 0 || l.Width <= 0 || l.Height <= 0 || !(l.ScalingFactor > 0) || l.DownsamplingFactor < 0 {
		bad("latent: want positive channels, width, height and scaling_factor (and downsampling_factor, where stated), got %+v", l)
	} else if m.Image.Width > 0 && m.Image.Height > 0 {
		m.checkImageSize(bad)
	}
	checkComponent(bad, "text_encoder", m.TextEncoder.Component)
	checkComponent(bad, "unet", m.UNet.Component)
	checkComponent(bad, "vae_encoder", m.VAEEncoder.Component)
	checkComponent(bad, "vae_decoder", m.VAEDecoder)
	m.validateText(bad)
	if k := m.VAEEncoder.OutputKind; k != "mean_logvar" && k != "sample" {
		bad("vae_encoder.output_kind: %q is not \"mean_logvar\" or \"sample\"", k)
	}
	if err := m.Schedule.Validate(); err != nil {
		bad("%v", err)
	} else if n := m.Schedule.TrainTimesteps; m.Defaults.Steps > n && m.Defaults.Steps <= edit.MaxSteps {
		// A run takes its steps from the training timesteps, so a default
		// beyond them would fail every run that keeps it. (Steps beyond
		// edit.MaxSteps are Defaults.validate's to report.)
		bad("defaults.steps is %d but scheduler.num_train_timesteps is %d; want steps ≤ the training timesteps", m.Defaults.Steps, n)
	}
	m.Defaults.validate(bad)
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

// checkImageSize reports an image size the VAE decoder cannot give: the
// decoder turns each latent cell into DownsamplingFactor×DownsamplingFactor
// pixels, so any other size would fail only after a whole run. Without a
// stated factor, the image must at least be the same whole multiple of the
// latent along both sides.
func (m *Manifest) checkImageSize(bad func(format string, a ...any)) {
	im, l := m.Image, m.Latent
	if f := l.DownsamplingFactor; f > 0 {
		if im.Width != l.Width*f || im.Height != l.Height*f {
			bad("image: %dx%d is not latent %dx%d × latent.downsampling_factor %d; want image width and height %dx%d",
				im.Width, im.Height, l.Width, l.Height, f, l.Width*f, l.Height*f)
		}
		return
	}
	if im.Width%l.Width != 0 || im.Height%l.Height != 0 || im.Width/l.Width != im.Height/l.Height {
		bad("image: %dx%d is not latent %dx%d times one whole factor (the VAE's downsampling factor, e.g. 8 for Stable Diffusion); state latent.downsampling_factor and an image of the latent's size times it",
			im.Width, im.Height, l.Width, l.Height)
	}
}

// validateText reports the problems of the text encoders: their pad
// tokens, and SDXL's parts, which come together or not at all.
func (m *Manifest) validateText(bad func(format string, a ...any)) {
	if _, err := m.TextEncoder.PadID(); err != nil {
		bad("text_encoder.pad_token: %v", err)
	}
	if m.TextEncoder.Pooled != "" {
		bad("text_encoder.pooled_output: only text_encoder_2 (SDXL's second encoder) gives the UNet a pooled embedding")
	}
	t := m.TextEncoder2
	switch {
	case t == nil && m.UNet.TextTime:
		bad("unet.text_time is set but text_encoder_2 is not: SDXL's UNet takes text_embeds from the second text encoder")
	case t == nil:
	case !m.UNet.TextTime:
		bad("text_encoder_2 is set but unet.text_time is not: a second text encoder is SDXL's, whose UNet takes text_embeds and time_ids")
	case t.Pooled == "":
		bad("text_encoder_2.pooled_output is required: it names the output the UNet takes as text_embeds")
	}
	if t != nil {
		checkComponent(bad, "text_encoder_2", t.Component)
		if _, err := t.PadID(); err != nil {
			bad("text_encoder_2.pad_token: %v", err)
		}
	}
}

// checkComponent reports a component without its file, input or output
// (the UNet's inputs are the fixed diffusers names, so only its output is
// named), or whose file is outside the model folder.
func checkComponent(bad func(format string, a ...any), name string, c Component) {
	if c.File == "" || c.Output == "" || (c.Input == "" && name != "unet") {
		bad("%s: file, input and output are required", name)
	}
	if filepath.IsAbs(c.File) || strings.HasPrefix(filepath.Clean(filepath.FromSlash(c.File)), "..") {
		bad("%s: file %q must be a path inside the model folder", name, c.File)
	}
}

// SpecDefaults describes the model for edit specs: its id, its size, and
// the defaults and choices of its family and manifest.
func (m *Manifest) SpecDefaults() edit.Defaults {
	d := m.Defaults
	out := edit.Defaults{
		Model:           m.ID(),
		Sizes:           []edit.Size{{Width: m.Image.Width, Height: m.Image.Height}},
		Schedulers:      slices.Clone(d.Schedulers),
		Steps:           d.Steps,
		Guidance:        d.GuidanceScale,
		Cross:           edit.Fraction(d.CrossReplace),
		Self:            edit.Fraction(d.SelfReplace),
		Norm:            edit.Fraction(d.Norm),
		BlendChanged:    d.BlendChanged,
		BlendReweighted: d.BlendReweighted,
	}
	if d.DecodeNorm != edit.DecodeNormOwn {
		out.DecodeNorm = d.DecodeNorm
	}
	if d.CrossReplaceChanged != nil {
		w := edit.Fraction(*d.CrossReplaceChanged)
		out.CrossChanged = &w
	}
	return out
}
