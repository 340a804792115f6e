// Package attnblock builds small Stable-Diffusion-shaped UNets as ONNX
// models in Go, and computes the same networks in plain Go (float64) with or
// without Prompt-to-Prompt controls, so that backend/graph's rewrite can be
// checked against an independent implementation.
//
// The network has the parts of an SD UNet that the instrumentation touches:
// a transformer block (self attention attn1, cross attention attn2) at full
// latent resolution, a strided-Conv downsampler, a block at half
// resolution, a nearest-neighbour Resize upsampler with a skip connection,
// and a third block at full resolution. Attention is exported the way torch
// does it in either layout real exports use, with scoped node names like a
// torch ≥ 1.13 export or with old-style numbered names.
package attnblock

import (
	"fmt"
	"math"
	"math/rand"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/backend/ort"
)

// Layout is how an export arranges attention heads.
type Layout int

const (
	// Classic is diffusers' AttnProcessor as torch 1.x exports it: heads
	// folded into the batch, probabilities [B·heads, N, K], scores =
	// MatMul(q, kᵀ)·scale.
	Classic Layout = iota
	// SDPA is torch 2's scaled_dot_product_attention exported at opset 14:
	// probabilities [B, heads, N, K], q and kᵀ each scaled by √scale.
	SDPA
)

func (l Layout) String() string {
	if l == SDPA {
		return "sdpa"
	}
	return "classic"
}

// Config sizes and shapes the network.
type Config struct {
	Layout Layout
	Opset  int64
	// FP16 stores weights and computes in float16, with float32 inputs and
	// outputs cast at the edges (like an export with keep_io_types).
	FP16 bool
	// FP16IO (with FP16) makes the inputs and outputs float16 too, a float
	// timestep included, with no Casts at the edges: an fp16 export as
	// torch writes it from a float16 pipeline (diffusers' --fp16).
	FP16IO bool
	// Height and Width of the latent; both must be even.
	Height, Width int
	// Channels of the latent, model Dim, attention Heads (Dim % Heads == 0),
	// text width CtxDim and sequence length Tokens.
	Channels, Dim, Heads, CtxDim, Tokens int
	// UpcastSoftmax (with FP16) computes the Softmax in float32 between
	// Casts, as diffusers does with upcast_softmax.
	UpcastSoftmax bool
	// TimestepType is the timestep input's type: Int64 or Float.
	TimestepType onnxgraph.DataType
	// OldNames names nodes OpType_<n> and intermediate tensors by number,
	// like torch exports before 1.13.
	OldNames bool
	// DynamicSpatial declares the sample's height and width as symbolic
	// (the graph still only runs at Height×Width).
	DynamicSpatial bool
	Seed           int64
}

// DefaultConfig is a small network that runs in milliseconds.
func DefaultConfig() Config {
	return Config{
		Layout: Classic, Opset: 14, Height: 8, Width: 8, Channels: 4, Dim: 32, Heads: 2, CtxDim: 24, Tokens: 77,
		TimestepType: onnxgraph.Int64, Seed: 1,
	}
}

// attnWeights are one attention module's weights, row-major [in, out].
type attnWeights struct {
	wq, wk, wv, wo, bo []float32
	in, ctxIn          int
}

// block is one transformer block: self attention then cross attention.
type block struct {
	scope        string
	attn1, attn2 attnWeights
}

// Network holds the weights; Model exports it and Reference computes it.
type Network struct {
	Cfg            Config
	win, wout      []float32 // [C, Dim], [Dim, C]
	timeVec        []float32 // [Dim]
	down, downBias []float32 // Conv [Dim, Dim, 2, 2], [Dim]
	blocks         [3]block  // full, half, full resolution
}

