// Package scheduler holds the diffusion samplers: the noise schedule a model
// was trained with, the timesteps a run visits, and the update that moves a
// latent from one timestep to the next given the UNet's prediction.
//
// A Scheduler is a value with a Step method, separate from the sampling loop
// (the diffusers design): the loop owns the model calls, classifier-free
// guidance and attention control; the scheduler owns only the arithmetic of
// one denoising step. Multistep solvers keep the history of earlier steps,
// so a Scheduler value serves exactly one run.
//
// The formulas are those of docs/algorithm.md, section 9 (DDIM, η = 0)
// and of DPM-Solver++ 2M (Lu et al. 2022) as diffusers implements it.
package scheduler

import (
	"fmt"
	"math"
)

// BetaSchedule names how the per-timestep noise variances β are spaced.
type BetaSchedule string

const (
	// ScaledLinear spaces √β linearly (Stable Diffusion 1.x and 2.x).
	ScaledLinear BetaSchedule = "scaled_linear"
	// Linear spaces β linearly (the original DDPM).
	Linear BetaSchedule = "linear"
)

// Spacing names how a run's timesteps are picked among the training ones.
type Spacing string

const (
	// Leading takes every (N/steps)-th timestep from 0, plus the offset:
	// [981, 961, …, 1] for 50 DDIM steps of 1000 with offset 1 (SD 1.x).
	// DPM-Solver++ divides by steps + 1 instead: [951, 932, …, 20].
	Leading Spacing = "leading"
	// Trailing counts back from the last training timestep: [999, 979, …, 19].
	Trailing Spacing = "trailing"
	// Linspace spreads the steps evenly over [0, N−1], rounded (DPM-Solver++:
	// steps + 1 points, without 0).
	Linspace Spacing = "linspace"
)

// Prediction names what the UNet predicts.
type Prediction string

const (
	// Epsilon: the noise that was added (SD 1.x, SD 2.x base).
	Epsilon Prediction = "epsilon"
	// VPrediction: v = √ᾱ·ε − √(1−ᾱ)·x₀ (SD 2.x 768 px models).
	VPrediction Prediction = "v_prediction"
)

// Config is a model's training noise schedule and sampling conventions, as
// in a diffusers scheduler_config.json.
type Config struct {
	TrainTimesteps int
	BetaStart      float64
	BetaEnd        float64
	BetaSchedule   BetaSchedule
	Spacing        Spacing
	// StepsOffset is added to every leading-spaced timestep; SD pipelines
	// force it to 1 (diffusers rewrites it when it builds the pipeline).
	StepsOffset int
	// SetAlphaToOne makes the step past timestep 0 land on ᾱ = 1 (a clean
	// image); when false it lands on ᾱ₀, as in SD 1.x.
	SetAlphaToOne bool
	Prediction    Prediction
}

// SD1 is the schedule of Stable Diffusion 1.x as the reference Prompt-to-Prompt
// code ran it (with DDIM; docs/algorithm.md, section 9).
func SD1() Config {
	return Config{
		TrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, BetaSchedule: ScaledLinear,
		Spacing: Leading, StepsOffset: 1, SetAlphaToOne: false, Prediction: Epsilon,
	}
}

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	switch {
	case c.TrainTimesteps < 2 || c.TrainTimesteps > 100000:
		return fmt.Errorf("scheduler: num_train_timesteps is %d; want 2..100000", c.TrainTimesteps)
	case !(c.BetaStart > 0 && c.BetaStart < c.BetaEnd && c.BetaEnd < 1):
		return fmt.Errorf("scheduler: beta_start %v and beta_end %v must satisfy 0 < start < end < 1", c.BetaStart, c.BetaEnd)
	case c.BetaSchedule != ScaledLinear && c.BetaSchedule != Linear:
		return fmt.Errorf("scheduler: beta_schedule %q is not supported; use %q or %q", c.BetaSchedule, ScaledLinear, Linear)
	case c.Spacing != Leading && c.Spacing != Trailing && c.Spacing != Linspace:
		return fmt.Errorf("scheduler: timestep_spacing %q is not supported; use %q, %q or %q", c.Spacing, Leading, Trailing, Linspace)
	case c.StepsOffset < 0 || c.StepsOffset >= c.TrainTimesteps:
		return fmt.Errorf("scheduler: steps_offset %d is outside 0..%d", c.StepsOffset, c.TrainTimesteps-1)
	case c.Prediction != Epsilon && c.Prediction != VPrediction:
		return fmt.Errorf("scheduler: prediction_type %q is not supported; use %q or %q", c.Prediction, Epsilon, VPrediction)
	}
	return nil
}

// AlphasCumprod returns ᾱ_t = Π_{i≤t}(1−β_i) for every training timestep,
// computed in float64.
func (c Config) AlphasCumprod() []float64 {
	n := c.TrainTimesteps
	out := make([]float64, n)
	prod := 1.0
	for i := 0; i < n; i++ {
		frac := float64(i) / float64(n-1)
		var beta float64
		switch c.BetaSchedule {
		case ScaledLinear:
			s := math.Sqrt(c.BetaStart) + frac*(math.Sqrt(c.BetaEnd)-math.Sqrt(c.BetaStart))
			beta = s * s
		default:
			beta = c.BetaStart + frac*(c.BetaEnd-c.BetaStart)
		}
		prod *= 1 - beta
		out[i] = prod
	}
	return out
}

