package graph_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/backend/ort"
)

// fp16IOModel saves an fp16 export with float16 inputs and outputs, a
// float16 timestep included, and returns its network and path.
func fp16IOModel(t *testing.T) (*attnblock.Network, string) {
	t.Helper()
	cfg := attnblock.DefaultConfig()
	cfg.FP16, cfg.FP16IO, cfg.TimestepType = true, true, onnxgraph.Float
	net, err := attnblock.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return net, saveModel(t, net.Model())
}

// Float32IO changes only the boundary: fed the same values, the rewritten
// model returns exactly what the fp16 export returns when fed float16
// tensors. The values are float16 ones: given others, ONNX Runtime's CPU
// provider, which runs most float16 ops in float32, drops the input Cast's
// rounding along with its own Cast back to float32 (max |diff| 0.025 on
// outputs up to 13 here, a few float16 steps): the rewritten model then
// computes on the exact float32 input, which is no loss.
func TestFloat32IOIsExact(t *testing.T) {
	net, path := fp16IOModel(t)
	cfg := net.Cfg
	rewritten, err := graph.RewriteFile(path, "UNet", graph.Float32IORewrite)
	if err != nil || rewritten == nil {
		t.Fatalf("RewriteFile: %d bytes, %v", len(rewritten), err)
	}
	orig, err := ort.NewSession(path, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	conv, err := ort.NewSessionFromBytes(path, rewritten, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer conv.Close()
	for _, list := range [][]ort.Info{conv.InputInfo(), conv.OutputInfo()} {
		for _, i := range list {
			if i.DType != ort.Float32 {
				t.Errorf("rewritten %s is %s, want float32", i.Name, i.DType)
			}
		}
	}

	in := randomInputs(cfg, 2, 3)
	ts := make([]float32, in.Batch)
	for i, x := range in.Timestep {
		ts[i] = float32(x)
	}
	sampleShape := []int64{int64(in.Batch), int64(cfg.Channels), int64(cfg.Height), int64(cfg.Width)}
	values := map[string]struct {
		shape []int64
		data  []float32
	}{
		graph.SampleInput:       {sampleShape, in.Sample},
		graph.TimestepInput:     {[]int64{int64(in.Batch)}, ts},
		graph.HiddenStatesInput: {[]int64{int64(in.Batch), int64(cfg.Tokens), int64(cfg.CtxDim)}, in.Context},
	}
	halfIn, wideIn := map[string]ort.Value{}, map[string]ort.Value{}
	for name, v := range values {
		for i, x := range v.data {
			v.data[i] = ort.Float16ToFloat32(ort.Float32ToFloat16(x))
		}
		h, err := ort.NewFloat16Tensor(v.shape, v.data)
		if err != nil {
			t.Fatal(err)
		}
		halfIn[name] = h
		w, err := ort.NewTensor(v.shape, v.data)
		if err != nil {
			t.Fatal(err)
		}
		wideIn[name] = w
	}
	defer destroy(halfIn)
	defer destroy(wideIn)
	halfOut, err := ort.NewFloat16Tensor(sampleShape, make([]float32, len(in.Sample)))
	if err != nil {
		t.Fatal(err)
	}
	defer halfOut.Destroy()
	if err := orig.RunInto(context.Background(), halfIn, map[string]ort.Value{"out_sample": halfOut}); err != nil {
		t.Fatal(err)
	}
	want, _, err := ort.Float32Data(halfOut)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := conv.Run(wideIn)
	if err != nil {
		t.Fatal(err)
	}
	defer outs.Destroy()
	got, _, err := outs.Float32("out_sample")
	if err != nil {
		t.Fatal(err)
	}
	bitwiseEqual(t, "rewritten model's output", got, want)
}

func TestFloat32IOLeavesOrRefuses(t *testing.T) {
	// A float32 model needs no rewrite.
	net, err := attnblock.New(attnblock.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m := net.Model()
	before := proto.Clone(m)
	if names, err := graph.Float32IO(m.GetGraph()); names != nil || err != nil || !proto.Equal(m, before) {
		t.Errorf("float32 model: converted %v, %v; want it unchanged", names, err)
	}
	if b, err := graph.RewriteFile(saveModel(t, m), "UNet", graph.Float32IORewrite); b != nil || err != nil {
		t.Errorf("float32 model file: %d bytes, %v; want no rewrite", len(b), err)
	}

	// A float16 output that no node computes has nowhere for its Cast.
	fp16, _ := fp16IOModel(t)
	m = fp16.Model()
	g := m.GetGraph()
	g.Output = append(g.Output, proto.Clone(g.GetInput()[0]).(*onnxpb.ValueInfoProto))
	before = proto.Clone(m)
	if _, err := graph.Float32IO(g); err == nil || !strings.Contains(err.Error(), "not computed by a node") || !proto.Equal(m, before) {
		t.Errorf("pass-through float16 output: %v; want a refusal that leaves the graph as it was", err)
	}
}

// An fp16 export instrumented for attention control takes and returns
// float32 tensors (controls and maps were float32 already), and the
// description says what was converted.
func TestInstrumentFP16ExportDescription(t *testing.T) {
	_, path := fp16IOModel(t)
	desc, inst, err := graph.InstrumentFile(path, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewSession(inst, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, list := range [][]ort.Info{s.InputInfo(), s.OutputInfo()} {
		for _, i := range list {
			if i.DType != ort.Float32 {
				t.Errorf("instrumented %s is %s, want float32", i.Name, i.DType)
			}
		}
	}
	var table strings.Builder
	if err := desc.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("float16 export: %s, %s, %s, out_sample cast", graph.SampleInput, graph.TimestepInput, graph.HiddenStatesInput)
	if !strings.Contains(table.String(), want) || desc.TimestepType != "float32" {
		t.Errorf("description: timestep %s, table:\n%s\nwant float32 and a line %q", desc.TimestepType, table.String(), want)
	}
}
