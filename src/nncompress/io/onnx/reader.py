"""ONNX file -> graph IR: parse the file, resolve its external data, and turn the graph and every
subgraph into IR nodes and weights.

The top-level initializers' payloads are read straight from the file into numpy (see `wire`), so
that the model is held once. Initializers and Constant nodes, those of If/Loop/Scan bodies included,
all become weights of the top graph (renamed where two scopes use the same name); `normalise` then
rewrites what docs/ir.md asks for.
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.io.onnx import wire
from nncompress.io.onnx.normalize import normalise
from nncompress.io.onnx.source import Locator, Scope
from nncompress.io.onnx.wire import RawTensor
from nncompress.ir import Graph, ModelMeta, Node, ValueInfo, Weight
from nncompress.ir.names import Names, dtype_name

__all__ = ["Reader", "read_model", "sparse_to_dense"]

_CONST_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints")


def read_model(p: Path, *, whole: bool = False) -> tuple[Any, dict[int, RawTensor]]:
    """Parse the file and load its external data, turning every failure into a one-line InputError.

    Unless ``whole``, the top-level initializers' raw_data are left out of the parsed model and
    returned as where they lie in the file (see `wire`): the loader reads them straight into
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
            stripped, raws = wire.strip(p)
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
    _check_utf8(model, p)
    _check_functions(model, p)
    _load_external(model, p)
    return model, {r.index: r for r in raws}


MAX_EXPANDED_NODES = 1_000_000  # a large transformer inlines to tens of thousands


def _check_functions(model: Any, p: Path) -> None:
    """Refuse model-local functions that call themselves, or that expand past MAX_EXPANDED_NODES
    nodes once inlined: 40 functions each calling the one below twice are 2^40 nodes in 3 KB, and
    onnxruntime's session (which inlines them) never finishes building."""
    from nncompress.errors import UnsupportedError

    funcs = {(f.domain, f.name, getattr(f, "overload", "")): f for f in model.functions}
    if not funcs:
        return
    size: dict[tuple[str, str, str], int] = {}
    active: set[tuple[str, str, str]] = set()

    def called(n: Any) -> tuple[str, str, str]:
        """The function key a node calls, if it calls one."""
        return (n.domain, n.op_type, getattr(n, "overload", ""))

    def expanded(key: tuple[str, str, str]) -> int:
        if key in size:
            return size[key]
        if key in active:
            raise UnsupportedError(
                f"model-local function {key[1]!r} calls itself: it cannot be inlined", path=str(p)
            )
        active.add(key)
        total = 0
        for n in funcs[key].node:
            callee = called(n)
            total += expanded(callee) if callee in funcs else 1
            if total > MAX_EXPANDED_NODES:
                raise UnsupportedError(
                    f"model-local function {key[1]!r} expands to more than {MAX_EXPANDED_NODES:,} "
                    "nodes once inlined (functions calling each other over and over)",
                    path=str(p),
                )
        active.discard(key)
        size[key] = total
        return total

    if len(funcs) > sys.getrecursionlimit() // 4:  # a call chain that long is no model either
        raise UnsupportedError(f"{len(funcs):,} model-local functions", path=str(p))
    for key in funcs:
        expanded(key)
    calls = (size.get(called(n), 1) for n in model.graph.node)
    if sum(calls) > MAX_EXPANDED_NODES:
        raise UnsupportedError(
            f"the graph expands to more than {MAX_EXPANDED_NODES:,} nodes once its functions are inlined",
            path=str(p),
        )


def _check_utf8(msg: Any, p: Path, where: str = "model") -> None:
    """Refuse a name or other text field that is not UTF-8.

    ONNX text fields are proto2 ``string``s, which protobuf does not validate: an invalid one comes
    back as ``bytes`` and would break every later step (names are dict keys, written back, printed).
    The file is refused with the field named, rather than renamed behind the user's back.
    """
    from google.protobuf.descriptor import FieldDescriptor

    for field, value in msg.ListFields():
        # protobuf 6 has is_repeated; older releases only the label
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if field.type == FieldDescriptor.TYPE_STRING:
            items = value if repeated else [value]
            for i, v in enumerate(items):
                if isinstance(v, bytes):
                    label = f"{field.name}[{i}]" if repeated else field.name
                    raise InputError(
                        f"{where}.{label} {v[:40]!r} is not valid UTF-8, which ONNX requires of text",
                        path=str(p),
                        hint="Rename it with the onnx package and save the model again",
                    )
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if repeated else [value]
            for i, v in enumerate(items):
                label = f"{field.name}[{i}]" if repeated else field.name
                _check_utf8(v, p, f"{where}.{label}")


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
        if not f.is_file():  # a FIFO or device would block or never end
            what = "is not a regular file" if f.exists() else "is missing"
            raise InputError(
                f"external data file {loc!r} of tensor {t.name!r} {what}",
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


def sparse_to_dense(st: Any) -> np.ndarray:
    """The dense array of a SparseTensorProto (linear or [NNZ, rank] indices)."""
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


class Reader:
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
        normalise(g, self.opset.get("", 1))
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
        g.source = self.locators  # load_onnx wraps it into a Source
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
            arr = wire.read(self.path, raw) if raw is not None else numpy_helper.to_array(t)
            self._add(t.name, arr, rename, (scope, "init", i, t.name), f"init:{label}{t.name}")
        for i, st in enumerate(gp.sparse_initializer):
            nm = st.values.name
            self._check_size(nm, st.dims, st.values.data_type)
            self._add(nm, sparse_to_dense(st), rename, (scope, "sparse", i, nm), f"sparse:{label}{nm}")
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
            # an unnamed node's name already starts with the label: prefixing it again doubled the
            # label at every nesting level (30 nested Ifs, 5 KB of file, a gigabyte-long name)
            inner = f"{name}." if name.startswith(label) else f"{label}{name}."
            for a in n.attribute:
                attrs[a.name] = self._attr(a, scope, i, inner, rename)
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
