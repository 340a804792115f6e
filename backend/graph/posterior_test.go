package graph_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph"
	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/backend/ort"
)

// The form of a test encoder's output.
const (
	gaussianSample = "sample"  // mean + exp(½·clip(logvar))·ε, as diffusers exports it
	meanOnly       = "mean"    // the mean: deterministic
	scaledMean     = "product" // mean·ε: random, not a Gaussian draw around the mean
)

// encoderWeights scale the 8 parameter channels: params = sample·w.
var encoderWeights = []float32{0.5, -1.25, 2, 0.75, 3, -0.5, 1.5, 0.25}

// posteriorEncoder builds a VAE-encoder-shaped graph: an [1, 8, 2, 2]
// input scaled per channel into the posterior's parameters, split into
// mean and log-variance along the channels like diffusers'
// DiagonalGaussianDistribution, and an output "latent_sample" of the given
// form.
func posteriorEncoder(form string) *onnxpb.ModelProto {
	b := onnxgraph.NewBuilder("enc_")
	w := b.Float32s("w", []int64{1, 8, 1, 1}, encoderWeights)
	params := b.Op("Mul", []string{"sample", w})
	mean, logvar := "enc_mean", "enc_logvar"
	b.Node("Split", "enc_split", []string{params, b.Int64s("split", 4, 4)}, []string{mean, logvar}, onnxgraph.AttrInt("axis", 1))
	lo := b.Float32s("lo", nil, []float32{-30})
	hi := b.Float32s("hi", nil, []float32{20})
	half := b.Float32s("half", nil, []float32{0.5})
	std := b.Op("Exp", []string{b.Op("Mul", []string{b.Op("Clip", []string{logvar, lo, hi}), half})})
	eps := b.Op("RandomNormalLike", []string{mean})
	switch form {
	case gaussianSample:
		b.OpTo("Add", "latent_sample", []string{mean, b.Op("Mul", []string{std, eps})})
	case meanOnly:
		b.OpTo("Identity", "latent_sample", []string{mean})
	case scaledMean:
		b.OpTo("Mul", "latent_sample", []string{mean, eps})
	}
	g := &onnxpb.GraphProto{
		Name:        proto.String("vae_encoder"),
		Node:        b.Nodes(),
		Initializer: b.Initializers(),
		Input:       []*onnxpb.ValueInfoProto{onnxgraph.TensorInfo("sample", onnxgraph.Float, onnxgraph.Fixed(1), onnxgraph.Fixed(8), onnxgraph.Fixed(2), onnxgraph.Fixed(2))},
		Output:      []*onnxpb.ValueInfoProto{onnxgraph.TensorInfo("latent_sample", onnxgraph.Float, onnxgraph.Fixed(1), onnxgraph.Fixed(4), onnxgraph.Fixed(2), onnxgraph.Fixed(2))},
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       g,
	}
}

func saveModel(t *testing.T, m *onnxpb.ModelProto) string {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runEncoder runs the session on the fixed input and returns its output.
func runEncoder(t *testing.T, s *ort.Session, in []float32) []float32 {
	t.Helper()
	return runOne(t, s, "sample", []int64{1, 8, 2, 2}, in, "latent_sample")
}

// A sampling encoder is random run to run; rewritten, it returns exactly
// the mean (the first half of the parameters), every run, and keeps
// nothing of the noise or the standard deviation.
func TestPosteriorMeanRewritesASample(t *testing.T) {
	path := saveModel(t, posteriorEncoder(gaussianSample))
	in := make([]float32, 32)
	for i := range in {
		in[i] = float32(i%7) - 2.5
	}
	orig, err := ort.NewSession(path, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if slices.Equal(runEncoder(t, orig, in), runEncoder(t, orig, in)) {
		t.Fatal("the test encoder is not random: two runs gave the same sample")
	}

	model, err := graph.PosteriorMeanFile(path, "latent_sample")
	if err != nil || model == nil {
		t.Fatalf("rewrite: %v (model %d bytes)", err, len(model))
	}
	var rewritten onnxpb.ModelProto
	if err := proto.Unmarshal(model, &rewritten); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, n := range rewritten.GetGraph().GetNode() {
		ops = append(ops, n.GetOpType())
	}
	if !slices.Equal(ops, []string{"Mul", "Split", "Identity"}) || len(rewritten.GetGraph().GetInitializer()) != 2 {
		t.Errorf("rewritten graph: nodes %v and %d initializers; want Mul, Split, Identity and the weights and split sizes",
			ops, len(rewritten.GetGraph().GetInitializer()))
	}
	s, err := ort.NewSessionFromBytes("mean encoder", model, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := make([]float32, 16)
	for i := range want {
		want[i] = in[i] * encoderWeights[i/4]
	}
	for run := range 2 {
		if got := runEncoder(t, s, in); !slices.Equal(got, want) {
			t.Fatalf("run %d: rewritten encoder gives %v; want the mean %v", run, got, want)
		}
	}
}

func TestPosteriorMeanLeavesOrRefuses(t *testing.T) {
	// A deterministic output needs no rewrite.
	if model, err := graph.PosteriorMeanFile(saveModel(t, posteriorEncoder(meanOnly)), "latent_sample"); model != nil || err != nil {
		t.Errorf("deterministic encoder: %d bytes, %v; want no rewrite", len(model), err)
	}
	// A random output that is not mean + std·ε is refused, naming the fix.
	_, err := graph.PosteriorMeanFile(saveModel(t, posteriorEncoder(scaledMean)), "latent_sample")
	if !errors.Is(err, graph.ErrNotGaussianSample) || !strings.Contains(err.Error(), "optimum-cli export onnx") {
		t.Errorf("mean·ε: %v", err)
	}
	g := posteriorEncoder(gaussianSample).GetGraph()
	if _, err := graph.PosteriorMean(g, "latent"); err == nil || !strings.Contains(err.Error(), `no output "latent"`) {
		t.Errorf("unknown output: %v", err)
	}
	// Weights in an external file cannot travel with the rewritten bytes.
	m := posteriorEncoder(gaussianSample)
	w := m.GetGraph().GetInitializer()[0]
	w.FloatData, w.DataLocation = nil, onnxpb.TensorProto_EXTERNAL.Enum()
	w.ExternalData = []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("weights.bin")}}
	if _, err := graph.PosteriorMeanFile(saveModel(t, m), "latent_sample"); err == nil || !strings.Contains(err.Error(), "external files") {
		t.Errorf("external weights: %v", err)
	}
}
