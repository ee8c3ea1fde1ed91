"""Which of a layer's variables is which, and the layout a kernel takes in the IR.

A file records a variable's name (legacy layout) or only its position (.keras layout); the layer's
class and config say which variables it has and in which order.
"""

from __future__ import annotations

import re
from typing import Any

from nncompress.errors import InputError, UnsupportedError
from nncompress.io.keras._store import Var
from nncompress.ir.graph import LayoutOp


def conv_layout(ndim: int) -> list[LayoutOp]:
    """Keras (*k, in, out) -> IR (out, in, *k); also Keras ConvTranspose (*k, out, in) -> IR (in, out, *k)."""
    return [("transpose", (ndim - 1, ndim - 2, *range(ndim - 2)))]


def depthwise_layout(shape: tuple[int, ...]) -> list[LayoutOp]:
    """Keras depthwise (*k, in, mult) -> IR (in*mult, 1, *k); output channel c*mult+m as in Keras."""
    r = len(shape)
    return [
        ("transpose", (r - 2, r - 1, *range(r - 2))),
        ("reshape", (shape[-2] * shape[-1], 1, *shape[:-2])),
    ]


def is_depthwise(cls: str) -> bool:
    return cls.startswith("DepthwiseConv")


def slots(cls: str, cfg: dict[str, Any]) -> list[str] | None:
    """A layer's variables in Keras's order (None: a layer we do not know)."""
    bias = ["bias"] if cfg.get("use_bias", True) else []
    if cls == "Dense" or re.fullmatch(r"(Depthwise)?Conv[123]D(Transpose)?", cls):
        return ["kernel", *bias]
    if re.fullmatch(r"SeparableConv[12]D", cls):
        return ["depthwise_kernel", "pointwise_kernel", *bias]
    if cls in ("BatchNormalization", "LayerNormalization"):
        sc = ["gamma"] if cfg.get("scale", True) else []
        ce = ["beta"] if cfg.get("center", True) else []
        return sc + ce + (["moving_mean", "moving_variance"] if cls == "BatchNormalization" else [])
    if cls == "Embedding":
        return ["embeddings"]
    if cls == "PReLU":
        return ["alpha"]
    if cls == "TimeDistributed" and isinstance(cfg.get("layer"), dict):
        inner = cfg["layer"]
        return slots(inner.get("class_name", ""), inner.get("config", {}))
    return None


def name_vars(cls: str, cfg: dict[str, Any], vs: list[Var], where: str, path: str) -> dict[str, Var]:
    """Map a layer's variables to slot names: by recorded name where possible, else by position."""
    want = slots(cls, cfg)
    inner = cfg.get("layer", {}).get("class_name", "") if cls == "TimeDistributed" else cls
    if want is not None and vs and all(v.name for v in vs):
        alias = {"depthwise_kernel": "kernel"} if is_depthwise(inner) else {}
        got = {alias.get(str(v.name), str(v.name)): v for v in vs}
        if sorted(got) == sorted(want):
            return got
    if want is None:
        return {(v.name or str(i)): v for i, v in enumerate(vs)}
    if len(vs) == len(want):
        return dict(zip(want, vs, strict=True))
    if not vs and want:
        raise InputError(
            f"the weights of layer {where!r} ({cls}) are missing from the file",
            path=path,
            hint="The file is incomplete; re-save it with model.save()",
        )
    raise UnsupportedError(
        f"layer {where!r} ({cls}) has {len(vs)} weights in the file, expected {len(want)} ({', '.join(want)})",
        path=path,
        hint="Re-save the model with the Keras version that trained it",
    )
