"""Flatten, Reshape, Permute, the merge layers (Add, Multiply, Average...) and Concatenate.

Flatten, Reshape and Permute mean what they do only in Keras order, so their input is brought back
to it; merges work in whichever layout their inputs share.
"""

from __future__ import annotations

import math

import numpy as np

from nncompress.io.keras._builder import Builder, Layer, Val, ir_axis
from nncompress.io.keras._conv import channels_first_data


def flatten(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x = xs[0]
    if channels_first_data(L.cfg):
        return b.opaque_op(L, xs)
    shape = None
    if x.shape is not None:
        rest = [d for d in x.shape[1:] if d is not None]
        shape = (None, math.prod(rest) if len(rest) == len(x.shape) - 1 else None)
    return [b.val(b.op("Flatten", [b.get(x, "kl")], L.name, {"axis": 1}, hint=L.name)[0], shape, "kl")]


def reshape(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x = xs[0]
    target = [int(d) for d in L.cfg["target_shape"]]
    # -1 for the batch where the target has no -1 of its own; else ONNX's 0 ("copy this dim").
    spec = np.array([0 if -1 in target else -1, *target], np.int64)
    shape_w = b.const(L.name, "shape", spec)
    shape: tuple[int | None, ...] = (None, *target)
    if -1 in target:
        shape = (None, *[None if d == -1 else d for d in target])
        dims = [d for d in x.shape[1:] if d is not None] if x.shape is not None else []
        if x.shape is not None and len(dims) == len(x.shape) - 1:
            known = math.prod(d for d in target if d != -1)
            shape = (None, *[math.prod(dims) // known if d == -1 else d for d in target])
    y = b.op("Reshape", [b.get(x, "kl"), shape_w], L.name, hint=L.name)[0]
    return [b.val(y, shape, "kl", x.dtype)]


def permute(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x = xs[0]
    perm = [0, *(int(d) for d in L.cfg["dims"])]
    shape = None if x.shape is None else tuple(x.shape[i] for i in perm)
    y = b.op("Transpose", [b.get(x, "kl")], L.name, {"perm": perm}, hint=L.name)[0]
    return [b.val(y, shape, "kl", x.dtype)]


def _merge_layout(b: Builder, xs: list[Val]) -> str:
    ranks = {x.rank for x in xs}
    if len(ranks) == 1 and None not in ranks and next(iter(ranks)) > 2:  # type: ignore[operator]
        return "cf" if any(x.cf for x in xs) else "kl"
    return "kl"  # different ranks broadcast in Keras order


def merge(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    op = {
        "Add": "Add",
        "Subtract": "Sub",
        "Multiply": "Mul",
        "Average": "Add",
        "Maximum": "Max",
        "Minimum": "Min",
    }[L.cls]
    lay = _merge_layout(b, xs)
    ins = [b.get(x, lay) for x in xs]
    last = L.cls != "Average"
    acc = ins[0]
    for i, other in enumerate(ins[1:]):
        end = last and i == len(ins) - 2
        acc = b.op(op, [acc, other], L.name, hint=L.name if end else None)[0]
    if L.cls == "Average":
        n = b.const(L.name, "count", np.array(len(ins), np.float32))
        acc = b.op("Div", [acc, n], L.name, hint=L.name)[0]
    shape = max((x.shape for x in xs if x.shape is not None), key=len, default=None)
    return [b.val(acc, shape, lay)]


def concat(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    axis = int(L.cfg.get("axis", -1))
    lay = _merge_layout(b, xs)
    r = xs[0].rank
    y = b.op("Concat", [b.get(x, lay) for x in xs], L.name, {"axis": ir_axis(axis, r, lay)}, hint=L.name)[0]
    shape = None
    if r is not None and all(x.shape is not None and len(x.shape) == r for x in xs):
        a = axis % r
        dims = [x.shape[a] for x in xs]  # type: ignore[index]
        s = list(xs[0].shape)  # type: ignore[arg-type]
        s[a] = None if None in dims else sum(dims)  # type: ignore[arg-type]
        shape = tuple(s)
    return [b.val(y, shape, lay)]
