package graph

import (
	"errors"
	"fmt"

	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
)

// A VAE decoder's GroupNorms take their statistics over the whole image, so
// an edit that changes one object changes how every pixel decodes: a local
// blend that keeps the source's latent outside the object exactly still
// decodes another background there (models/tiny/README.md, "Local blend
// through this decoder"). SourceNorms rewrites a decoder so that every image
// of a batch is normalised with the first image's statistics: decoding the
// source and its edits in one batch, the source first, the source decodes as
// before and each edit's latent cells that equal the source's decode to the
// source's pixels wherever the convolutions around them read only such cells.
// A decoder with attention (Stable Diffusion's mid-block) still mixes the
// whole image there.

// ErrNoInstanceNorm is SourceNorms' error for a graph without a GroupNorm
// it can rewrite.
var ErrNoInstanceNorm = errors.New("the VAE decoder has no InstanceNormalization (the ONNX form of a GroupNorm " +
	"exported at opset 17 or earlier) whose statistics could come from the source image")

// SourceNorms replaces every InstanceNormalization of g by the same
// normalisation with the mean and variance of the batch's first image, and
// returns how many it replaced. Each must read float32 or float16; a
// float16 one is computed in float32 and cast back, as the operator's own
// kernels accumulate (a float16 variance of a large activation overflows).
// A graph with GroupNormalization or LayerNormalization nodes (another
// form of the image-wide statistics) is refused, since those would still
// mix the image.
func SourceNorms(g *onnxpb.GraphProto) (int, error) {
	ix := onnxgraph.NewIndex(g)
	var found []int
	var types []onnxgraph.DataType
	for i, n := range g.GetNode() {
		switch n.GetOpType() {
		case "GroupNormalization", "LayerNormalization":
			return 0, fmt.Errorf("the VAE decoder's node %s is a %s, whose statistics SourceNorms cannot take from the source image", n.GetName(), n.GetOpType())
		case "InstanceNormalization":
			t := ix.ElemType(n.GetInput()[0])
			if t != onnxgraph.Float && t != onnxgraph.Float16 {
				return 0, fmt.Errorf("the VAE decoder's InstanceNormalization %s reads %v, not float32 or float16", n.GetName(), t)
			}
			found = append(found, i)
			types = append(types, t)
		}
	}
	if len(found) == 0 {
		return 0, ErrNoInstanceNorm
	}
	nodes := g.GetNode()
	var out []*onnxpb.NodeProto
	var inits []*onnxpb.TensorProto
	prev := 0
	for k, i := range found {
		out = append(out, nodes[prev:i]...)
		b := sourceNorm(nodes[i], k, types[k])
		out = append(out, b.Nodes()...)
		inits = append(inits, b.Initializers()...)
		prev = i + 1
	}
	out = append(out, nodes[prev:]...)
	g.Node = out
	g.Initializer = append(g.Initializer, inits...)
	return len(found), nil
}

// sourceNorm builds the replacement of InstanceNormalization n, the k-th of
// the graph, whose input has element type elem: its input x ([N, C, …])
// normalised per channel with the mean and variance of x's first image,
// then n's scale and bias, written to n's output. The names it makes carry
// k, so that nodes without a name (they are optional) still get distinct
// ones.
func sourceNorm(n *onnxpb.NodeProto, k int, elem onnxgraph.DataType) *onnxgraph.Builder {
	b := onnxgraph.NewBuilder(fmt.Sprintf("%s/source_norm_%d/", n.GetName(), k))
	x, scale, bias := n.GetInput()[0], n.GetInput()[1], n.GetInput()[2]
	half := elem == onnxgraph.Float16
	if half {
		toFloat := onnxgraph.AttrInt("to", int64(onnxgraph.Float))
		x = b.Op("Cast", []string{x}, toFloat)
		scale = b.Op("Cast", []string{scale}, toFloat)
		bias = b.Op("Cast", []string{bias}, toFloat)
	}
	eps := float32(1e-5) // the operator's default
	if a := onnxgraph.Attr(n, "epsilon"); a != nil {
		eps = a.GetF()
	}
	first := b.Op("Gather", []string{x, b.Int64s("first", 0)}, onnxgraph.AttrInt("axis", 0))
	mean := b.Op("GlobalAveragePool", []string{first})
	centred := b.Op("Sub", []string{first, mean})
	variance := b.Op("GlobalAveragePool", []string{b.Op("Mul", []string{centred, centred})})
	std := b.Op("Sqrt", []string{b.Op("Add", []string{variance, b.Float32s("epsilon", nil, []float32{eps})})})
	normed := b.Op("Div", []string{b.Op("Sub", []string{x, mean}), std})
	// scale and bias are [C]: shaped as the mean, [1, C, 1, …], they
	// broadcast over [N, C, …] whatever x's rank.
	perChannel := b.Op("Shape", []string{mean})
	scaled := b.Op("Mul", []string{normed, b.Op("Reshape", []string{scale, perChannel})})
	shifted := []string{scaled, b.Op("Reshape", []string{bias, perChannel})}
	if half {
		b.OpTo("Cast", n.GetOutput()[0], []string{b.Op("Add", shifted)}, onnxgraph.AttrInt("to", int64(onnxgraph.Float16)))
	} else {
		b.OpTo("Add", n.GetOutput()[0], shifted)
	}
	return b
}

// SourceNormsRewrite is SourceNorms as a Rewrite.
var SourceNormsRewrite = Rewrite{
	What: "its GroupNorms taking the first image's statistics",
	Apply: func(g *onnxpb.GraphProto) (bool, error) {
		n, err := SourceNorms(g)
		return n > 0, err
	},
}
