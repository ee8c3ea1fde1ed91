"""The framework-neutral graph IR every loader reads into and every writer writes from.

A `Graph` is a list of `Node`s in topological order over named values. Weights are named values
too (like ONNX initializers): a node lists a weight's name among its inputs, and the weight itself
lives in `Graph.weights`, where it knows its layer, its role and how it maps to the source file.

Layout (one, fixed; loaders convert on the way in, writers on the way out):

- Dense weight: (out, in), and ``y = x @ W.T + b`` over the last axis of x.
- Conv weight: (out, in/groups, *kernel), i.e. (out, in/groups, kh, kw) in 2-D, (out, in/groups, k) in 1-D.
- ConvTranspose weight: (in, out/groups, *kernel), as in ONNX and torch.
- Depthwise conv: a Conv with ``group == in``, weight (in*multiplier, 1, kh, kw).
- Embedding table: (num_embeddings, dim).
- Activations: channels first (NCHW, NCL). A channels-last source (Keras) gets explicit Transpose
  nodes where its layout matters (after its inputs, before Flatten, before its outputs), so the IR's
  graph inputs and outputs keep the shapes of the source model.

Op names and attributes follow ONNX's semantics (``Conv``, ``MaxPool``, ``BatchNormalization``...),
with one addition, ``Dense``, for the layer every framework has. An op the executor does not know is
kept as it is (its ``domain`` and attributes carried through), and its plain weights stay compressible.

A weight slot holds either a numpy array or a compressed tensor (anything with ``shape``, ``dtype``
and ``to_dense()``), so that passes can replace arrays by formats without changing the graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Roles a weight can play in its layer. Passes select on these ("all Dense kernels").
ROLES = (
    "kernel",  # Dense/Conv/ConvTranspose weight
    "bias",
    "bn_gamma",
    "bn_beta",
    "bn_mean",
    "bn_var",
    "embedding",
    "recurrent",  # LSTM/GRU/RNN input and hidden weights
    "alpha",  # PReLU slope
    "const",  # a small constant an op needs (shapes, axes, clip bounds)
    "buffer",  # a non-float or bookkeeping tensor (num_batches_tracked, int64 indices)
    "other",
)


@runtime_checkable
class CompressedTensor(Protocol):
    """What a weight slot needs from a compressed representation."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    def to_dense(self) -> np.ndarray: ...


LayoutOp = tuple[str, tuple[int, ...]]  # ("transpose", perm) or ("reshape", shape)


def apply_layout(arr: np.ndarray, ops: list[LayoutOp]) -> np.ndarray:
    """Take a source-file array to the IR layout."""
    for kind, arg in ops:
        if kind == "transpose":
            arr = np.transpose(arr, arg)
        elif kind == "reshape":
            arr = arr.reshape(arg)
        else:
            raise ValueError(f"unknown layout op {kind!r}")
    return np.asarray(arr, order="C")  # ascontiguousarray would turn a 0-d array into shape (1,)


def invert_layout(arr: np.ndarray, ops: list[LayoutOp], source_shape: tuple[int, ...]) -> np.ndarray:
    """Take an IR-layout array back to the source file's layout."""
    shapes = [tuple(source_shape)]
    for kind, arg in ops:
        s = shapes[-1]
        shapes.append(tuple(s[i] for i in arg) if kind == "transpose" else tuple(arg))
    for (kind, arg), before in zip(reversed(ops), reversed(shapes[:-1]), strict=True):
        arr = np.transpose(arr, np.argsort(arg)) if kind == "transpose" else arr.reshape(before)
    return np.asarray(arr, order="C")


@dataclass
class Weight:
    """A named tensor of the model, with what passes and writers need to know about it.

    ``layout`` takes the array as stored in the source file (``source`` names it there, with
    ``source_shape``) to the IR layout; writers invert it.
    """

    name: str
    value: np.ndarray | CompressedTensor
    layer: str = ""
    role: str = "other"
    op: str = ""  # op type of the layer using it ("Dense", "Conv"...); guessed for weights-only files
    source: str = ""
    source_shape: tuple[int, ...] = ()
    layout: list[LayoutOp] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.source:
            self.source = self.name
        if not self.source_shape:
            self.source_shape = tuple(self.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.value.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.value.dtype)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def is_compressed(self) -> bool:
        return not isinstance(self.value, (np.ndarray, np.generic))

    @property
    def array(self) -> np.ndarray:
        """The dense IR-layout array, decoded if the slot holds a compressed tensor."""
        v = self.value
        if isinstance(v, np.ndarray):
            return v
        if isinstance(v, np.generic):  # arithmetic on a 0-d array gives a numpy scalar
            return np.asarray(v)
        return np.asarray(v.to_dense())

    def to_source(self, array: np.ndarray | None = None) -> np.ndarray:
        """The dense array (or ``array``, in this weight's IR layout) in the source file's layout
        and this weight's dtype."""
        a = self.array if array is None else np.asarray(array, dtype=self.dtype)
        return invert_layout(a, self.layout, self.source_shape)


@dataclass
class ValueInfo:
    """A graph input or output: name, shape (None or a string for a dynamic axis), dtype name."""

    name: str
    shape: tuple[int | str | None, ...] | None = None
    dtype: str = "float32"


