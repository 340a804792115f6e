"""Tests of paired.py, the image-by-image comparison of two models' benchmark runs (`make train-test`).

    cd models/tiny/train && python3 -m unittest -v test_paired
"""
import contextlib
import io
import json
import os
import shutil
import tempfile
import unittest

import paired

INDEX_COLUMNS = ('file', 'prompt', 'seed', 'shape', 'colour', 'size', 'position', 'background',
                 'colour_right', 'shape_right', 'size_right', 'position_right', 'background_right')


class PairedTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def edit_run(self, name, outcomes, **settings):
        """A bench edit -json file: one colour-swap edit per entry of outcomes (success, changed), seeds 0…"""
        edits = [dict(row='colour swap', set='unnamed', source='a red circle', target='a blue circle', seed=seed,
                      method=paired.METHOD, success=ok, background_changed=changed, background_replaced=False,
                      broken=False)
                 for seed, (ok, changed) in enumerate(outcomes)]
        # Another method's rows are not compared.
        edits.append(dict(edits[0], method='no control', success=not edits[0]['success']))
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            json.dump(dict(model=name, split='tune', steps=50, **settings, edits=edits), f)
        return path

    def image_run(self, name, rows):
        """A bench model -images folder holding only its index: rows of (prompt, seed, colour, size, background).

        Each row's file is named after its prompt and seed, as bench model names it after their places."""
        folder = os.path.join(self.tmp, name)
        os.mkdir(folder)
        with open(os.path.join(folder, 'index.tsv'), 'w') as f:
            f.write('\t'.join(INDEX_COLUMNS) + '\n')
            for prompt, seed, colour, size, background in rows:
                f.write('\t'.join((f'{prompt}-k{seed}.png', prompt, str(seed), 'circle', 'red', 'small', 'left', 'gray',
                                   colour, 'yes', size, '-', background)) + '\n')
        return folder

    def run_paired(self, *argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            paired.main(list(argv))
        return out.getvalue()

    def line(self, output, first, outcome):
        """The numbers of output's line for (row or attribute, outcome)."""
        for ln in output.splitlines():
            if ln.startswith(first) and f' {outcome} ' in ln:
                return ln[len(first):].split()[1:]
        self.fail(f'no line for {first} {outcome} in\n{output}')

    def test_sign_test(self):
        self.assertEqual(paired.sign_test(0, 0), 1.0)
        self.assertAlmostEqual(paired.sign_test(0, 5), 2 / 32)
        self.assertAlmostEqual(paired.sign_test(5, 0), 2 / 32)
        self.assertAlmostEqual(paired.sign_test(1, 6), 2 * 8 / 128)
        self.assertEqual(paired.sign_test(3, 3), 1.0)

    def test_edits_pair_by_edit(self):
        a = self.edit_run('a.json', [(True, False), (True, True), (False, False), (True, False)])
        b = self.edit_run('b.json', [(True, False), (False, False), (True, False), (False, True)])
        got = self.line(self.run_paired(a, b), 'colour swap', 'success')
        # edits, A, B, A only, B only, p: two edits only A gets, one only B gets.
        self.assertEqual(got, ['4', '3', '2', '2', '1', '1.000'])
        got = self.line(self.run_paired(a, b), 'colour swap', 'background_changed')
        self.assertEqual(got, ['4', '1', '1', '1', '1', '1.000'])

    def test_edit_runs_pool(self):
        a1 = self.edit_run('a1.json', [(True, False)] * 3)
        b1 = self.edit_run('b1.json', [(False, False)] * 3)
        a2 = self.edit_run('a2.json', [(True, False)] * 3)
        b2 = self.edit_run('b2.json', [(False, False)] * 3)
        out = self.run_paired(a1, b1, a2, b2)
        # The same edits in two runs are six pairs, not three: 6 / 0 gives p = 2 / 64.
        self.assertEqual(self.line(out, 'colour swap', 'success'), ['6', '6', '0', '6', '0', '0.031'])
        self.assertIn('2 pairs of runs pooled', out)

    def test_edit_runs_with_other_settings_are_refused(self):
        a = self.edit_run('a.json', [(True, False)], norm=0.4)
        b = self.edit_run('b.json', [(True, False)], norm=0)
        with self.assertRaisesRegex(SystemExit, 'differ in norm'):
            self.run_paired(a, b)
        self.assertIn('norm: 0.4 in A, 0 in B', self.run_paired(a, b, '--differ', 'norm'))

    def test_generation_pairs_by_prompt_and_seed(self):
        a = self.image_run('a', [('a red circle', 0, 'yes', '-', '-'), ('a small red circle', 0, 'yes', 'yes', '-'),
                                 ('a red circle on grass', 1, 'no', '-', 'yes')])
        # B's rows in another order: they pair by file, prompt and seed, not by line.
        b = self.image_run('b', [('a red circle on grass', 1, 'yes', '-', 'no'), ('a red circle', 0, 'no', '-', '-'),
                                 ('a small red circle', 0, 'yes', 'no', '-')])
        out = self.run_paired(a, b)
        self.assertEqual(self.line(out, 'colour', 'right'), ['3', '2', '2', '1', '1', '1.000'])
        # Size and background count only the images whose prompts name them.
        self.assertEqual(self.line(out, 'size', 'right'), ['1', '1', '0', '1', '0', '1.000'])
        self.assertEqual(self.line(out, 'background', 'right'), ['1', '1', '0', '1', '0', '1.000'])
        self.assertEqual(self.line(out, 'position', 'right'), ['0', '0', '0', '0', '0', '1.000'])

    def test_generation_runs_pool(self):
        rows_a = [(f'prompt {i}', 0, 'yes', '-', '-') for i in range(4)]
        rows_b = [(f'prompt {i}', 0, 'no', '-', '-') for i in range(4)]
        out = self.run_paired(self.image_run('a1', rows_a), self.image_run('b1', rows_b),
                              self.image_run('a2', rows_a), self.image_run('b2', rows_b))
        self.assertEqual(self.line(out, 'colour', 'right'), ['8', '8', '0', '8', '0', '0.008'])

    def test_refusals(self):
        a = self.image_run('a', [('a red circle', 0, 'yes', '-', '-')])
        other_seed = self.image_run('b', [('a red circle', 1, 'yes', '-', '-')])
        with self.assertRaisesRegex(SystemExit, '2 images appear in one run only'):
            self.run_paired(a, other_seed)
        named = self.image_run('c', [('a red circle', 0, 'yes', 'no', '-')])
        with self.assertRaisesRegex(SystemExit, 'count size on different images'):
            self.run_paired(a, named)
        bad = self.image_run('d', [('a red circle', 0, 'maybe', '-', '-')])
        with self.assertRaisesRegex(SystemExit, r"index.tsv:2: a verdict is 'maybe'"):
            self.run_paired(a, bad)
        twice = self.image_run('e', [('a red circle', 0, 'yes', '-', '-')] * 2)
        with self.assertRaisesRegex(SystemExit, r"index.tsv:3: a red circle-k0.png \(the prompt 'a red circle' at seed 0\) appears twice"):
            self.run_paired(a, twice)
        with self.assertRaisesRegex(SystemExit, 'not a bench model -images folder'):
            self.run_paired(a, self.tmp)
        edits = self.edit_run('x.json', [(True, False)])
        more_edits = self.edit_run('y.json', [(True, False)] * 2)
        with self.assertRaisesRegex(SystemExit, '1 edits appear in one run only'):
            self.run_paired(edits, more_edits)
        for argv, want in (((a, edits), 'compare one kind at a time'), ((a, a, a), 'give them in pairs'),
                           ((a, a, '--differ', 'norm'), '--differ is for edit runs')):
            with self.subTest(argv=argv), contextlib.redirect_stderr(io.StringIO()) as err:
                with self.assertRaises(SystemExit):
                    self.run_paired(*argv)
                self.assertIn(want, err.getvalue())


if __name__ == '__main__':
    unittest.main()