// New draws the network's weights from cfg.Seed.
func New(cfg Config) (*Network, error) {
	if cfg.Height%2 != 0 || cfg.Width%2 != 0 || cfg.Height <= 0 || cfg.Width <= 0 {
		return nil, fmt.Errorf("attnblock: latent %d×%d must be positive and even", cfg.Height, cfg.Width)
	}
	if cfg.Heads <= 0 || cfg.Dim%cfg.Heads != 0 {
		return nil, fmt.Errorf("attnblock: dim %d is not a multiple of heads %d", cfg.Dim, cfg.Heads)
	}
	if cfg.TimestepType != onnxgraph.Int64 && cfg.TimestepType != onnxgraph.Float {
		return nil, fmt.Errorf("attnblock: timestep type must be int64 or float, got %v", cfg.TimestepType)
	}
	r := rand.New(rand.NewSource(cfg.Seed))
	mat := func(rows, cols int) []float32 {
		s := 1 / math.Sqrt(float64(rows))
		m := make([]float32, rows*cols)
		for i := range m {
			m[i] = float32(r.NormFloat64() * s)
		}
		return m
	}
	attn := func(in, ctxIn int) attnWeights {
		return attnWeights{
			wq: mat(in, cfg.Dim), wk: mat(ctxIn, cfg.Dim), wv: mat(ctxIn, cfg.Dim),
			wo: mat(cfg.Dim, cfg.Dim), bo: mat(1, cfg.Dim), in: in, ctxIn: ctxIn,
		}
	}
	n := &Network{Cfg: cfg, win: mat(cfg.Channels, cfg.Dim), wout: mat(cfg.Dim, cfg.Channels),
		timeVec: mat(1, cfg.Dim), down: mat(cfg.Dim*4, cfg.Dim), downBias: mat(1, cfg.Dim)}
	for i, scope := range []string{
		"/down_blocks.0/attentions.0/transformer_blocks.0",
		"/mid_block/attentions.0/transformer_blocks.0",
		"/up_blocks.0/attentions.0/transformer_blocks.0",
	} {
		n.blocks[i] = block{scope: scope, attn1: attn(cfg.Dim, cfg.Dim), attn2: attn(cfg.Dim, cfg.CtxDim)}
	}
	if cfg.FP16 {
		n.roundToFloat16()
	}
	return n, nil
}

// roundToFloat16 makes the float32 weights exactly representable in float16,
// so the reference computes with the weights the fp16 model holds.
func (n *Network) roundToFloat16() {
	round := func(v []float32) {
		for i, x := range v {
			v[i] = ort.Float16ToFloat32(ort.Float32ToFloat16(x))
		}
	}
	for _, v := range [][]float32{n.win, n.wout, n.timeVec, n.down, n.downBias} {
		round(v)
	}
	for i := range n.blocks {
		for _, a := range []*attnWeights{&n.blocks[i].attn1, &n.blocks[i].attn2} {
			for _, v := range [][]float32{a.wq, a.wk, a.wv, a.wo, a.bo} {
				round(v)
			}
		}
	}
}

// LayerNames are the attention layers in graph order, as backend/graph names
// them for scoped exports.
func (n *Network) LayerNames() []string {
	var names []string
	for _, b := range n.blocks {
		names = append(names, b.scope+"/attn1", b.scope+"/attn2")
	}
	return names
}

// modelBuilder writes nodes straight into a graph.
type modelBuilder struct {
	g    *onnxpb.GraphProto
	fp16 bool
	n    int
}

func (mb *modelBuilder) node(op, name string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out := name + "_output_0"
	mb.g.Node = append(mb.g.Node, &onnxpb.NodeProto{
		Name: proto.String(name), OpType: proto.String(op), Input: inputs, Output: []string{out}, Attribute: attrs,
	})
	return out
}

// weight adds a float initializer (float16 in an fp16 model).
func (mb *modelBuilder) weight(name string, v []float32, dims ...int64) string {
	t := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxgraph.Float)), Dims: dims, FloatData: v}
	if mb.fp16 {
		raw := make([]byte, 2*len(v))
		for i, x := range v {
			h := ort.Float32ToFloat16(x)
			raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
		}
		t.DataType, t.FloatData, t.RawData = proto.Int32(int32(onnxgraph.Float16)), nil, raw
	}
	mb.g.Initializer = append(mb.g.Initializer, t)
	return name
}

func (mb *modelBuilder) ints(name string, v ...int64) string {
	mb.g.Initializer = append(mb.g.Initializer, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(onnxgraph.Int64)), Dims: []int64{int64(len(v))}, Int64Data: v,
	})
	return name
}

func (mb *modelBuilder) floats32(name string, v ...float32) string {
	mb.g.Initializer = append(mb.g.Initializer, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(onnxgraph.Float)), Dims: []int64{int64(len(v))}, FloatData: v,
	})
	return name
}

