package sdtest

import (
	"fmt"
	"math"

	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/shared/clip"
)

// vocabSize is CLIP's vocabulary: the token embedding has a row per id the
// tokenizer can produce.
const vocabSize = 49408

// textSpec sizes one text encoder.
type textSpec struct {
	width, heads, layers int
	gelu                 bool
	// projection adds CLIPTextModelWithProjection's text_projection and
	// its text_embeds output (SDXL's second encoder) instead of
	// pooler_output.
	projection bool
	// hiddenStates adds every layer's input and the last layer's output as
	// hidden_states.0 … hidden_states.<layers> (Optimum's SDXL exports: the
	// UNet reads the penultimate).
	hiddenStates bool
	seed         int64
}

// textSpecs are the family's text encoders: one, or SDXL's two (CLIP ViT-L
// and OpenCLIP ViT-bigG, whose widths add up to CrossDim).
func (c Config) textSpecs() []textSpec {
	if c.Family != SDXL {
		return []textSpec{{width: c.CrossDim, heads: c.TextHeads, layers: c.TextLayers, gelu: c.TextGELU, seed: c.Seed + 1}}
	}
	first := c.CrossDim * 768 / 2048
	return []textSpec{
		{width: first, heads: c.TextHeads, layers: c.TextLayers, hiddenStates: true, seed: c.Seed + 1},
		{width: c.CrossDim - first, heads: c.TextHeads, layers: c.TextLayers, gelu: true, projection: true, hiddenStates: true, seed: c.Seed + 4},
	}
}

// TextEncoder builds the family's (first) text encoder, CLIPTextModel, as
// Optimum exports it: input input_ids int64 [batch_size, sequence_length];
// outputs last_hidden_state float32 [batch_size, sequence_length, width]
// and pooler_output [batch_size, width] (the final state at the EOS token,
// the highest id), and for SDXL hidden_states.*.
func TextEncoder(c Config) *onnxpb.ModelProto { return textEncoder(c.textSpecs()[0], nil) }

// TextEncoder2 builds SDXL's second text encoder,
// CLIPTextModelWithProjection: outputs text_embeds [batch_size, width] (the
// projected pooled state), last_hidden_state and hidden_states.*. It is nil
// for the other families.
func TextEncoder2(c Config) *onnxpb.ModelProto {
	if specs := c.textSpecs(); len(specs) > 1 {
		return textEncoder(specs[1], nil)
	}
	return nil
}

func textEncoder(s textSpec, ext *externalData) *onnxpb.ModelProto {
	b := newBuilder("main_graph", s.seed)
	b.ext = ext
	batch, seq := onnxgraph.Symbolic("batch_size"), onnxgraph.Symbolic("sequence_length")
	d := int64(s.width)
	b.g.Input = append(b.g.Input, onnxgraph.TensorInfo("input_ids", onnxgraph.Int64, batch, seq))
	tok := b.node("Gather", "/embeddings/token_embedding",
		[]string{b.random("text_model.embeddings.token_embedding.weight", 0, 0.5, vocabSize, d), "input_ids"})
	positions := make([]int64, clip.ContextLength)
	for i := range positions {
		positions[i] = int64(i)
	}
	pos := b.node("Gather", "/embeddings/position_embedding",
		[]string{b.random("text_model.embeddings.position_embedding.weight", 0, 0.5, clip.ContextLength, d), b.ints("text_model.embeddings.position_ids", positions...)})
	h := b.node("Add", "/embeddings", []string{tok, pos})
	mask := causalMask(b)
	var outs []*onnxpb.ValueInfoProto
	for i := 0; i <= s.layers; i++ {
		if s.hiddenStates {
			name := fmt.Sprintf("hidden_states.%d", i)
			b.g.Node = append(b.g.Node, &onnxpb.NodeProto{Name: ptr("/Identity_" + name), OpType: ptr("Identity"), Input: []string{h}, Output: []string{name}})
			outs = append(outs, onnxgraph.TensorInfo(name, onnxgraph.Float, batch, seq, onnxgraph.Fixed(d)))
		}
		if i < s.layers {
			h = textLayer(b, s, fmt.Sprintf("/encoder/layers.%d", i), h, mask)
		}
	}
	b.layerNorm("/final_layer_norm", h, s.width)
	b.g.Node[len(b.g.Node)-1].Output[0] = "last_hidden_state"
	// The pooled state: last_hidden_state[arange(B), input_ids.argmax(-1)].
	eos := b.node("ArgMax", "", []string{"input_ids"}, onnxgraph.AttrInt("axis", -1), onnxgraph.AttrInt("keepdims", 1))
	pooled, pooledName := "pooler_output", "pooler_output"
	if s.projection {
		pooled, pooledName = "/pooled", "text_embeds"
	}
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{Name: ptr("/GatherND"), OpType: ptr("GatherND"),
		Input: []string{"last_hidden_state", eos}, Output: []string{pooled}, Attribute: []*onnxpb.AttributeProto{onnxgraph.AttrInt("batch_dims", 1)}})
	if s.projection {
		b.linear("/text_projection", pooled, s.width, s.width, false)
		b.g.Node[len(b.g.Node)-1].Output[0] = "text_embeds"
	}
	pooledOut := onnxgraph.TensorInfo(pooledName, onnxgraph.Float, batch, onnxgraph.Fixed(d))
	last := onnxgraph.TensorInfo("last_hidden_state", onnxgraph.Float, batch, seq, onnxgraph.Fixed(d))
	if s.projection {
		b.g.Output = append(b.g.Output, pooledOut, last)
	} else {
		b.g.Output = append(b.g.Output, last, pooledOut)
	}
	b.g.Output = append(b.g.Output, outs...)
	return b.model()
}

