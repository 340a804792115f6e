"""Judge a training run at checkpoints with the Go evaluator.

The engine's own benchmark (`reword bench model`) needs exported ONNX files;
during training we sample in PyTorch instead, with the engine's sampler
settings (DDIM, SD's leading timesteps with offset 1, final alpha = alphas_cumprod[0],
classifier-free guidance), and score the images with the `judge` command
(models/tiny/train/judge), which uses the same prompts and evaluator as the
benchmark. The initial noise differs from the engine's, so the numbers agree
with the benchmark's within sampling noise, not exactly.
"""
import json
import os
import subprocess

import numpy as np
import torch

import export
import tinysd


@torch.no_grad()
def sample(te, unet, vae, ids, empty_ids, scale, seed, steps, guidance, dev, offset=None):
    """uint8 images [len(ids), 64, 64, 3] for the prompts ids, as the engine's DDIM would draw them.

    offset, a [4] tensor, is added to every initial noise latent (leak.py)."""
    ac = tinysd.alphas_cumprod().double().to(dev)
    ratio = len(ac) // steps
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    n = len(ids)
    x = torch.randn((n, tinysd.LATENT_CHANNELS, tinysd.LATENT_SIZE, tinysd.LATENT_SIZE), device=dev, generator=gen)
    if offset is not None:
        x = x + offset.to(dev, x.dtype)[None, :, None, None]
    ctx = torch.cat([te(empty_ids[None].expand(n, -1)), te(ids)])
    for t in timesteps(steps):
        tt = torch.full((2 * n,), float(t), device=dev)
        uncond, cond = unet(torch.cat([x, x]), tt, ctx).chunk(2)
        eps = (uncond + guidance * (cond - uncond)).double()
        a, a_prev = ac[t], (ac[t - ratio] if t - ratio >= 0 else ac[0])
        x = tinysd.ddim_step(x.double(), eps, a, a_prev).float()
    img = vae.decode(x / scale).clamp(-1, 1)
    return ((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def timesteps(steps):
    """sample's DDIM timesteps, noisiest first: SD's leading spacing with offset 1 (981, 961, …, 1 for 50)."""
    ratio = len(tinysd.alphas_cumprod()) // steps
    return [(steps - 1 - k) * ratio + 1 for k in range(steps)]


class Judge:
    def __init__(self, binary, workdir, prompts, seeds, dev, steps=50, guidance=7.5):
        self.binary, self.workdir, self.n, self.seeds, self.dev = binary, workdir, prompts, seeds, dev
        self.steps, self.guidance = steps, guidance
        self.sets = {}
        for name, extra in (('heldout', []), ('seen', ['-seen'])):
            d = os.path.join(workdir, name)
            subprocess.run([binary, 'prompts', '-out', d, '-n', str(prompts)] + extra, check=True)
            self.sets[name] = (torch.from_numpy(np.load(os.path.join(d, 'input_ids.npy')).astype(np.int64)).to(dev), extra)

    def sample(self, te, unet, vae, ids, empty_ids, scale, seed):
        """uint8 images [len(ids), 64, 64, 3] for the prompts ids, as the engine's DDIM would draw them."""
        return sample(te, unet, vae, ids, empty_ids, scale, seed, self.steps, self.guidance, self.dev)

    def __call__(self, step, te, unet, vae, empty_ids, scale):
        """Scores of both prompt sets, as {'heldout': {...}, 'seen': {...}}."""
        te.eval()
        unet.eval()
        out = {}
        for name, (ids, extra) in self.sets.items():
            imgs = np.concatenate([self.sample(te, unet, vae, ids, empty_ids, scale, 1000 + s) for s in range(self.seeds)])
            path = os.path.join(self.workdir, f'{name}_step{step}.npy')
            np.save(path, imgs)
            res = subprocess.run([self.binary, 'score', '-images', path, '-n', str(self.n)] + extra,
                                 check=True, capture_output=True, text=True)
            out[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in json.loads(res.stdout).items()}
            os.remove(path)
        return out


def main():
    """Judge weights a finished run wrote: python3 judging.py --trained DIR --judge BIN."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument('--trained', required=True, help='directory with vae.npz, text_encoder.npz, unet.npz, training.json')
    ap.add_argument('--judge', required=True, help='the judge binary')
    ap.add_argument('--prompts', type=int, default=200)
    ap.add_argument('--seeds', type=int, default=2)
    ap.add_argument('--empty-ids', required=True, help="the data set's info.json (for the empty caption's ids)")
    ap.add_argument('--work', default=None, help='scratch directory (default: DIR/judge)')
    args = ap.parse_args()
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    recipe = json.load(open(os.path.join(args.trained, 'training.json')))
    scale = recipe['latent_scaling_factor']
    vae, te, unet = (m.to(dev) for m in export.load(args.trained, recipe['recipe']))
    empty = torch.tensor(json.load(open(args.empty_ids))['empty_input_ids'], dtype=torch.int64, device=dev)
    j = Judge(os.path.abspath(args.judge), args.work or os.path.join(args.trained, 'judge'), args.prompts, args.seeds, dev)
    print(json.dumps(j('final', te, unet, vae, empty, scale)))


if __name__ == '__main__':
    main()
