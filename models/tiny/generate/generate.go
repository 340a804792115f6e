// Package generate runs the tiny model (models/tiny) from a prompt to an
// image through ONNX Runtime: CLIP tokens → text encoder → classifier-free
// guided DDIM over the UNet → VAE decoder. It is the minimal pipeline the
// model's own tests and quality benchmark need until backend/diffusion, the
// engine, can serve them; it knows nothing of Prompt-to-Prompt.
package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"

	"reword/backend/ort"
	"reword/shared/clip"
)

// Manifest is the part of models/tiny/model.json this pipeline reads (the
// fields are documented in models/tiny/README.md).
type Manifest struct {
	Image struct {
		Width, Height int
	} `json:"image"`
	Latent struct {
		Channels      int     `json:"channels"`
		Height        int     `json:"height"`
		Width         int     `json:"width"`
		ScalingFactor float64 `json:"scaling_factor"`
	} `json:"latent"`
	TextEncoder struct {
		File      string `json:"file"`
		MaxTokens int    `json:"max_tokens"`
	} `json:"text_encoder"`
	UNet struct {
		File     string `json:"file"`
		SDPAFile string `json:"sdpa_file"`
	} `json:"unet"`
	VAEEncoder struct {
		File string `json:"file"`
	} `json:"vae_encoder"`
	VAEDecoder struct {
		File string `json:"file"`
	} `json:"vae_decoder"`
	Scheduler struct {
		NumTrainTimesteps int     `json:"num_train_timesteps"`
		BetaStart         float64 `json:"beta_start"`
		BetaEnd           float64 `json:"beta_end"`
		BetaSchedule      string  `json:"beta_schedule"`
		PredictionType    string  `json:"prediction_type"`
		StepsOffset       int     `json:"steps_offset"`
	} `json:"scheduler"`
	Defaults struct {
		Steps         int     `json:"steps"`
		GuidanceScale float64 `json:"guidance_scale"`
	} `json:"defaults"`
}

// ReadManifest reads and checks dir/model.json.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	path := filepath.Join(dir, "model.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case m.Scheduler.BetaSchedule != "scaled_linear" || m.Scheduler.PredictionType != "epsilon":
		return m, fmt.Errorf("%s: this pipeline runs scaled_linear ε-prediction models, not %q/%q", path, m.Scheduler.BetaSchedule, m.Scheduler.PredictionType)
	case m.Latent.Channels <= 0 || m.Latent.Height <= 0 || m.Latent.Width <= 0 || m.Latent.ScalingFactor <= 0:
		return m, fmt.Errorf("%s: latent shape and scaling factor must be positive", path)
	case m.TextEncoder.MaxTokens != clip.ContextLength:
		return m, fmt.Errorf("%s: text encoder takes %d tokens, the CLIP tokenizer gives %d", path, m.TextEncoder.MaxTokens, clip.ContextLength)
	}
	return m, nil
}

// Pipeline holds the tiny model's sessions. Its methods may be called from
// several goroutines.
type Pipeline struct {
	Manifest Manifest
	Schedule Schedule
	tok      *clip.Tokenizer
	text     *ort.Session
	unet     *ort.Session
	encoder  *ort.Session
	decoder  *ort.Session
	// timestepType is the UNet's timestep input type (float32 or int64).
	timestepType ort.DType
}

// Open loads the model in dir (the directory of model.json). With sdpa set
// it runs the UNet export in the torch-SDPA attention layout instead of the
// classic one; both compute the same function.
func Open(dir string, sdpa bool, opts ort.Options) (*Pipeline, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	sched, err := ScaledLinear(m.Scheduler.NumTrainTimesteps, m.Scheduler.BetaStart, m.Scheduler.BetaEnd, m.Scheduler.StepsOffset)
	if err != nil {
		return nil, err
	}
	tok, err := clip.New()
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Manifest: m, Schedule: sched, tok: tok}
	unetFile := m.UNet.File
	if sdpa {
		unetFile = m.UNet.SDPAFile
	}
	for _, s := range []struct {
		dst  **ort.Session
		file string
	}{{&p.text, m.TextEncoder.File}, {&p.unet, unetFile}, {&p.encoder, m.VAEEncoder.File}, {&p.decoder, m.VAEDecoder.File}} {
		if *s.dst, err = ort.NewSession(filepath.Join(dir, s.file), opts); err != nil {
			p.Close()
			return nil, err
		}
	}
	ts, ok := p.unet.Input("timestep")
	if !ok || (ts.DType != ort.Float32 && ts.DType != ort.Int64) {
		p.Close()
		return nil, fmt.Errorf("%s: want a float32 or int64 input named timestep", unetFile)
	}
	p.timestepType = ts.DType
	return p, nil
}

