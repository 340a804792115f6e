"""Modules of the tiny Stable-Diffusion-shaped model.

The module trees mirror diffusers' AutoencoderKL, transformers' CLIPTextModel
and diffusers' UNet2DConditionModel closely enough that torch.onnx.export
(opset 14, torch >= 1.13) names the attention nodes exactly as a real SD 1.x
export does, e.g. /down_blocks.0/attentions.0/transformer_blocks.0/attn2/Softmax.
Only the sizes are small. Runs on torch 1.13 (Debian, export) and 2.x (GPU
training) alike: nothing here uses an API newer than 1.13.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The interface the engine relies on (see ../README.md).
VOCAB_SIZE = 49408          # CLIP BPE vocabulary
MAX_TOKENS = 77             # CLIP context length
LATENT_CHANNELS = 4
IMAGE_SIZE = 64
LATENT_SIZE = 16            # the VAE downsamples by 4


def group_norm(c):
    return nn.GroupNorm(8, c, eps=1e-5)


class CellNorm(nn.Module):
    """Normalises each latent cell over its own channels (a LayerNorm per position), with GroupNorm's affine.

    GroupNorm's mean and variance span every position, so in a word swap the
    swapped object's new content shifts the normalisation of the background
    too (pathways.py measured that share). Here no statistic crosses
    positions. The parameters keep GroupNorm's names and shapes, so a
    GroupNorm model's weights load as a starting point.
    """

    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def use_cell_norm(module):
    """Replaces every GroupNorm inside module by a CellNorm of the same width (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.GroupNorm):
            setattr(module, name, CellNorm(child.num_channels, child.eps))
        else:
            use_cell_norm(child)


