"""Recover train.py's weights (vae.npz with its vae.json, text_encoder.npz, unet.npz) from an exported model's ONNX files.

    python3 recover.py --model ../../tiny --out work/recovered [--check]

So that an experiment can continue training the committed model (`train.py --init-from work/recovered
--vae-weights work/recovered/vae.npz`) without retraining it from nothing (about 90 minutes on 2 cores).

How: the exporter folds some parameters into anonymous initializers (GroupNorm's scale becomes
`onnx::Mul_123`, a Linear's weight is stored transposed as `onnx::MatMul_45`), so names alone do not
map the ONNX files back to the modules. Every parameter element of freshly built modules is set to a
distinct integer (exact in float32 below 2^24), the modules are exported exactly as export.py
exports them, and each element's value is read from the committed initializer that sits where the
tagged export put that element's integer. Initializers are matched by their first consumer (node
name and input slot): node names follow the module tree, while the anonymous initializer names
follow the trace's numbering.

The VAE's record goes beside them as vae.json, as train.py --vae-only writes one: the recipe and stats
model.json holds for the VAE, and the decoder's norm as the export has it (GroupNorm, or the CellNorm of a
decoder trained with --vae-decoder-norm cell), which tinysd.load_vae builds.

--check exports the recovered weights with export.py into a temporary folder and requires the ONNX
files to be byte-identical to the model's: the recovery is exact or it fails.
"""
import argparse
import filecmp
import glob
import json
import os
import shutil
import tempfile

import numpy as np
import onnx
import torch
from onnx import numpy_helper

import export
import tinysd

# Tags start at 2^22 so that no constant the exporter writes (0, 1, -1e9, …) reads as a tag, and end
# below 2^24, where float32 still holds every integer exactly.
TAG_BASE = 1 << 22
TAG_END = 1 << 24
BATCH = {0: 'batch'}
PARTS = ('text_encoder', 'unet', 'vae_encoder', 'vae_decoder')


def tag(module):
    """Sets every state-dict element to a distinct integer; returns the element count."""
    state = module.state_dict()
    n = sum(p.numel() for p in state.values())
    if TAG_BASE + n > TAG_END:
        raise SystemExit(f'{type(module).__name__}: {n} parameters are too many to tag exactly in float32')
    i = TAG_BASE
    with torch.no_grad():
        for p in state.values():
            p.copy_(torch.arange(i, i + p.numel(), dtype=torch.float64).reshape(p.shape).float())
            i += p.numel()
    return n


def by_consumer(path):
    """The float32 initializers of an ONNX file, keyed by (first consumer's node name, input slot)."""
    graph = onnx.load(path).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    out = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name in inits and inits[name].dtype == np.float32:
                out.setdefault((node.name, slot), inits.pop(name))
    return out


def read_back(module, n, tagged_path, real_path):
    """Element values of module's parameters found in real_path, NaN where this file has none."""
    tagged, real = by_consumer(tagged_path), by_consumer(real_path)
    flat = np.full(n, np.nan, dtype=np.float32)
    for key, t in tagged.items():
        v = t.reshape(-1).astype(np.float64)
        is_tag = (v >= TAG_BASE) & (v < TAG_BASE + n) & (v == np.round(v))
        if not is_tag.any():
            continue
        if not is_tag.all():
            raise SystemExit(f'{real_path}: {key} mixes parameters with computed values; it cannot be read back')
        if key not in real or real[key].shape != t.shape:
            raise SystemExit(f'{real_path}: no initializer at {key} as the tagged export has: '
                             'was the model exported by this export.py and recipe?')
        flat[(v - TAG_BASE).astype(np.int64)] = real[key].reshape(-1)
    return flat


def state_from(module, flat, what):
    """The state dict of module from flat element values; every element must have been found."""
    missing = int(np.isnan(flat).sum())
    if missing:
        raise SystemExit(f'{what}: {missing} of {flat.size} parameter elements were not found in the ONNX files')
    out, i = {}, 0
    for k, p in module.state_dict().items():
        out[k] = flat[i:i + p.numel()].reshape(tuple(p.shape))
        i += p.numel()
    return out


