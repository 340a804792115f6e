package diffusion

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/modelfile"
	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/backend/ort"
	"reword/models/tiny/scene"
	"reword/models/tiny/tinytest"
)

// samplingTiny returns a private copy of the tiny model whose VAE encoder
// is exported the way diffusers' ONNX conversion script exports one: its
// output latent_sample is mean + exp(½·clip(logvar))·ε with ε drawn by a
// RandomNormalLike node, and model.json says output_kind "sample".
func samplingTiny(t *testing.T) string {
	t.Helper()
	dir := tinytest.Private(t)
	path := filepath.Join(dir, "vae_encoder", "model.onnx")
	m, err := modelfile.ReadWithOptions(path, modelfile.Options{InlineLimit: math.MaxInt})
	if err != nil {
		t.Fatal(err)
	}
	g := m.Proto.GetGraph()
	params := g.GetOutput()[0]
	b := onnxgraph.NewBuilder("sampling_")
	mean, logvar := "sampling_mean", "sampling_logvar"
	b.Node("Split", "sampling_split", []string{params.GetName(), b.Int64s("split", 4, 4)}, []string{mean, logvar}, onnxgraph.AttrInt("axis", 1))
	clipped := b.Op("Clip", []string{logvar, b.Float32s("lo", nil, []float32{-30}), b.Float32s("hi", nil, []float32{20})})
	std := b.Op("Exp", []string{b.Op("Mul", []string{clipped, b.Float32s("half", nil, []float32{0.5})})})
	noise := b.Op("Mul", []string{std, b.Op("RandomNormalLike", []string{mean})})
	b.OpTo("Add", "latent_sample", []string{mean, noise})
	g.Node = append(g.Node, b.Nodes()...)
	g.Initializer = append(g.Initializer, b.Initializers()...)
	// latent_parameters is [B, 8, 16, 16] (models/tiny/README.md); the draw
	// has the mean's 4 channels.
	g.Output = []*onnxpb.ValueInfoProto{onnxgraph.TensorInfo("latent_sample", onnxgraph.Float,
		onnxgraph.Symbolic("batch"), onnxgraph.Fixed(4), onnxgraph.Fixed(16), onnxgraph.Fixed(16))}
	raw, err := proto.Marshal(m.Proto)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	manifest := filepath.Join(dir, "model.json")
	var doc map[string]any
	if raw, err = os.ReadFile(manifest); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	enc := doc["vae_encoder"].(map[string]any)
	enc["output"], enc["output_kind"] = "latent_sample", "sample"
	if raw, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// encodeTwiceDirect runs an encoder file as it is, twice, on one image.
func encodeTwiceDirect(t *testing.T, path string) (a, b []float32) {
	t.Helper()
	s, err := ort.NewSession(path, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, err := ort.NewTensor([]int64{1, 3, 64, 64}, make([]float32, 3*64*64))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	run := func() []float32 {
		outs, err := s.Run(map[string]ort.Value{"sample": in})
		if err != nil {
			t.Fatal(err)
		}
		defer outs.Destroy()
		v, _, err := outs.Float32("latent_sample")
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(v)
	}
	return run(), run()
}

// Inverting the same photo through separately loaded engines gives the
// same latents bit for bit, at every step: with the tiny model's encoder
// (mean and log-variance), and with an encoder that samples the posterior
// on every run, which Load rewrites to return the mean — the very latents
// of the tiny model, since the mean is the same computation.
func TestInversionIsBitIdenticalAcrossLoads(t *testing.T) {
	const steps = 4
	data, _, caption := drawnPhoto(t, scene.Blue, scene.Square, scene.Right, 5)
	p := &Photo{Data: data}
	ctx := context.Background()
	invert := func(e *Engine) []float32 {
		inv, cached, _, err := e.inversion(ctx, hashOf(data), p, caption, steps, false)
		if err != nil || cached {
			t.Fatalf("inversion: %v (cached %v)", err, cached)
		}
		return inv.latents
	}
	want := invert(loadTiny(t, Options{}))
	if got := invert(loadTiny(t, Options{})); !slices.Equal(got, want) {
		t.Fatal("two loads of the tiny model invert the same photo to different latents")
	}

	dir := samplingTiny(t)
	if a, b := encodeTwiceDirect(t, filepath.Join(dir, "vae_encoder", "model.onnx")); slices.Equal(a, b) {
		t.Fatal("the sampling encoder gave the same latents twice: the test's premise (a random draw) does not hold")
	}
	for load := range 2 {
		e, err := Load(dir, Options{Instrument: true, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		got := invert(e)
		e.Close()
		if !slices.Equal(got, want) {
			t.Fatalf("load %d of the sampling encoder: the inversion differs from the tiny model's posterior mean", load)
		}
	}
}
