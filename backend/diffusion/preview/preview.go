// Package preview turns latents into cheap preview images while a run is in
// progress, and hands them to a consumer without ever making the sampling
// loop wait for it.
package preview

import (
	"fmt"
	"math"
)

// Image is one preview: RGB bytes (3 per pixel, row-major) of one row of the
// batch (0 = source, 1.. = targets) after a step.
type Image struct {
	Row int
	// Step counts completed steps (1..Total); Final previews are the
	// VAE-decoded images and have Step == Total.
	Step, Total   int
	Width, Height int
	RGB           []byte
	Final         bool
}

// Projector maps a latent to RGB with a fixed per-channel linear map
// (docs/algorithm.md, section 9): rgb = Σ_k z_k·Matrix[k] + Bias, in [−1, 1].
type Projector struct {
	Matrix [][3]float64
	Bias   [3]float64
}

// NewProjector checks the matrix against the latent channel count; bias may
// be nil (no bias) or hold R, G, B.
func NewProjector(matrix [][3]float64, bias []float64, channels int) (Projector, error) {
	if len(matrix) != channels {
		return Projector{}, fmt.Errorf("preview: latent→RGB matrix has %d rows; the latent has %d channels", len(matrix), channels)
	}
	p := Projector{Matrix: matrix}
	switch len(bias) {
	case 0:
	case 3:
		copy(p.Bias[:], bias)
	default:
		return Projector{}, fmt.Errorf("preview: latent→RGB bias has %d values; want 3 or none", len(bias))
	}
	return p, nil
}

// Render writes the preview of latent z (channels × h × w, channel-major, in
// UNet scale) into dst, which must hold 3·h·w bytes.
func (p Projector) Render(z []float32, h, w int, dst []byte) error {
	n := h * w
	if len(z) != len(p.Matrix)*n || len(dst) != 3*n {
		return fmt.Errorf("preview: latent of %d values and image of %d bytes do not fit %d channels at %dx%d", len(z), len(dst), len(p.Matrix), w, h)
	}
	for px := 0; px < n; px++ {
		rgb := p.Bias
		for k, row := range p.Matrix {
			v := float64(z[k*n+px])
			rgb[0] += v * row[0]
			rgb[1] += v * row[1]
			rgb[2] += v * row[2]
		}
		for c := range 3 {
			dst[3*px+c] = ToByte(rgb[c])
		}
	}
	return nil
}

// ToByte maps a value in [−1, 1] to 0..255 the way the reference decodes
// images: clamp((v+1)/2, 0, 1)·255, truncated (docs/algorithm.md, section 1).
func ToByte(v float64) byte {
	u := (v + 1) / 2
	if !(u > 0) { // also maps NaN to 0
		return 0
	}
	if u >= 1 {
		return 255
	}
	return byte(math.Floor(u * 255))
}
