"""Keras files <-> the IR: full models (.h5 from Keras 2 and 3, .keras zips) and weights-only .h5 files.

Reading needs only h5py and json: TensorFlow and keras are never imported, and a Lambda layer's code is
never decoded, let alone run (the layer becomes an opaque op with domain "keras" the executor refuses).

Keras is channels-last and the IR channels-first (see ir/graph.py). The loader tracks, for each Keras
tensor, the IR values that already hold it in Keras order ("kl") and channels-first ("cf"), and inserts a
Transpose only where an op's meaning depends on the layout: convolutions, pooling and BatchNormalization
want channels-first; Flatten, Reshape, Dense on >2-D inputs, opaque ops and graph outputs want Keras order.

The writer never re-serialises a model: it copies the source file and overwrites each weight dataset in
place (same dtype and shape), so the config, optimizer state and attributes stay as they were. A flat
.keras model can also be written as a legacy .h5 (its config.json as model_config, as Keras 3 does).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import InputError, NNCError, OutputError, UnsupportedError
from nncompress.io._atomic import atomic_path, check_output
from nncompress.io._json import JSONError, loads
from nncompress.io._zip import UNREADABLE, read_member
from nncompress.ir import Graph, ModelMeta, Node, ValueInfo, Weight, apply_layout
from nncompress.ir.graph import IRError, LayoutOp

WEIGHTS_ONLY_NOTE = "weights only: no model_config; fidelity is measured on weights"
_NESTED = ("Functional", "Model", "Sequential")
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
_ROLE_OF_VAR = {
    "kernel": "kernel",
    "recurrent_kernel": "recurrent",
    "bias": "bias",
    "embeddings": "embedding",
    "alpha": "alpha",
}
_RECURRENT = ("LSTM", "GRU", "SimpleRNN")
_RECURRENT_SLOTS = {"0": "kernel", "1": "recurrent_kernel", "2": "bias"}
_BN_ROLES = {"gamma": "bn_gamma", "beta": "bn_beta", "moving_mean": "bn_mean", "moving_variance": "bn_var"}
_INT64 = 7  # onnx.TensorProto.INT64, for Cast


@dataclass
class KerasSource:
    """What save_keras needs from the file a graph was loaded from (left in ``Graph.source``)."""

    path: str
    container: str  # "h5" (legacy layout or weights-only h5) or "keras" (zip)
    datasets: dict[str, str] = field(default_factory=dict)  # IR weight -> dataset path in the h5


# -- small helpers -----------------------------------------------------------------------------------


def _s(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _attr_strings(group: Any, name: str) -> list[str]:
    """A list-of-strings attribute; Keras splits big ones into name0, name1... chunks."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, i = [], 0
        while f"{name}{i}" in group.attrs:
            chunks.append(group.attrs[f"{name}{i}"])
            i += 1
    return [_s(v) for c in chunks for v in np.atleast_1d(c) if not isinstance(v, float | np.floating)]


