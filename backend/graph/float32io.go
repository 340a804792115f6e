package graph

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/modelfile"
	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
)

// An fp16 export (diffusers' conversion script or optimum-cli with --fp16,
// onnxconverter-common without keep_io_types) takes and returns float16
// tensors. The engine feeds and reads float32 everywhere, so rather than a
// second, float16 code path through every model call, Float32IO moves the
// conversion into the graph: a float16 input becomes a float32 input
// followed by a Cast to float16, and a float16 output a Cast to float32 of
// what the model computed. Given float16-representable values the model
// computes exactly what it computed before, and widening its outputs is
// exact. Given others, the Cast rounds them to nearest even, as Go's
// ort.Float32ToFloat16 would; ONNX Runtime's CPU provider, which runs most
// float16 ops in float32, may instead drop that rounding together with its
// own Cast back to float32, and then computes on the exact input.

// ioMarker is part of the name of every node Float32IO inserts.
const ioMarker = "/reword_io/"

// Float32IO rewrites g so that its float16 graph inputs and outputs are
// float32, with Casts at the boundary, and returns the names it converted
// (inputs first, in graph order; none when g has no float16 input or
// output, and then g is unchanged). Other element types are left alone.
func Float32IO(g *onnxpb.GraphProto) ([]string, error) {
	if err := checkFloat32IO(g); err != nil {
		return nil, err
	}
	var converted []string
	var head, tail []*onnxpb.NodeProto
	for _, v := range g.GetInput() {
		if onnxgraph.TensorElemType(v) != onnxgraph.Float16 || slices.ContainsFunc(g.GetInitializer(),
			func(t *onnxpb.TensorProto) bool { return t.GetName() == v.GetName() }) {
			continue
		}
		name := v.GetName()
		half := name + ioMarker + "float16"
		renameTensor(g, name, half)
		head = append(head, castNode(name, name, half, onnxgraph.Float16))
		setElemType(v, onnxgraph.Float)
		converted = append(converted, name)
	}
	for _, v := range g.GetOutput() {
		if onnxgraph.TensorElemType(v) != onnxgraph.Float16 {
			continue
		}
		name := v.GetName()
		half := name + ioMarker + "float16"
		renameTensor(g, name, half)
		tail = append(tail, castNode(name, half, name, onnxgraph.Float))
		setElemType(v, onnxgraph.Float)
		converted = append(converted, name)
	}
	if len(converted) == 0 {
		return nil, nil
	}
	g.Node = append(append(head, g.Node...), tail...)
	return converted, nil
}

// checkFloat32IO reports what would stop Float32IO, before it changes g: a
// float16 output that no node computes has no place for its Cast.
func checkFloat32IO(g *onnxpb.GraphProto) error {
	direct := map[string]bool{}
	for _, v := range g.GetInput() {
		direct[v.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		direct[t.GetName()] = true
	}
	for _, v := range g.GetOutput() {
		if onnxgraph.TensorElemType(v) == onnxgraph.Float16 && direct[v.GetName()] {
			return fmt.Errorf("graph output %q is a graph input or initializer, not computed by a node: "+
				"its float16 values cannot be cast at the boundary", v.GetName())
		}
	}
	return nil
}

// castNode casts from to the element type to, writing the tensor named out;
// the node is named after the graph input or output io it serves.
func castNode(io, from, out string, to onnxgraph.DataType) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{
		Name: proto.String(ioMarker + "Cast_" + io), OpType: proto.String("Cast"),
		Input: []string{from}, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{onnxgraph.AttrInt("to", int64(to))},
	}
}

func setElemType(v *onnxpb.ValueInfoProto, t onnxgraph.DataType) {
	v.GetType().GetTensorType().ElemType = proto.Int32(int32(t))
}

// renameTensor renames the tensor from to to wherever nodes write or read
// it, in g and in the subgraphs of its nodes (which may read outer names),
// and in g's value_info; graph inputs and outputs keep their names.
func renameTensor(g *onnxpb.GraphProto, from, to string) {
	for _, n := range g.GetNode() {
		for i, s := range n.GetInput() {
			if s == from {
				n.Input[i] = to
			}
		}
		for i, s := range n.GetOutput() {
			if s == from {
				n.Output[i] = to
			}
		}
		for _, a := range n.GetAttribute() {
			for _, sub := range subgraphs(a) {
				renameTensor(sub, from, to)
			}
		}
	}
	for _, v := range g.GetValueInfo() {
		if v.GetName() == from {
			v.Name = proto.String(to)
		}
	}
}

// A Rewrite is one change RewriteFile applies to a model's graph.
type Rewrite struct {
	// What says what it changes, for error messages.
	What string
	// Apply changes g and reports whether it did.
	Apply func(g *onnxpb.GraphProto) (bool, error)
}

// Float32IORewrite is Float32IO as a Rewrite.
var Float32IORewrite = Rewrite{
	What: "its float16 inputs and outputs cast to float32",
	Apply: func(g *onnxpb.GraphProto) (bool, error) {
		names, err := Float32IO(g)
		return len(names) > 0, err
	},
}

// PosteriorMeanRewrite is PosteriorMean of the named output as a Rewrite.
func PosteriorMeanRewrite(output string) Rewrite {
	return Rewrite{
		What:  fmt.Sprintf("its random output %q replaced by the posterior mean", output),
		Apply: func(g *onnxpb.GraphProto) (bool, error) { return PosteriorMean(g, output) },
	}
}

// ErrExternalWeights is wrapped by RewriteFile's error for a model that
// needs a rewrite and keeps its weights in external files.
var ErrExternalWeights = errors.New("its weights are in external files")

// RewriteFile applies the rewrites in order to the model file at path and
// returns the result encoded for ort.NewSessionFromBytes, or nil when none
// of them changed anything and the file can be opened as it is. The graph
// is read first without the weights; only a model that needs a rewrite is
// read whole. Weights in external files are refused: a model given as
// bytes has no folder to find them in. what names the model in errors.
func RewriteFile(path, what string, rewrites ...Rewrite) ([]byte, error) {
	m, err := modelfile.Read(path)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, r := range rewrites {
		changed, err := r.Apply(m.Proto.GetGraph())
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, what, err)
		}
		if changed {
			applied = append(applied, r.What)
		}
	}
	if len(applied) == 0 {
		return nil, nil
	}
	if m.HasExternalData() {
		return nil, fmt.Errorf("%s: %w: the %s runs rewritten in memory (%s), and a model given as bytes cannot find "+
			"external weight files: save it with the weights embedded "+
			"(onnx.save_model(model, path, save_as_external_data=False), possible below 2 GB)",
			path, ErrExternalWeights, what, strings.Join(applied, "; "))
	}
	if m, err = modelfile.ReadWithOptions(path, modelfile.Options{InlineLimit: math.MaxInt}); err != nil {
		return nil, err
	}
	for _, r := range rewrites {
		if _, err := r.Apply(m.Proto.GetGraph()); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, what, err)
		}
	}
	b, err := proto.Marshal(m.Proto)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding the rewritten %s: %w", path, what, err)
	}
	return b, nil
}
