// Package onnxgraph builds and inspects ONNX graphs held as onnxpb protos: a
// node builder that keeps names unique, attribute and value-info
// constructors, an index of producers and consumers, element-type inference
// and evaluation of small constant integer vectors (shape arithmetic).
//
// It knows nothing about diffusion models; backend/graph uses it to find and
// rewrite attention layers, and tests use it to build small models.
package onnxgraph

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/onnxpb"
)

// DataType is an ONNX tensor element type.
type DataType = onnxpb.TensorProto_DataType

// Element types this package's callers use.
const (
	Float   = onnxpb.TensorProto_FLOAT
	Float16 = onnxpb.TensorProto_FLOAT16
	Int64   = onnxpb.TensorProto_INT64
	Int32   = onnxpb.TensorProto_INT32
	Bool    = onnxpb.TensorProto_BOOL
)

// Opset returns the model's opset version for the default ONNX domain, or 0
// when it imports none.
func Opset(m *onnxpb.ModelProto) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// Builder creates nodes and initializers whose names all start with a
// prefix, numbering them so that names never repeat within one builder. It
// does not touch a graph: the caller splices Nodes and Initializers where
// they belong.
type Builder struct {
	prefix string
	nodes  []*onnxpb.NodeProto
	inits  []*onnxpb.TensorProto
	count  int
}

// NewBuilder returns a builder whose names start with prefix.
func NewBuilder(prefix string) *Builder { return &Builder{prefix: prefix} }

// Nodes returns the nodes created so far, in creation order (which is a
// valid topological order when every input existed before its node).
func (b *Builder) Nodes() []*onnxpb.NodeProto { return b.nodes }

// Initializers returns the initializers created so far.
func (b *Builder) Initializers() []*onnxpb.TensorProto { return b.inits }

func (b *Builder) fresh(base string) string {
	b.count++
	return fmt.Sprintf("%s%s_%d", b.prefix, base, b.count)
}

// Op adds a node with one output and returns the output's name.
func (b *Builder) Op(op string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	name := b.fresh(op)
	b.Node(op, name, inputs, []string{name + "_output"}, attrs...)
	return name + "_output"
}

// NamedOp is Op with the node named after base instead of op (still with
// the builder's prefix and a number), for names that say more than the op.
func (b *Builder) NamedOp(base, op string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	name := b.fresh(base)
	b.Node(op, name, inputs, []string{name + "_output"}, attrs...)
	return name + "_output"
}

// OpTo adds a node that writes the named output.
func (b *Builder) OpTo(op, output string, inputs []string, attrs ...*onnxpb.AttributeProto) {
	b.Node(op, b.fresh(op), inputs, []string{output}, attrs...)
}

// Node adds a fully specified node in the default domain.
func (b *Builder) Node(op, name string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	n := &onnxpb.NodeProto{
		Name:      proto.String(name),
		OpType:    proto.String(op),
		Input:     inputs,
		Output:    outputs,
		Attribute: attrs,
	}
	b.nodes = append(b.nodes, n)
	return n
}

// Int64s adds a 1-D int64 initializer and returns its name.
func (b *Builder) Int64s(base string, vals ...int64) string {
	name := b.fresh(base)
	b.inits = append(b.inits, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(Int64)), Dims: []int64{int64(len(vals))}, Int64Data: vals,
	})
	return name
}

// Float32s adds a float32 initializer of the given shape and returns its name.
func (b *Builder) Float32s(base string, dims []int64, vals []float32) string {
	name := b.fresh(base)
	b.inits = append(b.inits, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(Float)), Dims: dims, FloatData: vals,
	})
	return name
}

// AttrInt makes an integer attribute.
func AttrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// AttrInts makes an integer-list attribute.
func AttrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// AttrString makes a string attribute.
func AttrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// AttrGraph makes a graph attribute (an If node's branches).
func AttrGraph(name string, g *onnxpb.GraphProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: g}
}

// Subgraph returns a graph of the builder's nodes whose one output is the
// tensor out of element type elem, shape left to inference: a branch of an
// If node. Its nodes may read any tensor of the enclosing graph; the
// builder's initializers are not included (the caller puts them in the
// enclosing graph, where the branch can read them).
func (b *Builder) Subgraph(name, out string, elem DataType) *onnxpb.GraphProto {
	return b.SubgraphOutputs(name, elem, out)
}

// SubgraphOutputs is Subgraph with several outputs, all of element type
// elem.
func (b *Builder) SubgraphOutputs(name string, elem DataType, outs ...string) *onnxpb.GraphProto {
	g := &onnxpb.GraphProto{Name: proto.String(name), Node: b.nodes}
	for _, out := range outs {
		g.Output = append(g.Output, &onnxpb.ValueInfoProto{
			Name: proto.String(out),
			Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
				ElemType: proto.Int32(int32(elem)),
			}}},
		})
	}
	return g
}

// Attr returns the node's attribute with the given name, or nil.
func Attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// Dim is one dimension of a declared tensor shape: a fixed size, or a
// symbolic name for a size chosen at run time.
type Dim struct {
	Size  int64
	Param string
}

// Fixed is a dimension of known size.
func Fixed(n int64) Dim { return Dim{Size: n} }

// Symbolic is a dimension named name whose size is set at run time.
func Symbolic(name string) Dim { return Dim{Param: name} }

// TensorInfo declares a tensor graph input or output.
func TensorInfo(name string, elem DataType, dims ...Dim) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d.Param != "" {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Size}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(elem)), Shape: shape,
		}}},
	}
}

// TensorDims returns the declared dimensions of a tensor value (Size -1 and
// Param set for symbolic ones; Size -1 and Param "" for unnamed unknown
// ones), and false when the value declares no tensor shape.
func TensorDims(v *onnxpb.ValueInfoProto) ([]Dim, bool) {
	t := v.GetType().GetTensorType()
	if t == nil || t.GetShape() == nil {
		return nil, false
	}
	dims := make([]Dim, len(t.GetShape().GetDim()))
	for i, d := range t.GetShape().GetDim() {
		switch x := d.GetValue().(type) {
		case *onnxpb.TensorShapeProto_Dimension_DimValue:
			dims[i] = Dim{Size: x.DimValue}
		case *onnxpb.TensorShapeProto_Dimension_DimParam:
			dims[i] = Dim{Size: -1, Param: x.DimParam}
		default:
			dims[i] = Dim{Size: -1}
		}
	}
	return dims, true
}

// TensorElemType returns the declared element type of a tensor value, or
// UNDEFINED.
func TensorElemType(v *onnxpb.ValueInfoProto) DataType {
	return DataType(v.GetType().GetTensorType().GetElemType())
}