# ---------------------------------------------------------------- VAE
class VAEResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class VAEEncoder(nn.Module):
    def __init__(self, chans):
        super().__init__()
        self.conv_in = nn.Conv2d(3, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        prev = chans[0]
        for i, c in enumerate(chans):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([VAEResnetBlock(prev, c)])
            # Downsample after every block but the last: 64 -> 32 -> 16.
            blk.downsample = nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(chans) - 1 else None
            self.down_blocks.append(blk)
            prev = c
        self.mid_block = nn.ModuleList([VAEResnetBlock(prev, prev), VAEResnetBlock(prev, prev)])
        self.conv_norm_out = group_norm(prev)
        self.conv_out = nn.Conv2d(prev, 2 * LATENT_CHANNELS, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for blk in self.down_blocks:
            for r in blk.resnets:
                x = r(x)
            if blk.downsample is not None:
                x = blk.downsample(x)
        for r in self.mid_block:
            x = r(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAEDecoder(nn.Module):
    def __init__(self, chans):
        super().__init__()
        rev = list(reversed(chans))
        self.conv_in = nn.Conv2d(LATENT_CHANNELS, rev[0], 3, padding=1)
        self.mid_block = nn.ModuleList([VAEResnetBlock(rev[0], rev[0]), VAEResnetBlock(rev[0], rev[0])])
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, c in enumerate(rev):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([VAEResnetBlock(prev, c), VAEResnetBlock(c, c)])
            blk.upsample = nn.Conv2d(c, c, 3, padding=1) if i < len(rev) - 1 else None
            self.up_blocks.append(blk)
            prev = c
        self.conv_norm_out = group_norm(prev)
        self.conv_out = nn.Conv2d(prev, 3, 3, padding=1)

    def forward(self, z):
        x = self.conv_in(z)
        for r in self.mid_block:
            x = r(x)
        for blk in self.up_blocks:
            for r in blk.resnets:
                x = r(x)
            if blk.upsample is not None:
                x = blk.upsample(F.interpolate(x, scale_factor=2.0, mode='nearest'))
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    """64x64x3 images in [-1, 1] <-> 16x16x4 latents (before the scaling factor).

    decoder_norm 'cell' gives the decoder CellNorms instead of GroupNorms: a
    GroupNorm's statistics span the whole image, so the decoder draws a
    latent cell's pixels from every other cell's content too, and a latent
    that keeps the source's background beside an edited object (local blend)
    decodes to another background. The parameters keep their names and
    shapes, so a GroupNorm decoder's weights load as a starting point.
    """

    def __init__(self, chans=(32, 48, 64), decoder_norm='group'):
        super().__init__()
        self.encoder = VAEEncoder(chans)
        self.quant_conv = nn.Conv2d(2 * LATENT_CHANNELS, 2 * LATENT_CHANNELS, 1)
        self.post_quant_conv = nn.Conv2d(LATENT_CHANNELS, LATENT_CHANNELS, 1)
        self.decoder = VAEDecoder(chans)
        if decoder_norm == 'cell':
            use_cell_norm(self.decoder)
        elif decoder_norm != 'group':
            raise ValueError(f"decoder_norm must be 'group' or 'cell', got {decoder_norm!r}")

    def encode(self, x):
        """Returns the posterior's mean and log-variance."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


class VAEEncoderExport(nn.Module):
    """sample -> latent_parameters (mean ‖ logvar along channels), as diffusers' vae_encoder."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, sample):
        mean, logvar = self.vae.encode(sample)
        return torch.cat([mean, logvar], dim=1)


class VAEDecoderExport(nn.Module):
    """latent_sample (unscaled) -> sample in [-1, 1]-ish."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample):
        return self.vae.decode(latent_sample)


# ---------------------------------------------------------------- text encoder
class CLIPAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, causal_mask):
        b, n, d = x.shape
        h = self.heads
        q = self.q_proj(x).reshape(b, n, h, d // h).transpose(1, 2) * (d // h) ** -0.5
        k = self.k_proj(x).reshape(b, n, h, d // h).transpose(1, 2)
        v = self.v_proj(x).reshape(b, n, h, d // h).transpose(1, 2)
        p = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) + causal_mask, dim=-1)
        return self.out_proj(torch.matmul(p, v).transpose(1, 2).reshape(b, n, d))


class CLIPMLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        x = self.fc1(x)
        return self.fc2(x * torch.sigmoid(1.702 * x))  # CLIP's quick_gelu


class CLIPEncoderLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(d)
        self.self_attn = CLIPAttention(d, heads)
        self.layer_norm2 = nn.LayerNorm(d)
        self.mlp = CLIPMLP(d)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, d, token_dim, token_init_std):
        super().__init__()
        # The vocabulary is CLIP's (49,408 ids) but only a few dozen of them
        # ever occur here; a narrow table projected up keeps the file small.
        # token_init_std matters: with CLIP's small init (0.04 here) the
        # layers' outputs drown the token identities in the residual stream,
        # and words the UNet does not need from the start (left, right, top)
        # never become distinguishable; a large init (3.0) keeps every word
        # distinct from step 0 (measured: position 18 % -> 97 %, see
        # models/tiny/README.md).
        self.token_embedding = nn.Embedding(VOCAB_SIZE, token_dim)
        self.token_projection = nn.Linear(token_dim, d, bias=False)
        self.position_embedding = nn.Embedding(MAX_TOKENS, d)
        nn.init.normal_(self.token_embedding.weight, std=token_init_std)
        nn.init.normal_(self.position_embedding.weight, std=0.01)
        self.register_buffer('position_ids', torch.arange(MAX_TOKENS)[None], persistent=False)

    def forward(self, input_ids):
        return self.token_projection(self.token_embedding(input_ids)) + self.position_embedding(self.position_ids)


BOS_TOKEN_ID = 49406
EOS_TOKEN_ID = 49407        # also the padding id, as in SD 1.x


class CLIPTextModel(nn.Module):
    """input_ids [B, 77] (int32 or int64) -> last_hidden_state [B, 77, d].

    windows=None: causal like CLIP, every token sees all before it. With
    windows (one per layer), a content token sees only the content tokens
    at most windows[layer] positions away on either side, and BOS, EOS and
    padding see only themselves. So a word's state depends on its
    neighbours only (sum(windows) tokens either side), and BOS, EOS and
    padding are the same for every prompt: changing one word changes the
    states of that word and its few neighbours, and nothing the image's
    other regions attend to. (A causal encoder trained with the UNet folds
    a swapped colour word into every later token, EOS and padding included,
    and Prompt-to-Prompt, which injects attention maps but not the values,
    then changes the background too; models/tiny/README.md.)
    """

    def __init__(self, d=128, layers=2, heads=4, token_dim=32, token_init_std=0.04, windows=None):
        super().__init__()
        if windows is not None and len(windows) != layers:
            raise ValueError(f'one window per layer: {layers} layers, windows {windows}')
        self.hidden_size = d
        self.windows = None if windows is None else [int(w) for w in windows]
        self.embeddings = CLIPTextEmbeddings(d, token_dim, token_init_std)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([CLIPEncoderLayer(d, heads) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(d)
        mask = torch.full((MAX_TOKENS, MAX_TOKENS), -1e9).triu(1)
        self.register_buffer('causal_mask', mask, persistent=False)
        pos = torch.arange(MAX_TOKENS)
        self.register_buffer('distance', (pos[:, None] - pos[None, :]).abs(), persistent=False)

    def masks(self, input_ids):
        """The additive attention mask of each layer: [77, 77] (causal) or [B, 1, 77, 77] (windows)."""
        if self.windows is None:
            return [self.causal_mask] * len(self.encoder.layers)
        special = (input_ids == BOS_TOKEN_ID) | (input_ids == EOS_TOKEN_ID)
        content = ~special
        pair = content[:, :, None] & content[:, None, :]
        itself = torch.eye(MAX_TOKENS, dtype=torch.bool, device=input_ids.device)[None]
        zero = torch.zeros((), device=input_ids.device)
        blocked = torch.full((), -1e9, device=input_ids.device)
        return [torch.where((pair & (self.distance <= w)[None]) | itself, zero, blocked)[:, None] for w in self.windows]

    def forward(self, input_ids):
        ids = input_ids.long()
        x = self.embeddings(ids)
        for layer, mask in zip(self.encoder.layers, self.masks(ids)):
            x = layer(x, mask)
        return self.final_layer_norm(x)


# ---------------------------------------------------------------- UNet
class Timesteps(nn.Module):
    """Sinusoidal embedding as SD's (flip_sin_to_cos=True, freq_shift=0)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        a = t.float()[:, None] * freqs[None]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, d):
        super().__init__()
        self.linear_1 = nn.Linear(cin, d)
        self.linear_2 = nn.Linear(d, d)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb):
        super().__init__()
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class Attention(nn.Module):
    """Multi-head attention in one of the two layouts real SD exports use.

    'classic' (diffusers' AttnProcessor): heads folded into the batch,
    scores [B*heads, N, K] = MatMul(q, kT) then Mul(scale), Softmax.
    'sdpa' (torch's scaled_dot_product_attention as exported): scores
    [B, heads, N, K] = MatMul(q*sqrt(scale), kT*sqrt(scale)), Softmax.
    Both compute the same function of the same weights.
    """
    layout = 'classic'
    # A list while training with the grounding loss: every cross-attention
    # layer appends its head-averaged probabilities [B, N, K].
    recorded = None
    # A hook (pathways.py's diagnostic, train.py's injected swap term): called
    # with the module and its probabilities as computed ([B*heads, N, K] in the
    # classic layout, [B, heads, N, K] in sdpa), it returns those the layer uses.
    probs_hook = None

    def __init__(self, dim, ctx_dim, heads, head_dim):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.is_cross = ctx_dim is not None
        self.scale = head_dim ** -0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(ctx_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(ctx_dim or dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, x, context=None):
        b, n, _ = x.shape
        ctx = x if context is None else context
        m = ctx.shape[1]
        h, d = self.heads, self.head_dim
        q, k, v = self.to_q(x), self.to_k(ctx), self.to_v(ctx)
        if Attention.layout == 'classic':
            q = q.reshape(b, n, h, d).permute(0, 2, 1, 3).reshape(b * h, n, d)
            k = k.reshape(b, m, h, d).permute(0, 2, 1, 3).reshape(b * h, m, d)
            v = v.reshape(b, m, h, d).permute(0, 2, 1, 3).reshape(b * h, m, d)
            probs = torch.softmax(torch.matmul(q, k.transpose(1, 2)) * self.scale, dim=-1)
            if Attention.probs_hook is not None:
                probs = Attention.probs_hook(self, probs)
            out = torch.matmul(probs, v).reshape(b, h, n, d).permute(0, 2, 1, 3).reshape(b, n, h * d)
        else:
            q = q.reshape(b, n, h, d).transpose(1, 2)
            k = k.reshape(b, m, h, d).transpose(1, 2)
            v = v.reshape(b, m, h, d).transpose(1, 2)
            s = math.sqrt(self.scale)
            probs = torch.softmax(torch.matmul(q * s, k.transpose(-2, -1) * s), dim=-1)
            if Attention.probs_hook is not None:
                probs = Attention.probs_hook(self, probs)
            out = torch.matmul(probs, v).transpose(1, 2).reshape(b, n, h * d)
        if Attention.recorded is not None and self.is_cross:
            Attention.recorded.append(probs.reshape(b, h, n, m).mean(1))
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    def __init__(self, d, inner):
        super().__init__()
        self.proj = nn.Linear(d, inner * 2)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, d, mult):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(d, d * mult), nn.Dropout(0.0), nn.Linear(d * mult, d)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, d, ctx_dim, heads, head_dim, ff_mult):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn1 = Attention(d, None, heads, head_dim)
        self.norm2 = nn.LayerNorm(d)
        self.attn2 = Attention(d, ctx_dim, heads, head_dim)
        self.norm3 = nn.LayerNorm(d)
        self.ff = FeedForward(d, ff_mult)

    def forward(self, x, ctx):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), ctx)
        return x + self.ff(self.norm3(x))