def _snake(name: str) -> str:
    """Keras 3's to_snake_case: the key a layer gets in a .keras weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name: str, used: dict[str, int]) -> str:
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _tup(v: Any, n: int) -> list[int]:
    if isinstance(v, int | float):
        return [int(v)] * n
    v = [int(i) for i in v]
    return v * n if len(v) == 1 else v


def _dtype_name(d: Any) -> str:
    if isinstance(d, dict):  # Keras 3 DTypePolicy
        d = d.get("config", {}).get("name", "float32")
    d = str(d or "float32")
    return "float32" if d.startswith("mixed") else d


def _count_datasets(g: Any) -> tuple[int, int]:
    """(datasets, bytes) under an HDF5 group (0, 0 for None)."""
    if g is None:
        return 0, 0
    n = [0, 0]

    def visit(_name: str, obj: Any) -> None:
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            n[0] += 1
            n[1] += int(np.prod(obj.shape, dtype=np.int64)) * obj.dtype.itemsize

    g.visititems(visit)
    return n[0], n[1]


# HDF5 groups that hold optimizer state: Keras 2 .h5 and Keras 3 (.h5 root, .keras model.weights.h5)
_TRAINING_GROUPS = ("optimizer_weights", "optimizer")


def _copy_without(fin: Any, fout: Any, drop: str) -> None:
    """Every member and attribute of HDF5 file ``fin`` into ``fout`` except group ``drop``: deleting a
    group in place leaves its bytes in the file, a copy does not."""
    for k, v in fin.attrs.items():
        fout.attrs[k] = v
    for name in fin:
        if name != drop:
            fin.copy(fin[name], fout, name=name)


def _to_cf(r: int) -> list[int]:
    return [0, r - 1, *range(1, r - 1)]


def _to_kl(r: int) -> list[int]:
    return [0, *range(2, r), 1]


def _conv_layout(ndim: int) -> list[LayoutOp]:
    """Keras (*k, in, out) -> IR (out, in, *k); also Keras ConvTranspose (*k, out, in) -> IR (in, out, *k)."""
    return [("transpose", (ndim - 1, ndim - 2, *range(ndim - 2)))]


def _depthwise_layout(shape: tuple[int, ...]) -> list[LayoutOp]:
    """Keras depthwise (*k, in, mult) -> IR (in*mult, 1, *k); output channel c*mult+m as in Keras."""
    r = len(shape)
    return [
        ("transpose", (r - 2, r - 1, *range(r - 2))),
        ("reshape", (shape[-2] * shape[-1], 1, *shape[:-2])),
    ]


# -- weight stores -----------------------------------------------------------------------------------


_SLAB_BYTES = 1 << 24  # how much of a dataset a transposed read holds beside its output


def _check_dataset(ds: Any, path: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """A dataset's declared size against the memory budget and against the bytes the file stores
    for it, before it is read (a few bytes of HDF5 can declare a dataset of 2^40 elements)."""
    from nncompress._limits import MAX_RATIO, memory_budget

    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > memory_budget():
        raise InputError(
            f"dataset {path} declares {nbytes:,} bytes, above the memory budget of {memory_budget():,}",
            hint="If the file is genuine, raise the budget with --max-memory (or NNCOMPRESS_MAX_MEMORY)",
        )
    if nbytes > (64 << 20):
        stored = ds.id.get_storage_size()
        if stored * MAX_RATIO < nbytes:
            raise InputError(
                f"dataset {path} declares {nbytes:,} bytes but the file stores {stored:,} for it"
            )


class _Var:
    """A variable of the file. Its dataset is read when first needed: ``array`` reads it as stored,
    ``ir_array`` reads a 2-D kernel slab by slab straight into the transposed IR layout (a large
    Dense kernel is then never in memory twice)."""

    def __init__(self, name: str | None, path: str, ds: Any) -> None:
        self.name = name  # Keras variable name (kernel, gamma...) where the file records it
        self.path = path  # dataset path inside the h5
        self._ds = ds
        self._array: np.ndarray | None = None
        self.shape: tuple[int, ...] = tuple(ds.shape)
        self.dtype: np.dtype[Any] = np.dtype(ds.dtype)
        _check_dataset(ds, path, self.shape, self.dtype)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.asarray(self._ds[()])
        return self._array

    def ir_array(self, layout: list[LayoutOp]) -> np.ndarray:
        """The variable in the IR layout. Where that is a transpose of the stored array, the variable
        then keeps a view of the IR copy instead of an array of its own, so that a large kernel is not
        in memory twice: a 2-D kernel not read yet is read slab by slab straight into the IR layout,
        and the file's copy of one read already is freed now rather than when loading ends."""
        if self._array is None and layout == [("transpose", (1, 0))] and len(self.shape) == 2:
            rows, cols = self.shape
            out = np.empty((cols, rows), dtype=self.dtype)
            step = max(1, _SLAB_BYTES // max(1, cols * self.dtype.itemsize))
            for i in range(0, rows, step):
                out[:, i : i + step] = np.asarray(self._ds[i : i + step]).T
        else:
            out = apply_layout(self.array, layout)
        if layout and all(kind == "transpose" for kind, _ in layout):
            view = out
            for _, arg in reversed(layout):
                view = np.transpose(view, np.argsort(arg))
            self._array = view
        return out


def _read(ds: Any, name: str | None) -> _Var:
    return _Var(name, ds.name.lstrip("/"), ds)


class _LegacyStore:
    """Weights in the legacy layout: <root>/<layer>/... listed by the layer's weight_names attribute."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def vars(self, names: tuple[str, ...], keys: tuple[str, ...]) -> list[_Var]:
        top = self.root.get(names[0])
        if top is None:
            return []
        wns = _attr_strings(top, "weight_names")
        if len(names) > 1:  # a layer inside a nested model: its weights are named .../<layer>/<var>
            wns = [w for w in wns if w.split("/")[-2:-1] == [names[-1]]]
        return [_read(top[w], w.split("/")[-1].split(":")[0]) for w in wns]


def _collect_vars(g: Any) -> list[_Var]:
    """A .keras layer group's variables: its own vars/<i>, then those of wrapped layers (e.g. layer/)."""
    out: list[_Var] = []
    v = g.get("vars")
    if v is not None:
        out += [_read(v[k], None) for k in sorted(v, key=lambda k: int(k) if k.isdigit() else 1 << 30)]
    for k in sorted(g):
        if k not in ("vars", "layers") and hasattr(g[k], "keys"):
            out += _collect_vars(g[k])
    return out


def _vars_name(g: Any) -> str | None:
    v = g.get("vars")
    n = v.attrs.get("name") if v is not None else None
    return None if n is None else _s(n)


class _ZipStore:
    """Weights in a Keras 3 model.weights.h5: layers/<key>[/layers/<key>...]/vars/<i>."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def group(self, names: tuple[str, ...], keys: tuple[str, ...]) -> Any:
        parent = "layers/" + "".join(f"{k}/layers/" for k in keys[:-1])
        g = self.f.get(parent + keys[-1])
        if g is None or _vars_name(g) not in (None, names[-1]):
            # Keys come from class names in save order; where that guess misses, the recorded name decides.
            pg = self.f.get(parent.rstrip("/"))
            hits = [pg[k] for k in (pg or {}) if _vars_name(pg[k]) == names[-1]]
            g = hits[0] if len(hits) == 1 else g
        return g

    def vars(self, names: tuple[str, ...], keys: tuple[str, ...]) -> list[_Var]:
        g = self.group(names, keys)
        return [] if g is None else _collect_vars(g)


# -- which variable is which -------------------------------------------------------------------------


def _is_depthwise(cls: str) -> bool:
    return cls.startswith("DepthwiseConv")


def _slots(cls: str, cfg: dict[str, Any]) -> list[str] | None:
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
        return _slots(inner.get("class_name", ""), inner.get("config", {}))
    return None


def _name_vars(cls: str, cfg: dict[str, Any], vs: list[_Var], where: str, path: str) -> dict[str, _Var]:
    """Map a layer's variables to slot names: by recorded name where possible, else by position."""
    slots = _slots(cls, cfg)
    inner = cfg.get("layer", {}).get("class_name", "") if cls == "TimeDistributed" else cls
    if slots is not None and vs and all(v.name for v in vs):
        alias = {"depthwise_kernel": "kernel"} if _is_depthwise(inner) else {}
        got = {alias.get(str(v.name), str(v.name)): v for v in vs}
        if sorted(got) == sorted(slots):
            return got
    if slots is None:
        return {(v.name or str(i)): v for i, v in enumerate(vs)}
    if len(vs) == len(slots):
        return dict(zip(slots, vs, strict=True))
    if not vs and slots:
        raise InputError(
            f"the weights of layer {where!r} ({cls}) are missing from the file",
            path=path,
            hint="The file is incomplete; re-save it with model.save()",
        )
    raise UnsupportedError(
        f"layer {where!r} ({cls}) has {len(vs)} weights in the file, expected {len(slots)} ({', '.join(slots)})",
        path=path,
        hint="Re-save the model with the Keras version that trained it",
    )


# -- graph building ----------------------------------------------------------------------------------


@dataclass
class _Val:
    """A Keras tensor: its Keras-order shape (batch included) and the IR values holding it."""

    shape: tuple[int | None, ...] | None
    dtype: str = "float32"
    kl: str | None = None  # in Keras order
    cf: str | None = None  # channels-first

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


@dataclass
class _Layer:
    cls: str
    cfg: dict[str, Any]
    name: str  # full name (nested models prefix theirs): Weight.layer and Node.layer
    names: tuple[str, ...]  # path of layer names from the top model (legacy h5 layout)
    keys: tuple[str, ...]  # path of container keys from the top model (.keras layout)
    n_out: int = 1


Converter = Callable[["_Builder", _Layer, list[_Val]], list[_Val]]


class _Builder:
    """Walks a Keras model config and emits IR nodes and weights."""

    def __init__(self, store: Any, major: int, path: str) -> None:
        self.store, self.major, self.path = store, major, path
        self.nodes: list[Node] = []
        self.inputs: list[ValueInfo] = []
        self.weights: dict[str, Weight] = {}
        self.datasets: dict[str, str] = {}
        self.opaque: list[str] = []
        self._values: set[str] = set()
        self._node_names: set[str] = set()
        self._vars: dict[str, dict[str, _Var]] = {}

    # names, nodes, weights
    def fresh(self, hint: str, taken: set[str] | None = None) -> str:
        taken = self._values if taken is None else taken
        name, i = hint, 1
        while name in taken or (taken is self._values and name in self.weights):
            name, i = f"{hint}#{i}", i + 1  # "#": Keras's own names already end in _<n>
        taken.add(name)
        return name

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
        name = self.fresh(hint, self._node_names)
        self.nodes.append(Node(name, op, inputs, outs, dict(attrs or {}), domain=domain, layer=layer))
        return outs

    def val(self, name: str, shape: Any, layout: str, dtype: str = "float32") -> _Val:
        shape = None if shape is None else tuple(shape)
        v = _Val(shape, dtype)
        if v.rank is not None and v.rank <= 2:
            v.kl = v.cf = name
        else:
            setattr(v, layout, name)
        return v

    def get(self, v: _Val, want: str) -> str:
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
        perm = _to_cf(v.rank) if want == "cf" else _to_kl(v.rank)
        base = src.removesuffix("/cf").removesuffix("/kl")
        out = self.op("Transpose", [src], base, {"perm": perm}, hint=f"{base}/{want}")[0]
        setattr(v, want, out)
        return out

    def any(self, v: _Val) -> tuple[str, str]:
        """An IR value of ``v`` in whichever layout exists (channels-first first), and that layout."""
        return (v.cf, "cf") if v.cf else (str(v.kl), "kl")

    def const(self, layer: str, slot: str, arr: np.ndarray) -> str:
        name = f"{layer}/{slot}"
        if name not in self.weights:
            self.weights[name] = Weight(name, np.asarray(arr, order="C"), layer=layer, role="const")
        return name

    def layer_vars(self, L: _Layer) -> dict[str, _Var]:
        if L.name not in self._vars:
            vs = self.store.vars(L.names, L.keys)
            self._vars[L.name] = _name_vars(L.cls, L.cfg, vs, L.name, self.path)
        return self._vars[L.name]

    def param(self, L: _Layer, slot: str, role: str, op: str, layout: list[LayoutOp] | None = None) -> str:
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

    # models
    def graph_input(self, lc: dict[str, Any], prefix: str) -> _Val:
        cfg = lc.get("config", {})
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        name = prefix + (cfg.get("name") or lc.get("name") or "input")
        if shape is None:
            raise UnsupportedError(
                f"input {name!r} has no shape in the config", path=self.path, hint="Build the model first"
            )
        dtype = _dtype_name(cfg.get("dtype"))
        self.inputs.append(ValueInfo(self.fresh(name), tuple(shape), dtype))
        return self.val(self.inputs[-1].name, shape, "kl", dtype)

    def model(
        self,
        lc: dict[str, Any],
        prefix: str,
        names: tuple[str, ...],
        keys: tuple[str, ...],
        xs: list[_Val] | None,
    ) -> list[_Val]:
        """Inline a Sequential or Functional model (the top one, or one nested as a layer)."""
        if lc.get("class_name") == "Sequential":
            return self.sequential(lc["config"], prefix, names, keys, xs)
        return self.functional(lc["config"], prefix, names, keys, xs)

    def sequential(
        self,
        cfg: dict[str, Any],
        prefix: str,
        names: tuple[str, ...],
        keys: tuple[str, ...],
        xs: list[_Val] | None,
    ) -> list[_Val]:
        layers = list(cfg.get("layers", []))
        first = layers[0] if layers else {}
        if first.get("class_name") == "InputLayer":
            layers = layers[1:]
        if xs is not None:
            x = xs[0]
        elif first.get("class_name") == "InputLayer":
            x = self.graph_input(first, prefix)
        else:
            c = first.get("config", {})
            shape = c.get("batch_input_shape") or c.get("batch_shape") or cfg.get("build_input_shape")
            x = self.graph_input(
                {"config": {"batch_shape": shape, "dtype": c.get("dtype"), "name": "input"}}, prefix
            )
        used: dict[str, int] = {}
        for lc in layers:
            key = _unique(_snake(lc["class_name"]), used)
            x = self.apply(lc, prefix, names, (*keys, key), [x])[0]
        return [x]

    def _offset(self, lc: dict[str, Any], io: bool) -> int:
        """Where a layer's node indices start in the config (nested models own a node of their own)."""
        cls = lc.get("class_name")
        if self.major < 3:  # tf_keras functional.py _should_skip_first_node
            if cls in ("Functional", "Model"):
                return 1
            if cls == "Sequential":
                first = (lc.get("config", {}).get("layers") or [{}])[0]
                c = first.get("config", {})
                return int(first.get("class_name") == "InputLayer" or "batch_input_shape" in c)
            return 0
        return int(io and cls == "Functional")  # Keras 3 reindexes only input/output_layers this way

    def functional(
        self,
        cfg: dict[str, Any],
        prefix: str,
        names: tuple[str, ...],
        keys: tuple[str, ...],
        xs: list[_Val] | None,
    ) -> list[_Val]:
        """Layers run once their inputs exist, each of a layer's calls (inbound nodes) separately."""
        layers = cfg.get("layers", [])
        by_name = {lc.get("name") or lc["config"]["name"]: lc for lc in layers}
        used: dict[str, int] = {}
        key_of = {n: _unique(_snake(lc["class_name"]), used) for n, lc in by_name.items()}
        calls: dict[str, list[list[_Ref]]] = {
            n: _inbound(lc.get("inbound_nodes") or []) for n, lc in by_name.items()
        }
        in_refs, out_refs = _io_refs(cfg.get("input_layers")), _io_refs(cfg.get("output_layers"))
        n_out: dict[tuple[str, int], int] = {}
        tensors: dict[tuple[str, int, int], _Val] = {}
        shapes: dict[tuple[str, int, int], Any] = {}

        def locate(r: _Ref, io: bool) -> tuple[str, int, int]:
            lname, ni, ti = r.layer, r.node, r.tensor
            n = max(1, len(calls.get(lname, [])))
            idx = ni - self._offset(by_name.get(lname, {}), io)
            if not 0 <= idx < n:
                idx = ni if 0 <= ni < n else n - 1
            return lname, idx, ti

        for cs in calls.values():
            for refs in cs:
                for r in refs:
                    k = locate(r, False)
                    n_out[k[:2]] = max(n_out.get(k[:2], 1), k[2] + 1)
                    if r.shape is not None:
                        shapes.setdefault(k, r.shape)
        for r in out_refs:
            k = locate(r, True)
            n_out[k[:2]] = max(n_out.get(k[:2], 1), k[2] + 1)
        for j, r in enumerate(in_refs):
            lc = by_name[r.layer]
            tensors[(r.layer, 0, 0)] = xs[j] if xs is not None else self.graph_input(lc, prefix)

        def fetch(r: _Ref, io: bool) -> _Val | None:
            k = locate(r, io)
            v = tensors.get(k)
            if v is not None and v.shape is None and k in shapes:
                v.shape = tuple(shapes[k])
            return v

        pending = [
            (n, i, refs)
            for n, cs in calls.items()
            for i, refs in enumerate(cs)
            if by_name[n].get("class_name") != "InputLayer"
        ]
        while pending:
            rest = []
            for lname, i, refs in pending:
                ins = [v for r in refs if (v := fetch(r, False)) is not None]
                if len(ins) < len(refs):
                    rest.append((lname, i, refs))
                    continue
                outs = self.apply(
                    by_name[lname], prefix, names, (*keys, key_of[lname]), ins, n_out.get((lname, i), 1)
                )
                for t, v in enumerate(outs):
                    tensors[(lname, i, t)] = v
            if len(rest) == len(pending):
                missing = sorted({r.layer for _, _, refs in rest for r in refs} - set(by_name))
                raise InputError(
                    "model config has a cycle or refers to unknown layers"
                    + (f" ({', '.join(missing)})" if missing else ""),
                    path=self.path,
                )
            pending = rest
        outs = [v for r in out_refs if (v := fetch(r, True)) is not None]
        if len(outs) < len(out_refs):
            raise InputError("model config names an output that no layer produces", path=self.path)
        return outs

    def apply(
        self,
        lc: dict[str, Any],
        prefix: str,
        names: tuple[str, ...],
        keys: tuple[str, ...],
        xs: list[_Val],
        n_out: int = 1,
    ) -> list[_Val]:
        cls = lc.get("class_name", "")
        cfg = lc.get("config", {}) if isinstance(lc.get("config"), dict) else {}
        lname = cfg.get("name") or lc.get("name") or _snake(cls)
        L = _Layer(cls, cfg, prefix + lname, (*names, lname), keys, n_out)
        if cls in _NESTED and isinstance(cfg.get("layers"), list):
            return self.model(lc, f"{L.name}/", L.names, L.keys, xs)
        conv = _CONVERTERS.get(cls)
        return conv(self, L, xs) if conv is not None else self.opaque_op(L, xs)

    # shared pieces of converters
    def opaque_op(self, L: _Layer, xs: list[_Val]) -> list[_Val]:
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

    def activation(self, L: _Layer, x: _Val, act: Any) -> _Val:
        """Apply Keras activation ``act`` to x; its last op's output is named after the layer."""
        name = _act_name(act)
        if name is None:
            return x
        xin, lay = self.any(x)
        layer = hint = L.name

        def out(y: str) -> _Val:
            return self.val(y, x.shape, lay, x.dtype)

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
            "hard_sigmoid": ("HardSigmoid", {"alpha": 1 / 6 if self.major >= 3 else 0.2, "beta": 0.5}),
        }
        if name in simple:
            op, attrs = simple[name]
            return out(self.op(op, [xin], layer, attrs, hint=hint)[0])
        if name in ("softmax", "log_softmax"):
            axis = _ir_axis(-1, x.rank, lay)
            op = "Softmax" if name == "softmax" else "LogSoftmax"
            return out(self.op(op, [xin], layer, {"axis": axis}, hint=hint)[0])
        if name == "relu6":
            return out(self.clip(layer, xin, 0.0, 6.0, hint))
        if name in ("swish", "silu"):
            s = self.op("Sigmoid", [xin], layer)[0]
            return out(self.op("Mul", [xin, s], layer, hint=hint)[0])
        if name == "mish":
            sp = self.op("Softplus", [xin], layer)[0]
            t = self.op("Tanh", [sp], layer)[0]
            return out(self.op("Mul", [xin, t], layer, hint=hint)[0])
        ins = [self.get(x, "kl")]
        y = self.op("Activation", ins, layer, {"activation": name}, hint=hint, domain="keras")[0]
        self.opaque.append(f"{layer} (activation {name})")
        return self.val(y, x.shape, "kl", x.dtype)

    def clip(self, layer: str, xin: str, lo: float | None, hi: float | None, hint: str | None = None) -> str:
        ins = [xin]
        ins.append("" if lo is None else self.const(layer, "clip_min", np.array(lo, np.float32)))
        ins.append("" if hi is None else self.const(layer, "clip_max", np.array(hi, np.float32)))
        return self.op("Clip", ins, layer, hint=hint)[0]


