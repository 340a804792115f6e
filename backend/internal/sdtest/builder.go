package sdtest

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"strings"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
)

// opset is the ONNX opset Optimum exports Stable Diffusion at by default
// (14: the first with scaled_dot_product_attention and Trilu).
const opset = 14

// builder writes nodes into one graph the way torch.onnx.export names them:
// node names are module scopes plus the op ("/down_blocks.0/resnets.0/conv1/Conv"),
// repeated ops in a scope get _1, _2 … suffixes, and a node's output is its
// name plus "_output_0". Weights take diffusers' parameter names
// ("down_blocks.0.resnets.0.conv1.weight") and random values.
type builder struct {
	g     *onnxpb.GraphProto
	rng   *rand.Rand
	taken map[string]int
	ext   *externalData // nil: every weight inside the model
}

func newBuilder(name string, seed int64) *builder {
	return &builder{g: &onnxpb.GraphProto{Name: proto.String(name)}, rng: rand.New(rand.NewSource(seed)), taken: map[string]int{}}
}

// model wraps the graph in a model of Optimum's opset.
func (b *builder) model() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("pytorch"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph:        b.g,
	}
}

// node adds op in scope and returns its output's name.
func (b *builder) node(op, scope string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	name := scope + "/" + op
	if k := b.taken[name]; k > 0 {
		b.taken[name] = k + 1
		name = fmt.Sprintf("%s_%d", name, k)
	} else {
		b.taken[name] = 1
	}
	out := name + "_output_0"
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name: proto.String(name), OpType: proto.String(op), Input: inputs, Output: []string{out}, Attribute: attrs,
	})
	return out
}

// paramName turns a module scope into diffusers' parameter prefix.
func paramName(scope, leaf string) string {
	return strings.ReplaceAll(strings.TrimPrefix(scope, "/"), "/", ".") + "." + leaf
}

// floats adds a float32 initializer (raw little-endian, as torch writes
// them) and returns its name.
func (b *builder) floats(name string, v []float32, dims ...int64) string {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	t := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxgraph.Float)), Dims: dims}
	if !b.ext.store(t, raw) {
		t.RawData = raw
	}
	b.g.Initializer = append(b.g.Initializer, t)
	return name
}

// random adds an initializer of normal values mean + std·N(0, 1).
func (b *builder) random(name string, mean, std float64, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(mean + std*b.rng.NormFloat64())
	}
	return b.floats(name, v, dims...)
}

// ints adds a 1-D int64 constant.
func (b *builder) ints(name string, v ...int64) string {
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(onnxgraph.Int64)), Dims: []int64{int64(len(v))}, Int64Data: v,
	})
	return name
}

// scalar adds a float32 scalar constant.
func (b *builder) scalar(name string, v float32) string { return b.floats(name, []float32{v}) }

// conv is a k×k Conv2d with bias, padding k/2 (SD's convs).
func (b *builder) conv(scope, x string, cin, cout, k, stride int) string {
	w := b.random(paramName(scope, "weight"), 0, 1/math.Sqrt(float64(cin*k*k)), int64(cout), int64(cin), int64(k), int64(k))
	bias := b.random(paramName(scope, "bias"), 0, 0.02, int64(cout))
	p := int64(k / 2)
	return b.node("Conv", scope, []string{x, w, bias},
		onnxgraph.AttrInts("dilations", 1, 1), onnxgraph.AttrInt("group", 1),
		onnxgraph.AttrInts("kernel_shape", int64(k), int64(k)), onnxgraph.AttrInts("pads", p, p, p, p),
		onnxgraph.AttrInts("strides", int64(stride), int64(stride)))
}

// linear is nn.Linear as torch exports it: MatMul by the transposed weight,
// then Add of the bias when there is one.
func (b *builder) linear(scope, x string, in, out int, bias bool) string {
	w := b.random(paramName(scope, "weight"), 0, 1/math.Sqrt(float64(in)), int64(in), int64(out))
	y := b.node("MatMul", scope, []string{x, w})
	if !bias {
		return y
	}
	return b.node("Add", scope, []string{b.random(paramName(scope, "bias"), 0, 0.02, int64(out)), y})
}

