package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reword/backend/scheduler"
	"reword/shared/edit"
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
	if !m.Derived || m.Image.Width != 768 || m.Latent.Width != 96 || m.Latent.DownsamplingFactor != 8 || m.Latent.ScalingFactor != 0.18215 {
		t.Fatalf("derived manifest: %+v", m)
	}
	if cfg := m.Schedule; cfg.Prediction != scheduler.VPrediction || cfg.StepsOffset != 1 || cfg.Spacing != scheduler.Leading || m.Family != SD1.Name {
		t.Fatalf("schedule %+v of family %q", cfg, m.Family)
	}
	if d := m.SpecDefaults(); d.Steps != 50 || d.Guidance != 7.5 || d.Cross != edit.Fraction(0.8) || len(d.Sizes) != 1 || d.Sizes[0].Width != 768 {
		t.Errorf("spec defaults of a derived manifest: %+v", d)
	}
}

func TestLoadManifestErrors(t *testing.T) {
	for name, c := range map[string]struct{ body, want string }{
		"format":  {`{"format":"other/2"}`, `format "other/2"`},
		"syntax":  {`{"format":`, "not a valid model manifest"},
		"fields":  {`{"format":"reword-model/1","image":{"width":64,"height":64,"channels":3}}`, "latent: want positive"},
		"escapes": {strings.Replace(validManifest, `"unet/model.onnx"`, `"../x.onnx"`, 1), "inside the model folder"},
		"window":  {strings.Replace(validManifest, `"cross_replace":0.9`, `"cross_replace":1.5`, 1), "cross_replace"},
		"changed": {strings.Replace(validManifest, `"cross_replace":0.9`, `"cross_replace":1,"cross_replace_changed":-0.4`, 1), "cross_replace_changed is a fraction in [0, 1], got -0.4"},
		"decode":  {strings.Replace(validManifest, `"cross_replace":0.9`, `"cross_replace":0.9,"decode_norm":"target"`, 1), `defaults.decode_norm is "target"; want one of own, source, swaps`},
	} {
		dir := writeFolder(t, map[string]string{ManifestFile: c.body})
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
	dir := writeFolder(t, map[string]string{ManifestFile: validManifest})
	if m, err := Load(dir); err != nil || m.ID() != "tiny" || m.Defaults.CrossReplace != 0.9 || m.Latent.DownsamplingFactor != 0 {
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

// TestLoadRefusesWhatRunsWouldRefuse: a model.json whose defaults a run
// would refuse, or whose image size its VAE cannot decode to, fails to
// load, naming the field and what is allowed, instead of failing every
// run (some only after the whole run, in the VAE decoder).
func TestLoadRefusesWhatRunsWouldRefuse(t *testing.T) {
	sized := func(image, latent, factor string) string {
		s := strings.Replace(validManifest, `"width":64,"height":64`, image, 1)
		return strings.Replace(s, `"height":16,"width":16`, latent+factor, 1)
	}
	for name, c := range map[string]struct{ body, want string }{
		"guidance":          {strings.Replace(validManifest, `"guidance_scale":7.5`, `"guidance_scale":1e9`, 1), "defaults.guidance_scale is 1e+09; want 0..30"},
		"negative guidance": {strings.Replace(validManifest, `"guidance_scale":7.5`, `"guidance_scale":-1`, 1), "defaults.guidance_scale is -1; want 0..30"},
		"steps":             {strings.Replace(validManifest, `"steps":50`, `"steps":100000`, 1), "defaults.steps is 100000; want 1..150"},
		"no steps":          {strings.Replace(validManifest, `"steps":50`, `"steps":0`, 1), "defaults.steps is 0; want 1..150"},
		"timesteps": {strings.Replace(validManifest, `"num_train_timesteps":1000`, `"num_train_timesteps":10`, 1),
			"defaults.steps is 50 but scheduler.num_train_timesteps is 10; want steps ≤ the training timesteps"},
		"factor": {sized(`"width":128,"height":128`, `"height":16,"width":16`, `,"downsampling_factor":4`),
			"image: 128x128 is not latent 16x16 × latent.downsampling_factor 4; want image width and height 64x64"},
		"uneven":          {sized(`"width":128,"height":64`, `"height":16,"width":16`, ""), "image: 128x64 is not latent 16x16 times one whole factor"},
		"fraction":        {sized(`"width":100,"height":100`, `"height":16,"width":16`, ""), "image: 100x100 is not latent 16x16 times one whole factor"},
		"negative factor": {sized(`"width":64,"height":64`, `"height":16,"width":16`, `,"downsampling_factor":-4`), "latent: want positive"},
	} {
		if _, err := Load(writeFolder(t, map[string]string{ManifestFile: c.body})); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, c.want)
		}
	}
	// The limits themselves load, as does an image of the stated factor.
	edges := strings.Replace(validManifest, `"steps":50,"guidance_scale":7.5`, `"steps":150,"guidance_scale":30`, 1)
	stated := sized(`"width":128,"height":64`, `"height":8,"width":16`, `,"downsampling_factor":8`)
	for name, body := range map[string]string{"edges": edges, "stated factor": stated} {
		if _, err := Load(writeFolder(t, map[string]string{ManifestFile: body})); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestFamilyOwnsWhatTheManifestLeavesOut: a manifest that states no
// schedule and no defaults takes its family's; one that states some keeps
// them (an explicit zero included) and takes the rest from the family.
func TestFamilyOwnsWhatTheManifestLeavesOut(t *testing.T) {
	bare := validManifest[:strings.Index(validManifest, `"scheduler"`)] + `"preview":{"latent_rgb_matrix":[[1,0,0],[0,1,0],[0,0,1],[0,0,0]]}}`
	m, err := Load(writeFolder(t, map[string]string{ManifestFile: bare}))
	if err != nil {
		t.Fatal(err)
	}
	if m.Schedule != SD1.Schedule || m.Defaults.Steps != 50 || m.Defaults.GuidanceScale != 7.5 || m.Defaults.CrossReplace != 0.8 || m.Defaults.SelfReplace != 0.4 {
		t.Errorf("a manifest without schedule or defaults: %+v, %+v", m.Schedule, m.Defaults)
	}
	stated := strings.Replace(validManifest, `"defaults":{"steps":50,"guidance_scale":7.5,"cross_replace":0.9}`,
		`"family":"sd1","defaults":{"steps":20,"guidance_scale":0,"schedulers":["dpmpp-2m","ddim"]}`, 1)
	stated = strings.Replace(stated, `"steps_offset":1`, `"steps_offset":0`, 1)
	m, err = Load(writeFolder(t, map[string]string{ManifestFile: stated}))
	if err != nil {
		t.Fatal(err)
	}
	d := m.SpecDefaults()
	if d.Steps != 20 || d.Guidance != 0 || d.Schedulers[0] != "dpmpp-2m" || d.Cross != edit.Fraction(0.8) || d.CrossChanged != nil || m.Schedule.StepsOffset != 0 {
		t.Errorf("stated values: %+v, steps offset %d", d, m.Schedule.StepsOffset)
	}
	// The changed words' cross window is the manifest's to state.
	m, err = Load(writeFolder(t, map[string]string{ManifestFile: strings.Replace(validManifest, `"cross_replace":0.9`, `"cross_replace":1,"cross_replace_changed":0.4`, 1)}))
	if err != nil {
		t.Fatal(err)
	}
	if d := m.SpecDefaults(); d.Cross != edit.Fraction(1) || d.CrossChanged == nil || *d.CrossChanged != edit.Fraction(0.4) {
		t.Errorf("cross 1 and cross_replace_changed 0.4 stated: cross %v, changed %v", d.Cross, d.CrossChanged)
	}
	// So is the blend on the changed words, off unless stated.
	if d := m.SpecDefaults(); d.BlendChanged {
		t.Error("blend_changed on where the manifest does not state it")
	}
	m, err = Load(writeFolder(t, map[string]string{ManifestFile: strings.Replace(validManifest, `"cross_replace":0.9`, `"cross_replace":0.9,"blend_changed":true`, 1)}))
	if err != nil {
		t.Fatal(err)
	}
	if d := m.SpecDefaults(); !d.BlendChanged || d.BlendReweighted {
		t.Errorf("blend_changed true stated: the spec defaults say blend_changed %v, blend_reweighted %v; want true and false", d.BlendChanged, d.BlendReweighted)
	}
	// The blend of reweights on their words too.
	m, err = Load(writeFolder(t, map[string]string{ManifestFile: strings.Replace(validManifest, `"cross_replace":0.9`, `"cross_replace":0.9,"blend_reweighted":true`, 1)}))
	if err != nil {
		t.Fatal(err)
	}
	if d := m.SpecDefaults(); !d.BlendReweighted || d.BlendChanged {
		t.Errorf("blend_reweighted true stated: the spec defaults say blend_reweighted %v, blend_changed %v; want true and false", d.BlendReweighted, d.BlendChanged)
	}
	// And where the edits take their decoder statistics: their own unless
	// stated.
	if d := m.SpecDefaults(); d.DecodeNorm != "" {
		t.Errorf("decode_norm %q where the manifest does not state it", d.DecodeNorm)
	}
	for stated, want := range map[string]string{"source": edit.DecodeNormSource, "swaps": edit.DecodeNormSwaps, "own": ""} {
		m, err = Load(writeFolder(t, map[string]string{ManifestFile: strings.Replace(validManifest, `"cross_replace":0.9`, `"cross_replace":0.9,"decode_norm":"`+stated+`"`, 1)}))
		if err != nil {
			t.Fatal(err)
		}
		if d := m.SpecDefaults(); d.DecodeNorm != want {
			t.Errorf("decode_norm %q stated: the spec defaults say %q, want %q", stated, d.DecodeNorm, want)
		}
	}
	for name, c := range map[string]struct{ body, want string }{
		"family":    {strings.Replace(validManifest, `"name":"tiny"`, `"name":"tiny","family":"sd9"`, 1), `family "sd9"`},
		"scheduler": {strings.Replace(validManifest, `"cross_replace":0.9`, `"schedulers":["euler"]`, 1), `scheduler "euler"`},
	} {
		if _, err := Load(writeFolder(t, map[string]string{ManifestFile: c.body})); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
}

// TestTinyManifestReadsAsBefore: the committed tiny model's model.json,
// which names no family, still loads, and every default it states is the
// one used; those it leaves out are SD1's. Its id is the one whose earlier
// links edit.BeforeCrossChanged reads as they ran.
func TestTinyManifestReadsAsBefore(t *testing.T) {
	dir := filepath.Join("..", "..", "models", "tiny")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID() != edit.TinyModelID {
		t.Errorf("the tiny model's id is %q; edit.TinyModelID says %q", m.ID(), edit.TinyModelID)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Defaults map[string]any }
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"steps": float64(m.Defaults.Steps), "guidance_scale": m.Defaults.GuidanceScale,
		"cross_replace": m.Defaults.CrossReplace, "self_replace": m.Defaults.SelfReplace,
		"self_replace_max_tokens": float64(m.Defaults.SelfReplaceMaxTokens), "cross_replace_changed": nil,
		"blend_changed": m.Defaults.BlendChanged, "decode_norm": m.Defaults.DecodeNorm, "blend_reweighted": m.Defaults.BlendReweighted,
	}
	if c := m.Defaults.CrossReplaceChanged; c != nil {
		got["cross_replace_changed"] = *c
	}
	family := map[string]any{"steps": 50.0, "guidance_scale": 7.5, "cross_replace": 0.8, "self_replace": 0.4, "self_replace_max_tokens": 0.0, "cross_replace_changed": nil, "blend_changed": false, "decode_norm": "", "blend_reweighted": false}
	for k, v := range got {
		want, stated := file.Defaults[k]
		if !stated {
			want = family[k]
		}
		if v != want {
			t.Errorf("defaults.%s = %v, want %v (stated in model.json: %v)", k, v, want, stated)
		}
	}
}

// A derived manifest takes the VAE encoder's output from the export:
// Optimum's latent_parameters (mean and log-variance) before diffusers'
// latent_sample; a model.json's encoder is never second-guessed.
func TestUseEncoderOutputs(t *testing.T) {
	derived := func() *Manifest {
		m, err := Load(writeFolder(t, map[string]string{}))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := derived()
	if err := m.UseEncoderOutputs([]string{"latent_parameters"}); err != nil || m.VAEEncoder.Output != "latent_parameters" || m.VAEEncoder.OutputKind != "mean_logvar" {
		t.Errorf("Optimum export: %v, output %q kind %q", err, m.VAEEncoder.Output, m.VAEEncoder.OutputKind)
	}
	m = derived()
	if err := m.UseEncoderOutputs([]string{"latent_sample"}); err != nil || m.VAEEncoder.Output != "latent_sample" || m.VAEEncoder.OutputKind != "sample" {
		t.Errorf("diffusers export: %v, output %q kind %q", err, m.VAEEncoder.Output, m.VAEEncoder.OutputKind)
	}
	if err := derived().UseEncoderOutputs([]string{"z"}); err == nil || !strings.Contains(err.Error(), `"latent_parameters" (Optimum's export)`) {
		t.Errorf("unknown output: %v", err)
	}
	stated, err := Load(writeFolder(t, map[string]string{ManifestFile: validManifest}))
	if err != nil {
		t.Fatal(err)
	}
	before := stated.VAEEncoder
	if err := stated.UseEncoderOutputs([]string{"latent_sample"}); err != nil || stated.VAEEncoder != before {
		t.Errorf("model.json encoder changed to %+v (%v)", stated.VAEEncoder, err)
	}
}
