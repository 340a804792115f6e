package graph_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/backend/ort"
)

// Inputs of the reference model referenceNormShare writes.
const (
	refSourceRows = "ref_source_rows" // int64 [B]: the row whose mean each row blends in
	refWeights    = "ref_norm_w"      // float32 [B, 1, 1]: how much of them
)

// referenceNormShare rewrites the original UNet at path into a second,
// independent implementation of NormWeightInput's edit: every
// InstanceNormalization becomes the explicit formula over the whole batch,
// each row r becoming g_r·norm(x_r; μ[src_r], σ²[r]) + (1−g_r)·norm(x_r;
// μ[r], σ²[r]), where the test computes src and g per row (the instrumented
// graph computes its target rows and scatters them over the node's own
// output). It returns
// the rewritten file's path.
func referenceNormShare(t *testing.T, path string) string {
	t.Helper()
	m := readModel(t, path)
	g := m.GetGraph()
	var nodes []*onnxpb.NodeProto
	count := 0
	for _, n := range g.GetNode() {
		if n.GetOpType() != "InstanceNormalization" {
			nodes = append(nodes, n)
			continue
		}
		b := onnxgraph.NewBuilder(fmt.Sprintf("/ref/norm_%d/", count))
		count++
		x, scale, bias := n.GetInput()[0], n.GetInput()[1], n.GetInput()[2]
		eps := float32(1e-5)
		if a := onnxgraph.Attr(n, "epsilon"); a != nil {
			eps = a.GetF()
		}
		x3 := b.Op("Reshape", []string{x, b.Int64s("by_channel", 0, 0, -1)})
		mean := b.Op("ReduceMean", []string{x3}, onnxgraph.AttrInts("axes", 2), onnxgraph.AttrInt("keepdims", 1))
		d := b.Op("Sub", []string{x3, mean})
		variance := b.Op("ReduceMean", []string{b.Op("Mul", []string{d, d})}, onnxgraph.AttrInts("axes", 2), onnxgraph.AttrInt("keepdims", 1))
		// Every row centred on its source row's mean (its own variance), then
		// blended with its own normalisation by its weight.
		from := func(stat string) string {
			return b.Op("Gather", []string{stat, refSourceRows}, onnxgraph.AttrInt("axis", 0))
		}
		normalise := func(mu, sigma2 string) string {
			axis := b.Int64s("axis", 1)
			return b.Op("Add", []string{
				b.Op("Mul", []string{
					b.Op("Div", []string{b.Op("Sub", []string{x3, mu}), b.Op("Sqrt", []string{b.Op("Add", []string{sigma2, b.Float32s("eps", []int64{1}, []float32{eps})})})}),
					b.Op("Unsqueeze", []string{scale, axis})}),
				b.Op("Unsqueeze", []string{bias, axis})})
		}
		own, shared := normalise(mean, variance), normalise(from(mean), variance)
		y := b.Op("Add", []string{b.Op("Mul", []string{shared, refWeights}),
			b.Op("Mul", []string{own, b.Op("Sub", []string{b.Float32s("one", []int64{1}, []float32{1}), refWeights})})})
		b.OpTo("Reshape", n.GetOutput()[0], []string{y, b.Op("Shape", []string{x})})
		nodes = append(nodes, b.Nodes()...)
		g.Initializer = append(g.Initializer, b.Initializers()...)
	}
	if count == 0 {
		t.Fatal("the UNet has no InstanceNormalization")
	}
	g.Node = nodes
	g.Input = append(g.Input,
		onnxgraph.TensorInfo(refSourceRows, onnxgraph.Int64, onnxgraph.Symbolic("B")),
		onnxgraph.TensorInfo(refWeights, onnxgraph.Float, onnxgraph.Symbolic("B"), onnxgraph.Fixed(1), onnxgraph.Fixed(1)))
	out, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "reference.onnx")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestNormShareOnTinyModel checks NormWeightInput on the tiny model's UNet,
