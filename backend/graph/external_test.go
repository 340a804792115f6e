package graph_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
	"reword/backend/graph/onnxpb"
	"reword/backend/ort"
)

// externalFP16 saves the fp16 export of fp16IOModel twice, with its weights
// embedded and with those of 256 bytes or more in weights.pb beside it,
// and returns both paths.
func externalFP16(t *testing.T) (embedded, external string) {
	t.Helper()
	net, embedded := fp16IOModel(t)
	m := net.Model()
	dir := t.TempDir()
	if err := attnblock.Externalize(m, dir, "weights.pb", 256); err != nil {
		t.Fatal(err)
	}
	external = filepath.Join(dir, "model.onnx")
	if err := attnblock.Save(m, external); err != nil {
		t.Fatal(err)
	}
	return embedded, external
}

// openKeepingWeights opens a model file as the engine does: rewritten by
// graph.Float32IO, its external weights read from its folder.
func openKeepingWeights(path string) (*ort.Session, *graph.Rewritten, error) {
	r, err := graph.RewriteKeepingWeights(path, "VAE decoder", graph.Float32IORewrite)
	if err != nil || r == nil {
		return nil, r, err
	}
	if r.Dir == "" {
		s, err := ort.NewSessionFromBytes(path, r.Model, ort.Options{Threads: 1})
		return s, r, err
	}
	s, err := ort.NewSessionFromExternalModel(path, ort.ExternalModel{Model: r.Model, Dir: r.Dir, Probe: r.Probe, Weights: r.Weights},
		ort.Options{Threads: 1})
	return s, r, err
}

