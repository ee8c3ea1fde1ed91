"""The converter's state, shared by the TorchScript walker and the torch.export reader: the values it
follows, an op's arguments, the `Builder` collecting IR nodes, and the finished graph (or the
weights-only fallback when a graph cannot be converted)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompress.io.torch.source import Source
from nncompress.io.torch.weights import dtype_notes, guess_roles, split_key, weights_from
from nncompress.ir import Graph, ModelMeta, Node, ValueInfo, Weight
from nncompress.ir.names import Names

__all__ = [
    "UNKNOWN",
    "Args",
    "Builder",
    "Dim",
    "NotMapped",
    "Ref",
    "Unconvertible",
    "UnknownT",
    "fallback",
    "finish",
    "is_one",
    "outputs_of",
    "to_int",
    "to_ints",
    "to_num",
]


class Unconvertible(Exception):
    """The graph cannot be converted (control flow, opaque objects): fall back to weights only."""


class NotMapped(Exception):
    """This op has no IR counterpart with these arguments: carry it as an aten op."""


@dataclass(frozen=True)
class Ref:
    """A tensor: an IR value or weight name."""

    name: str


@dataclass(frozen=True)
class Dim:
    """``x.size(dim)``: an int only known at run time."""

    of: str
    dim: int


class UnknownT:
    """A value the converter does not follow (a data-dependent scalar, an opaque object)."""

    def __repr__(self) -> str:
        return "?"


UNKNOWN = UnknownT()


class Args:
    """An op's arguments by schema name and by position."""

    def __init__(self, names: list[str], values: list[Any]) -> None:
        self.names, self.values = names, values

    def get(self, name: str, idx: int, default: Any = None) -> Any:
        if name in self.names:
            i = self.names.index(name)
            return self.values[i] if i < len(self.values) else default
        return self.values[idx] if idx < len(self.values) else default

    def has(self, name: str) -> bool:
        return name in self.names

    def t(self, name: str, idx: int) -> Ref:
        v = self.get(name, idx)
        if not isinstance(v, Ref):
            raise NotMapped(f"{name} is not a tensor")
        return v

    def opt_t(self, name: str, idx: int) -> Ref | None:
        v = self.get(name, idx)
        if v is None:
            return None
        if not isinstance(v, Ref):
            raise NotMapped(f"{name} is not a tensor")
        return v


class Builder:
    """Collects IR nodes, weights and what is known of value ranks and dtypes."""

    def __init__(self, weights: dict[str, Weight], file_keys: set[str]) -> None:
        self.weights = weights
        self.file_keys = file_keys  # weights that come from the file (the others are converter consts)
        self.nodes: list[Node] = []
        self.names = Names(weights)  # values and weights share one namespace
        self.node_names = Names()
        self.rank: dict[str, int] = {k: len(w.shape) for k, w in weights.items()}
        self.dtype: dict[str, str] = {k: str(w.dtype) for k, w in weights.items()}
        self.inputs: list[ValueInfo] = []
        self.notes: list[str] = []
        self.unknown_ops: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        return self.names.fresh(base or "v")

    def const(self, base: str, arr: np.ndarray) -> Ref:
        name = self.fresh(base)
        self.weights[name] = Weight(name=name, value=np.asarray(arr, order="C"), layer=base, role="const")
        self.rank[name] = arr.ndim
        self.dtype[name] = str(arr.dtype)
        return Ref(name)

    def layer_of(self, inputs: list[str]) -> str:
        for i in inputs:
            if i in self.file_keys:
                return split_key(i)[0] or i
        return ""

    def emit(
        self,
        op: str,
        inputs: list[str],
        base: str,
        *,
        attrs: dict[str, Any] | None = None,
        n_out: int = 1,
        domain: str = "",
    ) -> list[Ref]:
        while inputs and inputs[-1] == "":
            inputs = inputs[:-1]
        outs = [self.fresh(base if i == 0 else f"{base}.{i}") for i in range(n_out)]
        layer = self.layer_of(inputs)
        name = self.node_names.fresh(layer or outs[0])
        node = Node(name=name, op=op, inputs=inputs, outputs=outs, attrs=dict(attrs or {}), domain=domain)
        node.layer = layer or name
        self.nodes.append(node)
        r = _infer_rank(self, node)
        if r is not None:
            self.rank[outs[0]] = r
        if op not in ("Cast", "Gather", "Shape") and inputs and inputs[0] in self.dtype:
            self.dtype.setdefault(outs[0], self.dtype[inputs[0]])
        return [Ref(o) for o in outs]

    def one(self, op: str, inputs: list[str], base: str, **kw: Any) -> Ref:
        return self.emit(op, inputs, base, **kw)[0]

    def operand(self, v: Any, like: Ref | None, base: str) -> str:
        """A tensor operand's name: a Python number becomes a scalar constant weight."""
        if isinstance(v, Ref):
            return v.name
        if isinstance(v, bool):
            return self.const(f"{base}.const", np.asarray(v)).name
        if isinstance(v, (int, float)):
            dt = self.dtype.get(like.name, "float32") if like is not None else "float32"
            if isinstance(v, float) and not dt.startswith(("float", "bfloat")):
                dt = "float32"
            if dt == "bfloat16":
                dt = "float32"
            return self.const(f"{base}.const", np.asarray(v, dtype=dt)).name
        raise NotMapped("operand is not a tensor or a number")


