package scheduler

import (
	"fmt"
	"math"
	"strings"
)

// Scheduler advances latents through one run's timesteps.
type Scheduler interface {
	// Name is the scheduler's name as specs and the CLI spell it.
	Name() string
	// Timesteps are the training timesteps the UNet is evaluated at, one
	// per step, highest first.
	Timesteps() []int
	// Step moves x in place from Timesteps()[i] to the next step's noise
	// level, given the model output at x (after classifier-free guidance).
	// x may hold several latents back to back; multistep schedulers keep a
	// history, so every step of a run must pass the same rows in the same
	// order. When denoised is not nil it receives the model's estimate of
	// the clean latent x̂₀ (for previews). Steps must be taken in order.
	Step(i int, modelOutput, x, denoised []float32) error
}

// Names of the schedulers New builds.
const (
	DDIMName      = "ddim"
	DPMSolverName = "dpmpp-2m"
)

// Names lists the scheduler names New accepts, the default first.
var Names = []string{DDIMName, DPMSolverName}

// New returns a fresh scheduler called name for a run of the given number of
// steps.
func New(name string, cfg Config, steps int) (Scheduler, error) {
	switch name {
	case DDIMName:
		return NewDDIM(cfg, steps)
	case DPMSolverName:
		return NewDPMSolver(cfg, steps)
	default:
		return nil, fmt.Errorf("unknown scheduler %q; available: %s", name, strings.Join(Names, ", "))
	}
}

// noiseLevels is what every scheduler needs: the run's timesteps and ᾱ.
type noiseLevels struct {
	cfg        Config
	alphasCum  []float64
	timesteps  []int
	finalAlpha float64 // ᾱ after the last step for DDIM-style endings
	next       int     // the step index Step expects next
}

// newNoiseLevels takes the run's timesteps from the scheduler's own spacing
// (Config.Timesteps or Config.DPMSolverTimesteps): diffusers spaces them
// differently per scheduler.
func newNoiseLevels(cfg Config, steps int, spacing func(Config, int) ([]int, error)) (noiseLevels, error) {
	ts, err := spacing(cfg, steps)
	if err != nil {
		return noiseLevels{}, err
	}
	ac := cfg.AlphasCumprod()
	final := ac[0]
	if cfg.SetAlphaToOne {
		final = 1
	}
	return noiseLevels{cfg: cfg, alphasCum: ac, timesteps: ts, finalAlpha: final}, nil
}

func (n *noiseLevels) Timesteps() []int { return n.timesteps }

// AlphaBar returns ᾱ at training timestep t.
func (n *noiseLevels) AlphaBar(t int) float64 { return n.alphasCum[t] }

// checkStep verifies the call order and buffer sizes shared by all Step
// implementations.
func (n *noiseLevels) checkStep(i int, out, x, denoised []float32) error {
	if i < 0 || i >= len(n.timesteps) {
		return fmt.Errorf("scheduler: step %d outside 0..%d", i, len(n.timesteps)-1)
	}
	if i != n.next {
		return fmt.Errorf("scheduler: step %d taken out of order (expected step %d)", i, n.next)
	}
	if len(out) != len(x) || len(x) == 0 {
		return fmt.Errorf("scheduler: model output has %d values, latents %d; they must match and be non-empty", len(out), len(x))
	}
	if denoised != nil && len(denoised) != len(x) {
		return fmt.Errorf("scheduler: denoised buffer has %d values, latents %d", len(denoised), len(x))
	}
	return nil
}

// convert turns one model output element at latent value x into the clean
// estimate x̂₀ and the noise ε, at a level with √ᾱ = a and √(1−ᾱ) = s.
func convert(p Prediction, a, s, x, out float64) (x0, eps float64) {
	if p == VPrediction {
		return a*x - s*out, a*out + s*x
	}
	return (x - s*out) / a, out
}

// checkFinite reports a NaN or an infinity in v, which would poison
// every later step, as an error the loop turns into a job error.
func checkFinite(what string, v []float32) error {
	for i, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("scheduler: %s[%d] is %v; the model produced a non-finite value", what, i, f)
		}
	}
	return nil
}

func errRowsChanged(before, now int) error {
	return fmt.Errorf("scheduler: latents changed from %d to %d values between steps; a multistep scheduler needs the same rows every step", before, now)
}
