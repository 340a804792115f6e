"""Does the model read the image's mean off the initial noise? The white-background diagnostic.

SD's scaled_linear schedule ends at an SNR of about 0.005, not 0: the noisiest training latent
still holds sqrt(alphas_cumprod[t]) of the image, and its mean per channel gives the image's mean
colour away. Sampling starts from pure noise, whose mean per channel is close to 0 (std 1/16 on a
16x16 latent). A model that learned to read the mean off the noise then draws the backgrounds whose
latents are nearest the average, whatever the caption says.

For each background, this samples training captions that name it as the engine would (DDIM, the
engine's timesteps and guidance; judging.sample), once from plain noise and once with that
background's leak added to the noise: sqrt(alphas_cumprod[t0]) at the first timestep t0 times the
difference between the mean latent of the training scenes on that background and the mean of all
training latents. The judge (Go evaluator) tells the background of every image. If the leak alone
turns the misses into hits, the model follows the noise's mean, not the caption.

  python3 leak.py --trained DIR --data DATA --latents LATENTS.npy --judge BIN [--count 16]

DIR holds vae.npz, text_encoder.npz, unet.npz and training.json (recover.py writes them for the
committed model); BIN is `go build -o BIN ./models/tiny/train/judge`.
"""
import argparse
import collections
import json
import os
import subprocess
import tempfile

import numpy as np
import torch

import export
import judging
import tinysd

# How captions name each background (scene.Background.Phrase), in the judge's names.
PHRASES = {'white': 'on a white background', 'black': 'on a black background', 'gray': 'on a gray background',
           'cyan': 'on a cyan background', 'striped': 'on a striped background', 'grass': 'on grass'}


def judged_backgrounds(judge, images):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'images.npy')
        np.save(path, images)
        out = subprocess.run([judge, 'backgrounds', '-images', path], check=True, capture_output=True, text=True).stdout
    return json.loads(out)['backgrounds']


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--trained', required=True, help='directory with the weights and training.json')
    ap.add_argument('--data', required=True, help='directory written by datagen (captions, input_ids, info.json)')
    ap.add_argument('--latents', required=True, help='the scaled training latents (.npy, train.py --latents)')
    ap.add_argument('--judge', required=True, help='the judge binary')
    ap.add_argument('--count', type=int, default=16, help='captions per background, sampled as one batch from seed 0')
    ap.add_argument('--guidance', type=float, help="classifier-free guidance (default: the model's, export.DEFAULT_GUIDANCE)")
    ap.add_argument('--backgrounds', default=','.join(PHRASES), help='comma-separated backgrounds to sample (default: all)')
    ap.add_argument('--steps', type=int, default=50)
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: all cores)')
    args = ap.parse_args()
    if args.count < 1 or args.steps < 1:
        ap.error('--count and --steps must be at least 1')
    if not (os.path.isfile(args.judge) and os.access(args.judge, os.X_OK)):
        ap.error(f'--judge: {args.judge} is not an executable file (go build -o BIN ./models/tiny/train/judge)')
    chosen = args.backgrounds.split(',')
    if unknown := [b for b in chosen if b not in PHRASES]:
        ap.error(f"--backgrounds: unknown {', '.join(unknown)}; the backgrounds are {', '.join(PHRASES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    record = json.load(open(os.path.join(args.trained, 'training.json')))
    scale = record['latent_scaling_factor']
    vae, te, unet = export.load(args.trained, record['recipe'])
    guidance = args.guidance if args.guidance is not None else export.DEFAULT_GUIDANCE
    captions = open(os.path.join(args.data, 'captions.txt')).read().split('\n')
    ids = np.load(os.path.join(args.data, 'input_ids.npy'), mmap_mode='r')
    latents = np.load(args.latents, mmap_mode='r')
    if len(latents) != len(ids):
        raise SystemExit(f'{args.latents} holds {len(latents)} latents for {len(ids)} captions: not this data set')
    empty = torch.tensor(json.load(open(os.path.join(args.data, 'info.json')))['empty_input_ids'], dtype=torch.int64)
    # The mean of all latents, from an evenly spread sample of them.
    mean_all = torch.from_numpy(np.asarray(latents[::20]).mean(axis=(0, 2, 3)))
    leak = float(tinysd.alphas_cumprod()[judging.timesteps(args.steps)[0]].sqrt())
    print(f'{args.count} training captions per background, one batch from seed 0, DDIM {args.steps}, guidance {guidance}; '
          f'leak = {leak:.4f} x (background mean latent - mean latent)')
    print(f"{'background':<10} {'plain noise':<34} {'noise + the background leak':<34}")
    for name in chosen:
        phrase = PHRASES[name]
        rows = [i for i, c in enumerate(captions) if phrase in c]
        if len(rows) < args.count:
            raise SystemExit(f'only {len(rows)} captions name the {name} background; want {args.count}')
        offset = leak * (torch.from_numpy(np.asarray(latents[rows[:2000]]).mean(axis=(0, 2, 3))) - mean_all)
        batch = torch.from_numpy(np.asarray(ids[rows[:args.count]]).astype(np.int64))
        cells = []
        for off in (None, offset):
            # One batch from one seed: the same initial noise in both columns.
            images = judging.sample(te, unet, vae, batch, empty, scale, 0, args.steps, guidance, torch.device('cpu'), off)
            got = collections.Counter(judged_backgrounds(args.judge, images))
            others = ', '.join(f'{b} {n}' for b, n in got.most_common() if b != name)
            cells.append(f'{got[name]} of {args.count}' + (f' ({others})' if others else ''))
        print(f'{name:<10} {cells[0]:<34} {cells[1]:<34}')


if __name__ == '__main__':
    main()
