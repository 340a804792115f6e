package sdtest

import (
	"fmt"
	"math"

	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
)

// UNet builds the family's UNet2DConditionModel as Optimum exports it:
// inputs sample float32 [batch_size, 4, height, width] (height and width
// dynamic unless Config.FixedLatent), timestep float32 [steps],
// encoder_hidden_states float32 [batch_size, sequence_length, CrossDim],
// and for SDXL text_embeds and time_ids; output out_sample.
func UNet(c Config) *onnxpb.ModelProto { return buildUNet(c, nil) }

func buildUNet(c Config, ext *externalData) *onnxpb.ModelProto {
	b := newBuilder("main_graph", c.Seed)
	b.ext = ext
	batch := onnxgraph.Symbolic("batch_size")
	h, w := onnxgraph.Symbolic("height"), onnxgraph.Symbolic("width")
	if c.FixedLatent {
		h, w = onnxgraph.Fixed(int64(c.SampleSize)), onnxgraph.Fixed(int64(c.SampleSize))
	}
	timestep := onnxgraph.TensorInfo("timestep", onnxgraph.Float, onnxgraph.Symbolic("steps"))
	t := "timestep"
	if c.ScalarTimestep {
		// A 0-d timestep, made [1] for the embedding, which broadcasts
		// over the batch.
		timestep = onnxgraph.TensorInfo("timestep", onnxgraph.Float)
		t = b.node("Unsqueeze", "/time_proj", []string{"timestep", b.ints("/time_proj/scalar_axes", 0)})
	}
	b.g.Input = append(b.g.Input,
		onnxgraph.TensorInfo("sample", onnxgraph.Float, batch, onnxgraph.Fixed(4), h, w),
		timestep,
		onnxgraph.TensorInfo("encoder_hidden_states", onnxgraph.Float, batch, onnxgraph.Symbolic("sequence_length"), onnxgraph.Fixed(int64(c.CrossDim))))
	u := &unetBuilder{builder: b, c: c, tembDim: 4 * c.Channels[0]}
	temb := u.timeEmbedding(t)
	if c.TextTime {
		b.g.Input = append(b.g.Input,
			onnxgraph.TensorInfo("text_embeds", onnxgraph.Float, batch, onnxgraph.Fixed(int64(c.TextEmbedsDim))),
			onnxgraph.TensorInfo("time_ids", onnxgraph.Float, batch, onnxgraph.Fixed(sdxlTimeIDs)))
		temb = u.addTextTime(temb)
	}
	x := b.conv("/conv_in", "sample", 4, c.Channels[0], 3, 1)
	skips := []skip{{x, c.Channels[0]}}
	x, cur, skips := u.down(x, temb, skips)
	x = u.mid(x, temb, cur)
	x = u.up(x, temb, cur, skips)
	x = b.silu("/conv_act", b.groupNorm("/conv_norm_out", x, c.Channels[0], normGroups, 1e-5))
	b.conv("/conv_out", x, c.Channels[0], 4, 3, 1)
	b.g.Node[len(b.g.Node)-1].Output[0] = "out_sample" // the Conv, named as Optimum names the output
	b.g.Output = append(b.g.Output, onnxgraph.TensorInfo("out_sample", onnxgraph.Float, batch, onnxgraph.Fixed(4), h, w))
	return b.model()
}

// normGroups is diffusers' norm_num_groups for SD's UNet and VAE.
const normGroups = 32

// skip is a down-path output the up path concatenates, with its width.
type skip struct {
	t string
	c int
}

type unetBuilder struct {
	*builder
	c       Config
	tembDim int
}

// sdxlTimeIDs is the length of SDXL's time_ids: original size, crop
// corner and target size, two numbers each.
const sdxlTimeIDs = 6

// timeEmbedding is Timesteps (flip_sin_to_cos, freq_shift 0) and
// TimestepEmbedding (linear_1, SiLU, linear_2).
func (u *unetBuilder) timeEmbedding(t string) string {
	x := u.sinusoid("/time_proj", t, u.c.Channels[0])
	return u.timestepEmbedding("/time_embedding", x, u.c.Channels[0])
}

