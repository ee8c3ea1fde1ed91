"""Normalisation: BatchNormalization (inference form) and Softmax / LogSoftmax."""

from __future__ import annotations

import functools
import math

import numpy as np

from nncompress.ir.ops._common import Arr, Attrs, Ins, OpFn


def _batch_norm(ins: Ins, a: Attrs) -> Arr:
    x, scale, bias, mean, var = ins[:5]
    shape = (1, -1, *[1] * (x.ndim - 2))
    k = (scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))).astype(x.dtype, copy=False)
    return (x - mean.reshape(shape)) * k.reshape(shape) + bias.reshape(shape).astype(x.dtype, copy=False)


def _softmax(ins: Ins, a: Attrs, log: bool = False) -> Arr:
    x = ins[0]
    if a.get("coerce_2d", 0):  # opset < 13: flatten to 2-D at axis, normalise over the whole tail
        axis = int(a.get("axis", 1)) % max(x.ndim, 1)
        flat = x.reshape(math.prod(x.shape[:axis]), -1)
        return _softmax([flat], {"axis": 1}, log).reshape(x.shape)
    axis = int(a.get("axis", -1))
    z = x - x.max(axis=axis, keepdims=True)
    if log:
        return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


OPS: dict[str, OpFn] = {
    "BatchNormalization": _batch_norm,
    "Softmax": _softmax,
    "LogSoftmax": functools.partial(_softmax, log=True),
}