def decoder_norm(path):
    """The norm of the exported decoder at path: 'group' where torch wrote its GroupNorms as
    InstanceNormalization, 'cell' where it has none (a CellNorm exports as ReduceMean arithmetic)."""
    ops = {n.op_type for n in onnx.load(path, load_external_data=False).graph.node}
    return 'group' if 'InstanceNormalization' in ops else 'cell'


def recover(model_dir, recipe, tmp):
    """State dicts of the text encoder, UNet and VAE whose export is model_dir, and the VAE's recipe
    (its decoder's norm, read from the export: a decoder fine-tuned on its own is not in the UNet's record)."""
    te, unet = tinysd.text_encoder_and_unet(recipe)
    vae_recipe = dict(vae_decoder_norm=decoder_norm(os.path.join(model_dir, 'vae_decoder', 'model.onnx')))
    vae = tinysd.vae_for(vae_recipe)
    sizes = {}
    for name, m in (('text_encoder', te), ('unet', unet), ('vae', vae)):
        m.eval()
        sizes[name] = tag(m)
    L, S = tinysd.LATENT_SIZE, tinysd.IMAGE_SIZE
    path = {p: os.path.join(tmp, p + '.onnx') for p in PARTS}
    export.export(te, (torch.zeros(1, tinysd.MAX_TOKENS, dtype=torch.int32),), path['text_encoder'],
                  ['input_ids'], ['last_hidden_state'], {'input_ids': BATCH, 'last_hidden_state': BATCH})
    tinysd.Attention.layout = 'classic'  # unet/model.onnx; unet_sdpa holds the same weights
    export.export(unet, (torch.randn(2, 4, L, L), torch.tensor([981.0, 981.0]), torch.randn(2, tinysd.MAX_TOKENS, te.hidden_size)),
                  path['unet'], ['sample', 'timestep', 'encoder_hidden_states'], ['out_sample'],
                  {'sample': BATCH, 'timestep': BATCH, 'encoder_hidden_states': BATCH, 'out_sample': BATCH})
    export.export(tinysd.VAEEncoderExport(vae), (torch.zeros(1, 3, S, S),), path['vae_encoder'],
                  ['sample'], ['latent_parameters'], {'sample': BATCH, 'latent_parameters': BATCH})
    export.export(tinysd.VAEDecoderExport(vae), (torch.zeros(1, 4, L, L),), path['vae_decoder'],
                  ['latent_sample'], ['sample'], {'latent_sample': BATCH, 'sample': BATCH})
    real = {p: os.path.join(model_dir, p, 'model.onnx') for p in PARTS}
    te_flat = read_back(te, sizes['text_encoder'], path['text_encoder'], real['text_encoder'])
    unet_flat = read_back(unet, sizes['unet'], path['unet'], real['unet'])
    # The VAE's halves are in two files: each fills in the elements it holds.
    vae_flat = read_back(vae, sizes['vae'], path['vae_encoder'], real['vae_encoder'])
    dec = read_back(vae, sizes['vae'], path['vae_decoder'], real['vae_decoder'])
    vae_flat = np.where(np.isnan(vae_flat), dec, vae_flat)
    return {'text_encoder': state_from(te, te_flat, 'text encoder'), 'unet': state_from(unet, unet_flat, 'UNet'),
            'vae': state_from(vae, vae_flat, 'VAE')}, vae_recipe


def check(model_dir, out):
    """Exports out's weights with export.py and requires byte-identical ONNX files."""
    with tempfile.TemporaryDirectory() as tmp:
        export.main(['--trained', out, '--model', tmp, '--vae', os.path.join(out, 'vae.npz')])
        differ = [p for p in PARTS + ('unet_sdpa',)
                  if not filecmp.cmp(os.path.join(tmp, p, 'model.onnx'), os.path.join(model_dir, p, 'model.onnx'), shallow=False)]
    if differ:
        raise SystemExit(f'check failed: re-exported {", ".join(differ)} differ from {model_dir}')
    print('check: every re-exported ONNX file is byte-identical to the model\'s')