// sinusoid is diffusers' Timesteps of width dim for a 1-D tensor t: [N, dim],
// cosines first.
func (u *unetBuilder) sinusoid(scope, t string, dim int) string {
	half := dim / 2
	freqs := make([]float32, half)
	for i := range freqs {
		freqs[i] = float32(math.Exp(-math.Log(10000) * float64(i) / float64(half)))
	}
	x := u.node("Unsqueeze", scope, []string{t, u.ints(scope+"/axes", 1)})
	x = u.node("Mul", scope, []string{x, u.floats(scope+"/freqs", freqs, 1, int64(half))})
	return u.node("Concat", scope, []string{u.node("Cos", scope, []string{x}), u.node("Sin", scope, []string{x})},
		onnxgraph.AttrInt("axis", -1))
}

// timestepEmbedding is TimestepEmbedding: linear_1, SiLU, linear_2.
func (u *unetBuilder) timestepEmbedding(scope, x string, in int) string {
	x = u.linear(scope+"/linear_1", x, in, u.tembDim, true)
	x = u.silu(scope+"/act", x)
	return u.linear(scope+"/linear_2", x, u.tembDim, u.tembDim, true)
}

// addTextTime adds SDXL's "text_time" embedding to temb: each time id
// embedded by add_time_proj, flattened, after text_embeds, through
// add_embedding.
func (u *unetBuilder) addTextTime(temb string) string {
	flat := u.node("Reshape", "", []string{"time_ids", u.ints("/flat", -1)})
	ids := u.sinusoid("/add_time_proj", flat, u.c.AddTimeDim)
	ids = u.node("Reshape", "", []string{ids, u.ints("/per_row", -1, int64(sdxlTimeIDs*u.c.AddTimeDim))})
	x := u.node("Concat", "", []string{"text_embeds", ids}, onnxgraph.AttrInt("axis", -1))
	aug := u.timestepEmbedding("/add_embedding", x, u.c.TextEmbedsDim+sdxlTimeIDs*u.c.AddTimeDim)
	return u.node("Add", "", []string{temb, aug})
}

// down is CrossAttnDownBlock2D where Config.Attention says so and
// DownBlock2D elsewhere, with layers_per_block resnets (and transformers)
// each and a stride-2 conv downsampler after all but the last.
func (u *unetBuilder) down(h, temb string, skips []skip) (string, int, []skip) {
	cur := u.c.Channels[0]
	last := len(u.c.Channels) - 1
	for i, out := range u.c.Channels {
		scope := fmt.Sprintf("/down_blocks.%d", i)
		for j := 0; j < layersPerBlock; j++ {
			h = u.resnet(fmt.Sprintf("%s/resnets.%d", scope, j), h, temb, cur, out, u.tembDim, normGroups, 1e-5)
			cur = out
			if u.c.Attention[i] {
				h = u.transformer(fmt.Sprintf("%s/attentions.%d", scope, j), h, cur, u.c.Depth[i])
			}
			skips = append(skips, skip{h, cur})
		}
		if i != last {
			h = u.conv(scope+"/downsamplers.0/conv", h, cur, cur, 3, 2)
			skips = append(skips, skip{h, cur})
		}
	}
	return h, cur, skips
}

// mid is UNetMidBlock2DCrossAttn: resnet, transformer, resnet.
func (u *unetBuilder) mid(h, temb string, c int) string {
	h = u.resnet("/mid_block/resnets.0", h, temb, c, c, u.tembDim, normGroups, 1e-5)
	h = u.transformer("/mid_block/attentions.0", h, c, u.c.Depth[len(u.c.Depth)-1])
	return u.resnet("/mid_block/resnets.1", h, temb, c, c, u.tembDim, normGroups, 1e-5)
}

