package scheduler

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// Float64 values of SD 1.x's ᾱ, computed independently of this package.
func TestAlphasCumprodMatchesSpec(t *testing.T) {
	ac := SD1().AlphasCumprod()
	if len(ac) != 1000 {
		t.Fatalf("len = %d", len(ac))
	}
	for _, c := range []struct {
		t    int
		want float64
	}{
		{0, 0.99915000}, {1, 0.99829603}, {20, 0.98131436}, {500, 0.27633268},
		{960, 0.00736524}, {980, 0.00584378}, {981, 0.00577550}, {999, 0.00466010},
	} {
		if d := math.Abs(ac[c.t] - c.want); d > 5e-9 {
			t.Errorf("ᾱ_%d = %.10f, want %.8f", c.t, ac[c.t], c.want)
		}
	}
}

func TestTimesteps(t *testing.T) {
	want := func(first, step, n int) []int {
		out := make([]int, n)
		for k := range out {
			out[k] = first - k*step
		}
		return out
	}
	cfg := SD1()
	got, err := cfg.Timesteps(50)
	if err != nil || !slices.Equal(got, want(981, 20, 50)) {
		t.Fatalf("offset 1: %v %v", got, err)
	}
	cfg.StepsOffset = 0
	if got, _ := cfg.Timesteps(50); !slices.Equal(got, want(980, 20, 50)) {
		t.Fatalf("offset 0: %v", got)
	}
	cfg.Spacing = Trailing
	if got, _ := cfg.Timesteps(50); !slices.Equal(got, want(999, 20, 50)) {
		t.Fatalf("trailing: %v", got)
	}
	cfg.Spacing = Linspace
	if got, _ := cfg.Timesteps(4); !slices.Equal(got, []int{999, 666, 333, 0}) {
		t.Fatalf("linspace: %v", got)
	}
	// Ties round half to even, as numpy's round does in
	// DDIMScheduler.set_timesteps: linspace(0, 999, 7) has 832.5 and
	// 166.5; 1000 − k·62.5 has 812.5, 562.5, 312.5 and 62.5.
	if got, _ := cfg.Timesteps(7); !slices.Equal(got, []int{999, 832, 666, 500, 333, 166, 0}) {
		t.Fatalf("linspace, 7 steps: %v", got)
	}
	cfg.Spacing = Trailing
	if got, _ := cfg.Timesteps(16); !slices.Equal(got, trailing16) {
		t.Fatalf("trailing, 16 steps: %v", got)
	}
	for _, bad := range []int{0, -1, 1001} {
		if _, err := SD1().Timesteps(bad); err == nil || !strings.Contains(err.Error(), "steps") {
			t.Errorf("%d steps: err = %v", bad, err)
		}
	}
}

// trailing16 is diffusers' trailing spacing of 16 steps of 1000:
// round(1000 − k·62.5) − 1 with ties to even.
var trailing16 = []int{999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61}

