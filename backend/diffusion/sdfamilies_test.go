package diffusion

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"

	"reword/backend/graph"
	"reword/backend/internal/fp16export"
	"reword/backend/internal/sdtest"
	"reword/backend/scheduler"
	"reword/models/tiny/scene"
	"reword/shared/clip"
	"reword/shared/edit"
)

// instrumentAndLoad instruments the export in dir at its own latent size
// (what `reword instrument -latent 16x16` does; Optimum's UNet accepts any
// size) and loads it, one thread, with a source cache of cacheBytes (-1:
// none), closed when the test ends.
func instrumentAndLoad(t *testing.T, dir string, cfg sdtest.Config, cacheBytes int64) *Engine {
	t.Helper()
	latent := graph.Size{Height: cfg.SampleSize, Width: cfg.SampleSize}
	if _, _, err := graph.InstrumentDir(dir, graph.Options{Latent: latent}); err != nil {
		t.Fatal(err)
	}
	e, err := Load(dir, Options{Threads: 1, CacheBytes: cacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// loadSD writes a small SD-shaped Optimum export of family f
// (backend/internal/sdtest), instruments its UNet at its own latent size
// (what `reword instrument -latent 16x16` does; Optimum's UNet accepts any
// size) and loads it with the manifest derived from its configs.
func loadSD(t *testing.T, f sdtest.Family) (*Engine, sdtest.Config) {
	t.Helper()
	dir, cfg := writeSD(t, f)
	return instrumentAndLoad(t, dir, cfg, -1), cfg
}

// The SD-1.5- and SD-2.1-shaped exports load with derived manifests (the
// 2.1 one v-prediction, 1024/16-wide text states) and run every kind of job
// end to end: generate, edit, photo inversion. Their images are noise, so
// what is checked is shapes, determinism, that prompts are padded as the
// export's tokenizer pads them (SD 2.1: "!"), that neutral controls leave
// the UNet exactly as exported, and that Prompt-to-Prompt's controls reach
// it.
func TestSDShapedFamiliesRunEndToEnd(t *testing.T) {
	for _, f := range []sdtest.Family{sdtest.SD15, sdtest.SD21} {
		t.Run(string(f), func(t *testing.T) {
			e, cfg := loadSD(t, f)
			m := e.Manifest()
			side := 8 * cfg.SampleSize
			if !m.Derived || m.Image.Width != side || m.Latent.Width != cfg.SampleSize || string(m.Schedule.Prediction) != cfg.Prediction ||
				m.VAEEncoder.Output != "latent_parameters" || e.hidden != cfg.CrossDim {
				t.Fatalf("manifest: derived %v, %d px, latent %d, %s, encoder output %q, text width %d", m.Derived, m.Image.Width,
					m.Latent.Width, m.Schedule.Prediction, m.VAEEncoder.Output, e.hidden)
			}
			if f == sdtest.SD21 && m.Schedule.Prediction != scheduler.VPrediction {
				t.Fatalf("SD 2.1 predicts %s", m.Schedule.Prediction)
			}
			checkPadding(t, e, map[sdtest.Family]int32{sdtest.SD15: clip.EOS, sdtest.SD21: 0}[f])
			checkNeutralIsNoOp(t, e)
			checkSDGenerate(t, e, side)
			checkSDEdit(t, e)
			checkSDPhoto(t, e)
		})
	}
}

// checkPadding: prompts reach the text encoder padded with the export's
// pad token, pad (SD 2.x's tokenizer: "!", id 0; SD 1.x's: EOS), as its
// own tokenizer pads them: the states are those of the encoder run on
// those ids.
func checkPadding(t *testing.T, e *Engine, pad int32) {
	t.Helper()
	if e.texts[0].pad != pad {
		t.Fatalf("pads with %d, want %d", e.texts[0].pad, pad)
	}
	const prompt = "a photo of a cat"
	got, err := e.encode(context.Background(), []string{prompt})
	if err != nil {
		t.Fatal(err)
	}
	want := runEncoder(t, e.texts[0].s, e.tok.Encode(prompt).PaddedWith(clip.ContextLength, pad))
	if !slices.Equal(got.hidden, want[e.manifest.TextEncoder.Output]) {
		t.Errorf("the text states are not those of the prompt padded with %d", pad)
	}
}

// checkSDGenerate: one image of the model's size, the same bytes for the
// same seed, other bytes for another seed or sampler.
func checkSDGenerate(t *testing.T, e *Engine, side int) {
	t.Helper()
	ctx := context.Background()
	req := GenerateRequest{Prompt: "a photo of a cat", Seed: 3, Steps: 3}
	a, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Images) != 1 || len(a.Images[0].RGB) != 3*side*side || !bytes.Equal(a.Images[0].RGB, b.Images[0].RGB) {
		t.Fatalf("generate: %d images, or two runs of one seed differ", len(a.Images))
	}
	req.Seed = 4
	c, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Images[0].RGB, c.Images[0].RGB) {
		t.Fatal("seeds 3 and 4 gave the same image")
	}
	// The other sampler, on ε and on v-prediction.
	req.Scheduler = "dpmpp-2m"
	d, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Images[0].RGB) != 3*side*side || bytes.Equal(d.Images[0].RGB, c.Images[0].RGB) {
		t.Fatal("DPM-Solver++ gave no image of the model's size, or DDIM's")
	}
}

