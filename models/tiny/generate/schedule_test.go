package generate

import (
	"math"
	"testing"
)

// Reference values from diffusers' DDIMScheduler(beta_schedule="scaled_linear",
// beta_start=0.00085, beta_end=0.012), computed in float64.
func TestScaledLinearMatchesSD(t *testing.T) {
	s, err := ScaledLinear(1000, 0.00085, 0.012, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t    int
		want float64
	}{{0, 0.99915}, {999, 0.0046601}} {
		if got := s.AlphasCumprod[c.t]; math.Abs(got-c.want) > 5e-5 {
			t.Errorf("ᾱ[%d] = %.6f, want %.5f", c.t, got, c.want)
		}
	}
	ts, err := s.Timesteps(50)
	if err != nil {
		t.Fatal(err)
	}
	if ts[0] != 981 || ts[49] != 1 || ts[1] != 961 {
		t.Errorf("timesteps = %v…%v, want 981, 961 … 1", ts[:2], ts[49])
	}
}

// A DDIM step with the true noise must land exactly on the noised clean
// sample at the previous timestep.
func TestDDIMStepWithTrueNoise(t *testing.T) {
	s, _ := ScaledLinear(1000, 0.00085, 0.012, 1)
	x0, eps := []float64{0.7, -1.2, 0.1}, []float32{0.3, -0.5, 1.5}
	tt, steps := 501, 20
	x := make([]float32, 3)
	for i := range x {
		x[i] = float32(math.Sqrt(s.AlphasCumprod[tt])*x0[i] + math.Sqrt(1-s.AlphasCumprod[tt])*float64(eps[i]))
	}
	if err := s.DDIMStep(x, eps, tt, steps); err != nil {
		t.Fatal(err)
	}
	ap := s.AlphasCumprod[tt-50]
	for i := range x {
		want := math.Sqrt(ap)*x0[i] + math.Sqrt(1-ap)*float64(eps[i])
		if math.Abs(float64(x[i])-want) > 1e-5 {
			t.Errorf("x[%d] = %f, want %f", i, x[i], want)
		}
	}
}

func TestScheduleRejectsBadArguments(t *testing.T) {
	if _, err := ScaledLinear(1, 0.1, 0.2, 0); err == nil {
		t.Error("1 training step accepted")
	}
	if _, err := ScaledLinear(1000, 0.02, 0.01, 0); err == nil {
		t.Error("decreasing betas accepted")
	}
	s, _ := ScaledLinear(1000, 0.00085, 0.012, 1)
	if _, err := s.Timesteps(0); err == nil {
		t.Error("0 steps accepted")
	}
	if err := s.DDIMStep(make([]float32, 2), make([]float32, 3), 10, 10); err == nil {
		t.Error("mismatched lengths accepted")
	}
}