// The DPM-Solver++ timesteps, derived by hand from the formulas of
// diffusers' DPMSolverMultistepScheduler.set_timesteps (N training
// timesteps, lambda_min_clipped −∞): leading is
// k·(N // (steps+1)) + offset for k = steps … 1; trailing is
// round(N − k·N/steps) − 1 for k = 0 … steps−1; linspace is
// round(j·(N−1)/steps) for j = steps … 1; numpy rounds ties to even.
func TestDPMSolverTimestepsMatchDiffusers(t *testing.T) {
	down := func(first, step, n int) []int {
		out := make([]int, n)
		for k := range out {
			out[k] = first - k*step
		}
		return out
	}
	with := func(spacing Spacing, offset int) Config {
		c := SD1()
		c.Spacing, c.StepsOffset = spacing, offset
		return c
	}
	for _, c := range []struct {
		name  string
		cfg   Config
		steps int
		want  []int
	}{
		// 1000 // 51 = 19: 50·19 + 1 = 951 down to 1·19 + 1 = 20.
		{"leading 50, offset 1", SD1(), 50, down(951, 19, 50)},
		// 1000 // 21 = 47: 20·47 + 1 = 941 down to 48.
		{"leading 20, offset 1", SD1(), 20, down(941, 47, 20)},
		{"leading 10, offset 1", SD1(), 10, []int{901, 811, 721, 631, 541, 451, 361, 271, 181, 91}},
		{"leading 1, offset 1", SD1(), 1, []int{501}},
		// 1000 // 26 = 38: 25·38 = 950 down to 38.
		{"leading 25, offset 0", with(Leading, 0), 25, down(950, 38, 25)},
		{"trailing 16", with(Trailing, 1), 16, trailing16},
		// The list diffusers issue #9261 prints for 13 trailing steps.
		{"trailing 13", with(Trailing, 1), 13, []int{999, 922, 845, 768, 691, 614, 537, 461, 384, 307, 230, 153, 76}},
		// linspace(0, 999, 5) = 0, 249.75, 499.5, 749.25, 999, without 0.
		{"linspace 4", with(Linspace, 1), 4, []int{999, 749, 500, 250}},
		// Steps of 166.5: 832.5 and 166.5 round down to even.
		{"linspace 6", with(Linspace, 1), 6, []int{999, 832, 666, 500, 333, 166}},
		// Steps of 49.95.
		{"linspace 20", with(Linspace, 1), 20, []int{999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50}},
	} {
		got, err := c.cfg.DPMSolverTimesteps(c.steps)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	// The scheduler runs them; DDIM keeps its own (981 … 1 for 50 steps).
	dpm, _ := New(DPMSolverName, SD1(), 50)
	ddim, _ := New(DDIMName, SD1(), 50)
	if dpm.Timesteps()[0] != 951 || ddim.Timesteps()[0] != 981 {
		t.Errorf("first timesteps: DPM-Solver++ %d, DDIM %d; want 951 and 981", dpm.Timesteps()[0], ddim.Timesteps()[0])
	}
	// 1000 steps leave 1000 // 1001 = 0 timesteps per step; 999 steps with
	// offset 1 start at 1000, past the last training timestep.
	if _, err := SD1().DPMSolverTimesteps(1000); err == nil || !strings.Contains(err.Error(), "fewer steps") {
		t.Errorf("1000 leading steps: %v", err)
	}
	if _, err := SD1().DPMSolverTimesteps(999); err == nil || !strings.Contains(err.Error(), "steps_offset") {
		t.Errorf("999 leading steps with offset 1: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"beta_start":          func(c *Config) { c.BetaStart = 0.02 },
		"beta_schedule":       func(c *Config) { c.BetaSchedule = "cosine" },
		"timestep_spacing":    func(c *Config) { c.Spacing = "odd" },
		"prediction_type":     func(c *Config) { c.Prediction = "sample" },
		"steps_offset":        func(c *Config) { c.StepsOffset = -1 },
		"num_train_timesteps": func(c *Config) { c.TrainTimesteps = 1 },
	} {
		c := SD1()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := New("euler", SD1(), 10); err == nil || !strings.Contains(err.Error(), "ddim, dpmpp-2m") {
		t.Errorf("unknown scheduler: %v", err)
	}
}

// With the true noise as model output, DDIM moves a noised latent exactly
// along x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, ending at ᾱ₀ (set_alpha_to_one off).
func TestDDIMFollowsExactNoise(t *testing.T) {
	d, err := NewDDIM(SD1(), 50)
	if err != nil {
		t.Fatal(err)
	}
	x0, eps := []float64{0.5, -1.2, 2}, []float64{0.3, -0.7, 1.1}
	level := func(ab float64) []float32 {
		out := make([]float32, len(x0))
		for k := range out {
			out[k] = float32(math.Sqrt(ab)*x0[k] + math.Sqrt(1-ab)*eps[k])
		}
		return out
	}
	ac := SD1().AlphasCumprod()
	x := level(ac[981])
	out := []float32{0.3, -0.7, 1.1}
	den := make([]float32, 3)
	for i := range d.Timesteps() {
		if err := d.Step(i, out, x, den); err != nil {
			t.Fatal(err)
		}
	}
	want := level(ac[0])
	for k := range x {
		if math.Abs(float64(x[k]-want[k])) > 1e-4 || math.Abs(float64(den[k])-x0[k]) > 1e-4 {
			t.Fatalf("x = %v, want %v; x̂₀ = %v, want %v", x, want, den, x0)
		}
	}
	if err := d.Step(50, out, x, nil); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("step past the end: %v", err)
	}
}

func TestDDIMStepOrderAndSizes(t *testing.T) {
	d, _ := NewDDIM(SD1(), 10)
	x, out := make([]float32, 4), make([]float32, 4)
	if err := d.Step(1, out, x, nil); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("skipped step: %v", err)
	}
	if err := d.Step(0, out[:3], x, nil); err == nil || !strings.Contains(err.Error(), "must match") {
		t.Errorf("size mismatch: %v", err)
	}
	out[2] = float32(math.NaN())
	if err := d.Step(0, out, x, nil); err == nil || !strings.Contains(err.Error(), "non-finite") {
		t.Errorf("NaN output: %v", err)
	}
}

// Inverting with a fixed ε and sampling back with the same ε is exact, and
// with steps_offset 0 the first inversion step (t = 0) is the identity
// (docs/algorithm.md, section 9: both levels are ᾱ₀).
func TestDDIMInvertRoundTrip(t *testing.T) {
	cfg := SD1()
	cfg.StepsOffset = 0
	inv, _ := NewDDIM(cfg, 50)
	x := []float32{0.25, -0.5, 1}
	start := slices.Clone(x)
	eps := []float32{0.1, 0.2, -0.3}
	if err := inv.Invert(49, eps, x); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, start) {
		t.Fatalf("inversion step at t=0 changed %v to %v", start, x)
	}
	for i := 48; i >= 0; i-- {
		if err := inv.Invert(i, eps, x); err != nil {
			t.Fatal(err)
		}
	}
	fwd, _ := NewDDIM(cfg, 50)
	for i := range fwd.Timesteps() {
		if err := fwd.Step(i, eps, x, nil); err != nil {
			t.Fatal(err)
		}
	}
	for k := range x {
		if math.Abs(float64(x[k]-start[k])) > 1e-4 {
			t.Fatalf("round trip %v → %v", start, x)
		}
	}
}

