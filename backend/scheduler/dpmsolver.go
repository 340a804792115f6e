package scheduler

import "math"

// DPMSolver is DPM-Solver++ 2M (Lu et al. 2022, "DPM-Solver++: Fast Solver
// for Guided Sampling"), the second-order multistep solver in data
// (x̂₀) prediction that diffusers calls DPMSolverMultistepScheduler with
// algorithm_type "dpmsolver++" and solver_order 2. It reaches DDIM's
// 50-step quality in about 20–25 steps.
//
// With λ = log(√ᾱ/√(1−ᾱ)), h = λ_s − λ_t and the clean estimates D₀ of this
// step and D₋₁ of the previous one (r = h₋₁/h):
//
//	x_s = (σ_s/σ_t)·x_t − α_s(e^{−h} − 1)·(D₀ + (D₀ − D₋₁)/(2r))
//
// The first step has no history and the last step lands on the clean
// image (σ = 0); both are first order (DDIM), as in diffusers with
// final_sigmas_type "zero". Its timesteps are Config.DPMSolverTimesteps,
// which are not DDIM's for the same number of steps.
type DPMSolver struct {
	noiseLevels
	prevX0     []float32 // D₋₁ of every latent value
	prevLambda float64
}

// NewDPMSolver returns a DPM-Solver++ 2M scheduler for a run of steps steps.
func NewDPMSolver(cfg Config, steps int) (*DPMSolver, error) {
	n, err := newNoiseLevels(cfg, steps, Config.DPMSolverTimesteps)
	if err != nil {
		return nil, err
	}
	return &DPMSolver{noiseLevels: n}, nil
}

// Name implements Scheduler.
func (d *DPMSolver) Name() string { return DPMSolverName }

// Step implements Scheduler.
func (d *DPMSolver) Step(i int, out, x, denoised []float32) error {
	if err := d.checkStep(i, out, x, denoised); err != nil {
		return err
	}
	if d.prevX0 != nil && len(d.prevX0) != len(x) {
		return errRowsChanged(len(d.prevX0), len(x))
	}
	ab := d.alphasCum[d.timesteps[i]]
	at, st := math.Sqrt(ab), math.Sqrt(1-ab)
	lt := math.Log(at) - math.Log(st)
	last := i == len(d.timesteps)-1
	if d.prevX0 == nil {
		d.prevX0 = make([]float32, len(x))
	}
	var as, ss, em1, half float64 // target level, e^{−h}−1, second-order weight
	if !last {
		abs := d.alphasCum[d.timesteps[i+1]]
		as, ss = math.Sqrt(abs), math.Sqrt(1-abs)
		h := math.Log(as) - math.Log(ss) - lt
		em1 = math.Expm1(-h)
		if i > 0 {
			r := (lt - d.prevLambda) / h
			half = 0.5 / r
		}
	}
	for k := range x {
		x0, _ := convert(d.cfg.Prediction, at, st, float64(x[k]), float64(out[k]))
		if denoised != nil {
			denoised[k] = float32(x0)
		}
		if last {
			x[k] = float32(x0)
		} else {
			d1 := x0 - float64(d.prevX0[k])
			x[k] = float32(ss/st*float64(x[k]) - as*em1*(x0+half*d1))
		}
		d.prevX0[k] = float32(x0)
	}
	d.prevLambda = lt
	d.next++
	return checkFinite("latent", x)
}
