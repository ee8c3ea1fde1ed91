"""Which converter turns each Keras layer class into IR nodes, and the converters of no family
(BatchNormalization, Embedding, Rescaling, TimeDistributed). A class not listed becomes an opaque op."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from nncompress.io.keras import _activations as act
from nncompress.io.keras import _conv as conv
from nncompress.io.keras import _reshape as reshape
from nncompress.io.keras._builder import Builder, Layer, Val

Converter = Callable[[Builder, Layer, list[Val]], list[Val]]

_DROPOUTS = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
)
_INT64 = 7  # onnx.TensorProto.INT64, for Cast


def _batchnorm(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x, cfg = xs[0], L.cfg
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    r = x.rank
    if not isinstance(axis, int) or r is None:
        return b.opaque_op(L, xs)
    a = axis % r
    if r <= 2 and a == r - 1:
        lay = "kl"
    elif a == r - 1:
        lay = "cf"
    elif a == 1:
        lay = "kl"  # channels-first data: Keras order is the IR's
    else:
        return b.opaque_op(L, xs)
    vs = b.layer_vars(L)
    if "moving_mean" not in vs or "moving_variance" not in vs:
        return b.opaque_op(L, xs)
    c = vs["moving_mean"].shape
    gamma = b.param(L, "gamma", "bn_gamma", "BatchNormalization") or b.const(
        L.name, "gamma", np.ones(c, np.float32)
    )
    beta = b.param(L, "beta", "bn_beta", "BatchNormalization") or b.const(
        L.name, "beta", np.zeros(c, np.float32)
    )
    mean = b.param(L, "moving_mean", "bn_mean", "BatchNormalization")
    var = b.param(L, "moving_variance", "bn_var", "BatchNormalization")
    eps = float(cfg.get("epsilon", 1e-3))
    y = b.op(
        "BatchNormalization", [b.get(x, lay), gamma, beta, mean, var], L.name, {"epsilon": eps}, hint=L.name
    )[0]
    return [b.val(y, x.shape, lay, x.dtype)]


def _embedding(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x = xs[0]
    table = b.param(L, "embeddings", "embedding", "Embedding")
    ids = b.get(x, "kl")
    if not np.issubdtype(np.dtype(x.dtype), np.integer):  # Keras casts float ids itself
        ids = b.op("Cast", [ids], L.name, {"to": _INT64}, hint=f"{L.name}/ids")[0]
    dim = b.weights[table].shape[1]
    y = b.op("Gather", [table, ids], L.name, {"axis": 0}, hint=L.name)[0]
    return [b.val(y, None if x.shape is None else (*x.shape, dim), "kl")]


def _time_distributed(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    inner = L.cfg.get("layer", {})
    cls = inner.get("class_name", "")
    if cls in ("Dense", "Activation", *_DROPOUTS):
        # These act on the last axis or elementwise: applying them to the whole tensor is the same.
        return CONVERTERS[cls](b, replace(L, cls=cls, cfg=inner.get("config", {})), xs)
    return b.opaque_op(L, xs)


def _rescaling(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x = xs[0]
    scale, offset = (
        np.asarray(L.cfg.get("scale", 1.0), np.float32),
        np.asarray(L.cfg.get("offset", 0.0), np.float32),
    )
    if scale.ndim or offset.ndim:
        return b.opaque_op(L, xs)
    xin, lay = b.any(x)
    y = b.op("Mul", [xin, b.const(L.name, "scale", scale)], L.name)[0]
    y = b.op("Add", [y, b.const(L.name, "offset", offset)], L.name, hint=L.name)[0]
    return [b.val(y, x.shape, lay)]


CONVERTERS: dict[str, Converter] = {
    "Dense": conv.dense,
    "Activation": act.activation_layer,
    "ReLU": act.relu_layer,
    "LeakyReLU": act.leaky_relu,
    "ELU": act.elu,
    "PReLU": act.prelu,
    "Softmax": act.softmax,
    "BatchNormalization": _batchnorm,
    "Flatten": reshape.flatten,
    "Reshape": reshape.reshape,
    "Permute": reshape.permute,
    "Add": reshape.merge,
    "Subtract": reshape.merge,
    "Multiply": reshape.merge,
    "Average": reshape.merge,
    "Maximum": reshape.merge,
    "Minimum": reshape.merge,
    "Concatenate": reshape.concat,
    "Embedding": _embedding,
    "TimeDistributed": _time_distributed,
    "Rescaling": _rescaling,
    **{c: act.identity for c in _DROPOUTS},
    **{f"{k}{n}D": conv.pad_crop for k in ("ZeroPadding", "Cropping") for n in (1, 2)},
    **{f"{p}Conv{n}D": conv.conv for p in ("", "Depthwise") for n in (1, 2)},
    **{f"SeparableConv{n}D": conv.separable for n in (1, 2)},
    **{f"{k}Pooling{n}D": conv.pool for k in ("Max", "Average") for n in (1, 2)},
    **{f"Global{k}Pooling{n}D": conv.global_pool for k in ("Max", "Average") for n in (1, 2)},
}