def training_record(model_dir):
    """The training record in MODEL/train whose recipe is the one model.json embeds.

    model.json names the recipe of the run whose weights it holds, not the record's file, and each
    generation adds a record (training.json, training-third.json, …): matching the recipe finds the
    right one without a file name that every new generation would have to change here."""
    manifest = os.path.join(model_dir, 'model.json')
    if not os.path.isfile(manifest):
        raise SystemExit(f'{manifest} does not exist: give --training')
    recipe = json.load(open(manifest)).get('training', {}).get('recipe')
    if recipe is None:
        raise SystemExit(f'{manifest} records no training recipe: give --training')
    candidates = sorted(glob.glob(os.path.join(model_dir, 'train', 'training*.json')))
    found = [p for p in candidates if json.load(open(p)).get('recipe') == recipe]
    if len(found) != 1:
        names = ', '.join(os.path.basename(p) for p in candidates) or 'none'
        raise SystemExit(f"{len(found)} of the training records in {os.path.join(model_dir, 'train')} ({names}) "
                         f'have the recipe {manifest} records; one must: give --training')
    return found[0]


def vae_record(model_dir, found):
    """The VAE's record, as train.py --vae-only writes it beside vae.npz (tinysd.load_vae builds the decoder
    its recipe names; export.py copies it into model.json): the VAE's recipe and stats model.json holds
    (those of a fine-tuned decoder's run, when it had one), with the decoder's norm as the export has it."""
    training = json.load(open(os.path.join(model_dir, 'model.json'))).get('training', {})
    # A model exported with a decoder of its own (export.py --vae) records that run's recipe as vae_recipe;
    # otherwise the VAE's keys are in the whole run's recipe.
    recipe = dict(training.get('vae_recipe') or tinysd.vae_part(training.get('recipe', {})))
    norm = recipe.get('vae_decoder_norm', 'group')
    if norm != found['vae_decoder_norm']:
        raise SystemExit(f"{model_dir}/model.json records a {norm} decoder, its vae_decoder/model.onnx has a "
                         f"{found['vae_decoder_norm']} one")
    recipe.update(found)
    return dict(recipe=recipe, vae=dict(seconds=training.get('vae_seconds'),
                                        validation_psnr_db=training.get('vae_validation_psnr_db'),
                                        recovered_from=os.path.basename(os.path.abspath(model_dir))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', required=True, help='the exported model folder (models/tiny): its ONNX files and training record')
    ap.add_argument('--training', help="the model's training record (default: the record in MODEL/train whose recipe "
                                       "model.json records, i.e. that of the committed weights' last training run)")
    ap.add_argument('--out', required=True, help='folder for vae.npz (with vae.json: its decoder\'s norm), text_encoder.npz, unet.npz and a copy of training.json')
    ap.add_argument('--check', action='store_true', help='re-export the recovered weights and require byte-identical ONNX files')
    args = ap.parse_args()
    torch.set_num_threads(1)
    training = args.training or training_record(args.model)
    for p in [training] + [os.path.join(args.model, p, 'model.onnx') for p in PARTS]:
        if not os.path.isfile(p):
            ap.error(f'{p} does not exist')
    recipe = json.load(open(training))['recipe']
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        states, vae_recipe = recover(args.model, recipe, tmp)
    for name, state in states.items():
        np.savez(os.path.join(args.out, name + '.npz'), **state)
    shutil.copyfile(training, os.path.join(args.out, 'training.json'))
    with open(os.path.join(args.out, 'vae.json'), 'w') as f:
        json.dump(vae_record(args.model, vae_recipe), f, indent=1)
    print(f'recovered {", ".join(f"{k} ({len(v)} tensors)" for k, v in states.items())} from {os.path.basename(training)}\'s '
          f'recipe into {args.out}')
    if args.check:
        check(args.model, args.out)


if __name__ == '__main__':
    main()
