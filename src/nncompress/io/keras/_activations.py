"""Activations: the ``activation`` argument of Dense, Conv... and the activation layers (Activation,
ReLU, LeakyReLU, ELU, PReLU, Softmax), plus Identity for layers that do nothing at inference."""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompress.io.keras._builder import Builder, Layer, Val, ir_axis


def act_name(act: Any) -> str | None:
    """A Keras activation's name, None for linear."""
    if isinstance(act, dict):  # Keras 3 may serialise a built-in activation as a dict
        act = act.get("config") if isinstance(act.get("config"), str) else act.get("class_name")
    return None if act in (None, "linear") else str(act)


def pre_act(L: Layer) -> str:
    """The name of a layer's output before its activation (the layer's own name when it has none)."""
    return L.name if act_name(L.cfg.get("activation")) is None else f"{L.name}/pre_act"


def clip(
    b: Builder, layer: str, xin: str, lo: float | None, hi: float | None, hint: str | None = None
) -> str:
    ins = [xin]
    ins.append("" if lo is None else b.const(layer, "clip_min", np.array(lo, np.float32)))
    ins.append("" if hi is None else b.const(layer, "clip_max", np.array(hi, np.float32)))
    return b.op("Clip", ins, layer, hint=hint)[0]


def activation(b: Builder, L: Layer, x: Val, act: Any) -> Val:
    """Apply Keras activation ``act`` to x; its last op's output is named after the layer."""
    name = act_name(act)
    if name is None:
        return x
    xin, lay = b.any(x)
    layer = hint = L.name

    def out(y: str) -> Val:
        return b.val(y, x.shape, lay, x.dtype)

    simple: dict[str, tuple[str, dict[str, Any]]] = {
        "relu": ("Relu", {}),
        "sigmoid": ("Sigmoid", {}),
        "tanh": ("Tanh", {}),
        "softplus": ("Softplus", {}),
        "softsign": ("Softsign", {}),
        "exponential": ("Exp", {}),
        "elu": ("Elu", {"alpha": 1.0}),
        "selu": ("Selu", {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805}),
        "gelu": ("Gelu", {"approximate": "none"}),
        "leaky_relu": ("LeakyRelu", {"alpha": 0.2}),
        "hard_silu": ("HardSwish", {}),
        "hard_swish": ("HardSwish", {}),
        # Keras 3 defines hard_sigmoid as relu6(x + 3) / 6; Keras 2 as clip(0.2 x + 0.5, 0, 1).
        "hard_sigmoid": ("HardSigmoid", {"alpha": 1 / 6 if b.major >= 3 else 0.2, "beta": 0.5}),
    }
    if name in simple:
        op, attrs = simple[name]
        return out(b.op(op, [xin], layer, attrs, hint=hint)[0])
    if name in ("softmax", "log_softmax"):
        axis = ir_axis(-1, x.rank, lay)
        op = "Softmax" if name == "softmax" else "LogSoftmax"
        return out(b.op(op, [xin], layer, {"axis": axis}, hint=hint)[0])
    if name == "relu6":
        return out(clip(b, layer, xin, 0.0, 6.0, hint))
    if name in ("swish", "silu"):
        s = b.op("Sigmoid", [xin], layer)[0]
        return out(b.op("Mul", [xin, s], layer, hint=hint)[0])
    if name == "mish":
        sp = b.op("Softplus", [xin], layer)[0]
        t = b.op("Tanh", [sp], layer)[0]
        return out(b.op("Mul", [xin, t], layer, hint=hint)[0])
    ins = [b.get(x, "kl")]
    y = b.op("Activation", ins, layer, {"activation": name}, hint=hint, domain="keras")[0]
    b.opaque.append(f"{layer} (activation {name})")
    return b.val(y, x.shape, "kl", x.dtype)


# -- converters ---------------------------------------------------------------------------------------


def activation_layer(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    y = activation(b, L, xs[0], L.cfg.get("activation"))
    if y is xs[0]:  # linear: keep the layer visible
        return identity(b, L, xs)
    return [y]


def identity(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    xin, lay = b.any(xs[0])
    return [b.val(b.op("Identity", [xin], L.name, hint=L.name)[0], xs[0].shape, lay, xs[0].dtype)]


def _unary(op: str, attrs: dict[str, Any], b: Builder, L: Layer, x: Val) -> Val:
    xin, lay = b.any(x)
    return b.val(b.op(op, [xin], L.name, attrs, hint=L.name)[0], x.shape, lay, x.dtype)


def relu_layer(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    cfg, x = L.cfg, xs[0]
    mx = None if cfg.get("max_value") is None else float(cfg["max_value"])
    slope = float(cfg.get("negative_slope") or 0.0)
    if float(cfg.get("threshold") or 0.0) != 0.0:
        return b.opaque_op(L, xs)
    if slope == 0.0 and mx is None:
        return [_unary("Relu", {}, b, L, x)]
    if slope == 0.0:
        xin, lay = b.any(x)
        return [b.val(clip(b, L.name, xin, 0.0, mx, L.name), x.shape, lay)]
    y = _unary("LeakyRelu", {"alpha": slope}, b, L, x)
    if mx is None:
        return [y]
    xin, lay = b.any(y)
    return [b.val(clip(b, L.name, xin, None, mx, f"{L.name}/max"), x.shape, lay)]


def leaky_relu(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    alpha = L.cfg.get("negative_slope", L.cfg.get("alpha", 0.3))
    return [_unary("LeakyRelu", {"alpha": float(alpha)}, b, L, xs[0])]


def elu(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    return [_unary("Elu", {"alpha": float(L.cfg.get("alpha", 1.0))}, b, L, xs[0])]


def softmax(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    axis = L.cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if not isinstance(axis, int):
        return b.opaque_op(L, xs)
    xin, lay = b.any(xs[0])
    y = b.op("Softmax", [xin], L.name, {"axis": ir_axis(axis, xs[0].rank, lay)}, hint=L.name)[0]
    return [b.val(y, xs[0].shape, lay)]


def prelu(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x = xs[0]
    var = b.layer_vars(L).get("alpha")
    if var is None:
        return b.opaque_op(L, xs)
    ashape = var.shape
    r = x.rank if x.rank is not None else len(ashape) + 1
    if r > 2 and len(ashape) == r - 1 and all(d == 1 for d in ashape[:-1]):
        # One slope per channel: reshape it to (C, 1, ...) and stay channels-first.
        lay, layout = "cf", [("reshape", (ashape[-1], *([1] * (r - 2))))]
    else:
        lay, layout = ("kl" if r > 2 else "cf"), []
    slope = b.param(L, "alpha", "alpha", "PRelu", layout)
    y = b.op("PRelu", [b.get(x, lay) if r > 2 else b.any(x)[0], slope], L.name, hint=L.name)[0]
    return [b.val(y, x.shape, lay)]
