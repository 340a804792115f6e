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
time budget. It runs on CUDA when available and on the CPU otherwise; the two
give different (equally valid) weights since their arithmetic differs.
Runs under torch 1.13 and 2.x.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import judging
import tinysd

# The recipe of the committed model (models/tiny/README.md, "Training").
#   te_token_init_std    std of the text encoder's token table at init; large,
#                        so that position words are distinct from the start
#   attention_pos_embed  a learned 2D position embedding in every attention block
#   continue_*           a second cosine cycle (warm restart) from the first
#                        cycle's EMA weights
# Switches measured and left off (models/tiny/README.md, "Why position words
# were ignored"), all off by default so the random stream stays the recipe's:
#   vae_augment     random flips/rotations of VAE training batches
#   lowfreq_noise   weights of extra white noise drawn on 4x4, then 2x2 grids
#                   and upsampled into the training noise, so that at high t
#                   the noisy latent no longer gives the layout away
#   high_t_*        a fraction of each batch draws t from [high_t_min, 999],
#                   and every step weighs at least high_t_snr/SNR
RECIPE = dict(
    seed=0,
    vae_steps=2500, vae_batch=32, vae_lr=2e-3, vae_kl_weight=1e-5, vae_augment=False,
    attention_pos_embed=True, te_token_init_std=3.0,
    unet_steps=3500, unet_batch=32, unet_lr=1e-3, unet_warmup=200, unet_final_lr_fraction=0.1,
    continue_steps=3000, continue_lr=3e-4, continue_warmup=100,
    caption_dropout=0.1, min_snr_gamma=5.0, ema_decay=0.999, grad_clip=1.0,
    lowfreq_noise=[], high_t_fraction=0.0, high_t_min=600, high_t_snr=0.0,
    validation_images=1000,
)


def log(*a):
    print(*a, flush=True)


def cosine_lr(step, total, base, warmup, final_fraction):
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return base * warm * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * step / total)))


def train_vae(images, r, dev, gen):
    """images: uint8 tensor [N,64,64,3] on dev. Returns the VAE and stats."""
    n_val = r['validation_images']
    train, val = images[:-n_val], images[-n_val:]
    to_float = lambda u8: u8.permute(0, 3, 1, 2).float().div(127.5).sub(1)
    vae = tinysd.AutoencoderKL().to(dev)
    opt = torch.optim.Adam(vae.parameters(), r['vae_lr'])
    t0 = time.time()
    for step in range(r['vae_steps']):
        for g in opt.param_groups:
            g['lr'] = cosine_lr(step, r['vae_steps'], r['vae_lr'], 50, 0.05)
        x = to_float(train[torch.randint(0, len(train), (r['vae_batch'],), device=dev, generator=gen)])
        # With vae_augment, a random flip/rotation per batch: the VAE is a codec and should not
        # care where a shape sits or which way it points, and this way it
        # also sees shapes at the positions training never draws them
        # (scene.HeldOut) without any held-out scene.
        if r['vae_augment']:
            k = int(torch.randint(0, 8, (1,), device=dev, generator=gen).item())
            x = torch.rot90(x, k % 4, dims=(2, 3))
            if k >= 4:
                x = torch.flip(x, dims=(3,))
        mean, logvar = vae.encode(x)
        z = mean + torch.randn(mean.shape, device=dev, generator=gen) * torch.exp(0.5 * logvar)
        xr = vae.decode(z)
        # L1 keeps edges (star tips, ring holes) sharper than MSE alone.
        rec = (xr - x).pow(2).mean() + 0.5 * (xr - x).abs().mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        loss = rec + r['vae_kl_weight'] * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 250 == 0 or step == 0:
            log(f'vae step {step + 1} {time.time() - t0:.0f}s rec {rec.item():.5f} kl {kl.item():.2f}')
    seconds = time.time() - t0
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
    out = []
    for i in range(0, len(images), 500):
        x = images[i:i + 500].permute(0, 3, 1, 2).float().div(127.5).sub(1)
        mean, logvar = vae.encode(x)
        out.append(mean + torch.randn(mean.shape, device=dev, generator=gen) * torch.exp(0.5 * logvar))
    return torch.cat(out)


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
    than the latent (4x4, then 2x2 on a 16x16 latent), upsampled bilinearly.
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


