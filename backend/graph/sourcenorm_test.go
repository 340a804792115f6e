package graph_test

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph"
	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/backend/internal/fp16export"
	"reword/backend/ort"
	"reword/models/tiny/tinytest"
)

// tinyDecoder is the path of the tiny model's VAE decoder.
func tinyDecoder(t *testing.T) string {
	return filepath.Join(tinytest.Dir(t), "vae_decoder", "model.onnx")
}

// decodeTiny runs the tiny model's VAE decoder, rewritten by rewrites, on
// latents ([n, 4, 16, 16]) and returns its [n, 3, 64, 64] output.
func decodeTiny(t *testing.T, latents []float32, n int, rewrites ...graph.Rewrite) []float32 {
	t.Helper()
	return decodeWith(t, tinyDecoder(t), latents, n, rewrites...)
}

// decodeWith is decodeTiny with the decoder at path, a float32 or float16
// export of the tiny model's.
func decodeWith(t *testing.T, path string, latents []float32, n int, rewrites ...graph.Rewrite) []float32 {
	t.Helper()
	b, err := graph.RewriteFile(path, "VAE decoder", rewrites...)
	if err != nil {
		t.Fatal(err)
	}
	var s *ort.Session
	if b == nil {
		s, err = ort.NewSession(path, ort.Options{Threads: 1})
	} else {
		s, err = ort.NewSessionFromBytes(path, b, ort.Options{Threads: 1})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shape := []int64{int64(n), 4, 16, 16}
	if in, _ := s.Input("latent_sample"); in.DType == ort.Float16 {
		return runOneHalf(t, s, "latent_sample", shape, latents, "sample", []int64{int64(n), 3, 64, 64})
	}
	return runOne(t, s, "latent_sample", shape, latents, "sample")
}

// runOneHalf is runOne for a session with a float16 input and output (of
// shape outShape), fed and read as float32.
func runOneHalf(t *testing.T, s *ort.Session, input string, shape []int64, in []float32, output string, outShape []int64) []float32 {
	t.Helper()
	x, err := ort.NewFloat16Tensor(shape, in)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	n := int64(1)
	for _, d := range outShape {
		n *= d
	}
	y, err := ort.NewFloat16Tensor(outShape, make([]float32, n))
	if err != nil {
		t.Fatal(err)
	}
	defer y.Destroy()
	if err := s.RunInto(context.Background(), map[string]ort.Value{input: x}, map[string]ort.Value{output: y}); err != nil {
		t.Fatal(err)
	}
	v, _, err := ort.Float32Data(y)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSourceNorms: the tiny model's decoder with every GroupNorm taking
// the first image's statistics decodes the first image as the decoder
// does, a copy of it the same, and an edit of one corner of the latent to
// the first image's pixels wherever the decoder's convolutions cannot
// see the corner — where the decoder as exported, normalising each image
// with its own statistics, changes them.
func TestSourceNorms(t *testing.T) {
	const plane = 4 * 16 * 16
	r := rand.New(rand.NewSource(1))
	source := make([]float32, plane)
	for i := range source {
		source[i] = float32(r.NormFloat64()) * 2
	}
	edited := append([]float32(nil), source...)
	for c := range 4 {
		for y := range 3 {
			for x := range 3 {
				edited[c*256+y*16+x] += 4 // the top-left 3×3 cells: an object recoloured
			}
		}
	}
	batch := append(append([]float32(nil), source...), edited...)
	alone := decodeTiny(t, source, 1)
	own := decodeTiny(t, batch, 2)
	shared := decodeTiny(t, batch, 2, graph.SourceNormsRewrite)
	const img = 3 * 64 * 64
	if d := maxAbsDiff(shared[:img], alone); d > 1e-4 {
		t.Errorf("the first image decodes %.2g away from the decoder's own decode", d)
	}
	copies := decodeTiny(t, append(append([]float32(nil), source...), source...), 2, graph.SourceNormsRewrite)
	if d := maxAbsDiff(copies[img:], alone); d > 1e-4 {
		t.Errorf("a copy of the first image decodes %.2g away from it", d)
	}
	// Pixels of the bottom-right quarter: 8 or more latent cells (32
	// pixels) from the edited corner, where the convolutions' reach has
	// faded below a tenth of an 8-bit level (2/255 on the output's [-1, 1]).
	far := func(pix []float32) (d float64) {
		for c := range 3 {
			for y := 32; y < 64; y++ {
				for x := 32; x < 64; x++ {
					i := c*64*64 + y*64 + x
					d = max(d, math.Abs(float64(pix[img+i]-pix[i])))
				}
			}
		}
		return d
	}
	if d := far(shared); d > 0.2/255 {
		t.Errorf("with the first image's statistics the edit changes pixels far from its cells by %.2g", d)
	}
	if d := far(own); d < 2.0/255 {
		t.Errorf("with each image's own statistics the edit changes pixels far from its cells by only %.2g: "+
			"the test no longer shows what the rewrite is for", d)
	}
}

// TestSourceNormsFloat16: a float16 export of the decoder (its GroupNorms
// reading float16, as GPU users' --fp16 exports have them) is rewritten
// with the statistics computed in float32, and decodes a source and its
// edit as the rewritten float32 decoder does, to float16's precision.
func TestSourceNormsFloat16(t *testing.T) {
	half := filepath.Join(t.TempDir(), "model.onnx")
	if err := fp16export.ConvertFile(tinyDecoder(t), half, fp16export.Options{}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(3))
	batch := make([]float32, 2*4*16*16)
	for i := range batch {
		batch[i] = float32(r.NormFloat64()) * 2
	}
	want := decodeTiny(t, batch, 2, graph.SourceNormsRewrite)
	got := decodeWith(t, half, batch, 2, graph.SourceNormsRewrite)
	// Measured: 2.5·10⁻³, a third of an 8-bit level on [-1, 1].
	if d := maxAbsDiff(got, want); d > 4.0/255 {
		t.Errorf("the float16 decoder, rewritten, decodes %.2g away from the float32 one, want ≤ 2 levels of 255", d)
	}
	if d := maxAbsDiff(got, decodeWith(t, half, batch, 2)); d < 2.0/255 {
		t.Errorf("the rewritten float16 decoder decodes the batch within %.2g of the decoder as exported: the rewrite did not take", d)
	}
}

// TestSourceNormsFloat16Accumulates: a float16 GroupNorm whose input
// spreads by hundreds (as a decoder's deep activations may) has squared
// deviations beyond float16's range (65,504); rewritten, it still gives
// y = scale·(x − μ₀)/√(σ²₀ + ε) + bias, since the statistics are computed
// in float32.
func TestSourceNormsFloat16Accumulates(t *testing.T) {
	shape := []int64{2, 3, 8, 8}
	scale, bias := []float32{1, 0.5, 2}, []float32{0, 1, -1}
	const eps = 1e-5
	half := filepath.Join(t.TempDir(), "model.onnx")
	if err := fp16export.ConvertFile(normGraph(t, shape, scale, bias, eps), half, fp16export.Options{}); err != nil {
		t.Fatal(err)
	}
	s := rewrittenNorm(t, half)
	r := rand.New(rand.NewSource(4))
	const c, per = 3, 64
	x := make([]float32, 2*c*per)
	for i := range x {
		// Rounded to float16 as the input tensor rounds them, so that
		// the reference reads the same values.
		x[i] = ort.Float16ToFloat32(ort.Float32ToFloat16(float32(r.NormFloat64() * 400)))
	}
	got := runOneHalf(t, s, "x", shape, x, "y", shape)
	want := sourceNormed(x, 2, scale, bias, eps)
	for i := range want {
		// float16 keeps 11 significant bits: 2⁻¹⁰ of the value, and a
		// little more where the output is near 0.
		if d := math.Abs(float64(got[i]) - want[i]); d > 2e-3*math.Abs(want[i])+2e-3 {
			t.Fatalf("element %d: %v, want %v", i, got[i], want[i])
		}
	}
}

// rewrittenNorm opens the one-norm model at path rewritten by SourceNorms.
func rewrittenNorm(t *testing.T, path string) *ort.Session {
	t.Helper()
	b, err := graph.RewriteFile(path, "norm", graph.SourceNormsRewrite)
	if err != nil || b == nil {
		t.Fatalf("rewrite: %v (changed: %v)", err, b != nil)
	}
	s, err := ort.NewSessionFromBytes(path, b, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sourceNormed is SourceNorms' output for x, n images of len(scale)
// channels: every image normalised per channel with the first image's mean
// and variance, y = scale·(x − μ₀)/√(σ²₀ + ε) + bias, in float64.
func sourceNormed(x []float32, n int, scale, bias []float32, eps float64) []float64 {
	c := len(scale)
	per := len(x) / (n * c)
	y := make([]float64, len(x))
	for ch := range c {
		first := x[ch*per : (ch+1)*per]
		var mean, variance float64
		for _, v := range first {
			mean += float64(v)
		}
		mean /= float64(per)
		for _, v := range first {
			variance += (float64(v) - mean) * (float64(v) - mean)
		}
		variance /= float64(per)
		for img := range n {
			for i := range per {
				at := img*c*per + ch*per + i
				y[at] = float64(scale[ch])*(float64(x[at])-mean)/math.Sqrt(variance+eps) + float64(bias[ch])
			}
		}
	}
	return y
}

func maxAbsDiff(a, b []float32) (d float64) {
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestSourceNormsRefuses: a graph without an InstanceNormalization has no
// statistics to share, and one that normalises with GroupNormalization
// would still mix the image: both are refused, the second naming the node.
func TestSourceNormsRefuses(t *testing.T) {
	g := &onnxpb.GraphProto{Node: []*onnxpb.NodeProto{{OpType: proto.String("Relu"), Name: proto.String("relu"),
		Input: []string{"x"}, Output: []string{"y"}}}}
	if _, err := graph.SourceNorms(g); !errors.Is(err, graph.ErrNoInstanceNorm) {
		t.Errorf("a graph without norms: %v; want ErrNoInstanceNorm", err)
	}
	g.Node = append(g.Node, &onnxpb.NodeProto{OpType: proto.String("GroupNormalization"), Name: proto.String("decoder/norm1"),
		Input: []string{"y", "s", "b"}, Output: []string{"z"}, Attribute: []*onnxpb.AttributeProto{onnxgraph.AttrInt("num_groups", 2)}})
	if _, err := graph.SourceNorms(g); err == nil || !strings.Contains(err.Error(), "decoder/norm1") || !strings.Contains(err.Error(), "GroupNormalization") {
		t.Errorf("a graph with GroupNormalization: %v; want it refused by name", err)
	}
}

// normGraph is one InstanceNormalization of an input x of the given shape
// (batch first) with per-channel scale and bias, as a model file.
func normGraph(t *testing.T, shape []int64, scale, bias []float32, eps float32) string {
	t.Helper()
	b := onnxgraph.NewBuilder("")
	c := int64(len(scale))
	b.Node("InstanceNormalization", "", []string{"x", b.Float32s("scale", []int64{c}, scale), b.Float32s("bias", []int64{c}, bias)},
		[]string{"y"}, &onnxpb.AttributeProto{Name: proto.String("epsilon"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(eps)})
	dims := make([]onnxgraph.Dim, len(shape))
	for i, d := range shape {
		dims[i] = onnxgraph.Fixed(d)
	}
	g := &onnxpb.GraphProto{
		Name: proto.String("norm"), Node: b.Nodes(), Initializer: b.Initializers(),
		Input:  []*onnxpb.ValueInfoProto{onnxgraph.TensorInfo("x", onnxgraph.Float, dims...)},
		Output: []*onnxpb.ValueInfoProto{onnxgraph.TensorInfo("y", onnxgraph.Float, dims...)},
	}
	return saveModel(t, &onnxpb.ModelProto{IrVersion: proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(14)}}, Graph: g})
}

// TestSourceNormsScaleAndBias: rewritten, an InstanceNormalization with
// its own scale and bias (and an unnamed node) gives every image of the
// batch y = scale·(x − μ₀)/√(σ²₀ + ε) + bias with the first image's μ₀ and
// σ²₀, at rank 3 (a GroupNorm's export) and rank 4; the first image's own
// output is the operator's.
func TestSourceNormsScaleAndBias(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	const eps = 1e-3
	for _, shape := range [][]int64{{2, 3, 10}, {2, 3, 4, 5}} {
		c, per := int(shape[1]), 1
		for _, d := range shape[2:] {
			per *= int(d)
		}
		scale, bias := make([]float32, c), make([]float32, c)
		for i := range scale {
			scale[i], bias[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		x := make([]float32, 2*c*per)
		for i := range x {
			x[i] = float32(r.NormFloat64()*3 + 1)
		}
		path := normGraph(t, shape, scale, bias, eps)
		orig, err := ort.NewSession(path, ort.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		want := runOne(t, orig, "x", shape, x, "y")
		got := runOne(t, rewrittenNorm(t, path), "x", shape, x, "y")
		if d := maxAbsDiff(got[:c*per], want[:c*per]); d > 1e-5 {
			t.Errorf("shape %v: the first image is %.2g from the operator's output", shape, d)
		}
		ref := sourceNormed(x, 2, scale, bias, eps)
		for i := c * per; i < len(ref); i++ {
			if math.Abs(float64(got[i])-ref[i]) > 1e-4 {
				t.Fatalf("shape %v, second image, element %d: %v, want %v", shape, i-c*per, got[i], ref[i])
			}
		}
	}
}
