package model

import (
	"strings"
	"testing"

	"reword/backend/internal/sdtest"
	"reword/backend/scheduler"
)

// The manifest of an Optimum export of SD 1.5 or SD 2.1 comes from its
// config files (backend/internal/sdtest writes them as diffusers does):
// the latent and image size from unet/config.json's sample_size and the
// VAE's 8×, the scaling factor from vae_decoder/config.json, the schedule
// (SD 2.1: v-prediction) from scheduler/scheduler_config.json, and
// Optimum's file and tensor names.
func TestDerivedManifestOfSDShapedExports(t *testing.T) {
	for f, want := range map[sdtest.Family]scheduler.Prediction{sdtest.SD15: scheduler.Epsilon, sdtest.SD21: scheduler.VPrediction} {
		cfg := sdtest.Small(f)
		dir := t.TempDir()
		if err := sdtest.Write(dir, cfg); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		side := cfg.SampleSize
		if !m.Derived || m.Family != SD1.Name || m.Latent.Width != side || m.Latent.Height != side || m.Latent.Channels != 4 ||
			m.Image.Width != 8*side || m.Image.Height != 8*side || m.Latent.ScalingFactor != 0.18215 {
			t.Errorf("%s: derived %v family %q latent %+v image %+v", f, m.Derived, m.Family, m.Latent, m.Image)
		}
		s := m.Schedule
		if s.Prediction != want || m.UNet.PredictionType != string(want) || s.BetaSchedule != scheduler.ScaledLinear ||
			s.BetaStart != 0.00085 || s.BetaEnd != 0.012 || s.StepsOffset != 1 || s.TrainTimesteps != 1000 {
			t.Errorf("%s: schedule %+v, UNet prediction %q", f, s, m.UNet.PredictionType)
		}
		if m.TextEncoder.Input != "input_ids" || m.TextEncoder.Output != "last_hidden_state" || m.UNet.Output != "out_sample" ||
			m.VAEDecoder.Input != "latent_sample" || m.VAEDecoder.Output != "sample" || m.VAEEncoder.Input != "sample" {
			t.Errorf("%s: component names %+v %+v %+v %+v", f, m.TextEncoder, m.UNet, m.VAEEncoder, m.VAEDecoder)
		}
		if err := m.UseEncoderOutputs([]string{"latent_parameters"}); err != nil || m.VAEEncoder.OutputKind != "mean_logvar" {
			t.Errorf("%s: Optimum's encoder output: %v, kind %q", f, err, m.VAEEncoder.OutputKind)
		}
	}
}

// An SDXL export is refused by name, not misread as SD 1.x.
func TestSDXLExportIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := sdtest.Write(dir, sdtest.Small(sdtest.SDXL)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "is an SDXL export") {
		t.Fatalf("loading an SDXL export: %v", err)
	}
}