// Model exports the network. Inputs: sample float32 [B, C, H, W], timestep
// [B] (Config.TimestepType), encoder_hidden_states float32 [B, T, CtxDim].
// Output: out_sample float32 [B, C, H, W]. The batch B is dynamic.
func (n *Network) Model() *onnxpb.ModelProto {
	c := n.Cfg
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("reword attnblock"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(c.Opset)}},
		Graph:        &onnxpb.GraphProto{Name: proto.String("attnblock_unet")},
	}
	g := m.Graph
	batch := onnxgraph.Symbolic("batch")
	h, w := onnxgraph.Fixed(int64(c.Height)), onnxgraph.Fixed(int64(c.Width))
	if c.DynamicSpatial {
		h, w = onnxgraph.Symbolic("height"), onnxgraph.Symbolic("width")
	}
	io, timestepType := onnxgraph.Float, c.TimestepType
	if c.FP16 && c.FP16IO {
		io = onnxgraph.Float16
		if timestepType == onnxgraph.Float {
			timestepType = onnxgraph.Float16
		}
	}
	g.Input = append(g.Input,
		onnxgraph.TensorInfo("sample", io, batch, onnxgraph.Fixed(int64(c.Channels)), h, w),
		onnxgraph.TensorInfo("timestep", timestepType, batch),
		onnxgraph.TensorInfo("encoder_hidden_states", io, batch, onnxgraph.Fixed(int64(c.Tokens)), onnxgraph.Fixed(int64(c.CtxDim))))
	g.Output = append(g.Output, onnxgraph.TensorInfo("out_sample", io, batch, onnxgraph.Fixed(int64(c.Channels)), h, w))
	mb := &modelBuilder{g: g, fp16: c.FP16}
	compute := onnxgraph.Float
	if c.FP16 {
		compute = onnxgraph.Float16
	}
	x, ctx := "sample", "encoder_hidden_states"
	if c.FP16 && !c.FP16IO {
		x = mb.node("Cast", "/Cast", []string{x}, onnxgraph.AttrInt("to", int64(compute)))
		ctx = mb.node("Cast", "/Cast_1", []string{ctx}, onnxgraph.AttrInt("to", int64(compute)))
	}
	// Time embedding: (t/1000)·timeVec added to every position.
	t := mb.node("Cast", "/time_proj/Cast", []string{"timestep"}, onnxgraph.AttrInt("to", int64(compute)))
	t = mb.node("Mul", "/time_proj/Mul", []string{t, mb.weight("/time_proj/scale", []float32{1e-3})})
	t = mb.node("Reshape", "/time_proj/Reshape", []string{t, mb.ints("/time_proj/shape", -1, 1, 1)})
	temb := mb.node("Mul", "/time_embedding/Mul", []string{t, mb.weight("time_embedding.weight", n.timeVec, 1, 1, int64(c.Dim))})

	full := int64(c.Height * c.Width)
	half := full / 4
	tokens := func(x string, scope string, npos int64) string { // [B, Dim, h, w] → [B, N, Dim]
		tr := mb.node("Transpose", scope+"/Transpose", []string{x}, onnxgraph.AttrInts("perm", 0, 2, 3, 1))
		return mb.node("Reshape", scope+"/Reshape", []string{tr, mb.ints(scope+"/shape", 0, npos, -1)})
	}
	spatial := func(x string, scope string, hh, ww int64) string { // [B, N, Dim] → [B, Dim, h, w]
		r := mb.node("Reshape", scope+"/Reshape_1", []string{x, mb.ints(scope+"/shape_1", 0, hh, ww, int64(c.Dim))})
		return mb.node("Transpose", scope+"/Transpose_1", []string{r}, onnxgraph.AttrInts("perm", 0, 3, 1, 2))
	}
	hs := tokens(x, "/conv_in", full)
	hs = mb.node("MatMul", "/conv_in/MatMul", []string{hs, mb.weight("conv_in.weight", n.win, int64(c.Channels), int64(c.Dim))})
	hs = mb.node("Add", "/Add", []string{hs, temb})
	hs = n.block(mb, 0, hs, ctx, full)
	skip := hs
	down := mb.node("Conv", "/down_blocks.0/downsamplers.0/conv/Conv",
		[]string{spatial(hs, "/down_blocks.0/downsamplers.0", int64(c.Height), int64(c.Width)),
			mb.weight("down.weight", convWeights(n.down, c.Dim), int64(c.Dim), int64(c.Dim), 2, 2),
			mb.weight("down.bias", n.downBias, int64(c.Dim))},
		onnxgraph.AttrInts("kernel_shape", 2, 2), onnxgraph.AttrInts("strides", 2, 2))
	hs = tokens(down, "/mid_block", half)
	hs = n.block(mb, 1, hs, ctx, half)
	up := mb.node("Resize", "/up_blocks.0/upsamplers.0/Resize",
		[]string{spatial(hs, "/up_blocks.0/upsamplers.0", int64(c.Height/2), int64(c.Width/2)), "", mb.floats32("/up_blocks.0/upsamplers.0/scales", 1, 1, 2, 2)},
		onnxgraph.AttrString("mode", "nearest"), onnxgraph.AttrString("coordinate_transformation_mode", "asymmetric"),
		onnxgraph.AttrString("nearest_mode", "floor"))
	hs = tokens(up, "/up_blocks.0", full)
	hs = mb.node("Add", "/up_blocks.0/Add", []string{hs, skip})
	hs = n.block(mb, 2, hs, ctx, full)
	hs = mb.node("MatMul", "/conv_out/MatMul", []string{hs, mb.weight("conv_out.weight", n.wout, int64(c.Dim), int64(c.Channels))})
	r := mb.node("Reshape", "/conv_out/Reshape", []string{hs, mb.ints("/conv_out/shape", 0, int64(c.Height), int64(c.Width), int64(c.Channels))})
	last := "/conv_out/Transpose"
	if c.FP16 && !c.FP16IO {
		tr := mb.node("Transpose", last, []string{r}, onnxgraph.AttrInts("perm", 0, 3, 1, 2))
		mb.g.Node = append(mb.g.Node, &onnxpb.NodeProto{Name: proto.String("/Cast_out"), OpType: proto.String("Cast"),
			Input: []string{tr}, Output: []string{"out_sample"}, Attribute: []*onnxpb.AttributeProto{onnxgraph.AttrInt("to", int64(onnxgraph.Float))}})
	} else {
		mb.g.Node = append(mb.g.Node, &onnxpb.NodeProto{Name: proto.String(last), OpType: proto.String("Transpose"),
			Input: []string{r}, Output: []string{"out_sample"}, Attribute: []*onnxpb.AttributeProto{onnxgraph.AttrInts("perm", 0, 3, 1, 2)}})
	}
	if c.OldNames {
		renameOldStyle(g)
	}
	return m
}