// Close releases the sessions.
func (p *Pipeline) Close() {
	for _, s := range []*ort.Session{p.text, p.unet, p.encoder, p.decoder} {
		if s != nil {
			s.Close()
		}
	}
}

// Request is one image to generate.
type Request struct {
	Prompt string
	// Seed picks the initial noise.
	Seed uint64
}

// Options are the sampling settings shared by a batch of requests.
type Options struct {
	Steps    int
	Guidance float64
}

// Generate makes one image per request. Requests are run together as one
// batch (the UNet sees 2·len(reqs) rows: unconditional, then conditional).
func (p *Pipeline) Generate(ctx context.Context, reqs []Request, o Options) ([]*image.RGBA, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	ts, err := p.Schedule.Timesteps(o.Steps)
	if err != nil {
		return nil, err
	}
	B := len(reqs)
	prompts := make([]string, 2*B)
	for i, r := range reqs {
		prompts[B+i] = r.Prompt // rows 0..B-1 stay "", the unconditional prompt
	}
	hidden, hiddenShape, err := p.encodeText(ctx, prompts)
	if err != nil {
		return nil, err
	}
	L := p.Manifest.Latent
	per := L.Channels * L.Height * L.Width
	x := make([]float32, B*per)
	for i, r := range reqs {
		rng := rand.New(rand.NewPCG(r.Seed, 0x7a1e17))
		for k := 0; k < per; k++ {
			x[i*per+k] = float32(rng.NormFloat64())
		}
	}
	hiddenT, err := ort.NewTensor(hiddenShape, hidden)
	if err != nil {
		return nil, err
	}
	defer hiddenT.Destroy()
	both := make([]float32, 2*B*per)
	eps := make([]float32, B*per)
	for _, t := range ts {
		copy(both, x)
		copy(both[B*per:], x)
		out, err := p.runUNet(ctx, both, []int64{int64(2 * B), int64(L.Channels), int64(L.Height), int64(L.Width)}, t, hiddenT)
		if err != nil {
			return nil, err
		}
		g := float32(o.Guidance)
		for k := range eps {
			u, c := out[k], out[B*per+k]
			eps[k] = u + g*(c-u)
		}
		if err := p.Schedule.DDIMStep(x, eps, t, o.Steps); err != nil {
			return nil, err
		}
	}
	return p.Decode(ctx, x, B)
}

func (p *Pipeline) encodeText(ctx context.Context, prompts []string) ([]float32, []int64, error) {
	n := p.Manifest.TextEncoder.MaxTokens
	ids := make([]int32, 0, len(prompts)*n)
	for _, s := range prompts {
		enc := p.tok.Encode(s)
		if enc.Truncated.Dropped > 0 {
			return nil, nil, fmt.Errorf("prompt %q is %d tokens too long for the text encoder", s, enc.Truncated.Dropped)
		}
		ids = append(ids, enc.Padded(n)...)
	}
	in, err := ort.NewTensor([]int64{int64(len(prompts)), int64(n)}, ids)
	if err != nil {
		return nil, nil, err
	}
	defer in.Destroy()
	out, err := p.text.RunContext(ctx, map[string]ort.Value{"input_ids": in})
	if err != nil {
		return nil, nil, err
	}
	defer out.Destroy()
	return out.Float32("last_hidden_state")
}

