"""Graphs -> torch files: the source file rebuilt with the graph's tensors in its own format.

The safe paths copy the file and rewrite only the bytes of the tensors that changed (`archive.patch`,
`TorchSave.write`), so every object, key order and record the file held stays as it was. Only a
file loaded with --trust-pickle is re-loaded by torch and saved by torch.save.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import OutputError
from nncompress.io.torch.archive import Stored, patch
from nncompress.io.torch.checkpoint import find_weights
from nncompress.io.torch.pt2 import open_pt2
from nncompress.io.torch.sniff import sniff
from nncompress.io.torch.source import Source
from nncompress.io.torch.statedict import torch_load
from nncompress.io.torch.torchsave import open_saved
from nncompress.io.torch.torchscript import torchscript_tensors
from nncompress.io.torch.unpickle import Opaque, TensorRef
from nncompress.ir import Graph, Weight

__all__ = ["save_export", "save_saved", "save_torchscript", "slim_skeleton"]


def _tensor_like(arr: np.ndarray, orig: Any) -> Any:
    """``arr`` as a tensor with ``orig``'s dtype (and Parameter-ness)."""
    import torch

    t = torch.from_numpy(np.array(arr, copy=True)).to(orig.dtype)
    if isinstance(orig, torch.nn.Parameter):
        return torch.nn.Parameter(t, requires_grad=orig.requires_grad)
    return t


def _save_saved_safely(graph: Graph, src: Source, tmp: Path) -> None:
    """The source file copied with only the changed tensors' bytes rewritten (training state cut
    unless the graph asks to keep it)."""
    ts = open_saved(Path(src.path), legacy=src.legacy)
    found = find_weights(ts.obj)
    if found is None:
        raise OutputError("the source file no longer holds its weights", path=src.path)
    refs = found.refs
    changes = _changes(graph, src, lambda k: ts.stored(refs[k]) if k in refs else None)
    keep = bool(graph.meta.extra.get("keep_training_state"))
    ts.write(tmp, changes, drop=() if keep else tuple(src.drop))


def save_saved(graph: Graph, src: Source, tmp: Path) -> None:
    """A torch.save source rewritten: patched, or where the user trusted it (--trust-pickle) loaded
    and saved again by torch."""
    if not src.trusted:
        _save_saved_safely(graph, src, tmp)
        return
    import torch

    obj = torch_load(Path(src.path), trusted=src.trusted)
    if src.kind == "module":
        _copy_into(obj.state_dict(), graph, src)
    elif src.kind == "tensor":
        w = graph.weights.get("tensor")
        if w is not None:
            _check_shape(w, tuple(obj.shape), src)
            obj = _tensor_like(w.to_source(), obj)
    elif src.kind == "state-dict":
        _replace_in(obj, graph, src)
    else:
        holder = obj if src.key is None else obj[src.key]
        if isinstance(holder, torch.nn.Module):
            _copy_into(holder.state_dict(), graph, src)
        else:
            _replace_in(holder, graph, src)
    torch.save(obj, str(tmp), _use_new_zipfile_serialization=not src.legacy)


def _changes(graph: Graph, src: Source, where: Callable[[str], Any]) -> list[tuple[Any, np.ndarray]]:
    """(record view, new values in the file's layout) of each file tensor the graph holds; ``where``
    locates a tensor (a `Stored`, or None where the file has no such tensor)."""
    out = []
    for k in src.tensors:
        w = graph.weights.get(k)
        st = where(k) if w is not None else None
        if w is None or st is None:
            continue
        _check_shape(w, st.shape, src)
        out.append((st, w.to_source()))
    return out


def _check_shape(w: Weight, shape: tuple[int, ...], src: Source) -> None:
    if tuple(w.source_shape) != tuple(shape) or tuple(w.shape) != tuple(shape):
        raise OutputError(
            f"weight {w.name!r} has shape {w.shape}, the file holds {tuple(shape)}; the torch writer "
            "keeps the model's architecture",
            path=src.path,
            hint="Write an .nnc artifact or .onnx for shape-changing compression",
        )


def _replace_in(sd: Any, graph: Graph, src: Source) -> None:
    """Replace the tensors of mapping ``sd`` in place: key order and metadata stay as they were."""
    import torch

    done: dict[tuple[Any, ...], tuple[np.ndarray, Any]] = {}
    for k in list(sd.keys()):
        t = sd[k]
        w = graph.weights.get(k)
        if w is None or k not in src.tensors or not isinstance(t, torch.Tensor):
            continue
        _check_shape(w, tuple(t.shape), src)
        arr = w.to_source()
        # tied tensors (one storage under two names) stay tied when their new values agree
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        prev = done.get(ident)
        if prev is not None and np.array_equal(prev[0], arr):
            sd[k] = prev[1]
            continue
        new = _tensor_like(arr, t)
        done[ident] = (arr, new)
        sd[k] = new


def _copy_into(sd: Mapping[str, Any], graph: Graph, src: Source) -> None:
    """Copy into a module's live state_dict tensors (they share storage with its parameters)."""
    import torch

    with torch.no_grad():
        for k, t in sd.items():
            w = graph.weights.get(k)
            if w is None or k not in src.tensors:
                continue
            _check_shape(w, tuple(t.shape), src)
            t.copy_(torch.from_numpy(np.array(w.to_source(), copy=True)))


def save_torchscript(graph: Graph, src: Source, tmp: Path) -> None:
    """The source archive copied member by member with only the weights' records rewritten: code,
    debug info, extra files and the record folder's name stay as they were (the same bytes on every
    run; torch.jit.save named the folder after a random temp file)."""
    root, module = torchscript_tensors(Path(src.path))

    def where(key: str) -> Stored:
        obj: Any = module
        for part in key.split("."):
            state = obj.record.state if isinstance(obj, Opaque) else None
            obj = state.get(part) if isinstance(state, dict) else None
        if not isinstance(obj, TensorRef):
            raise OutputError(f"tensor {key!r} is not an attribute of the TorchScript module", path=src.path)
        return Stored(f"{root}/data/{obj.storage.key}", obj.dtype, obj.offset, obj.shape, obj.strides)

    changes = _changes(graph, src, where)
    patch(Path(src.path), tmp, changes)


def save_export(graph: Graph, src: Source, tmp: Path) -> None:
    """The source archive copied member by member, with only the tensor records rewritten."""
    pt2 = open_pt2(Path(src.path), trusted=src.trusted)
    patch(Path(src.path), tmp, _changes(graph, src, pt2.tensors.get))


def slim_skeleton(path: Path, out: Path) -> bool:
    """Write to ``out`` the zeroed torch archive at ``path`` cut to what a runnable rebuild needs:
    every member stored rather than deflated (the artifact compresses the skeleton as a whole, and
    LZMA finds little in deflate's output: vggmini.pt's skeleton member went from 14,470 bytes to
    3,038), and TorchScript's ``code/**.debug_pkl`` left out (source ranges for
    error messages; torch.jit.load and nncompress's loader run without them). False, and nothing
    written, for a legacy torch.save pickle, which has no members."""
    kind = sniff(path)
    if kind.legacy:
        return False
    drop: tuple[str, ...] = ()
    if kind.kind == "torchscript":
        drop = tuple(
            f"{kind.root}/{n}" for n in kind.names if n.startswith("code/") and n.endswith(".debug_pkl")
        )
    patch(path, out, (), drop=drop, stored=True)
    return True
