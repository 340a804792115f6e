"""Compare two models' benchmarks image by image: which differences one run resolves.

    python3 paired.py A.json B.json [A2.json B2.json ...]      edits (`reword bench edit -json`)
    python3 paired.py A_IMAGES B_IMAGES [A2_IMAGES B2_IMAGES ...]  generation (`reword bench model -images`)

Each pair of paths is one benchmark run of model A and the same run of model B: the same split
(or prompts), seeds and settings, so that every edit or generated image appears in both and each
of its yes/no outcomes can be paired. Further pairs (other blocks, other seeds) are pooled with the
first. Counts alone hide how noisy they are: 43 changed backgrounds against 36 may be seven edits
that changed one way, or twenty that changed each way. The exact sign test (McNemar's) on the items
whose outcome differs gives the two-sided p-value of seeing a split at least that lopsided if
neither model were the better one.

Edits: A.json and B.json are `reword bench edit -json` outputs. Prints one line per row of
`bench edit` (kind of edit) and outcome (success, background changed, another background, broken)
for the Prompt-to-Prompt edits (the method the models are compared on). Refuses runs with different
settings. Two runs of one model that differ in an engine setting on purpose (the setting is what is
compared: `--differ norm` for `-norm 0.4` against none) name it with --differ.

Generation: A_IMAGES and B_IMAGES are the folders `reword bench model -images` wrote (their
index.tsv is read, not the images). Prints one line per attribute bench model scores (colour, shape,
size, position, background), over the images its row counts.

Refuses files whose items do not pair one to one.
"""
import argparse
import csv
import json
import math
import os
import sys

OUTCOMES = ('success', 'background_changed', 'background_replaced', 'broken')
METHOD = 'Prompt-to-Prompt'
# What bench edit -json records of how it ran: two runs pair only if they agree on all of it.
SETTINGS = ('split', 'steps', 'guidance', 'cross', 'self', 'self_max_tokens', 'norm', 'keep_source_text', 'blend_changed',
            'seeds_per_edit', 'background_changed_below_db')
# What a setting was in runs written before bench edit recorded it.
UNRECORDED = {'norm': 0}


def edits_by_key(path):
    """The Prompt-to-Prompt edits of a bench edit JSON file, keyed by what identifies an edit."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f'{path}: not a readable bench edit JSON file: {e}')
    if 'edits' not in doc:
        raise SystemExit(f'{path}: no "edits" list: write it with `reword bench edit -json`')
    out = {}
    for e in doc['edits']:
        if e['method'] != METHOD:
            continue
        key = (e['row'], e['set'], e['source'], e['target'], e['seed'])
        if key in out:
            raise SystemExit(f'{path}: the edit {key} appears twice')
        out[key] = e
    return doc, out


# bench model's attributes, in its order, and the index.tsv column holding each verdict.
ATTRIBUTES = ('colour', 'shape', 'size', 'position', 'background')
VERDICTS = {'yes': True, 'no': False, '-': None}


def images_by_key(folder):
    """The generated images of a bench model -images folder: {(file, prompt, seed): {attribute: True, False or None}}.

    None is an attribute the prompt does not name, which bench model does not count. The file name
    (the prompt's place in the run and the seed's) is part of the key: the held-out prompts may
    name the same scene twice."""
    path = os.path.join(folder, 'index.tsv')
    try:
        with open(path, newline='') as f:
            rows = list(csv.DictReader(f, delimiter='\t', quoting=csv.QUOTE_NONE))
    except OSError as e:
        raise SystemExit(f'{folder}: not a bench model -images folder: {e}')
    columns = [a + '_right' for a in ATTRIBUTES]
    if not rows or any(c not in rows[0] for c in ('file', 'prompt', 'seed', *columns)):
        raise SystemExit(f'{path}: no rows with {", ".join(columns)}: write it with a `reword bench model -images` '
                         'that records the verdicts')
    out = {}
    for n, r in enumerate(rows, start=2):
        key = (r['file'], r['prompt'], r['seed'])
        if key in out:
            raise SystemExit(f'{path}:{n}: {key[0]} (the prompt {key[1]!r} at seed {key[2]}) appears twice')
        try:
            out[key] = {a: VERDICTS[r[a + '_right']] for a in ATTRIBUTES}
        except KeyError as e:
            raise SystemExit(f'{path}:{n}: a verdict is {e}, not yes, no or -')
    return out


def sign_test(b, c):
    """Two-sided exact binomial p-value of b successes in b + c fair coin flips."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_line(name, outcome, outcomes):
    """(name, outcome, items, count in A, count in B, only in A, only in B, p) of (A, B) outcome pairs."""
    outcomes = [(bool(x), bool(y)) for x, y in outcomes]
    only_a = sum(x and not y for x, y in outcomes)
    only_b = sum(y and not x for x, y in outcomes)
    return (name, outcome, len(outcomes), sum(x for x, _ in outcomes), sum(y for _, y in outcomes), only_a, only_b,
            sign_test(only_a, only_b))


