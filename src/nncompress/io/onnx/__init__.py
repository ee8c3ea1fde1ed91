"""ONNX files <-> the graph IR.

Loading keeps ONNX ops as they are, with the normalisations docs/ir.md asks for: a Gemm or MatMul
whose weight is a constant 2-D tensor used by that node only becomes ``Dense`` (weight turned to
(out, in)), and a Softmax/LogSoftmax of opset < 13 gets ``coerce_2d=1``. Initializers and Constant
nodes, those of If/Loop/Scan bodies included, all become weights of the top graph (renamed where
two scopes use the same name).

Writing a graph that came from an ONNX file patches that file: each weight tensor is replaced where
it was and every other field is kept, so what the IR does not model (custom ops, value_info,
functions, metadata) survives. Any other graph, or one whose structure a pass changed, is exported
node by node.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import InputError, NNCError, OutputError, UnsupportedError
from nncompress.io._atomic import atomic_path, check_output
from nncompress.io.onnx import wire as _onnxwire
from nncompress.io.onnx.wire import RawTensor
from nncompress.ir import Graph, IRError, ModelMeta, Node, ValueInfo, Weight
from nncompress.ir.names import Names, dtype_name

__all__ = ["load_onnx", "save_onnx"]

EXPORT_OPSET = 17
# protobuf cannot serialise 2 GiB; above this the tensors go to a side file
_EXTERNAL_ABOVE = 1_800_000_000
_CONST_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints")
_BN_ROLES = ("bn_gamma", "bn_beta", "bn_mean", "bn_var")
_STRONG_ROLES = ("kernel", "bias", *_BN_ROLES, "embedding", "alpha")
_IR_ONLY_ATTRS = ("coerce_2d",)
# Domains that mean something to ONNX runtimes; ops of any other domain (keras, torch) have no
# ONNX meaning unless the source file declared the domain itself.
_ONNX_DOMAINS = (
    "ai.onnx.ml",
    "ai.onnx.training",
    "ai.onnx.preview",
    "ai.onnx.preview.training",
    "ai.onnx.contrib",
    "com.microsoft",
    "com.microsoft.experimental",
    "com.microsoft.nchwc",
    "org.pytorch.aten",
)
_DEFAULT_DOMAIN_VERSION = {"ai.onnx.ml": 3}
_REDUCE_OPS = (
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
)

# where a tensor sits in the file: (node index, attribute, subgraph index or -1) from the top graph
Scope = tuple[tuple[int, str, int], ...]
# (scope, "init" | "sparse" | "const", index in the initializer/node list, tensor name or attribute)
Locator = tuple[Scope, str, int, str]


@dataclass
class _Source:
    """What the patch writer needs to find the loaded file and each weight's tensor in it again."""

    path: str
    stat: tuple[int, int]
    locators: dict[str, Locator] = field(default_factory=dict)
    fingerprint: str = ""
    functions: list[bytes] = field(default_factory=list)


# -- loading -----------------------------------------------------------------------------------------


def load_onnx(path: str | os.PathLike[str]) -> Graph:
    """Read an ONNX model (external data resolved next to the file) into the IR."""
    p = Path(path)
    model, raws = _read_model(p)
    try:
        g = _Reader(model, p, raws).read()
        g.validate()
    except NNCError:
        raise
    except IRError as e:
        raise InputError(
            f"inconsistent ONNX graph: {e}", path=str(p), hint="Check it with onnx.checker"
        ) from e
    except Exception as e:  # a malformed tensor or attribute deep in the file
        raise InputError(
            f"malformed ONNX model ({type(e).__name__}: {e})", path=str(p), hint="Re-export the model"
        ) from e
    st = p.stat()
    g.source = _Source(
        path=str(p.resolve()),
        stat=(st.st_size, st.st_mtime_ns),
        locators=g.source,
        fingerprint=_fingerprint(g),
        functions=[f.SerializeToString() for f in model.functions],
    )
    return g


def _read_model(p: Path, *, whole: bool = False) -> tuple[Any, dict[int, RawTensor]]:
    """Parse the file and load its external data, turning every failure into a one-line InputError.

    Unless ``whole``, the top-level initializers' raw_data are left out of the parsed model and
    returned as where they lie in the file (see `_onnxwire`): the loader reads them straight into
    numpy, so that the model is held once, not three times.
    """
    import onnx

    if not p.exists():
        raise InputError("no such file", path=str(p), hint="Check the path")
    if p.is_dir():
        raise InputError("is a directory, not an ONNX file", path=str(p))
    if p.stat().st_size == 0:
        raise InputError("file is empty", path=str(p), hint="Re-export the model")
    raws: list[RawTensor] = []
    try:
        if whole:
            model = onnx.load_model(str(p), load_external_data=False)
        else:
            stripped, raws = _onnxwire.strip(p)
            model = onnx.load_model_from_string(stripped)
    except Exception as e:  # WireError, protobuf DecodeError, RuntimeError from upb, UnicodeDecodeError...
        raise InputError(
            "not a valid ONNX model (truncated or corrupt?)", path=str(p), hint="Re-export or re-download it"
        ) from e
    if model.ir_version <= 0:
        # stray bytes (a text file) can parse as a protobuf message; real models state their IR version
        raise InputError(
            "not a valid ONNX model (truncated or corrupt?)", path=str(p), hint="Re-export or re-download it"
        )
    if not model.HasField("graph"):
        raise InputError("ONNX model has no graph", path=str(p), hint="Re-export the model with its graph")
    _load_external(model, p)
    return model, {r.index: r for r in raws}


def _load_external(model: Any, p: Path) -> None:
    from onnx import external_data_helper as edh

    base = p.absolute().parent
    ext = [t for t in _all_tensors(model.graph) if edh.uses_external_data(t)]
    for t in ext:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        f = base / loc  # not resolved: hub caches keep data files as symlinks elsewhere
        if not loc or os.path.isabs(loc) or os.path.normpath(loc).split(os.sep)[0] == "..":
            raise InputError(
                f"tensor {t.name!r} points to external data outside the model's folder ({loc!r})",
                path=str(p),
                hint="Refusing to read it; re-export with the data file next to the model",
            )
        if not f.is_file():
            raise InputError(
                f"external data file {loc!r} of tensor {t.name!r} is missing",
                path=str(p),
                hint="Keep the data file next to the .onnx file",
            )
        offset = int(info.get("offset") or 0)
        length = int(info["length"]) if info.get("length") else _nbytes(t)
        if length is not None and offset + length > f.stat().st_size:
            raise InputError(
                f"external data file {loc!r} is too short for tensor {t.name!r} (truncated?)",
                path=str(p),
                hint="Copy the data file again",
            )
    if ext:
        try:
            edh.load_external_data_for_model(model, str(base))
        except Exception as e:
            raise InputError(
                f"cannot read external data ({type(e).__name__}: {e})", path=str(p), hint="Copy it again"
            ) from e


