package onnxgraph

import (
	"encoding/binary"

	"reword/backend/graph/onnxpb"
)

// Index answers structural questions about one graph: who produces and who
// reads each tensor, and what is known about it. Build it after the graph
// is complete; it does not follow later edits.
type Index struct {
	Graph *onnxpb.GraphProto
	// Producer maps a tensor name to the node that writes it (absent for
	// graph inputs and initializers).
	Producer map[string]*onnxpb.NodeProto
	// Consumers maps a tensor name to the nodes that read it, in graph order.
	Consumers map[string][]*onnxpb.NodeProto
	// Initializer maps a name to its initializer.
	Initializer map[string]*onnxpb.TensorProto
	// Input maps a graph input's name to its declaration.
	Input map[string]*onnxpb.ValueInfoProto
	// Output maps a graph output's name to its declaration.
	Output map[string]*onnxpb.ValueInfoProto

	elemTypes map[string]DataType
}

// NewIndex indexes g.
func NewIndex(g *onnxpb.GraphProto) *Index {
	ix := &Index{
		Graph:       g,
		Producer:    map[string]*onnxpb.NodeProto{},
		Consumers:   map[string][]*onnxpb.NodeProto{},
		Initializer: map[string]*onnxpb.TensorProto{},
		Input:       map[string]*onnxpb.ValueInfoProto{},
		Output:      map[string]*onnxpb.ValueInfoProto{},
	}
	for _, n := range g.GetNode() {
		for _, out := range n.GetOutput() {
			if out != "" {
				ix.Producer[out] = n
			}
		}
		for _, in := range n.GetInput() {
			if in != "" {
				ix.Consumers[in] = append(ix.Consumers[in], n)
			}
		}
	}
	for _, t := range g.GetInitializer() {
		ix.Initializer[t.GetName()] = t
	}
	for _, v := range g.GetInput() {
		ix.Input[v.GetName()] = v
	}
	for _, v := range g.GetOutput() {
		ix.Output[v.GetName()] = v
	}
	ix.elemTypes = inferElemTypes(ix)
	return ix
}

// ElemType returns the element type of a tensor, from declarations where
// the model has them and otherwise inferred through the graph; UNDEFINED
// when neither says.
func (ix *Index) ElemType(name string) DataType { return ix.elemTypes[name] }

// inferElemTypes propagates element types through the graph in node order
// (ONNX requires topological order). Declared types (inputs, initializers,
// value_info, outputs) win over inferred ones.
func inferElemTypes(ix *Index) map[string]DataType {
	types := map[string]DataType{}
	declare := func(v *onnxpb.ValueInfoProto) {
		if t := TensorElemType(v); t != onnxpb.TensorProto_UNDEFINED {
			types[v.GetName()] = t
		}
	}
	for _, v := range ix.Graph.GetInput() {
		declare(v)
	}
	for _, t := range ix.Graph.GetInitializer() {
		types[t.GetName()] = DataType(t.GetDataType())
	}
	declared := map[string]DataType{}
	for _, list := range [][]*onnxpb.ValueInfoProto{ix.Graph.GetValueInfo(), ix.Graph.GetOutput()} {
		for _, v := range list {
			if t := TensorElemType(v); t != onnxpb.TensorProto_UNDEFINED {
				declared[v.GetName()] = t
			}
		}
	}
	for _, n := range ix.Graph.GetNode() {
		t := nodeOutputType(n, types)
		for _, out := range n.GetOutput() {
			if d, ok := declared[out]; ok {
				types[out] = d
			} else if t != onnxpb.TensorProto_UNDEFINED {
				types[out] = t
			}
		}
	}
	return types
}

// nodeOutputType is the element type of a node's (first) output under the
// rules of the ops UNet exports use; most ops keep their first input's type.
func nodeOutputType(n *onnxpb.NodeProto, types map[string]DataType) DataType {
	in := func(i int) DataType {
		if i < len(n.GetInput()) {
			return types[n.GetInput()[i]]
		}
		return onnxpb.TensorProto_UNDEFINED
	}
	if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
		return onnxpb.TensorProto_UNDEFINED
	}
	switch n.GetOpType() {
	case "Cast":
		if a := Attr(n, "to"); a != nil {
			return DataType(a.GetI())
		}
		return onnxpb.TensorProto_UNDEFINED
	case "CastLike":
		return in(1)
	case "Shape", "Size", "NonZero", "ArgMax", "ArgMin":
		return Int64
	case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf":
		return Bool
	case "Where":
		return in(1)
	case "If":
		// The branches' outputs: the instrumentation's If nodes declare
		// their element type.
		if a := Attr(n, "then_branch"); a != nil && len(a.GetG().GetOutput()) > 0 {
			return TensorElemType(a.GetG().GetOutput()[0])
		}
		return onnxpb.TensorProto_UNDEFINED
	case "Constant":
		return constantType(n)
	case "ConstantOfShape":
		if a := Attr(n, "value"); a != nil && a.GetT() != nil {
			return DataType(a.GetT().GetDataType())
		}
		return Float
	}
	for i := range n.GetInput() {
		if t := in(i); t != onnxpb.TensorProto_UNDEFINED {
			return t
		}
	}
	return onnxpb.TensorProto_UNDEFINED
}

func constantType(n *onnxpb.NodeProto) DataType {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "value":
			return DataType(a.GetT().GetDataType())
		case "value_float", "value_floats":
			return Float
		case "value_int", "value_ints":
			return Int64
		case "value_string", "value_strings":
			return onnxpb.TensorProto_STRING
		}
	}
	return onnxpb.TensorProto_UNDEFINED
}