// in the standard layout [uncond source, uncond targets, cond source, cond
// targets] with targets whose inputs differ from the source's:
//
//   - g = 0 everywhere is the original model bit for bit (TestTinyModel's
//     no-op covers it too, with the other controls);
//   - g = 1 and g = 0.5 give what the independent reference gives, every
//     row, to float rounding; the source rows are the original's bit for
//     bit; the targets move;
//   - without the uncond source row (the source-cache layout, B = 2E+1)
//     the edit is off whatever g says: the output is the no-op's bit for
//     bit.
func TestNormShareOnTinyModel(t *testing.T) {
	dir := tinyUNet(t, "unet")
	desc, instPath, err := graph.InstrumentDir(dir, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Two GroupNorms per resnet (3 down blocks, the middle and 3 up
	// blocks), one per transformer and conv_norm_out: whatever the count,
	// every InstanceNormalization must be reached.
	origPath := filepath.Join(dir, graph.UNetDir, graph.OriginalFile)
	if want := countOps(t, origPath, "InstanceNormalization"); desc.NormLayers != want || want == 0 {
		t.Errorf("description: %d norm layers, the UNet has %d InstanceNormalization nodes", desc.NormLayers, want)
	}
	so := ort.Options{Threads: 1}
	orig, err := ort.NewSession(origPath, so)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	inst, err := ort.NewSession(instPath, so)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	ref, err := ort.NewSession(referenceNormShare(t, origPath), so)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	ctxInfo, _ := orig.Input(graph.HiddenStatesInput)
	r := tinyRun{desc: desc, latent: desc.Latent.Height, tokens: desc.Tokens, ctx: int(ctxInfo.Shape[2])}

	const targets = 2
	batch := graph.Batch(targets)
	in := r.inputs(batch, 41)
	o := r.run(t, orig, in, nil)
	want := float32Output(t, o, "out_sample")
	o.Destroy()
	rowLen := len(want) / batch
	uncondSource, condSource := 0, targets+1

	noop := graph.NoOpControls(targets, r.tokens)
	for _, g := range [][]float32{{1, 1}, {0.5, 1}, {0, 0}} {
		what := fmt.Sprintf("g = %v", g)
		ctl := graph.NoOpControls(targets, r.tokens)
		copy(ctl.NormW, g)
		o := r.run(t, inst, in, &ctl)
		got := float32Output(t, o, "out_sample")
		o.Destroy()
		if g[0] == 0 && g[1] == 0 {
			bitwiseEqual(t, what, got, want)
			continue
		}
		for _, row := range []int{uncondSource, condSource} {
			bitwiseEqual(t, fmt.Sprintf("%s: source row %d", what, row), got[row*rowLen:(row+1)*rowLen], want[row*rowLen:(row+1)*rowLen])
		}
		refOut := runReference(t, r, ref, in, g)
		if d, scale := maxDiff(got, widen(refOut)); d > 2e-4*scale {
			t.Errorf("%s: instrumented and reference differ by %.3g (outputs up to %.3g)", what, d, scale)
		} else {
			t.Logf("%s: instrumented and reference differ by %.2g (outputs up to %.2g)", what, d, scale)
		}
		for e := 1; e <= targets; e++ {
			for _, row := range []int{e, condSource + e} {
				if d, _ := maxDiff(got[row*rowLen:(row+1)*rowLen], widen(want[row*rowLen:(row+1)*rowLen])); d < 1e-3 {
					t.Errorf("%s: target row %d moved by only %.3g", what, row, d)
				}
			}
		}
	}

	// The source-cache layout: the uncond source row left out.
	cached := r.inputs(2*targets+1, 43)
	o = r.run(t, inst, cached, &noop)
	wantCached := float32Output(t, o, "out_sample")
	o.Destroy()
	ctl := graph.NoOpControls(targets, r.tokens)
	ctl.NormW[0], ctl.NormW[1] = 1, 1
	o = r.run(t, inst, cached, &ctl)
	bitwiseEqual(t, "source-cache layout with g = 1", float32Output(t, o, "out_sample"), wantCached)
	o.Destroy()
}

// runReference runs the reference model with per-target weights g in the
// standard layout.
func runReference(t *testing.T, r tinyRun, s *ort.Session, in attnblock.Inputs, g []float32) []float32 {
	t.Helper()
	targets := len(g)
	b := int64(in.Batch)
	feeds := unetFeeds(t, r.desc, []int64{b, 4, int64(r.latent), int64(r.latent)}, []int64{b, int64(r.tokens), int64(r.ctx)}, in)
	defer destroy(feeds)
	src, w := make([]int64, in.Batch), make([]float32, in.Batch)
	for row := range src {
		src[row] = int64(row)
	}
	for e := 1; e <= targets; e++ {
		src[e], w[e] = 0, g[e-1]                                    // uncond target ← uncond source
		src[targets+1+e], w[targets+1+e] = int64(targets+1), g[e-1] // cond target ← cond source
	}
	rows, err := ort.NewTensor([]int64{b}, src)
	if err != nil {
		t.Fatal(err)
	}
	feeds[refSourceRows] = rows
	weights, err := ort.NewTensor([]int64{b, 1, 1}, w)
	if err != nil {
		t.Fatal(err)
	}
	feeds[refWeights] = weights
	outs, err := s.Run(feeds)
	if err != nil {
		t.Fatal(err)
	}
	defer outs.Destroy()
	return float32Output(t, outs, "out_sample")
}

// countOps counts the nodes of an op type in the main graph of a model file.
func countOps(t *testing.T, path, op string) int {
	t.Helper()
	n := 0
	for _, node := range readModel(t, path).GetGraph().GetNode() {
		if node.GetOpType() == op {
			n++
		}
	}
	return n
}