// groupNorm is nn.GroupNorm as torch exports it before opset 18: reshape to
// [B, groups, −1], InstanceNormalization, reshape back, affine per channel.
func (b *builder) groupNorm(scope, x string, c, groups int, eps float32) string {
	r := b.node("Reshape", scope, []string{x, b.ints(scope+"/Constant_output_0", 0, int64(groups), -1)})
	ones, zeros := make([]float32, groups), make([]float32, groups)
	for i := range ones {
		ones[i] = 1
	}
	n := b.node("InstanceNormalization", scope, []string{r,
		b.floats(scope+"/Constant_1_output_0", ones, int64(groups)), b.floats(scope+"/Constant_2_output_0", zeros, int64(groups))},
		&onnxpb.AttributeProto{Name: proto.String("epsilon"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(eps)})
	n = b.node("Reshape", scope, []string{n, b.node("Shape", scope, []string{x})})
	n = b.node("Mul", scope, []string{n, b.random(paramName(scope, "weight"), 1, 0.1, int64(c), 1, 1)})
	return b.node("Add", scope, []string{n, b.random(paramName(scope, "bias"), 0, 0.1, int64(c), 1, 1)})
}

// layerNorm is nn.LayerNorm over the last axis as torch exports it before
// opset 17.
func (b *builder) layerNorm(scope, x string, d int) string {
	axes := onnxgraph.AttrInts("axes", -1)
	mean := b.node("ReduceMean", scope, []string{x}, axes)
	diff := b.node("Sub", scope, []string{x, mean})
	v := b.node("ReduceMean", scope, []string{b.node("Pow", scope, []string{diff, b.scalar(scope+"/Constant_output_0", 2)})}, axes)
	s := b.node("Sqrt", scope, []string{b.node("Add", scope, []string{v, b.scalar(scope+"/Constant_1_output_0", 1e-5)})})
	n := b.node("Div", scope, []string{diff, s})
	n = b.node("Mul", scope, []string{n, b.random(paramName(scope, "weight"), 1, 0.1, int64(d))})
	return b.node("Add", scope, []string{n, b.random(paramName(scope, "bias"), 0, 0.1, int64(d))})
}

// silu is x·sigmoid(x).
func (b *builder) silu(scope, x string) string {
	return b.node("Mul", scope, []string{x, b.node("Sigmoid", scope, []string{x})})
}

// gelu is the exact GELU, x·(1 + erf(x/√2))/2, as torch exports it.
func (b *builder) gelu(scope, x string) string {
	e := b.node("Erf", scope, []string{b.node("Div", scope, []string{x, b.scalar(b.fresh(scope, "sqrt2"), math.Sqrt2)})})
	e = b.node("Add", scope, []string{e, b.scalar(b.fresh(scope, "one"), 1)})
	e = b.node("Mul", scope, []string{x, e})
	return b.node("Mul", scope, []string{e, b.scalar(b.fresh(scope, "half"), 0.5)})
}

// quickGELU is CLIP's x·sigmoid(1.702·x).
func (b *builder) quickGELU(scope, x string) string {
	s := b.node("Sigmoid", scope, []string{b.node("Mul", scope, []string{x, b.scalar(b.fresh(scope, "k"), 1.702)})})
	return b.node("Mul", scope, []string{x, s})
}

// fresh names a constant of scope uniquely.
func (b *builder) fresh(scope, what string) string {
	name := scope + "/" + what
	k := b.taken[name]
	b.taken[name] = k + 1
	return fmt.Sprintf("%s_%d", name, k)
}

// tokens turns [B, C, H, W] into [B, H·W, C] as diffusers'
// Transformer2DModel does (permute(0, 2, 3, 1).reshape).
func (b *builder) tokens(scope, x string, c int) string {
	t := b.node("Transpose", scope, []string{x}, onnxgraph.AttrInts("perm", 0, 2, 3, 1))
	return b.node("Reshape", scope, []string{t, b.ints(b.fresh(scope, "shape"), 0, -1, int64(c))})
}

// spatial turns [B, H·W, C] back into [B, C, H, W], with H and W read from
// ref ([B, ·, H, W]) at run time, since Optimum's exports leave them dynamic.
func (b *builder) spatial(scope, x, ref string, c int) string {
	hw := b.node("Gather", scope, []string{b.node("Shape", scope, []string{ref}), b.ints(b.fresh(scope, "bhw"), 0, 2, 3)},
		onnxgraph.AttrInt("axis", 0))
	shape := b.node("Concat", scope, []string{hw, b.ints(b.fresh(scope, "channels"), int64(c))}, onnxgraph.AttrInt("axis", 0))
	r := b.node("Reshape", scope, []string{x, shape})
	return b.node("Transpose", scope, []string{r}, onnxgraph.AttrInts("perm", 0, 3, 1, 2))
}

// attention is diffusers' Attention with AttnProcessor2_0 as torch 2 exports
// scaled_dot_product_attention at opset 14: heads split by Reshape and
// Transpose, q and kᵀ each scaled by √(1/√d), MatMul, Softmax over the keys,
// MatMul with the values, heads merged, to_out.0. Keys and values come from
// kv (ctxDim wide: the text for attn2, x itself for attn1).
func (b *builder) attention(scope, x, kv string, dim, ctxDim, heads int, bias bool) string {
	d := dim / heads
	q := b.linear(scope+"/to_q", x, dim, dim, bias)
	k := b.linear(scope+"/to_k", kv, ctxDim, dim, bias)
	v := b.linear(scope+"/to_v", kv, ctxDim, dim, bias)
	split := func(t string) string {
		r := b.node("Reshape", scope, []string{t, b.ints(b.fresh(scope, "heads"), 0, -1, int64(heads), int64(d))})
		return b.node("Transpose", scope, []string{r}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
	}
	q4, k4, v4 := split(q), split(k), split(v)
	sq := b.scalar(b.fresh(scope, "sqrt_scale"), float32(math.Sqrt(1/math.Sqrt(float64(d)))))
	kT := b.node("Transpose", scope, []string{k4}, onnxgraph.AttrInts("perm", 0, 1, 3, 2))
	s := b.node("MatMul", scope, []string{b.node("Mul", scope, []string{q4, sq}), b.node("Mul", scope, []string{kT, sq})})
	p := b.node("Softmax", scope, []string{s}, onnxgraph.AttrInt("axis", -1))
	o := b.node("MatMul", scope, []string{p, v4})
	o = b.node("Transpose", scope, []string{o}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
	o = b.node("Reshape", scope, []string{o, b.ints(b.fresh(scope, "merge"), 0, -1, int64(dim))})
	return b.linear(scope+"/to_out.0", o, dim, dim, true)
}

// resnet is diffusers' ResnetBlock2D: GroupNorm, SiLU, conv1, plus the
// projected time embedding (when temb is not ""), GroupNorm, SiLU, conv2,
// and the shortcut (a 1×1 conv_shortcut when the width changes).
func (b *builder) resnet(scope, x, temb string, cin, cout, tembDim, groups int, eps float32) string {
	h := b.silu(scope+"/nonlinearity", b.groupNorm(scope+"/norm1", x, cin, groups, eps))
	h = b.conv(scope+"/conv1", h, cin, cout, 3, 1)
	if temb != "" {
		t := b.linear(scope+"/time_emb_proj", b.silu(scope+"/nonlinearity", temb), tembDim, cout, true)
		t = b.node("Unsqueeze", scope, []string{t, b.ints(b.fresh(scope, "axes"), 2, 3)})
		h = b.node("Add", scope, []string{h, t})
	}
	h = b.silu(scope+"/nonlinearity", b.groupNorm(scope+"/norm2", h, cout, groups, eps))
	h = b.conv(scope+"/conv2", h, cout, cout, 3, 1)
	if cin != cout {
		x = b.conv(scope+"/conv_shortcut", x, cin, cout, 1, 1)
	}
	return b.node("Add", scope, []string{x, h})
}

// upsample is diffusers' Upsample2D: nearest ×2 (Resize as torch exports
// F.interpolate) then a 3×3 conv.
func (b *builder) upsample(scope, x string, c int) string {
	r := b.node("Resize", scope, []string{x, "", b.floats(b.fresh(scope, "scales"), []float32{1, 1, 2, 2}, 4)},
		onnxgraph.AttrString("coordinate_transformation_mode", "asymmetric"), onnxgraph.AttrString("mode", "nearest"),
		onnxgraph.AttrString("nearest_mode", "floor"))
	return b.conv(scope+"/conv", r, c, c, 3, 1)
}
