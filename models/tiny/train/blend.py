"""Blend two trained weight sets of the same model: base + alpha * (tuned - base), tensor by tensor.

Weight-space ensembling (WiSE-FT, Wortsman et al., 2022): a fine-tune that
gains one thing and loses another often keeps most of the gain and little of
the loss part of the way back to the weights it started from, because both
lie in one basin. Here the base is the weights a fine-tune started from
(train.py --init-from) and the tuned set is that fine-tune's output.

Reads text_encoder.npz, unet.npz and training.json from both directories and
writes them into --out, with the tuned run's vae.npz when it has one and
training.json the tuned run's record plus the blend in recipe['blend'] (so
export.py's model.json names it). Refuses two sets whose tensors differ in
name or shape, or whose recipes build different models (tinysd.architecture).
"""
import argparse
import json
import os
import shutil

import numpy as np

import tinysd

PARTS = ('text_encoder', 'unet')


def blend_arrays(base, tuned, alpha):
    """base + alpha * (tuned - base) in float64, written back as float32: a tensor the fine-tune left
    unchanged (a frozen text encoder) comes out bit-identical."""
    b, t = base.astype(np.float64), tuned.astype(np.float64)
    return (b + alpha * (t - b)).astype(np.float32)


def blend_npz(base_path, tuned_path, alpha, out_path):
    with np.load(base_path) as b, np.load(tuned_path) as t:
        if sorted(b.files) != sorted(t.files):
            only = sorted(set(b.files) ^ set(t.files))
            raise SystemExit(f'{base_path} and {tuned_path} hold different tensors (only in one: {only[:5]})')
        out = {}
        for k in b.files:
            if b[k].shape != t[k].shape:
                raise SystemExit(f'{k}: shape {b[k].shape} in {base_path} but {t[k].shape} in {tuned_path}')
            out[k] = blend_arrays(b[k], t[k], alpha)
    tinysd.save_npz_arrays(out_path, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--base', required=True, help='directory of the weights the fine-tune started from')
    ap.add_argument('--tuned', required=True, help='directory train.py wrote for the fine-tune')
    ap.add_argument('--alpha', required=True, type=float, help='how far towards the tuned weights, above 0 and below 1')
    ap.add_argument('--out', required=True, help='directory to write the blended weights into')
    args = ap.parse_args(argv)
    if not 0 < args.alpha < 1:
        ap.error(f'--alpha must be above 0 and below 1 (0 is the base, 1 the tuned weights), got {args.alpha}')
    records = {}
    for name in ('base', 'tuned'):
        d = getattr(args, name)
        for f in [p + '.npz' for p in PARTS] + ['training.json']:
            if not os.path.isfile(os.path.join(d, f)):
                ap.error(f'--{name}: {d} has no {f} (a directory train.py or recover.py wrote)')
        records[name] = json.load(open(os.path.join(d, 'training.json')))
    base_arch, tuned_arch = (tinysd.architecture(records[n]['recipe']) for n in ('base', 'tuned'))
    for k in base_arch:
        if base_arch[k] != tuned_arch[k]:
            ap.error(f'recipe key {k} differs ({base_arch[k]!r} in --base, {tuned_arch[k]!r} in --tuned): '
                     'the two are different models')
    os.makedirs(args.out, exist_ok=True)
    for part in PARTS:
        blend_npz(os.path.join(args.base, part + '.npz'), os.path.join(args.tuned, part + '.npz'), args.alpha,
                  os.path.join(args.out, part + '.npz'))
    vae = os.path.join(args.tuned, 'vae.npz')
    if os.path.isfile(vae):
        shutil.copyfile(vae, os.path.join(args.out, 'vae.npz'))
        # The VAE's own record, where it has one, says how to build its decoder (tinysd.load_vae).
        if os.path.isfile(os.path.join(args.tuned, 'vae.json')):
            shutil.copyfile(os.path.join(args.tuned, 'vae.json'), os.path.join(args.out, 'vae.json'))
    record = records['tuned']
    record['recipe']['blend'] = dict(base=os.path.basename(os.path.abspath(args.base)),
                                     tuned=os.path.basename(os.path.abspath(args.tuned)), alpha=args.alpha)
    with open(os.path.join(args.out, 'training.json'), 'w') as f:
        json.dump(record, f, indent=1)
        f.write('\n')
    print(f'wrote {args.out}: {1 - args.alpha:g} x {args.base} + {args.alpha:g} x {args.tuned}')


if __name__ == '__main__':
    main()
