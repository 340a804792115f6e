package scheduler

import (
	"fmt"
	"math"
)

// DDIM is the deterministic DDIM sampler (η = 0) of Song et al. 2021 as
// diffusers implements it with clip_sample off: from timestep t to the next
// step's timestep s (or to the final level after the last step),
//
//	x̂₀ = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t,   x_s = √ᾱ_s·x̂₀ + √(1−ᾱ_s)·ε.
//
// It is the sampler Prompt-to-Prompt and every inversion method use, and
// the only one that can be run backwards (see Invert).
type DDIM struct{ noiseLevels }

// NewDDIM returns a DDIM scheduler for a run of steps steps.
func NewDDIM(cfg Config, steps int) (*DDIM, error) {
	n, err := newNoiseLevels(cfg, steps, Config.Timesteps)
	if err != nil {
		return nil, err
	}
	return &DDIM{n}, nil
}

// Name implements Scheduler.
func (d *DDIM) Name() string { return DDIMName }

// prevAlpha is ᾱ at the level step i lands on.
func (d *DDIM) prevAlpha(i int) float64 {
	if i+1 < len(d.timesteps) {
		return d.alphasCum[d.timesteps[i+1]]
	}
	return d.finalAlpha
}

// Step implements Scheduler.
func (d *DDIM) Step(i int, out, x, denoised []float32) error {
	if err := d.checkStep(i, out, x, denoised); err != nil {
		return err
	}
	at, as := d.alphasCum[d.timesteps[i]], d.prevAlpha(i)
	move(d.cfg.Prediction, at, as, out, x, denoised)
	d.next++
	return checkFinite("latent", x)
}

// move applies one DDIM update from level ᾱ = from to level ᾱ = to.
func move(p Prediction, from, to float64, out, x, denoised []float32) {
	a, s := math.Sqrt(from), math.Sqrt(1-from)
	ta, ts := math.Sqrt(to), math.Sqrt(1-to)
	for k := range x {
		x0, eps := convert(p, a, s, float64(x[k]), float64(out[k]))
		if denoised != nil {
			denoised[k] = float32(x0)
		}
		x[k] = float32(ta*x0 + ts*eps)
	}
}

// Invert runs step i backwards (DDIM inversion, docs/algorithm.md, section
// 9): x is at
// the level step i lands on, out is the model output evaluated at x with the
// higher timestep Timesteps()[i], and x moves up to that timestep's level.
// Inversion visits i = len−1 down to 0, the reverse of sampling; it keeps no
// state, so it may be interleaved with nothing else of this value.
func (d *DDIM) Invert(i int, out, x []float32) error {
	if i < 0 || i >= len(d.timesteps) {
		return fmt.Errorf("scheduler: inversion step %d outside 0..%d", i, len(d.timesteps)-1)
	}
	if len(out) != len(x) || len(x) == 0 {
		return fmt.Errorf("scheduler: model output has %d values, latents %d; they must match and be non-empty", len(out), len(x))
	}
	move(d.cfg.Prediction, d.prevAlpha(i), d.alphasCum[d.timesteps[i]], out, x, nil)
	return checkFinite("latent", x)
}