def sincos_2d(channels, res):
    """A 2D sin/cos position code [channels, res, res]: channels/4 frequencies for each of sin x, cos x, sin y, cos y."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, res), torch.linspace(-1, 1, res), indexing='ij')
    fr = torch.arange(1, channels // 4 + 1).float()[:, None, None] * math.pi / 2
    return torch.cat([torch.sin(fr * xx), torch.cos(fr * xx), torch.sin(fr * yy), torch.cos(fr * yy)])


class Transformer2DModel(nn.Module):
    """proj_in widens the conv channels to heads*head_dim: attention is wider than the convolutions.

    With pos_embed (not in diffusers) it adds a learned position embedding
    to the tokens after proj_in, so that every attention layer's queries know
    where they are and cross-attention can put "on the left" on the left; it
    is one extra Add of a constant in the exported graph, so the engine and
    the attention instrumentation see an ordinary SD attention block.
    """

    def __init__(self, c, ctx_dim, heads, head_dim, ff_mult, res, pos_embed, depth=1):
        super().__init__()
        inner = heads * head_dim
        self.norm = group_norm(c)
        self.proj_in = nn.Linear(c, inner)
        self.pos_embed = nn.Parameter(0.5 * sincos_2d(inner, res).reshape(inner, res * res).t()[None].contiguous()) if pos_embed else None
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, ctx_dim, heads, head_dim, ff_mult) for _ in range(depth)])
        self.proj_out = nn.Linear(inner, c)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        h = self.proj_in(h)
        if self.pos_embed is not None:
            h = h + self.pos_embed
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        return self.proj_out(h).reshape(b, hh, ww, c).permute(0, 3, 1, 2) + x


class Downsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class CrossAttnDownBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, attn, layers, down, res):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, temb) for i in range(layers)])
        self.attentions = nn.ModuleList([Transformer2DModel(cout, res=res, **attn) for _ in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout)]) if down else None

    def forward(self, x, temb, ctx):
        skips = []
        for r, a in zip(self.resnets, self.attentions):
            x = a(r(x, temb), ctx)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class CrossAttnUpBlock2D(nn.Module):
    def __init__(self, skip_chans, cout, prev, temb, attn, up, res):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D((prev if i == 0 else cout) + s, cout, temb) for i, s in enumerate(skip_chans)])
        self.attentions = nn.ModuleList([Transformer2DModel(cout, res=res, **attn) for _ in skip_chans])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if up else None

    def forward(self, x, skips, temb, ctx):
        for r, a in zip(self.resnets, self.attentions):
            x = a(r(torch.cat([x, skips.pop()], dim=1), temb), ctx)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, c, temb, attn, res):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, temb), ResnetBlock2D(c, c, temb)])
        self.attentions = nn.ModuleList([Transformer2DModel(c, res=res, **attn)])

    def forward(self, x, temb, ctx):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, ctx)
        return self.resnets[1](x, temb)


class UNet2DConditionModel(nn.Module):
    """sample [B,4,16,16], timestep [B] (float), encoder_hidden_states [B,77,ctx] -> noise prediction.

    Cross-attention at every resolution (16x16, 8x8, 4x4) and in the mid
    block. A learned 2D position embedding is added after conv_in (without
    it the prototype's position accuracy stayed below chance); with
    attention_pos_embed, another in every Transformer2DModel.
    attention_depth gives the transformer blocks of each attention module
    per resolution, finest first; the mid block takes the coarsest's.
    """

    def __init__(self, chans=(32, 64, 64), ctx_dim=128, heads=4, head_dim=16, ff_mult=2, layers=1, attention_pos_embed=False,
                 attention_depth=(1, 1, 1)):
        super().__init__()
        if len(attention_depth) != len(chans) or min(attention_depth) < 1:
            raise ValueError(f'attention_depth wants {len(chans)} depths of at least 1 (finest resolution first), got {attention_depth}')
        c0 = chans[0]
        temb = 4 * c0
        base = dict(ctx_dim=ctx_dim, heads=heads, head_dim=head_dim, ff_mult=ff_mult, pos_embed=attention_pos_embed)
        attn_at = lambda level: dict(base, depth=attention_depth[level])
        self.conv_in = nn.Conv2d(LATENT_CHANNELS, c0, 3, padding=1)
        self.pos_embed = nn.Parameter(0.5 * sincos_2d(c0, LATENT_SIZE)[None])  # starts as a 2D sin/cos code, then learned
        self.time_proj = Timesteps(c0)
        self.time_embedding = TimestepEmbedding(c0, temb)
        self.down_blocks = nn.ModuleList()
        skip_chans, prev, res = [c0], c0, LATENT_SIZE
        for i, c in enumerate(chans):
            last = i == len(chans) - 1
            self.down_blocks.append(CrossAttnDownBlock2D(prev, c, temb, attn_at(i), layers, not last, res))
            skip_chans += [c] * layers + ([] if last else [c])
            prev = c
            res = res if last else res // 2
        self.mid_block = UNetMidBlock2DCrossAttn(prev, temb, attn_at(len(chans) - 1), res)
        self.up_blocks = nn.ModuleList()
        for i, c in enumerate(reversed(chans)):
            last = i == len(chans) - 1
            skips = [skip_chans.pop() for _ in range(layers + 1)]
            self.up_blocks.append(CrossAttnUpBlock2D(skips, c, prev, temb, attn_at(len(chans) - 1 - i), not last, res))
            prev = c
            res = res if last else res * 2
        self.conv_norm_out = group_norm(c0)
        self.conv_out = nn.Conv2d(c0, LATENT_CHANNELS, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        temb = self.time_embedding(self.time_proj(timestep))
        x = self.conv_in(sample) + self.pos_embed
        skips = [x]
        for blk in self.down_blocks:
            x, s = blk(x, temb, encoder_hidden_states)
            skips += s
        x = self.mid_block(x, temb, encoder_hidden_states)
        for blk in self.up_blocks:
            x = blk(x, skips, temb, encoder_hidden_states)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


def architecture(recipe):
    """The recipe keys that decide what the text encoder and UNet compute, with the defaults of recipes
    recorded before each key existed: two recipes with equal architectures build the same model."""
    return dict(te_windows=recipe.get('te_windows'), attention_pos_embed=recipe.get('attention_pos_embed', False),
                unet_attention_depth=list(recipe.get('unet_attention_depth', (1, 1, 1))),
                unet_norm=recipe.get('unet_norm', 'group'))


def text_encoder_and_unet(recipe):
    """The text encoder and UNet a training recipe (train.RECIPE, or the one a training.json recorded) describes."""
    a = architecture(recipe)
    te = CLIPTextModel(token_init_std=recipe['te_token_init_std'], windows=a['te_windows'])
    unet = UNet2DConditionModel(ctx_dim=te.hidden_size, attention_pos_embed=a['attention_pos_embed'],
                                attention_depth=tuple(a['unet_attention_depth']))
    if a['unet_norm'] == 'cell':
        use_cell_norm(unet)
    elif a['unet_norm'] != 'group':
        raise ValueError(f"unet_norm must be 'group' or 'cell', got {a['unet_norm']!r}")
    return te, unet


def attention_layers(unet):
    """(module name, is_cross, heads, head_dim) of every attention module, in forward order."""
    return [(name, m.is_cross, m.heads, m.head_dim) for name, m in unet.named_modules() if isinstance(m, Attention)]


def vae_part(recipe):
    """The part of a training recipe the VAE depends on (what a vae.json records)."""
    return {k: v for k, v in recipe.items() if k == 'seed' or k.startswith('vae_') or k == 'validation_images'}


def vae_for(recipe):
    """The (untrained) VAE a VAE recipe describes: train.py's recipe, or the one a vae.json recorded."""
    return AutoencoderKL(decoder_norm=recipe.get('vae_decoder_norm', 'group'))


def recipe_beside(path):
    """The recipe of the run that wrote path (a vae.npz): that of the vae.json beside it (train.py --vae-only,
    recover.py), else of the training.json beside it (a whole run), else {} (GroupNorms throughout, as
    every recipe recorded before vae_decoder_norm)."""
    for name in ('vae.json', 'training.json'):
        record = os.path.join(os.path.dirname(path), name)
        if os.path.isfile(record):
            return json.load(open(record))['recipe']
    return {}


def load_vae(path):
    """The VAE whose weights train.py wrote to path (a vae.npz), built as the run's record says."""
    vae = vae_for(recipe_beside(path))
    vae.load_state_dict(npz_state(path), strict=True)
    return vae


def npz_state(path):
    """A state dict from an .npz of float32 arrays, as train.py writes them."""
    with np.load(path) as w:
        return {k: torch.from_numpy(w[k]) for k in w.files}


def save_npz_arrays(path, arrays):
    """Writes name -> numpy array to path atomically: a run killed while saving leaves no half-written file to be
    mistaken for a result."""
    tmp = path + '.tmp.npz'
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- noise schedule
def alphas_cumprod(n=1000, beta_start=0.00085, beta_end=0.012):
    """SD's scaled_linear schedule: betas linear in sqrt space."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def ddim_step(x, eps, a, a_next):
    """One deterministic DDIM step (η 0) of noisy latents x with noise prediction eps, from ᾱ a to ᾱ a_next.

    The engine's scheduler step (backend/scheduler); a_next is ᾱ of the next
    timestep, or alphas_cumprod[0] past the last (SD's set_alpha_to_one false).
    """
    x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
    return a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