// gaussianModel is the exact ε-prediction for data x₀ ~ N(mu, s²) per value:
// then the probability-flow ODE keeps the standardised value
// (x_t − √ᾱ·mu)/√(ᾱs² + 1 − ᾱ) constant, which gives exact solutions to
// compare samplers against.
type gaussianModel struct{ mu, s float64 }

func (g gaussianModel) eps(ab float64, x []float32, out []float32) {
	for k := range x {
		out[k] = float32(math.Sqrt(1-ab) * (float64(x[k]) - math.Sqrt(ab)*g.mu) / (ab*g.s*g.s + 1 - ab))
	}
}

func (g gaussianModel) standardised(ab, x float64) float64 {
	return (x - math.Sqrt(ab)*g.mu) / math.Sqrt(ab*g.s*g.s+1-ab)
}

// sampleError runs every step but the last of a scheduler against the
// Gaussian model and returns the largest deviation from the exact ODE
// solution at the last step's timestep. (The last step is first order in
// both schedulers and lands on different levels, so it is left out.)
func sampleError(t *testing.T, s Scheduler) float64 {
	t.Helper()
	g := gaussianModel{mu: 0.3, s: 0.6}
	ac := SD1().AlphasCumprod()
	z := []float64{-1.5, -0.2, 0.7, 2.1}
	ab := ac[s.Timesteps()[0]]
	x := make([]float32, len(z))
	for k := range x {
		x[k] = float32(math.Sqrt(ab)*g.mu + math.Sqrt(ab*g.s*g.s+1-ab)*z[k])
	}
	out := make([]float32, len(x))
	ts := s.Timesteps()
	for i := range len(ts) - 1 {
		g.eps(ac[ts[i]], x, out)
		if err := s.Step(i, out, x, nil); err != nil {
			t.Fatal(err)
		}
	}
	worst, finalAlpha := 0.0, ac[ts[len(ts)-1]]
	for k := range x {
		want := math.Sqrt(finalAlpha)*g.mu + math.Sqrt(finalAlpha*g.s*g.s+1-finalAlpha)*z[k]
		worst = max(worst, math.Abs(float64(x[k])-want))
	}
	return worst
}

func TestDPMSolverIsSecondOrder(t *testing.T) {
	// Both solvers run on DDIM's grid of timesteps, so that every run ends
	// at the same timestep and the errors compare the updates alone
	// (DPM-Solver++'s own grid stops at a step count's ratio + 1, which
	// moves with the number of steps).
	errAt := func(name string, steps int) float64 {
		n, err := newNoiseLevels(SD1(), steps, Config.Timesteps)
		if err != nil {
			t.Fatal(err)
		}
		var s Scheduler = &DDIM{n}
		if name == DPMSolverName {
			s = &DPMSolver{noiseLevels: n}
		}
		return sampleError(t, s)
	}
	// The Gaussian problem is stiff near t = 0, so the orders show once
	// the steps are fine enough; 20 steps is the regime the app uses.
	dpm20, ddim20 := errAt(DPMSolverName, 20), errAt(DDIMName, 20)
	dpm160, ddim160 := errAt(DPMSolverName, 160), errAt(DDIMName, 160)
	dpm320, ddim320 := errAt(DPMSolverName, 320), errAt(DDIMName, 320)
	t.Logf("max error: DPM-Solver++ 2M %.2e / %.2e / %.2e, DDIM %.2e / %.2e / %.2e at 20 / 160 / 320 steps",
		dpm20, dpm160, dpm320, ddim20, ddim160, ddim320)
	if !(dpm20 < ddim20) {
		t.Errorf("DPM-Solver++ 2M at 20 steps (%.2e) should beat DDIM (%.2e)", dpm20, ddim20)
	}
	if r := dpm160 / dpm320; !(r > 3) {
		t.Errorf("halving the step size should cut DPM-Solver++ 2M's error about 4× (second order), got %.2f×", r)
	}
	if r := ddim160 / ddim320; !(r > 1.7 && r < 2.3) {
		t.Errorf("DDIM is first order: expected about 2× from halving the steps, got %.2f×", r)
	}
}

func TestDPMSolverRejectsChangedRows(t *testing.T) {
	s, _ := NewDPMSolver(SD1(), 5)
	if err := s.Step(0, make([]float32, 4), make([]float32, 4), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Step(1, make([]float32, 2), make([]float32, 2), nil); err == nil || !strings.Contains(err.Error(), "same rows") {
		t.Errorf("changed rows: %v", err)
	}
}
