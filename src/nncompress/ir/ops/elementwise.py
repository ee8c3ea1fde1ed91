"""Element-wise ops: unary math and activations, broadcasting binary arithmetic, comparisons and
logic, the variadic Min/Max/Sum/Mean, Where, and Dropout's inference identity."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from nncompress.ir.ops._common import Arr, Attrs, Ins, OpFn


def _unary(fn: Callable[[Arr], Arr]) -> OpFn:
    return lambda ins, a: fn(ins[0])


def _sigmoid(x: Arr) -> Arr:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _erf(x: Arr) -> Arr:
    from scipy.special import erf  # lazy: keeps `import nncompress` fast

    return erf(x).astype(x.dtype, copy=False)


def _gelu(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    if a.get("approximate", "none") in ("tanh", b"tanh"):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _elu(ins: Ins, a: Attrs) -> Arr:
    x, alpha = ins[0], float(a.get("alpha", 1.0))
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, alpha * (np.exp(x) - 1)).astype(x.dtype, copy=False)


def _selu(ins: Ins, a: Attrs) -> Arr:
    alpha = float(a.get("alpha", 1.67326319217681884765625))
    gamma = float(a.get("gamma", 1.05070102214813232421875))
    return (gamma * _elu(ins, {"alpha": alpha})).astype(ins[0].dtype, copy=False)


def _clip(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, x.dtype))
    return x


def _hard_sigmoid(ins: Ins, a: Attrs) -> Arr:
    x = ins[0]
    return np.clip(float(a.get("alpha", 0.2)) * x + float(a.get("beta", 0.5)), 0, 1).astype(
        x.dtype, copy=False
    )


def _dropout(ins: Ins, a: Attrs) -> tuple[Arr, ...]:
    return ins[0], np.ones(ins[0].shape, np.bool_)


def _div(ins: Ins, a: Attrs) -> Arr:
    x, y = ins[0], ins[1]
    if np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer):
        q = np.floor_divide(x, y)
        return q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0)))  # C truncation, as ONNX
    return x / y


def _binary(fn: Callable[[Arr, Arr], Arr]) -> OpFn:
    return lambda ins, a: fn(ins[0], ins[1])


def _variadic(fn: Callable[[Arr, Arr], Arr]) -> OpFn:
    return lambda ins, a: functools.reduce(fn, [i for i in ins if i is not None])


OPS: dict[str, OpFn] = {
    "Relu": _unary(lambda x: np.maximum(x, 0)),
    "Sigmoid": _unary(_sigmoid),
    "Tanh": _unary(np.tanh),
    "Exp": _unary(np.exp),
    "Log": _unary(np.log),
    "Sqrt": _unary(np.sqrt),
    "Abs": _unary(np.abs),
    "Neg": _unary(np.negative),
    "Reciprocal": _unary(np.reciprocal),
    "Floor": _unary(np.floor),
    "Ceil": _unary(np.ceil),
    "Not": _unary(np.logical_not),
    "Erf": _unary(_erf),
    "Softplus": _unary(lambda x: np.logaddexp(x, 0).astype(x.dtype, copy=False)),
    "Softsign": _unary(lambda x: x / (1 + np.abs(x))),
    "Identity": _unary(lambda x: x),
    "Dropout": _dropout,
    "LeakyRelu": lambda ins, a: np.where(ins[0] >= 0, ins[0], float(a.get("alpha", 0.01)) * ins[0]),
    "PRelu": lambda ins, a: np.where(ins[0] >= 0, ins[0], ins[1].astype(ins[0].dtype, copy=False) * ins[0]),
    "Elu": _elu,
    "Selu": _selu,
    "Gelu": _gelu,
    "Clip": _clip,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": lambda ins, a: ins[0] * np.clip(ins[0] / 6 + 0.5, 0, 1),
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _div,
    "Pow": lambda ins, a: np.power(ins[0], ins[1]).astype(ins[0].dtype, copy=False),
    "Min": _variadic(np.minimum),
    "Max": _variadic(np.maximum),
    "Sum": _variadic(np.add),
    "Mean": lambda ins, a: np.mean(np.broadcast_arrays(*[i for i in ins if i is not None]), axis=0),
    "Where": lambda ins, a: np.where(ins[0].astype(bool), ins[1], ins[2]),
    "Equal": _binary(np.equal),
    "Less": _binary(np.less),
    "LessOrEqual": _binary(np.less_equal),
    "Greater": _binary(np.greater),
    "GreaterOrEqual": _binary(np.greater_equal),
    "And": _binary(np.logical_and),
    "Or": _binary(np.logical_or),
}