// An fp16 export whose weights are in an external file gets float32 inputs
// and outputs in memory like one with embedded weights, without its
// weights being read into the rewritten model or copied: ONNX Runtime
// reads them from the model's folder. Both sessions have the same inputs
// and outputs (what ONNX Runtime reads from the weightless probe) and
// compute the same bits. RewriteFile, whose bytes alone must hold the
// model, still refuses.
func TestFloat32IOKeepsExternalWeights(t *testing.T) {
	embedded, external := externalFP16(t)
	if _, err := graph.RewriteFile(external, "VAE decoder", graph.Float32IORewrite); !errors.Is(err, graph.ErrExternalWeights) {
		t.Errorf("RewriteFile of a model with external weights: %v, want ErrExternalWeights", err)
	}
	want, r, err := openKeepingWeights(embedded)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	if r.Dir != "" || r.Probe != nil {
		t.Errorf("embedded weights: Dir %q, %d probe bytes; want the model alone", r.Dir, len(r.Probe))
	}
	got, r, err := openKeepingWeights(external)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	st, err := os.Stat(filepath.Join(filepath.Dir(external), "weights.pb"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir != filepath.Dir(external) || len(r.Weights) == 0 || int64(len(r.Model)) >= st.Size() {
		t.Errorf("external weights: Dir %q, %d weights, %d model bytes for %d weight bytes; want the graph alone, reading its folder",
			r.Dir, len(r.Weights), len(r.Model), st.Size())
	}
	for _, l := range [][2][]ort.Info{{got.InputInfo(), want.InputInfo()}, {got.OutputInfo(), want.OutputInfo()}} {
		if fmt.Sprint(l[0]) != fmt.Sprint(l[1]) {
			t.Errorf("inputs or outputs %v, want %v as with embedded weights", l[0], l[1])
		}
	}
	in := randomInputs(attnblock.DefaultConfig(), 2, 7)
	bitwiseEqual(t, "output with external weights", runSample(t, got, in), runSample(t, want, in))
}

// runSample runs an attnblock model that takes float32 inputs on in and
// returns its out_sample.
func runSample(t *testing.T, s *ort.Session, in attnblock.Inputs) []float32 {
	t.Helper()
	cfg := attnblock.DefaultConfig()
	ts := make([]float32, in.Batch)
	for i, x := range in.Timestep {
		ts[i] = float32(x)
	}
	feeds := map[string]ort.Value{}
	defer destroy(feeds)
	for name, v := range map[string]struct {
		shape []int64
		data  []float32
	}{
		graph.SampleInput:       {[]int64{int64(in.Batch), int64(cfg.Channels), int64(cfg.Height), int64(cfg.Width)}, in.Sample},
		graph.TimestepInput:     {[]int64{int64(in.Batch)}, ts},
		graph.HiddenStatesInput: {[]int64{int64(in.Batch), int64(cfg.Tokens), int64(cfg.CtxDim)}, in.Context},
	} {
		x, err := ort.NewTensor(v.shape, v.data)
		if err != nil {
			t.Fatal(err)
		}
		feeds[name] = x
	}
	return runOut(t, s, feeds)
}

// External weights that ONNX Runtime would not read for the rewritten
// model are refused before it tries, with what is wrong and what is
// allowed: a file outside the model's folder, named so or linked to (ONNX
// Runtime 1.24.1 resolves links and refuses both), weights of a subgraph
// (which the probe cannot declare as inputs), a missing file, a file too
// short for the weights.
func TestExternalWeightsRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(t *testing.T, dir string, m *onnxpb.ModelProto, loc *onnxpb.StringStringEntryProto)
		want   []string
	}{
		{"outside the folder", func(t *testing.T, dir string, _ *onnxpb.ModelProto, loc *onnxpb.StringStringEntryProto) {
			if err := os.Rename(filepath.Join(dir, "weights.pb"), filepath.Join(filepath.Dir(dir), "weights.pb")); err != nil {
				t.Fatal(err)
			}
			loc.Value = proto.String("../weights.pb")
		}, []string{"outside the model's folder", "beside model.onnx"}},
		{"linked from outside", func(t *testing.T, dir string, _ *onnxpb.ModelProto, _ *onnxpb.StringStringEntryProto) {
			elsewhere := filepath.Join(t.TempDir(), "weights.pb")
			if err := os.Rename(filepath.Join(dir, "weights.pb"), elsewhere); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, filepath.Join(dir, "weights.pb")); err != nil {
				t.Fatal(err)
			}
		}, []string{"a link to", "outside the model's folder", "in place of the link"}},
		{"in a subgraph", func(t *testing.T, _ string, m *onnxpb.ModelProto, loc *onnxpb.StringStringEntryProto) {
			// An If whose branch holds a weight of the external file.
			g := m.GetGraph()
			var w *onnxpb.TensorProto
			for _, init := range g.GetInitializer() {
				if len(init.GetExternalData()) > 0 && init.GetExternalData()[0] == loc {
					w = init
				}
			}
			branch := &onnxpb.GraphProto{Name: proto.String("branch"), Initializer: []*onnxpb.TensorProto{w},
				Output: []*onnxpb.ValueInfoProto{{Name: w.Name}}}
			g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String("/if"), OpType: proto.String("If"), Input: []string{"cond"},
				Output: []string{"unused"}, Attribute: []*onnxpb.AttributeProto{
					{Name: proto.String("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: branch},
					{Name: proto.String("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: branch}}})
		}, []string{"of a subgraph of node \"/if\"", "only the main graph's initializers"}},
		{"missing", func(t *testing.T, _ string, _ *onnxpb.ModelProto, loc *onnxpb.StringStringEntryProto) {
			loc.Value = proto.String("gone.pb")
		},
			[]string{"gone.pb", "cannot be read", "must stay beside its model.onnx"}},
		{"truncated", func(t *testing.T, dir string, _ *onnxpb.ModelProto, _ *onnxpb.StringStringEntryProto) {
			if err := os.Truncate(filepath.Join(dir, "weights.pb"), 100); err != nil {
				t.Fatal(err)
			}
		}, []string{"weights.pb, which has 100", "incomplete"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, external := externalFP16(t)
			m := readModel(t, external)
			for _, init := range m.GetGraph().GetInitializer() {
				if init.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
					c.change(t, filepath.Dir(external), m, init.GetExternalData()[0])
					break
				}
			}
			if err := attnblock.Save(m, external); err != nil {
				t.Fatal(err)
			}
			_, err := graph.RewriteKeepingWeights(external, "VAE decoder", graph.Float32IORewrite)
			for _, w := range append(c.want, "VAE decoder") {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// readModel decodes a model file whole.
func readModel(t *testing.T, path string) *onnxpb.ModelProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}