func (p *Pipeline) runUNet(ctx context.Context, x []float32, shape []int64, t int, hidden ort.Value) ([]float32, error) {
	sample, err := ort.NewTensor(shape, x)
	if err != nil {
		return nil, err
	}
	defer sample.Destroy()
	var timestep ort.Value
	if p.timestepType == ort.Int64 {
		v := make([]int64, shape[0])
		for i := range v {
			v[i] = int64(t)
		}
		timestep, err = ort.NewTensor([]int64{shape[0]}, v)
	} else {
		v := make([]float32, shape[0])
		for i := range v {
			v[i] = float32(t)
		}
		timestep, err = ort.NewTensor([]int64{shape[0]}, v)
	}
	if err != nil {
		return nil, err
	}
	defer timestep.Destroy()
	out, err := p.unet.RunContext(ctx, map[string]ort.Value{"sample": sample, "timestep": timestep, "encoder_hidden_states": hidden})
	if err != nil {
		return nil, err
	}
	defer out.Destroy()
	v, _, err := out.Float32("out_sample")
	return v, err
}

// Decode turns n scaled latents (as the UNet sees them) into images.
func (p *Pipeline) Decode(ctx context.Context, latents []float32, n int) ([]*image.RGBA, error) {
	L := p.Manifest.Latent
	z := make([]float32, len(latents))
	for i, v := range latents {
		z[i] = v / float32(L.ScalingFactor)
	}
	in, err := ort.NewTensor([]int64{int64(n), int64(L.Channels), int64(L.Height), int64(L.Width)}, z)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	out, err := p.decoder.RunContext(ctx, map[string]ort.Value{"latent_sample": in})
	if err != nil {
		return nil, err
	}
	defer out.Destroy()
	px, shape, err := out.Float32("sample")
	if err != nil {
		return nil, err
	}
	if len(shape) != 4 || shape[1] != 3 {
		return nil, fmt.Errorf("VAE decoder returned shape %v, want [n,3,H,W]", shape)
	}
	h, w := int(shape[2]), int(shape[3])
	imgs := make([]*image.RGBA, n)
	for i := range imgs {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var c [3]uint8
				for ch := 0; ch < 3; ch++ {
					c[ch] = toByte(px[((i*3+ch)*h+y)*w+x])
				}
				img.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
			}
		}
		imgs[i] = img
	}
	return imgs, nil
}

// Encode maps images to scaled latents (the posterior mean times the
// scaling factor), as the UNet sees them.
func (p *Pipeline) Encode(ctx context.Context, imgs []*image.RGBA) ([]float32, error) {
	M := p.Manifest
	w, h := M.Image.Width, M.Image.Height
	px := make([]float32, len(imgs)*3*h*w)
	for i, img := range imgs {
		if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
			return nil, fmt.Errorf("image %d is %v, the model takes %dx%d", i, img.Bounds().Size(), w, h)
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := img.RGBAAt(img.Bounds().Min.X+x, img.Bounds().Min.Y+y)
				for ch, v := range []uint8{c.R, c.G, c.B} {
					px[((i*3+ch)*h+y)*w+x] = float32(v)/127.5 - 1
				}
			}
		}
	}
	in, err := ort.NewTensor([]int64{int64(len(imgs)), 3, int64(h), int64(w)}, px)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	out, err := p.encoder.RunContext(ctx, map[string]ort.Value{"sample": in})
	if err != nil {
		return nil, err
	}
	defer out.Destroy()
	params, shape, err := out.Float32("latent_parameters")
	if err != nil {
		return nil, err
	}
	L := M.Latent
	if len(shape) != 4 || int(shape[1]) != 2*L.Channels {
		return nil, fmt.Errorf("VAE encoder returned shape %v, want [n,%d,h,w] (mean ‖ logvar)", shape, 2*L.Channels)
	}
	per := L.Channels * L.Height * L.Width
	z := make([]float32, len(imgs)*per)
	for i := range imgs {
		for k := 0; k < per; k++ {
			z[i*per+k] = params[i*2*per+k] * float32(L.ScalingFactor) // the mean: the first half of the channels
		}
	}
	return z, nil
}

func toByte(v float32) uint8 {
	f := (v + 1) * 127.5
	switch {
	case f <= 0:
		return 0
	case f >= 255:
		return 255
	default:
		return uint8(f + 0.5)
	}
}
