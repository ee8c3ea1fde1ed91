"""Pools: MaxPool and AveragePool over strided window views, and the global pools."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nncompress.ir.ops._common import Arr, Attrs, Ins, OpFn
from nncompress.ir.ops._window import out_sizes, pad, pads, taps, windows


def _pool_geometry(x: Arr, a: Attrs) -> tuple[list[int], ...]:
    kern = [int(k) for k in a["kernel_shape"]]
    ceil = bool(a.get("ceil_mode", 0))
    geo = pb, pe, s, d = pads(a, x.shape[2:], kern)
    out = out_sizes(x.shape[2:], geo, kern, ceil)
    # ceil_mode can make the last window run past the end padding: pad that far too
    extra = [
        max(0, (o - 1) * si + (k - 1) * di + 1 - (i + b + e))
        for o, si, k, di, i, b, e in zip(out, s, kern, d, x.shape[2:], pb, pe, strict=True)
    ]
    return kern, pb, pe, s, d, out, extra


def _max_pool(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    kern, pb, pe, s, d, out, extra = _pool_geometry(x, a)
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    xp = pad(x, pb, [e + x_ for e, x_ in zip(pe, extra, strict=True)], low)
    y: Arr | None = None
    for _, view in taps(xp, kern, s, d, out):  # max is exact: the same bits as the window view's
        y = view.copy() if y is None else np.maximum(y, view, out=y)
    if y is None:
        raise ValueError(f"kernel_shape {kern} has no cell")
    return y


def _avg_pool(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    kern, pb, pe, s, d, out, extra = _pool_geometry(x, a)
    ends = [e + x_ for e, x_ in zip(pe, extra, strict=True)]
    axes = tuple(range(-len(kern), 0))
    total = windows(pad(x, pb, ends, 0), kern, s, d, out).sum(axis=axes)
    # the divisor counts real cells, plus the explicit pads when count_include_pad, never the ceil overrun
    ones = np.ones((1, 1, *x.shape[2:]), x.dtype)
    if a.get("count_include_pad", 0):
        ones = pad(ones, pb, pe, 1)
        mask = pad(ones, [0] * len(kern), extra, 0)
    else:
        mask = pad(ones, pb, ends, 0)
    count = windows(mask, kern, s, d, out).sum(axis=axes)
    return (total / count).astype(x.dtype, copy=False)


def _global(reduce: Callable[..., Arr]) -> OpFn:
    return lambda ins, a: reduce(ins[0], axis=tuple(range(2, ins[0].ndim)), keepdims=True)


OPS: dict[str, OpFn] = {
    "MaxPool": _max_pool,
    "AveragePool": _avg_pool,
    "GlobalAveragePool": _global(np.mean),
    "GlobalMaxPool": _global(np.max),
}
