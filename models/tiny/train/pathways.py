"""Where a word swap reaches the background: one UNet evaluation, taken apart.

    python3 pathways.py --model DIR --data DATA --latents LATENTS.npy [--batches 4]

DIR holds text_encoder.npz, unet.npz and training.json (train.py's output, or recover.py's copy of
the committed model); DATA is datagen's folder and LATENTS the encoding train.py wrote for it
(--latents), so no VAE runs here.

For training scenes at timesteps drawn from five bands, the UNet predicts the noise of the same noisy
latent twice: under the caption, then under the caption with one object word swapped for another of
its kind (train.swap_words). The swapped pass runs again with parts of the caption's pass put in
place of its own, one pathway at a time and together:

  text   the caption's text states at every position but the swapped word's (keep_source_text)
  cross  the caption's cross-attention probabilities (Prompt-to-Prompt's injected maps)
  self   the caption's self-attention probabilities (self-replace, in every layer)
  norm   the caption's GroupNorm statistics (mean and variance of every group)

and reports the mean squared difference of the two predictions away from every object (the cells one
cell or more from each object, as the swap consistency loss counts them) and on the swapped object,
per band. What a pathway removes from the background's difference is what that pathway carries there;
the difference on the object says whether the swap still acts.
"""
import argparse
import contextlib
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

import tinysd
import train

MODES = ['none', 'text', 'cross', 'cross+self', 'cross+norm', 'cross+self+norm', 'text+cross+self+norm']
BANDS = [(800, 1000), (600, 800), (400, 600), (200, 400), (0, 200)]


class Shared:
    """Records one pass's attention probabilities and GroupNorm statistics, and puts them into the next.

    The probabilities go through train.MapInjection, the training term's own record and replay of
    Prompt-to-Prompt's maps, so that this diagnostic and the term put in the same thing.
    """

    def __init__(self):
        self.maps = train.MapInjection()
        self.mode, self.inject, self.norms, self.at = None, set(), [], 0

    def start(self, mode, inject=(), rows=0):
        """mode 'record', or 'inject' the kinds named ('cross', 'self', 'norm') into a pass over rows rows."""
        self.mode, self.inject, self.at = mode, set(inject), 0
        if mode == 'record':
            self.maps.record()
            self.norms = []
        else:
            every = torch.arange(rows)
            self.maps.inject(every, torch.full((rows,), 'cross' in self.inject), torch.full((rows,), 'self' in self.inject))

    def group_norm(self, module, x):
        b = x.shape[0]
        g = x.reshape(b, module.num_groups, -1)
        stats = torch.stack([g.mean(-1), g.var(-1, unbiased=False)])
        if self.mode == 'record':
            self.norms.append(stats.detach())
        else:
            if 'norm' in self.inject:
                stats = self.norms[self.at]
            self.at += 1
        mean, var = stats
        y = ((g - mean[..., None]) / torch.sqrt(var[..., None] + module.eps)).reshape_as(x)
        return y * module.weight[None, :, None, None] + module.bias[None, :, None, None]