@dataclass
class Node:
    """One operation. ``inputs`` name values or weights ("" for an omitted optional input)."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""
    layer: str = ""  # the user-facing layer this node belongs to

    def __post_init__(self) -> None:
        if not self.layer:
            self.layer = self.name

    def subgraphs(self) -> Iterator[Graph]:
        for v in self.attrs.values():
            if isinstance(v, Graph):
                yield v
            elif isinstance(v, list) and v and all(isinstance(g, Graph) for g in v):
                yield from v


@dataclass
class ModelMeta:
    """Where a graph came from: format, producer, and notes a user should see (``inspect``)."""

    format: str = ""  # "keras-h5", "keras", "torch-state-dict", "torchscript", "torch-export", "onnx"
    producer: str = ""
    producer_version: str = ""
    path: str = ""
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class IRError(ValueError):
    """The graph is malformed (dangling value, shape mismatch, cycle...)."""


@dataclass
class Graph:
    """A model: nodes in topological order, named inputs/outputs, and weights by name.

    ``has_graph`` is False for a weights-only file (a torch state_dict, a Keras weights file):
    then ``nodes`` is empty and layers are grouped from the weight names.
    ``source`` is an opaque handle the loader leaves for its writer (to keep what the IR does not
    model exactly as it was); it is never interpreted outside io/.
    """

    nodes: list[Node] = field(default_factory=list)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    weights: dict[str, Weight] = field(default_factory=dict)
    has_graph: bool = True
    meta: ModelMeta = field(default_factory=ModelMeta)
    name: str = "model"
    source: Any = None

    # -- queries ---------------------------------------------------------------------------
    def all_nodes(self) -> Iterator[Node]:
        """Every node, those of subgraphs (If/Loop bodies) included."""
        for n in self.nodes:
            yield n
            for g in n.subgraphs():
                yield from g.all_nodes()

    def layers(self) -> dict[str, list[Weight]]:
        """Weights grouped by layer, in first-seen order."""
        out: dict[str, list[Weight]] = {}
        for w in self.weights.values():
            out.setdefault(w.layer or w.name, []).append(w)
        return out

    def select(
        self, *, roles: tuple[str, ...] = ("kernel",), ops: tuple[str, ...] | None = None
    ) -> list[Weight]:
        """Float weights with one of ``roles`` (and layer op in ``ops`` if given)."""
        return [
            w
            for w in self.weights.values()
            if w.role in roles and (ops is None or w.op in ops) and np.issubdtype(w.dtype, np.floating)
        ]

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def copy(self) -> Graph:
        """A copy whose weight slots can be replaced without touching this graph."""
        return dataclasses.replace(
            self,
            weights={k: dataclasses.replace(w) for k, w in self.weights.items()},
            nodes=list(self.nodes),
            meta=dataclasses.replace(self.meta, notes=list(self.meta.notes)),
        )

    # -- checks ----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise IRError on dangling values, duplicate outputs, cycles or weight-shape mismatches."""
        _validate(self, outer=set())


def _validate(g: Graph, outer: set[str]) -> None:
    known = set(outer) | {v.name for v in g.inputs} | set(g.weights)
    produced: dict[str, str] = {}
    for n in g.nodes:
        for o in n.outputs:
            if o and (o in produced or o in g.weights):
                raise IRError(f"value {o!r} is produced twice (node {n.name!r})")
            if o:
                produced[o] = n.name
    pending = {n.name for n in g.nodes}
    for n in g.nodes:
        for i in n.inputs:
            if not i or i in known:
                continue
            if i in produced and produced[i] in pending:
                raise IRError(f"node {n.name!r} uses {i!r} before it is computed: cycle or bad order")
            raise IRError(f"node {n.name!r} reads {i!r}, which nothing produces (dangling value)")
        for sub in n.subgraphs():
            _validate(sub, outer=known)
        known.update(o for o in n.outputs if o)
        pending.discard(n.name)
    for v in g.outputs:
        if v.name not in known:
            raise IRError(f"graph output {v.name!r} is never produced")
    for n in g.nodes:
        _check_weight_shapes(g, n)


def _check_weight_shapes(g: Graph, n: Node) -> None:
    ws = [g.weights.get(i) if i else None for i in n.inputs]
    if n.op in ("Dense", "Conv", "ConvTranspose") and len(ws) > 1 and ws[1] is not None:
        k = ws[1]
        if n.op == "Dense" and len(k.shape) != 2:
            raise IRError(f"{n.name}: Dense kernel {k.name!r} must be 2-D (out, in), got {k.shape}")
        if n.op != "Dense" and len(k.shape) < 3:
            raise IRError(
                f"{n.name}: {n.op} kernel {k.name!r} must be (out, in/groups, *kernel), got {k.shape}"
            )
        nout = k.shape[0] if n.op != "ConvTranspose" else k.shape[1] * int(n.attrs.get("group", 1))
        b = ws[2] if len(ws) > 2 else None
        if b is not None and b.shape != (nout,):
            raise IRError(f"{n.name}: bias {b.name!r} has shape {b.shape}, expected ({nout},)")
    if n.op == "BatchNormalization":
        shapes = {w.shape for w in ws[1:] if w is not None}
        if len(shapes) > 1:
            raise IRError(f"{n.name}: BatchNormalization parameters disagree in shape: {sorted(shapes)}")