# ONNX data types stored one element per itemsize bytes (not strings, not packed 4-bit types)
_PLAIN_TYPES = (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20)


def _nbytes(t: Any) -> int | None:
    from onnx import helper

    if t.data_type not in _PLAIN_TYPES:
        return None
    return math.prod(t.dims) * np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize


def _all_tensors(gp: Any) -> Iterator[Any]:
    """Every TensorProto of a graph: initializers and attribute tensors, subgraphs included."""
    yield from gp.initializer
    for st in gp.sparse_initializer:
        yield st.values
        yield st.indices
    for n in gp.node:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("sparse_tensor"):
                yield a.sparse_tensor.values
                yield a.sparse_tensor.indices
            if a.HasField("g"):
                yield from _all_tensors(a.g)
            for sg in a.graphs:
                yield from _all_tensors(sg)


def _sparse_to_dense(st: Any) -> np.ndarray:
    from onnx import numpy_helper

    values = numpy_helper.to_array(st.values)
    idx = numpy_helper.to_array(st.indices).astype(np.int64)
    dense = np.zeros(tuple(st.dims), values.dtype)
    if idx.ndim == 2:  # [NNZ, rank] coordinates
        idx = np.ravel_multi_index(tuple(idx.T), dense.shape) if idx.size else idx.reshape(-1)
    dense.reshape(-1)[idx] = values
    return dense


def _text(b: bytes) -> str | bytes:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def _dtype_name(elem_type: int) -> str:
    from onnx import TensorProto, helper

    try:
        np_type = helper.tensor_dtype_to_np_dtype(elem_type)
    except Exception:  # UNDEFINED and types onnx cannot map: keep ONNX's own name
        np_type = None
    return dtype_name(np_type) or (TensorProto.DataType.Name(elem_type).lower() if elem_type else "")


def _value_info(vi: Any) -> ValueInfo:
    t = vi.type
    kind = t.WhichOneof("value")
    if kind != "tensor_type":
        return ValueInfo(vi.name, None, kind or "")
    tt = t.tensor_type
    shape: tuple[int | str | None, ...] | None = None
    if tt.HasField("shape"):
        shape = tuple(
            int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
        )
    return ValueInfo(vi.name, shape, _dtype_name(tt.elem_type))


def _count_defs(gp: Any, defs: Counter[str], nodes: Counter[str]) -> None:
    """Count, per name, the scopes that define it (a name defined twice needs a rename when hoisted)."""
    local = {v.name for v in gp.input} | {t.name for t in gp.initializer}
    local |= {st.values.name for st in gp.sparse_initializer}
    for n in gp.node:
        local.update(o for o in n.output if o)
        nodes[n.name] += 1
        for a in n.attribute:
            if a.HasField("g"):
                _count_defs(a.g, defs, nodes)
            for sg in a.graphs:
                _count_defs(sg, defs, nodes)
    defs.update(local)


def _is_float(dtype: np.dtype[Any]) -> bool:
    return bool(np.issubdtype(dtype, np.floating)) or dtype.name in ("bfloat16",)


