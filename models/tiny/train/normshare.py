"""A model copy whose edited rows take the source's GroupNorm statistics: pathways.py's "norm" in pictures.

    python3 normshare.py --model DIR --out COPY [--t-min 0] [--t-max 1000]

DIR is a model folder whose UNet Reword has instrumented (unet/model.p2p.onnx: `reword instrument DIR`,
or any run on it). COPY becomes a copy of it in which every GroupNorm of the instrumented UNet (torch
exports it as Reshape, InstanceNormalization, Reshape, then the affine) gives the edited rows of a call
the source row's mean and variance of each group, while the call's timestep lies in [t-min, t-max]:
each conditional target row takes the conditional source row's, each unconditional target row the
unconditional source row's, so that classifier-free guidance never subtracts rows normalised by
different statistics (sharing on the conditional rows alone turned the whole picture another colour).
A call without the source's unconditional row (a source replayed from the cache) shares nothing, so
`bench edit`'s baseline, which replays the source Prompt-to-Prompt cached, is the model's own.

The engine now has this as an opt-in control, the spec's "norm" window (`reword edit --norm`, `bench
edit -norm`), which gives the same results edit by edit (models/tiny/README.md): this copy, with its
window fixed in the graph for every target of every edit, stays as the tool the first measurements
were made with and the reference the control was checked against. `reword bench edit -model COPY`
measures it against DIR.
"""
import argparse
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INSTRUMENTED = os.path.join('unet', 'model.p2p.onnx')
# Inputs of the instrumented UNet this rewrite reads (backend/graph/contract.go): the batch size comes
# from the sample, the number of edited rows E from the per-target self-replace weights. The batch is
# the unconditional rows, then the source's conditional row, then E targets' (backend/diffusion).
SAMPLE, TIMESTEP, TARGETS = 'sample', 'timestep', 'p2p_self_w'
PREFIX = 'normshare_'


class Graph:
    """Appends nodes with fresh names under PREFIX."""

    def __init__(self):
        self.nodes = []

    def const(self, name, value):
        name = PREFIX + name
        self.nodes.append(helper.make_node('Constant', [], [name], value=numpy_helper.from_array(np.asarray(value), name)))
        return name

    def op(self, op_type, inputs, name, **attrs):
        name = PREFIX + name
        self.nodes.append(helper.make_node(op_type, inputs, [name], **attrs))
        return name


def row_map(g, t_min, t_max):
    """Nodes computing, for every row of the batch, the row whose statistics it uses (int64 [B])."""
    zero, one = g.const('zero', np.int64(0)), g.const('one', np.int64(1))
    batch = g.op('Gather', [g.op('Shape', [SAMPLE], 'sample_shape'), zero], 'batch', axis=0)
    targets = g.op('Gather', [g.op('Shape', [TARGETS], 'targets_shape'), zero], 'targets', axis=0)
    first_target = g.op('Sub', [batch, targets], 'first_target')
    source = g.op('Sub', [first_target, one], 'source')  # also the number of unconditional rows
    rows = g.op('Range', [zero, batch, one], 'rows')
    t = g.op('ReduceMax', [g.op('Cast', [TIMESTEP], 't_float', to=TensorProto.FLOAT)], 't', keepdims=0)
    in_window = g.op('And', [g.op('GreaterOrEqual', [t, g.const('t_min', np.float32(t_min))], 'after_min'),
                             g.op('LessOrEqual', [t, g.const('t_max', np.float32(t_max))], 'before_max')], 'in_window')
    # The source is denoised in this call, unconditional row included, when there is one unconditional
    # row per conditional row: E+1 of them.
    whole = g.op('Equal', [source, g.op('Add', [targets, one], 'conditional_rows')], 'whole_source')
    share = g.op('And', [in_window, whole], 'share')
    cond_target = g.op('And', [g.op('GreaterOrEqual', [rows, first_target], 'is_cond_target'), share], 'share_cond')
    uncond_target = g.op('And', [g.op('And', [g.op('Greater', [rows, zero], 'after_uncond_source'),
                                              g.op('Less', [rows, source], 'is_uncond')], 'is_uncond_target'), share], 'share_uncond')
    mapped = g.op('Where', [cond_target, source, rows], 'cond_mapped')
    return g.op('Where', [uncond_target, zero, mapped], 'row_map')


