package main

import (
	"bytes"
	"fmt"
	"image"
	"path/filepath"
	"strings"
	"testing"

	"reword/backend/internal/sdtest"
)

// The CLI on SD-1.5- and SD-2.1-shaped Optimum exports (backend/internal/
// sdtest, random weights): `reword instrument` lists every attention layer
// at its resolution; on the SD 2.1 one (v-prediction, Linear projections),
// generate, edit and invert then write images of the model's size (noise by
// design). backend/diffusion runs and checks every job on both families;
// here the commands are run once, to keep the test short.
func TestCommandsOnSDShapedExports(t *testing.T) {
	for _, f := range []sdtest.Family{sdtest.SD15, sdtest.SD21} {
		t.Run(string(f), func(t *testing.T) {
			cfg := sdtest.Small(f)
			model := t.TempDir()
			if err := sdtest.Write(model, cfg); err != nil {
				t.Fatal(err)
			}
			// SD 1.5 names its latent size; SD 2.1's comes from its
			// unet/config.json sample_size, as the engine's would.
			args := []string{"instrument", model}
			if f == sdtest.SD15 {
				args = []string{"instrument", "-latent", fmt.Sprintf("%dx%d", cfg.SampleSize, cfg.SampleSize), model}
			}
			checkInstrumentTable(t, cfg, runOK(t, args...))
			if f != sdtest.SD21 {
				return
			}
			dir := t.TempDir()
			side := 8 * cfg.SampleSize
			common := []string{"--model", model, "--threads", "1", "--steps", "2"}
			runOK(t, append([]string{"generate", "--prompt", "a cat", "--seed", "1", "--out", filepath.Join(dir, "gen.png")}, common...)...)
			checkPNGSize(t, filepath.Join(dir, "gen.png"), side)
			runOK(t, append([]string{"edit", "--prompt", "a cat", "--to", "a dog", "--seed", "1", "--out", filepath.Join(dir, "edit")}, common...)...)
			checkPNGSize(t, filepath.Join(dir, "edit", "target-1.png"), side)
			runOK(t, append([]string{"invert", "--image", filepath.Join(dir, "gen.png"), "--prompt", "a cat", "--to", "a dog",
				"--out", filepath.Join(dir, "inv")}, common...)...)
			checkPNGSize(t, filepath.Join(dir, "inv", "reconstruction.png"), side)
			checkPNGSize(t, filepath.Join(dir, "inv", "target-1.png"), side)
			// bench invert scores with the tiny model's evaluator, which
			// reads only 64×64 scenes: it refuses these 128 px images up
			// front, as the other scene benchmarks do.
			var stdout, stderr bytes.Buffer
			if code := run([]string{"bench", "invert", "--model", model, "--threads", "1", "--scenes", "1", "--steps", "2"}, &stdout, &stderr); code != 1 ||
				!strings.Contains(stderr.String(), "which reads only 64x64 scenes") {
				t.Errorf("bench invert on %d px images: exit %d, stderr %q; want exit 1 and the evaluator's size", side, code, stderr.String())
			}
		})
	}
}

// The CLI on the SDXL-shaped Optimum export (two text encoders, a UNet
// that also takes text_embeds and time_ids; its lowest blocks 2 transformer
// blocks deep instead of 10 to keep it short): `reword instrument` lists
// every attention layer at its resolution at the size unet/config.json
// states, and generate, edit and invert write images of the model's size.
func TestCommandsOnSDXLShapedExport(t *testing.T) {
	cfg := sdtest.Small(sdtest.SDXL)
	cfg.Depth = []int{1, 2, 2}
	model := t.TempDir()
	if err := sdtest.Write(model, cfg); err != nil {
		t.Fatal(err)
	}
	checkInstrumentTable(t, cfg, runOK(t, "instrument", model))
	dir := t.TempDir()
	side := 8 * cfg.SampleSize
	common := []string{"--model", model, "--threads", "1", "--steps", "2"}
	runOK(t, append([]string{"generate", "--prompt", "a cat", "--seed", "1", "--out", filepath.Join(dir, "gen.png")}, common...)...)
	checkPNGSize(t, filepath.Join(dir, "gen.png"), side)
	runOK(t, append([]string{"edit", "--prompt", "a cat", "--to", "a dog", "--reweight", "dog=2", "--seed", "1", "--out", filepath.Join(dir, "edit")}, common...)...)
	checkPNGSize(t, filepath.Join(dir, "edit", "target-1.png"), side)
	runOK(t, append([]string{"invert", "--image", filepath.Join(dir, "gen.png"), "--prompt", "a cat", "--to", "a dog",
		"--out", filepath.Join(dir, "inv")}, common...)...)
	checkPNGSize(t, filepath.Join(dir, "inv", "reconstruction.png"), side)
	checkPNGSize(t, filepath.Join(dir, "inv", "target-1.png"), side)
}

// checkInstrumentTable finds each of the export's attention layers in the
// table `reword instrument` prints, with its kind and resolution.
func checkInstrumentTable(t *testing.T, cfg sdtest.Config, out string) {
	t.Helper()
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 {
			rows[f[0]] = f
		}
	}
	for _, l := range cfg.Layers() {
		side := cfg.SampleSize / l.Stride
		kind := map[bool]string{true: "cross", false: "self"}[l.Cross]
		if f := rows[l.Name]; len(f) < 3 || f[1] != kind || f[2] != fmt.Sprintf("%d×%d", side, side) {
			t.Errorf("instrument lists %s as %v; want %s at %d×%d", l.Name, f, kind, side, side)
		}
	}
	if len(rows) < len(cfg.Layers()) {
		t.Errorf("instrument output has %d rows:\n%s", len(rows), out)
	}
}

// runOK runs the CLI and returns its standard output, failing on an error.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("%s: exit %d: %s", args[0], code, stderr.String())
	}
	return stdout.String()
}

func checkPNGSize(t *testing.T, path string, side int) {
	t.Helper()
	if b := readPNG(t, path).Bounds(); b != image.Rect(0, 0, side, side) {
		t.Fatalf("%s: bounds %v; want %d×%d", path, b, side, side)
	}
}

// `reword bench instrument` measures an SD-shaped export laid out as
// sdtest.Full writes the full-size one (weights in model.onnx_data, a fixed
// latent), here at test width: the path a full-size measurement takes.
func TestBenchInstrumentOnSDShapedExport(t *testing.T) {
	c := sdtest.Small(sdtest.SD15)
	c.FixedLatent, c.ExternalData = true, true
	model := t.TempDir()
	if err := sdtest.Write(model, c); err != nil {
		t.Fatal(err)
	}
	out := runOK(t, "bench", "instrument", "-model", model, "-unets", "unet", "-reps", "3", "-profile-runs", "0")
	for _, want := range []string{"16 cross layers edited", "p2p_maps_div8 from 1 layers", "ratio instrumented/original"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