// convWeights reorders the downsampler weights from [(ci,di,dj), o] (the
// reference's layout) to ONNX Conv's [o, ci, di, dj].
func convWeights(w []float32, dim int) []float32 {
	out := make([]float32, len(w))
	for ci := 0; ci < dim; ci++ {
		for k := 0; k < 4; k++ {
			for o := 0; o < dim; o++ {
				out[(o*dim+ci)*4+k] = w[(ci*4+k)*dim+o]
			}
		}
	}
	return out
}

// block adds hs + attn1(hs) then + attn2(·, ctx).
func (n *Network) block(mb *modelBuilder, i int, hs, ctx string, npos int64) string {
	b := n.blocks[i]
	a := n.attention(mb, b.scope+"/attn1", b.attn1, hs, hs, npos, npos)
	hs = mb.node("Add", b.scope+"/Add", []string{a, hs})
	a = n.attention(mb, b.scope+"/attn2", b.attn2, hs, ctx, npos, int64(n.Cfg.Tokens))
	return mb.node("Add", b.scope+"/Add_1", []string{a, hs})
}

// attention emits nodes named like a torch ≥ 1.13 export:
// <scope>/Softmax writing <scope>/Softmax_output_0.
func (n *Network) attention(mb *modelBuilder, p string, w attnWeights, xq, xkv string, nq, nk int64) string {
	c := n.Cfg
	h, d := int64(c.Heads), int64(c.Dim/c.Heads)
	dim := int64(c.Dim)
	q := mb.node("MatMul", p+"/to_q/MatMul", []string{xq, mb.weight(p+".to_q.weight", w.wq, int64(w.in), dim)})
	k := mb.node("MatMul", p+"/to_k/MatMul", []string{xkv, mb.weight(p+".to_k.weight", w.wk, int64(w.ctxIn), dim)})
	v := mb.node("MatMul", p+"/to_v/MatMul", []string{xkv, mb.weight(p+".to_v.weight", w.wv, int64(w.ctxIn), dim)})
	splitHeads := mb.ints(p+"/split_heads", 0, -1, h, d)
	scale := 1 / math.Sqrt(float64(d))
	var o string
	switch c.Layout {
	case Classic:
		heads := func(t, tag string, rows int64) string {
			r := mb.node("Reshape", p+"/Reshape"+tag, []string{t, splitHeads})
			tr := mb.node("Transpose", p+"/Transpose"+tag, []string{r}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
			return mb.node("Reshape", p+"/Reshape_1"+tag, []string{tr, mb.ints(p+"/fold"+tag, -1, rows, d)})
		}
		q3, k3, v3 := heads(q, "_q", nq), heads(k, "_k", nk), heads(v, "_v", nk)
		kT := mb.node("Transpose", p+"/Transpose_kT", []string{k3}, onnxgraph.AttrInts("perm", 0, 2, 1))
		s := mb.node("MatMul", p+"/MatMul", []string{q3, kT})
		s = mb.node("Mul", p+"/Mul", []string{s, mb.weight(p+".scale", []float32{float32(scale)})})
		probs := n.softmax(mb, p, s)
		o3 := mb.node("MatMul", p+"/MatMul_1", []string{probs, v3})
		r := mb.node("Reshape", p+"/Reshape_o", []string{o3, mb.ints(p+"/unfold", -1, h, nq, d)})
		tr := mb.node("Transpose", p+"/Transpose_o", []string{r}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
		o = mb.node("Reshape", p+"/Reshape_o2", []string{tr, mb.ints(p+"/merge_heads", 0, -1, dim)})
	case SDPA:
		rq := mb.node("Reshape", p+"/Reshape", []string{q, splitHeads})
		q4 := mb.node("Transpose", p+"/Transpose", []string{rq}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
		rk := mb.node("Reshape", p+"/Reshape_1", []string{k, splitHeads})
		k4T := mb.node("Transpose", p+"/Transpose_1", []string{rk}, onnxgraph.AttrInts("perm", 0, 2, 3, 1))
		rv := mb.node("Reshape", p+"/Reshape_2", []string{v, splitHeads})
		v4 := mb.node("Transpose", p+"/Transpose_2", []string{rv}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
		sq := mb.weight(p+".sqrt_scale", []float32{float32(math.Sqrt(scale))})
		s := mb.node("MatMul", p+"/MatMul", []string{
			mb.node("Mul", p+"/Mul", []string{q4, sq}),
			mb.node("Mul", p+"/Mul_1", []string{k4T, sq})})
		probs := n.softmax(mb, p, s)
		o4 := mb.node("MatMul", p+"/MatMul_1", []string{probs, v4})
		tr := mb.node("Transpose", p+"/Transpose_3", []string{o4}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
		o = mb.node("Reshape", p+"/Reshape_3", []string{tr, mb.ints(p+"/merge_heads", 0, -1, dim)})
	}
	om := mb.node("MatMul", p+"/to_out.0/MatMul", []string{o, mb.weight(p+".to_out.0.weight", w.wo, dim, dim)})
	return mb.node("Add", p+"/to_out.0/Add", []string{mb.weight(p+".to_out.0.bias", w.bo, dim), om})
}

// softmax normalizes the scores over the keys, in float32 between Casts when
// the config upcasts an fp16 model's Softmax.
func (n *Network) softmax(mb *modelBuilder, p, scores string) string {
	if !(n.Cfg.FP16 && n.Cfg.UpcastSoftmax) {
		return mb.node("Softmax", p+"/Softmax", []string{scores}, onnxgraph.AttrInt("axis", -1))
	}
	up := mb.node("Cast", p+"/Cast", []string{scores}, onnxgraph.AttrInt("to", int64(onnxgraph.Float)))
	probs := mb.node("Softmax", p+"/Softmax", []string{up}, onnxgraph.AttrInt("axis", -1))
	return mb.node("Cast", p+"/Cast_1", []string{probs}, onnxgraph.AttrInt("to", int64(onnxgraph.Float16)))
}

// renameOldStyle renames nodes to OpType_<n> and every tensor that is not a
// graph input or output to a number, like torch exports before 1.13.
func renameOldStyle(g *onnxpb.GraphProto) {
	keep := map[string]bool{"": true}
	for _, v := range append(append([]*onnxpb.ValueInfoProto(nil), g.Input...), g.Output...) {
		keep[v.GetName()] = true
	}
	names := map[string]string{}
	rename := func(s string) string {
		if keep[s] {
			return s
		}
		if r, ok := names[s]; ok {
			return r
		}
		r := fmt.Sprint(len(names) + 100)
		names[s] = r
		return r
	}
	for _, t := range g.Initializer {
		t.Name = proto.String(rename(t.GetName()))
	}
	for i, nd := range g.Node {
		nd.Name = proto.String(fmt.Sprintf("%s_%d", nd.GetOpType(), i))
		for j, in := range nd.Input {
			nd.Input[j] = rename(in)
		}
		for j, out := range nd.Output {
			nd.Output[j] = rename(out)
		}
	}
}
