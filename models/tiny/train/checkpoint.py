"""Resumable training: the progress of a train.py run, kept in OUT/checkpoint/.

A run saves, every few hundred steps, everything its future depends on: the
weights, the optimiser state, the step, and the state of every random
generator it draws from (one per data-parallel process). Resuming from such a
checkpoint therefore gives exactly the weights an uninterrupted run gives
(check_resume.sh checks it), so a long run can be stopped at any time and
continued in another sitting, losing at most the steps since the last save.

Files, each written to a temporary name and renamed, so that a run killed
while saving leaves the previous checkpoint intact:

  run.json               what the checkpoint belongs to (recipe, data,
                         device kind, process count); resuming with anything
                         else is refused
  sittings.json          [start, last save] wall-clock times of every sitting,
                         so the record can state the time that counted
  vae-progress.pt        the VAE during its training
  vae-done.pt            the trained VAE, its stats, and the generator state
                         the latent encoding continues from
  unet<stage>-progress.pt  one cosine cycle of the text encoder and UNet
  unet<stage>-done.pt    the cycle's EMA weights and stats
"""
import json
import os
import shutil
import time

import torch


class Checkpoints:
    def __init__(self, out):
        self.dir = os.path.join(out, 'checkpoint')
        self.sitting = None  # index of this process's sitting in sittings.json

    def open(self, identity, resume):
        """Starts a new run's checkpoints or checks a resumed run against the one that saved them.

        identity: JSON-able description of everything that must be equal
        for a resumed run to continue the saved one.
        """
        path = os.path.join(self.dir, 'run.json')
        if resume:
            if not os.path.isfile(path):
                raise SystemExit(f'--resume: no checkpoint in {self.dir}; start the run without --resume')
            saved = json.load(open(path))
            if saved != json.loads(json.dumps(identity)):
                diff = sorted(k for k in set(saved) | set(identity) if saved.get(k) != json.loads(json.dumps(identity.get(k))))
                raise SystemExit(f'--resume: the checkpoint in {self.dir} belongs to another run (differs in {", ".join(diff)}); '
                                 f'resume it with the same data, recipe flags and process count, or delete {self.dir}')
        else:
            if os.path.exists(self.dir):
                raise SystemExit(f'{self.dir} holds the checkpoint of an unfinished run: pass --resume to continue it, '
                                 f'or delete the folder to start over')
            os.makedirs(self.dir)
            self._write_json(path, identity)
        sittings = self.sittings()
        self.sitting = len(sittings)
        now = time.time()
        self._write_json(os.path.join(self.dir, 'sittings.json'), sittings + [[now, now]])

    def sittings(self):
        """[start, last save] of every sitting so far, in seconds since the epoch."""
        p = os.path.join(self.dir, 'sittings.json')
        return json.load(open(p)) if os.path.isfile(p) else []

    def seconds(self):
        """Wall time that counted: earlier sittings up to their last save, this one up to now."""
        s = self.sittings()
        return sum(last - start for start, last in s[:self.sitting]) + time.time() - s[self.sitting][0]

    def touch(self):
        """Records that this sitting saved its progress now."""
        s = self.sittings()
        s[self.sitting][1] = time.time()
        self._write_json(os.path.join(self.dir, 'sittings.json'), s)

    def path(self, name):
        return os.path.join(self.dir, name + '.pt')

    def load(self, name):
        """The saved object, or None."""
        p = self.path(name)
        return torch.load(p) if os.path.isfile(p) else None

    def save(self, name, obj):
        tmp = self.path(name) + '.tmp'
        torch.save(obj, tmp)
        os.replace(tmp, self.path(name))
        self.touch()

    def drop(self, name):
        if os.path.isfile(self.path(name)):
            os.remove(self.path(name))

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _write_json(path, obj):
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