// checkSDEdit: an edit is deterministic; its controls change the target and
// leave the source; with the cross window over the whole run a word swap
// makes the target's cross-attention maps the source's in every layer.
func checkSDEdit(t *testing.T, e *Engine) {
	t.Helper()
	ctx := context.Background()
	s := edit.Spec{Source: "a photo of a cat", Targets: []string{"a photo of a dog"}, Seed: ptr(uint64(7)), Steps: ptr(3),
		Cross: &edit.Window{Start: 0, End: 1}}
	p2p, err := e.Edit(ctx, s, RunOptions{HeatMaps: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Edit(ctx, s, RunOptions{HeatMaps: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := e.Edit(ctx, s, RunOptions{HeatMaps: true, Baseline: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p2p.Images) != 2 || !bytes.Equal(p2p.Images[1].RGB, again.Images[1].RGB) {
		t.Fatal("two runs of one edit differ")
	}
	if bytes.Equal(p2p.Images[1].RGB, base.Images[1].RGB) || !bytes.Equal(p2p.Images[0].RGB, base.Images[0].RGB) {
		t.Fatal("the controls left the target as the baseline, or changed the source")
	}
	if d := mapsDiff(p2p); d > 1e-6 {
		t.Errorf("controlled target's maps differ from the source's by %g", d)
	}
	if d := mapsDiff(base); d < 1e-4 {
		t.Errorf("uncontrolled target's maps equal the source's (max difference %g)", d)
	}
	// An SD-shaped decoder (GroupNorms exported as InstanceNormalization,
	// attention in its mid-block) decodes the target with the source's
	// statistics too: other pixels for the target, the source as it was.
	s.DecodeNorm = edit.DecodeNormSource
	shared, err := e.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared.Images[0].RGB, p2p.Images[0].RGB) || bytes.Equal(shared.Images[1].RGB, p2p.Images[1].RGB) {
		t.Error("decode_norm source changed the source image, or left the target as its own statistics decode it")
	}
}

// mapsDiff is the largest difference between the heat maps of rows 0 and 1.
func mapsDiff(r *Result) float32 {
	var d float32
	for k, m := range r.HeatMaps[0].Maps {
		for q, v := range m {
			d = max(d, v-r.HeatMaps[1].Maps[k][q], r.HeatMaps[1].Maps[k][q]-v)
		}
	}
	return d
}

// checkSDPhoto: a photo is fitted to the model's size and inverted; Direct
// Inversion's source row is exactly the VAE round trip, and a second run
// gives the same bytes.
func checkSDPhoto(t *testing.T, e *Engine) {
	t.Helper()
	ctx := context.Background()
	data, _, caption := drawnPhoto(t, scene.Red, scene.Circle, scene.Left, 3)
	rt, err := e.RoundTrip(ctx, Photo{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	s := photoSpec(3, caption, edit.InversionDirect, data, "a green circle on the left")
	first, err := e.Edit(ctx, s, RunOptions{Photo: &Photo{Data: data}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.Edit(ctx, s, RunOptions{Photo: &Photo{Data: data}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Images[0].RGB, rt.RGB) {
		t.Fatalf("direct reconstruction differs from the VAE round trip (PSNR %.1f dB)", psnrRGB(first.Images[0].RGB, rt.RGB))
	}
	for r := range first.Images {
		if !bytes.Equal(first.Images[r].RGB, second.Images[r].RGB) {
			t.Fatalf("row %d differs between two inversions of one photo", r)
		}
	}
	if bytes.Equal(first.Images[1].RGB, first.Images[0].RGB) {
		t.Fatal("the target is the reconstruction: the edit did nothing")
	}
}

// An fp16 copy of the SD-2.1-shaped export (float16 weights, inputs and
// outputs and a float16 Softmax, as `--fp16` exports come;
// backend/internal/fp16export): it loads with float32 at every boundary,
// neutral controls leave its UNet bit for bit as exported, and generation
// is deterministic and within the tiny model's fp16 bound of the float32
// model's (measured: 53.7 dB at 2 steps; at 3 steps 53.9 dB, and 53.8 with
// the Softmax upcast). One variant only: fp16 ops are slow on the CPU, and
// the tiny model's tests cover the upcast Softmax.
func TestFP16SDShapedExport(t *testing.T) {
	ref, cfg := loadSD(t, sdtest.SD21)
	ctx := context.Background()
	req := GenerateRequest{Prompt: "a photo of a cat", Seed: 3, Steps: 2}
	want, err := ref.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := loadFP16SD(t, cfg, false)
	checkFP16UNet(t, e, false)
	checkNeutralIsNoOp(t, e)
	a, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Images[0].RGB, b.Images[0].RGB) {
		t.Fatal("two fp16 runs of one seed differ")
	}
	if p := psnrRGB(a.Images[0].RGB, want.Images[0].RGB); p < minFP16PSNR {
		t.Errorf("fp16 image %.1f dB from the float32 one, want ≥ %.0f", p, minFP16PSNR)
	}
}

// loadFP16SD writes the export of cfg, converts its four models to fp16
// and loads it, instrumented at its own latent size.
func loadFP16SD(t *testing.T, cfg sdtest.Config, upcast bool) *Engine {
	t.Helper()
	dir := t.TempDir()
	if err := sdtest.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"text_encoder", "unet", "vae_encoder", "vae_decoder"} {
		path := filepath.Join(dir, sub, "model.onnx")
		if err := fp16export.ConvertFile(path, path, fp16export.Options{UpcastSoftmax: upcast}); err != nil {
			t.Fatal(err)
		}
	}
	return instrumentAndLoad(t, dir, cfg, -1)
}

// An optimum export's UNet has a dynamic sample height and width, so the
// engine must give the instrumentation the manifest's latent size when it
// instruments the UNet itself (Options.Instrument, as `reword serve`,
// `generate` and `edit` load models): without it every uninstrumented
// optimum export was refused.
func TestEngineInstrumentsDynamicExport(t *testing.T) {
	dir, cfg := writeSD(t, sdtest.SD15)
	e, err := Load(dir, Options{Threads: 1, CacheBytes: -1, Instrument: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d, err := graph.ReadDescription(filepath.Join(dir, "unet", graph.InstrumentedFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := (graph.Size{Height: cfg.SampleSize, Width: cfg.SampleSize}); d.Latent != want {
		t.Errorf("instrumented at latent %v, want the manifest's %v", d.Latent, want)
	}
	if _, err := e.Generate(context.Background(), GenerateRequest{Prompt: "a photo of a cat", Seed: 1, Steps: 2}, RunOptions{}, nil); err != nil {
		t.Fatal(err)
	}
}

// writeSD writes a small SD-shaped optimum export of family f into a
// temporary folder.
func writeSD(t *testing.T, f sdtest.Family) (string, sdtest.Config) {
	t.Helper()
	cfg := sdtest.Small(f)
	dir := t.TempDir()
	if err := sdtest.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

// An export whose UNet takes a scalar (rank-0) timestep, as some do, runs:
// the engine feeds a new rank-0 tensor every step (onnxruntime_go's
// NewTensor refuses an empty shape), neutral controls leave the UNet as
// exported, and the images are those of the same export with Optimum's
// [steps] timestep, bit for bit (the UNet broadcasts either over the
// batch).
func TestScalarTimestepExport(t *testing.T) {
	cfg := sdtest.Small(sdtest.SD15)
	cfg.ScalarTimestep = true
	dir := t.TempDir()
	if err := sdtest.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	e := instrumentAndLoad(t, dir, cfg, -1)
	if !e.timestepScalar {
		t.Fatalf("timestep input %v not read as a scalar", e.unet.InputInfo())
	}
	checkNeutralIsNoOp(t, e)
	ref, _ := loadSD(t, sdtest.SD15)
	ctx := context.Background()
	s := edit.Spec{Source: "a photo of a cat", Targets: []string{"a photo of a dog"}, Seed: ptr(uint64(2)), Steps: ptr(2)}
	got, err := e.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for r := range want.Images {
		if !bytes.Equal(got.Images[r].RGB, want.Images[r].RGB) {
			t.Errorf("row %d differs from the [steps]-timestep export's (PSNR %.1f dB)", r, psnrRGB(got.Images[r].RGB, want.Images[r].RGB))
		}
	}
}
