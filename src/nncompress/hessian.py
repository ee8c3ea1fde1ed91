"""Second moments of what each Dense and Conv kernel is fed, from data: rdoq's compensation input.

For a layer ``y = W x`` (a Conv as the same product over its im2col patches, one per group), the
output error of a change ``D`` of the weight is ``E ||D x||^2 = sum over rows of D H D^T`` with
``H = E[x x^T]``, the matrix GPTQ / Optimal Brain Quantization (Frantar et al. 2022) spread each
quantized column's error over the columns not yet quantized through (`passes.rdoq`, ``compensate``).

``H`` is measured in the reference executor on the first rows of the data (as the fisher
sensitivity is), with the original weights everywhere: one matrix per group, ``(groups, d, d)``
with ``d = in/groups * prod(kernel)``, float64, the mean over every input row (a Dense layer's
samples, a Conv's output positions). Deterministic: the same rows in the same order; a Conv's
positions thinned on a fixed grid to about ROWS_PER_SAMPLE a sample, so that a large feature map
costs what a small one does.
"""

from __future__ import annotations

import math

import numpy as np

from nncompress.inputs import EvalData
from nncompress.ir import Graph, Node
from nncompress.ir.interpreter import run
from nncompress.ir.ops._window import out_sizes, pad, pads, windows

SAMPLES = 256  # rows of the data, at most (as fisher's): fewer on a large model, see `samples_for`
WORK = 256 * 2_000_000  # samples x parameters: a model of 2 M parameters gets 256, VGG16 8
MIN_SAMPLES = 8
MAX_DIM = 2304  # columns of H (256 channels x 3 x 3): H is d^2 float64, 42 MB at the most
ROWS_PER_SAMPLE = 256  # a Conv's output positions used per sample, on a grid
BATCH = 32  # samples a run: the executor's activations stay small


def samples_for(params: int) -> int:
    return max(MIN_SAMPLES, min(SAMPLES, WORK // max(params, 1)))


def _rows(node: Node, x: np.ndarray, w_shape: tuple[int, ...]) -> np.ndarray | None:
    """The layer's input rows, (groups, rows, d) float64, or None for a node this does not handle."""
    if node.op == "Dense":
        d = w_shape[1]
        if x.shape[-1] != d:
            return None
        return x.reshape(1, -1, d).astype(np.float64)
    if node.op != "Conv" or x.ndim not in (3, 4) or x.ndim != len(w_shape):
        return None
    g = int(node.attrs.get("group", 1))
    kern = w_shape[2:]
    n, c = x.shape[:2]
    if g < 1 or c % g or c // g != w_shape[1]:
        return None
    geo = pb, pe, s, dl = pads(node.attrs, x.shape[2:], kern)
    out = out_sizes(x.shape[2:], geo, kern, ceil=False)
    if min(out) < 1:
        return None
    # positions on a grid, every `every`-th along each spatial axis
    every = max(1, math.ceil((math.prod(out) / ROWS_PER_SAMPLE) ** (1 / len(out))))
    win = windows(pad(x, pb, pe, 0), kern, s, dl, out)  # (n, c, *out, *kern), a view
    sub = win[(slice(None), slice(None)) + (slice(None, None, every),) * len(out)]
    nk = len(kern)
    # (groups, sample, positions..., channel in group, taps...) -> (groups, rows, d): W's column order
    sub = sub.reshape(n, g, c // g, *sub.shape[2:])
    axes = (1, 0, *range(3, 3 + nk), 2, *range(3 + nk, 3 + 2 * nk))
    cols = sub.transpose(axes)
    return cols.reshape(g, -1, (c // g) * math.prod(kern)).astype(np.float64)


def input_moments(
    graph: Graph, data: EvalData, names: list[str], *, samples: int | None = None
) -> tuple[dict[str, np.ndarray], int] | None:
    """``H`` (groups, d, d) of each kernel of ``names`` fed by a Dense or Conv node whose ``d`` is at
    most MAX_DIM, and the number of samples; None when the data has no batch axis, or nothing
    qualifies. A weight used by several nodes gets no ``H`` (its error reaches each differently)."""
    if not data.batched() or data.n == 0:
        return None
    wanted = set(names)
    users: dict[str, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            users[v] = users.get(v, 0) + 1
    kernels: dict[int, tuple[str, tuple[int, ...]]] = {}
    for node in graph.nodes:
        if node.op in ("Dense", "Conv") and len(node.inputs) > 1:
            name = node.inputs[1]
            w = graph.weights.get(name)
            if name in wanted and w is not None and users[name] == 1 and w.array.ndim >= 2:
                d = math.prod(w.shape[1:])
                if d <= MAX_DIM:
                    kernels[id(node)] = (name, w.shape)
    if not kernels:
        return None
    n = min(samples or samples_for(sum(w.size for w in graph.weights.values())), data.n)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def observe(node: Node, ins: list[np.ndarray | None]) -> None:
        hit = kernels.get(id(node))
        if hit is None or ins[0] is None:
            return
        name, shape = hit
        rows = _rows(node, np.asarray(ins[0]), shape)
        if rows is None:
            return
        h = rows.transpose(0, 2, 1) @ rows
        sums[name] = h if name not in sums else sums[name] + h
        counts[name] = counts.get(name, 0) + rows.shape[1]

    step = data.step or BATCH
    for start in range(0, n, step):
        run(graph, data.chunk(start, min(start + step, n)), batch_size=None, observe=observe)
    out = {k: v / counts[k] for k, v in sums.items() if counts[k] > 0 and np.isfinite(v).all()}
    return (out, n) if out else None
