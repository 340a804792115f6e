"""Train the tiny model: VAE, then text encoder + UNet on the VAE's latents.

Reads the data set written by datagen (images.npy, input_ids.npy,
info.json) and writes, into --out:

  vae.npz, text_encoder.npz, unet.npz
                  the state dicts as float32 arrays (EMA weights for the
                  text encoder and UNet); one file each keeps every file
                  under the device machine's 16 MiB transfer limit
  training.json   the recipe, the measured times and losses, the latent
                  scaling factor and the fitted latent->RGB preview matrix

The recipe is fixed and seeded: the step counts below are the recipe, not a
time budget. Every few hundred steps the run saves its progress in
OUT/checkpoint/ (checkpoint.py); `--resume` continues an interrupted run from
there and ends with exactly the weights an uninterrupted run gives. The
checkpoint folder is removed when the run finishes. It runs on CUDA when available and on the CPU otherwise, where
--processes splits the UNet's batch over data-parallel processes. Devices
and process counts give different (equally valid) weights: their arithmetic
and random streams differ.
Runs under torch 1.13 and 2.x.
"""
import argparse
import contextlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
import typing

# Measured on 2 cores: OpenBLAS's own threads fight torch's (a UNet step took
# 1.35 s with both at 2, 0.76 s with OpenBLAS at 1). Set before torch loads
# OpenBLAS; spawned UNet processes inherit it.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import judging
import tinysd
from checkpoint import Checkpoints

# The recipe of the committed model (models/tiny/README.md, "Training").
#   te_token_init_std    std of the text encoder's token table at init; large,
#                        so that position words are distinct from the start
#   attention_pos_embed  a learned 2D position embedding in every attention block
#   continue_*           a second cosine cycle (warm restart) from the first
#                        cycle's EMA weights
# Switches measured and left off (models/tiny/README.md, "Why position words
# were ignored"), all off by default so the random stream stays the recipe's:
#   vae_augment     random flips/rotations of VAE training batches
#   unet_attention_depth  transformer blocks in each attention module of the
#                   UNet, per resolution, finest first; [2, 1, 1] (two at 16x16,
#                   where the word maps Prompt-to-Prompt injects are sharpest),
#                   trained from scratch, localised the words better and lost
#                   generation shape and size
#   unet_norm       'cell': CellNorm instead of GroupNorm in the UNet (no statistic
#                   spans positions); in pictures Prompt-to-Prompt then kept
#                   fewer backgrounds, not more, and generation lost shape
#   swap_consistency  weight of the word-swap consistency loss, in the cycles
#                   that have the grounding loss; swap_consistency_mode 'cells'
#                   (swap_consistency_loss: the noise predictions cell by cell)
#                   or 'background_mean' (background_mean_loss: the predicted
#                   clean latent's mean colour away from the objects), on the
#                   timesteps from swap_consistency_min_t to
#                   swap_consistency_max_t, on the cells
#                   more than swap_consistency_margin cells from every object,
#                   swapping words of the swap_consistency_groups (indices into
#                   info.json's swap_groups: 0 the colours, 1 the shapes);
#                   swap_consistency_targets maps words to how often each is
#                   drawn as the swap's new word, relative to 1 for the words
#                   it leaves out (default: every other word of the group
#                   alike; yellow, white and black at 3 and 6 kept no more
#                   of the swaps to them and cost swaps to the other colours).
#                   background_mean at 1 from t 600 halved the changed
#                   backgrounds and cost generation size and colour;
#                   'injected' (the cells, but the swapped pass runs with
#                   the caption pass's attention maps put in, as
#                   Prompt-to-Prompt does at sampling: MapInjection), with
#                   swap_consistency_object weighing a second term that asks
#                   the injected pass to draw the swapped word's object as the
#                   frozen init_from weights draw it without the maps
#                   (swap_consistency_object_mode 'cells': cell by cell;
#                   'mean': only the object's mean per channel, its colour;
#                   either beside the preserve term on the ring: more colour
#                   swaps failed, no more backgrounds kept); in
#                   either window of timesteps alone (up to 600, from 600)
#                   it cost generation size as over all of them;
#                   swap_consistency_x0_cap above 0 weighs each image of the
#                   'cells' or 'injected' term by its timestep's (1 - ᾱ)/ᾱ,
#                   clipped to [1, cap] and divided by its mean over the
#                   timesteps the term runs on: the same total weight, moved
#                   to the high timesteps, where a difference in the noise
#                   prediction is a difference in the clean latent scaled down
#                   by up to 15 (t 999) and where the background's kind is
#                   chosen; measured at 20 beside the fourth generation's
#                   terms: fewer colour swaps drew another kind of
#                   background (17 and 22 of 210 against 26), and at λ 10
#                   fewer swaps succeeded (87.6 against 91 %), at λ 7 no
#                   fewer backgrounds changed (models/tiny/README.md);
#                   swap_consistency_unroll above 0 runs the 'injected' term
#                   that many more sampler steps along both passes' own
#                   trajectories (unrolled_swap_terms) and averages it over
#                   the steps; measured at 3 beside the fourth generation's
#                   terms: no fewer backgrounds changed, fewer swaps right
#   vae_decoder_norm  'group' (the recipe's) or 'cell': the decoder normalises
#                   each position of its feature maps over its own channels, so a cell's
#                   pixels come from its neighbourhood alone and a latent
#                   that keeps the source's background beside an edited
#                   object (local blend) decodes to the source's background
#                   (with GroupNorm, the object's new colour shifts the
#                   whole image's statistics: a green ring blended into a
#                   gray scene decoded on a green background); measured as a
#                   decoder-only fine-tune of the fourth generation's, 3,000
#                   steps: 38.3 dB, a perfect local blend changes 22 of 210
#                   backgrounds (GroupNorm: 41), generation loses 0.6 points
#                   of colour and 1.6 of shape (models/tiny/README.md)
#   vae_crop_*      the VAE's first vae_crop_steps steps on random crops (a
#                   quarter of the pixels: 0.19 against 0.70 s/step on 2
#                   cores), the rest on whole images. 2,000 of 2,500 steps
#                   cost 3.7 dB (30.6 against 34.4 dB) and shapes: drawn
#                   held-out scenes kept their shape through the VAE in 81 %
#                   against 89 %
#   lowfreq_noise   weights of extra white noise drawn on 4x4, then 2x2, then 1x1 grids
#                   and upsampled into the training noise, so that at high t
#                   the noisy latent no longer gives the layout (4x4, 2x2) or
#                   the mean colour (1x1, offset noise) away; offset noise 0.3
#                   drew the white background the recipe's model never draws,
#                   in a fine-tune: for the next generation's recipe
#   high_t_*        a fraction of each batch draws t from [high_t_min, 999],
#                   and every step weighs at least high_t_snr/SNR
#   vae_decoder_only  train only the decoder (post_quant_conv, decoder): the
#                   encoder and so every latent the UNet learned stay as they
#                   are, as SD's fine-tuned decoders (ft-MSE) did; with
#                   vae_init_from, a better decoder for a trained model
#   vae_object_weight  each latent cell an object covers weighs 1 + this in the
#                   reconstruction loss: a small star is a few dozen of 4,096
#                   pixels, and the plain loss lets the VAE round its tips
#   unet_object_weight  the same for the UNet's denoising loss (a weighted
#                   mean per image): the generated shapes the evaluator misses
#                   are big squares' corners, small stars' points and circles'
#                   outlines, a few cells of 256 each
#   preserve_weight weight of a term that keeps the UNet's noise predictions
#                   near those of the weights the run started from (init_from,
#                   frozen), in the cycles that have the grounding loss: a
#                   fine-tune that adds a term (swap_consistency) then changes
#                   what the term asks and as little else as it can (the
#                   background-mean term alone cost generation its size row);
#                   preserve_region 'all' (every cell), 'objects' (only the
#                   cells within swap_consistency_margin of an object: the
#                   cells the background-mean term leaves out) or 'ring'
#                   (those of them no object touches: where an object's
#                   extent is decided, without its own cells, whose colour a
#                   swap must change); measured beside the injected term: the
#                   ring at 10 held size and gave back fewer backgrounds than
#                   'objects' did, at 3 it no longer held size
#                   (models/tiny/README.md)
#   twin_weight     (only in recipes that set it) weight of the twin term, in the
#                   cycles that have the grounding loss: a scene's exact colour
#                   swap (datagen -twins), noised with the scene's own noise, is
#                   denoised under the swapped caption with the scene's
#                   attention maps put in (twin_windows: the kept words'
#                   cross maps above twin_cross_above_t, the swapped word's
#                   above twin_cross_changed_above_t, both by default
#                   INJECT_CROSS_ABOVE_T, self maps above twin_self_above_t,
#                   default INJECT_SELF_ABOVE_T), and the prediction is asked
#                   to be the true noise, as the denoising loss asks. The swap
#                   consistency terms ask an edit to keep the source's
#                   prediction away from the objects, from the source's noisy
#                   latent; this one shows the edit the picture it should
#                   draw, from its own noisy latent, everywhere; twin_unroll
#                   above 0 (recorded only when given) runs it that many more
#                   DDIM steps of twin_unroll_stride sampler strides each
#                   along the edit's own trajectory (unrolled_twin_terms):
#                   an edit's latent is one it drew itself from the first
#                   step, and the one-step term never shows the UNet its own
#                   drift away from the twin
#   background_twin_weight  (only in recipes that set it) the same term on
#                   Prompt-to-Prompt's refinement: a scene whose caption names
#                   no background and its exact background swap (datagen
#                   -background-twins), denoised under the caption with the
#                   background's phrase added, the scene's maps put in through
#                   the engine's token alignment (the added phrase's tokens
#                   draw with their own maps); twin_self_above_t,
#                   twin_cross_above_t and the unroll keys serve both terms,
#                   twin_cross_changed_above_t only the colour term (a
#                   background twin swaps no word). The colour twins alone
#                   teach the edit to follow the source's maps, and an added
#                   phrase, which has no source map, lost its say
#                   (models/tiny/README.md)
#   preserve_margin (only in recipes that set it; otherwise
#                   swap_consistency_margin) the margin of preserve_region
#                   'objects' and 'ring', so that the swap consistency term
#                   can reach closer to the objects than the preserve term's
#                   region (margin 0: every cell no object touches)
#   text_encoder_frozen  a fine-tune (init_from) trains only the UNet: the text
#                   encoder keeps the states the starting weights give every
#                   word, so a term on word swaps can change how the UNet reads
#                   them and not what the words carry (a size word reaches its
#                   object through the noun's state, which the swap term could
#                   otherwise make deaf to the words before it); measured
#                   beside the injected term: the size cost stayed, so the
#                   UNet carries it (models/tiny/README.md)
RECIPE = dict(
    seed=0,
    vae_steps=2500, vae_batch=32, vae_lr=2e-3, vae_kl_weight=1e-5, vae_augment=False,
    vae_crop_steps=0, vae_crop_size=32, vae_decoder_only=False, vae_object_weight=0.0, vae_decoder_norm='group',
    attention_pos_embed=True, te_token_init_std=3.0, te_windows=[1, 0], unet_norm='group',
    unet_attention_depth=[1, 1, 1],
    grounding_weight=0.1, grounding_min_res=4, grounding_cycle=2, swap_consistency=0.0,
    swap_consistency_mode='cells', swap_consistency_min_t=0, swap_consistency_max_t=999,
    swap_consistency_margin=1, swap_consistency_x0_cap=0.0, swap_consistency_unroll=0,
    swap_consistency_groups=[0, 1], swap_consistency_targets={}, swap_consistency_object=0.0, swap_consistency_object_mode='cells', preserve_weight=0.0, preserve_region='all',
    unet_object_weight=0.0,
    text_encoder_frozen=False,
    unet_steps=3500, unet_batch=32, unet_lr=1e-3, unet_warmup=200, unet_final_lr_fraction=0.1,
    continue_steps=3000, continue_lr=3e-4, continue_warmup=100,
    caption_dropout=0.1, min_snr_gamma=5.0, ema_decay=0.999, grad_clip=1.0,
    lowfreq_noise=[], high_t_fraction=0.0, high_t_min=600, high_t_snr=0.0,
    validation_images=1000,
)

# Steps between saved checkpoints (about 3 minutes of the VAE, 2 of the UNet
# on 2 cores); --checkpoint-every changes it.
CHECKPOINT_EVERY = 250


class Stopped(Exception):
    """Raised after the checkpoint --stop-after names was saved (to test resuming)."""


# Training computes attention in the SDPA layout: it scales q and k before
# the matmul, cheaper on a CPU than scaling the [N, K] scores as the classic
# layout does (0.69 against 0.76 s/step). Both layouts are the same function of
# the same weights; export.py writes both.
TRAINING_LAYOUT = 'sdpa'


def log(*a):
    print(*a, flush=True)


def cosine_lr(step, total, base, warmup, final_fraction):
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return base * warm * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * step / total)))


def vae_trained_parameters(vae, decoder_only):
    """The parameters a VAE run trains: all of them, or only those decode() uses (the encoder's are then frozen)."""
    if not decoder_only:
        return list(vae.parameters())
    for p in list(vae.encoder.parameters()) + list(vae.quant_conv.parameters()):
        p.requires_grad_(False)
    return list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())


def object_cell_weights(masks, object_weight):
    """[B, 16, 16]: 1 + object_weight on every latent cell an object touches (masks: [B, 2, 16, 16], any
    coverage scale), 1 elsewhere. The edge cells an object only partly covers are where its outline is,
    so they count in full."""
    return 1 + object_weight * (masks > 0).any(dim=1).float()