@contextlib.contextmanager
def hooked(shared):
    """Routes every attention layer's probabilities and every GroupNorm through shared."""
    forward = torch.nn.GroupNorm.forward
    torch.nn.GroupNorm.forward = lambda m, x: shared.group_norm(m, x)
    try:
        with train.probs_hook(shared.maps):
            yield
    finally:
        torch.nn.GroupNorm.forward = forward


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', required=True, help='a folder with text_encoder.npz, unet.npz and training.json')
    ap.add_argument('--data', required=True, help="datagen's folder")
    ap.add_argument('--latents', required=True, help='the scaled latents train.py encoded for DATA (--latents)')
    ap.add_argument('--batches', type=int, default=4, help='batches of 32 scenes per band')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    if args.batches < 1:
        ap.error(f'--batches must be at least 1, got {args.batches}')
    torch.set_num_threads(args.threads)
    tinysd.Attention.layout = train.TRAINING_LAYOUT  # batch first in the probabilities, as MapInjection reads them
    recipe = json.load(open(os.path.join(args.model, 'training.json')))['recipe']
    te, unet = tinysd.text_encoder_and_unet(recipe)
    te.load_state_dict(tinysd.npz_state(os.path.join(args.model, 'text_encoder.npz')), strict=True)
    unet.load_state_dict(tinysd.npz_state(os.path.join(args.model, 'unet.npz')), strict=True)
    te.eval(), unet.eval()

    latents = torch.from_numpy(np.load(args.latents))
    ids = torch.from_numpy(np.load(os.path.join(args.data, 'input_ids.npy')).astype(np.int64))
    masks = torch.from_numpy(np.load(os.path.join(args.data, 'object_masks.npy'))).float() / 16
    regions = torch.from_numpy(np.load(os.path.join(args.data, 'token_regions.npy')).astype(np.int64))
    info = json.load(open(os.path.join(args.data, 'info.json')))
    if 'swap_groups' not in info:
        raise SystemExit(f'{args.data}/info.json has no swap_groups: draw the data again with datagen')
    if len(latents) != len(ids):
        raise SystemExit(f'{args.latents} holds {len(latents)} latents for {len(ids)} scenes: not this data\'s encoding')
    width = max(len(g) for g in info['swap_groups'])
    groups = torch.tensor([g + [-1] * (width - len(g)) for g in info['swap_groups']])
    ac = tinysd.alphas_cumprod()
    gen = torch.Generator().manual_seed(args.seed)
    shared = Shared()
    totals = {(band, mode): [0.0, 0.0, 0.0, 0.0] for band in BANDS for mode in MODES}
    with torch.no_grad(), hooked(shared):
        for band in BANDS:
            for _ in range(args.batches):
                idx = torch.randint(0, len(ids), (32,), generator=gen)
                tok, reg, m = ids[idx], regions[idx], masks[idx]
                swapped, has = train.swap_words(tok, reg, groups, gen)
                tok, reg, m, swapped, x0 = tok[has], reg[has], m[has], swapped[has], latents[idx][has]
                t = torch.randint(band[0], band[1], (len(tok),), generator=gen)
                eps = torch.randn(x0.shape, generator=gen)
                a = ac[t][:, None, None, None]
                xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
                ctx, ctx_swapped = te(tok), te(swapped)
                changed = (swapped != tok)[..., None]
                kept = torch.where(changed, ctx_swapped, ctx)
                shared.start('record')
                pred = unet(xt, t.float(), ctx)
                away = (F.max_pool2d(m.sum(1, keepdim=True), 3, stride=1, padding=1) == 0).float()
                # the swapped word's object: its region's mask
                which = (reg * changed[..., 0]).sum(1) - 1
                on = m[torch.arange(len(m)), which.clamp(min=0)][:, None] > 0.5
                for mode in MODES:
                    parts = mode.split('+')
                    shared.start('inject', [p for p in parts if p in ('cross', 'self', 'norm')], len(tok))
                    p = unet(xt, t.float(), kept if 'text' in parts else ctx_swapped)
                    d = (p - pred).pow(2)
                    acc = totals[(band, mode)]
                    acc[0] += float((d * away).sum())
                    acc[1] += float(away.sum() * d.shape[1])
                    acc[2] += float((d * on).sum())
                    acc[3] += float(on.sum() * d.shape[1])
    print(f'model {args.model}: {args.batches} batches of up to 32 scenes per band, one object word swapped each')
    print('mean squared difference of the noise predictions (x 1e-4) away from every object / on the swapped object')
    print(f'{"t":>10} ' + ' '.join(f'{m:>22}' for m in MODES))
    for band in BANDS:
        cells = []
        for mode in MODES:
            bg_sum, bg_n, obj_sum, obj_n = totals[(band, mode)]
            cells.append(f'{1e4 * bg_sum / max(bg_n, 1):9.3f} / {1e4 * obj_sum / max(obj_n, 1):9.2f}')
        print(f'{band[0]:>4}-{band[1]:<5} ' + ' '.join(f'{c:>22}' for c in cells))


if __name__ == '__main__':
    main()
