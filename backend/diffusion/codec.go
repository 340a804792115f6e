package diffusion

import (
	"context"
	"fmt"

	"reword/backend/diffusion/preview"
	"reword/backend/graph"
	"reword/backend/ort"
	"reword/shared/edit"
)

// The VAE decoder: latents in, RGB images out. (The text encoders are in
// text.go, the VAE encoder, for photos, in invert.go.)

// decode runs the VAE decoder on n latents (UNet scale) and returns RGB bytes.
func (e *Engine) decode(ctx context.Context, latents []float32, n int) ([][]byte, error) {
	return e.decodeWith(ctx, e.decoder, latents, n)
}

// sourceNormDecoder returns the decoder rewritten by graph.SourceNorms:
// given a batch whose first latent is the source's, every GroupNorm takes
// the source image's statistics (the spec's decode_norm), so latent cells
// an edit left as the source's decode as the source's pixels. It is opened
// the first time it is asked for and kept (a failure is not kept: the next
// call tries again).
func (e *Engine) sourceNormDecoder() (*ort.Session, error) {
	e.sourceNorms.Lock()
	defer e.sourceNorms.Unlock()
	if e.sourceNorms.decoder == nil {
		m := e.manifest
		d, err := openSession(m, m.VAEDecoder.File, "VAE decoder", e.sessionOptions, graph.Float32IORewrite, graph.SourceNormsRewrite)
		if err != nil {
			return nil, err
		}
		e.sourceNorms.decoder = d
	}
	return e.sourceNorms.decoder, nil
}

// checkSourceNorms makes sure, before a run that needs it, that the
// decoder with the source's statistics opens: a decoder the rewrite
// cannot serve is a problem of the spec's decode_norm, said before any
// denoising.
func (e *Engine) checkSourceNorms() error {
	if _, err := e.sourceNormDecoder(); err != nil {
		return edit.Problems{{Field: "decode_norm", Message: fmt.Sprintf("cannot take the source's statistics on model %s (%v); "+
			"leave it out or set it to %q", e.manifest.ID(), err, edit.DecodeNormOwn)}}
	}
	return nil
}

// decodeWith runs decoder d on n latents (UNet scale) and returns RGB bytes.
func (e *Engine) decodeWith(ctx context.Context, d *ort.Session, latents []float32, n int) ([][]byte, error) {
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
	outs, err := d.RunContext(ctx, map[string]ort.Value{m.VAEDecoder.Input: in})
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
