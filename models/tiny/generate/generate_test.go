package generate

import (
	"context"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"reword/backend/ort"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
)

// modelDir is the committed tiny model, relative to this package.
const modelDir = ".."

func open(t *testing.T, sdpa bool) *Pipeline {
	t.Helper()
	p, err := Open(modelDir, sdpa, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// The two UNet exports (classic and SDPA attention layouts) must compute the
// same function through ONNX Runtime, not only in PyTorch.
func TestUNetLayoutsAgree(t *testing.T) {
	classic, sdpa := open(t, false), open(t, true)
	ctx := context.Background()
	hidden, shape, err := classic.encodeText(ctx, []string{"", "a big red star on the left"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ort.NewTensor(shape, hidden)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Destroy()
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 2*4*16*16)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	xs := []int64{2, 4, 16, 16}
	a, err := classic.runUNet(ctx, x, xs, 501, h)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sdpa.runUNet(ctx, x, xs, 501, h)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
	}
	if worst > 1e-4 {
		t.Errorf("classic and SDPA UNets differ by up to %g", worst)
	}
}

// The VAE must keep what the evaluator reads: a drawn scene encoded and
// decoded must still show its colour, position and size, and mostly its
// shape (the decoder blurs the tips of small stars and triangles; the
// thresholds guard against regressions of the committed model).
func TestVAERoundTripKeepsScenes(t *testing.T) {
	p := open(t, false)
	rng := rand.New(rand.NewPCG(11, 12))
	var imgs []*image.RGBA
	var want []scene.Object
	for _, c := range scene.SeenPrompts(100, 3) {
		s, err := scene.SceneFor(rng, c)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, s.Render())
		want = append(want, s.Objects[0].Object)
	}
	ctx := context.Background()
	z, err := p.Encode(ctx, imgs)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Decode(ctx, z, len(imgs))
	if err != nil {
		t.Fatal(err)
	}
	var colour, shape, size, position int
	for i, img := range out {
		r, err := eval.Analyze(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Objects) == 0 {
			continue
		}
		o := r.Objects[0]
		colour += b2i(o.Colour == want[i].Colour)
		shape += b2i(o.Shape == want[i].Shape)
		size += b2i(o.Size == want[i].Size)
		position += b2i(o.Position == want[i].Position)
	}
	n := float64(len(out))
	t.Logf("VAE round trip of %d drawn scenes: colour %.2f shape %.2f size %.2f position %.2f",
		len(out), float64(colour)/n, float64(shape)/n, float64(size)/n, float64(position)/n)
	for _, c := range []struct {
		name string
		got  int
		min  float64
	}{{"colour", colour, 0.98}, {"position", position, 0.98}, {"size", size, 0.95}, {"shape", shape, 0.80}} {
		if float64(c.got)/n < c.min {
			t.Errorf("%s kept in %.2f of VAE round trips, want >= %.2f", c.name, float64(c.got)/n, c.min)
		}
	}
}

// Generation is deterministic in the seed and draws what simple prompts ask
// for: an object of the named colour. (The full quality measurement is
// `reword bench model`.)
func TestGenerateFollowsColour(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 8 images with 20 DDIM steps")
	}
	p := open(t, false)
	prompts := scene.SeenPrompts(8, 5)
	reqs := make([]Request, len(prompts))
	for i, c := range prompts {
		reqs[i] = Request{Prompt: c.Text, Seed: uint64(i)}
	}
	ctx := context.Background()
	o := Options{Steps: 20, Guidance: 7.5}
	imgs, err := p.Generate(ctx, reqs, o)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Generate(ctx, reqs[:1], o)
	if err != nil {
		t.Fatal(err)
	}
	if string(again[0].Pix) != string(imgs[0].Pix) {
		t.Error("the same prompt and seed gave different images")
	}
	right := 0
	for i, img := range imgs {
		r, err := eval.Analyze(img)
		if err != nil {
			t.Fatal(err)
		}
		v, err := eval.CheckSingle(prompts[i], r)
		if err != nil {
			t.Fatal(err)
		}
		right += b2i(v.Found && v.Colour)
	}
	if right < 6 {
		t.Errorf("%d of %d generated images show an object of the prompt's colour, want >= 6", right, len(imgs))
	}
}

func TestGenerateRejectsBadOptions(t *testing.T) {
	p := open(t, false)
	if _, err := p.Generate(context.Background(), []Request{{Prompt: "a red circle"}}, Options{Steps: 0, Guidance: 7.5}); err == nil {
		t.Error("0 steps accepted")
	}
	if _, err := p.Encode(context.Background(), []*image.RGBA{image.NewRGBA(image.Rect(0, 0, 32, 32))}); err == nil {
		t.Error("a 32x32 image accepted by Encode")
	}
}

func TestReadManifestRejectsOtherSchedulers(t *testing.T) {
	dir := t.TempDir()
	bad := `{"latent":{"channels":4,"height":16,"width":16,"scaling_factor":0.5},"text_encoder":{"max_tokens":77},
	"scheduler":{"beta_schedule":"linear","prediction_type":"epsilon","num_train_timesteps":1000}}`
	if err := os.WriteFile(filepath.Join(dir, "model.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(dir); err == nil {
		t.Error("a linear-beta model accepted")
	}
	if _, err := ReadManifest(t.TempDir()); err == nil {
		t.Error("a directory without model.json accepted")
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