func ptr(s string) *string { return &s }

// causalMask is CLIP's additive causal mask [1, 1, 77, 77]: a token sees
// itself and the tokens before it.
func causalMask(b *builder) string {
	n := clip.ContextLength
	m := make([]float32, n*n)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			m[i*n+j] = -math.MaxFloat32
		}
	}
	return b.floats("/causal_mask", m, 1, 1, int64(n), int64(n))
}

// textLayer is CLIPEncoderLayer: layer_norm1, masked self attention,
// layer_norm2, mlp (fc1, the family's activation, fc2), residuals.
func textLayer(b *builder, c textSpec, scope, x, mask string) string {
	d := c.width
	heads := c.heads
	hd := d / heads
	a := scope + "/self_attn"
	n := b.layerNorm(scope+"/layer_norm1", x, d)
	split := func(t string) string {
		r := b.node("Reshape", a, []string{t, b.ints(b.fresh(a, "heads"), 0, -1, int64(heads), int64(hd))})
		return b.node("Transpose", a, []string{r}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
	}
	q := b.node("Mul", a, []string{b.linear(a+"/q_proj", n, d, d, true), b.scalar(b.fresh(a, "scale"), float32(1/math.Sqrt(float64(hd))))})
	k := split(b.linear(a+"/k_proj", n, d, d, true))
	v := split(b.linear(a+"/v_proj", n, d, d, true))
	s := b.node("MatMul", a, []string{split(q), b.node("Transpose", a, []string{k}, onnxgraph.AttrInts("perm", 0, 1, 3, 2))})
	p := b.node("Softmax", a, []string{b.node("Add", a, []string{s, mask})}, onnxgraph.AttrInt("axis", -1))
	o := b.node("Transpose", a, []string{b.node("MatMul", a, []string{p, v})}, onnxgraph.AttrInts("perm", 0, 2, 1, 3))
	o = b.node("Reshape", a, []string{o, b.ints(b.fresh(a, "merge"), 0, -1, int64(d))})
	x = b.node("Add", scope, []string{x, b.linear(a+"/out_proj", o, d, d, true)})
	m := b.linear(scope+"/mlp/fc1", b.layerNorm(scope+"/layer_norm2", x, d), d, 4*d, true)
	if c.gelu {
		m = b.gelu(scope+"/mlp/activation_fn", m)
	} else {
		m = b.quickGELU(scope+"/mlp/activation_fn", m)
	}
	return b.node("Add", scope, []string{x, b.linear(scope+"/mlp/fc2", m, 4*d, d, true)})
}