// Timesteps returns the training timesteps a DDIM run of the given number of
// steps visits, highest (noisiest) first, spaced as diffusers'
// DDIMScheduler.set_timesteps spaces them: leading takes every
// (N // steps)-th timestep from 0 plus the offset; trailing and linspace
// are those of spacedTrailing and spacedLinspace with steps − 1 intervals.
// One deliberate difference: a single linspace step is the last training
// timestep, where numpy's one-point linspace would give timestep 0.
func (c Config) Timesteps(steps int) ([]int, error) {
	if err := c.checkSteps(steps); err != nil {
		return nil, err
	}
	n := c.TrainTimesteps
	switch c.Spacing {
	case Leading:
		return c.spacedLeading(steps, n/steps, 0)
	case Trailing:
		return spacedTrailing(n, steps), nil
	default:
		if steps == 1 {
			return []int{n - 1}, nil
		}
		return spacedLinspace(n-1, steps-1, steps), nil
	}
}

// DPMSolverTimesteps returns the training timesteps a DPM-Solver++ run of
// the given number of steps visits, highest first, spaced as diffusers'
// DPMSolverMultistepScheduler.set_timesteps spaces them (with its default
// lambda_min_clipped of −∞, so all N training timesteps are eligible).
// That scheduler divides the range into steps + 1 intervals and drops the
// lowest point, because its last step goes to σ = 0 rather than to a
// timestep: leading takes every (N // (steps+1))-th timestep from the
// first interval up, plus the offset ([951, 932, …, 20] for 50 steps of
// 1000 with offset 1, where DDIM has [981, …, 1]); linspace takes steps + 1
// evenly spaced points of [0, N−1] without 0. Trailing is DDIM's.
func (c Config) DPMSolverTimesteps(steps int) ([]int, error) {
	if err := c.checkSteps(steps); err != nil {
		return nil, err
	}
	n := c.TrainTimesteps
	switch c.Spacing {
	case Leading:
		return c.spacedLeading(steps, n/(steps+1), 1)
	case Trailing:
		return spacedTrailing(n, steps), nil
	default:
		return spacedLinspace(n-1, steps, steps), nil
	}
}

// checkSteps validates c and the number of steps of a run.
func (c Config) checkSteps(steps int) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if steps < 1 || steps > c.TrainTimesteps {
		return fmt.Errorf("scheduler: %d steps; want 1..%d (the model's training timesteps)", steps, c.TrainTimesteps)
	}
	return nil
}

// spacedLeading returns (steps − 1 − k + skip)·ratio + offset for k = 0 …
// steps−1: multiples of ratio from skip·ratio up, plus the offset, highest
// first.
func (c Config) spacedLeading(steps, ratio, skip int) ([]int, error) {
	n := c.TrainTimesteps
	if ratio == 0 {
		return nil, fmt.Errorf("scheduler: %d steps with leading spacing leave less than one of the %d training timesteps per step; use fewer steps", steps, n)
	}
	ts := make([]int, steps)
	for k := range ts {
		ts[k] = (steps-1-k+skip)*ratio + c.StepsOffset
	}
	if ts[0] >= n {
		return nil, fmt.Errorf("scheduler: steps_offset %d pushes the first of %d leading timesteps to %d, past the last training timestep %d", c.StepsOffset, steps, ts[0], n-1)
	}
	return ts, nil
}

// spacedTrailing counts back from n in steps of n/steps, rounds half to
// even and subtracts 1: diffusers' round(arange(n, 0, −n/steps)) − 1. The
// values are computed as numpy's arange computes them (start + i·delta,
// with delta the difference of its first two values) so that ties round
// the same way. Where numpy's length, ceil(n / (n/steps)), comes out one
// too many in floating point (61 steps of 1000, for one), diffusers gets
// an extra timestep −1; this returns the first steps values only.
func spacedTrailing(n, steps int) []int {
	start := float64(n)
	delta := (start - start/float64(steps)) - start
	ts := make([]int, steps)
	for k := range ts {
		v := start + float64(float64(k)*delta) // explicit conversion: no fused multiply-add
		ts[k] = int(math.RoundToEven(v)) - 1
	}
	return ts
}

// spacedLinspace returns the highest steps of the intervals+1 points
// numpy.linspace(0, top, intervals+1) gives (j·(top/intervals), the last
// exactly top), rounded half to even like numpy's round, highest first.
func spacedLinspace(top, intervals, steps int) []int {
	step := float64(top) / float64(intervals)
	ts := make([]int, steps)
	for k := range ts {
		j := intervals - k
		v := float64(top)
		if j != intervals {
			v = float64(j) * step
		}
		ts[k] = int(math.RoundToEven(v))
	}
	return ts
}