// IntVector is a small integer vector whose length is known but whose
// elements may each be known or not, as in a Reshape target built from
// constants and run-time dimensions.
type IntVector struct {
	Values []int64
	Known  []bool
}

// ConstInts evaluates the integer vector held by a tensor as far as the
// graph determines it without running: initializers and Constant nodes are
// known; Concat, Unsqueeze, Squeeze, Cast, Identity and Gather with constant
// indices keep the length and pass known elements through; elementwise
// arithmetic on two known operands is computed. It returns false when even
// the length is unknown.
func (ix *Index) ConstInts(name string) (IntVector, bool) {
	return ix.constInts(name, 0)
}

// maxConstDepth bounds the backward walk of ConstInts.
const maxConstDepth = 16

func (ix *Index) constInts(name string, depth int) (IntVector, bool) {
	if depth > maxConstDepth {
		return IntVector{}, false
	}
	if t, ok := ix.Initializer[name]; ok {
		return tensorInts(t)
	}
	n := ix.Producer[name]
	if n == nil || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
		return IntVector{}, false
	}
	arg := func(i int) (IntVector, bool) {
		if i >= len(n.GetInput()) {
			return IntVector{}, false
		}
		return ix.constInts(n.GetInput()[i], depth+1)
	}
	switch n.GetOpType() {
	case "Constant":
		for _, a := range n.GetAttribute() {
			switch a.GetName() {
			case "value":
				return tensorInts(a.GetT())
			case "value_int":
				return known([]int64{a.GetI()}), true
			case "value_ints":
				return known(a.GetInts()), true
			}
		}
	case "Identity", "Cast", "Unsqueeze", "Squeeze":
		return arg(0)
	case "Concat":
		var v IntVector
		for i := range n.GetInput() {
			p, ok := arg(i)
			if !ok {
				return IntVector{}, false
			}
			v.Values = append(v.Values, p.Values...)
			v.Known = append(v.Known, p.Known...)
		}
		return v, true
	case "Gather":
		idx, ok := arg(1)
		if !ok || !allKnown(idx) {
			return IntVector{}, false
		}
		data, dataOK := arg(0)
		v := IntVector{Values: make([]int64, len(idx.Values)), Known: make([]bool, len(idx.Values))}
		for i, k := range idx.Values {
			if dataOK && k < 0 {
				k += int64(len(data.Values))
			}
			if dataOK && k >= 0 && k < int64(len(data.Values)) {
				v.Values[i], v.Known[i] = data.Values[k], data.Known[k]
			}
		}
		return v, true
	case "Add", "Sub", "Mul", "Div":
		a, okA := arg(0)
		b, okB := arg(1)
		if !okA || !okB {
			return IntVector{}, false
		}
		return elementwise(n.GetOpType(), a, b)
	}
	return IntVector{}, false
}

func elementwise(op string, a, b IntVector) (IntVector, bool) {
	l := len(a.Values)
	if len(b.Values) > l {
		l = len(b.Values)
	}
	if (len(a.Values) != l && len(a.Values) != 1) || (len(b.Values) != l && len(b.Values) != 1) {
		return IntVector{}, false
	}
	at := func(v IntVector, i int) (int64, bool) {
		if len(v.Values) == 1 {
			return v.Values[0], v.Known[0]
		}
		return v.Values[i], v.Known[i]
	}
	out := IntVector{Values: make([]int64, l), Known: make([]bool, l)}
	for i := 0; i < l; i++ {
		x, kx := at(a, i)
		y, ky := at(b, i)
		if !kx || !ky {
			continue
		}
		switch op {
		case "Add":
			out.Values[i] = x + y
		case "Sub":
			out.Values[i] = x - y
		case "Mul":
			out.Values[i] = x * y
		case "Div":
			if y == 0 {
				continue
			}
			out.Values[i] = x / y
		}
		out.Known[i] = true
	}
	return out, true
}

func known(v []int64) IntVector {
	k := make([]bool, len(v))
	for i := range k {
		k[i] = true
	}
	return IntVector{Values: append([]int64(nil), v...), Known: k}
}

func allKnown(v IntVector) bool {
	for _, k := range v.Known {
		if !k {
			return false
		}
	}
	return true
}

// tensorInts reads an int64 or int32 tensor held in the proto (not external
// data, not a payload left on disk).
func tensorInts(t *onnxpb.TensorProto) (IntVector, bool) {
	switch DataType(t.GetDataType()) {
	case Int64:
		if len(t.GetInt64Data()) > 0 {
			return known(t.GetInt64Data()), true
		}
		raw := t.GetRawData()
		if len(raw)%8 != 0 || (len(raw) == 0 && !isEmpty(t)) {
			return IntVector{}, false
		}
		v := make([]int64, len(raw)/8)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return known(v), true
	case Int32:
		if len(t.GetInt32Data()) > 0 {
			v := make([]int64, len(t.GetInt32Data()))
			for i, x := range t.GetInt32Data() {
				v[i] = int64(x)
			}
			return known(v), true
		}
		raw := t.GetRawData()
		if len(raw)%4 != 0 || (len(raw) == 0 && !isEmpty(t)) {
			return IntVector{}, false
		}
		v := make([]int64, len(raw)/4)
		for i := range v {
			v[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return known(v), true
	}
	return IntVector{}, false
}

// isEmpty reports whether a tensor has zero elements by its dims, so that an
// absent payload is its true content rather than data held elsewhere.
func isEmpty(t *onnxpb.TensorProto) bool {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return false
	}
	for _, d := range t.GetDims() {
		if d == 0 {
			return true
		}
	}
	return false
}