_SAME_RANK = {
    "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf", "Softplus", "Identity",
    "LeakyRelu", "Elu", "Selu", "Gelu", "Clip", "HardSigmoid", "HardSwish", "Softmax", "LogSoftmax",
    "Conv", "ConvTranspose", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Transpose", "Concat", "Cast", "Dense", "PRelu", "Pad", "Slice", "Reciprocal", "Not",
}  # fmt: skip


_BROADCAST = {
    "Add", "Sub", "Mul", "Div", "Pow", "Min", "Max", "Where", "Greater", "Less", "Equal",
    "GreaterOrEqual", "LessOrEqual",
}  # fmt: skip


def _infer_rank(b: Builder, n: Node) -> int | None:
    r = [b.rank.get(i) for i in n.inputs]
    r0 = r[0] if r else None
    if n.op in ("Conv", "ConvTranspose") and len(r) > 1 and r[1] is not None:
        return r[1]  # a convolution's input and output have its kernel's rank
    if n.op in _SAME_RANK:
        return r0
    if n.op in _BROADCAST:
        return max(r) if r and all(x is not None for x in r) else None  # type: ignore[type-var]
    if n.op in ("Flatten", "Gemm"):
        return 2
    if n.op == "Reshape" and len(n.inputs) > 1 and n.inputs[1] in b.weights:
        return int(b.weights[n.inputs[1]].size)
    if n.op == "Unsqueeze" and r0 is not None:
        return r0 + len(n.attrs.get("axes", []))
    if n.op == "Squeeze" and r0 is not None and "axes" in n.attrs:
        return r0 - len(n.attrs["axes"])
    if n.op == "Gather" and r0 is not None and len(r) > 1 and r[1] is not None:
        return r0 - 1 + r[1]
    if n.op == "MatMul" and r0 is not None and len(r) > 1 and r[1] is not None and min(r0, r[1]) >= 2:
        return max(r0, r[1])
    if n.op in ("ReduceMean", "ReduceSum", "ReduceMax") and r0 is not None:
        if n.attrs.get("keepdims", 1):
            return r0
        axes = n.attrs.get("axes")
        return 0 if not axes else r0 - len(axes)
    return None


# -- argument values -------------------------------------------------------------------------------


def to_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise NotMapped("expected an int")
    return int(v)


def to_ints(v: Any, n: int | None = None) -> list[int]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        vals = [int(v)]
    elif isinstance(v, (list, tuple)):
        vals = [to_int(x) for x in v]
    else:
        raise NotMapped("expected an int list")
    if n is not None and len(vals) == 1 and n > 1:
        vals = vals * n
    if n is not None and len(vals) != n:
        raise NotMapped("int list of the wrong length")
    return vals


def to_num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
        raise NotMapped("expected a number")
    return float(v)


def is_one(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 1)


# -- after conversion ------------------------------------------------------------------------------


