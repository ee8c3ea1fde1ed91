"""Dense, convolutions, pooling, zero-padding and cropping: the layers with kernels or spatial windows.

Convolutions and pooling work channels-first in the IR: their input is transposed from Keras order
(once per tensor, see Builder.get) unless the layer says data_format="channels_first".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompress.errors import UnsupportedError
from nncompress.io.keras._activations import activation, pre_act
from nncompress.io.keras._builder import Builder, Layer, Val
from nncompress.io.keras._variables import conv_layout, depthwise_layout, is_depthwise


def _tup(v: Any, n: int) -> list[int]:
    if isinstance(v, int | float):
        return [int(v)] * n
    v = [int(i) for i in v]
    return v * n if len(v) == 1 else v


def _spatial_out(
    n: int | None, k: int, s: int, d: int, padding: str
) -> int | None:  # Keras conv_utils.conv_output_length
    if n is None:
        return None
    if padding in ("same", "causal"):
        return -(-n // s)
    return (n - (k - 1) * d - 1) // s + 1


def _window_attrs(cfg: dict[str, Any], ks: list[int], strides: list[int], dil: list[int], path: str) -> dict:
    pad = str(cfg.get("padding", "valid")).lower()
    attrs: dict[str, Any] = {"kernel_shape": ks, "strides": strides}
    if pad == "same":
        attrs["auto_pad"] = "SAME_UPPER"  # TF/Keras "same": the odd pad goes at the end
    elif pad == "valid":
        attrs["pads"] = [0] * (2 * len(ks))
    elif pad == "causal" and len(ks) == 1:
        attrs["pads"] = [(ks[0] - 1) * dil[0], 0]
    else:
        raise UnsupportedError(f"padding {pad!r} is not supported", path=path)
    return attrs


def channels_first_data(cfg: dict[str, Any]) -> bool:
    return cfg.get("data_format") == "channels_first"


def _spatial_shape(x: Val, cfg: dict[str, Any], nd: int) -> tuple[list[int | None], int | None]:
    """Spatial dims and channels of a Keras-order shape for a layer's data_format."""
    if x.shape is None or len(x.shape) != nd + 2:
        return [None] * nd, None
    if channels_first_data(cfg):
        return list(x.shape[2:]), x.shape[1]
    return list(x.shape[1:-1]), x.shape[-1]


def _out_shape(cfg: dict[str, Any], sp: list[int | None], ch: int | None) -> tuple:
    return (None, ch, *sp) if channels_first_data(cfg) else (None, *sp, ch)


# -- converters ---------------------------------------------------------------------------------------


