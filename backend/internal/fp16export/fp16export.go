// Package fp16export makes float16 copies of float32 ONNX models, the way
// GPU users' fp16 exports come: every float tensor of the graph — weights,
// constants, graph inputs and outputs — becomes float16, as
// onnxconverter-common's convert_float_to_float16 does with
// keep_io_types=False, and the ops that exporters keep in float32 run in
// float32 between Casts. With Options.UpcastSoftmax every Softmax runs in
// float32 between Casts too, as torch exports diffusers' attention with
// upcast_softmax (SD 2.x), so tests can build both kinds of fp16 UNet from
// one float32 model without Python.
//
// It serves tests: it handles the ops Reword's test models and Stable
// Diffusion exports contain and refuses graphs with subgraphs.
package fp16export

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/modelfile"
	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/backend/ort"
)

// Options tune Convert.
type Options struct {
	// UpcastSoftmax computes every Softmax in float32: Cast, Softmax, Cast.
	UpcastSoftmax bool
}

// float32Ops are the ops kept in float32 between Casts: those of
// onnxconverter-common's DEFAULT_OP_BLOCK_LIST that diffusion exports
// contain (Resize and Upsample also take float32 scales whatever X is),
// and Pow, the variance of a layer norm exported at opset < 17 as its
// decomposition, which torch computes in float32 from float16 inputs.
// (With a float16 Pow whose exponent constant several layer norms share,
// ONNX Runtime 1.24.1's CPU provider fails to load the model: its
// SimplifiedLayerNormFusion loses a Cast it inserted.)
var float32Ops = map[string]bool{
	"Resize": true, "Upsample": true, "Range": true, "CumSum": true, "TopK": true,
	"Min": true, "Max": true, "RandomUniformLike": true, "NonMaxSuppression": true, "RoiAlign": true,
	"Pow": true,
}

// dtypeOps take the element type of their output from a dtype attribute.
var dtypeOps = map[string]bool{
	"RandomNormal": true, "RandomNormalLike": true, "RandomUniform": true, "EyeLike": true,
}

// maxHalf is the largest finite float16: larger finite values saturate
// to it, as torch's float16 masks use finfo(float16).min instead of
// float32's.
const maxHalf = 65504

// ConvertFile writes a float16 copy of the model file src (weights
// embedded, read whole) to dst.
func ConvertFile(src, dst string, opts Options) error {
	m, err := modelfile.ReadWithOptions(src, modelfile.Options{InlineLimit: math.MaxInt})
	if err != nil {
		return err
	}
	if m.HasExternalData() {
		return fmt.Errorf("fp16export: %s has external weights; only embedded ones are converted", src)
	}
	if err := Convert(m.Proto, opts); err != nil {
		return fmt.Errorf("fp16export: %s: %w", src, err)
	}
	b, err := proto.Marshal(m.Proto)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// Convert rewrites m in place to compute in float16.
func Convert(m *onnxpb.ModelProto, opts Options) error {
	g := m.GetGraph()
	ix := onnxgraph.NewIndex(g)
	isFloat := func(name string) bool { return name != "" && ix.ElemType(name) == onnxgraph.Float }
	var nodes []*onnxpb.NodeProto
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil || len(a.GetGraphs()) > 0 {
				return fmt.Errorf("node %q has a subgraph, which fp16export does not convert", n.GetName())
			}
		}
		if float32Ops[n.GetOpType()] || opts.UpcastSoftmax && n.GetOpType() == "Softmax" {
			nodes = append(nodes, inFloat32(n, isFloat)...)
			continue
		}
		if err := halfAttributes(n); err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	g.Node = nodes
	for _, t := range g.GetInitializer() {
		if onnxgraph.DataType(t.GetDataType()) == onnxgraph.Float {
			if err := halfTensor(t); err != nil {
				return err
			}
		}
	}
	for _, list := range [][]*onnxpb.ValueInfoProto{g.GetInput(), g.GetOutput(), g.GetValueInfo()} {
		for _, v := range list {
			if tt := v.GetType().GetTensorType(); tt != nil && onnxgraph.DataType(tt.GetElemType()) == onnxgraph.Float {
				tt.ElemType = proto.Int32(int32(onnxgraph.Float16))
			}
		}
	}
	return nil
}