def compare_edits(a, b):
    """One paired_line per row of bench edit and outcome.

    a and b are pooled: keyed by (run number, edit), the edit's key starting with its row."""
    out = []
    for row in sorted({edit[0] for _, edit in a}):
        keys = [k for k in a if k[1][0] == row]
        for outcome in OUTCOMES:
            out.append(paired_line(row, outcome, [(a[k][outcome], b[k][outcome]) for k in keys]))
    return out


def compare_images(a, b):
    """One paired_line per attribute, over the images bench model counts it on."""
    out = []
    for attr in ATTRIBUTES:
        keys = [k for k in a if a[k][attr] is not None]
        if any(b[k][attr] is None for k in keys) or any(a[k][attr] is None for k in b if b[k][attr] is not None):
            raise SystemExit(f'the runs count {attr} on different images: they must share prompts and seeds')
        out.append(paired_line(attr, 'right', [(a[k][attr], b[k][attr]) for k in keys]))
    return out


def pooled(runs):
    """Each run's items keyed by (run number, item), so that several runs pool into one comparison."""
    return {(i, k): v for i, items in enumerate(runs) for k, v in items.items()}


def require_same_items(pa, pb, a, b, items):
    """Refuses two runs whose items (edits or images) do not pair one to one."""
    if a.keys() != b.keys():
        missing = len(a.keys() - b.keys()) + len(b.keys() - a.keys())
        raise SystemExit(f'{pa} and {pb}: {missing} {items} appear in one run only: the runs must share prompts and seeds')


def image_runs(pairs):
    """The generation runs of each pair, read and checked: (A's runs, B's runs)."""
    runs_a, runs_b = [], []
    for pa, pb in pairs:
        a, b = images_by_key(pa), images_by_key(pb)
        require_same_items(pa, pb, a, b, 'images')
        runs_a.append(a)
        runs_b.append(b)
    print(f'A = {", ".join(p for p, _ in pairs)}; B = {", ".join(p for _, p in pairs)}; generation')
    return runs_a, runs_b


def edit_runs(pairs, differ):
    """The edit runs of each pair, read and checked (settings too, but those named in differ): (A's, B's)."""
    runs_a, runs_b = [], []
    for pa, pb in pairs:
        doc_a, a = edits_by_key(pa)
        doc_b, b = edits_by_key(pb)
        setting = {field: (doc_a.get(field, UNRECORDED.get(field)), doc_b.get(field, UNRECORDED.get(field)))
                   for field in SETTINGS}
        for field, (va, vb) in setting.items():
            if va != vb and field not in differ:
                raise SystemExit(f'{pa} and {pb} differ in {field} ({va!r} against {vb!r}): only runs with the same '
                                 f'settings pair (name it with --differ {field} if it is what you compare)')
        require_same_items(pa, pb, a, b, 'edits')
        print(f'A = {pa} ({doc_a.get("model")}), B = {pb} ({doc_b.get("model")}); {METHOD}, split {doc_a.get("split")}')
        for field in differ:
            print(f'{field}: {setting[field][0]!r} in A, {setting[field][1]!r} in B')
        runs_a.append(a)
        runs_b.append(b)
    if len(pairs) > 1:
        print(f'{len(pairs)} pairs of runs pooled')
    return runs_a, runs_b


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+', metavar='A B',
                    help="model A's benchmark run, then model B's same run (bench edit -json files, or bench model "
                         '-images folders); more pairs are pooled')
    ap.add_argument('--differ', action='append', default=[], choices=SETTINGS, metavar='SETTING',
                    help='a setting the edit runs may differ in, because it is what is compared (repeatable; one of %(choices)s)')
    args = ap.parse_args(argv)
    if len(args.runs) % 2:
        ap.error(f'{len(args.runs)} paths: give them in pairs, model A\'s run then model B\'s')
    pairs = list(zip(args.runs[0::2], args.runs[1::2]))
    generation = [os.path.isdir(p) for p in args.runs]
    if any(generation) != all(generation):
        ap.error('mix of bench model -images folders and bench edit -json files: compare one kind at a time')
    if all(generation):
        if args.differ:
            ap.error('--differ is for edit runs; bench model runs record no settings to compare')
        runs_a, runs_b = image_runs(pairs)
        lines, head = compare_images(pooled(runs_a), pooled(runs_b)), ('attribute', 'images')
    else:
        runs_a, runs_b = edit_runs(pairs, args.differ)
        lines, head = compare_edits(pooled(runs_a), pooled(runs_b)), ('row', 'edits')
    w = max(len(head[0]), *(len(line[0]) for line in lines))
    print(f'{head[0]:<{w}} {"outcome":<20} {head[1]:>6} {"A":>4} {"B":>4} {"A only":>6} {"B only":>6} {"p (sign test)":>13}')
    for row, outcome, n, in_a, in_b, only_a, only_b, p in lines:
        print(f'{row:<{w}} {outcome:<20} {n:>6} {in_a:>4} {in_b:>4} {only_a:>6} {only_b:>6} {p:>13.3f}')


if __name__ == '__main__':
    sys.exit(main())
