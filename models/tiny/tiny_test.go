// Package tiny_test checks the committed tiny model (this folder) through
// ONNX Runtime and the engine: properties of the exported files and
// quality floors that guard the committed weights against regressions. The
// full quality measurement is `reword bench model`.
package tiny_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"reword/backend/diffusion"
	"reword/backend/model"
	"reword/backend/ort"
	"reword/backend/scheduler"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
	"reword/shared/clip"
)

// modelDir is the committed tiny model: this package's folder.
const modelDir = "."

// The two UNet exports (classic and SDPA attention layouts, model.json's
// unet.file and unet.sdpa_file) must compute the same function through ONNX
// Runtime, not only in PyTorch. (backend/graph checks that both instrument
// alike; this checks the exports themselves.)
func TestUNetLayoutsAgree(t *testing.T) {
	m, err := model.Load(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(modelDir, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sdpa struct {
		UNet struct {
			SDPAFile string `json:"sdpa_file"`
		} `json:"unet"`
	}
	if err := json.Unmarshal(raw, &sdpa); err != nil || sdpa.UNet.SDPAFile == "" {
		t.Fatalf("model.json names no unet.sdpa_file (%v)", err)
	}
	open := func(rel string) *ort.Session {
		s, err := ort.NewSession(m.Path(rel), ort.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}

	// Text embeddings of the unconditional and a real prompt, as a
	// guided step sees them.
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	for _, p := range []string{"", "a big red star on the left"} {
		ids = append(ids, tok.Encode(p).Padded(clip.ContextLength)...)
	}
	idsT, err := ort.NewTensor([]int64{2, clip.ContextLength}, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer idsT.Destroy()
	textOut, err := open(m.TextEncoder.File).RunContext(context.Background(), map[string]ort.Value{m.TextEncoder.Input: idsT})
	if err != nil {
		t.Fatal(err)
	}
	defer textOut.Destroy()
	hidden, hiddenShape, err := textOut.Float32(m.TextEncoder.Output)
	if err != nil {
		t.Fatal(err)
	}

	L := m.Latent
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 2*L.Channels*L.Height*L.Width)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	run := func(s *ort.Session) []float32 {
		sample, err := ort.NewTensor([]int64{2, int64(L.Channels), int64(L.Height), int64(L.Width)}, x)
		if err != nil {
			t.Fatal(err)
		}
		defer sample.Destroy()
		ts, err := ort.NewTensor([]int64{2}, []float32{501, 501})
		if err != nil {
			t.Fatal(err)
		}
		defer ts.Destroy()
		h, err := ort.NewTensor(hiddenShape, hidden)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Destroy()
		out, err := s.RunContext(context.Background(), map[string]ort.Value{"sample": sample, "timestep": ts, "encoder_hidden_states": h})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Destroy()
		v, _, err := out.Float32(m.UNet.Output)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := run(open(m.UNet.File)), run(open(sdpa.UNet.SDPAFile))
	if len(a) != len(x) || len(b) != len(x) {
		t.Fatalf("UNet outputs have %d and %d values, want %d", len(a), len(b), len(x))
	}
	worst, scale := 0.0, 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
		scale = math.Max(scale, math.Abs(float64(a[i])))
	}
	t.Logf("classic vs SDPA: max |Δε| %.2g (max |ε| %.2f)", worst, scale)
	if worst > 1e-4 {
		t.Errorf("classic and SDPA UNets differ by up to %g", worst)
	}
}

// engineDir is a folder of symbolic links to the committed model's files,
// so that the engine writes its instrumented UNet there and not into the
// source tree.
var (
	engineOnce sync.Once
	engineDir  string
	engineErr  error
)

func loadEngine(t *testing.T) *diffusion.Engine {
	t.Helper()
	engineOnce.Do(func() { engineDir, engineErr = linkModel(modelDir) })
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	e, err := diffusion.Load(engineDir, diffusion.Options{Threads: 1, CacheBytes: -1, Instrument: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// linkModel makes a temporary folder holding model.json and the ONNX files
// of src as symbolic links, in folders of their own.
func linkModel(src string) (string, error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	dst, err := os.MkdirTemp("", "reword-tiny-test-")
	if err != nil {
		return "", err
	}
	for _, rel := range []string{"model.json", "text_encoder/model.onnx", "unet/model.onnx", "vae_encoder/model.onnx", "vae_decoder/model.onnx"} {
		to := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return "", err
		}
		if err := os.Symlink(filepath.Join(abs, filepath.FromSlash(rel)), to); err != nil {
			return "", err
		}
	}
	return dst, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if engineDir != "" {
		os.RemoveAll(engineDir)
	}
	os.Exit(code)
}

// The VAE must keep what the evaluator reads: a drawn scene passed through
// the engine's VAE round trip must still show its colour, position and
// size, and its shape (the third generation's decoder keeps 97 % of these
// shapes, the second's kept 90 %: it blurred the tips of small stars; the
// thresholds guard against regressions of the committed model).
func TestVAERoundTripKeepsScenes(t *testing.T) {
	e := loadEngine(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 12))
	var n, colour, shape, size, position int
	for _, c := range scene.SeenPrompts(100, 3) {
		s, err := scene.SceneFor(rng, c)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := png.Encode(&b, s.Render()); err != nil {
			t.Fatal(err)
		}
		rt, err := e.RoundTrip(ctx, diffusion.Photo{Data: b.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		r, err := eval.Analyze(rt.NRGBA())
		if err != nil {
			t.Fatal(err)
		}
		n++
		if len(r.Objects) == 0 {
			continue
		}
		o, want := r.Objects[0], s.Objects[0].Object
		colour += b2i(o.Colour == want.Colour)
		shape += b2i(o.Shape == want.Shape)
		size += b2i(o.Size == want.Size)
		position += b2i(o.Position == want.Position)
	}
	f := func(k int) float64 { return float64(k) / float64(n) }
	t.Logf("VAE round trip of %d drawn scenes: colour %.2f shape %.2f size %.2f position %.2f", n, f(colour), f(shape), f(size), f(position))
	for _, c := range []struct {
		name string
		got  int
		min  float64
	}{{"colour", colour, 0.98}, {"position", position, 0.98}, {"size", size, 0.95}, {"shape", shape, 0.92}} {
		if f(c.got) < c.min {
			t.Errorf("%s kept in %.2f of VAE round trips, want >= %.2f", c.name, f(c.got), c.min)
		}
	}
}

// TestGenerateFollowsPrompt generates held-out prompts (colour, shape and
// position triples training never drew) on the engine and checks that the
// images show the named colour, shape and position: the model's quality bar
// in small (the full one is `reword bench model`).
func TestGenerateFollowsPrompt(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 10 images with 20 DDIM steps")
	}
	e := loadEngine(t)
	guidance := 7.5
	prompts := scene.EvalPrompts(10, 5)
	var colour, shape, position int
	for i, c := range prompts {
		r, err := eval.Analyze(generate20(t, e, c.Text, uint64(i), &guidance))
		if err != nil {
			t.Fatal(err)
		}
		v, err := eval.CheckSingle(c, r)
		if err != nil {
			t.Fatal(err)
		}
		got := "nothing"
		if v.Object != nil {
			got = fmt.Sprintf("a %s %s %s", v.Object.Colour, v.Object.Shape, v.Object.Position)
		}
		t.Logf("%q: found %s", c.Text, got)
		colour += b2i(v.Found && v.Colour)
		shape += b2i(v.Found && v.Shape)
		position += b2i(v.Found && v.Position)
	}
	// Measured by `reword bench model` on 600 images of the committed model
	// at its default guidance 4 (this test keeps 7.5, the second
	// generation's): colour 99.3 %, shape 82.7 %, position 97.5 %. The
	// bounds leave room for a platform's float differences flipping a
	// borderline image (this machine, at 7.5: 10, 6 and 9 of 10).
	if colour < 8 || shape < 5 || position < 8 {
		t.Errorf("of %d images, %d show the prompt's colour (want >= 8), %d its shape (want >= 5), %d its position (want >= 8)",
			len(prompts), colour, shape, position)
	}
}

// generate20 generates prompt at seed with 20 DDIM steps (guidance nil:
// the model's default) and returns the image.
func generate20(t *testing.T, e *diffusion.Engine, prompt string, seed uint64, guidance *float64) image.Image {
	t.Helper()
	res, err := e.Generate(context.Background(), diffusion.GenerateRequest{Prompt: prompt, Seed: seed, Steps: 20, Guidance: guidance,
		Scheduler: scheduler.DDIMName}, diffusion.RunOptions{NoSourceCache: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Images[0].NRGBA()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestGenerateDrawsNamedBackgrounds generates held-out prompts that name
// each background, white included, and checks the evaluator finds it: the
// second generation never drew a white background (it read the background
// off the initial noise's mean), and offset noise in the third cycle's
// training is what cured it (models/tiny/README.md).
func TestGenerateDrawsNamedBackgrounds(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 18 images with 20 DDIM steps")
	}
	e := loadEngine(t)
	const perBackground = 3
	prompts := map[scene.Background][]scene.Caption{}
	for _, c := range scene.EvalPrompts(400, 9) {
		if c.NamesBackground && len(prompts[c.Background]) < perBackground {
			prompts[c.Background] = append(prompts[c.Background], c)
		}
	}
	for _, b := range scene.Backgrounds {
		if len(prompts[b]) < perBackground {
			t.Fatalf("EvalPrompts(400, 9) names the %s background in %d prompts, want %d", b, len(prompts[b]), perBackground)
		}
		shown := 0
		for i, c := range prompts[b] {
			got, err := eval.Background(generate20(t, e, c.Text, uint64(i), nil))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%q (seed %d): %s background", c.Text, i, got)
			shown += b2i(got == b)
		}
		// This machine, committed model: 17 of 18 (one striped background
		// drawn gray; `reword bench model` draws 93.5 % of named backgrounds
		// over three seeds, every miss striped). One miss per background
		// is allowed for a platform's float differences.
		if shown < perBackground-1 {
			t.Errorf("the %s background was drawn in %d of %d prompts naming it, want >= %d", b, shown, perBackground, perBackground-1)
		}
	}
}