def dense(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x = xs[0]
    k = b.param(L, "kernel", "kernel", "Dense", [("transpose", (1, 0))])
    bias = b.param(L, "bias", "bias", "Dense")
    if not k:
        return b.opaque_op(L, xs)
    xin = b.any(x)[0] if x.rank is not None and x.rank <= 2 else b.get(x, "kl")  # Dense acts on the last axis
    units = b.weights[k].shape[0]
    y = b.op("Dense", [xin, k, bias], L.name, hint=pre_act(L))[0]
    shape = None if x.shape is None else (*x.shape[:-1], units)
    return [activation(b, L, b.val(y, shape, "kl"), L.cfg.get("activation"))]


def conv(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x, cfg = xs[0], L.cfg
    vs = b.layer_vars(L)
    if "kernel" not in vs or "Transpose" in L.cls:
        return b.opaque_op(L, xs)
    kshape = vs["kernel"].shape
    nd = len(kshape) - 2
    lay = "kl" if channels_first_data(cfg) else "cf"
    xin = b.get(x, lay)
    strides, dil = _tup(cfg.get("strides", 1), nd), _tup(cfg.get("dilation_rate", 1), nd)
    ks = list(kshape[:nd])
    attrs = _window_attrs(cfg, ks, strides, dil, b.path)
    attrs["dilations"] = dil
    sp, _ = _spatial_shape(x, cfg, nd)
    osp = [
        _spatial_out(n, k, s, d, str(cfg.get("padding", "valid")))
        for n, k, s, d in zip(sp, ks, strides, dil, strict=True)
    ]
    if is_depthwise(L.cls):
        w = b.param(L, "kernel", "kernel", "Conv", depthwise_layout(kshape))
        attrs["group"] = kshape[-2]
        ch = kshape[-2] * kshape[-1]
    else:
        w = b.param(L, "kernel", "kernel", "Conv", conv_layout(len(kshape)))
        attrs["group"] = int(cfg.get("groups", 1))
        ch = kshape[-1]
    bias = b.param(L, "bias", "bias", "Conv")
    y = b.op("Conv", [xin, w, bias], L.name, attrs, hint=pre_act(L))[0]
    return [activation(b, L, b.val(y, _out_shape(cfg, osp, ch), lay), cfg.get("activation"))]


def separable(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x, cfg = xs[0], L.cfg
    vs = b.layer_vars(L)
    dshape, pshape = vs["depthwise_kernel"].shape, vs["pointwise_kernel"].shape
    nd = len(dshape) - 2
    lay = "kl" if channels_first_data(cfg) else "cf"
    xin = b.get(x, lay)
    strides, dil = _tup(cfg.get("strides", 1), nd), _tup(cfg.get("dilation_rate", 1), nd)
    ks = list(dshape[:nd])
    attrs = _window_attrs(cfg, ks, strides, dil, b.path)
    attrs.update(dilations=dil, group=dshape[-2])
    dw = b.param(L, "depthwise_kernel", "kernel", "Conv", depthwise_layout(dshape))
    pw = b.param(L, "pointwise_kernel", "kernel", "Conv", conv_layout(len(pshape)))
    bias = b.param(L, "bias", "bias", "Conv")
    h = b.op("Conv", [xin, dw, ""], L.name, attrs, hint=f"{L.name}/depthwise")[0]
    pattrs = {
        "kernel_shape": [1] * nd,
        "strides": [1] * nd,
        "pads": [0] * (2 * nd),
        "dilations": [1] * nd,
        "group": 1,
    }
    y = b.op("Conv", [h, pw, bias], L.name, pattrs, hint=pre_act(L))[0]
    sp, _ = _spatial_shape(x, cfg, nd)
    osp = [
        _spatial_out(n, k, s, d, str(cfg.get("padding", "valid")))
        for n, k, s, d in zip(sp, ks, strides, dil, strict=True)
    ]
    return [activation(b, L, b.val(y, _out_shape(cfg, osp, pshape[-1]), lay), cfg.get("activation"))]


def pool(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x, cfg = xs[0], L.cfg
    nd = int(L.cls[-2])
    lay = "kl" if channels_first_data(cfg) else "cf"
    ks = _tup(cfg.get("pool_size", 2), nd)
    strides = _tup(cfg.get("strides") or ks, nd)
    attrs = _window_attrs(cfg, ks, strides, [1] * nd, b.path)
    op = "MaxPool" if L.cls.startswith("Max") else "AveragePool"
    if op == "AveragePool":
        attrs["count_include_pad"] = 0  # Keras averages over the valid cells only
    y = b.op(op, [b.get(x, lay)], L.name, attrs, hint=L.name)[0]
    sp, ch = _spatial_shape(x, cfg, nd)
    osp = [
        _spatial_out(n, k, s, 1, str(cfg.get("padding", "valid")))
        for n, k, s in zip(sp, ks, strides, strict=True)
    ]
    return [b.val(y, _out_shape(cfg, osp, ch), lay)]


def global_pool(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    x, cfg = xs[0], L.cfg
    nd = int(L.cls[-2])
    lay = "kl" if channels_first_data(cfg) else "cf"
    op = "GlobalMaxPool" if "Max" in L.cls else "GlobalAveragePool"
    _, ch = _spatial_shape(x, cfg, nd)
    if cfg.get("keepdims", False):
        y = b.op(op, [b.get(x, lay)], L.name, hint=L.name)[0]
        return [b.val(y, _out_shape(cfg, [1] * nd, ch), lay)]
    y = b.op(op, [b.get(x, lay)], L.name)[0]
    return [b.val(b.op("Flatten", [y], L.name, {"axis": 1}, hint=L.name)[0], (None, ch), "kl")]


def pad_crop(b: Builder, L: Layer, xs: list[Val]) -> list[Val]:
    """ZeroPadding and Cropping: a Pad over the spatial axes (negative pads crop)."""
    x, cfg = xs[0], L.cfg
    nd = int(L.cls[-2])
    crop = L.cls.startswith("Cropping")
    spec = cfg.get("cropping" if crop else "padding", 1)
    if isinstance(spec, int):
        pairs = [(spec, spec)] * nd
    elif nd == 1:
        pairs = [(int(spec[0]), int(spec[1])) if len(spec) == 2 else (int(spec[0]), int(spec[0]))]
    else:
        pairs = [(int(p), int(p)) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in spec]
    sign = -1 if crop else 1
    begins, ends = [sign * p[0] for p in pairs], [sign * p[1] for p in pairs]
    pads = b.const(L.name, "pads", np.array([0, 0, *begins, 0, 0, *ends], np.int64))
    lay = "kl" if channels_first_data(cfg) else "cf"
    y = b.op("Pad", [b.get(x, lay), pads], L.name, {"mode": "constant"}, hint=L.name)[0]
    sp, ch = _spatial_shape(x, cfg, nd)
    osp = [None if n is None else n + p + q for n, p, q in zip(sp, begins, ends, strict=True)]
    return [b.val(y, _out_shape(cfg, osp, ch), lay, x.dtype)]