def train_unet(latents, ids, empty_ids, r, dev, gen, steps, lr, warmup, init=None, judge=None, judge_every=0,
               deadline=None, save_every=0, out=None):
    """Trains text encoder + UNet for steps steps (cosine from lr after warmup).

    init: state dicts to start from; judge(step, te, unet): scores to record
    every judge_every steps and at the end."""
    te = tinysd.CLIPTextModel(token_init_std=r['te_token_init_std']).to(dev)
    unet = tinysd.UNet2DConditionModel(ctx_dim=te.hidden_size, attention_pos_embed=r['attention_pos_embed']).to(dev)
    ema_te = tinysd.CLIPTextModel().to(dev)
    ema_unet = tinysd.UNet2DConditionModel(ctx_dim=te.hidden_size, attention_pos_embed=r['attention_pos_embed']).to(dev)
    if init is not None:
        te.load_state_dict(init['text_encoder'], strict=True)
        unet.load_state_dict(init['unet'], strict=True)
    ema_te.load_state_dict(te.state_dict())
    ema_unet.load_state_dict(unet.state_dict())
    params = list(unet.parameters()) + list(te.parameters())
    ema_params = list(ema_unet.parameters()) + list(ema_te.parameters())
    opt = torch.optim.AdamW(params, lr, betas=(0.9, 0.99), weight_decay=0.01)
    ac = tinysd.alphas_cumprod().to(dev)
    bs = r['unet_batch']
    losses, judged, t0 = [], [], time.time()
    stopped_at = None
    for step in range(steps):
        if deadline is not None and time.time() > deadline:
            stopped_at = step
            log(f'unet: deadline reached, stopping after {step} of {steps} steps')
            break
        for g in opt.param_groups:
            g['lr'] = cosine_lr(step, steps, lr, warmup, r['unet_final_lr_fraction'])
        idx = torch.randint(0, len(latents), (bs,), device=dev, generator=gen)
        x0, tok = latents[idx], ids[idx]
        drop = torch.rand(bs, device=dev, generator=gen) < r['caption_dropout']
        tok = torch.where(drop[:, None], empty_ids[None], tok)
        t = torch.randint(0, len(ac), (bs,), device=dev, generator=gen)
        if r['high_t_fraction'] > 0:  # (only then: the committed recipe's random stream stays as it was)
            high = torch.rand(bs, device=dev, generator=gen) < r['high_t_fraction']
            t = torch.where(high, torch.randint(r['high_t_min'], len(ac), (bs,), device=dev, generator=gen), t)
        eps = training_noise(x0.shape, r['lowfreq_noise'], dev, gen)
        a = ac[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        pred = unet(xt, t.float(), te(tok))
        snr = ac[t] / (1 - ac[t])
        weight = torch.clamp(snr, max=r['min_snr_gamma']) / snr  # Min-SNR for epsilon prediction
        if r['high_t_snr'] > 0:
            weight = weight * torch.clamp(r['high_t_snr'] / snr, min=1.0)
        loss = ((pred - eps).pow(2).mean(dim=(1, 2, 3)) * weight).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, r['grad_clip'])
        opt.step()
        d = min(r['ema_decay'], (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_mul_(ema_params, d)
            torch._foreach_add_(ema_params, [p.detach() for p in params], alpha=1 - d)
        losses.append(loss.item() if (step + 1) % 50 == 0 else float('nan'))
        if (step + 1) % 500 == 0 or step == 0:
            el = time.time() - t0
            log(f'step {step + 1}/{steps} {el:.0f}s {el / (step + 1):.3f}s/step loss {loss.item():.4f}')
        if save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            d = os.path.join(out, f'step{step + 1}')
            os.makedirs(d, exist_ok=True)
            for name, m in (('text_encoder', ema_te), ('unet', ema_unet)):
                np.savez(os.path.join(d, name + '.npz'), **{k: v.detach().float().cpu().numpy() for k, v in m.state_dict().items()})
        if judge is not None and judge_every and (step + 1) % judge_every == 0 and step + 1 < steps:
            judged.append(dict(step=step + 1, **judge(step + 1, ema_te, ema_unet)))
            log('judged', json.dumps(judged[-1]))
    done = stopped_at if stopped_at is not None else steps
    if judge is not None:
        judged.append(dict(step=done, **judge(done, ema_te, ema_unet)))
        log('judged', json.dumps(judged[-1]))
    seconds = time.time() - t0
    curve = [round(v, 4) for v in losses if not math.isnan(v)]
    stats = dict(seconds=round(seconds, 1), seconds_per_step=round(seconds / max(done, 1), 4),
                 unet_params=tinysd.n_params(unet), text_encoder_params=tinysd.n_params(te),
                 loss_every_50_steps=curve)
    if stopped_at is not None:
        stats['stopped_at_step'] = stopped_at
    if judged:
        stats['judged'] = judged
    return ema_te, ema_unet, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', required=True, help='directory written by datagen')
    ap.add_argument('--out', required=True, help='directory for the .npz weights and training.json')
    ap.add_argument('--device', default='auto', help="'auto' (CUDA when available), 'cuda' or 'cpu'")
    ap.add_argument('--threads', type=int, default=1,
                    help='CPU threads (1 is fastest on a shared 2-core machine)')
    ap.add_argument('--vae-steps', type=int, help='override the recipe (for smoke tests only)')
    ap.add_argument('--unet-steps', type=int, help='override the recipe (for smoke tests only)')
    ap.add_argument('--no-attention-pos-embed', action='store_true', help='leave out the position embedding in every attention block')
    ap.add_argument('--vae-augment', action='store_true', help='random flips/rotations in VAE training (experimental)')
    ap.add_argument('--lowfreq-noise', action='store_true', help='coarse noise in the training noise, weights 0.8 and 0.8 (experimental)')
    ap.add_argument('--lowfreq-weights', help='coarse noise with these comma-separated weights (4x4 grid, 2x2 grid), e.g. 0.3,0.3')
    ap.add_argument('--high-t', action='store_true', help='half of each batch at t >= 600, weighted by max(1, 0.1/SNR) (experimental)')
    ap.add_argument('--te-token-std', type=float, help='initial std of the text encoder token embedding (recipe: te_token_init_std)')
    ap.add_argument('--vae-weights', help='a vae.npz an earlier run wrote: reuse it instead of training the VAE (for sweeps)')
    ap.add_argument('--judge', help='the judge binary (go build ./models/tiny/train/judge): score the model at checkpoints')
    ap.add_argument('--judge-every', type=int, default=0, help='judge every N UNet steps as well as at the end')
    ap.add_argument('--judge-prompts', type=int, default=200, help='prompts per judged set (held-out and seen)')
    ap.add_argument('--judge-seeds', type=int, default=2, help='seeds per prompt when judging')
    ap.add_argument('--init-from', help='a directory with text_encoder.npz and unet.npz to continue training from (recipe: init_from)')
    ap.add_argument('--continue-steps', type=int, help='override the recipe (0: no second stage)')
    ap.add_argument('--unet-lr', type=float, help='override the recipe')
    ap.add_argument('--unet-warmup', type=int, help='override the recipe')
    ap.add_argument('--save-every', type=int, default=0, help='also save the EMA text encoder and UNet every N steps into OUT/stepN/')
    ap.add_argument('--deadline-seconds', type=float, help='stop UNet training after this much wall time (sweeps only; recorded)')
    args = ap.parse_args()

    r = dict(RECIPE)
    if args.vae_steps is not None:
        r['vae_steps'] = args.vae_steps
    if args.unet_steps is not None:
        r['unet_steps'] = args.unet_steps
    r['vae_augment'] |= args.vae_augment
    if args.no_attention_pos_embed:
        r['attention_pos_embed'] = False
    if args.lowfreq_noise:
        r['lowfreq_noise'] = [0.8, 0.8]
    if args.lowfreq_weights:
        try:
            r['lowfreq_noise'] = [float(v) for v in args.lowfreq_weights.split(',')]
        except ValueError:
            ap.error(f'--lowfreq-weights wants comma-separated numbers (4x4 grid, 2x2 grid), got {args.lowfreq_weights!r}')
        if not 1 <= len(r['lowfreq_noise']) <= 2 or min(r['lowfreq_noise']) < 0:
            ap.error(f'--lowfreq-weights wants one or two non-negative weights, got {args.lowfreq_weights!r}')
    if args.high_t:
        r['high_t_fraction'], r['high_t_snr'] = 0.5, 0.1
    for flag, path in (('--vae-weights', args.vae_weights),
                       ('--init-from', args.init_from and os.path.join(args.init_from, 'unet.npz')),
                       ('--init-from', args.init_from and os.path.join(args.init_from, 'text_encoder.npz')),
                       ('--judge', args.judge)):
        if path and not os.path.isfile(path):
            ap.error(f'{flag}: {path} does not exist')
    if args.init_from:
        r['init_from'] = os.path.abspath(args.init_from)
    if args.continue_steps is not None:
        r['continue_steps'] = args.continue_steps
    if args.unet_lr is not None:
        r['unet_lr'] = args.unet_lr
    if args.unet_warmup is not None:
        r['unet_warmup'] = args.unet_warmup
    if args.te_token_std is not None:
        r['te_token_init_std'] = args.te_token_std
    dev = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available() else
                       ('cpu' if args.device == 'auto' else args.device))
    torch.set_num_threads(args.threads)
    torch.manual_seed(r['seed'])
    gen = torch.Generator(device=dev)
    gen.manual_seed(r['seed'])
    os.makedirs(args.out, exist_ok=True)

    t_start = time.time()
    images = torch.from_numpy(np.load(os.path.join(args.data, 'images.npy'))).to(dev)
    ids = torch.from_numpy(np.load(os.path.join(args.data, 'input_ids.npy')).astype(np.int64)).to(dev)
    info = json.load(open(os.path.join(args.data, 'info.json')))
    empty_ids = torch.tensor(info['empty_input_ids'], dtype=torch.int64, device=dev)
    if images.shape[1:] != (tinysd.IMAGE_SIZE, tinysd.IMAGE_SIZE, 3) or ids.shape[1] != tinysd.MAX_TOKENS:
        raise SystemExit(f'unexpected data shapes: images {tuple(images.shape)}, input_ids {tuple(ids.shape)}')
    device_name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'cpu ({args.threads} torch threads)'
    log(f'data: {len(images)} scenes; device {device_name}; torch {torch.__version__}')

    if args.vae_weights:
        vae = tinysd.AutoencoderKL()
        vae.load_state_dict(tinysd.npz_state(args.vae_weights), strict=True)
        vae.to(dev).eval()
        vae_stats = dict(reused=os.path.abspath(args.vae_weights), params=tinysd.n_params(vae), seconds=0.0,
                         validation_psnr_db=None)
        log(f'vae: reusing {args.vae_weights}')
    else:
        vae, vae_stats = train_vae(images, r, dev, gen)
    latents = encode_latents(vae, images, dev, gen)
    scale = 1.0 / latents.std().item()  # as SD's 0.18215: unit variance for the diffusion model
    latents = latents * scale
    matrix, bias, resid = fit_preview(latents, images)
    log(f'latent scaling factor {scale:.5f}; preview fit RMS error {resid:.3f} (RGB in [-1,1])')
    judge = None
    if args.judge:
        j = judging.Judge(os.path.abspath(args.judge), os.path.join(args.out, 'judge'), args.judge_prompts, args.judge_seeds, dev)
        judge = lambda step, te, unet: j(step, te, unet, vae, empty_ids, scale)
    deadline = t_start + args.deadline_seconds if args.deadline_seconds else None
    init = None
    if r.get('init_from'):
        init = {name: tinysd.npz_state(os.path.join(r['init_from'], name + '.npz')) for name in ('text_encoder', 'unet')}
    stages = [('unet', r['unet_steps'], r['unet_lr'], r['unet_warmup'])]
    if r['continue_steps']:
        stages.append(('continue', r['continue_steps'], r['continue_lr'], r['continue_warmup']))
    stage_stats = {}
    for i, (name, steps, lr, warmup) in enumerate(stages):
        log(f'{name}: {steps} steps from lr {lr}')
        last = i == len(stages) - 1
        te, unet, stage_stats[name] = train_unet(
            latents, ids, empty_ids, r, dev, gen, steps, lr, warmup, init,
            judge if last else None, args.judge_every, deadline, args.save_every if last else 0, args.out)
        init = {'text_encoder': te.state_dict(), 'unet': unet.state_dict()}
    unet_stats = stage_stats.pop('unet')
    unet_stats.update(stage_stats)

    for name, m in (('vae', vae), ('text_encoder', te), ('unet', unet)):
        np.savez(os.path.join(args.out, name + '.npz'), **{k: v.detach().float().cpu().numpy() for k, v in m.state_dict().items()})
    report = dict(recipe=r, device=device_name, torch=torch.__version__, data=dict(seed=info['seed'], count=info['count']),
                  vae=vae_stats, unet=unet_stats, latent_scaling_factor=scale,
                  preview=dict(matrix=matrix, bias=bias, rms_error=round(resid, 4)),
                  total_seconds=round(time.time() - t_start, 1))
    with open(os.path.join(args.out, 'training.json'), 'w') as f:
        json.dump(report, f, indent=1)
    log(f'done in {report["total_seconds"]:.0f}s')


if __name__ == '__main__':
    main()
