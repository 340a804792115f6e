package ort

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// The tests build their ONNX models in Go so that they exercise the real
// library without depending on any model file.

const (
	onnxFloat   = 1
	onnxFloat16 = 10
)

type valueInfo struct {
	name string
	elem int
	dims []any // int64 for fixed, string for symbolic
}

type node struct {
	op       string
	in, out  []string
	intAttrs map[string]int64
}

func encodeModel(nodes []node, inputs, outputs []valueInfo) []byte {
	var graph []byte
	for i, n := range nodes {
		var nb []byte
		for _, s := range n.in {
			nb = protowire.AppendTag(nb, 1, protowire.BytesType)
			nb = protowire.AppendString(nb, s)
		}
		for _, s := range n.out {
			nb = protowire.AppendTag(nb, 2, protowire.BytesType)
			nb = protowire.AppendString(nb, s)
		}
		nb = protowire.AppendTag(nb, 3, protowire.BytesType)
		nb = protowire.AppendString(nb, n.op+string(rune('0'+i)))
		nb = protowire.AppendTag(nb, 4, protowire.BytesType)
		nb = protowire.AppendString(nb, n.op)
		for k, v := range n.intAttrs {
			var ab []byte
			ab = protowire.AppendTag(ab, 1, protowire.BytesType)
			ab = protowire.AppendString(ab, k)
			ab = protowire.AppendTag(ab, 3, protowire.VarintType)
			ab = protowire.AppendVarint(ab, uint64(v))
			ab = protowire.AppendTag(ab, 20, protowire.VarintType)
			ab = protowire.AppendVarint(ab, 2) // AttributeProto.INT
			nb = protowire.AppendTag(nb, 5, protowire.BytesType)
			nb = protowire.AppendBytes(nb, ab)
		}
		graph = protowire.AppendTag(graph, 1, protowire.BytesType)
		graph = protowire.AppendBytes(graph, nb)
	}
	graph = protowire.AppendTag(graph, 2, protowire.BytesType)
	graph = protowire.AppendString(graph, "test")
	for _, v := range inputs {
		graph = protowire.AppendTag(graph, 11, protowire.BytesType)
		graph = protowire.AppendBytes(graph, encodeValueInfo(v))
	}
	for _, v := range outputs {
		graph = protowire.AppendTag(graph, 12, protowire.BytesType)
		graph = protowire.AppendBytes(graph, encodeValueInfo(v))
	}
	var model []byte
	model = protowire.AppendTag(model, 1, protowire.VarintType) // ir_version
	model = protowire.AppendVarint(model, 8)
	var opset []byte
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, 17)
	model = protowire.AppendTag(model, 8, protowire.BytesType)
	model = protowire.AppendBytes(model, opset)
	model = protowire.AppendTag(model, 7, protowire.BytesType)
	model = protowire.AppendBytes(model, graph)
	return model
}

func encodeValueInfo(v valueInfo) []byte {
	var shape []byte
	for _, d := range v.dims {
		var db []byte
		switch d := d.(type) {
		case int:
			db = protowire.AppendTag(db, 1, protowire.VarintType)
			db = protowire.AppendVarint(db, uint64(d))
		case string:
			db = protowire.AppendTag(db, 2, protowire.BytesType)
			db = protowire.AppendString(db, d)
		}
		shape = protowire.AppendTag(shape, 1, protowire.BytesType)
		shape = protowire.AppendBytes(shape, db)
	}
	var tensor []byte
	tensor = protowire.AppendTag(tensor, 1, protowire.VarintType)
	tensor = protowire.AppendVarint(tensor, uint64(v.elem))
	tensor = protowire.AppendTag(tensor, 2, protowire.BytesType)
	tensor = protowire.AppendBytes(tensor, shape)
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tensor)
	var vi []byte
	vi = protowire.AppendTag(vi, 1, protowire.BytesType)
	vi = protowire.AppendString(vi, v.name)
	vi = protowire.AppendTag(vi, 2, protowire.BytesType)
	vi = protowire.AppendBytes(vi, typ)
	return vi
}