// inFloat32 returns n with Casts to float32 before its float inputs and
// back to float16 after its float outputs.
func inFloat32(n *onnxpb.NodeProto, isFloat func(string) bool) []*onnxpb.NodeProto {
	var before, after []*onnxpb.NodeProto
	for i, in := range n.GetInput() {
		if isFloat(in) {
			wide := fmt.Sprintf("%s/fp32_in%d", n.GetName(), i)
			before = append(before, cast(in, wide, onnxgraph.Float))
			n.Input[i] = wide
		}
	}
	for i, out := range n.GetOutput() {
		if isFloat(out) {
			wide := fmt.Sprintf("%s/fp32_out%d", n.GetName(), i)
			after = append(after, cast(wide, out, onnxgraph.Float16))
			n.Output[i] = wide
		}
	}
	return append(append(before, n), after...)
}

func cast(in, out string, to onnxgraph.DataType) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{
		Name: proto.String(out + "/Cast"), OpType: proto.String("Cast"), Input: []string{in}, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{onnxgraph.AttrInt("to", int64(to))},
	}
}

// halfAttributes makes the float32 types and values in n's attributes
// float16: Cast targets, dtype attributes, Constant and ConstantOfShape
// values.
func halfAttributes(n *onnxpb.NodeProto) error {
	op := n.GetOpType()
	for _, a := range n.GetAttribute() {
		switch {
		case op == "Cast" && a.GetName() == "to" && onnxgraph.DataType(a.GetI()) == onnxgraph.Float,
			dtypeOps[op] && a.GetName() == "dtype" && onnxgraph.DataType(a.GetI()) == onnxgraph.Float:
			a.I = proto.Int64(int64(onnxgraph.Float16))
		case (op == "Constant" || op == "ConstantOfShape") && a.GetName() == "value" &&
			onnxgraph.DataType(a.GetT().GetDataType()) == onnxgraph.Float:
			if err := halfTensor(a.GetT()); err != nil {
				return fmt.Errorf("node %q: %w", n.GetName(), err)
			}
		case op == "Constant" && (a.GetName() == "value_float" || a.GetName() == "value_floats"):
			vals, dims := a.GetFloats(), []int64{int64(len(a.GetFloats()))}
			if a.GetName() == "value_float" {
				vals, dims = []float32{a.GetF()}, nil
			}
			t := &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxgraph.Float)), Dims: dims, FloatData: vals}
			if err := halfTensor(t); err != nil {
				return err
			}
			*a = onnxpb.AttributeProto{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
		}
	}
	if op == "ConstantOfShape" && onnxgraph.Attr(n, "value") == nil {
		// The default value is a float32 zero.
		t := &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxgraph.Float16)), Dims: []int64{1}, RawData: []byte{0, 0}}
		n.Attribute = append(n.Attribute, &onnxpb.AttributeProto{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t})
	}
	return nil
}

// halfTensor converts a float32 tensor's values to float16, rounding to
// nearest even and saturating finite values beyond float16's range.
func halfTensor(t *onnxpb.TensorProto) error {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return fmt.Errorf("tensor %q has external data", t.GetName())
	}
	vals := t.GetFloatData()
	if raw := t.GetRawData(); len(raw) > 0 {
		if len(raw)%4 != 0 {
			return fmt.Errorf("tensor %q has %d raw bytes, not a whole number of float32 values", t.GetName(), len(raw))
		}
		vals = make([]float32, len(raw)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	half := make([]byte, 2*len(vals))
	for i, v := range vals {
		if !math.IsInf(float64(v), 0) {
			v = float32(math.Max(-maxHalf, math.Min(maxHalf, float64(v))))
		}
		binary.LittleEndian.PutUint16(half[2*i:], ort.Float32ToFloat16(v))
	}
	t.DataType, t.FloatData, t.RawData = proto.Int32(int32(onnxgraph.Float16)), nil, half
	return nil
}
