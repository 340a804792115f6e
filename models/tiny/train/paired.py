"""Compare two models' edit benchmarks edit by edit: which differences one run of `bench edit` resolves.

    python3 paired.py A.json B.json

A.json and B.json are `reword bench edit -json` outputs of two models on the same split and seeds:
every edit (row, prompt set, method, source, target, seed) then appears in both, and each of its
yes/no outcomes (success, background changed, another background, broken) can be paired. Counts
alone hide how noisy they are: 43 changed backgrounds against 36 may be seven edits that changed
one way, or twenty that changed each way. The exact sign test (McNemar's) on the edits whose
outcome differs gives the two-sided p-value of seeing a split at least that lopsided if neither
model were the better one.

Prints one line per row of `bench edit` (kind of edit) and outcome for the Prompt-to-Prompt edits
(the method the models are compared on). Refuses runs with different settings and files whose edits
do not pair one to one. Two runs of one model that differ in an engine setting on purpose (the
setting is what is compared: `--differ norm` for `-norm 0.4` against none) name it with --differ.
"""
import argparse
import json
import math
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


def sign_test(b, c):
    """Two-sided exact binomial p-value of b successes in b + c fair coin flips."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(a, b):
    """Lines (row, outcome, edits, count in A, count in B, only in A, only in B, p) for paired edits."""
    out = []
    for row in sorted({k[0] for k in a}):
        keys = [k for k in a if k[0] == row]
        for outcome in OUTCOMES:
            in_a = sum(bool(a[k][outcome]) for k in keys)
            in_b = sum(bool(b[k][outcome]) for k in keys)
            only_a = sum(bool(a[k][outcome]) and not b[k][outcome] for k in keys)
            only_b = sum(bool(b[k][outcome]) and not a[k][outcome] for k in keys)
            out.append((row, outcome, len(keys), in_a, in_b, only_a, only_b, sign_test(only_a, only_b)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('a', help='the first model\'s `reword bench edit -json` output')
    ap.add_argument('b', help='the second model\'s, on the same split and seeds')
    ap.add_argument('--differ', action='append', default=[], choices=SETTINGS, metavar='SETTING',
                    help='a setting the runs may differ in, because it is what is compared (repeatable; one of %(choices)s)')
    args = ap.parse_args(argv)
    doc_a, a = edits_by_key(args.a)
    doc_b, b = edits_by_key(args.b)
    for field in SETTINGS:
        va, vb = doc_a.get(field, UNRECORDED.get(field)), doc_b.get(field, UNRECORDED.get(field))
        if va != vb and field not in args.differ:
            raise SystemExit(f'the runs differ in {field} ({va!r} against {vb!r}): only runs with the same settings pair '
                             f'(name it with --differ {field} if it is what you compare)')
    if a.keys() != b.keys():
        missing = len(a.keys() - b.keys()) + len(b.keys() - a.keys())
        raise SystemExit(f'{missing} edits appear in one file only: the runs must share split, prompts and seeds')
    print(f'A = {args.a} ({doc_a.get("model")}), B = {args.b} ({doc_b.get("model")}); {METHOD}, split {doc_a.get("split")}')
    for field in args.differ:
        print(f'{field}: {doc_a.get(field, UNRECORDED.get(field))!r} in A, {doc_b.get(field, UNRECORDED.get(field))!r} in B')
    lines = compare(a, b)
    w = max(len('row'), *(len(line[0]) for line in lines))
    print(f'{"row":<{w}} {"outcome":<20} {"edits":>5} {"A":>4} {"B":>4} {"A only":>6} {"B only":>6} {"p (sign test)":>13}')
    for row, outcome, n, in_a, in_b, only_a, only_b, p in lines:
        print(f'{row:<{w}} {outcome:<20} {n:>5} {in_a:>4} {in_b:>4} {only_a:>6} {only_b:>6} {p:>13.3f}')


if __name__ == '__main__':
    sys.exit(main())
