"""Shape and data movement: Reshape, Flatten, (Un)Squeeze, Transpose, Concat, Gather, Shape, Cast,
Constant, Expand, Tile, Slice, Pad and Split."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from nncompress.errors import UnsupportedError
from nncompress.ir.ops._common import Arr, Attrs, Ins, OpFn, arg


def _reshape(ins: Ins, a: Attrs) -> Arr:
    x, shape = ins[0], arg(ins, 1, a, "shape") or []
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x.reshape(shape)


def _flatten(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    axis = int(a.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _squeeze(ins: Ins, a: Attrs) -> Arr:
    axes = arg(ins, 1, a, "axes")
    return np.squeeze(ins[0], axis=None if axes is None else tuple(axes))


def _unsqueeze(ins: Ins, a: Attrs) -> Arr:
    x, axes = ins[0], arg(ins, 1, a, "axes") or []
    rank = x.ndim + len(axes)
    return np.expand_dims(x, tuple(sorted(ax % rank for ax in axes)))


def _transpose(ins: Ins, a: Attrs) -> Arr:
    perm = a.get("perm")
    return np.transpose(ins[0], None if perm is None else [int(p) for p in perm])


def _gather(ins: Ins, a: Attrs) -> Arr:
    return np.take(ins[0], ins[1].astype(np.int64, copy=False), axis=int(a.get("axis", 0)))


def _shape(ins: Ins, a: Attrs) -> Arr:
    start, end = int(a.get("start", 0)), a.get("end")
    return np.array(ins[0].shape[start : None if end is None else int(end)], np.int64)


# ONNX TensorProto.DataType values -> numpy (bfloat16 and the float8 types have no numpy dtype)
_ONNX_DTYPES: dict[int, type] = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
    9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
}  # fmt: skip


def _cast(ins: Ins, a: Attrs) -> Arr:
    to = int(a["to"])
    if to not in _ONNX_DTYPES:
        raise UnsupportedError(f"Cast to ONNX data type {to} is not supported by the reference executor")
    return ins[0].astype(_ONNX_DTYPES[to])


def _constant(ins: Ins, a: Attrs) -> Arr:
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32)):
        if key in a:
            return np.asarray(a[key], dtype)
    for key in ("value_int", "value_ints"):
        if key in a:
            return np.asarray(a[key], np.int64)
    raise ValueError("Constant without a value attribute")


def _slice(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    starts, ends = arg(ins, 1, a, "starts") or [], arg(ins, 2, a, "ends") or []
    axes = arg(ins, 3, a, "axes") or list(range(len(starts)))
    steps = arg(ins, 4, a, "steps") or [1] * len(starts)
    idx = [slice(None)] * x.ndim
    # Python's slice clamping matches ONNX's for every sign of start, end and step
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        idx[ax % x.ndim] = slice(st, en, sp)
    return x[tuple(idx)]


_PAD_MODES: dict[str, Literal["edge", "reflect", "wrap"]] = {
    "edge": "edge",
    "reflect": "reflect",
    "wrap": "wrap",
}


def _pad_op(ins: Ins, a: Attrs) -> Arr:
    x, pads = ins[0], arg(ins, 1, a, "pads") or []
    mode = a.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    value = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("value", 0)
    axes = arg(ins, 3, a, "axes") or list(range(x.ndim))
    k = len(axes)
    begin, end = [0] * x.ndim, [0] * x.ndim
    for i, ax in enumerate(axes):
        begin[ax % x.ndim], end[ax % x.ndim] = pads[i], pads[i + k]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end, strict=True)]
    if mode == "constant":
        y = np.pad(x, widths, constant_values=np.asarray(value, x.dtype).item())
    elif mode in _PAD_MODES:
        y = np.pad(x, widths, mode=_PAD_MODES[mode])
    else:
        raise ValueError(f"unknown Pad mode {mode!r}")
    crop = tuple(
        slice(-min(b, 0), y.shape[i] + min(e, 0)) for i, (b, e) in enumerate(zip(begin, end, strict=True))
    )
    return y[crop]  # negative pads crop


def _split(ins: Ins, a: Attrs) -> tuple[Arr, ...]:
    x, axis = ins[0], int(a.get("axis", 0))
    sizes = arg(ins, 1, a, "split")
    if not sizes:
        n = int(a["num_outputs"])
        chunk = -(-x.shape[axis] // n)
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(n)]
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


OPS: dict[str, OpFn] = {
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": lambda ins, a: np.concatenate([i for i in ins if i is not None], axis=int(a.get("axis", 0))),
    "Gather": _gather,
    "Shape": _shape,
    "Cast": _cast,
    "Constant": _constant,
    "Expand": lambda ins, a: np.broadcast_to(
        ins[0], np.broadcast_shapes(ins[0].shape, tuple(int(v) for v in ins[1]))
    ).copy(),
    "Tile": lambda ins, a: np.tile(ins[0], [int(v) for v in ins[1]]),
    "Slice": _slice,
    "Pad": _pad_op,
    "Split": _split,
}
