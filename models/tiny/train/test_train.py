"""Tests of what a train.py step computes and of what a run refuses (`make train-test`, part of `make test`).

They cover the map injection the twin terms use (per-token gates and the
refinement's token alignment), the twin terms' windows, the unrolled twin
term, the refusals of bad flags and data, and real two-step runs of train.py
with both twin terms on a small data set drawn by datagen. They train
nothing that ships: the tiny model's own training is `make tiny-model`.

    cd models/tiny/train && python3 -m unittest -v test_train

The short runs draw their data with `go run` ($GO, default go): Go is
required, as for the rest of `make test`.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import train  # first: it sets OPENBLAS_NUM_THREADS before torch loads OpenBLAS

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..'))


class Layer:
    """What MapInjection reads of an attention layer: whether it is a cross-attention layer."""

    def __init__(self, is_cross):
        self.is_cross = is_cross


CROSS, SELF = Layer(True), Layer(False)


class MapInjectionTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.source = torch.rand(3, 2, 4, 6)  # [B, heads, N, K] as the sdpa layout
        self.maps = train.MapInjection()
        self.maps.record()
        self.assertIs(self.maps(CROSS, self.source), self.source)  # recording leaves the pass its own maps
        self.maps(SELF, self.source)

    def test_per_token_gate(self):
        own = torch.rand(1, 2, 4, 6)
        gate = torch.tensor([[True, True, False, True, True, True]])
        self.maps.inject(torch.tensor([1]), gate, torch.tensor([False]))
        out = self.maps(CROSS, own)
        for k in range(6):
            want = own[0, :, :, k] if k == 2 else self.source[1, :, :, k]
            self.assertTrue(torch.equal(out[0, :, :, k], want), f'token {k}')
        # The self-attention layer's gate is off: the pass keeps its own map.
        self.assertTrue(torch.equal(self.maps(SELF, own), own))

    def test_refinement_gathers_through_the_alignment(self):
        # "a red circle" -> "a red circle on grass": the twin's tokens 2 and 3 are added, its EOS (4) takes the
        # source's EOS (2), padding takes padding.
        own = torch.rand(2, 2, 4, 6)
        gather = torch.tensor([[0, 1, -1, -1, 2, 5], [0, 1, 2, 3, 4, 5]])
        windows = train.twin_windows({'twin_cross_above_t': -1}, torch.zeros(2, 6, dtype=torch.bool), gather)
        cross, self_, g = windows(torch.tensor([100, 700]))
        self.assertEqual(cross.tolist(), [[True] * 6, [True] * 6])  # the added tokens' gates too
        self.maps.inject(torch.tensor([0, 2]), cross, self_, g)
        out = self.maps(CROSS, own)
        self.assertTrue(torch.equal(out[0, :, :, 4], self.source[0, :, :, 2]))
        self.assertTrue(torch.equal(out[0, :, :, 5], self.source[0, :, :, 5]))
        for k in (2, 3):
            self.assertTrue(torch.equal(out[0, :, :, k], own[0, :, :, k]), f'added token {k}')
        self.assertTrue(torch.equal(out[1], self.source[2]))
        # Self maps: row 0 is at t 100 (below 600, its own), row 1 at t 700 (the source's).
        out = self.maps(SELF, own)
        self.assertTrue(torch.equal(out[0], own[0]) and torch.equal(out[1], self.source[2]))

    def test_an_alignment_needs_a_gate_per_token(self):
        gather = torch.tensor([[0, 1, -1, -1, 2, 5]])
        with self.assertRaisesRegex(ValueError, 'a gate per token'):
            self.maps.inject(torch.tensor([0]), torch.tensor([True]), torch.tensor([True]), gather)


class TwinWindowsTest(unittest.TestCase):
    def test_swapped_word_has_its_own_window(self):
        r = {'twin_cross_above_t': -1, 'twin_cross_changed_above_t': 600, 'twin_self_above_t': 600}
        changed = torch.tensor([[False, False, True, False]] * 3)
        cross, self_, gather = train.twin_windows(r, changed)(torch.tensor([0, 300, 700]))
        self.assertIsNone(gather)
        self.assertEqual(cross.tolist(), [[True, True, False, True], [True, True, False, True], [True] * 4])
        self.assertEqual(self_.tolist(), [False, False, True])

    def test_defaults_are_the_reference_windows(self):
        cross, self_, _ = train.twin_windows({}, torch.zeros(2, 3, dtype=torch.bool))(torch.tensor([200, 201]))
        self.assertEqual(cross.tolist(), [[False] * 3, [True] * 3])
        self.assertEqual(self_.tolist(), [False, False])

    def test_the_alignment_is_passed_on(self):
        gather = torch.tensor([[0, -1, 1]])
        _, _, g = train.twin_windows({'twin_cross_above_t': -1}, torch.zeros(1, 3, dtype=torch.bool),
                                     gather)(torch.tensor([999]))
        self.assertIs(g, gather)


def fresh_models(test):
    """A seeded fresh text encoder and UNet computing attention in the training's layout (MapInjection's) for the
    rest of the test, and the noise schedule."""
    torch.manual_seed(0)
    layout, train.tinysd.Attention.layout = train.tinysd.Attention.layout, train.TRAINING_LAYOUT
    test.addCleanup(setattr, train.tinysd.Attention, 'layout', layout)
    test.te, test.unet = train.new_models(train.RECIPE, 'cpu')
    test.ac = train.tinysd.alphas_cumprod()


def red_circle(n):
    """n rows of the padded CLIP ids of "a red circle"."""
    ids = torch.full((n, 77), 49407, dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1:4] = torch.tensor([320, 736, 7117])
    return ids


class UnrolledTwinTermTest(unittest.TestCase):
    def setUp(self):
        fresh_models(self)
        ids = red_circle(2)
        twin_ids = ids.clone()
        twin_ids[:, 2] = 1746  # "a blue circle"
        self.ctx, self.twin_ctx = self.te(ids).detach(), self.te(twin_ids).detach()
        self.windows = train.twin_windows({'twin_cross_above_t': -1, 'twin_cross_changed_above_t': 600},
                                          twin_ids != ids)
        self.x0, self.x0_twin, self.eps = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)

    def term(self, t, steps, stride=1):
        maps = train.MapInjection()
        maps.record()
        with train.probs_hook(maps):
            self.unet(self.ac[t].sqrt()[:, None, None, None] * self.x0, t.float(), self.ctx)
        a = self.ac[t][:, None, None, None]
        x_twin = a.sqrt() * self.x0_twin + (1 - a).sqrt() * self.eps
        maps.inject(torch.arange(2), *self.windows(t))
        with train.probs_hook(maps):
            twin_eps = self.unet(x_twin, t.float(), self.twin_ctx)
        return train.unrolled_twin_terms(self.unet, maps, self.ac, self.x0, self.x0_twin, self.eps, t, twin_eps,
                                         self.ctx, self.twin_ctx, steps, stride, self.windows,
                                         lambda at: train.loss_weights(self.ac, at, train.RECIPE))

    def test_gradient_reaches_the_unet(self):
        self.unet.zero_grad()
        total = self.term(torch.tensor([500, 800]), steps=2, stride=3)
        total.backward()
        grads = [p.grad.abs().sum().item() for p in self.unet.parameters() if p.grad is not None]
        self.assertGreater(total.item(), 0)
        self.assertTrue(grads and sum(grads) > 0)

    def test_a_row_at_t_0_counts_no_more_steps(self):
        self.assertEqual(float(self.term(torch.tensor([0, 0]), steps=3)), 0.0)
        # A row that starts one stride above 0 counts one step, then stops: more steps add nothing.
        one = self.term(torch.tensor([20, 0]), steps=1)
        three = self.term(torch.tensor([20, 0]), steps=3)
        self.assertGreater(one.item(), 0)
        self.assertAlmostEqual(one.item(), three.item(), places=6)


class TwinTermsTest(unittest.TestCase):
    """A step's twin terms, one per kind of twin, each from the caption pass's maps."""

    def setUp(self):
        fresh_models(self)
        n = 3
        self.tok = red_circle(n)
        colour_ids = self.tok.clone()
        colour_ids[:, 2] = 1746  # "a blue circle"
        bg_ids = self.tok.clone()
        bg_ids[:, 4:8] = torch.tensor([525, 320, 1746, 5994])  # "a red circle on a blue background"
        gather = torch.arange(77).repeat(n, 1)
        gather[:, 4:8] = -1
        gather[:, 8] = 4  # the twin's EOS takes the caption's
        deltas = torch.randn(n, 4, 16, 16)
        self.colour = train.TwinSet('colour', 3.0, deltas, colour_ids, torch.tensor([True, True, False]), None)
        self.background = train.TwinSet('background', 2.0, -deltas, bg_ids, torch.tensor([True, False, True]), gather)
        self.x0, self.eps = torch.randn(n, 4, 16, 16), torch.randn(n, 4, 16, 16)
        self.t = torch.tensor([700, 400, 900])

    def terms(self, twins, r, keep=None):
        maps = train.MapInjection()
        maps.record()
        a = self.ac[self.t][:, None, None, None]
        with train.probs_hook(maps):
            ctx = self.te(self.tok)
            self.unet(a.sqrt() * self.x0 + (1 - a).sqrt() * self.eps, self.t.float(), ctx)
        keep = torch.ones(3, dtype=torch.bool) if keep is None else keep
        weight = train.loss_weights(self.ac, self.t, train.RECIPE)
        return train.twin_terms(twins, dict(train.RECIPE, **r), self.te, self.unet, maps, self.ac, torch.arange(3),
                                keep, self.tok, self.x0, self.eps, self.t, weight, ctx)

    def test_each_kind_starts_from_the_caption_pass_maps(self):
        r = {'twin_cross_above_t': -1, 'twin_cross_changed_above_t': 600, 'twin_unroll': 2}
        with torch.no_grad():
            alone = self.terms([self.background], r)
            both = self.terms([self.colour, self.background], r)
        self.assertEqual([ts.kind for ts, _ in both], ['colour', 'background'])
        # The colour term's unrolled steps recorded maps of their own; the background term must not see them.
        self.assertEqual(both[1][1].item(), alone[0][1].item())

    def test_rows_without_a_twin_or_caption_count_nothing(self):
        with torch.no_grad():
            kept = self.terms([self.colour], {})
            dropped = self.terms([self.colour], {}, keep=torch.tensor([True, False, True]))
            none = self.terms([self.colour], {}, keep=torch.tensor([False, False, True]))
        self.assertEqual(none, [])
        self.assertGreater(kept[0][1].item(), dropped[0][1].item())
        self.assertGreater(dropped[0][1].item(), 0)


class LoadTwinsTest(unittest.TestCase):
    """load_twins refuses twin files that cannot be what datagen wrote."""

    def setUp(self):
        self.data = tempfile.mkdtemp(prefix='twins-')
        self.addCleanup(shutil.rmtree, self.data)
        n = 4
        with open(os.path.join(self.data, 'info.json'), 'w') as f:
            json.dump({'seed': 1}, f)
        np.save(os.path.join(self.data, 'background_twin_backgrounds.npy'), np.array([0, -1, 2, -1], np.int8))
        np.save(os.path.join(self.data, 'background_twin_input_ids.npy'), np.zeros((n, 77), np.int32))
        np.save(os.path.join(self.data, 'background_twin_images.npy'), np.zeros((n, 64, 64, 3), np.uint8))
        self.gather = np.tile(np.arange(77, dtype=np.int8), (n, 1))
        self.cache = os.path.join(self.data, 'deltas.npy')
        np.save(self.cache, np.zeros((n, 4, 16, 16), np.float16))
        with open(self.cache + '.json', 'w') as f:
            json.dump(dict(scale=0.5, data_seed=1, count=n, twins='background'), f)
        self.images = torch.zeros(n, 64, 64, 3, dtype=torch.uint8)

    def load(self):
        np.save(os.path.join(self.data, 'background_twin_gather.npy'), self.gather)
        return train.load_twins('background', 1.0, self.data, self.cache, None, self.images, 0.5, 'cpu')

    def test_loads(self):
        ts = self.load()
        self.assertEqual(ts.has.tolist(), [True, False, True, False])
        self.assertEqual(tuple(ts.gather.shape), (4, 77))

    def test_gather_out_of_range(self):
        self.gather[1, 5] = 77
        with self.assertRaisesRegex(SystemExit, 'a token index of 0 to 76 or -1'):
            self.load()

    def test_no_twin_at_all(self):
        np.save(os.path.join(self.data, 'background_twin_backgrounds.npy'), np.full(4, -1, np.int8))
        with self.assertRaisesRegex(SystemExit, 'no scene of .* has a background twin'):
            self.load()

    def test_a_colour_cache_is_not_a_background_cache(self):
        with open(self.cache + '.json', 'w') as f:
            json.dump(dict(scale=0.5, data_seed=1, count=4), f)
        with self.assertRaisesRegex(SystemExit, 'give another --background-twin-deltas'):
            self.load()


def run_train(*args):
    return subprocess.run([sys.executable, 'train.py', *args], cwd=HERE, capture_output=True, text=True,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS='1'))


class FlagsTest(unittest.TestCase):
    """Bad flags are refused before any data is read, with what was wrong and what is allowed."""

    def refused(self, message, *args):
        p = run_train('--data', '/nonexistent', '--out', '/nonexistent/out', *args)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(message, p.stderr)

    def test_background_twin_flags(self):
        self.refused('--background-twin-weight must be above 0, got 0.0', '--background-twin-weight', '0')
        self.refused('--background-twin-deltas is for the background twin term: give --background-twin-weight',
                     '--background-twin-deltas', 'x.npy')
        self.refused('name the same file', '--twin-weight', '1', '--background-twin-weight', '1',
                     '--twin-deltas', 'd.npy', '--background-twin-deltas', './d.npy')

    def test_window_and_unroll_flags_need_a_twin_term(self):
        self.refused('give --twin-weight or --background-twin-weight too', '--twin-cross-above-t', '-1')
        self.refused('give --twin-weight or --background-twin-weight too', '--twin-unroll', '2')
        self.refused('must be a timestep, 0 to 999, or -1', '--background-twin-weight', '1',
                     '--twin-self-above-t', '1000')
        self.refused('--twin-unroll-stride is the step of --twin-unroll', '--twin-weight', '1',
                     '--twin-unroll-stride', '2')
        self.refused("--twin-cross-changed-above-t is the swapped word's window of the colour twin term",
                     '--background-twin-weight', '1', '--twin-cross-changed-above-t', '600')

    def test_twin_terms_need_the_grounding_cycles(self):
        self.refused('--background-twin-weight runs in the cycles with the grounding loss',
                     '--background-twin-weight', '1', '--grounding-weight', '0')


class ShortRunTest(unittest.TestCase):
    """Real train.py runs, two UNet steps each, on 1,100 scenes datagen draws (the VAE validates on 1,000) with both kinds of twin."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='train-test-')
        for name, flags in (('both', ['-twins', '-background-twins']), ('colour', ['-twins'])):
            p = subprocess.run([os.environ.get('GO', 'go'), 'run', './models/tiny/train/datagen', '-out',
                                os.path.join(cls.tmp, name), '-n', '1100', '-seed', '5', *flags],
                               cwd=ROOT, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f'datagen {" ".join(flags)} failed ({p.returncode}): {p.stderr}')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    short = ['--vae-steps', '2', '--unet-steps', '2', '--continue-steps', '0', '--grounding-cycle', '1',
             '--swap-consistency', '10', '--swap-consistency-mode', 'injected', '--processes', '1', '--threads', '1']

    def test_both_twin_terms_train_and_are_recorded(self):
        out = os.path.join(self.tmp, 'run')
        p = run_train('--data', os.path.join(self.tmp, 'both'), '--out', out, *self.short,
                      '--twin-weight', '3', '--background-twin-weight', '2', '--twin-cross-above-t', '-1',
                      '--twin-cross-changed-above-t', '600', '--twin-unroll', '1',
                      '--background-twin-deltas', os.path.join(self.tmp, 'bg.npy'))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('step 1: colour twin term', p.stdout)
        self.assertIn('step 1: background twin term', p.stdout)
        with open(os.path.join(out, 'training.json')) as f:
            recipe = json.load(f)['recipe']
        self.assertEqual((recipe['twin_weight'], recipe['background_twin_weight'], recipe['twin_unroll']), (3, 2, 1))
        for name in ('vae', 'text_encoder', 'unet'):
            self.assertTrue(os.path.isfile(os.path.join(out, name + '.npz')), name)
        with open(os.path.join(self.tmp, 'bg.npy.json')) as f:
            made_for = json.load(f)
        self.assertEqual((made_for['twins'], made_for['count'], made_for['data_seed']), ('background', 1100, 5))

    def test_data_without_background_twins_is_refused_before_training(self):
        p = run_train('--data', os.path.join(self.tmp, 'colour'), '--out', os.path.join(self.tmp, 'refused'),
                      *self.short, '--background-twin-weight', '1')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('has no background twins', p.stdout + p.stderr)
        self.assertIn('draw it with datagen -background-twins', p.stdout + p.stderr)
        self.assertNotIn('vae', p.stdout)


if __name__ == '__main__':
    unittest.main()
