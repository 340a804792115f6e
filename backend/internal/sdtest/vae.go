package sdtest

import (
	"fmt"

	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
)

// The VAE's GroupNorm groups, and its one resnet per block (SD's has two:
// one keeps the test VAE fast and changes no shape).
const (
	vaeGroups        = 8
	vaeResnetsPerBlk = 1
)

// VAEEncoder builds AutoencoderKL's encoder and quant_conv as Optimum
// exports them: input sample float32 [batch_size, 3, sample_height,
// sample_width]; output latent_parameters [batch_size, 8, sample_height/8,
// sample_width/8], the posterior's mean and log-variance.
func VAEEncoder(c Config) *onnxpb.ModelProto { return buildVAEEncoder(c, nil) }

func buildVAEEncoder(c Config, ext *externalData) *onnxpb.ModelProto {
	b := newBuilder("main_graph", c.Seed+2)
	b.ext = ext
	batch := onnxgraph.Symbolic("batch_size")
	b.g.Input = append(b.g.Input, onnxgraph.TensorInfo("sample", onnxgraph.Float, batch, onnxgraph.Fixed(3),
		onnxgraph.Symbolic("sample_height"), onnxgraph.Symbolic("sample_width")))
	ch := c.VAEChannels
	h := b.conv("/encoder/conv_in", "sample", 3, ch[0], 3, 1)
	cur := ch[0]
	for i, out := range ch {
		for j := 0; j < vaeResnetsPerBlk; j++ {
			h = b.resnet(fmt.Sprintf("/encoder/down_blocks.%d/resnets.%d", i, j), h, "", cur, out, 0, vaeGroups, 1e-6)
			cur = out
		}
		if i != len(ch)-1 {
			h = downsampleVAE(b, fmt.Sprintf("/encoder/down_blocks.%d/downsamplers.0/conv", i), h, cur)
		}
	}
	h = vaeMid(b, "/encoder/mid_block", h, cur)
	h = b.silu("/encoder/conv_act", b.groupNorm("/encoder/conv_norm_out", h, cur, vaeGroups, 1e-6))
	h = b.conv("/encoder/conv_out", h, cur, 8, 3, 1)
	b.conv("/quant_conv", h, 8, 8, 1, 1)
	b.g.Node[len(b.g.Node)-1].Output[0] = "latent_parameters"
	b.g.Output = append(b.g.Output, onnxgraph.TensorInfo("latent_parameters", onnxgraph.Float, batch, onnxgraph.Fixed(8),
		onnxgraph.Symbolic("sample_height / 8"), onnxgraph.Symbolic("sample_width / 8")))
	return b.model()
}

// VAEDecoder builds post_quant_conv and AutoencoderKL's decoder as Optimum
// exports them: input latent_sample float32 [batch_size, 4, latent_height,
// latent_width]; output sample [batch_size, 3, latent_height·8,
// latent_width·8].
func VAEDecoder(c Config) *onnxpb.ModelProto { return buildVAEDecoder(c, nil) }

func buildVAEDecoder(c Config, ext *externalData) *onnxpb.ModelProto {
	b := newBuilder("main_graph", c.Seed+3)
	b.ext = ext
	batch := onnxgraph.Symbolic("batch_size")
	b.g.Input = append(b.g.Input, onnxgraph.TensorInfo("latent_sample", onnxgraph.Float, batch, onnxgraph.Fixed(4),
		onnxgraph.Symbolic("latent_height"), onnxgraph.Symbolic("latent_width")))
	ch := c.VAEChannels
	cur := ch[len(ch)-1]
	h := b.conv("/post_quant_conv", "latent_sample", 4, 4, 1, 1)
	h = b.conv("/decoder/conv_in", h, 4, cur, 3, 1)
	h = vaeMid(b, "/decoder/mid_block", h, cur)
	for i := range ch {
		out := ch[len(ch)-1-i]
		for j := 0; j < vaeResnetsPerBlk; j++ {
			h = b.resnet(fmt.Sprintf("/decoder/up_blocks.%d/resnets.%d", i, j), h, "", cur, out, 0, vaeGroups, 1e-6)
			cur = out
		}
		if i != len(ch)-1 {
			h = b.upsample(fmt.Sprintf("/decoder/up_blocks.%d/upsamplers.0", i), h, cur)
		}
	}
	h = b.silu("/decoder/conv_act", b.groupNorm("/decoder/conv_norm_out", h, cur, vaeGroups, 1e-6))
	b.conv("/decoder/conv_out", h, cur, 3, 3, 1)
	b.g.Node[len(b.g.Node)-1].Output[0] = "sample"
	b.g.Output = append(b.g.Output, onnxgraph.TensorInfo("sample", onnxgraph.Float, batch, onnxgraph.Fixed(3),
		onnxgraph.Symbolic("latent_height * 8"), onnxgraph.Symbolic("latent_width * 8")))
	return b.model()
}

// downsampleVAE is the VAE's Downsample2D: pad right and bottom by one, then
// a 3×3 stride-2 conv without padding.
func downsampleVAE(b *builder, scope, x string, c int) string {
	p := b.node("Pad", scope, []string{x, b.ints(b.fresh(scope, "pads"), 0, 0, 0, 0, 0, 0, 1, 1)})
	out := b.conv(scope, p, c, c, 3, 2)
	last := b.g.Node[len(b.g.Node)-1]
	for _, a := range last.Attribute {
		if a.GetName() == "pads" {
			a.Ints = []int64{0, 0, 0, 0}
		}
	}
	return out
}

// vaeMid is UNetMidBlock2D: resnet, single-head attention over every
// position (with its own GroupNorm and residual), resnet.
func vaeMid(b *builder, scope, x string, c int) string {
	h := b.resnet(scope+"/resnets.0", x, "", c, c, 0, vaeGroups, 1e-6)
	a := scope + "/attentions.0"
	n := b.tokens(a, b.groupNorm(a+"/group_norm", h, c, vaeGroups, 1e-6), c)
	o := b.spatial(a, b.attention(a, n, n, c, c, 1, true), h, c)
	h = b.node("Add", a, []string{o, h})
	return b.resnet(scope+"/resnets.1", h, "", c, c, 0, vaeGroups, 1e-6)
}
