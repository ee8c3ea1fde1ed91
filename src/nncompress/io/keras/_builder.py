"""The graph under construction: IR values and nodes with fresh names, weights, and layout changes.

Keras is channels-last and the IR channels-first (see ir/graph.py). For each Keras tensor the builder
tracks the IR values that already hold it in Keras order ("kl") and channels-first ("cf"); ``get``
inserts a Transpose only where a converter asks for the layout it does not have yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompress.errors import InputError, UnsupportedError
from nncompress.io.keras._store import Var
from nncompress.io.keras._variables import name_vars
from nncompress.ir import Node, ValueInfo, Weight
from nncompress.ir.graph import LayoutOp
from nncompress.ir.names import Names

_ROLE_OF_VAR = {
    "kernel": "kernel",
    "recurrent_kernel": "recurrent",
    "bias": "bias",
    "embeddings": "embedding",
    "alpha": "alpha",
}
_RECURRENT = ("LSTM", "GRU", "SimpleRNN")
_RECURRENT_SLOTS = {"0": "kernel", "1": "recurrent_kernel", "2": "bias"}


def to_cf(r: int) -> list[int]:
    return [0, r - 1, *range(1, r - 1)]


def to_kl(r: int) -> list[int]:
    return [0, *range(2, r), 1]


def ir_axis(axis: int, rank: int | None, layout: str) -> int:
    """Where Keras axis ``axis`` lies in an IR value of ``layout``."""
    if rank is None:
        return axis
    a = axis % rank
    if layout == "kl" or rank <= 2:
        return a
    return to_cf(rank).index(a)


@dataclass
class Val:
    """A Keras tensor: its Keras-order shape (batch included) and the IR values holding it."""

    shape: tuple[int | None, ...] | None
    dtype: str = "float32"
    kl: str | None = None  # in Keras order
    cf: str | None = None  # channels-first

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


@dataclass
class Layer:
    cls: str
    cfg: dict[str, Any]
    name: str  # full name (nested models prefix theirs): Weight.layer and Node.layer
    names: tuple[str, ...]  # path of layer names from the top model (legacy h5 layout)
    keys: tuple[str, ...]  # path of container keys from the top model (.keras layout)
    n_out: int = 1


class Builder:
    """The IR nodes, inputs and weights emitted so far, for the converters to add to."""

    def __init__(self, store: Any, major: int, path: str) -> None:
        self.store, self.major, self.path = store, major, path
        self.nodes: list[Node] = []
        self.inputs: list[ValueInfo] = []
        self.weights: dict[str, Weight] = {}
        self.datasets: dict[str, str] = {}
        self.opaque: list[str] = []
        # "#": Keras's own names already end in _<n>
        self._values = Names(sep="#")
        self._node_names = Names(sep="#")
        self._vars: dict[str, dict[str, Var]] = {}

    # names, nodes, weights
    def fresh(self, hint: str) -> str:
        """A fresh value name, also distinct from every weight name (a weight is a value too)."""
        return self._values.fresh(hint, also=self.weights)

    def op(
        self,
        op: str,
        inputs: list[str],
        layer: str,
        attrs: dict[str, Any] | None = None,
        hint: str | None = None,
        domain: str = "",
        n_out: int = 1,
    ) -> list[str]:
        hint = hint or f"{layer}/{op}"
        outs = [self.fresh(hint if i == 0 else f"{hint}:{i}") for i in range(n_out)]
        name = self._node_names.fresh(hint)
        self.nodes.append(Node(name, op, inputs, outs, dict(attrs or {}), domain=domain, layer=layer))
        return outs

    def val(self, name: str, shape: Any, layout: str, dtype: str = "float32") -> Val:
        shape = None if shape is None else tuple(shape)
        v = Val(shape, dtype)
        if v.rank is not None and v.rank <= 2:
            v.kl = v.cf = name
        else:
            setattr(v, layout, name)
        return v

    def get(self, v: Val, want: str) -> str:
        """The IR value of ``v`` in layout ``want`` ("kl" or "cf"), transposing it the first time."""
        have = getattr(v, want)
        if have:
            return have
        src = v.cf if want == "kl" else v.kl
        assert src is not None
        if v.rank is None:
            raise UnsupportedError(
                f"cannot tell the rank of tensor {src!r}, needed to convert it to channels-first",
                path=self.path,
                hint="Re-save the model with Keras 3, whose config records tensor shapes",
            )
        perm = to_cf(v.rank) if want == "cf" else to_kl(v.rank)
        base = src.removesuffix("/cf").removesuffix("/kl")
        out = self.op("Transpose", [src], base, {"perm": perm}, hint=f"{base}/{want}")[0]
        setattr(v, want, out)
        return out

    def any(self, v: Val) -> tuple[str, str]:
        """An IR value of ``v`` in whichever layout exists (channels-first first), and that layout."""
        return (v.cf, "cf") if v.cf else (str(v.kl), "kl")

    def const(self, layer: str, slot: str, arr: np.ndarray) -> str:
        name = f"{layer}/{slot}"
        if name not in self.weights:
            self.weights[name] = Weight(name, np.asarray(arr, order="C"), layer=layer, role="const")
        return name

    def layer_vars(self, L: Layer) -> dict[str, Var]:
        if L.name not in self._vars:
            vs = self.store.vars(L.names, L.keys)
            self._vars[L.name] = name_vars(L.cls, L.cfg, vs, L.name, self.path)
        return self._vars[L.name]

    def param(self, L: Layer, slot: str, role: str, op: str, layout: list[LayoutOp] | None = None) -> str:
        """The IR weight for variable ``slot`` of layer L ("" if the layer has none)."""
        var = self.layer_vars(L).get(slot)
        if var is None:
            return ""
        name = f"{L.name}/{slot}"
        if name not in self.weights:
            if name in self._values:
                raise InputError(f"weight name {name!r} clashes with a tensor name", path=self.path)
            layout = layout or []
            self.weights[name] = Weight(
                name,
                var.ir_array(layout),
                layer=L.name,
                role=role,
                op=op,
                source=var.path,
                source_shape=var.shape,
                layout=layout,
            )
            self.datasets[name] = var.path
        return name

    def opaque_op(self, L: Layer, xs: list[Val]) -> list[Val]:
        """A layer kept as it is (domain "keras", attrs = its config): it loads, the executor refuses it."""
        ws = []
        for slot, v in self.layer_vars(L).items():
            # a .keras file names a recurrent cell's variables by position: kernel, recurrent, bias
            name = _RECURRENT_SLOTS.get(slot, slot) if L.cls in _RECURRENT else slot
            role = _ROLE_OF_VAR.get(name, "other" if v.dtype.kind == "f" else "buffer")
            ws.append(self.param(L, slot, role, L.cls))
        ins = [self.get(x, "kl") for x in xs]
        outs = self.op(L.cls, ins + ws, L.name, dict(L.cfg), hint=L.name, domain="keras", n_out=L.n_out)
        self.opaque.append(f"{L.name} ({L.cls})")
        return [self.val(o, None, "kl") for o in outs]
