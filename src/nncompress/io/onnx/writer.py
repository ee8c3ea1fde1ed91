"""The patching writer: a graph that came from an ONNX file, its structure unchanged, is written as
that file with each weight tensor replaced where it was and every other field kept, so that what the
IR does not model (custom ops, value_info, functions, metadata) survives. Also the file save that
the exporter shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import InputError, OutputError, UnsupportedError
from nncompress.io._atomic import atomic_path
from nncompress.io.onnx import wire
from nncompress.io.onnx.reader import read_model, sparse_to_dense
from nncompress.io.onnx.source import Scope, Source, fingerprint
from nncompress.io.onnx.wire import RawTensor
from nncompress.ir import Graph

__all__ = ["EXTERNAL_ABOVE", "patchable", "save_model", "write_patched"]

# protobuf cannot serialise 2 GiB; above this the tensors go to a side file
EXTERNAL_ABOVE = 1_800_000_000


def patchable(graph: Graph, src: Source) -> bool:
    """Whether the source file is unchanged since loading and the graph still has its structure."""
    p = Path(src.path)
    if not p.is_file():
        return False
    st = p.stat()
    return (st.st_size, st.st_mtime_ns) == src.stat and fingerprint(graph) == src.fingerprint


def _find_graph(model: Any, scope: Scope) -> Any:
    gp = model.graph
    for ni, attr, k in scope:
        a = next(a for a in gp.node[ni].attribute if a.name == attr)
        gp = a.g if k < 0 else a.graphs[k]
    return gp


def write_patched(graph: Graph, src: Source, out: Path, force: bool) -> Path:
    """Write the source file with the graph's weights in place of its own."""
    patches = _splices(graph, src, out)
    if patches is not None:
        with atomic_path(out) as tmp:
            wire.splice(Path(src.path), tmp, patches)
        return out
    try:
        model, _ = read_model(Path(src.path), whole=True)
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
    return save_model(model, out, big=_model_size(model) > EXTERNAL_ABOVE, force=force)


def save_model(
    model: Any, out: Path, *, big: bool, force: bool, check: Callable[[Path], None] | None = None
) -> Path:
    """Write ``model`` to ``out`` atomically; when ``big``, its tensors of 1 KiB or more go to the
    side file ``<out>.data``. ``check`` vets a file written that way (a model small enough to stay
    in one file the caller checks in memory); when it raises UnsupportedError the side file goes too.
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


def _splices(graph: Graph, src: Source, out: Path) -> list[tuple[RawTensor, Callable[[], np.ndarray]]] | None:
    """When every weight is a top-level initializer stored as raw_data: the new payloads, else None.

    Then the file is written as a copy of the source with those payloads replaced (each the same
    length), a tensor at a time: no parsed model, no serialized copy.
    """
    try:
        _, found = wire.strip(src.path)
    except (OSError, wire.WireError):
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
        return EXTERNAL_ABOVE + 1


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

    old = sparse_to_dense(st)
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