// up mirrors down (CrossAttnUpBlock2D where the mirrored down block has
// attention, UpBlock2D elsewhere), layers_per_block+1 resnets each,
// every resnet taking the last down-path output concatenated on channels,
// and a nearest ×2 upsampler after all but the last block.
func (u *unetBuilder) up(h, temb string, cur int, skips []skip) string {
	n := len(u.c.Channels)
	for i := 0; i < n; i++ {
		scope := fmt.Sprintf("/up_blocks.%d", i)
		out := u.c.Channels[n-1-i]
		for j := 0; j <= layersPerBlock; j++ {
			s := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			h = u.node("Concat", scope, []string{h, s.t}, onnxgraph.AttrInt("axis", 1))
			h = u.resnet(fmt.Sprintf("%s/resnets.%d", scope, j), h, temb, cur+s.c, out, u.tembDim, normGroups, 1e-5)
			cur = out
			if u.c.Attention[n-1-i] {
				h = u.transformer(fmt.Sprintf("%s/attentions.%d", scope, j), h, cur, u.c.Depth[n-1-i])
			}
		}
		if i != n-1 {
			h = u.upsample(scope+"/upsamplers.0", h, cur)
		}
	}
	return h
}

// transformer is Transformer2DModel with depth BasicTransformerBlocks:
// GroupNorm, proj_in (a 1×1 conv before flattening in SD 1.x; a Linear
// after it with use_linear_projection, SD 2.x and SDXL), per block self
// attention attn1, cross attention attn2 and a GEGLU feed-forward, then
// proj_out and the residual.
func (u *unetBuilder) transformer(scope, x string, c, depth int) string {
	heads := u.c.heads(c)
	h := u.groupNorm(scope+"/norm", x, c, normGroups, 1e-6)
	if u.c.LinearProjection {
		h = u.linear(scope+"/proj_in", u.tokens(scope, h, c), c, c, true)
	} else {
		h = u.tokens(scope, u.conv(scope+"/proj_in", h, c, c, 1, 1), c)
	}
	for k := 0; k < depth; k++ {
		blk := fmt.Sprintf("%s/transformer_blocks.%d", scope, k)
		n1 := u.layerNorm(blk+"/norm1", h, c)
		a := u.attention(blk+"/attn1", n1, n1, c, c, heads, false)
		h = u.node("Add", blk, []string{a, h})
		a = u.attention(blk+"/attn2", u.layerNorm(blk+"/norm2", h, c), "encoder_hidden_states", c, u.c.CrossDim, heads, false)
		h = u.node("Add", blk, []string{a, h})
		h = u.node("Add", blk, []string{u.geglu(blk+"/ff", u.layerNorm(blk+"/norm3", h, c), c), h})
	}
	if u.c.LinearProjection {
		h = u.spatial(scope, u.linear(scope+"/proj_out", h, c, c, true), x, c)
	} else {
		h = u.conv(scope+"/proj_out", u.spatial(scope, h, x, c), c, c, 1, 1)
	}
	return u.node("Add", scope, []string{h, x})
}

// geglu is FeedForward with GEGLU: net.0.proj to 2·4c, the first half times
// GELU of the second, net.2 back to c.
func (u *unetBuilder) geglu(scope, x string, c int) string {
	inner := 4 * c
	p := u.linear(scope+"/net.0/proj", x, c, 2*inner, true)
	s := scope + "/net.0"
	axes := u.ints(u.fresh(s, "axes"), -1)
	hidden := u.node("Slice", s, []string{p, u.ints(u.fresh(s, "start"), 0), u.ints(u.fresh(s, "end"), int64(inner)), axes})
	gate := u.node("Slice", s, []string{p, u.ints(u.fresh(s, "start"), int64(inner)), u.ints(u.fresh(s, "end"), int64(2*inner)), axes})
	g := u.node("Mul", s, []string{hidden, u.gelu(s, gate)})
	return u.linear(scope+"/net.2", g, inner, c, true)
}