class _Reader:
    """One ModelProto -> Graph conversion; collects the weights of all scopes into the top graph."""

    def __init__(self, model: Any, path: Path, raws: dict[int, RawTensor]) -> None:
        self.model, self.path, self.raws = model, path, raws
        self.opset = {(i.domain if i.domain != "ai.onnx" else ""): int(i.version) for i in model.opset_import}
        self.weights: dict[str, Weight] = {}
        self.locators: dict[str, Locator] = {}
        self.defs: Counter[str] = Counter()
        self.node_counts: Counter[str] = Counter()
        _count_defs(model.graph, self.defs, self.node_counts)
        # a hoisted name that clashes becomes name__1, name__2...: "__" is rare in ONNX names
        self.names = Names(self.defs, sep="__", always=True)
        self.node_names = Names(repeat=True)

    def read(self) -> Graph:
        m = self.model
        g = self._graph(m.graph, (), "", {})
        g.weights = self.weights
        g.name = m.graph.name or "model"
        _normalise(g, self.opset.get("", 1))
        domains = sorted({f"{n.domain} {n.op}" for n in g.all_nodes() if n.domain})
        notes = []
        if domains:
            notes.append("ops outside the ONNX standard, kept as they are: " + ", ".join(domains))
        g.meta = ModelMeta(
            format="onnx",
            producer=m.producer_name,
            producer_version=m.producer_version,
            path=str(self.path),
            notes=notes,
            extra={
                "ir_version": int(m.ir_version),
                "opset_imports": dict(self.opset),
                "model_version": int(m.model_version),
                "domain": m.domain,
                "graph_name": m.graph.name,
            },
        )
        g.source = self.locators  # load_onnx wraps it into a _Source
        return g

    def _node_name(self, name: str, op: str, i: int, label: str) -> str:
        cand = name if name and self.node_counts[name] == 1 else f"{label}{name or op}_{i}"
        return self.node_names.fresh(cand)

    def _add(self, orig: str, arr: np.ndarray, rename: dict[str, str], loc: Locator, src: str) -> None:
        top = not loc[0]
        name = orig
        if name in self.weights or (not top and self.defs[name] > 1):
            name = self.names.fresh(orig)
        if name != orig:
            rename[orig] = name
        else:
            rename.pop(orig, None)
        while src in self.locators:
            src += "#"
        self.locators[src] = loc
        self.weights[name] = Weight(name, np.asarray(arr), source=src, source_shape=tuple(arr.shape))

    def _check_size(self, name: str, dims: Any, data_type: int) -> None:
        """A tensor's declared size against the memory budget, before it is made (an initializer
        or a sparse one can declare 2^40 elements in a few bytes)."""
        from onnx import helper

        from nncompress._limits import check_alloc

        if any(d < 0 for d in dims):
            raise InputError(f"tensor {name!r} has a negative dimension", path=str(self.path))
        try:
            item = np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).itemsize
        except (KeyError, TypeError, ValueError):
            item = 8
        check_alloc(math.prod(int(d) for d in dims) * item, f"tensor {name!r}", self.path)

    def _graph(self, gp: Any, scope: Scope, label: str, rename: dict[str, str]) -> Graph:
        from onnx import numpy_helper

        rename = dict(rename)
        inits = {t.name for t in gp.initializer} | {st.values.name for st in gp.sparse_initializer}
        for name in [v.name for v in gp.input] + [o for n in gp.node for o in n.output]:
            rename.pop(name, None)  # a local definition shadows the outer scope's rename
        for i, t in enumerate(gp.initializer):
            self._check_size(t.name, t.dims, t.data_type)
            raw = self.raws.get(i) if not scope else None
            arr = _onnxwire.read(self.path, raw) if raw is not None else numpy_helper.to_array(t)
            self._add(t.name, arr, rename, (scope, "init", i, t.name), f"init:{label}{t.name}")
        for i, st in enumerate(gp.sparse_initializer):
            nm = st.values.name
            self._check_size(nm, st.dims, st.values.data_type)
            self._add(nm, _sparse_to_dense(st), rename, (scope, "sparse", i, nm), f"sparse:{label}{nm}")
        inputs = [_value_info(v) for v in gp.input if v.name not in inits]
        nodes: list[Node] = []
        for i, n in enumerate(gp.node):
            const = _constant_value(n)
            if const is not None:
                key, arr = const
                src = f"const:{label}{n.name or n.output[0]}"
                self._add(n.output[0], arr, rename, (scope, "const", i, key), src)
                continue
            name = self._node_name(n.name, n.op_type, i, label)
            attrs: dict[str, Any] = {}
            for a in n.attribute:
                attrs[a.name] = self._attr(a, scope, i, f"{label}{name}.", rename)
            nodes.append(
                Node(
                    name=name,
                    op=n.op_type,
                    inputs=[rename.get(x, x) for x in n.input],
                    outputs=list(n.output),
                    attrs=attrs,
                    domain="" if n.domain == "ai.onnx" else n.domain,
                )
            )
        outputs = [_value_info(v) for v in gp.output]
        for v in outputs:
            v.name = rename.get(v.name, v.name)
        return Graph(nodes=nodes, inputs=inputs, outputs=outputs, name=gp.name)

    def _attr(self, a: Any, scope: Scope, i: int, label: str, rename: dict[str, str]) -> Any:
        from onnx import AttributeProto as A
        from onnx import numpy_helper

        t = a.type
        if t == A.FLOAT:
            return float(a.f)
        if t == A.INT:
            return int(a.i)
        if t == A.STRING:
            return _text(a.s)
        if t == A.TENSOR:
            return numpy_helper.to_array(a.t)
        if t == A.GRAPH:
            return self._graph(a.g, (*scope, (i, a.name, -1)), f"{label}{a.name}/", rename)
        if t == A.FLOATS:
            return [float(v) for v in a.floats]
        if t == A.INTS:
            return [int(v) for v in a.ints]
        if t == A.STRINGS:
            return [_text(s) for s in a.strings]
        if t == A.TENSORS:
            return [numpy_helper.to_array(x) for x in a.tensors]
        if t == A.GRAPHS:
            return [
                self._graph(sg, (*scope, (i, a.name, k)), f"{label}{a.name}[{k}]/", rename)
                for k, sg in enumerate(a.graphs)
            ]
        # sparse tensors and type protos: carried as the attribute itself, written back as it was
        keep = A()
        keep.CopyFrom(a)
        return keep


def _constant_value(n: Any) -> tuple[str, np.ndarray] | None:
    """The (attribute, array) of a numeric Constant node, or None for anything else."""
    from onnx import TensorProto, numpy_helper

    if n.op_type != "Constant" or n.domain not in ("", "ai.onnx") or len(n.output) != 1 or not n.output[0]:
        return None
    if len(n.attribute) != 1 or n.attribute[0].name not in _CONST_ATTRS:
        return None
    a = n.attribute[0]
    if a.name == "value":
        if a.t.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
            return None
        return a.name, numpy_helper.to_array(a.t)
    if a.name == "value_float":
        return a.name, np.array(a.f, np.float32)
    if a.name == "value_floats":
        return a.name, np.array(list(a.floats), np.float32)
    if a.name == "value_int":
        return a.name, np.array(a.i, np.int64)
    return a.name, np.array(list(a.ints), np.int64)


def _graphs(g: Graph) -> Iterator[Graph]:
    yield g
    for n in g.nodes:
        for sg in n.subgraphs():
            yield from _graphs(sg)


def _uses(g: Graph) -> Counter[str]:
    uses: Counter[str] = Counter()
    for sg in _graphs(g):
        for n in sg.nodes:
            uses.update(i for i in n.inputs if i)
        uses.update(v.name for v in sg.outputs)
    return uses


_T2D = [("transpose", (1, 0))]


def _normalise(g: Graph, opset: int) -> None:
    """Gemm/MatMul -> Dense, Softmax coerce_2d, then roles and layers of the weights."""
    w, uses = g.weights, _uses(g)
    groups: list[tuple[Node, list[tuple[Weight, str]]]] = []
    for sg in _graphs(g):
        consumers = sg.consumers()
        for n in sg.nodes:
            if n.domain:
                continue
            if n.op in ("Softmax", "LogSoftmax") and opset < 13:
                n.attrs.setdefault("axis", 1)
                n.attrs["coerce_2d"] = 1
            elif n.op == "Gemm":
                _gemm_to_dense(n, w, uses)
            elif n.op == "MatMul" and _matmul_to_dense(n, w, uses):
                after = consumers.get(n.outputs[0], [])
                if len(after) == 1 and after[0].op == "Add" and not after[0].domain:
                    add = after[0]
                    other = [i for i in add.inputs if i != n.outputs[0]]
                    b = w.get(other[0]) if len(other) == 1 else None
                    if b is not None and b.shape == (w[n.inputs[1]].shape[0],) and uses[b.name] == 1:
                        groups.append((n, [(w[n.inputs[1]], "kernel"), (b, "bias")]))
    _assign_roles(g, groups)