def _act_name(act: Any) -> str | None:
    """A Keras activation's name, None for linear."""
    if isinstance(act, dict):  # Keras 3 may serialise a built-in activation as a dict
        act = act.get("config") if isinstance(act.get("config"), str) else act.get("class_name")
    return None if act in (None, "linear") else str(act)


def _pre_act(L: _Layer) -> str:
    """The name of a layer's output before its activation (the layer's own name when it has none)."""
    return L.name if _act_name(L.cfg.get("activation")) is None else f"{L.name}/pre_act"


@dataclass
class _Ref:
    layer: str
    node: int
    tensor: int
    shape: tuple[int | None, ...] | None = None


def _tensor_refs(obj: Any, out: list[_Ref]) -> None:
    """Keras 3 node args: keras tensors (dicts with keras_history) anywhere inside lists and dicts."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            c = obj.get("config", {})
            h = c["keras_history"]
            shape = c.get("shape")
            out.append(_Ref(h[0], int(h[1]), int(h[2]), None if shape is None else tuple(shape)))
            return
        for v in obj.values():
            _tensor_refs(v, out)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _tensor_refs(v, out)


def _inbound(nodes: list[Any]) -> list[list[_Ref]]:
    """Each call of a layer as its input tensors, from Keras 2 (lists) or Keras 3 (dicts) inbound_nodes."""
    calls = []
    for node in nodes:
        refs: list[_Ref] = []
        if isinstance(node, dict):
            _tensor_refs(node.get("args", []), refs)
        else:
            refs = [_Ref(str(e[0]), int(e[1]), int(e[2])) for e in node]
        calls.append(refs)
    return calls


def _io_refs(v: Any) -> list[_Ref]:
    """A model's input_layers or output_layers: [name, node, tensor] triples."""
    if not v:
        return []
    if isinstance(v, dict):  # Keras 3 models with named (dict) inputs or outputs
        v = list(v.values())
    if isinstance(v[0], str):  # Keras 3 writes a single input/output unwrapped
        v = [v]
    return [_Ref(str(e[0]), int(e[1]), int(e[2])) for e in v]


