package generate

import (
	"fmt"
	"math"
)

// Schedule is Stable Diffusion's noise schedule and its DDIM sampler
// (diffusers' DDIMScheduler with eta 0, "leading" timestep spacing,
// steps_offset 1, set_alpha_to_one false), which the tiny model was trained
// with. It has no state besides the ᾱ table, so one value serves any number
// of concurrent generations.
//
// It lives here only until backend/diffusion has its scheduler; it is kept
// free of the model and of ONNX Runtime so it can move there unchanged.
type Schedule struct {
	// AlphasCumprod is ᾱ_t for t = 0 … TrainSteps-1.
	AlphasCumprod []float64
	// StepsOffset is added to every sampling timestep (SD uses 1).
	StepsOffset int
}

// ScaledLinear returns SD's schedule: β linear in √β from betaStart to
// betaEnd over trainSteps steps (SD 1.x: 0.00085, 0.012, 1000).
func ScaledLinear(trainSteps int, betaStart, betaEnd float64, stepsOffset int) (Schedule, error) {
	if trainSteps < 2 {
		return Schedule{}, fmt.Errorf("schedule: need at least 2 training steps, got %d", trainSteps)
	}
	if !(betaStart > 0 && betaEnd >= betaStart && betaEnd < 1) {
		return Schedule{}, fmt.Errorf("schedule: betas must satisfy 0 < start <= end < 1, got %g, %g", betaStart, betaEnd)
	}
	ac := make([]float64, trainSteps)
	prod := 1.0
	s0, s1 := math.Sqrt(betaStart), math.Sqrt(betaEnd)
	for t := range ac {
		b := s0 + (s1-s0)*float64(t)/float64(trainSteps-1)
		prod *= 1 - b*b
		ac[t] = prod
	}
	return Schedule{AlphasCumprod: ac, StepsOffset: stepsOffset}, nil
}

// Timesteps returns the descending sampling timesteps for a run of steps
// steps: (steps-1 … 0)·⌊T/steps⌋ + offset, as diffusers' "leading" spacing.
func (s Schedule) Timesteps(steps int) ([]int, error) {
	T := len(s.AlphasCumprod)
	if steps < 1 || steps > T {
		return nil, fmt.Errorf("schedule: steps must be in 1..%d, got %d", T, steps)
	}
	ratio := T / steps
	ts := make([]int, steps)
	for i := range ts {
		ts[i] = (steps-1-i)*ratio + s.StepsOffset
		if ts[i] >= T {
			return nil, fmt.Errorf("schedule: timestep %d out of range with offset %d", ts[i], s.StepsOffset)
		}
	}
	return ts, nil
}

// DDIMStep moves latents x at timestep t to the previous timestep t-T/steps
// given the predicted noise eps (ε-prediction, eta 0), in place:
// x₀ = (x − √(1−ᾱ_t)·ε)/√ᾱ_t, x ← √ᾱ_prev·x₀ + √(1−ᾱ_prev)·ε. When the
// previous timestep is before 0, ᾱ_prev is ᾱ_0 (set_alpha_to_one false).
func (s Schedule) DDIMStep(x, eps []float32, t, steps int) error {
	if len(x) != len(eps) {
		return fmt.Errorf("schedule: latents have %d values, noise prediction %d", len(x), len(eps))
	}
	T := len(s.AlphasCumprod)
	if t < 0 || t >= T || steps < 1 {
		return fmt.Errorf("schedule: timestep %d or steps %d out of range", t, steps)
	}
	at := s.AlphasCumprod[t]
	ap := s.AlphasCumprod[0]
	if prev := t - T/steps; prev >= 0 {
		ap = s.AlphasCumprod[prev]
	}
	sa, sb := math.Sqrt(at), math.Sqrt(1-at)
	pa, pb := math.Sqrt(ap), math.Sqrt(1-ap)
	for i := range x {
		e := float64(eps[i])
		x0 := (float64(x[i]) - sb*e) / sa
		x[i] = float32(pa*x0 + pb*e)
	}
	return nil
}