def _gemm_to_dense(n: Node, w: dict[str, Weight], uses: Counter[str]) -> None:
    a = n.attrs
    if len(n.inputs) < 2 or float(a.get("alpha", 1.0)) != 1.0 or int(a.get("transA", 0)) != 0:
        return
    b = w.get(n.inputs[1])
    if b is None or n.inputs[0] in w or len(b.shape) != 2 or not _is_float(b.dtype) or uses[b.name] != 1:
        return
    trans = int(a.get("transB", 0))
    nout = b.shape[0] if trans else b.shape[1]
    c = n.inputs[2] if len(n.inputs) > 2 else ""
    # The bias may be a value rather than a weight: torch's exporter replaces an initializer equal to
    # another (all-zero biases, say) by an Identity of it.
    if c and ((c in w and w[c].shape != (nout,)) or float(a.get("beta", 1.0)) != 1.0):
        return
    n.op, n.attrs = "Dense", {}
    n.inputs = n.inputs[:3] if c else n.inputs[:2]
    if not trans:
        b.value, b.layout = np.ascontiguousarray(np.asarray(b.value).T), list(_T2D)


def _matmul_to_dense(n: Node, w: dict[str, Weight], uses: Counter[str]) -> bool:
    if len(n.inputs) != 2 or n.inputs[0] in w:
        return False
    b = w.get(n.inputs[1])
    if b is None or len(b.shape) != 2 or not _is_float(b.dtype) or uses[b.name] != 1:
        return False
    n.op, n.attrs = "Dense", {}
    b.value, b.layout = np.ascontiguousarray(np.asarray(b.value).T), list(_T2D)
    return True


def _role(n: Node, idx: int, w: Weight) -> tuple[str, str]:
    if not _is_float(w.dtype):
        small = len(w.shape) <= 1 and w.size <= 16
        return ("const" if small else "buffer"), n.op
    if n.domain:
        return "other", n.op
    if n.op in ("Conv", "ConvTranspose", "Dense") and idx in (1, 2):
        return ("kernel" if idx == 1 else "bias"), n.op
    if n.op == "BatchNormalization" and 1 <= idx <= 4:
        return _BN_ROLES[idx - 1], n.op
    if n.op == "PRelu" and idx == 1:
        return "alpha", n.op
    if n.op in ("LSTM", "GRU", "RNN") and idx in (1, 2, 3):
        return ("recurrent" if idx < 3 else "bias"), n.op
    if n.op == "Gather" and idx == 0 and len(w.shape) == 2:
        return "embedding", "Embedding"
    if n.op == "Clip" and idx in (1, 2):
        return "const", n.op
    return "other", n.op


def _param_prefix(name: str) -> str:
    """``fc1.weight`` -> ``fc1``: a framework's parameter path is the friendliest layer name."""
    if "." not in name or any(c in name for c in "/:"):
        return ""
    head, _, tail = name.rpartition(".")
    return head if head and tail.isidentifier() else ""


def _assign_roles(g: Graph, groups: list[tuple[Node, list[tuple[Weight, str]]]]) -> None:
    w = g.weights
    best: dict[str, tuple[int, str, str, Node]] = {}
    for sg in _graphs(g):
        for n in sg.nodes:
            group: list[tuple[Weight, str]] = []
            for idx, i in enumerate(n.inputs):
                if i not in w:
                    continue
                role, op = _role(n, idx, w[i])
                rank = 2 if role in _STRONG_ROLES else 1
                if i not in best or rank > best[i][0]:
                    best[i] = (rank, role, op, n)
                if rank == 2:
                    group.append((w[i], role))
            if group:
                groups.append((n, group))
    for wt in w.values():
        if wt.name in best:
            _, wt.role, wt.op, node = best[wt.name]
            wt.layer = _param_prefix(wt.name) or node.layer
        else:
            wt.role = "other" if _is_float(wt.dtype) else ("const" if wt.size <= 16 else "buffer")
            wt.op, wt.layer = "", _param_prefix(wt.name) or wt.name
    # a layer's weights share one name: the kernel's parameter path if it has one (torch exports)
    for n, group in groups:
        prefixes = [_param_prefix(x.name) for x, role in group if role == "kernel"]
        prefixes += [_param_prefix(x.name) for x, _ in group]
        layer = next((p for p in prefixes if p), n.layer)
        n.layer = layer
        for x, role in group:
            x.layer, x.role = layer, role
            x.op = "Embedding" if role == "embedding" else n.op


def _fingerprint(g: Graph) -> str:
    """A hash of everything but weight values: equal hashes mean the file can be patched in place."""
    h = hashlib.sha256()

    def feed(*parts: Any) -> None:
        for p in parts:
            h.update(repr(p).encode())
            h.update(b"\x00")

    def graph(sg: Graph) -> None:
        feed("graph", [v.name for v in sg.inputs], [v.name for v in sg.outputs], sorted(sg.weights))
        for n in sg.nodes:
            feed(n.op, n.domain, n.inputs, n.outputs)
            for k in sorted(n.attrs):
                v = n.attrs[k]
                feed(k)
                if isinstance(v, Graph):
                    graph(v)
                elif isinstance(v, list) and v and all(isinstance(x, Graph) for x in v):
                    for x in v:
                        graph(x)
                elif isinstance(v, np.ndarray):
                    feed(v.dtype.str, v.shape)
                    h.update(v.tobytes() if v.dtype != object else repr(v.tolist()).encode())
                else:
                    feed(v)

    graph(g)
    for name in sorted(g.weights):
        wt = g.weights[name]
        feed(name, wt.source, wt.shape, wt.source_shape, wt.layout)
    return h.hexdigest()


# -- writing -----------------------------------------------------------------------------------------