def shared_norm(g, k, node, rows):
    """Nodes replacing one InstanceNormalization ([B, groups, …] input) by its statistics taken from rows."""
    x, scale, bias = node.input
    eps = next((a.f for a in node.attribute if a.name == 'epsilon'), 1e-5)
    p = f'{k}_'
    mean = g.op('ReduceMean', [x], p + 'mean', axes=[2], keepdims=1)
    centred = g.op('Sub', [x, mean], p + 'centred')
    var = g.op('ReduceMean', [g.op('Mul', [centred, centred], p + 'squares')], p + 'var', axes=[2], keepdims=1)
    mean_from = g.op('Gather', [mean, rows], p + 'mean_from', axis=0)
    var_from = g.op('Gather', [var, rows], p + 'var_from', axis=0)
    std = g.op('Sqrt', [g.op('Add', [var_from, g.const(p + 'eps', np.float32(eps))], p + 'var_eps')], p + 'std')
    y = g.op('Div', [g.op('Sub', [x, mean_from], p + 'shifted'), std], p + 'normed')
    axis = g.const(p + 'group_axis', np.array([1], np.int64))
    scaled = g.op('Mul', [y, g.op('Unsqueeze', [scale, axis], p + 'scale')], p + 'scaled')
    g.nodes.append(helper.make_node('Add', [scaled, g.op('Unsqueeze', [bias, axis], p + 'bias')], [node.output[0]]))


def rewrite(model, t_min, t_max):
    """Rewrites model in place; returns how many GroupNorms now share statistics."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), 0)
    if opset >= 18:
        # ReduceMean takes its axes as an input from opset 18 on, and torch exports GroupNorm as
        # GroupNormalization there: neither is what this rewrite writes or looks for.
        raise ValueError(f'the UNet is exported at opset {opset}; normshare.py handles opsets below 18 (the tiny model: 14)')
    names = {i.name for i in graph.input}
    missing = [n for n in (SAMPLE, TIMESTEP, TARGETS) if n not in names]
    if missing:
        raise ValueError(f'the UNet has no input {", ".join(missing)}: not a UNet instrumented by Reword')
    if any(n.name.startswith(PREFIX) or any(o.startswith(PREFIX) for o in n.output) for n in graph.node):
        raise ValueError('the UNet was already rewritten by normshare.py')
    prelude, body = Graph(), Graph()
    rows = row_map(prelude, t_min, t_max)
    k = 0
    for node in graph.node:
        if node.op_type == 'InstanceNormalization':
            shared_norm(body, k, node, rows)
            k += 1
        else:
            body.nodes.append(node)
    if k == 0:
        raise ValueError('the UNet has no InstanceNormalization (GroupNorm) to share')
    del graph.node[:]
    graph.node.extend(prelude.nodes + body.nodes)
    onnx.checker.check_model(model)
    return k


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', required=True, help='model folder with an instrumented UNet (unet/model.p2p.onnx)')
    ap.add_argument('--out', required=True, help='folder to write the copy to (must not exist)')
    ap.add_argument('--t-min', type=float, default=0, help='share at timesteps from this one')
    ap.add_argument('--t-max', type=float, default=1000, help='share at timesteps up to this one')
    args = ap.parse_args()
    src = os.path.join(args.model, INSTRUMENTED)
    if not os.path.isfile(src):
        sys.exit(f'normshare: {src} does not exist: run `reword instrument {args.model}` first')
    if os.path.exists(args.out):
        sys.exit(f'normshare: {args.out} exists; name a new folder')
    if not args.t_min <= args.t_max:
        sys.exit(f'normshare: --t-min {args.t_min} is above --t-max {args.t_max}')
    model = onnx.load(src)
    try:
        k = rewrite(model, args.t_min, args.t_max)
    except ValueError as e:
        sys.exit(f'normshare: {src}: {e}')
    # copy2 keeps the times, so the rewritten file written after it is newer than the UNet it derives
    # from, as the engine requires of an instrumented copy.
    shutil.copytree(args.model, args.out, copy_function=shutil.copy2)
    onnx.save(model, os.path.join(args.out, INSTRUMENTED))
    print(f'{args.out}: {k} GroupNorms give the edited rows the source\'s statistics at t in [{args.t_min:g}, {args.t_max:g}]')


if __name__ == '__main__':
    main()
