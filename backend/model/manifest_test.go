package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reword/backend/diffusion/scheduler"
)

// writeFolder makes a model folder with placeholder ONNX files.
func writeFolder(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, rel := range Layout {
		files[rel] = "onnx"
	}
	for rel, body := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDerivesSDManifest(t *testing.T) {
	dir := writeFolder(t, map[string]string{
		"scheduler/scheduler_config.json": `{"_class_name":"PNDMScheduler","beta_start":0.00085,"beta_end":0.012,"beta_schedule":"scaled_linear","steps_offset":0,"prediction_type":"v_prediction"}`,
		"unet/config.json":                `{"sample_size":96}`,
	})
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Derived || m.Image.Width != 768 || m.Latent.Width != 96 || m.Latent.ScalingFactor != 0.18215 {
		t.Fatalf("derived manifest: %+v", m)
	}
	cfg, err := m.SchedulerConfig()
	if err != nil || cfg.Prediction != scheduler.VPrediction || cfg.StepsOffset != 1 || cfg.Spacing != scheduler.Leading {
		t.Fatalf("scheduler config %+v, %v", cfg, err)
	}
}

func TestLoadManifestErrors(t *testing.T) {
	for name, c := range map[string]struct{ body, want string }{
		"format":  {`{"format":"other/2"}`, `format "other/2"`},
		"syntax":  {`{"format":`, "not a valid model manifest"},
		"fields":  {`{"format":"reword-model/1","image":{"width":64,"height":64,"channels":3}}`, "latent: want positive"},
		"escapes": {strings.Replace(validManifest, `"unet/model.onnx"`, `"../x.onnx"`, 1), "inside the model folder"},
		"window":  {strings.Replace(validManifest, `"cross_replace":0.9`, `"cross_replace":1.5`, 1), "cross_replace"},
	} {
		dir := writeFolder(t, map[string]string{ManifestFile: c.body})
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
	dir := writeFolder(t, map[string]string{ManifestFile: validManifest})
	if m, err := Load(dir); err != nil || m.ID() != "tiny" || m.Defaults.CrossReplace != 0.9 {
		t.Fatalf("valid manifest: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "vae_decoder/model.onnx")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "vae_decoder") {
		t.Errorf("missing decoder: %v", err)
	}
}

const validManifest = `{"format":"reword-model/1","name":"tiny",
 "image":{"width":64,"height":64,"channels":3},
 "latent":{"channels":4,"height":16,"width":16,"scaling_factor":0.8},
 "text_encoder":{"file":"text_encoder/model.onnx","input":"input_ids","output":"last_hidden_state"},
 "unet":{"file":"unet/model.onnx","output":"out_sample","prediction_type":"epsilon"},
 "vae_encoder":{"file":"vae_encoder/model.onnx","input":"sample","output":"latent_parameters","output_kind":"mean_logvar"},
 "vae_decoder":{"file":"vae_decoder/model.onnx","input":"latent_sample","output":"sample"},
 "scheduler":{"num_train_timesteps":1000,"beta_start":0.00085,"beta_end":0.012,"beta_schedule":"scaled_linear","prediction_type":"epsilon","timestep_spacing":"leading","steps_offset":1},
 "defaults":{"steps":50,"guidance_scale":7.5,"cross_replace":0.9},
 "preview":{"latent_rgb_matrix":[[1,0,0],[0,1,0],[0,0,1],[0,0,0]],"latent_rgb_bias":[0,0,0]}}`
