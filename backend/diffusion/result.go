package diffusion

import (
	"image"
	"math/rand/v2"
	"time"

	"reword/backend/diffusion/preview"
)

// Preview is a progressive image of one row of a run (see preview.Image).
type Preview = preview.Image

// Image is one final image of a run.
type Image struct {
	// Row is 0 for the source and e for target e (1-based).
	Row    int
	Prompt string
	Width  int
	Height int
	// RGB holds 3 bytes per pixel, row-major.
	RGB []byte
}

// NRGBA returns the image as an image.NRGBA (opaque), for encoding.
func (im Image) NRGBA() *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, im.Width, im.Height))
	for p := 0; p < im.Width*im.Height; p++ {
		copy(out.Pix[4*p:4*p+3], im.RGB[3*p:3*p+3])
		out.Pix[4*p+3] = 255
	}
	return out
}

// HeatMap is the cross-attention of one prompt's tokens at one resolution,
// averaged over the steps of the run and over the heads and the layers of
// that resolution (docs/algorithm.md, section 10).
type HeatMap struct {
	Row    int
	Prompt string
	// Tokens are the prompt's CLIP tokens, BOS and EOS included, as
	// shared/clip spells them.
	Tokens []string
	// Stride is how many latent positions per side one cell covers (1: the
	// latent's own grid).
	Stride int
	// Width × Height is the attention grid.
	Width, Height int
	// Maps[k] is token k's map, Width·Height values, row-major.
	Maps [][]float32
}

// Timings are the measured durations of one run.
type Timings struct {
	Inversion    time.Duration // photo encoding and DDIM inversion (0 when cached)
	TextEncoder  time.Duration
	Steps        time.Duration // all UNet steps with their scheduler updates
	StepCount    int
	Decode       time.Duration
	FirstPreview time.Duration // from the start of the run
	Total        time.Duration
}

// PerStep is the mean time of one step.
func (t Timings) PerStep() time.Duration {
	if t.StepCount == 0 {
		return 0
	}
	return t.Steps / time.Duration(t.StepCount)
}

// Result is what a run produced.
type Result struct {
	// Images has the source (row 0) then each target.
	Images []Image
	// HeatMaps, when requested, has one entry per row (source first) for
	// each resolution asked for, finest first.
	HeatMaps []HeatMap
	Timings  Timings
	// UNetRows counts the batch rows the UNet evaluated over the run.
	UNetRows int
	// SourceCached is true when the source came from the source cache.
	SourceCached bool
}

// initialNoise draws the starting latent x_T from a standard normal
// distribution with a PCG generator seeded by seed. It is drawn once and
// shared by the source and every target (docs/algorithm.md, section 1).
// The numbers are
// Go's, not torch's: the same seed gives a different image than diffusers.
func initialNoise(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x5265776f7264)) // "Reword"
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}
