"""Reductions over axes: ReduceMean, ReduceSum, ReduceMax and ReduceMin."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nncompress.ir.ops._common import Arr, Attrs, Ins, OpFn, arg


def _reduce(fn: Callable[..., Arr]) -> OpFn:
    def op(ins: Ins, a: Attrs) -> Arr:
        axes = arg(ins, 1, a, "axes")
        if not axes and a.get("noop_with_empty_axes", 0):
            return ins[0]
        return fn(ins[0], axis=tuple(axes) if axes else None, keepdims=bool(a.get("keepdims", 1)))

    return op


OPS: dict[str, OpFn] = {
    "ReduceMean": _reduce(np.mean),
    "ReduceSum": _reduce(np.sum),
    "ReduceMax": _reduce(np.max),
    "ReduceMin": _reduce(np.min),
}