def save_onnx(graph: Graph, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``graph`` as an ONNX file: patch the loaded file when possible, else export the IR."""
    src = graph.source if isinstance(graph.source, _Source) else None
    inputs = tuple(x for x in ((src.path if src else ""), graph.meta.path) if x)
    out = check_output(path, force=force, inputs=inputs)
    if graph.meta.format == "onnx" and src is not None and _patchable(graph, src):
        return _write_patched(graph, src, out, force)
    if not graph.has_graph:
        raise OutputError(
            f"{graph.meta.path or 'the model'} has no graph; cannot write ONNX",
            path=str(out),
            hint="Load the full model file (architecture and weights), or write the format it came in",
        )
    return _write_exported(graph, src, out, force)


def _patchable(graph: Graph, src: _Source) -> bool:
    p = Path(src.path)
    if not p.is_file():
        return False
    st = p.stat()
    return (st.st_size, st.st_mtime_ns) == src.stat and _fingerprint(graph) == src.fingerprint


def _find_graph(model: Any, scope: Scope) -> Any:
    gp = model.graph
    for ni, attr, k in scope:
        a = next(a for a in gp.node[ni].attribute if a.name == attr)
        gp = a.g if k < 0 else a.graphs[k]
    return gp


def _write_patched(graph: Graph, src: _Source, out: Path, force: bool) -> Path:
    patches = _splices(graph, src, out)
    if patches is not None:
        with atomic_path(out) as tmp:
            _onnxwire.splice(Path(src.path), tmp, patches)
        return out
    try:
        model, _ = _read_model(Path(src.path), whole=True)
    except InputError as e:
        raise OutputError(f"cannot re-read the original model: {e.detail}", path=str(out)) from e
    for wt in graph.weights.values():
        scope, kind, idx, key = src.locators[wt.source]
        gp = _find_graph(model, scope)
        arr = wt.to_source()
        if kind == "init":
            _replace_tensor(gp.initializer[idx], arr, wt.name, out)
        elif kind == "sparse":
            _replace_sparse(gp.sparse_initializer[idx], arr, wt.name, out)
        else:
            a = next(a for a in gp.node[idx].attribute if a.name == key)
            _replace_const(a, arr, wt.name, out)
    return _save_model(model, out, big=_model_size(model) > _EXTERNAL_ABOVE, force=force)


def _save_model(
    model: Any, out: Path, *, big: bool, force: bool, check: Callable[[Path], None] | None = None
) -> Path:
    """Write ``model`` to ``out`` atomically; when ``big``, its tensors of 1 KiB or more go to the
    side file ``<out>.data``. ``check`` vets a file written that way (only then is the checker given
    the file rather than the model): when it raises UnsupportedError the side file is removed too.
    """
    import onnx

    data = out.with_name(out.name + ".data")
    if big and data.exists() and not force:
        raise OutputError("external data file exists", path=str(data), hint="Pass --force to overwrite it")
    with atomic_path(out) as tmp:
        if big:
            data.unlink(missing_ok=True)  # onnx appends to an existing data file
            onnx.save_model(
                model,
                str(tmp),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data.name,
                size_threshold=1024,
                convert_attribute=False,
            )
            if check is not None:
                try:
                    check(tmp)
                except UnsupportedError:
                    data.unlink(missing_ok=True)
                    raise
        else:
            onnx.save_model(model, str(tmp))
    return out


def _splices(
    graph: Graph, src: _Source, out: Path
) -> list[tuple[RawTensor, Callable[[], np.ndarray]]] | None:
    """When every weight is a top-level initializer stored as raw_data: the new payloads, else None.

    Then the file is written as a copy of the source with those payloads replaced (each the same
    length), a tensor at a time: no parsed model, no serialized copy.
    """
    try:
        _, found = _onnxwire.strip(src.path)
    except (OSError, _onnxwire.WireError):
        return None
    raws = {r.index: r for r in found}
    patches: list[tuple[RawTensor, Callable[[], np.ndarray]]] = []
    for wt in graph.weights.values():
        scope, kind, idx, _ = src.locators[wt.source]
        r = raws.get(idx) if kind == "init" and not scope else None
        if r is None:
            return None
        if tuple(wt.source_shape) != r.dims and math.prod(wt.source_shape) == math.prod(r.dims) == 1:
            pass  # a scalar seen as shape (1,): the same single entry
        elif tuple(wt.source_shape) != r.dims:
            raise OutputError(
                f"weight {wt.name!r} has shape {tuple(wt.source_shape)}, the ONNX file stores {r.dims}",
                path=str(out),
            )
        patches.append((r, wt.to_source))
    return patches


def _model_size(model: Any) -> int:
    try:
        return int(model.ByteSize())
    except Exception:  # too large for protobuf to measure
        return _EXTERNAL_ABOVE + 1


def _fit(arr: np.ndarray, old: np.ndarray, name: str, out: Path) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != old.shape and arr.size == old.size == 1:
        arr = arr.reshape(old.shape)  # np.ascontiguousarray (in invert_layout) makes scalars 1-D
    if arr.shape != old.shape:
        raise OutputError(
            f"weight {name!r} has shape {arr.shape}, the ONNX file stores {old.shape}",
            path=str(out),
        )
    return np.ascontiguousarray(arr.astype(old.dtype, copy=False)).reshape(old.shape)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)
    if a.dtype != b.dtype or a.size != b.size:
        return False
    if a.dtype == object:
        return bool(a.tolist() == b.tolist())
    return bool(np.array_equal(a.view(np.uint8), b.view(np.uint8)))  # bitwise: NaN payloads, -0.0


def _replace_tensor(t: Any, arr: np.ndarray, name: str, out: Path) -> None:
    from onnx import numpy_helper

    old = numpy_helper.to_array(t)
    new = _fit(arr, old, name, out)
    if _same_bits(new, old):
        return  # unchanged: keep the tensor's exact encoding
    nt = numpy_helper.from_array(new, t.name)
    doc = t.doc_string
    t.CopyFrom(nt)
    t.doc_string = doc


def _replace_sparse(st: Any, arr: np.ndarray, name: str, out: Path) -> None:
    from onnx import numpy_helper

    old = _sparse_to_dense(st)
    new = _fit(arr, old, name, out)
    if _same_bits(new, old):
        return
    flat = new.reshape(-1)
    idx = np.flatnonzero(flat).astype(np.int64)
    st.values.CopyFrom(numpy_helper.from_array(flat[idx], st.values.name))
    st.indices.CopyFrom(numpy_helper.from_array(idx, st.indices.name))


def _replace_const(a: Any, arr: np.ndarray, name: str, out: Path) -> None:
    if a.name == "value":
        _replace_tensor(a.t, arr, name, out)
    elif a.name == "value_float":
        a.f = float(_fit(arr, np.array(a.f, np.float32), name, out))
    elif a.name == "value_floats":
        a.floats[:] = _fit(arr, np.array(list(a.floats), np.float32), name, out).tolist()
    elif a.name == "value_int":
        a.i = int(_fit(arr, np.array(a.i, np.int64), name, out))
    else:
        a.ints[:] = _fit(arr, np.array(list(a.ints), np.int64), name, out).tolist()


# -- export from the IR ------------------------------------------------------------------------------


def _write_exported(graph: Graph, src: _Source | None, out: Path, force: bool) -> Path:
    # a graph read from ONNX keeps its opset, so that ops the loader left alone mean the same
    found = graph.meta.extra.get("opset_imports")
    opsets = {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}
    opset = int(opsets.get("", EXPORT_OPSET))
    functions = src.functions if src is not None else []
    # pass 1 (weights as typed inputs) tells which Dense inputs are 2-D: those become Gemm
    skeleton = _Exporter(graph, opset, opsets, set(), functions).model(skeleton=True)
    gemm_ok, out_types = _infer(skeleton)
    ex = _Exporter(graph, opset, opsets, gemm_ok, functions, out_types)
    model = ex.model(skeleton=False)
    big = ex.nbytes > _EXTERNAL_ABOVE
    if not big:
        _check(model, None, out)
    return _save_model(model, out, big=big, force=force, check=lambda tmp: _check(None, tmp, out))


def _check(model: Any, tmp: Path | None, out: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(model if tmp is None else str(tmp))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedError(
            f"the graph cannot be written as a valid ONNX model: {first}",
            path=str(out),
            hint="Write it in the format it came from",
        ) from e


def _infer(skeleton: Any) -> tuple[set[str], dict[str, Any]]:
    """Shape inference on the skeleton: the Dense nodes with 2-D inputs, the graph outputs' types."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton)
    except Exception:  # custom ops or odd shapes: keep the always-valid MatMul form
        return set(), {}
    ranks: dict[str, int] = {}

    def collect(gp: Any) -> None:
        for vi in [*gp.input, *gp.value_info, *gp.output]:
            tt = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and tt.HasField("shape"):
                ranks[vi.name] = len(tt.shape.dim)
        for n in gp.node:
            for a in n.attribute:
                if a.HasField("g"):
                    collect(a.g)
                for sg in a.graphs:
                    collect(sg)

    collect(inferred.graph)
    keys = {e.key: e.value for e in skeleton.metadata_props}
    gemm_ok = {k[len("dense:") :] for k, x in keys.items() if k.startswith("dense:") and ranks.get(x) == 2}
    return gemm_ok, {vi.name: vi.type for vi in inferred.graph.output}


class _Exporter:
    """IR -> ModelProto. All weights become top-level initializers (subgraphs read them by name)."""

    def __init__(
        self,
        graph: Graph,
        opset: int,
        opsets: dict[str, int],
        gemm_ok: set[str],
        functions: list[bytes],
        out_types: dict[str, Any] | None = None,
    ) -> None:
        self.g, self.opset, self.gemm_ok, self.functions = graph, opset, gemm_ok, functions
        self.out_types = out_types or {}
        self.origin_opsets = opsets
        self.weights: dict[str, Weight] = {}
        for sg in _graphs(graph):
            for k, wt in sg.weights.items():
                if k in self.weights and self.weights[k] is not wt:
                    raise UnsupportedError(
                        f"two subgraphs define different weights named {k!r}", path=graph.meta.path or None
                    )
                self.weights[k] = wt
        self.names = Names(self.weights)
        for sg in _graphs(graph):
            self.names.update(v.name for v in [*sg.inputs, *sg.outputs])
            for n in sg.nodes:
                self.names.update(n.outputs)
                self.names.add(n.name)
        self.forms = self._weight_forms()
        self.extra_inits: list[tuple[str, np.ndarray]] = []
        self.domains: dict[str, int] = {}
        self.dense_x: dict[str, str] = {}
        self.node_names = Names(repeat=True)
        self.nbytes = 0
        self.skeleton = False

    def _weight_forms(self) -> dict[tuple[str, str], str]:
        """Initializer name of each weight in the plain and the transposed (MatMul) form."""
        plain: set[str] = set()
        trans: set[str] = set()
        for sg in _graphs(self.g):
            for n in sg.nodes:
                for idx, i in enumerate(n.inputs):
                    if i not in self.weights:
                        continue
                    if n.op == "Dense" and not n.domain and idx == 1 and n.outputs[0] not in self.gemm_ok:
                        trans.add(i)
                    else:
                        plain.add(i)
            plain.update(v.name for v in sg.outputs if v.name in self.weights)
        forms = {}
        top_out = {v.name for v in self.g.outputs}
        for k in self.weights:
            if k in plain or k not in trans:
                # a weight that is itself a graph output is written under another name plus an Identity
                forms[(k, "plain")] = self.names.fresh(f"{k}_value") if k in top_out else k
            if k in trans:
                forms[(k, "T")] = self.names.fresh(f"{k}_T") if k in plain else k
        return forms

    # -- model and graphs ------------------------------------------------------------------------

    def model(self, *, skeleton: bool) -> Any:
        from onnx import FunctionProto, helper

        self.skeleton = skeleton
        gp = self.graph(self.g, top=True)
        for (k, form), name in self.forms.items():
            arr = self.weights[k].array
            arr = np.ascontiguousarray(arr.T) if form == "T" else arr
            self._initializer(gp, name, arr)
        for name, arr in self.extra_inits:
            self._initializer(gp, name, arr)
        opsets = {"": self.opset}
        for d in self.domains:
            opsets[d] = int(self.origin_opsets.get(d, _DEFAULT_DOMAIN_VERSION.get(d, 1)))
        funcs = []
        for b in self.functions:
            f = FunctionProto()
            f.ParseFromString(b)
            funcs.append(f)
            opsets.setdefault(f.domain, int(self.origin_opsets.get(f.domain, 1)))
        ids = [helper.make_opsetid(d, v) for d, v in opsets.items()]
        m = helper.make_model(gp, opset_imports=ids, producer_name="nncompress", functions=funcs)
        m.ir_version = helper.find_min_ir_version_for(ids, True)
        if skeleton:
            helper.set_model_props(m, {f"dense:{k}": x for k, x in self.dense_x.items()})
        return m

    def _initializer(self, gp: Any, name: str, arr: np.ndarray) -> None:
        from onnx import helper, numpy_helper

        if self.skeleton:  # shapes only: weights enter as typed inputs
            gp.input.append(helper.make_tensor_value_info(name, _elem(arr.dtype.name), arr.shape))
        else:
            self.nbytes += arr.nbytes
            gp.initializer.append(numpy_helper.from_array(np.asarray(arr), name))

    def graph(self, g: Graph, *, top: bool) -> Any:
        from onnx import helper

        nodes: list[Any] = []
        for n in g.nodes:
            self.node(n, nodes)
        ins = [_vi_proto(v) for v in g.inputs if v.name not in self.weights]
        outs = [_vi_proto(v) for v in g.outputs]
        produced = {o for n in g.nodes for o in n.outputs}
        for v, o in zip(g.outputs, outs, strict=True):
            # ONNX wants a subgraph's outputs computed inside it, and no initializer as an output
            if v.name in produced or (top and v.name not in self.weights):
                continue
            feed = self.forms[(v.name, "plain")] if v.name in self.weights else v.name
            o.name = v.name if top else self.names.fresh(f"{v.name}_out")
            nodes.append(
                helper.make_node("Identity", [feed], [o.name], name=self.names.fresh(f"{o.name}_identity"))
            )
        if top:  # ONNX wants a shape on every graph output: take the inferred one where the IR has none
            for v, o in zip(g.outputs, outs, strict=True):
                if v.shape is None and v.name in self.out_types:
                    o.type.CopyFrom(self.out_types[v.name])
        return helper.make_graph(nodes, g.name or "model", ins, outs)

    # -- nodes -----------------------------------------------------------------------------------

    def _const(self, base: str, arr: np.ndarray) -> str:
        name = self.names.fresh(base)
        self.extra_inits.append((name, np.asarray(arr)))
        return name

    def _unsupported(self, n: Node, why: str) -> UnsupportedError:
        op = f"{n.domain}:{n.op}" if n.domain else n.op
        return UnsupportedError(
            f"node {n.name!r} ({op}) {why}",
            path=self.g.meta.path or None,
            hint="Write the model in the format it came from",
        )

    def node(self, n: Node, sink: list[Any]) -> None:
        op, dom = n.op, n.domain
        if dom in ("", "ai.onnx"):
            dom = ""
            if op == "Dense":
                return self._dense(n, sink)
            if op == "Gelu" and self.opset < 20:
                return self._gelu(n, sink)
            if op in ("Softmax", "LogSoftmax", "Hardmax"):
                return self._softmax(n, sink)
        attrs, inputs = dict(n.attrs), list(n.inputs)
        if dom == "":
            attrs, inputs = self._adapt(n, attrs, inputs)
        sink.append(self._make(n, op, inputs, list(n.outputs), attrs, dom))

    def _make(
        self, n: Node, op: str, inputs: list[str], outputs: list[str], attrs: dict[str, Any], dom: str
    ) -> Any:
        import onnx
        from onnx import helper

        schema = None
        if dom in ("", "ai.onnx.ml"):
            version = (
                self.opset if dom == "" else int(self.origin_opsets.get(dom, _DEFAULT_DOMAIN_VERSION[dom]))
            )
            try:
                schema = onnx.defs.get_schema(op, version, dom)
            except Exception:
                if not any(f.name == op for f in self._function_protos()):
                    raise self._unsupported(n, f"has no ONNX opset-{version} equivalent") from None
        elif dom not in _ONNX_DOMAINS and dom not in self.origin_opsets:
            raise self._unsupported(n, f"belongs to domain {dom!r}, which has no ONNX meaning")
        if dom:
            self.domains[dom] = 1
        while inputs and not inputs[-1]:
            inputs.pop()
        node = helper.make_node(op, inputs, outputs, name=self.node_names.fresh(n.name))
        if dom:
            node.domain = dom
        for k, v in attrs.items():
            if v is None or k in _IR_ONLY_ATTRS:
                continue
            node.attribute.append(self._attr(n, k, v, schema))
        return node

    def _function_protos(self) -> list[Any]:
        from onnx import FunctionProto

        out = []
        for b in self.functions:
            f = FunctionProto()
            f.ParseFromString(b)
            out.append(f)
        return out

    def _attr(self, n: Node, key: str, v: Any, schema: Any) -> Any:
        from onnx import AttributeProto as A
        from onnx import helper, numpy_helper

        if isinstance(v, A):
            a = A()
            a.CopyFrom(v)
            a.name = key
            return a
        if isinstance(v, Graph):
            return helper.make_attribute(key, self.graph(v, top=False))
        if isinstance(v, list) and v and all(isinstance(x, Graph) for x in v):
            return helper.make_attribute(key, [self.graph(x, top=False) for x in v])
        want = None
        if schema is not None and key in schema.attributes:
            want = int(schema.attributes[key].type)
        if isinstance(v, np.ndarray) and want not in (A.INTS, A.FLOATS, A.STRINGS, A.INT, A.FLOAT):
            return helper.make_attribute(key, numpy_helper.from_array(v))
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, tuple):
            v = list(v)
        try:
            if want == A.INT:
                return helper.make_attribute(key, int(v), attr_type=A.INT)
            if want == A.FLOAT:
                return helper.make_attribute(key, float(v), attr_type=A.FLOAT)
            if want == A.STRING:
                return helper.make_attribute(key, v, attr_type=A.STRING)
            if want == A.INTS:
                return helper.make_attribute(key, [int(x) for x in v], attr_type=A.INTS)
            if want == A.FLOATS:
                return helper.make_attribute(key, [float(x) for x in v], attr_type=A.FLOATS)
            if want == A.STRINGS:
                return helper.make_attribute(key, list(v), attr_type=A.STRINGS)
            if isinstance(v, bool):
                return helper.make_attribute(key, int(v))
            if isinstance(v, list) and not v:
                return helper.make_attribute(key, [], attr_type=A.INTS)
            if isinstance(v, list) and all(isinstance(x, np.ndarray) for x in v):
                return helper.make_attribute(key, [numpy_helper.from_array(x) for x in v])
            if isinstance(v, list):
                v = [x.item() if isinstance(x, np.generic) else x for x in v]
            return helper.make_attribute(key, v)
        except (TypeError, ValueError) as e:
            raise self._unsupported(n, f"has attribute {key}={v!r} that ONNX cannot hold ({e})") from e

    def _weight_input(self, n: Node, name: str) -> str:
        if name in self.weights:
            return self.forms[(name, "plain")]
        return name

    def _dense(self, n: Node, sink: list[Any]) -> None:
        x, wname, b = ([*n.inputs, "", ""])[:3]
        y = n.outputs[0]
        self.dense_x[y] = x
        if y in self.gemm_ok and wname in self.weights:
            ins = [x, self.forms[(wname, "plain")], b]
            sink.append(self._make(n, "Gemm", ins, [y], {"transB": 1}, ""))
            return
        if wname in self.weights:
            wt = self.forms[(wname, "T")]
        else:  # a computed kernel: transpose it on the fly
            wt = self.names.fresh(f"{wname}_T")
            sink.append(self._make(n, "Transpose", [wname], [wt], {"perm": [1, 0]}, ""))
        if not b:
            sink.append(self._make(n, "MatMul", [x, wt], [y], {}, ""))
            return
        mm = self.names.fresh(f"{y}_matmul")
        sink.append(self._make(n, "MatMul", [x, wt], [mm], {}, ""))
        sink.append(self._make(n, "Add", [mm, b], [y], {}, ""))

    def _gelu(self, n: Node, sink: list[Any]) -> None:
        # Gelu is opset 20; older opsets get its formula from basic ops
        x, y = n.inputs[0], n.outputs[0]
        f32 = np.float32

        def op(kind: str, *ins: str) -> str:
            o = self.names.fresh(f"{y}_{kind.lower()}")
            sink.append(self._make(n, kind, list(ins), [o], {}, ""))
            return o

        one, half = self._const("one", np.array(1, f32)), self._const("half", np.array(0.5, f32))
        if n.attrs.get("approximate", "none") in ("tanh", b"tanh"):
            x3 = op("Mul", op("Mul", x, x), x)
            inner = op("Add", x, op("Mul", x3, self._const("c", np.array(0.044715, f32))))
            t = op("Tanh", op("Mul", inner, self._const("k", np.array(math.sqrt(2 / math.pi), f32))))
        else:
            t = op("Erf", op("Mul", x, self._const("rsqrt2", np.array(1 / math.sqrt(2), f32))))
        sink.append(self._make(n, "Mul", [op("Mul", x, op("Add", t, one)), half], [y], {}, ""))

    def _softmax(self, n: Node, sink: list[Any]) -> None:
        attrs = {k: v for k, v in n.attrs.items() if k != "coerce_2d"}
        coerce = bool(n.attrs.get("coerce_2d", 0))
        axis = int(attrs.get("axis", 1 if coerce else -1))
        x, y = n.inputs[0], n.outputs[0]
        if self.opset < 13:
            if not coerce and axis != -1:
                raise self._unsupported(
                    n, f"normalises one axis ({axis}), which opset {self.opset} cannot say"
                )
            sink.append(self._make(n, n.op, [x], [y], {"axis": axis}, ""))
            return
        if not coerce:
            sink.append(self._make(n, n.op, [x], [y], {"axis": axis}, ""))
            return
        # opset-13 softmax is over one axis: flatten to 2-D at `axis` first, as older opsets did
        fresh = self.names.fresh
        shape, flat, soft = fresh(f"{y}_shape"), fresh(f"{y}_2d"), fresh(f"{y}_soft")
        sink.append(self._make(n, "Shape", [x], [shape], {}, ""))
        sink.append(self._make(n, "Flatten", [x], [flat], {"axis": axis}, ""))
        sink.append(self._make(n, n.op, [flat], [soft], {"axis": 1}, ""))
        sink.append(self._make(n, "Reshape", [soft, shape], [y], {}, ""))

    def _adapt(self, n: Node, attrs: dict[str, Any], inputs: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Move list arguments between attribute and input form as the target opset wants."""
        op, t = n.op, self.opset
        if op in ("Squeeze", "Unsqueeze") or op == "ReduceSum":
            return self._arg_form(n, attrs, inputs, 1, "axes", t >= 13, np.int64)
        if op in _REDUCE_OPS:
            return self._arg_form(n, attrs, inputs, 1, "axes", t >= 18, np.int64)
        if op == "Split":
            attrs, inputs = self._arg_form(n, attrs, inputs, 1, "split", t >= 13, np.int64)
            if t >= 18 and not (len(inputs) > 1 and inputs[1]) and "num_outputs" not in attrs:
                attrs["num_outputs"] = len(n.outputs)
            return attrs, inputs
        if op == "Clip":
            if t >= 11:
                inputs = [*inputs, "", ""][:3]
                for i, key in ((1, "min"), (2, "max")):
                    if key in attrs:
                        inputs[i] = self._const(f"{n.name}_{key}", np.array(attrs.pop(key), np.float32))
                return attrs, inputs
            for i, key in ((1, "min"), (2, "max")):
                if len(inputs) > i and inputs[i]:
                    attrs[key] = float(self._const_value(n, inputs[i]).reshape(-1)[0])
            return attrs, inputs[:1]
        return attrs, inputs

    def _arg_form(
        self,
        n: Node,
        attrs: dict[str, Any],
        inputs: list[str],
        idx: int,
        key: str,
        as_input: bool,
        dtype: type,
    ) -> tuple[dict[str, Any], list[str]]:
        if as_input and key in attrs:
            v = attrs.pop(key)
            inputs = [*inputs, *[""] * (idx + 1 - len(inputs))]
            inputs[idx] = self._const(f"{n.name}_{key}", np.array(v, dtype).reshape(-1))
        elif not as_input and len(inputs) > idx and inputs[idx]:
            attrs[key] = [int(v) for v in self._const_value(n, inputs[idx]).reshape(-1)]
            inputs = inputs[:idx] + inputs[idx + 1 :]
        return attrs, inputs

    def _const_value(self, n: Node, name: str) -> np.ndarray:
        if name not in self.weights:
            raise self._unsupported(
                n, f"reads {name!r} at run time where opset {self.opset} needs a constant"
            )
        return np.asarray(self.weights[name].array)


def _elem(dtype_name: str) -> int:
    from onnx import TensorProto, helper

    try:
        return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype_name)))
    except Exception:
        try:
            return int(TensorProto.DataType.Value(dtype_name.upper()))
        except ValueError:
            return 0


def _vi_proto(v: ValueInfo) -> Any:
    from onnx import ValueInfoProto, helper

    elem = _elem(v.dtype) if v.dtype else 0
    if not elem:
        return ValueInfoProto(name=v.name)
    shape = None if v.shape is None else [d if isinstance(d, (int, str)) else None for d in v.shape]
    return helper.make_tensor_value_info(v.name, elem, shape)