def _fuse_dense(b: Builder) -> None:
    """Gemm/MatMul on a transposed 2-D weight (how export decomposes nn.Linear) -> Dense."""
    uses: dict[str, int] = {}
    for n in b.nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    producers = {o: n for n in b.nodes for o in n.outputs}
    drop: set[int] = set()
    for n in b.nodes:
        if n.op not in ("Gemm", "MatMul") or len(n.inputs) < 2:
            continue
        if n.op == "Gemm" and (
            n.attrs.get("alpha", 1) != 1 or n.attrs.get("beta", 1) != 1 or n.attrs.get("transA", 0)
        ):
            continue
        t = producers.get(n.inputs[1])
        if t is None or t.op != "Transpose" or t.attrs.get("perm") != [1, 0] or uses.get(t.outputs[0]) != 1:
            continue
        w = b.weights.get(t.inputs[0])
        if w is None or len(w.shape) != 2 or t.inputs[0] not in b.file_keys:
            continue
        bias = n.inputs[2] if n.op == "Gemm" and len(n.inputs) > 2 else ""
        if bias and (bias not in b.weights or b.weights[bias].shape != (w.shape[0],)):
            continue
        n.op, n.attrs = "Dense", {}
        n.inputs = [n.inputs[0], t.inputs[0]] + ([bias] if bias else [])
        n.layer = split_key(t.inputs[0])[0] or n.layer
        drop.add(id(t))
    b.nodes = [n for n in b.nodes if id(n) not in drop]


def _assign_graph_roles(b: Builder) -> None:
    def mark(name: str, role: str, op: str) -> None:
        w = b.weights.get(name)
        if w is not None and name in b.file_keys:
            w.role, w.op = role, op

    for n in b.nodes:
        ins = n.inputs + [""] * 5
        if n.op in ("Dense", "Conv", "ConvTranspose"):
            mark(ins[1], "kernel", n.op)
            mark(ins[2], "bias", n.op)
        elif n.op == "BatchNormalization":
            for i, role in enumerate(("bn_gamma", "bn_beta", "bn_mean", "bn_var"), start=1):
                mark(ins[i], role, n.op)
        elif n.op == "Gather" and ins[0] in b.weights and len(b.weights[ins[0]].shape) == 2:
            mark(ins[0], "embedding", "Embedding")
        elif n.op == "PRelu":
            mark(ins[1], "alpha", "PRelu")


def finish(
    b: Builder, outputs: list[ValueInfo], meta: ModelMeta, name: str, src: Source, *, dtypes_known: bool
) -> Graph:
    _fuse_dense(b)
    _assign_graph_roles(b)
    gather_ids = {n.inputs[1] for n in b.nodes if n.op == "Gather" and len(n.inputs) > 1}
    for vi in b.inputs:
        if vi.name in gather_ids and vi.dtype == "float32" and not dtypes_known:
            vi.dtype = "int64"  # embedding ids: the file does not say, but ids are integers
    if b.unknown_ops:
        ops = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(b.unknown_ops.items()))
        meta.notes.append(f"carried without IR counterpart (the executor cannot run them): {ops}")
    meta.notes.extend(b.notes)
    g = Graph(
        nodes=b.nodes,
        inputs=b.inputs,
        outputs=outputs,
        weights=b.weights,
        has_graph=True,
        meta=meta,
        name=name,
        source=src,
    )
    g.validate()
    return g


def fallback(
    file_tensors: Mapping[str, Any], meta: ModelMeta, name: str, src: Source, reason: str, skipped: list[str]
) -> Graph:
    weights = weights_from(file_tensors, [])
    guess_roles(weights)
    meta.notes = [
        f"graph not converted ({reason}); weights only: fidelity is measured on weights",
        *dtype_notes(file_tensors, skipped),
    ]
    src.tensors = list(weights)
    g = Graph(weights=weights, has_graph=False, meta=meta, name=name, source=src)
    g.validate()
    return g


def outputs_of(b: Builder, vals: list[Any], info: list[tuple[Any, Any]] | None = None) -> list[ValueInfo]:
    outs: list[ValueInfo] = []
    seen: set[str] = set()
    graph_inputs = {v.name for v in b.inputs}
    for i, v in enumerate(vals):
        if not isinstance(v, Ref):
            raise Unconvertible("the model returns something other than tensors")
        name = v.name
        if name in seen or name in graph_inputs or name in b.weights:
            name = b.one("Identity", [name], f"output_{i}").name  # IR outputs are distinct computed values
        seen.add(name)
        shape, dtype = info[i] if info is not None else (None, b.dtype.get(v.name, "float32"))
        outs.append(ValueInfo(name=name, shape=shape, dtype=dtype or "float32"))
    return outs
