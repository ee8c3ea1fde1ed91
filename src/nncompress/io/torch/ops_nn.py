"""Mappers of the aten ops of layers: convolution, linear, batch norm, activations, softmax, pooling
and reductions. A mapper emits IR nodes or raises `NotMapped` (the op is then carried as is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nncompress.io.torch.builder import (
    UNKNOWN,
    Args,
    Builder,
    NotMapped,
    Ref,
    is_one,
    to_int,
    to_ints,
    to_num,
)

__all__ = ["NN_OPS"]


def _kernel_shape(b: Builder, w: Ref) -> tuple[int, ...] | None:
    wt = b.weights.get(w.name)
    return tuple(wt.shape[2:]) if wt is not None and len(wt.shape) >= 3 else None


def _conv(
    b: Builder,
    base: str,
    x: Ref,
    w: Ref,
    bias: Ref | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: Any,
) -> Ref:
    ks = _kernel_shape(b, w)
    if ks is not None:
        k = len(ks)
    elif isinstance(stride, (list, tuple)) and len(stride) > 1:
        k = len(stride)
    else:
        raise NotMapped("convolution of unknown rank")
    attrs: dict[str, Any] = {
        "strides": to_ints(stride, k),
        "dilations": to_ints(dilation, k),
        "group": to_int(groups),
    }
    if isinstance(padding, str):
        if padding == "valid":
            attrs["pads"] = [0] * (2 * k)
        elif padding == "same" and ks is not None:
            total = [d * (kk - 1) for d, kk in zip(attrs["dilations"], ks, strict=True)]
            attrs["pads"] = [t // 2 for t in total] + [t - t // 2 for t in total]
        elif padding == "same":
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            raise NotMapped(f"padding {padding!r}")
    else:
        pads = to_ints(padding, k)
        attrs["pads"] = pads + pads
    if ks is not None:
        attrs["kernel_shape"] = list(ks)
    if transposed:
        attrs["output_padding"] = to_ints(output_padding, k) if output_padding is not None else [0] * k
        return b.one("ConvTranspose", [x.name, w.name, bias.name if bias else ""], base, attrs=attrs)
    return b.one("Conv", [x.name, w.name, bias.name if bias else ""], base, attrs=attrs)


def _m_conv_nd(b: Builder, a: Args, base: str) -> Ref:
    return _conv(
        b, base, a.t("input", 0), a.t("weight", 1), a.opt_t("bias", 2), a.get("stride", 3, 1),
        a.get("padding", 4, 0), a.get("dilation", 5, 1), False, None, a.get("groups", 6, 1),
    )  # fmt: skip


def _m_conv_transpose_nd(b: Builder, a: Args, base: str) -> Ref:
    return _conv(
        b, base, a.t("input", 0), a.t("weight", 1), a.opt_t("bias", 2), a.get("stride", 3, 1),
        a.get("padding", 4, 0), a.get("dilation", 7, 1), True, a.get("output_padding", 5, 0),
        a.get("groups", 6, 1),
    )  # fmt: skip


def _m_convolution(b: Builder, a: Args, base: str) -> Ref:
    transposed = a.get("transposed", 6, False)
    if not isinstance(transposed, bool):
        raise NotMapped("transposed is not a constant")
    return _conv(
        b, base, a.t("input", 0), a.t("weight", 1), a.opt_t("bias", 2), a.get("stride", 3),
        a.get("padding", 4), a.get("dilation", 5), transposed, a.get("output_padding", 7),
        a.get("groups", 8, 1),
    )  # fmt: skip


def _m_linear(b: Builder, a: Args, base: str) -> Ref:
    x, w, bias = a.t("input", 0), a.t("weight", 1), a.opt_t("bias", 2)
    return b.one("Dense", [x.name, w.name, bias.name if bias else ""], base)


def _batch_norm(
    b: Builder,
    base: str,
    x: Ref,
    w: Ref | None,
    bias: Ref | None,
    mean: Any,
    var: Any,
    eps: Any,
    training: Any,
) -> Ref:
    if not isinstance(mean, Ref) or not isinstance(var, Ref):
        raise NotMapped("batch norm without running statistics")
    if training is True:
        msg = "a batch_norm in training mode is converted in its inference form (running statistics)"
        if msg not in b.notes:
            b.notes.append(msg)
    c = b.weights[mean.name].shape if mean.name in b.weights else None
    if (w is None or bias is None) and c is None:
        raise NotMapped("affine-less batch norm of unknown size")
    wn = w.name if w is not None else b.const(f"{base}.scale", np.ones(c, np.float32)).name  # type: ignore[arg-type]
    bn = bias.name if bias is not None else b.const(f"{base}.bias", np.zeros(c, np.float32)).name  # type: ignore[arg-type]
    return b.one(
        "BatchNormalization", [x.name, wn, bn, mean.name, var.name], base, attrs={"epsilon": to_num(eps)}
    )


def _m_batch_norm(b: Builder, a: Args, base: str) -> Ref:
    return _batch_norm(
        b, base, a.t("input", 0), a.opt_t("weight", 1), a.opt_t("bias", 2), a.get("running_mean", 3),
        a.get("running_var", 4), a.get("eps", 7, 1e-5), a.get("training", 5, False),
    )  # fmt: skip


def _m_bn_no_training(b: Builder, a: Args, base: str) -> tuple[Any, ...]:
    y = _batch_norm(
        b, base, a.t("input", 0), a.opt_t("weight", 1), a.opt_t("bias", 2), a.get("running_mean", 3),
        a.get("running_var", 4), a.get("eps", 6, 1e-5), False,
    )  # fmt: skip
    return (y, UNKNOWN, UNKNOWN)


def _m_native_bn(b: Builder, a: Args, base: str) -> tuple[Any, ...]:
    y = _batch_norm(
        b, base, a.t("input", 0), a.opt_t("weight", 1), a.opt_t("bias", 2), a.get("running_mean", 3),
        a.get("running_var", 4), a.get("eps", 7, 1e-5), a.get("training", 5, False),
    )  # fmt: skip
    return (y, UNKNOWN, UNKNOWN)


def _unary(op: str, **attrs: Any) -> Callable[[Builder, Args, str], Ref]:
    def fn(b: Builder, a: Args, base: str) -> Ref:
        return b.one(op, [a.t("self", 0).name], base, attrs=dict(attrs))

    return fn


def _m_leaky_relu(b: Builder, a: Args, base: str) -> Ref:
    return b.one(
        "LeakyRelu", [a.t("self", 0).name], base, attrs={"alpha": to_num(a.get("negative_slope", 1, 0.01))}
    )


def _clip(b: Builder, base: str, x: Ref, lo: Any, hi: Any) -> Ref:
    ins = [x.name]
    for v, tag in ((lo, "min"), (hi, "max")):
        if v is None:
            ins.append("")
        elif isinstance(v, Ref):
            ins.append(v.name)
        else:
            ins.append(b.const(f"{base}.{tag}", np.asarray(to_num(v), np.float32)).name)
    return b.one("Clip", ins, base)


def _m_hardtanh(b: Builder, a: Args, base: str) -> Ref:
    return _clip(b, base, a.t("self", 0), a.get("min_val", 1, -1.0), a.get("max_val", 2, 1.0))


def _m_relu6(b: Builder, a: Args, base: str) -> Ref:
    return _clip(b, base, a.t("self", 0), 0.0, 6.0)


def _m_clamp(b: Builder, a: Args, base: str) -> Ref:
    return _clip(b, base, a.t("self", 0), a.get("min", 1), a.get("max", 2))


def _m_clamp_min(b: Builder, a: Args, base: str) -> Ref:
    return _clip(b, base, a.t("self", 0), a.get("min", 1), None)


def _m_clamp_max(b: Builder, a: Args, base: str) -> Ref:
    return _clip(b, base, a.t("self", 0), None, a.get("max", 1))


def _m_gelu(b: Builder, a: Args, base: str) -> Ref:
    approx = a.get("approximate", 1, "none")
    if approx not in ("none", "tanh"):
        raise NotMapped("gelu approximation")
    return b.one("Gelu", [a.t("self", 0).name], base, attrs={"approximate": approx})


def _m_silu(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    s = b.one("Sigmoid", [x.name], f"{base}.sigmoid")
    return b.one("Mul", [x.name, s.name], base)


def _m_mish(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    sp = b.one("Softplus", [x.name], f"{base}.softplus")
    th = b.one("Tanh", [sp.name], f"{base}.tanh")
    return b.one("Mul", [x.name, th.name], base)


def _m_elu(b: Builder, a: Args, base: str) -> Ref:
    if not (is_one(a.get("scale", 2, 1)) and is_one(a.get("input_scale", 3, 1))):
        raise NotMapped("scaled elu")
    return b.one("Elu", [a.t("self", 0).name], base, attrs={"alpha": to_num(a.get("alpha", 1, 1.0))})


def _m_softplus(b: Builder, a: Args, base: str) -> Ref:
    if not is_one(a.get("beta", 1, 1)):
        raise NotMapped("softplus beta")
    return b.one("Softplus", [a.t("self", 0).name], base)


def _m_prelu(b: Builder, a: Args, base: str) -> Ref:
    x, w = a.t("self", 0), a.t("weight", 1)
    wt = b.weights.get(w.name)
    if wt is None:
        raise NotMapped("prelu slope is not a weight")
    if wt.role in ("other", "kernel", "bn_gamma"):
        wt.role, wt.op = "alpha", "PRelu"
    slope = w.name
    r = b.rank.get(x.name)
    if wt.size > 1:
        if r is None:
            raise NotMapped("prelu on a tensor of unknown rank")
        if r > 2:  # torch's slope is per channel (axis 1); ONNX broadcasts from the last axis
            shape = b.const(f"{base}.slope_shape", np.asarray([-1] + [1] * (r - 2), np.int64))
            slope = b.one("Reshape", [w.name, shape.name], f"{base}.slope").name
    return b.one("PRelu", [x.name, slope], base)


def _m_softmax(op: str) -> Callable[[Builder, Args, str], Ref]:
    def fn(b: Builder, a: Args, base: str) -> Ref:
        dtype = a.get("dtype", 2)
        if a.has("dtype") and dtype is not None:
            raise NotMapped("softmax with a dtype")
        return b.one(op, [a.t("self", 0).name], base, attrs={"axis": to_int(a.get("dim", 1))})

    return fn


def _pool(kernel: Any, stride: Any, padding: Any, dilation: Any, ceil: Any) -> dict[str, Any]:
    ks = to_ints(kernel)
    k = len(ks)
    st = to_ints(stride, k) if stride not in (None, [], ()) else list(ks)
    pads = to_ints(padding, k)
    attrs: dict[str, Any] = {
        "kernel_shape": ks,
        "strides": st,
        "pads": pads + pads,
        "ceil_mode": int(bool(ceil)),
    }
    if dilation is not None:
        attrs["dilations"] = to_ints(dilation, k)
    return attrs


def _m_max_pool(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    attrs = _pool(
        a.get("kernel_size", 1),
        a.get("stride", 2),
        a.get("padding", 3, 0),
        a.get("dilation", 4, 1),
        a.get("ceil_mode", 5, False),
    )
    return b.one("MaxPool", [x.name], base, attrs=attrs)


def _m_max_pool_with_indices(b: Builder, a: Args, base: str) -> tuple[Any, ...]:
    return (_m_max_pool(b, a, base), UNKNOWN)


def _m_avg_pool(b: Builder, a: Args, base: str) -> Ref:
    x = a.t("self", 0)
    if a.get("divisor_override", 6) is not None:
        raise NotMapped("divisor_override")
    attrs = _pool(
        a.get("kernel_size", 1),
        a.get("stride", 2),
        a.get("padding", 3, 0),
        None,
        a.get("ceil_mode", 4, False),
    )
    attrs["count_include_pad"] = int(bool(a.get("count_include_pad", 5, True)))
    return b.one("AveragePool", [x.name], base, attrs=attrs)


def _m_adaptive(op: str, with_indices: bool = False) -> Callable[[Builder, Args, str], Any]:
    def fn(b: Builder, a: Args, base: str) -> Any:
        size = a.get("output_size", 1)
        if not all(v == 1 for v in to_ints(size)):
            raise NotMapped("adaptive pool to a size other than 1")
        y = b.one(op, [a.t("self", 0).name], base)
        return (y, UNKNOWN) if with_indices else y

    return fn


def _m_reduce(op: str) -> Callable[[Builder, Args, str], Ref]:
    def fn(b: Builder, a: Args, base: str) -> Ref:
        if a.get("dtype", 3) is not None and a.has("dtype"):
            raise NotMapped("reduction with a dtype")
        dims = a.get("dim", 1)
        attrs: dict[str, Any] = {"keepdims": int(bool(a.get("keepdim", 2, False)))}
        if a.has("dim") and dims not in (None, [], ()):
            attrs["axes"] = to_ints(dims)
        return b.one(op, [a.t("self", 0).name], base, attrs=attrs)

    return fn


NN_OPS: dict[str, Callable[[Builder, Args, str], Any]] = {
    "linear": _m_linear,
    "conv1d": _m_conv_nd,
    "conv2d": _m_conv_nd,
    "conv3d": _m_conv_nd,
    "conv_transpose1d": _m_conv_transpose_nd,
    "conv_transpose2d": _m_conv_transpose_nd,
    "conv_transpose3d": _m_conv_transpose_nd,
    "_convolution": _m_convolution,
    "_convolution_mode": _m_conv_nd,
    "convolution": _m_convolution,
    "batch_norm": _m_batch_norm,
    "_native_batch_norm_legit_no_training": _m_bn_no_training,
    "_native_batch_norm_legit": _m_native_bn,
    "native_batch_norm": _m_native_bn,
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "exp": _unary("Exp"),
    "log": _unary("Log"),
    "sqrt": _unary("Sqrt"),
    "abs": _unary("Abs"),
    "neg": _unary("Neg"),
    "erf": _unary("Erf"),
    "reciprocal": _unary("Reciprocal"),
    "hardswish": _unary("HardSwish"),
    "hardsigmoid": _unary("HardSigmoid", alpha=1 / 6, beta=0.5),
    "selu": _unary("Selu"),
    "leaky_relu": _m_leaky_relu,
    "hardtanh": _m_hardtanh,
    "relu6": _m_relu6,
    "clamp": _m_clamp,
    "clip": _m_clamp,
    "clamp_min": _m_clamp_min,
    "clamp_max": _m_clamp_max,
    "gelu": _m_gelu,
    "silu": _m_silu,
    "mish": _m_mish,
    "elu": _m_elu,
    "softplus": _m_softplus,
    "prelu": _m_prelu,
    "_prelu_kernel": _m_prelu,
    "softmax": _m_softmax("Softmax"),
    "_softmax": _m_softmax("Softmax"),
    "log_softmax": _m_softmax("LogSoftmax"),
    "_log_softmax": _m_softmax("LogSoftmax"),
    "max_pool1d": _m_max_pool,
    "max_pool2d": _m_max_pool,
    "max_pool2d_with_indices": _m_max_pool_with_indices,
    "avg_pool1d": _m_avg_pool,
    "avg_pool2d": _m_avg_pool,
    "adaptive_avg_pool1d": _m_adaptive("GlobalAveragePool"),
    "adaptive_avg_pool2d": _m_adaptive("GlobalAveragePool"),
    "_adaptive_avg_pool2d": _m_adaptive("GlobalAveragePool"),
    "adaptive_max_pool1d": _m_adaptive("GlobalMaxPool", with_indices=True),
    "adaptive_max_pool2d": _m_adaptive("GlobalMaxPool", with_indices=True),
    "mean": _m_reduce("ReduceMean"),
    "sum": _m_reduce("ReduceSum"),
    "amax": _m_reduce("ReduceMax"),
}
