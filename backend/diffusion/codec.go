package diffusion

import (
	"context"
	"fmt"

	"reword/backend/diffusion/preview"
	"reword/backend/ort"
	"reword/shared/clip"
)

// The text encoder and the VAE decoder: prompts in, text states out;
// latents in, RGB images out. (The VAE encoder, for photos, is in
// invert.go.)

// encode returns the text embeddings of prompts, [len(prompts), 77, hidden].
func (e *Engine) encode(ctx context.Context, prompts []string) ([]float32, error) {
	n := len(prompts)
	ids32 := make([]int32, 0, n*clip.ContextLength)
	for _, p := range prompts {
		ids32 = append(ids32, e.tok.Encode(p).Padded(clip.ContextLength)...)
	}
	shape := []int64{int64(n), clip.ContextLength}
	var in ort.Value
	var err error
	if info, _ := e.text.Input(e.manifest.TextEncoder.Input); info.DType == ort.Int64 {
		ids64 := make([]int64, len(ids32))
		for i, v := range ids32 {
			ids64[i] = int64(v)
		}
		in, err = ort.NewTensor(shape, ids64)
	} else {
		in, err = ort.NewTensor(shape, ids32)
	}
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	outs, err := e.text.RunContext(ctx, map[string]ort.Value{e.manifest.TextEncoder.Input: in})
	if err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	defer outs.Destroy()
	emb, got, err := outs.Float32(e.manifest.TextEncoder.Output)
	if err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	if want := n * clip.ContextLength * e.hidden; len(emb) != want {
		return nil, fmt.Errorf("text encoder returned shape %v; want [%d, 77, %d]", got, n, e.hidden)
	}
	return emb, nil
}

// decode runs the VAE decoder on n latents (UNet scale) and returns RGB bytes.
func (e *Engine) decode(ctx context.Context, latents []float32, n int) ([][]byte, error) {
	m := e.manifest
	scaled := make([]float32, len(latents))
	inv := float32(1 / m.Latent.ScalingFactor)
	for i, v := range latents {
		scaled[i] = v * inv
	}
	in, err := ort.NewTensor([]int64{int64(n), int64(m.Latent.Channels), int64(m.Latent.Height), int64(m.Latent.Width)}, scaled)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	outs, err := e.decoder.RunContext(ctx, map[string]ort.Value{m.VAEDecoder.Input: in})
	if err != nil {
		return nil, fmt.Errorf("VAE decoder: %w", err)
	}
	defer outs.Destroy()
	pix, shape, err := outs.Float32(m.VAEDecoder.Output)
	if err != nil {
		return nil, fmt.Errorf("VAE decoder: %w", err)
	}
	w, h := m.Image.Width, m.Image.Height
	if len(pix) != n*3*w*h {
		return nil, fmt.Errorf("VAE decoder returned shape %v; want [%d, 3, %d, %d]", shape, n, h, w)
	}
	images := make([][]byte, n)
	plane := w * h
	for r := range images {
		img := make([]byte, 3*plane)
		base := pix[r*3*plane:]
		for p := 0; p < plane; p++ {
			for c := 0; c < 3; c++ {
				img[3*p+c] = preview.ToByte(float64(base[c*plane+p]))
			}
		}
		images[r] = img
	}
	return images, nil
}