def _ir_axis(axis: int, rank: int | None, layout: str) -> int:
    """Where Keras axis ``axis`` lies in an IR value of ``layout``."""
    if rank is None:
        return axis
    a = axis % rank
    if layout == "kl" or rank <= 2:
        return a
    return _to_cf(rank).index(a)


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


def _channels_first_data(cfg: dict[str, Any]) -> bool:
    return cfg.get("data_format") == "channels_first"


def _spatial_shape(x: _Val, cfg: dict[str, Any], nd: int) -> tuple[list[int | None], int | None]:
    """Spatial dims and channels of a Keras-order shape for a layer's data_format."""
    if x.shape is None or len(x.shape) != nd + 2:
        return [None] * nd, None
    if _channels_first_data(cfg):
        return list(x.shape[2:]), x.shape[1]
    return list(x.shape[1:-1]), x.shape[-1]


def _out_shape(cfg: dict[str, Any], sp: list[int | None], ch: int | None) -> tuple:
    return (None, ch, *sp) if _channels_first_data(cfg) else (None, *sp, ch)


# -- converters: one per Keras layer class -----------------------------------------------------------


def _dense(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x = xs[0]
    k = b.param(L, "kernel", "kernel", "Dense", [("transpose", (1, 0))])
    bias = b.param(L, "bias", "bias", "Dense")
    if not k:
        return b.opaque_op(L, xs)
    xin = b.any(x)[0] if x.rank is not None and x.rank <= 2 else b.get(x, "kl")  # Dense acts on the last axis
    units = b.weights[k].shape[0]
    y = b.op("Dense", [xin, k, bias], L.name, hint=_pre_act(L))[0]
    shape = None if x.shape is None else (*x.shape[:-1], units)
    return [b.activation(L, b.val(y, shape, "kl"), L.cfg.get("activation"))]


def _conv(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x, cfg = xs[0], L.cfg
    vs = b.layer_vars(L)
    if "kernel" not in vs or "Transpose" in L.cls:
        return b.opaque_op(L, xs)
    kshape = vs["kernel"].shape
    nd = len(kshape) - 2
    lay = "kl" if _channels_first_data(cfg) else "cf"
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
    if _is_depthwise(L.cls):
        w = b.param(L, "kernel", "kernel", "Conv", _depthwise_layout(kshape))
        attrs["group"] = kshape[-2]
        ch = kshape[-2] * kshape[-1]
    else:
        w = b.param(L, "kernel", "kernel", "Conv", _conv_layout(len(kshape)))
        attrs["group"] = int(cfg.get("groups", 1))
        ch = kshape[-1]
    bias = b.param(L, "bias", "bias", "Conv")
    y = b.op("Conv", [xin, w, bias], L.name, attrs, hint=_pre_act(L))[0]
    return [b.activation(L, b.val(y, _out_shape(cfg, osp, ch), lay), cfg.get("activation"))]


def _separable(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x, cfg = xs[0], L.cfg
    vs = b.layer_vars(L)
    dshape, pshape = vs["depthwise_kernel"].shape, vs["pointwise_kernel"].shape
    nd = len(dshape) - 2
    lay = "kl" if _channels_first_data(cfg) else "cf"
    xin = b.get(x, lay)
    strides, dil = _tup(cfg.get("strides", 1), nd), _tup(cfg.get("dilation_rate", 1), nd)
    ks = list(dshape[:nd])
    attrs = _window_attrs(cfg, ks, strides, dil, b.path)
    attrs.update(dilations=dil, group=dshape[-2])
    dw = b.param(L, "depthwise_kernel", "kernel", "Conv", _depthwise_layout(dshape))
    pw = b.param(L, "pointwise_kernel", "kernel", "Conv", _conv_layout(len(pshape)))
    bias = b.param(L, "bias", "bias", "Conv")
    h = b.op("Conv", [xin, dw, ""], L.name, attrs, hint=f"{L.name}/depthwise")[0]
    pattrs = {
        "kernel_shape": [1] * nd,
        "strides": [1] * nd,
        "pads": [0] * (2 * nd),
        "dilations": [1] * nd,
        "group": 1,
    }
    y = b.op("Conv", [h, pw, bias], L.name, pattrs, hint=_pre_act(L))[0]
    sp, _ = _spatial_shape(x, cfg, nd)
    osp = [
        _spatial_out(n, k, s, d, str(cfg.get("padding", "valid")))
        for n, k, s, d in zip(sp, ks, strides, dil, strict=True)
    ]
    return [b.activation(L, b.val(y, _out_shape(cfg, osp, pshape[-1]), lay), cfg.get("activation"))]


def _pool(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x, cfg = xs[0], L.cfg
    nd = int(L.cls[-2])
    lay = "kl" if _channels_first_data(cfg) else "cf"
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


def _global_pool(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x, cfg = xs[0], L.cfg
    nd = int(L.cls[-2])
    lay = "kl" if _channels_first_data(cfg) else "cf"
    op = "GlobalMaxPool" if "Max" in L.cls else "GlobalAveragePool"
    _, ch = _spatial_shape(x, cfg, nd)
    if cfg.get("keepdims", False):
        y = b.op(op, [b.get(x, lay)], L.name, hint=L.name)[0]
        return [b.val(y, _out_shape(cfg, [1] * nd, ch), lay)]
    y = b.op(op, [b.get(x, lay)], L.name)[0]
    return [b.val(b.op("Flatten", [y], L.name, {"axis": 1}, hint=L.name)[0], (None, ch), "kl")]


def _batchnorm(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
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


def _activation_layer(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    y = b.activation(L, xs[0], L.cfg.get("activation"))
    if y is xs[0]:  # linear: keep the layer visible
        return _identity(b, L, xs)
    return [y]


def _identity(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    xin, lay = b.any(xs[0])
    return [b.val(b.op("Identity", [xin], L.name, hint=L.name)[0], xs[0].shape, lay, xs[0].dtype)]


def _unary(op: str, attrs: dict[str, Any], b: _Builder, L: _Layer, x: _Val) -> _Val:
    xin, lay = b.any(x)
    return b.val(b.op(op, [xin], L.name, attrs, hint=L.name)[0], x.shape, lay, x.dtype)


def _relu_layer(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    cfg, x = L.cfg, xs[0]
    mx = None if cfg.get("max_value") is None else float(cfg["max_value"])
    slope = float(cfg.get("negative_slope") or 0.0)
    if float(cfg.get("threshold") or 0.0) != 0.0:
        return b.opaque_op(L, xs)
    if slope == 0.0 and mx is None:
        return [_unary("Relu", {}, b, L, x)]
    if slope == 0.0:
        xin, lay = b.any(x)
        return [b.val(b.clip(L.name, xin, 0.0, mx, L.name), x.shape, lay)]
    y = _unary("LeakyRelu", {"alpha": slope}, b, L, x)
    if mx is None:
        return [y]
    xin, lay = b.any(y)
    return [b.val(b.clip(L.name, xin, None, mx, f"{L.name}/max"), x.shape, lay)]


def _leaky_relu(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    alpha = L.cfg.get("negative_slope", L.cfg.get("alpha", 0.3))
    return [_unary("LeakyRelu", {"alpha": float(alpha)}, b, L, xs[0])]


def _elu(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    return [_unary("Elu", {"alpha": float(L.cfg.get("alpha", 1.0))}, b, L, xs[0])]


def _softmax(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    axis = L.cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if not isinstance(axis, int):
        return b.opaque_op(L, xs)
    xin, lay = b.any(xs[0])
    y = b.op("Softmax", [xin], L.name, {"axis": _ir_axis(axis, xs[0].rank, lay)}, hint=L.name)[0]
    return [b.val(y, xs[0].shape, lay)]


def _prelu(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
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


def _flatten(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x = xs[0]
    if _channels_first_data(L.cfg):
        return b.opaque_op(L, xs)
    shape = None
    if x.shape is not None:
        rest = [d for d in x.shape[1:] if d is not None]
        shape = (None, math.prod(rest) if len(rest) == len(x.shape) - 1 else None)
    return [b.val(b.op("Flatten", [b.get(x, "kl")], L.name, {"axis": 1}, hint=L.name)[0], shape, "kl")]


def _reshape(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x = xs[0]
    target = [int(d) for d in L.cfg["target_shape"]]
    # -1 for the batch where the target has no -1 of its own; else ONNX's 0 ("copy this dim").
    spec = np.array([0 if -1 in target else -1, *target], np.int64)
    shape_w = b.const(L.name, "shape", spec)
    shape: tuple[int | None, ...] = (None, *target)
    if -1 in target:
        shape = (None, *[None if d == -1 else d for d in target])
        dims = [d for d in x.shape[1:] if d is not None] if x.shape is not None else []
        if x.shape is not None and len(dims) == len(x.shape) - 1:
            known = math.prod(d for d in target if d != -1)
            shape = (None, *[math.prod(dims) // known if d == -1 else d for d in target])
    y = b.op("Reshape", [b.get(x, "kl"), shape_w], L.name, hint=L.name)[0]
    return [b.val(y, shape, "kl", x.dtype)]


def _permute(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x = xs[0]
    perm = [0, *(int(d) for d in L.cfg["dims"])]
    shape = None if x.shape is None else tuple(x.shape[i] for i in perm)
    y = b.op("Transpose", [b.get(x, "kl")], L.name, {"perm": perm}, hint=L.name)[0]
    return [b.val(y, shape, "kl", x.dtype)]


def _merge_layout(b: _Builder, xs: list[_Val]) -> str:
    ranks = {x.rank for x in xs}
    if len(ranks) == 1 and None not in ranks and next(iter(ranks)) > 2:  # type: ignore[operator]
        return "cf" if any(x.cf for x in xs) else "kl"
    return "kl"  # different ranks broadcast in Keras order


def _merge(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    op = {
        "Add": "Add",
        "Subtract": "Sub",
        "Multiply": "Mul",
        "Average": "Add",
        "Maximum": "Max",
        "Minimum": "Min",
    }[L.cls]
    lay = _merge_layout(b, xs)
    ins = [b.get(x, lay) for x in xs]
    last = L.cls != "Average"
    acc = ins[0]
    for i, other in enumerate(ins[1:]):
        end = last and i == len(ins) - 2
        acc = b.op(op, [acc, other], L.name, hint=L.name if end else None)[0]
    if L.cls == "Average":
        n = b.const(L.name, "count", np.array(len(ins), np.float32))
        acc = b.op("Div", [acc, n], L.name, hint=L.name)[0]
    shape = max((x.shape for x in xs if x.shape is not None), key=len, default=None)
    return [b.val(acc, shape, lay)]


def _concat(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    axis = int(L.cfg.get("axis", -1))
    lay = _merge_layout(b, xs)
    r = xs[0].rank
    y = b.op("Concat", [b.get(x, lay) for x in xs], L.name, {"axis": _ir_axis(axis, r, lay)}, hint=L.name)[0]
    shape = None
    if r is not None and all(x.shape is not None and len(x.shape) == r for x in xs):
        a = axis % r
        dims = [x.shape[a] for x in xs]  # type: ignore[index]
        s = list(xs[0].shape)  # type: ignore[arg-type]
        s[a] = None if None in dims else sum(dims)  # type: ignore[arg-type]
        shape = tuple(s)
    return [b.val(y, shape, lay)]


def _embedding(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    x = xs[0]
    table = b.param(L, "embeddings", "embedding", "Embedding")
    ids = b.get(x, "kl")
    if not np.issubdtype(np.dtype(x.dtype), np.integer):  # Keras casts float ids itself
        ids = b.op("Cast", [ids], L.name, {"to": _INT64}, hint=f"{L.name}/ids")[0]
    dim = b.weights[table].shape[1]
    y = b.op("Gather", [table, ids], L.name, {"axis": 0}, hint=L.name)[0]
    return [b.val(y, None if x.shape is None else (*x.shape, dim), "kl")]


def _time_distributed(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
    inner = L.cfg.get("layer", {})
    cls = inner.get("class_name", "")
    if cls in ("Dense", "Activation", *_DROPOUTS):
        # These act on the last axis or elementwise: applying them to the whole tensor is the same.
        return _CONVERTERS[cls](b, replace(L, cls=cls, cfg=inner.get("config", {})), xs)
    return b.opaque_op(L, xs)


def _pad_crop(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
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
    lay = "kl" if _channels_first_data(cfg) else "cf"
    y = b.op("Pad", [b.get(x, lay), pads], L.name, {"mode": "constant"}, hint=L.name)[0]
    sp, ch = _spatial_shape(x, cfg, nd)
    osp = [None if n is None else n + p + q for n, p, q in zip(sp, begins, ends, strict=True)]
    return [b.val(y, _out_shape(cfg, osp, ch), lay, x.dtype)]


def _rescaling(b: _Builder, L: _Layer, xs: list[_Val]) -> list[_Val]:
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


_CONVERTERS: dict[str, Converter] = {
    "Dense": _dense,
    "Activation": _activation_layer,
    "ReLU": _relu_layer,
    "LeakyReLU": _leaky_relu,
    "ELU": _elu,
    "PReLU": _prelu,
    "Softmax": _softmax,
    "BatchNormalization": _batchnorm,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Permute": _permute,
    "Add": _merge,
    "Subtract": _merge,
    "Multiply": _merge,
    "Average": _merge,
    "Maximum": _merge,
    "Minimum": _merge,
    "Concatenate": _concat,
    "Embedding": _embedding,
    "TimeDistributed": _time_distributed,
    "Rescaling": _rescaling,
    **{c: _identity for c in _DROPOUTS},
    **{f"{k}{n}D": _pad_crop for k in ("ZeroPadding", "Cropping") for n in (1, 2)},
    **{f"{p}Conv{n}D": _conv for p in ("", "Depthwise") for n in (1, 2)},
    **{f"SeparableConv{n}D": _separable for n in (1, 2)},
    **{f"{k}Pooling{n}D": _pool for k in ("Max", "Average") for n in (1, 2)},
    **{f"Global{k}Pooling{n}D": _global_pool for k in ("Max", "Average") for n in (1, 2)},
}


# -- weights-only files ------------------------------------------------------------------------------


def _guess_roles(layer: str, kind: str, vs: list[_Var]) -> list[tuple[str, str, str, list[LayoutOp]]]:
    """(slot, role, op, layout) per variable of a layer known only by its name or key and shapes."""
    names = [v.name for v in vs]
    if not all(names):
        key_slots = {
            "dense": ["kernel", "bias"],
            "embedding": ["embeddings"],
            "p_re_lu": ["alpha"],
            "batch_normalization": ["gamma", "beta", "moving_mean", "moving_variance"],
        }
        if re.fullmatch(r"(depthwise_)?conv[123]d(_transpose)?", kind):
            key_slots[kind] = ["kernel", "bias"]
        if re.fullmatch(r"separable_conv[12]d", kind):
            key_slots[kind] = ["depthwise_kernel", "pointwise_kernel", "bias"]
        slots = key_slots.get(kind, [])
        if kind == "batch_normalization" and len(vs) < 4:
            # moving statistics come last; with 3 variables, gamma or beta is missing and we cannot tell which
            slots = ["0"] * (len(vs) - 2) + slots[2:]
        elif len(vs) != len(slots) and not (slots[-1:] == ["bias"] and len(vs) == len(slots) - 1):
            slots = []  # not the layer its key suggests: guess from shapes
        if not slots and 1 <= len(vs) <= 2 and len(vs[0].shape) >= 2:
            if len(vs) == 1 or vs[1].shape == vs[0].shape[-1:]:
                slots = ["kernel", "bias"]
        names = [slots[i] if i < len(slots) else str(i) for i in range(len(vs))]
    is_bn = "moving_mean" in names
    out: list[tuple[str, str, str, list[LayoutOp]]] = []
    kernel_op = ""
    for slot, v in zip(names, vs, strict=True):
        shape, nd = v.shape, len(v.shape)
        assert slot is not None
        if (slot == "depthwise_kernel" or (slot == "kernel" and kind.startswith("depthwise"))) and nd >= 3:
            kernel_op = "Conv"
            out.append((slot, "kernel", "Conv", _depthwise_layout(shape)))
        elif slot in ("kernel", "pointwise_kernel") and nd == 2:
            kernel_op = "Dense"
            out.append((slot, "kernel", "Dense", [("transpose", (1, 0))]))
        elif slot in ("kernel", "pointwise_kernel") and nd >= 3:
            kernel_op = "ConvTranspose" if "transpose" in f"{kind}/{layer}".lower() else "Conv"
            out.append((slot, "kernel", kernel_op, _conv_layout(nd)))
        elif slot == "bias":
            out.append((slot, "bias", kernel_op, []))
        elif slot in _BN_ROLES and is_bn:
            out.append((slot, _BN_ROLES[slot], "BatchNormalization", []))
        elif slot == "embeddings":
            out.append((slot, "embedding", "Embedding", []))
        elif slot == "alpha":
            out.append((slot, "alpha", "PRelu", []))
        else:
            out.append((slot, "other" if v.dtype.kind == "f" else "buffer", "", []))
    return out


def _legacy_layers(root: Any) -> list[tuple[str, str, list[_Var]]]:
    """(layer, kind, variables) of a legacy-layout group; a nested model's weights split by inner layer."""
    out: dict[str, list[_Var]] = {}
    for lname in _attr_strings(root, "layer_names"):
        g = root.get(lname)
        for w in _attr_strings(g, "weight_names") if g is not None else []:
            parts = w.split("/")
            owner = parts[-2] if len(parts) > 1 else lname
            layer = lname if owner == lname else f"{lname}/{owner}"
            out.setdefault(layer, []).append(_read(g[w], parts[-1].split(":")[0]))
    return [(layer, layer.rsplit("/", 1)[-1], vs) for layer, vs in out.items()]


def _k3_layers(g: Any, prefix: str = "") -> list[tuple[str, str, list[_Var]]]:
    out = []
    for key in g:
        child = g[key]
        if not hasattr(child, "keys"):
            continue
        name = prefix + (_vars_name(child) or key)
        vs = _collect_vars(child)
        if vs:
            out.append((name, re.sub(r"_\d+$", "", key), vs))
        if "layers" in child:
            out += _k3_layers(child["layers"], f"{name}/")
    return out


def _weights_only(layers: list[tuple[str, str, list[_Var]]]) -> tuple[dict[str, Weight], dict[str, str]]:
    weights: dict[str, Weight] = {}
    datasets: dict[str, str] = {}
    for layer, kind, vs in layers:
        for (slot, role, op, layout), v in zip(_guess_roles(layer, kind, vs), vs, strict=True):
            name, i = f"{layer}/{slot}", 1
            while name in weights:
                name, i = f"{layer}/{slot}#{i}", i + 1
            weights[name] = Weight(
                name,
                v.ir_array(layout),
                layer=layer,
                role=role,
                op=op,
                source=v.path,
                source_shape=v.shape,
                layout=layout,
            )
            datasets[name] = v.path
    return weights, datasets


# -- loading -----------------------------------------------------------------------------------------


def _major(version: str, default: int) -> int:
    m = re.match(r"(\d+)\.", version)
    return int(m.group(1)) if m else default


def _build(cfg: dict[str, Any], store: Any, major: int, path: str) -> Graph:
    b = _Builder(store, major, path)
    outs = b.model(cfg, "", (), (), None)
    outputs = [ValueInfo(b.get(v, "kl"), None if v.shape is None else tuple(v.shape), v.dtype) for v in outs]
    return Graph(
        nodes=b.nodes,
        inputs=b.inputs,
        outputs=outputs,
        weights=b.weights,
        name=str(cfg.get("config", {}).get("name") or "model"),
        source=KerasSource(path, "", b.datasets),
        meta=ModelMeta(
            notes=[f"layer {o} is kept as an opaque op: the executor cannot run it" for o in b.opaque]
        ),
    )


def _is_model_config(cfg: Any) -> bool:
    return (
        isinstance(cfg, dict)
        and cfg.get("class_name") in _NESTED
        and isinstance(cfg.get("config", {}).get("layers"), list)
    )


def _from_config_or_weights(cfg: Any, store: Any, layers: Callable[[], list], major: int, path: str) -> Graph:
    if _is_model_config(cfg):
        return _build(cfg, store, major, path)
    weights, datasets = _weights_only(layers())
    g = Graph(weights=weights, has_graph=False, source=KerasSource(path, "", datasets))
    if cfg is not None:
        g.meta.notes.append(
            f"the model is a {cfg.get('class_name')!s}, not a Sequential or Functional config"
        )
    g.meta.notes.append(WEIGHTS_ONLY_NOTE)
    return g


def _load_h5(p: Path) -> Graph:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise InputError(
            f"not a readable HDF5 file (truncated or corrupt?): {e}",
            path=str(p),
            hint="Re-save it with model.save()",
        ) from None
    with f:
        a = f.attrs
        version = _s(a.get("keras_version", ""))
        major = _major(version, 2)
        opt: tuple[int, int, str] = (0, 0, "")
        if "model_config" in a:
            cfg = _json_attr(a["model_config"], "the model_config attribute", p)
            root = f["model_weights"] if "model_weights" in f else f
            opt = (*_count_datasets(f.get("optimizer_weights")), "optimizer_weights")
            g = _from_config_or_weights(cfg, _LegacyStore(root), lambda: _legacy_layers(root), major, str(p))
        elif "layer_names" in a or "layer_names0" in a:
            g = _from_config_or_weights(None, None, lambda: _legacy_layers(f), major, str(p))
        elif "model_weights" in f:
            g = _from_config_or_weights(None, None, lambda: _legacy_layers(f["model_weights"]), major, str(p))
        elif "layers" in f:
            major = _major(version, 3)
            g = _from_config_or_weights(None, None, lambda: _k3_layers(f["layers"]), major, str(p))
            opt = (*_count_datasets(f.get("optimizer")), "optimizer")
        else:
            raise InputError(
                "HDF5 file holds neither a Keras model_config nor Keras weights",
                path=str(p),
                hint="Give a file written by model.save() or model.save_weights()",
            )
        g.meta.format = "keras-h5"
        g.meta.extra["backend"] = _s(a.get("backend", "")) or (
            _s(f["model_weights"].attrs.get("backend", "")) if "model_weights" in f else ""
        )
    return _finish(g, p, "h5", version, major, opt)


_MAX_CONFIG = 64 << 20  # a config.json of a thousand-layer model is a few megabytes


def _json_member(z: zipfile.ZipFile, name: str, p: Path) -> Any:
    try:
        return loads(read_member(z, name, p, limit=_MAX_CONFIG))
    except JSONError as e:
        raise InputError(f"{name} is not valid JSON ({e})", path=str(p)) from None


def _json_attr(raw: Any, what: str, p: Path) -> Any:
    try:
        return loads(_s(raw))
    except JSONError as e:
        raise InputError(f"{what} is not valid JSON ({e})", path=str(p)) from None


def _load_zip(p: Path) -> Graph:
    import h5py

    try:
        with zipfile.ZipFile(p) as z:
            members = set(z.namelist())
            if "config.json" not in members:
                raise InputError(
                    ".keras archive has no config.json",
                    path=str(p),
                    hint="Re-save it with model.save('x.keras')",
                )
            if "model.weights.h5" not in members:
                raise InputError(
                    ".keras archive has no model.weights.h5",
                    path=str(p),
                    hint="Re-save it with model.save('x.keras')",
                )
            cfg = _json_member(z, "config.json", p)
            meta = _json_member(z, "metadata.json", p) if "metadata.json" in members else {}
            data = read_member(z, "model.weights.h5", p)
    except UNREADABLE as e:
        raise InputError(f"not a valid .keras zip archive: {e}", path=str(p)) from None
    version = _s(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
    major = _major(version, 3)
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise InputError(
            f"model.weights.h5 inside the archive is not readable HDF5: {e}", path=str(p)
        ) from None
    with f:
        layers = f["layers"] if "layers" in f else f
        g = _from_config_or_weights(cfg, _ZipStore(f), lambda: _k3_layers(layers), major, str(p))
        opt = (*_count_datasets(f.get("optimizer")), "optimizer")
    g.meta.format = "keras"
    g.meta.extra["backend"] = ""
    return _finish(g, p, "keras", version, major, opt)


def _finish(g: Graph, p: Path, container: str, version: str, major: int, opt: tuple[int, int, str]) -> Graph:
    g.meta.producer, g.meta.producer_version, g.meta.path = "keras", version, str(p)
    g.meta.extra["keras_major"] = major
    if opt[0]:
        group = opt[2]
        g.meta.extra["training_state"] = {group: {"tensors": opt[0], "bytes": opt[1]}}
        g.meta.notes.append(
            f"training state left out of the artifact: {group} ({opt[0]} tensors, {opt[1]} bytes) "
            "(--keep-training-state keeps it)"
        )
    g.source.container = container
    g.validate()
    return g


def load_keras(path: str | os.PathLike[str]) -> Graph:
    """Load a Keras .h5 (full model or weights only, Keras 2 or 3) or .keras file into the IR."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", path=str(p), hint="Check the path")
    if p.stat().st_size == 0:
        raise InputError("file is empty", path=str(p), hint="Re-export the model")
    try:
        return _load_zip(p) if p.suffix.lower() == ".keras" else _load_h5(p)
    except NNCError as e:
        if e.path is None:  # raised where the file's name is not at hand
            e.path = str(p)
        raise
    except IRError as e:
        raise InputError(f"the model config does not form a valid graph: {e}", path=str(p)) from None
    except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as e:
        # h5py raises RuntimeError (and OSError, KeyError...) on damaged headers and B-trees
        raise InputError(
            f"cannot read the Keras model ({type(e).__name__}: {e})",
            path=str(p),
            hint="The file is corrupt or from an unsupported Keras version; re-save it with model.save()",
        ) from None


# -- writing -----------------------------------------------------------------------------------------


def _patch(f: Any, graph: Graph, src: KerasSource, out: Path) -> None:
    """Overwrite each weight dataset in place with the graph's value (same shape and dtype)."""
    for name, dpath in src.datasets.items():
        w = graph.weights.get(name)
        if w is None:  # dropped from the graph: the file keeps its original value
            continue
        ds = f[dpath]
        arr = w.to_source()
        if tuple(arr.shape) != tuple(ds.shape):
            raise OutputError(
                f"weight {name!r} has shape {tuple(arr.shape)} in Keras layout but the file stores {tuple(ds.shape)}",
                path=str(out),
                hint="A Keras file keeps its layer shapes; write .onnx for a model whose shapes changed",
            )
        ds[...] = arr.astype(ds.dtype, copy=False)


def _zip_to_h5(graph: Graph, src: KerasSource, tmp: Path, out: Path) -> None:
    """Write a flat .keras model in the legacy .h5 layout (model_config + model_weights), as Keras 3 does."""
    import h5py

    with zipfile.ZipFile(src.path) as z:
        cfg = _json_member(z, "config.json", Path(src.path))
        meta = _json_member(z, "metadata.json", Path(src.path)) if "metadata.json" in z.namelist() else {}
        buf = io.BytesIO(read_member(z, "model.weights.h5", src.path))
    layers = cfg.get("config", {}).get("layers") if _is_model_config(cfg) else None
    if layers is None or any(lc.get("class_name") in _NESTED for lc in layers):
        # A nested model's legacy weight order (all trainable, then the rest) is Keras's to decide.
        raise OutputError(
            "only a flat Sequential or Functional .keras model can be written as .h5",
            path=str(out),
            hint="Write .keras (as the source) or .onnx",
        )
    slot_of = {p: name.rsplit("/", 1)[-1] for name, p in src.datasets.items()}
    if cfg["class_name"] == "Sequential":  # Keras 3 keys a Sequential's layers without its InputLayer
        layers = [lc for lc in layers if lc.get("class_name") != "InputLayer"]
    with h5py.File(buf, "r+") as wf, h5py.File(tmp, "w") as f:
        _patch(wf, graph, src, out)
        store = _ZipStore(wf)
        f.attrs["model_config"] = json.dumps({"class_name": cfg["class_name"], "config": cfg["config"]})
        f.attrs["keras_version"] = str(meta.get("keras_version", "3"))
        mw = f.create_group("model_weights")
        used: dict[str, int] = {}
        names = []
        for lc in layers:
            name = lc.get("config", {}).get("name") or lc.get("name")
            names.append(name)
            g = store.group((name,), (_unique(_snake(lc["class_name"]), used),))
            wns = []
            for i, v in enumerate(_collect_vars(g) if g is not None else []):
                wns.append(f"{name}/{slot_of.get(v.path, i)}")
                mw.create_dataset(f"{name}/{wns[-1]}", data=v.array)
            mw.require_group(name).attrs["weight_names"] = [w.encode() for w in wns] if wns else np.array([])
        mw.attrs["layer_names"] = [n.encode() for n in names]


def save_keras(graph: Graph, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``graph`` back into a copy of the Keras file it was loaded from, weights patched in place."""
    import h5py

    out = Path(path)
    src = graph.source
    if not isinstance(src, KerasSource):
        raise OutputError(
            "only a model loaded from a Keras file can be written as Keras",
            path=str(out),
            hint="Write .onnx instead",
        )
    out = check_output(out, force=force, inputs=(src.path,))
    if not Path(src.path).is_file():
        raise OutputError(
            f"the source file {src.path} is gone; the Keras writer patches a copy of it", path=str(out)
        )
    want = "keras" if out.suffix.lower() == ".keras" else "h5"
    state = graph.meta.extra.get("training_state") or {}
    drop = "" if graph.meta.extra.get("keep_training_state") else next(iter(state), "")
    if want == "keras" and src.container != "keras":
        raise OutputError(
            "cannot turn an .h5 model into .keras", path=str(out), hint="Write .h5 (as the source) or .onnx"
        )
    with atomic_path(out) as tmp:
        if src.container == "keras" and want == "h5":
            _zip_to_h5(graph, src, tmp, out)
        elif want == "h5" and drop:
            with h5py.File(src.path, "r") as fin, h5py.File(tmp, "w") as f:
                _copy_without(fin, f, drop)
                _patch(f, graph, src, out)
        elif want == "h5":
            shutil.copyfile(src.path, tmp)
            with h5py.File(tmp, "r+") as f:
                _patch(f, graph, src, out)
        else:
            with zipfile.ZipFile(src.path) as zin, zipfile.ZipFile(tmp, "w") as zout:
                for info in zin.infolist():
                    data = zin.read(info)
                    if info.filename == "model.weights.h5":
                        buf = io.BytesIO(data)
                        if drop:
                            fresh = io.BytesIO()
                            with h5py.File(buf, "r") as fin, h5py.File(fresh, "w") as f:
                                _copy_without(fin, f, drop)
                            buf = fresh
                        with h5py.File(buf, "r+") as f:
                            _patch(f, graph, src, out)
                        data = buf.getvalue()
                    zout.writestr(info, data)  # same name, date and compression as the source member
    return out


__all__ = ["WEIGHTS_ONLY_NOTE", "KerasSource", "load_keras", "save_keras"]