def reconstruction_loss(xr, x, cell_weights):
    """MSE + ½·L1 per pixel; with cell_weights [B,16,16] (None: uniform), a weighted mean over the pixels of each cell."""
    # L1 keeps edges (star tips, ring holes) sharper than MSE alone.
    if cell_weights is None:
        return (xr - x).pow(2).mean() + 0.5 * (xr - x).abs().mean()  # the recipe's arithmetic, bit for bit
    err = (xr - x).pow(2) + 0.5 * (xr - x).abs()
    w = F.interpolate(cell_weights[:, None], size=x.shape[-2:], mode='nearest')
    return (err * w).sum() / (w.sum() * x.shape[1])


def train_vae(images, r, dev, gen, ckpt, every, stop_after=None, masks=None):
    """images: uint8 tensor [N,64,64,3] on dev; masks: object_masks [N,2,16,16] (for vae_object_weight).
    Returns the VAE and stats; saves its progress in ckpt."""
    n_val = r['validation_images']
    if len(images) <= n_val:
        raise SystemExit(f'the VAE keeps the last {n_val} scenes for validation and trains on the rest, but the data '
                         f'has {len(images)}: draw more than {n_val} with datagen -n')
    train, val = images[:-n_val], images[-n_val:]
    to_float = lambda u8: u8.permute(0, 3, 1, 2).float().div(127.5).sub(1)
    vae = tinysd.vae_for(r).to(dev)
    if r.get('vae_init_from'):
        vae.load_state_dict(tinysd.npz_state(r['vae_init_from']), strict=True)
    if r['vae_object_weight'] > 0 and (r['vae_crop_steps'] or r['vae_augment']):
        raise SystemExit('vae_object_weight weighs whole, untransformed images: not with vae_crop_steps or vae_augment')
    opt = torch.optim.Adam(vae_trained_parameters(vae, r['vae_decoder_only']), r['vae_lr'])
    start, before = 0, 0.0
    saved = ckpt.load('vae-progress')
    if saved is not None:
        vae.load_state_dict(saved['vae'])
        opt.load_state_dict(saved['opt'])
        gen.set_state(saved['gen'])
        start, before = saved['step'], saved['seconds']
        log(f'vae: resuming at step {start}')
    t0 = time.time()
    for step in range(start, r['vae_steps']):
        for g in opt.param_groups:
            g['lr'] = cosine_lr(step, r['vae_steps'], r['vae_lr'], 50, 0.05)
        pick = torch.randint(0, len(train), (r['vae_batch'],), device=dev, generator=gen)
        x = to_float(train[pick])
        cell_weights = None
        if r['vae_object_weight'] > 0:
            cell_weights = object_cell_weights(masks[pick], r['vae_object_weight'])
        # With vae_augment, a random flip/rotation per batch: the VAE is a codec and should not
        # care where a shape sits or which way it points, and this way it
        # also sees shapes at the positions training never draws them
        # (scene.HeldOut) without any held-out scene.
        if step < r['vae_crop_steps']:
            # The VAE is convolutional and sees only a few pixels around each
            # latent, so crops teach it the same codec for less; the whole
            # images that follow settle its GroupNorm statistics at full size.
            c = r['vae_crop_size']
            i, j = torch.randint(0, tinysd.IMAGE_SIZE - c + 1, (2,), device=dev, generator=gen).tolist()
            x = x[:, :, i:i + c, j:j + c]
        if r['vae_augment']:
            k = int(torch.randint(0, 8, (1,), device=dev, generator=gen).item())
            x = torch.rot90(x, k % 4, dims=(2, 3))
            if k >= 4:
                x = torch.flip(x, dims=(3,))
        with torch.set_grad_enabled(not r['vae_decoder_only']):
            mean, logvar = vae.encode(x)
        z = mean + torch.randn(mean.shape, device=dev, generator=gen) * torch.exp(0.5 * logvar)
        xr = vae.decode(z)
        rec = reconstruction_loss(xr, x, cell_weights)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        loss = rec + r['vae_kl_weight'] * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 250 == 0 or step == 0:
            log(f'vae step {step + 1} {before + time.time() - t0:.0f}s rec {rec.item():.5f} kl {kl.item():.2f}')
        if (step + 1) % every == 0 and step + 1 < r['vae_steps']:
            ckpt.save('vae-progress', dict(vae=vae.state_dict(), opt=opt.state_dict(), gen=gen.get_state(), step=step + 1,
                                           seconds=before + time.time() - t0))
            if stop_after == ('vae', step + 1):
                raise Stopped
    seconds = before + time.time() - t0
    vae.eval()
    with torch.no_grad():
        psnrs = []
        for i in range(0, len(val), 250):
            x = to_float(val[i:i + 250])
            xr = vae.decode(vae.encode(x)[0]).clamp(-1, 1)
            mse = ((xr - x) / 2).pow(2).mean(dim=(1, 2, 3))
            psnrs.append(10 * torch.log10(1 / mse))
        psnr = torch.cat(psnrs).mean().item()
    log(f'vae done: {seconds:.0f}s, validation PSNR {psnr:.2f} dB')
    return vae, dict(seconds=round(seconds, 1), validation_psnr_db=round(psnr, 2), params=tinysd.n_params(vae))


@torch.no_grad()
def encode_latents(vae, images, dev, gen):
    """Posterior samples of every image, like SD's latent_dist.sample()."""
    # channels_last halves the CPU time of these convolutions (measured: 1.9
    # against 4.7 s per 500 images); training keeps the default layout.
    vae.to(memory_format=torch.channels_last)
    out = []
    for i in range(0, len(images), 500):
        x = images[i:i + 500].permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous(memory_format=torch.channels_last)
        mean, logvar = vae.encode(x)
        out.append((mean + torch.randn(mean.shape, device=dev, generator=gen) * torch.exp(0.5 * logvar)).contiguous())
    vae.to(memory_format=torch.contiguous_format)
    return torch.cat(out)


@torch.no_grad()
def twin_deltas(vae, images, twin_images, has, scale):
    """Each scene's twin latent minus its own, scaled as the training latents ([N, 4, 16, 16], float16; zeros
    for scenes without a twin). Posterior means: added to a scene's sampled latent, the difference gives its
    twin the same posterior sample, so that the two latents differ only where the pictures do."""
    vae.to(memory_format=torch.channels_last)
    out = torch.zeros((len(images), 4, tinysd.LATENT_SIZE, tinysd.LATENT_SIZE), dtype=torch.float16,
                      device=images.device)
    rows = has.nonzero()[:, 0]
    for i in range(0, len(rows), 500):
        at = rows[i:i + 500]
        means = []
        for imgs in (images[at], twin_images[at]):
            x = imgs.permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous(memory_format=torch.channels_last)
            means.append(vae.encode(x)[0])
        out[at] = ((means[1] - means[0]) * scale).contiguous().half()
    vae.to(memory_format=torch.contiguous_format)
    return out


@torch.no_grad()
def fit_preview(latents, images, n=5000):
    """Least-squares fit of RGB in [-1,1] (image averaged over each latent pixel's 4x4 patch) from the 4 scaled latent channels plus a bias."""
    z = latents[:n].permute(0, 2, 3, 1).reshape(-1, 4).double().cpu()
    rgb = F.avg_pool2d(images[:n].permute(0, 3, 1, 2).double().div(127.5).sub(1), 4).permute(0, 2, 3, 1).reshape(-1, 3).cpu()
    a = torch.cat([z, torch.ones(len(z), 1, dtype=torch.float64)], dim=1)
    sol = torch.linalg.lstsq(a, rgb).solution
    resid = (a @ sol - rgb).pow(2).mean().sqrt().item()
    return sol[:4].tolist(), sol[4].tolist(), resid