func addModel(t *testing.T) *Session {
	t.Helper()
	model := encodeModel(
		[]node{{op: "Add", in: []string{"x", "y"}, out: []string{"z"}}},
		[]valueInfo{{"x", onnxFloat, []any{"batch", 3}}, {"y", onnxFloat, []any{"batch", 3}}},
		[]valueInfo{{"z", onnxFloat, []any{"batch", 3}}},
	)
	s, err := NewSessionFromBytes("add", model, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustTensor(t *testing.T, shape []int64, data []float32) *Tensor[float32] {
	t.Helper()
	v, err := NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

func TestRunGoBuiltGraph(t *testing.T) {
	s := addModel(t)
	if got := s.InputInfo()[0].String(); got != "x float32[?,3]" {
		t.Errorf("input info = %q, want x float32[?,3]", got)
	}
	x := mustTensor(t, []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	y := mustTensor(t, []int64{2, 3}, []float32{10, 20, 30, 40, 50, 60})
	out, err := s.Run(map[string]Value{"x": x, "y": y})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	z, shape, err := out.Float32("z")
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{11, 22, 33, 44, 55, 66}
	if len(shape) != 2 || shape[0] != 2 || shape[1] != 3 {
		t.Fatalf("shape = %v, want [2 3]", shape)
	}
	for i := range want {
		if z[i] != want[i] {
			t.Fatalf("z = %v, want %v", z, want)
		}
	}
}

func TestRunIntoReusesOutputs(t *testing.T) {
	s := addModel(t)
	x := mustTensor(t, []int64{1, 3}, []float32{1, 2, 3})
	y := mustTensor(t, []int64{1, 3}, []float32{1, 1, 1})
	zBuf := make([]float32, 3)
	z := mustTensor(t, []int64{1, 3}, zBuf)
	for i := range 3 {
		x.GetData()[0] = float32(i)
		if err := s.RunInto(context.Background(), map[string]Value{"x": x, "y": y}, map[string]Value{"z": z}); err != nil {
			t.Fatal(err)
		}
		if zBuf[0] != float32(i)+1 || zBuf[2] != 4 {
			t.Fatalf("run %d: z = %v", i, zBuf)
		}
	}
}

// TestRunIntoLeavesOutOutputs runs a model with its one output left out
// (computed and dropped) and refuses outputs it does not have or that come
// without a value.
func TestRunIntoLeavesOutOutputs(t *testing.T) {
	s := addModel(t)
	x := mustTensor(t, []int64{1, 3}, []float32{1, 2, 3})
	y := mustTensor(t, []int64{1, 3}, []float32{1, 1, 1})
	in := map[string]Value{"x": x, "y": y}
	if err := s.RunInto(context.Background(), in, map[string]Value{}); err != nil {
		t.Fatalf("no outputs given: %v", err)
	}
	z := mustTensor(t, []int64{1, 3}, make([]float32, 3))
	err := s.RunInto(context.Background(), in, map[string]Value{"z": z, "w": z})
	if err == nil || !strings.Contains(err.Error(), "unknown output name(s) w") {
		t.Errorf("unknown output: err = %v", err)
	}
	err = s.RunInto(context.Background(), in, map[string]Value{"z": nil})
	if err == nil || !strings.Contains(err.Error(), `output "z" was given no value`) {
		t.Errorf("nil output: err = %v", err)
	}
}

func TestRunRejectsBadInputs(t *testing.T) {
	s := addModel(t)
	x := mustTensor(t, []int64{1, 3}, []float32{1, 2, 3})
	_, err := s.Run(map[string]Value{"x": x})
	if err == nil || !strings.Contains(err.Error(), `missing input "y"`) {
		t.Errorf("missing input: err = %v", err)
	}
	_, err = s.Run(map[string]Value{"x": x, "y": x, "w": x})
	if err == nil || !strings.Contains(err.Error(), "unknown input name(s) w") {
		t.Errorf("unknown input: err = %v", err)
	}
	bad := mustTensor(t, []int64{1, 4}, []float32{1, 2, 3, 4})
	_, err = s.Run(map[string]Value{"x": x, "y": bad})
	if err == nil {
		t.Error("mismatched shapes: no error")
	}
	if _, err := NewTensor([]int64{2, 2}, []float32{1}); err == nil {
		t.Error("NewTensor with too little data: no error")
	}
}

func TestRunContextCancelled(t *testing.T) {
	s := addModel(t)
	x := mustTensor(t, []int64{1, 3}, []float32{1, 2, 3})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.RunContext(ctx, map[string]Value{"x": x, "y": x})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestRunCancelledAsItEnds cancels runs at every moment around their end:
// the cancellation's Terminate must never touch run options the finished
// run has destroyed (make test runs this package under the race detector,
// which saw exactly that once in a cluster test).
func TestRunCancelledAsItEnds(t *testing.T) {
	s := addModel(t)
	x := mustTensor(t, []int64{1, 3}, []float32{1, 2, 3})
	for i := 0; i < 300; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for range i % 7 {
				runtime.Gosched()
			}
			cancel()
		}()
		out, err := s.RunContext(ctx, map[string]Value{"x": x, "y": x})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: %v, want success or context.Canceled", i, err)
		}
		for _, v := range out {
			v.Destroy()
		}
		cancel()
	}
}

func TestClosedSession(t *testing.T) {
	s := addModel(t)
	x := mustTensor(t, []int64{1, 3}, []float32{1, 2, 3})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(map[string]Value{"x": x, "y": x}); !errors.Is(err, ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
}

// TestFloat16MatchesRuntimeCast checks our float16 conversion against ONNX
// Runtime's own Cast on normal, subnormal, halfway and out-of-range values.
func TestFloat16MatchesRuntimeCast(t *testing.T) {
	model := encodeModel(
		[]node{{op: "Cast", in: []string{"x"}, out: []string{"h"}, intAttrs: map[string]int64{"to": onnxFloat16}}},
		[]valueInfo{{"x", onnxFloat, []any{"n"}}},
		[]valueInfo{{"h", onnxFloat16, []any{"n"}}},
	)
	s, err := NewSessionFromBytes("cast", model, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	values := []float32{0, -0, 1, -2.5, 65504, 65520, 1e6, 6.1e-5, 5.96e-8, 2.98e-8, 1e-9, 0.1, 1.0009766, 1.00048828125, float32(math.Inf(-1))}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		values = append(values, float32(r.NormFloat64()*math.Pow(2, float64(r.IntN(40)-28))))
	}
	shape := []int64{int64(len(values))}
	x := mustTensor(t, shape, values)
	if _, err := s.Run(map[string]Value{"x": x}); err == nil || !strings.Contains(err.Error(), "RunInto") {
		t.Errorf("Run with a float16 output: err = %v, want advice to use RunInto", err)
	}
	h16, err := NewFloat16Tensor(shape, make([]float32, len(values)))
	if err != nil {
		t.Fatal(err)
	}
	defer h16.Destroy()
	if err := s.RunInto(context.Background(), map[string]Value{"x": x}, map[string]Value{"h": h16}); err != nil {
		t.Fatal(err)
	}
	got, _, err := Float32Data(h16)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		want := Float16ToFloat32(Float32ToFloat16(v))
		if math.Float32bits(got[i]) != math.Float32bits(want) {
			t.Fatalf("Cast(%g) = %g from ONNX Runtime, %g from Float32ToFloat16", v, got[i], want)
		}
	}
	// And back: a float16 input built by NewFloat16Tensor reads back exactly.
	h, err := NewFloat16Tensor([]int64{3}, []float32{1.5, -0.25, 1e-7})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Destroy()
	back, _, err := Float32Data(h)
	if err != nil {
		t.Fatal(err)
	}
	if back[0] != 1.5 || back[1] != -0.25 || back[2] != Float16ToFloat32(Float32ToFloat16(1e-7)) {
		t.Errorf("float16 round trip = %v", back)
	}
}

func TestCUDARequestFailsClearlyOnCPUBuild(t *testing.T) {
	model := encodeModel(
		[]node{{op: "Add", in: []string{"x", "y"}, out: []string{"z"}}},
		[]valueInfo{{"x", onnxFloat, []any{1}}, {"y", onnxFloat, []any{1}}},
		[]valueInfo{{"z", onnxFloat, []any{1}}},
	)
	s, err := NewSessionFromBytes("add", model, Options{Provider: CUDA})
	if err == nil {
		s.Close()
		t.Skip("this ONNX Runtime build has a working CUDA provider")
	}
	if !strings.Contains(err.Error(), LibraryEnv) || !strings.Contains(err.Error(), "CUDA") {
		t.Errorf("error does not say how to get CUDA: %v", err)
	}
}

func TestParseProvider(t *testing.T) {
	for in, want := range map[string]Provider{"": CPU, "cpu": CPU, " CUDA ": CUDA} {
		if got, err := ParseProvider(in); err != nil || got != want {
			t.Errorf("ParseProvider(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseProvider("tpu"); err == nil || !strings.Contains(err.Error(), `"cpu"`) {
		t.Errorf("ParseProvider(tpu) err = %v", err)
	}
}

func TestMissingLibraryNamesTheVariable(t *testing.T) {
	t.Setenv(LibraryEnv, "/nonexistent/libonnxruntime.so.1")
	_, err := LibraryPath()
	if err == nil || !strings.Contains(err.Error(), LibraryEnv) {
		t.Errorf("err = %v, want it to name %s", err, LibraryEnv)
	}
	msg := (&MissingLibraryError{Searched: []string{"/a"}}).Error()
	if !strings.Contains(msg, LibraryEnv) || !strings.Contains(msg, "make ort") {
		t.Errorf("MissingLibraryError = %q", msg)
	}
}

func TestFloat16Conversions(t *testing.T) {
	for _, c := range []struct {
		f float32
		h uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00},
		{6.103515625e-05, 0x0400}, {5.960464477539063e-08, 0x0001}, {0.333251953125, 0x3555},
	} {
		if got := Float32ToFloat16(c.f); got != c.h {
			t.Errorf("Float32ToFloat16(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
		if c.h != 0x7c00 {
			if got := Float16ToFloat32(c.h); got != c.f {
				t.Errorf("Float16ToFloat32(%#04x) = %g, want %g", c.h, got, c.f)
			}
		}
	}
	if !math.IsNaN(float64(Float16ToFloat32(Float32ToFloat16(float32(math.NaN()))))) {
		t.Error("NaN did not survive")
	}
}