def training_noise(shape, lowfreq, dev, gen):
    """Gaussian noise; with lowfreq, extra energy at coarse scales, scaled to unit variance per sample.

    lowfreq[i] weighs white noise drawn on a grid 2**(i+2) times coarser
    than the latent (4x4, then 2x2, then 1x1 on a 16x16 latent), upsampled
    bilinearly. The 1x1 grid is "offset noise" (one value per channel): at
    high t the noisy latent's mean then no longer gives away the image's
    mean, whose leak keeps a model from drawing far-from-average images.
    """
    eps = torch.randn(shape, device=dev, generator=gen)
    if not lowfreq:
        return eps
    b, c, h, w = shape
    for i, weight in enumerate(lowfreq):
        f = 2 ** (i + 2)
        coarse = torch.randn((b, c, h // f, w // f), device=dev, generator=gen)
        eps = eps + weight * F.interpolate(coarse, scale_factor=f, mode='bilinear', align_corners=False)
    return eps / eps.std(dim=(1, 2, 3), keepdim=True)


def new_models(r, dev):
    """A text encoder and UNet as the recipe builds them (random init from torch's global generator)."""
    te, unet = tinysd.text_encoder_and_unet(r)
    return te.to(dev), unet.to(dev)


def grounding_loss(maps, masks, regions, min_res):
    """TokenCompose's token loss: 1 - the share of each word's attention mass inside the region it describes.

    maps: the cross-attention layers' head-averaged probabilities [B, N, K];
    masks: [B, 2, 16, 16] each object's coverage of every latent cell (0..1);
    regions: [B, K] the region of each token (0 background, i+1 object i,
    -1 none: those tokens are free). Layers coarser than min_res x min_res
    are left out: there a small object covers a fraction of one cell.
    """
    background = (1 - masks.sum(1, keepdim=True)).clamp(min=0)
    areas = torch.cat([background, masks], dim=1)  # [B, 3, 16, 16]: background, object 1, object 2
    which = F.one_hot(regions.clamp(min=0), areas.shape[1]).float() * (regions >= 0).float()[..., None]  # [B, K, 3]
    counted = which.sum()
    terms = []
    for a in maps:
        res = int(round(a.shape[1] ** 0.5))
        if res < min_res:
            continue
        area = F.avg_pool2d(areas, tinysd.LATENT_SIZE // res).flatten(2)  # [B, 3, N]
        inside = torch.einsum('bnk,brn,bkr->bk', a, area, which)
        share = inside / (a.sum(1) + 1e-6)
        terms.append(((1 - share) * which.sum(-1)).sum() / counted.clamp(min=1))
    return torch.stack(terms).mean()


def swap_words(tok, regions, groups, gen, targets=None):
    """Swaps one object word of each caption for another word of its group.

    tok: [B, K] ids; regions: [B, K] each token's region (train_unet's
    convention: -1 none, 0 background, i+1 object i); groups: [G, M] the ids of
    each group (colours, shapes), padded with -1. A colour word that names
    the background is no object word and stays. targets: None to draw the new
    word uniformly among the rest of its group, or [G, M] weights (0 on the
    padding) to draw it in proportion to them. Returns the new ids and [B]
    which rows have a word swapped (captions without an object word, dropped
    ones included, have none).
    """
    member = (tok[..., None, None] == groups).any(-1)  # [B, K, G]
    candidate = member.any(-1) & (regions >= 1)
    has = candidate.any(1)
    pick = (torch.rand(tok.shape, device=tok.device, generator=gen) * candidate).argmax(1)  # a random candidate
    rows = torch.arange(len(tok), device=tok.device)
    old = tok[rows, pick]
    group = member[rows, pick].float().argmax(-1)
    sizes = (groups >= 0).sum(1)[group]
    at = (groups[group] == old[:, None]).float().argmax(-1)
    if targets is None:
        shift = 1 + (torch.rand(len(tok), device=tok.device, generator=gen) * (sizes - 1)).long().clamp(max=sizes - 2)
        new = groups[group, (at + shift) % sizes]
    else:
        weights = targets[group].clone()
        weights[rows, at] = 0  # never the word itself
        new = groups[group, torch.multinomial(weights, 1, generator=gen)[:, 0]]
    swapped = tok.clone()
    swapped[rows, pick] = torch.where(has, new, old)
    return swapped, has


def target_weights(targets, info, chosen, width, dev):
    """[G, width] each group word's weight as a swap's new word, or None when targets names none.

    targets: the recipe's swap_consistency_targets, word -> weight (the
    words it leaves out weigh 1); info: the data's info.json, whose
    swap_group_words spell out the ids of swap_groups; chosen: the indices of
    the groups swapped. Every named word must belong to a chosen group.
    """
    if not targets:
        return None
    if 'swap_group_words' not in info:
        raise SystemExit("the data's info.json has no swap_group_words to find swap_consistency_targets' words in: "
                         'draw the data again with datagen')
    words = [info['swap_group_words'][g] for g in chosen]
    known = {w for group in words for w in group}
    unknown = sorted(set(targets) - known)
    if unknown:
        raise SystemExit(f'swap_consistency_targets names {", ".join(unknown)}, not a word of the swapped groups '
                         f'({", ".join(sorted(known))})')
    rows = [[float(targets.get(w, 1.0)) for w in group] + [0.0] * (width - len(group)) for group in words]
    return torch.tensor(rows, device=dev)


def away_from_objects(masks, margin):
    """[B, 1, 16, 16] 1 on the cells more than margin cells (Chebyshev) from every object, else 0.

    masks: [B, 2, 16, 16] each object's coverage (0..1).
    """
    return (F.max_pool2d(masks.sum(1, keepdim=True), 2 * margin + 1, stride=1, padding=margin) == 0).float()


def swap_consistency_loss(pred, swapped_pred, masks, margin=1, weight=None):
    """The mean squared difference of two noise predictions away from every object.

    pred, swapped_pred: [B, 4, 16, 16] the UNet's predictions for the same noisy
    latents under a caption and under the caption with one object word
    swapped; masks: [B, 2, 16, 16] each object's coverage (0..1). Cells within
    margin cells of an object are left out. The scenes' backgrounds do not depend
    on an object's colour or shape, so neither should the prediction there:
    this is the property Prompt-to-Prompt needs to keep the background of an
    edit. weight: [B] each image's weight (None: 1 each).
    """
    away = away_from_objects(masks, margin)
    diff = (pred - swapped_pred).pow(2) * away
    if weight is not None:
        diff = diff * weight[:, None, None, None]
    return diff.sum() / (away.sum() * pred.shape[1]).clamp(min=1)


def x0_weights(ac, cap, first_t, last_t):
    """Each timestep's weight for a noise-prediction term read as a clean-latent term.

    ac: the schedule's alphas_cumprod; returns one weight per timestep. The clean latents
    two noise predictions imply differ by sqrt((1 - ᾱ)/ᾱ) times the
    predictions' difference, so the squared difference is weighed by
    (1 - ᾱ)/ᾱ, clipped to [1, cap] (unclipped it runs to 214 at t 999), and
    divided by that weight's mean over the timesteps first_t..last_t the
    term runs on, so the term keeps its total weight and only moves it.
    """
    ratio = ((1 - ac) / ac).clamp(1, cap)
    return ratio / ratio[first_t:last_t + 1].mean()


def background_mean_loss(x0, swapped_x0, masks, margin=1):
    """The squared difference of two predicted clean latents' mean, per channel, away from every object.

    x0, swapped_x0: [B, 4, 16, 16] the clean latents the UNet's noise
    predictions imply for the same noisy latents under a caption and under
    the caption with one object word swapped; masks and margin as
    swap_consistency_loss.
    Only the mean over the background's cells is compared, not each cell: our
    reading is that the background's colour decides which background an
    unnamed one becomes in the first steps (Prompt-to-Prompt's swaps drew
    another one as often as a fresh generation did), and the cell-by-cell
    loss made the words weaker everywhere (models/tiny/README.md).
    """
    away = away_from_objects(masks, margin)
    cells = away.sum((2, 3)).clamp(min=1)
    diff = ((x0 - swapped_x0) * away).sum((2, 3)) / cells
    return diff.pow(2).mean()


# Prompt-to-Prompt's default windows (cross 0.8 and self 0.4 of 50 DDIM steps,
# t = 981, 961, ..., 1) put the source's cross-attention maps into the edit at
# t > 200 and its self-attention maps at t > 600. The embedded model's own
# defaults since (cross_replace 1, cross_replace_changed 0.4) put the kept
# words' cross maps in at every step and the swapped word's at t > 600: the
# twin term can follow them (twin_windows); the swap consistency term keeps
# these.
INJECT_CROSS_ABOVE_T, INJECT_SELF_ABOVE_T = 200, 600


class MapInjection:
    """Prompt-to-Prompt's map injection inside a training step, as tinysd.Attention.probs_hook.

    After record(), a pass keeps every attention layer's probabilities (and
    uses them: it is the source). After inject(rows, cross, self_), a pass
    over the recorded pass's batch rows `rows` uses the recorded
    probabilities instead of its own in the cross-attention layers of the rows
    where cross is true and in the self-attention layers where self_ is. The
    recorded maps are detached: the edit is given the source's maps, as at
    sampling, and the term that compares the two passes does not reshape them
    (the grounding loss does). cross may also be [rows, K], a gate per token
    (K: the text's tokens), as the engine's per-token windows (a swapped
    word's own cross window): a token's column is the source's where its
    gate is true and the pass's own elsewhere, the row not renormalised, as
    the engine's formula. gather ([rows, K] or None) is the refinement's
    token alignment: target token k takes the source's column gather[k]
    where its gate is true; an added token (-1) has no source column and
    always keeps its own, as in the engine's mapper. The probabilities must come batch first, in
    the sdpa layout ([B, heads, N, K]) training and pathways.py compute in.
    pathways.py measures with the same record and replay.
    """

    def __init__(self):
        self.maps, self.at, self.rows, self.gates, self.gather = [], 0, None, None, None

    def record(self):
        self.maps, self.rows = [], None

    def inject(self, rows, cross, self_, gather=None):
        if gather is not None:
            if cross.dim() != 2:
                raise ValueError(f'a token alignment needs a gate per token ([rows, K]), got cross of shape {tuple(cross.shape)}')
            cross = cross & (gather >= 0)
        self.at, self.rows, self.gates, self.gather = 0, rows, (cross, self_), gather

    def __call__(self, module, probs):
        if self.rows is None:
            self.maps.append(probs.detach())
            return probs
        source = self.maps[self.at][self.rows]
        self.at += 1
        if module.is_cross and self.gather is not None:
            source = source.gather(3, self.gather.clamp(min=0)[:, None, None, :].expand_as(source))
        gate = self.gates[0] if module.is_cross else self.gates[1]
        gate = gate[:, None, None, :] if gate.dim() == 2 else gate[:, None, None, None]
        return torch.where(gate, source, probs)


@contextlib.contextmanager
def probs_hook(hook):
    """Routes every attention layer's probabilities through hook (None: no hook) for the passes inside."""
    tinysd.Attention.probs_hook = hook
    try:
        yield
    finally:
        tinysd.Attention.probs_hook = None


# The sampler's stride: the engine's 50 DDIM steps over the schedule's 1,000 timesteps.
SAMPLER_STRIDE = len(tinysd.alphas_cumprod()) // 50


def unrolled_swap_terms(unet, maps, ac, x, t, source_eps, edited_eps, source_ctx, swapped_ctx, masks, margin, steps,
                        weights=None):
    """The injected swap consistency term on the next `steps` sampler steps of both trajectories, one per step.

    From the same noisy latents x at timesteps t ([B]), the source follows its
    own prediction source_eps (no gradient: the source is given) and the edit
    edited_eps, one DDIM step of the sampler's stride at a time; at each step
    the source pass (source_ctx, no gradient) records its maps and the edit
    pass (swapped_ctx) runs with them put in under Prompt-to-Prompt's windows,
    and the two noise predictions are compared away from the objects as
    swap_consistency_loss does. A one-step term never sees the edit's latents
    drift from the source's; the reading was that a difference the next steps
    amplify is what turns an unnamed gray background into grass. Measured at
    3 steps beside the fourth generation's terms it kept no more backgrounds
    (models/tiny/README.md). The gradient runs through the edit's whole
    trajectory. weights: per-timestep weights (x0_weights) or None. Returns
    the sum of the steps' terms.
    """
    rows = torch.arange(len(x), device=x.device)
    xs, xe, total = x, x, 0.0
    for _ in range(steps):
        t_next = (t - SAMPLER_STRIDE).clamp(min=0)
        a, a_next = ac[t][:, None, None, None], ac[t_next][:, None, None, None]
        xs, xe, t = tinysd.ddim_step(xs, source_eps, a, a_next), tinysd.ddim_step(xe, edited_eps, a, a_next), t_next
        maps.record()
        with torch.no_grad(), probs_hook(maps):
            source_eps = unet(xs, t.float(), source_ctx)
        maps.inject(rows, t > INJECT_CROSS_ABOVE_T, t > INJECT_SELF_ABOVE_T)
        with probs_hook(maps):
            edited_eps = unet(xe, t.float(), swapped_ctx)
        total = total + swap_consistency_loss(source_eps, edited_eps, masks, margin, None if weights is None else weights[t])
    return total


def unrolled_twin_terms(unet, maps, ac, x0, x0_twin, eps, t, twin_eps, source_ctx, twin_ctx, steps, stride,
                        windows, weight_of):
    """The twin term on the next `steps` sampler steps of the edit's own trajectory, one per step.

    The edit starts from the twin's noisy latent at timesteps t ([B]: x0_twin
    noised with eps, as the one-step twin term) and follows its own noise
    prediction twin_eps, one DDIM step of `stride` sampler strides at a time,
    the prediction detached between steps: each step's latent is one the
    edit drew, and the term at that step teaches the prediction there, not
    the steps before it (scheduled sampling), so a drift the UNet starts is
    a drift it is shown how to undo. At each step the source pass (source_ctx,
    no gradient) records its maps on the scene's own noisy latent at the new
    timestep (x0 noised with eps: the scene the twin is the swap of), the
    edit pass (twin_ctx) runs with them put in where windows(t) says
    (MapInjection.inject's cross and self gates), and its prediction is
    asked for the noise that leads its own latent to the twin's clean
    latent: (x - sqrt(a) x0_twin) / sqrt(1 - a),
    the denoising loss's target when x is on the twin's path, and in the
    clean latent's terms the twin itself. A row whose path has reached t 0
    counts no further steps (a step from t 0 would stay there and count the
    same term again). weight_of(t): the denoising loss's per-image weights
    at timesteps t. Returns the sum of the steps' terms.
    """
    rows = torch.arange(len(x0), device=x0.device)
    a = ac[t][:, None, None, None]
    x = a.sqrt() * x0_twin + (1 - a).sqrt() * eps
    total = 0.0
    for _ in range(steps):
        moving = (t > 0).float()
        if not moving.any():
            break
        t_next = (t - stride * SAMPLER_STRIDE).clamp(min=0)
        a_next = ac[t_next][:, None, None, None]
        x, t, a = tinysd.ddim_step(x, twin_eps.detach(), a, a_next).detach(), t_next, a_next
        maps.record()
        with torch.no_grad(), probs_hook(maps):
            unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t.float(), source_ctx)
        maps.inject(rows, *windows(t))
        with probs_hook(maps):
            twin_eps = unet(x, t.float(), twin_ctx)
        target = (x - a.sqrt() * x0_twin) / (1 - a).sqrt()
        total = total + denoising_loss(twin_eps, target, weight_of(t) * moving)
    return total


def twin_terms(twins, r, te, unet, maps, ac, idx, keep, tok, x0, eps, t, weight, ctx):
    """The twin terms of one training step, [(TwinSet, term)], each term unweighted.

    The batch is the data's scenes idx ([B]) with captions tok, clean
    latents x0, noise eps at timesteps t, the denoising loss's weights
    weight and the caption pass's text states ctx; maps holds the maps that
    pass recorded. A set's term covers the rows whose scene has such a twin
    and whose caption was kept (keep: a dropped caption has nothing to edit);
    each set starts from the caption pass's maps (the unrolled steps record
    over them). A term is averaged over the whole batch, as the denoising
    loss: its weight does not follow how many of a batch's scenes have a
    twin.
    """
    caption_maps = maps.maps
    a = ac[t][:, None, None, None]
    out = []
    for ts in twins:
        rows = ts.has[idx] & keep
        if not rows.any():
            continue
        maps.maps = caption_maps
        th = t[rows]
        x0_twin = x0[rows] + ts.deltas[idx[rows]].float()
        x_twin = a[rows].sqrt() * x0_twin + (1 - a[rows]).sqrt() * eps[rows]
        twin_ids = ts.ids[idx[rows]]
        twin_ctx = te(twin_ids)
        if ts.gather is None:  # a word swap: token for token
            windows = twin_windows(r, twin_ids != tok[rows])
        else:  # a refinement: through the alignment, no swapped word
            gather = ts.gather[idx[rows]]
            windows = twin_windows(r, torch.zeros_like(gather, dtype=torch.bool), gather)
        maps.inject(rows.nonzero()[:, 0], *windows(th))
        with probs_hook(maps):
            twin_pred = unet(x_twin, th.float(), twin_ctx)
        tw = denoising_loss(twin_pred, eps[rows], weight[rows])
        unroll = r.get('twin_unroll', 0)
        if unroll > 0:
            u = unrolled_twin_terms(unet, maps, ac, x0[rows], x0_twin, eps[rows], th, twin_pred,
                                    ctx[rows].detach(), twin_ctx, unroll, r.get('twin_unroll_stride', 1),
                                    windows, lambda at_t: loss_weights(ac, at_t, r))
            tw = (tw + u) / (1 + unroll)  # the term's mean over the steps
        out.append((ts, tw * rows.float().mean()))
    return out


def twin_windows(r, changed, gather=None):
    """The twin terms' map windows for recipe r: a function of the timesteps t ([B]) that gives
    MapInjection.inject's (cross, self, gather) arguments.

    changed: [B, K] which of the twin caption's tokens differ from the
    caption's (the swapped word). Unchanged tokens take the source's cross
    maps above twin_cross_above_t, the swapped word's tokens above
    twin_cross_changed_above_t (the engine's cross_replace_changed: after it
    the word draws with its own maps), the self maps are put in above
    twin_self_above_t; each defaults to the windows the term was first
    measured with (INJECT_CROSS_ABOVE_T for both cross gates,
    INJECT_SELF_ABOVE_T). gather: a background twin's token alignment,
    passed on to MapInjection (which keeps the added tokens' own maps).
    """
    cross_above = r.get('twin_cross_above_t', INJECT_CROSS_ABOVE_T)
    changed_above = r.get('twin_cross_changed_above_t', cross_above)
    self_above = r.get('twin_self_above_t', INJECT_SELF_ABOVE_T)

    def gates(t):
        cross = torch.where(changed, (t > changed_above)[:, None], (t > cross_above)[:, None])
        return cross, t > self_above, gather
    return gates


def object_follow_loss(edited, fresh, on):
    """The mean squared difference of two noise predictions on the swapped word's object.

    edited: the swapped caption's prediction with the caption's maps put in;
    fresh: the swapped caption's own prediction by the frozen weights the run
    started from (no gradient); on: [B, 1, 16, 16] 1 on the cells the swapped
    word's object covers more than half of. The injected maps must not hold
    the object's old colour against the new word. Against the run's own
    prediction the term would be met by a word that matters less everywhere
    (measured: a colour swap then succeeded in 22 %).
    """
    return ((edited - fresh).pow(2) * on).sum() / (on.sum() * edited.shape[1]).clamp(min=1)


def object_mean_follow_loss(edited, fresh, on):
    """The squared difference of two noise predictions' means over the swapped word's object, per channel.

    As object_follow_loss, but only the object's mean is compared: the mean
    carries the object's colour, which the edit must take from the new word,
    and not its outline, which the edit must keep from the source's maps
    while the fresh prediction draws its own (measured: the cell-by-cell term
    beside the preserve term on the ring cost colour swaps their success).
    Images whose object covers no cell count for nothing.
    """
    cells = on.sum((2, 3))  # [B, 1]
    diff = ((edited - fresh) * on).sum((2, 3)) / cells.clamp(min=1)
    has = (cells > 0).float()
    return (diff.pow(2) * has).sum() / (has.sum() * edited.shape[1]).clamp(min=1)


def preserve_cells(masks, region, margin):
    """[B, 1, 16, 16] the cells the preserve term counts (1) for preserve_region region, or None for every cell.

    masks: [B, 2, 16, 16] each object's coverage (0..1). 'objects': the cells
    within margin cells of an object, its own included; 'ring': those of them
    no object touches.
    """
    if region == 'all':
        return None
    near = 1 - away_from_objects(masks, margin)
    if region == 'objects':
        return near
    if region == 'ring':
        return near * (masks.sum(1, keepdim=True) == 0).float()
    raise ValueError(f"preserve_region must be 'all', 'objects' or 'ring', got {region!r}")


def denoising_loss(pred, eps, weight, cover=None, object_weight=0.0):
    """The epsilon MSE per image times weight ([B], Min-SNR), averaged over the batch.

    With object_weight above 0, the cells are weighed by object_cell_weights (cover: [B, 2, 16, 16], each
    object's share of the cell), a weighted mean per image: the few cells that hold a small star's points
    or a square's corners then weigh more against the wide background, as vae_object_weight does for the
    decoder.
    """
    sq = (pred - eps).pow(2)
    if object_weight <= 0:
        return (sq.mean(dim=(1, 2, 3)) * weight).mean()  # the recipe's arithmetic, bit for bit
    cells = object_cell_weights(cover, object_weight)[:, None]
    per_image = (sq * cells).sum((1, 2, 3)) / (cells.sum((1, 2, 3)) * sq.shape[1])
    return (per_image * weight).mean()


def preserve_loss(pred, frozen_pred, weight, near=None):
    """The squared difference of the run's and the frozen model's noise predictions, weighted per image as the
    denoising loss (weight: [B]), so that the frozen model's prediction is a second target.

    near: [B, 1, 16, 16] the cells to count (1) or leave out (0); None counts every cell.
    """
    sq = (pred - frozen_pred).pow(2)
    if near is None:
        per_image = sq.mean(dim=(1, 2, 3))
    else:
        per_image = (sq * near).sum((1, 2, 3)) / (near.sum((1, 2, 3)) * sq.shape[1]).clamp(min=1)
    return (per_image * weight).mean()


def loss_weights(ac, t, r):
    """The denoising loss's weight of each image at timesteps t ([B]): Min-SNR for epsilon prediction, times
    recipe r's high_t_snr floor when it has one."""
    snr = ac[t] / (1 - ac[t])
    weight = torch.clamp(snr, max=r['min_snr_gamma']) / snr
    if r['high_t_snr'] > 0:
        weight = weight * torch.clamp(r['high_t_snr'] / snr, min=1.0)
    return weight


def train_unet(latents, ids, empty_ids, r, dev, stage, steps, lr, warmup, init=None, processes=1, judge=None,
               judge_every=0, deadline=None, save_every=0, out=None, masks=None, regions=None, progress=None,
               stop_after=None, swap_groups=None, swap_targets=None, teacher=None, twins=None):
    """Trains text encoder + UNet for steps steps (cosine from lr after warmup); returns the EMA models and stats.

    stage numbers the cosine cycle (it seeds the cycle's random streams).
    init: state dicts to start from. progress: (Checkpoints, name, every):
    the cycle saves itself there every `every` steps and resumes from it
    when it exists. With processes > 1 the batch is split
    over that many data-parallel CPU processes of one thread each, which
    average their gradients every step (on 2 cores 0.47 s/step against
    0.69 s for one process of 2 threads: torch 1.13 runs the attention's
    batched matmuls on one thread whatever the thread count).
    judge(step, te, unet) scores the EMA models every judge_every steps
    (one process only: the others would wait on it). swap_groups: [G, M]
    word ids for the swap consistency loss and swap_targets their weights as
    a swap's new word (swap_words). teacher: state dicts
    of the frozen weights the preserve term keeps the predictions near.
    twins: the twin terms' TwinSets (load_twins), or None.
    """
    kw = dict(latents=latents, ids=ids, empty_ids=empty_ids, r=r, dev=dev, stage=stage, steps=steps, lr=lr,
              warmup=warmup, init=init, deadline=deadline, save_every=save_every, out=out, masks=masks, regions=regions,
              progress=progress, stop_after=stop_after, swap_groups=swap_groups, swap_targets=swap_targets,
              teacher=teacher, twins=twins)
    if processes == 1:
        return _train_unet_rank(0, 1, judge=judge, judge_every=judge_every, **kw)
    # Rank 0 hands its result back through a file: a pipe could fill up while
    # the parent waits for the processes to end.
    scratch = tempfile.mkdtemp(prefix='unet-', dir=out)
    try:
        mp.spawn(_unet_worker, args=(processes, scratch, kw), nprocs=processes, join=True)
        if not os.path.isfile(os.path.join(scratch, 'result.pt')):
            raise Stopped
        result = torch.load(os.path.join(scratch, 'result.pt'))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    te, unet = new_models(r, dev)
    te.load_state_dict(result['text_encoder'])
    unet.load_state_dict(result['unet'])
    return te.eval(), unet.eval(), result['stats']


def _exit_with_parent(every=5.0):
    """Ends this worker soon after its parent dies.

    A parent killed by a signal cannot join its workers, and an orphaned
    worker would go on training, on cores nobody sees it hold, to a result
    nobody reads.
    """
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name='exit-with-parent', daemon=True).start()


def _unet_worker(rank, world, scratch, kw):
    _exit_with_parent()
    torch.set_num_threads(1)
    tinysd.Attention.layout = TRAINING_LAYOUT  # a spawned process starts from the module's default
    dist.init_process_group('gloo', init_method='file://' + os.path.join(scratch, 'rendezvous'), rank=rank, world_size=world)
    try:
        te, unet, stats = _train_unet_rank(rank, world, **kw)
        if rank == 0:
            torch.save(dict(text_encoder=te.state_dict(), unet=unet.state_dict(), stats=stats), os.path.join(scratch, 'result.pt'))
    except Stopped:
        pass  # every rank stops at the same step; the parent sees no result
    finally:
        dist.destroy_process_group()


def _average_gradients(params, world, loss, stop):
    """All-reduces every gradient, the loss and the stop votes in one message; returns (mean loss, any stop)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1), torch.tensor([float(stop)])])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g)
        offset += g.numel()
    return flat[-2].item(), flat[-1].item() > 0


def _generator_states(gen, world):
    """Every rank's generator state, in rank order (a resumed rank continues its own stream)."""
    mine = gen.get_state()
    if world == 1:
        return [mine]
    states = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(states, mine)
    return states


def _check_in_step(params):
    """Raises if this rank's weights differ from rank 0's (they must stay identical)."""
    mine = torch.stack([p.detach().double().sum() for p in params])
    theirs = mine.clone()
    dist.broadcast(theirs, 0)
    if not torch.equal(mine, theirs):
        raise RuntimeError(f'data-parallel rank {dist.get_rank()} drifted from rank 0: weight sums differ by up to '
                           f'{(mine - theirs).abs().max().item():.3g}')


def _train_unet_rank(rank, world, latents, ids, empty_ids, r, dev, stage, steps, lr, warmup, init, deadline,
                     save_every, out, masks=None, regions=None, progress=None, stop_after=None, judge=None, judge_every=0,
                     swap_groups=None, swap_targets=None, teacher=None, twins=None):
    # Every rank builds the same initial weights, applies the same averaged
    # gradients and so keeps the same weights; each draws its own share of
    # the batch.
    torch.manual_seed(r['seed'] + stage)
    gen = torch.Generator(device=dev)
    gen.manual_seed(r['seed'] + 1000 * stage + rank)
    te, unet = new_models(r, dev)
    ema_te, ema_unet = new_models(r, dev)
    if init is not None:
        te.load_state_dict(init['text_encoder'], strict=True)
        unet.load_state_dict(init['unet'], strict=True)
    ema_te.load_state_dict(te.state_dict())
    ema_unet.load_state_dict(unet.state_dict())
    frozen = None
    maps = MapInjection()  # used by the injected swap consistency term and the twin term
    if teacher is not None:
        frozen = new_models(r, dev)
        for m, name in zip(frozen, ('text_encoder', 'unet')):
            m.load_state_dict(teacher[name], strict=True)
            m.eval().requires_grad_(False)
    params = list(unet.parameters()) + list(te.parameters())
    ema_params = list(ema_unet.parameters()) + list(ema_te.parameters())
    if r['text_encoder_frozen']:
        # The EMA copy then stays equal to the starting text encoder, and the
        # optimiser and the gradient averaging see only the UNet.
        te.requires_grad_(False)
        params, ema_params = list(unet.parameters()), list(ema_unet.parameters())
    opt = torch.optim.AdamW(params, lr, betas=(0.9, 0.99), weight_decay=0.01)
    ac = tinysd.alphas_cumprod().to(dev)
    swap_weights = None  # the swap consistency term's weight per timestep; None: every timestep alike
    if r['swap_consistency_x0_cap'] > 0:
        first = r['swap_consistency_min_t']
        if r['swap_consistency_mode'] == 'injected':
            first = max(first, INJECT_CROSS_ABOVE_T + 1)
        swap_weights = x0_weights(ac, r['swap_consistency_x0_cap'], first, r['swap_consistency_max_t'])

    bs = r['unet_batch'] // world
    lead = rank == 0
    losses, judged, start, before = [], [], 0, 0.0
    saved = progress[0].load(progress[1]) if progress else None
    if saved is not None:
        for m, name in ((te, 'te'), (unet, 'unet'), (ema_te, 'ema_te'), (ema_unet, 'ema_unet'), (opt, 'opt')):
            m.load_state_dict(saved[name])
        gen.set_state(saved['gens'][rank])
        losses, judged, start, before = saved['losses'], saved['judged'], saved['step'], saved['seconds']
        if lead:
            log(f'unet cycle {stage}: resuming at step {start}')
    t0 = time.time()
    stopped_at, stop = None, False
    for step in range(start, steps):
        if stop:
            stopped_at = step
            if lead:
                log(f'unet: deadline reached, stopping after {step} of {steps} steps')
            break
        for g in opt.param_groups:
            g['lr'] = cosine_lr(step, steps, lr, warmup, r['unet_final_lr_fraction'])
        idx = torch.randint(0, len(latents), (bs,), device=dev, generator=gen)
        x0, tok = latents[idx], ids[idx]
        drop = torch.rand(bs, device=dev, generator=gen) < r['caption_dropout']
        tok = torch.where(drop[:, None], empty_ids[None], tok)
        t = torch.randint(0, len(ac), (bs,), device=dev, generator=gen)
        if r['high_t_fraction'] > 0:
            high = torch.rand(bs, device=dev, generator=gen) < r['high_t_fraction']
            t = torch.where(high, torch.randint(r['high_t_min'], len(ac), (bs,), device=dev, generator=gen), t)
        eps = training_noise(x0.shape, r['lowfreq_noise'], dev, gen)
        a = ac[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        grounding = r['grounding_weight'] > 0 and stage >= r['grounding_cycle']
        preserve = grounding and frozen is not None and r['preserve_weight'] > 0
        if preserve:
            with torch.no_grad():  # before the maps are recorded: the frozen UNet's are not the run's
                frozen_pred = frozen[1](xt, t.float(), frozen[0](tok))
        tinysd.Attention.recorded = [] if grounding else None
        inject = grounding and r['swap_consistency'] > 0 and r['swap_consistency_mode'] == 'injected'
        twin = grounding and bool(twins)
        if inject or twin:
            maps.record()
        with probs_hook(maps if inject or twin else None):
            ctx = te(tok)
            pred = unet(xt, t.float(), ctx)
        weight = loss_weights(ac, t, r)
        cover = masks[idx].float() / 16 if grounding or r['unet_object_weight'] > 0 else None  # each object's share of every latent cell
        loss = denoising_loss(pred, eps, weight, cover, r['unet_object_weight'])
        if preserve:
            near = preserve_cells(cover, r['preserve_region'], r.get('preserve_margin', r['swap_consistency_margin']))
            p = preserve_loss(pred, frozen_pred, weight, near)
            loss = loss + r['preserve_weight'] * p
            if lead and ((step + 1) % 500 == 0 or step == 0):
                log(f'step {step + 1}: preserve term {p.item():.5f}')
        if grounding:
            # A dropped caption names no region.
            reg = torch.where(drop[:, None], torch.full_like(regions[idx], -1), regions[idx])
            g = grounding_loss(tinysd.Attention.recorded, cover, reg, r['grounding_min_res'])
            tinysd.Attention.recorded = None
            loss = loss + r['grounding_weight'] * g
            if lead and ((step + 1) % 500 == 0 or step == 0):
                log(f'step {step + 1}: grounding term {g.item():.4f}')
            if r['swap_consistency'] > 0:
                swapped, has = swap_words(tok, reg, swap_groups, gen, swap_targets)
                has = has & (t >= r['swap_consistency_min_t']) & (t <= r['swap_consistency_max_t'])
                if inject:
                    has = has & (t > INJECT_CROSS_ABOVE_T)  # below, Prompt-to-Prompt's edit uses its own maps
                if has.any() and inject:
                    m, th, ctx_swapped = cover[has], t[has], te(swapped[has])
                    maps.inject(has.nonzero()[:, 0], th > INJECT_CROSS_ABOVE_T, th > INJECT_SELF_ABOVE_T)
                    with probs_hook(maps):
                        edited = unet(xt[has], th.float(), ctx_swapped)
                    # The edit is asked to keep the source's prediction away from the objects, not the reverse.
                    c = swap_consistency_loss(pred[has].detach(), edited, m, r['swap_consistency_margin'],
                                              None if swap_weights is None else swap_weights[th])
                    if r['swap_consistency_unroll'] > 0:
                        u = unrolled_swap_terms(unet, maps, ac, xt[has], th, pred[has].detach(), edited, ctx[has].detach(),
                                                ctx_swapped, m, r['swap_consistency_margin'],
                                                r['swap_consistency_unroll'], swap_weights)
                        c = (c + u) / (1 + r['swap_consistency_unroll'])  # the term's mean over the steps
                    loss = loss + r['swap_consistency'] * c
                    if r['swap_consistency_object'] > 0:
                        with torch.no_grad():  # the frozen weights': the run's own would let the word weaken
                            fresh = frozen[1](xt[has], th.float(), frozen[0](swapped[has]))
                        changed = swapped[has] != tok[has]
                        which = (reg[has] * changed).sum(1) - 1  # the swapped word's object
                        on = (m[torch.arange(len(m), device=dev), which][:, None] > 0.5).float()
                        follow = object_mean_follow_loss if r['swap_consistency_object_mode'] == 'mean' else object_follow_loss
                        o = follow(edited, fresh, on)
                        loss = loss + r['swap_consistency_object'] * o
                        if lead and ((step + 1) % 500 == 0 or step == 0):
                            log(f'step {step + 1}: object follow term {o.item():.5f}')
                    if lead and ((step + 1) % 500 == 0 or step == 0):
                        log(f'step {step + 1}: swap consistency term {c.item():.5f}')
                elif has.any():
                    swapped_pred = unet(xt[has], t[has].float(), te(swapped[has]))
                    m = cover[has]
                    if r['swap_consistency_mode'] == 'background_mean':
                        ah = a[has]
                        clean = (xt[has] - (1 - ah).sqrt() * pred[has]) / ah.sqrt()
                        swapped_clean = (xt[has] - (1 - ah).sqrt() * swapped_pred) / ah.sqrt()
                        c = background_mean_loss(clean, swapped_clean, m, r['swap_consistency_margin'])
                    else:
                        c = swap_consistency_loss(pred[has], swapped_pred, m, r['swap_consistency_margin'],
                                                  None if swap_weights is None else swap_weights[t[has]])
                    loss = loss + r['swap_consistency'] * c
                    if lead and ((step + 1) % 500 == 0 or step == 0):
                        log(f'step {step + 1}: swap consistency term {c.item():.5f}')
        if twin:
            for ts, tw in twin_terms(twins, r, te, unet, maps, ac, idx, ~drop, tok, x0, eps, t, weight, ctx):
                loss = loss + ts.weight * tw
                if lead and ((step + 1) % 500 == 0 or step == 0):
                    log(f'step {step + 1}: {ts.kind} twin term {tw.item():.5f}')
        opt.zero_grad()
        loss.backward()
        late = deadline is not None and time.time() > deadline
        if world > 1:
            loss_value, stop = _average_gradients(params, world, loss, late)
        else:
            loss_value, stop = loss.detach(), late  # a tensor: reading it every step would stall a GPU
        torch.nn.utils.clip_grad_norm_(params, r['grad_clip'])
        opt.step()
        d = min(r['ema_decay'], (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_mul_(ema_params, d)
            torch._foreach_add_(ema_params, [p.detach() for p in params], alpha=1 - d)
        losses.append(float(loss_value) if (step + 1) % 50 == 0 else float('nan'))
        if lead and ((step + 1) % 500 == 0 or step == 0):
            el = time.time() - t0
            log(f'step {step + 1}/{steps} {before + el:.0f}s {el / (step + 1 - start):.3f}s/step loss {float(loss_value):.4f}')
        if lead and save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            d = os.path.join(out, f'step{step + 1}')
            os.makedirs(d, exist_ok=True)
            for name, m in (('text_encoder', ema_te), ('unet', ema_unet)):
                save_npz(os.path.join(d, name + '.npz'), m)
        if judge is not None and judge_every and (step + 1) % judge_every == 0 and step + 1 < steps:
            judged.append(dict(step=step + 1, **judge(step + 1, ema_te, ema_unet)))
            log('judged', json.dumps(judged[-1]))
        if progress and (step + 1) % progress[2] == 0 and step + 1 < steps:
            gens = _generator_states(gen, world)  # every rank takes part in the gather
            if lead:
                ckpt, name, _ = progress
                ckpt.save(name, dict(te=te.state_dict(), unet=unet.state_dict(), ema_te=ema_te.state_dict(),
                                     ema_unet=ema_unet.state_dict(), opt=opt.state_dict(), gens=gens, losses=losses,
                                     judged=judged, step=step + 1, seconds=before + time.time() - t0))
            if stop_after == (f'unet{stage}', step + 1):
                raise Stopped
    done = stopped_at if stopped_at is not None else steps
    if world > 1:
        _check_in_step(ema_params)
    seconds = before + time.time() - t0
    curve = [round(v, 4) for v in losses if not math.isnan(v)]
    stats = dict(seconds=round(seconds, 1), seconds_per_step=round(seconds / max(done, 1), 4), processes=world,
                 unet_params=tinysd.n_params(unet), text_encoder_params=tinysd.n_params(te),
                 loss_every_50_steps=curve, steps_done=done)
    if start:
        stats['resumed_at_step'] = start
    if stopped_at is not None:
        stats['stopped_at_step'] = stopped_at
    if judged:
        stats['judged'] = judged
    return ema_te.eval(), ema_unet.eval(), stats


def short_path(path):
    """A weights file by its folder and file name (work/vae/vae.npz -> vae/vae.npz): records name what a run
    started from without this machine's paths."""
    path = os.path.abspath(path)
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


def recorded(r):
    """Recipe r as training.json records it: the weights it started from by short names (short_path)."""
    out = dict(r)
    if out.get('init_from'):
        out['init_from'] = os.path.basename(out['init_from'])
    if out.get('vae_init_from'):
        out['vae_init_from'] = short_path(out['vae_init_from'])
    return out


def save_npz(path, module):
    """Writes the module's state dict as float32 arrays, atomically (tinysd.save_npz_arrays)."""
    tinysd.save_npz_arrays(path, {k: v.detach().float().cpu().contiguous().numpy() for k, v in module.state_dict().items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', required=True, help='directory written by datagen')
    ap.add_argument('--out', required=True, help='directory for the .npz weights and training.json')
    ap.add_argument('--device', default='auto', help="'auto' (CUDA when available), 'cuda' or 'cpu'")
    ap.add_argument('--seed', type=int, help="override the recipe: the seed of every part's random streams (batches, "
                    'noise, timesteps, swaps); a run with another seed measures how far training noise alone moves a result')
    ap.add_argument('--threads', type=int, default=0,
                    help='CPU threads for the VAE and the latent encoding (default 0: one per core this process may use)')
    ap.add_argument('--processes', type=int, default=0,
                    help='data-parallel CPU processes of one thread each for the UNet; must divide the batch '
                         '(default 0: one per core, up to 4, on the CPU; 1 on a GPU)')
    ap.add_argument('--vae-steps', type=int, help='override the recipe (for smoke tests only)')
    ap.add_argument('--unet-steps', type=int, help='override the recipe (for smoke tests only)')
    ap.add_argument('--no-attention-pos-embed', action='store_true', help='leave out the position embedding in every attention block')
    ap.add_argument('--vae-crop-steps', type=int, help='train the VAE on random 32x32 crops for this many of its steps (measured to cost quality)')
    ap.add_argument('--vae-augment', action='store_true', help='random flips/rotations in VAE training (experimental)')
    ap.add_argument('--lowfreq-noise', action='store_true', help='coarse noise in the training noise, weights 0.8 and 0.8 (experimental)')
    ap.add_argument('--lowfreq-weights', help='coarse noise with these comma-separated weights (4x4 grid, 2x2 grid, 1x1 grid = offset noise), e.g. 0.3,0.3 or 0,0,0.3')
    ap.add_argument('--high-t', action='store_true', help='half of each batch at t >= 600, weighted by max(1, 0.1/SNR) (experimental)')
    ap.add_argument('--te-causal', action='store_true', help='a causal text encoder as CLIP (the first model) instead of te_windows')
    ap.add_argument('--te-windows', help='override the recipe: comma-separated context window of each text encoder layer, e.g. 0,0')
    ap.add_argument('--grounding-weight', type=float, help='override the recipe (0: no grounding loss)')
    ap.add_argument('--grounding-cycle', type=int, help='override the recipe: the first cosine cycle (1 or 2) with the grounding loss')
    ap.add_argument('--swap-consistency', type=float, help='override the recipe: weight of the word-swap consistency loss '
                                                           '(in the cycles with the grounding loss; 0: none)')
    ap.add_argument('--swap-consistency-mode', choices=('cells', 'background_mean', 'injected'),
                    help="override the recipe: what the swap consistency loss compares, the noise predictions cell by cell "
                         "away from the objects ('cells'), the predicted clean latent's mean there ('background_mean'), or "
                         "the cells with the caption pass's attention maps put into the swapped pass as Prompt-to-Prompt "
                         "does ('injected': at t above 200, self maps too above 600)")
    ap.add_argument('--swap-consistency-object', type=float,
                    help="override the recipe: with --swap-consistency-mode injected, weight of a term that asks the "
                         "injected pass to draw the swapped word's object as the --init-from weights (frozen) draw it "
                         "without the maps (0: none)")
    ap.add_argument('--swap-consistency-object-mode', choices=('cells', 'mean'),
                    help="override the recipe: what the object term compares on the swapped word's object, the noise "
                         "predictions cell by cell ('cells') or their mean per channel, the object's colour ('mean')")
    ap.add_argument('--swap-consistency-margin', type=int,
                    help='override the recipe: the swap consistency loss leaves out the cells within this many cells of an object')
    ap.add_argument('--swap-consistency-groups',
                    help="override the recipe: comma-separated indices of info.json's swap_groups whose words the swap "
                         "consistency loss swaps (0: colours, 1: shapes), e.g. 0")
    ap.add_argument('--swap-consistency-targets',
                    help='override the recipe: comma-separated WORD=WEIGHT, how often the swap consistency loss draws '
                         'each word as the new word of a swap, relative to 1 for the words left out, e.g. '
                         'white=3,black=3,yellow=3')
    ap.add_argument('--preserve-weight', type=float, help='override the recipe: weight of the term that keeps the noise '
                    'predictions near the --init-from weights (frozen), in the cycles with the grounding loss')
    ap.add_argument('--preserve-region', choices=('all', 'objects', 'ring'),
                    help="override the recipe: where the preserve term applies: every cell, only the cells within "
                         "--swap-consistency-margin of an object, or only those of them no object touches")
    ap.add_argument('--twin-weight', type=float,
                    help="weight of the twin term (needs data drawn with datagen -twins): a scene's "
                         "exact colour swap denoised with the scene's attention maps put in, in the cycles with the "
                         "grounding loss")
    ap.add_argument('--background-twin-weight', type=float,
                    help="weight of the background twin term (needs data drawn with datagen -background-twins): a "
                         "scene whose caption names no background and its exact background swap, denoised under the "
                         "caption with the background's phrase added and the scene's attention maps put in through "
                         "the refinement's token alignment, in the cycles with the grounding loss; "
                         "--twin-self-above-t, --twin-cross-above-t and the --twin-unroll flags serve both twin terms")
    ap.add_argument('--background-twin-deltas', help="with --background-twin-weight: a .npy cache of every scene's "
                                                     "background twin latent minus its own, written when missing")
    ap.add_argument('--twin-self-above-t', type=int,
                    help=f'the twin term puts the self-attention maps in above this timestep (default '
                         f'{INJECT_SELF_ABOVE_T}: the engine\'s default self window, 0.4 of the steps)')
    ap.add_argument('--twin-cross-above-t', type=int,
                    help=f'the twin term puts the cross-attention maps of the words the twin keeps in above this '
                         f'timestep (default {INJECT_CROSS_ABOVE_T}: the reference cross window 0.8; -1: at every '
                         f'timestep, the embedded model\'s cross_replace 1)')
    ap.add_argument('--twin-cross-changed-above-t', type=int,
                    help='the twin term puts the swapped word\'s cross-attention maps in above this timestep '
                         '(default: --twin-cross-above-t; 600: the embedded model\'s cross_replace_changed 0.4)')
    ap.add_argument('--twin-unroll', type=int,
                    help='with a twin term: run the twin terms this many more DDIM steps (of --twin-unroll-stride '
                         'sampler strides each) along the edit\'s own trajectory and average it over the steps (0: the '
                         'one step, 0 to 10)')
    ap.add_argument('--twin-unroll-stride', type=int,
                    help='with --twin-unroll above 0: sampler strides (20 timesteps each) per unrolled step '
                         '(default 1, 1 to 10)')
    ap.add_argument('--twin-deltas', help="with --twin-weight: a .npy cache of every scene's twin latent minus its "
                                          "own (posterior means, scaled), written when missing")
    ap.add_argument('--preserve-margin', type=int,
                    help="override the recipe: --preserve-region 'objects' and 'ring' reach this many cells from an "
                         "object (default: --swap-consistency-margin)")
    ap.add_argument('--unet-object-weight', type=float,
                    help='override the recipe: the denoising loss counts each latent cell an object touches 1 + W, '
                         'the others 1, a weighted mean per image (0: every cell alike)')
    ap.add_argument('--freeze-text-encoder', action='store_true',
                    help='with --init-from, train only the UNet: the text encoder keeps the starting weights')
    ap.add_argument('--swap-consistency-min-t', type=int, help='override the recipe: the swap consistency loss only on timesteps from this one up')
    ap.add_argument('--swap-consistency-max-t', type=int, help='override the recipe: the swap consistency loss only on timesteps up to '
                    'this one (with --swap-consistency-min-t: a window)')
    ap.add_argument('--swap-consistency-x0-cap', type=float,
                    help="override the recipe: weigh each image's swap consistency term by its timestep's (1 - alphabar)/alphabar "
                         "clipped to [1, CAP], normalised to the same mean weight over the timesteps the term runs on "
                         "(the term read on the clean latent, moved to the high timesteps; 0: every timestep alike)")
    ap.add_argument('--swap-consistency-unroll', type=int,
                    help="override the recipe: with --swap-consistency-mode injected, run both passes this many more "
                         "sampler steps (DDIM, stride 20) along their own trajectories and average the term over the "
                         "steps, the gradient through the edit's trajectory (0: the one step, 0 to 10)")
    ap.add_argument('--grounding-min-res', type=int, help='override the recipe: ground the cross-attention layers of at least this side')
    ap.add_argument('--unet-attention-depth', help='override the recipe: transformer blocks per UNet attention module at each '
                    'resolution, finest first, comma-separated (recipe: 1,1,1)')
    ap.add_argument('--unet-norm', choices=('group', 'cell'), help="override the recipe: the UNet's normalisation, "
                    "'group' (GroupNorm, statistics over all positions) or 'cell' (each position over its own channels)")
    ap.add_argument('--te-token-std', type=float, help='initial std of the text encoder token embedding (recipe: te_token_init_std)')
    ap.add_argument('--vae-weights', help='a vae.npz an earlier run wrote: reuse it instead of training the VAE (for sweeps)')
    ap.add_argument('--latents', help='with --vae-weights: a .npy of the encoded, scaled training latents; '
                                      'read when it exists, written otherwise (sweeps share one encoding)')
    ap.add_argument('--vae-init-from', help='a vae.npz to continue training the VAE from (with --vae-steps and --vae-lr: a second cycle)')
    ap.add_argument('--vae-lr', type=float, help='override the recipe')
    ap.add_argument('--vae-decoder-only', action='store_true', help='train only the decoder; the encoder (and every latent) stays '
                                                                     '(with --vae-init-from: a better decoder for a trained model)')
    ap.add_argument('--vae-object-weight', type=float, help='override the recipe: extra weight of the latent cells an object covers '
                                                            'in the reconstruction loss (0: uniform)')
    ap.add_argument('--vae-decoder-norm', choices=('group', 'cell'), help="override the recipe: the decoder's norms, 'group' "
                                                                           "(GroupNorm, statistics over the whole image) or 'cell' "
                                                                           "(per latent position: each cell decodes from its neighbourhood alone)")
    ap.add_argument('--vae-only', action='store_true', help='train the VAE, write vae.npz and stop (for sweeps that share one VAE)')
    ap.add_argument('--judge', help='the judge binary (go build ./models/tiny/train/judge): score the model at checkpoints '
                    '(and, with --init-from, the weights the run starts from)')
    ap.add_argument('--judge-every', type=int, default=0, help='judge every N UNet steps as well as at the end')
    ap.add_argument('--judge-prompts', type=int, default=200, help='prompts per judged set (held-out and seen)')
    ap.add_argument('--judge-seeds', type=int, default=2, help='seeds per prompt when judging')
    ap.add_argument('--init-from', help='a directory with text_encoder.npz, unet.npz and the training.json of the run that wrote them (the UNet keeps its shape) to continue training from (recipe: init_from)')
    ap.add_argument('--continue-steps', type=int, help='override the recipe (0: no second stage)')
    ap.add_argument('--unet-lr', type=float, help='override the recipe')
    ap.add_argument('--unet-warmup', type=int, help='override the recipe')
    ap.add_argument('--save-every', type=int, default=0, help='also save the EMA text encoder and UNet every N steps into OUT/stepN/')
    ap.add_argument('--deadline-seconds', type=float, help='stop UNet training after this much wall time (sweeps only; recorded)')
    ap.add_argument('--resume', action='store_true', help='continue the interrupted run whose checkpoint is in OUT/checkpoint')
    ap.add_argument('--keep-checkpoint', action='store_true', help='keep OUT/checkpoint when the run finishes')
    ap.add_argument('--checkpoint-every', type=int, default=CHECKPOINT_EVERY, help='steps between saved checkpoints')
    ap.add_argument('--stop-after', help='stop right after saving the checkpoint at PART:STEP, PART one of vae, unet1, unet2 '
                                         '(to test --resume; STEP a multiple of --checkpoint-every)')
    args = ap.parse_args()
    if args.checkpoint_every < 1:
        ap.error(f'--checkpoint-every must be at least 1, got {args.checkpoint_every}')
    stop_after = None
    if args.stop_after:
        part, _, step = args.stop_after.partition(':')
        if part not in ('vae', 'unet1', 'unet2') or not step.isdigit() or int(step) % args.checkpoint_every:
            ap.error(f'--stop-after wants PART:STEP with PART vae, unet1 or unet2 and STEP a multiple of {args.checkpoint_every}, '
                     f'got {args.stop_after!r}')
        stop_after = (part, int(step))
    if args.latents and not args.vae_weights:
        ap.error('--latents needs --vae-weights (an encoding belongs to one VAE)')

    r = dict(RECIPE)
    if args.vae_steps is not None:
        r['vae_steps'] = args.vae_steps
    if args.unet_steps is not None:
        r['unet_steps'] = args.unet_steps
    if args.vae_lr is not None:
        r['vae_lr'] = args.vae_lr
    if args.vae_init_from:
        if args.vae_weights:
            ap.error('--vae-init-from trains the VAE on; --vae-weights reuses one untrained: give one of them')
        if not os.path.isfile(args.vae_init_from):
            ap.error(f'--vae-init-from: {args.vae_init_from} does not exist')
        r['vae_init_from'] = os.path.abspath(args.vae_init_from)
    r['vae_augment'] |= args.vae_augment
    if args.vae_decoder_only:
        if not args.vae_init_from:
            ap.error('--vae-decoder-only trains a decoder for an existing encoder: give --vae-init-from')
        r['vae_decoder_only'] = True
    if args.vae_decoder_norm is not None:
        r['vae_decoder_norm'] = args.vae_decoder_norm
    if args.vae_init_from and tinysd.recipe_beside(args.vae_init_from).get('vae_decoder_norm', 'group') != r['vae_decoder_norm']:
        # GroupNorm weights start a CellNorm decoder (the same names and shapes); the other way would
        # load a CellNorm decoder's weights into GroupNorms without an error, so it is refused.
        if r['vae_decoder_norm'] != 'cell':
            ap.error(f'--vae-init-from {args.vae_init_from} has a CellNorm decoder (the record beside it): '
                     'give --vae-decoder-norm cell')
    if args.vae_object_weight is not None:
        if args.vae_object_weight < 0:
            ap.error(f'--vae-object-weight must be at least 0, got {args.vae_object_weight}')
        r['vae_object_weight'] = args.vae_object_weight
    if args.vae_crop_steps is not None:
        if args.vae_crop_steps < 0:
            ap.error(f'--vae-crop-steps must be at least 0, got {args.vae_crop_steps}')
        r['vae_crop_steps'] = args.vae_crop_steps
    if args.no_attention_pos_embed:
        r['attention_pos_embed'] = False
    if args.lowfreq_noise:
        r['lowfreq_noise'] = [0.8, 0.8]
    if args.lowfreq_weights:
        try:
            r['lowfreq_noise'] = [float(v) for v in args.lowfreq_weights.split(',')]
        except ValueError:
            ap.error(f'--lowfreq-weights wants comma-separated numbers (4x4 grid, 2x2 grid, 1x1 grid), got {args.lowfreq_weights!r}')
        if not 1 <= len(r['lowfreq_noise']) <= 3 or min(r['lowfreq_noise']) < 0:
            ap.error(f'--lowfreq-weights wants one to three non-negative weights, got {args.lowfreq_weights!r}')
    if args.high_t:
        r['high_t_fraction'], r['high_t_snr'] = 0.5, 0.1
    for flag, path in (('--vae-weights', args.vae_weights),
                       ('--init-from', args.init_from and os.path.join(args.init_from, 'unet.npz')),
                       ('--init-from', args.init_from and os.path.join(args.init_from, 'text_encoder.npz')),
                       ('--init-from', args.init_from and os.path.join(args.init_from, 'training.json')),
                       ('--judge', args.judge)):
        if path and not os.path.isfile(path):
            ap.error(f'{flag}: {path} does not exist')
    if args.vae_weights:
        # The reused VAE's decoder is built as it was trained, and the record says so (export.py
        # builds the trained folder's VAE from this recipe).
        norm = tinysd.recipe_beside(args.vae_weights).get('vae_decoder_norm', 'group')
        if args.vae_decoder_norm is not None and args.vae_decoder_norm != norm:
            ap.error(f'--vae-decoder-norm {args.vae_decoder_norm}: the --vae-weights VAE was trained with {norm} '
                     f'(the record beside it)')
        r['vae_decoder_norm'] = norm
    if args.init_from:
        r['init_from'] = os.path.abspath(args.init_from)
    if args.continue_steps is not None:
        r['continue_steps'] = args.continue_steps
    if args.unet_lr is not None:
        r['unet_lr'] = args.unet_lr
    if args.unet_warmup is not None:
        r['unet_warmup'] = args.unet_warmup
    if args.te_causal and args.te_windows:
        ap.error('--te-causal and --te-windows exclude each other')
    if args.te_causal:
        r['te_windows'] = None
    if args.te_windows:
        try:
            r['te_windows'] = [int(w) for w in args.te_windows.split(',')]
        except ValueError:
            ap.error(f'--te-windows wants comma-separated whole numbers, one per text encoder layer, got {args.te_windows!r}')
        if len(r['te_windows']) != len(RECIPE['te_windows']) or min(r['te_windows']) < 0:
            ap.error(f"--te-windows wants {len(RECIPE['te_windows'])} non-negative windows (one per layer), got {args.te_windows!r}")
    if args.grounding_weight is not None:
        r['grounding_weight'] = args.grounding_weight
    if args.grounding_cycle is not None:
        if args.grounding_cycle not in (1, 2):
            ap.error(f'--grounding-cycle must be 1 or 2, got {args.grounding_cycle}')
        r['grounding_cycle'] = args.grounding_cycle
    if args.swap_consistency is not None:
        if args.swap_consistency < 0:
            ap.error(f'--swap-consistency must be at least 0, got {args.swap_consistency}')
        r['swap_consistency'] = args.swap_consistency
    if args.swap_consistency_mode is not None:
        r['swap_consistency_mode'] = args.swap_consistency_mode
    if args.seed is not None:
        if not 0 <= args.seed < 2 ** 31:
            ap.error(f'--seed must be 0 to {2 ** 31 - 1}, got {args.seed}')
        r['seed'] = args.seed
    if args.swap_consistency_margin is not None:
        if not 0 <= args.swap_consistency_margin <= 7:
            ap.error(f'--swap-consistency-margin must be 0 to 7 cells, got {args.swap_consistency_margin}')
        r['swap_consistency_margin'] = args.swap_consistency_margin
    if args.swap_consistency_groups is not None:
        try:
            r['swap_consistency_groups'] = [int(g) for g in args.swap_consistency_groups.split(',')]
        except ValueError:
            ap.error(f'--swap-consistency-groups wants comma-separated group indices, e.g. 0 or 0,1, got {args.swap_consistency_groups!r}')
    if args.swap_consistency_targets is not None:
        targets = {}
        for part in filter(None, args.swap_consistency_targets.split(',')):
            word, _, weight = part.partition('=')
            try:
                w = float(weight)
            except ValueError:
                w = float('nan')
            if not word.strip() or not 0 < w <= 100:
                ap.error('--swap-consistency-targets wants comma-separated WORD=WEIGHT with weights above 0 and up '
                         f'to 100, e.g. white=3,black=3, got {args.swap_consistency_targets!r}')
            targets[word.strip()] = w
        r['swap_consistency_targets'] = targets
    if args.swap_consistency_object is not None:
        if args.swap_consistency_object < 0:
            ap.error(f'--swap-consistency-object must be at least 0, got {args.swap_consistency_object}')
        r['swap_consistency_object'] = args.swap_consistency_object
    if args.swap_consistency_object_mode is not None:
        if r['swap_consistency_object'] <= 0:
            ap.error('--swap-consistency-object-mode chooses what the object term compares: give --swap-consistency-object above 0 too')
        r['swap_consistency_object_mode'] = args.swap_consistency_object_mode
    if r['swap_consistency_object'] > 0 and r['swap_consistency_mode'] != 'injected':
        ap.error(f"--swap-consistency-object weighs a term of --swap-consistency-mode injected, not of "
                 f"{r['swap_consistency_mode']!r}: give --swap-consistency-mode injected")
    if r['swap_consistency_object'] > 0 and r['swap_consistency'] <= 0:
        ap.error('--swap-consistency-object runs beside the injected swap consistency term: give --swap-consistency above 0')
    if r['swap_consistency_object'] > 0 and not args.init_from:
        ap.error('--swap-consistency-object compares with the weights the run starts from (frozen): give --init-from')
    for end in ('min', 'max'):  # the window of timesteps the swap consistency terms run on
        value, flag = getattr(args, f'swap_consistency_{end}_t'), f'--swap-consistency-{end}-t'
        if value is None:
            continue
        if not 0 <= value <= 999:
            ap.error(f'{flag} must be a timestep, 0 to 999, got {value}')
        if r['swap_consistency'] <= 0:
            ap.error(f'{flag} chooses when the swap consistency term runs: give --swap-consistency above 0 too')
        r[f'swap_consistency_{end}_t'] = value
    if r['swap_consistency_max_t'] < r['swap_consistency_min_t']:
        ap.error(f"--swap-consistency-max-t {r['swap_consistency_max_t']} is below the minimum timestep "
                 f"{r['swap_consistency_min_t']}: the term would never run")
    if r['swap_consistency_mode'] == 'injected' and r['swap_consistency_max_t'] <= INJECT_CROSS_ABOVE_T:
        ap.error(f"--swap-consistency-max-t {r['swap_consistency_max_t']}: the injected term runs only above t "
                 f"{INJECT_CROSS_ABOVE_T}, where Prompt-to-Prompt puts the maps in, so it would never run")
    if args.swap_consistency_unroll is not None:
        k = args.swap_consistency_unroll
        if not 0 <= k <= 10:
            ap.error(f'--swap-consistency-unroll must be 0 to 10 sampler steps, got {k}')
        if k and (r['swap_consistency'] <= 0 or r['swap_consistency_mode'] != 'injected'):
            ap.error('--swap-consistency-unroll runs the injected swap consistency term along the trajectories: '
                     'give --swap-consistency above 0 and --swap-consistency-mode injected')
        r['swap_consistency_unroll'] = k
    if args.swap_consistency_x0_cap is not None:
        cap = args.swap_consistency_x0_cap
        if cap != 0 and cap < 1:
            ap.error(f'--swap-consistency-x0-cap must be 0 (off) or at least 1, got {cap}')
        if cap and r['swap_consistency'] <= 0:
            ap.error('--swap-consistency-x0-cap weighs the swap consistency term: give --swap-consistency above 0 too')
        if cap and r['swap_consistency_mode'] == 'background_mean':
            ap.error("--swap-consistency-x0-cap weighs a noise-prediction term ('cells' or 'injected'); "
                     "'background_mean' already compares clean latents")
        r['swap_consistency_x0_cap'] = cap
    if args.preserve_weight is not None:
        if args.preserve_weight < 0:
            ap.error(f'--preserve-weight must be at least 0, got {args.preserve_weight}')
        if args.preserve_weight > 0 and not args.init_from:
            ap.error('--preserve-weight keeps the predictions near the weights the run starts from: give --init-from')
        r['preserve_weight'] = args.preserve_weight
    if args.preserve_region is not None:
        r['preserve_region'] = args.preserve_region
    if args.twin_weight is not None:
        if not args.twin_weight > 0:
            ap.error(f'--twin-weight must be above 0, got {args.twin_weight}')
        r['twin_weight'] = args.twin_weight  # recorded only when given, as preserve_margin
    if args.background_twin_weight is not None:
        if not args.background_twin_weight > 0:
            ap.error(f'--background-twin-weight must be above 0, got {args.background_twin_weight}')
        r['background_twin_weight'] = args.background_twin_weight  # recorded only when given, as twin_weight
    any_twin = args.twin_weight is not None or args.background_twin_weight is not None
    for key in ('twin_self_above_t', 'twin_cross_above_t', 'twin_cross_changed_above_t'):
        value, flag = getattr(args, key), '--' + key.replace('_', '-')
        if value is None:
            continue
        if key == 'twin_cross_changed_above_t' and args.twin_weight is None:
            ap.error(f'{flag} is the swapped word\'s window of the colour twin term (a background twin swaps no '
                     'word): give --twin-weight too')
        if not any_twin:
            ap.error(f'{flag} is for the twin terms: give --twin-weight or --background-twin-weight too')
        if not -1 <= value < 1000:
            ap.error(f'{flag} must be a timestep, 0 to 999, or -1 (every timestep), got {value}')
        r[key] = value  # recorded only when given: recipes without the twin windows stay as they were
    if args.twin_unroll is not None:
        if not any_twin:
            ap.error('--twin-unroll runs the twin terms along the edit\'s trajectory: give --twin-weight or '
                     '--background-twin-weight too')
        if not 0 <= args.twin_unroll <= 10:
            ap.error(f'--twin-unroll must be 0 to 10 unrolled steps, got {args.twin_unroll}')
        r['twin_unroll'] = args.twin_unroll  # recorded only when given, as twin_weight
        r['twin_unroll_stride'] = 1
    if args.twin_unroll_stride is not None:
        if not args.twin_unroll:
            ap.error('--twin-unroll-stride is the step of --twin-unroll: give --twin-unroll above 0 too')
        if not 1 <= args.twin_unroll_stride <= 10:
            ap.error(f'--twin-unroll-stride must be 1 to 10 sampler strides, got {args.twin_unroll_stride}')
        r['twin_unroll_stride'] = args.twin_unroll_stride
    if args.twin_deltas and args.twin_weight is None:
        ap.error('--twin-deltas is for the twin term: give --twin-weight too')
    if args.background_twin_deltas and args.background_twin_weight is None:
        ap.error('--background-twin-deltas is for the background twin term: give --background-twin-weight too')
    if args.twin_deltas and args.background_twin_deltas and os.path.abspath(args.twin_deltas) == os.path.abspath(args.background_twin_deltas):
        ap.error('--twin-deltas and --background-twin-deltas name the same file: each kind of twin has its own')
    if any_twin and r['swap_consistency_unroll'] > 0:
        # The unrolled passes record maps of their own, over fewer rows, in place of the caption pass's.
        ap.error('the twin terms put in the caption pass\'s maps, which --swap-consistency-unroll records over: '
                 'give one of them')
    if args.preserve_margin is not None:
        if args.preserve_margin < 1:
            ap.error(f'--preserve-margin must be at least 1 (the cells next to an object), got {args.preserve_margin}')
        r['preserve_margin'] = args.preserve_margin  # recorded only when given: recipes without it stay as they were
    if args.unet_object_weight is not None:
        if not math.isfinite(args.unet_object_weight) or args.unet_object_weight < 0:
            ap.error(f'--unet-object-weight must be a number of at least 0 (0: every latent cell alike), got {args.unet_object_weight}')
        r['unet_object_weight'] = args.unet_object_weight
    if args.freeze_text_encoder:
        if not args.init_from:
            ap.error('--freeze-text-encoder keeps the text encoder of the weights a run starts from: give --init-from')
        r['text_encoder_frozen'] = True
    if args.grounding_min_res is not None:
        if args.grounding_min_res < 1:
            ap.error(f'--grounding-min-res must be at least 1, got {args.grounding_min_res}')
        r['grounding_min_res'] = args.grounding_min_res
    if args.te_token_std is not None:
        r['te_token_init_std'] = args.te_token_std
    if args.unet_norm is not None:
        r['unet_norm'] = args.unet_norm
    if args.unet_attention_depth is not None:
        try:
            depth = [int(v) for v in args.unet_attention_depth.split(',')]
        except ValueError:
            depth = []
        if len(depth) != len(r['unet_attention_depth']) or min(depth) < 1:
            ap.error(f'--unet-attention-depth wants {len(r["unet_attention_depth"])} comma-separated whole numbers of at least 1 '
                     f'(16x16, 8x8, 4x4), got {args.unet_attention_depth!r}')
        r['unet_attention_depth'] = depth
    if args.init_from:
        # The UNet continued must have the shape of the one saved: take it from the run that saved it.
        with open(os.path.join(args.init_from, 'training.json')) as f:
            saved = json.load(f)['recipe'].get('unet_attention_depth', [1, 1, 1])
        if args.unet_attention_depth is not None and r['unet_attention_depth'] != saved:
            ap.error(f'--unet-attention-depth {args.unet_attention_depth} differs from the {saved} of the --init-from '
                     'weights: a run continues a UNet of the same shape')
        r['unet_attention_depth'] = saved
    # The swap consistency, preserve and twin terms run in the cycles that have the grounding loss: refuse a
    # recipe where none has it rather than train without the term asked for.
    cycles = 2 if r['continue_steps'] else 1
    for key, flag in (('swap_consistency', '--swap-consistency'), ('preserve_weight', '--preserve-weight'),
                      ('twin_weight', '--twin-weight'), ('background_twin_weight', '--background-twin-weight')):
        if r.get(key, 0) > 0 and (r['grounding_weight'] <= 0 or r['grounding_cycle'] > cycles):
            fix = ('a --grounding-weight above 0' if r['grounding_weight'] <= 0 else
                   '--grounding-cycle 1, or a second cycle with --continue-steps')
            ap.error(f"{flag} runs in the cycles with the grounding loss, and none of this run's {cycles} has it "
                     f"(grounding weight {r['grounding_weight']}, from cycle {r['grounding_cycle']}): give {fix}")
    if r['preserve_region'] != 'all' and r['preserve_weight'] <= 0:
        ap.error('--preserve-region chooses where the preserve term applies: give --preserve-weight above 0 too')
    if 'preserve_margin' in r and r['preserve_region'] == 'all':
        ap.error("--preserve-margin sets the reach of --preserve-region 'objects' or 'ring': give one of them too")
    dev = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available() else
                       ('cpu' if args.device == 'auto' else args.device))
    cores = len(os.sched_getaffinity(0))
    if args.threads == 0:
        args.threads = cores
    if args.processes == 0:
        args.processes = 1 if dev.type != 'cpu' else max(p for p in (1, 2, 4) if p <= cores)
    if args.threads < 1:
        ap.error(f'--threads must be at least 1, got {args.threads}')
    if args.processes < 1 or r['unet_batch'] % args.processes:
        ap.error(f"--processes must be at least 1 and divide the batch of {r['unet_batch']}, got {args.processes}")
    if args.processes > 1 and dev.type != 'cpu':
        ap.error('--processes is for CPU training; on a GPU use one process')
    if args.processes > 1 and args.judge_every:
        ap.error('--judge-every needs --processes 1 (the other processes would wait on the judge); --judge alone judges the end')
    missing = [f for f in ('images.npy', 'input_ids.npy', 'info.json') if not os.path.isfile(os.path.join(args.data, f))]
    if missing:
        ap.error(f'--data {args.data} is not a data set drawn by datagen: it has no {", ".join(missing)}')
    for kind, spec in TWIN_KINDS.items():
        if r.get(spec['weight'], 0) > 0:
            check_twin_files(kind, args.data)  # before the VAE and the latents, which take a while
    torch.set_num_threads(args.threads)
    tinysd.Attention.layout = TRAINING_LAYOUT
    torch.manual_seed(r['seed'])
    gen = torch.Generator(device=dev)
    gen.manual_seed(r['seed'])
    os.makedirs(args.out, exist_ok=True)

    images = torch.from_numpy(np.load(os.path.join(args.data, 'images.npy'))).to(dev)
    ids = torch.from_numpy(np.load(os.path.join(args.data, 'input_ids.npy')).astype(np.int64)).to(dev)
    info = json.load(open(os.path.join(args.data, 'info.json')))
    empty_ids = torch.tensor(info['empty_input_ids'], dtype=torch.int64, device=dev)
    masks = regions = swap_groups = swap_targets = None
    if r['grounding_weight'] > 0 or r['vae_object_weight'] > 0 or r['unet_object_weight'] > 0:
        masks = torch.from_numpy(np.load(os.path.join(args.data, 'object_masks.npy'))).to(dev)
    if r['grounding_weight'] > 0:
        regions = torch.from_numpy(np.load(os.path.join(args.data, 'token_regions.npy')).astype(np.int64)).to(dev)
    if r['swap_consistency'] > 0:
        if 'swap_groups' not in info:
            raise SystemExit(f'{args.data}/info.json has no swap_groups: draw the data again with datagen')
        chosen = r['swap_consistency_groups']
        if not chosen or any(not 0 <= g < len(info['swap_groups']) for g in chosen) or len(set(chosen)) != len(chosen):
            raise SystemExit(f"swap_consistency_groups {chosen} must name distinct groups of {args.data}/info.json's "
                             f"{len(info['swap_groups'])} swap_groups (0 to {len(info['swap_groups']) - 1})")
        groups = [info['swap_groups'][g] for g in chosen]
        width = max(len(g) for g in groups)
        swap_groups = torch.tensor([g + [-1] * (width - len(g)) for g in groups], device=dev)
        swap_targets = target_weights(r['swap_consistency_targets'], info, chosen, width, dev)
    if images.shape[1:] != (tinysd.IMAGE_SIZE, tinysd.IMAGE_SIZE, 3) or ids.shape[1] != tinysd.MAX_TOKENS:
        raise SystemExit(f'unexpected data shapes: images {tuple(images.shape)}, input_ids {tuple(ids.shape)}')
    device_name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else (
        f'cpu ({args.threads} torch threads; UNet: {args.processes} processes of 1 thread)' if args.processes > 1 else
        f'cpu ({args.threads} torch threads)')
    log(f'data: {len(images)} scenes; device {device_name}; torch {torch.__version__}')

    ckpt = Checkpoints(args.out)
    # A VAE-only run belongs to the VAE's part of the recipe alone.
    recipe = tinysd.vae_part(r) if args.vae_only else r
    ckpt.open(dict(recipe=recipe, data=dict(seed=info['seed'], count=info['count']), device=dev.type,
                   processes=None if args.vae_only else args.processes,
                   vae_weights=args.vae_weights and os.path.abspath(args.vae_weights)), args.resume)
    try:
        finish(args, r, dev, gen, device_name, ckpt, stop_after, images, ids, empty_ids, masks, regions, info, swap_groups,
               swap_targets)
    except Stopped:
        log(f'stopped after the checkpoint at {args.stop_after}, as asked; continue with --resume')
        raise SystemExit(3)


class TwinSet(typing.NamedTuple):
    """One kind of twin for the twin terms (load_twins)."""
    kind: str  # a TWIN_KINDS key
    weight: float  # the term's weight in the loss
    deltas: torch.Tensor  # [N, 4, 16, 16] each scene's twin latent minus its own (twin_deltas)
    ids: torch.Tensor  # [N, 77] the twin captions' ids
    has: torch.Tensor  # [N] which scenes have a twin
    gather: typing.Optional[torch.Tensor]  # [N, 77] the refinement's token alignment; None: token for token


# The kinds of twin: the recipe key of their term's weight, the flag of their deltas cache, the datagen flag that
# draws them, their files' prefix, the file that says which scenes have one (-1: none) and whether the edit is a
# refinement (its maps go in through a token alignment).
TWIN_KINDS = {
    'colour': dict(weight='twin_weight', deltas='--twin-deltas', flag='-twins', prefix='twin',
                   which='twin_objects.npy', refine=False),
    'background': dict(weight='background_twin_weight', deltas='--background-twin-deltas', flag='-background-twins',
                       prefix='background_twin', which='background_twin_backgrounds.npy', refine=True),
}


def check_twin_files(kind, data):
    """The paths of data's twin files of this kind by role (which, ids, images, and gather for a refinement);
    stops the run, saying how to draw them, when data lacks any."""
    spec = TWIN_KINDS[kind]
    files = dict(which=spec['which'], ids=spec['prefix'] + '_input_ids.npy', images=spec['prefix'] + '_images.npy')
    if spec['refine']:
        files['gather'] = spec['prefix'] + '_gather.npy'
    missing = [f for f in files.values() if not os.path.isfile(os.path.join(data, f))]
    if missing:
        raise SystemExit(f'{data} has no {kind} twins ({", ".join(missing)} missing): draw it with datagen '
                         f'{spec["flag"]} for the {kind} twin term')
    return {role: os.path.join(data, f) for role, f in files.items()}


def load_twins(kind, weight, data, cache, vae, images, scale, dev):
    """One twin term's TwinSet, from data drawn with the datagen flag of TWIN_KINDS[kind]; the deltas are read
    from cache when it exists, else computed (twin_deltas) and written there."""
    spec = TWIN_KINDS[kind]
    files = check_twin_files(kind, data)
    has = torch.from_numpy(np.load(files['which']) >= 0).to(dev)
    ids = torch.from_numpy(np.load(files['ids']).astype(np.int64)).to(dev)
    gather = None
    if 'gather' in files:
        gather = torch.from_numpy(np.load(files['gather']).astype(np.int64)).to(dev)
    # The deltas belong to one VAE's encoding of one data set: the latent scale and the data's seed and
    # count, recorded beside the cache, say which.
    with open(os.path.join(data, 'info.json')) as f:
        made_for = dict(scale=scale, data_seed=json.load(f)['seed'], count=len(images))
    if kind != 'colour':
        made_for['twins'] = kind  # the colour twins' caches predate the key
    if cache and os.path.isfile(cache):
        record = cache + '.json'
        cached_for = None
        if os.path.isfile(record):
            with open(record) as f:
                cached_for = json.load(f)
        if cached_for != made_for:
            raise SystemExit(f'{cache} was made for {cached_for} (its {record}), this run is {made_for}: '
                             f'give another {spec["deltas"]}')
        deltas = torch.from_numpy(np.load(cache)).to(dev)
        log(f'{kind} twins: reusing {cache}')
    else:
        twin_images = torch.from_numpy(np.load(files['images'])).to(dev)
        deltas = twin_deltas(vae, images, twin_images, has, scale)
        del twin_images
        if cache:
            np.save(cache, deltas.cpu().numpy())
            with open(cache + '.json', 'w') as f:
                json.dump(made_for, f)
    if any(len(x) != len(images) for x in (deltas, has, ids, gather) if x is not None):
        raise SystemExit(f'the {kind} twins ({len(has)} scenes, deltas {tuple(deltas.shape)}) do not match the '
                         f'data\'s {len(images)} scenes')
    if gather is not None and (gather.shape != ids.shape or gather.min() < -1 or gather.max() >= ids.shape[1]):
        raise SystemExit(f'{files["gather"]} must hold, per scene, a token index of 0 to {ids.shape[1] - 1} or -1 for '
                         f'each of the {ids.shape[1]} tokens ({tuple(ids.shape)}), got {tuple(gather.shape)} from '
                         f'{gather.min().item()} to {gather.max().item()}: draw the data again with datagen')
    if not has.any():
        raise SystemExit(f'no scene of {data} has a {kind} twin: the {kind} twin term would train nothing')
    log(f'{kind} twins: {int(has.sum())} of {len(has)} scenes have one')
    return TwinSet(kind, weight, deltas, ids, has, gather)


def finish(args, r, dev, gen, device_name, ckpt, stop_after, images, ids, empty_ids, masks, regions, info, swap_groups,
           swap_targets):
    """Everything after loading the data: the VAE, the latents, the UNet cycles, the weights and the record."""
    vae_done = ckpt.load('vae-done')
    if args.vae_weights:
        vae = tinysd.load_vae(args.vae_weights)
        vae.to(dev).eval()
        vae_stats = dict(reused=short_path(args.vae_weights), params=tinysd.n_params(vae), seconds=0.0,
                         validation_psnr_db=None)
        # A VAE trained by train.py --vae-only comes with its record.
        record = os.path.join(os.path.dirname(args.vae_weights), 'vae.json')
        if os.path.isfile(record):
            vae_stats.update(json.load(open(record))['vae'], reused=os.path.basename(os.path.dirname(os.path.abspath(args.vae_weights))))
        log(f'vae: reusing {args.vae_weights}')
    elif vae_done is not None:
        vae = tinysd.vae_for(r).to(dev)
        vae.load_state_dict(vae_done['vae'])
        vae.eval()
        vae_stats = vae_done['stats']
        gen.set_state(vae_done['gen'])  # the latent encoding draws from where the VAE's training left it
        log('vae: trained in an earlier sitting')
    else:
        vae, vae_stats = train_vae(images, r, dev, gen, ckpt, args.checkpoint_every, stop_after, masks)
        ckpt.save('vae-done', dict(vae=vae.state_dict(), stats=vae_stats, gen=gen.get_state()))
        ckpt.drop('vae-progress')
    if args.vae_only:
        with open(os.path.join(args.out, 'vae.json'), 'w') as f:
            json.dump(dict(recipe=recorded(tinysd.vae_part(r)),
                           device=device_name, vae=vae_stats), f, indent=1)
        save_npz(os.path.join(args.out, 'vae.npz'), vae)  # last: its presence means the VAE is done
        if not args.keep_checkpoint:
            ckpt.remove()
        return
    if args.latents and os.path.isfile(args.latents):
        latents = torch.from_numpy(np.load(args.latents)).to(dev)
        scale = float(np.load(args.latents + '.scale.npy'))
        log(f'latents: reusing {args.latents}')
    else:
        latents = encode_latents(vae, images, dev, gen)
        scale = 1.0 / latents.std().item()  # as SD's 0.18215: unit variance for the diffusion model
        latents = latents * scale
        if args.latents:
            np.save(args.latents, latents.cpu().numpy())
            np.save(args.latents + '.scale.npy', np.array(scale))
    matrix, bias, resid = fit_preview(latents, images)
    log(f'latent scaling factor {scale:.5f}; preview fit RMS error {resid:.3f} (RGB in [-1,1])')
    twins = []
    for kind, spec in TWIN_KINDS.items():
        if r.get(spec['weight'], 0) > 0:
            cache = getattr(args, spec['deltas'][2:].replace('-', '_'))
            twins.append(load_twins(kind, r[spec['weight']], args.data, cache, vae, images, scale, dev))
    judge = None
    if args.judge:
        j = judging.Judge(os.path.abspath(args.judge), os.path.join(args.out, 'judge'), args.judge_prompts, args.judge_seeds, dev)
        judge = lambda step, te, unet: j(step, te, unet, vae, empty_ids, scale)
    deadline = time.time() + args.deadline_seconds if args.deadline_seconds else None
    init = None
    if r.get('init_from'):
        init = {name: tinysd.npz_state(os.path.join(r['init_from'], name + '.npz')) for name in ('text_encoder', 'unet')}
    teacher = init if r['preserve_weight'] > 0 or r['swap_consistency_object'] > 0 else None
    judged_start = None
    if judge is not None and init is not None and ckpt.load('unet1-done') is None:
        # The weights the run starts from, judged on this device with the judge's seeds: the
        # baseline its judgements compare with (another device draws other noise).
        te0, unet0 = new_models(r, dev)
        te0.load_state_dict(init['text_encoder'])
        unet0.load_state_dict(init['unet'])
        judged_start = dict(step=0, **judge(0, te0, unet0))
        log('judged', json.dumps(judged_start))
        del te0, unet0
    stages = [('unet', r['unet_steps'], r['unet_lr'], r['unet_warmup'])]
    if r['continue_steps']:
        stages.append(('continue', r['continue_steps'], r['continue_lr'], r['continue_warmup']))
    stage_stats = {}
    for i, (name, steps, lr, warmup) in enumerate(stages):
        last = i == len(stages) - 1
        done = ckpt.load(f'unet{i + 1}-done')
        if done is not None:
            te, unet = new_models(r, dev)
            te.load_state_dict(done['text_encoder'])
            unet.load_state_dict(done['unet'])
            te.eval(), unet.eval()
            stats = done['stats']
            log(f'{name}: trained in an earlier sitting')
        else:
            log(f'{name}: {steps} steps from lr {lr}' + (f' in {args.processes} processes' if args.processes > 1 else ''))
            te, unet, stats = train_unet(
                latents, ids, empty_ids, r, dev, i + 1, steps, lr, warmup, init, args.processes,
                judge if last else None, args.judge_every, deadline, args.save_every if last else 0, args.out, masks, regions,
                (ckpt, f'unet{i + 1}-progress', args.checkpoint_every), stop_after, swap_groups, swap_targets, teacher,
                twins)
            if judge is not None and last:
                stats.setdefault('judged', []).append(dict(step=stats['steps_done'], **judge(stats['steps_done'], te, unet)))
                log('judged', json.dumps(stats['judged'][-1]))
            ckpt.save(f'unet{i + 1}-done', dict(text_encoder=te.state_dict(), unet=unet.state_dict(), stats=stats))
            ckpt.drop(f'unet{i + 1}-progress')
        stage_stats[name] = stats
        init = {'text_encoder': te.state_dict(), 'unet': unet.state_dict()}
    unet_stats = stage_stats.pop('unet')
    unet_stats.update(stage_stats)
    if judged_start is not None:
        unet_stats['judged_start'] = judged_start

    for name, m in (('vae', vae), ('text_encoder', te), ('unet', unet)):
        save_npz(os.path.join(args.out, name + '.npz'), m)
    report = dict(recipe=recorded(r), device=device_name, torch=torch.__version__, data=dict(seed=info['seed'], count=info['count']),
                  vae=vae_stats, unet=unet_stats, latent_scaling_factor=scale,
                  preview=dict(matrix=matrix, bias=bias, rms_error=round(resid, 4)),
                  total_seconds=round(ckpt.seconds(), 1), sittings=len(ckpt.sittings()))
    with open(os.path.join(args.out, 'training.json'), 'w') as f:
        json.dump(report, f, indent=1)
    if not args.keep_checkpoint:
        ckpt.remove()
    log(f'done in {report["total_seconds"]:.0f}s' + (f' over {report["sittings"]} sittings' if report['sittings'] > 1 else ''))


if __name__ == '__main__':
    main()
