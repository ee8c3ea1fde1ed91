"""PyTorch files <-> the graph IR: torch.save state_dicts and checkpoints, TorchScript, torch.export.

Files are recognised by their content (zip layout or legacy pickle), not by their extension.
Nothing stored in a file is executed: torch.save files are read with ``weights_only=True`` unless the
caller opts in (``trust_pickle``), TorchScript is compiled but never run, and a .pt2 archive is
read by `pt2` from its JSON and raw records, never by torch.export.load (which unpickles).

Graph files (TorchScript, .pt2) are converted op by op to the IR (docs/ir.md); an aten op without an
IR counterpart is kept as an op ``aten::name`` in domain ``torch``. Weights keep their state_dict names,
and torch's Linear/Conv layouts are the IR's, so no layout ops are needed. Writers re-read the source
file and replace its tensors, so everything the IR does not model is kept as it was.
"""

from __future__ import annotations

import io
import operator
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nncompress._text import error_line, human_bytes, plain
from nncompress.errors import InputError, NNCError, OutputError, UnsupportedError
from nncompress.io._atomic import atomic_path, check_output
from nncompress.io._zip import UNREADABLE
from nncompress.ir import Graph, IRError, ModelMeta, Node, ValueInfo, Weight

__all__ = ["load_torch", "save_torch"]

FORMATS = ("torch-state-dict", "torch-checkpoint", "torchscript", "torch-export")

# checkpoint keys that commonly wrap a state_dict, in the order they are tried
_WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model_state",
    "model",
    "net",
    "module",
    "ema",
    "weights",
)

_WEIGHTS_NOTE = "weights only: a state_dict has no graph; fidelity is measured on weights"

_RESAVE_HINT = (
    "Re-save it with torch.save(model.state_dict()), torch.jit.save or torch.export.save, "
    "or pass --trust-pickle if you trust this file"
)

# The unit names of the training-state note: notes are stored in artifacts, which must not change.
_NOTE_UNITS = ("B", "KB", "MB", "GB")


# =================================================================================================
# entry points
# =================================================================================================


def load_torch(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Graph:
    """Load a torch.save, TorchScript or torch.export file into the IR."""
    p = Path(path)
    kind = _sniff(p)
    try:
        if kind.kind == "torchscript":
            return _load_torchscript(p, kind)
        if kind.kind == "export":
            return _load_export(p, kind, trust_pickle=trust_pickle)
        return _load_saved(p, legacy=kind.legacy, trusted=trust_pickle)
    except NNCError:
        raise
    except Exception as e:  # a loader bug or a library failure we did not foresee: still one line
        raise InputError(
            f"cannot read this PyTorch file ({error_line(e)})",
            path=str(p),
            hint="Re-save it with torch.save(model.state_dict()), torch.jit.save or torch.export.save",
        ) from e


def save_torch(graph: Graph, path: str | Path, *, force: bool = False) -> Path:
    """Write ``graph``'s weights into a copy of its torch source file, in the source's format."""
    src = _source_of(graph, Path(path))
    out = check_output(path, force=force, inputs=(src.path,))
    if not Path(src.path).is_file():
        raise OutputError(
            f"the source file {src.path} is gone; the torch writer rebuilds the file from it",
            path=str(out),
            hint="Keep the original model file next to the graph",
        )
    try:
        with atomic_path(out) as tmp:
            if src.kind == "torchscript":
                _save_torchscript(graph, src, tmp)
            elif src.kind == "torch-export":
                _save_export(graph, src, tmp)
            else:
                _save_saved(graph, src, tmp)
    except NNCError:
        raise
    except Exception as e:
        raise OutputError(f"cannot write the PyTorch file ({error_line(e)})", path=str(out)) from e
    return out


# =================================================================================================
# recognising the file
# =================================================================================================


@dataclass
class _Kind:
    kind: str  # "torchscript" | "export" | "save"
    legacy: bool = False
    root: str = ""
    names: list[str] = field(default_factory=list)  # member names below the root


def _sniff(p: Path) -> _Kind:
    if not p.exists():
        raise InputError("no such file", path=str(p), hint="Check the path")
    if p.is_dir():
        raise InputError("is a directory, not a model file", path=str(p))
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise InputError(f"cannot read the file ({e.strerror})", path=str(p)) from e
    if size == 0:
        raise InputError("file is empty", path=str(p), hint="Re-save the model")
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(p) as z:
                full = z.namelist()
        except UNREADABLE as e:  # NotImplementedError too: a zip version or feature zipfile lacks
            raise InputError(
                f"truncated or corrupt zip archive ({error_line(e)})",
                path=str(p),
                hint="Re-save or re-download the file",
            ) from e
        legacy = sorted(n for n in full if "/" not in n and n.startswith("serialized_"))
        if legacy:
            # torch < 2.6 export archives, or a crafted fallback: torch.export.load unpickles these
            # with weights_only=False
            raise UnsupportedError(
                f"a torch.export archive in the legacy layout ({legacy[0]}); "
                "nncompress does not unpickle untrusted data",
                path=str(p),
                hint="Re-export it with torch.export.save from torch 2.6 or later",
            )
        roots = {n.split("/", 1)[0] for n in full if "/" in n}
        if len(roots) != 1:
            raise InputError(
                "a zip archive, but not one written by PyTorch (no single record folder)",
                path=str(p),
                hint="Give a file written by torch.save, torch.jit.save or torch.export.save",
            )
        root = roots.pop()
        names = [n[len(root) + 1 :] for n in full if n.startswith(root + "/")]
        if "archive_format" in names or any(n.startswith("models/") and n.endswith(".json") for n in names):
            return _Kind("export", root=root, names=names)
        if "constants.pkl" in names and any(n.startswith("code/") for n in names):
            return _Kind("torchscript", root=root, names=names)
        if "data.pkl" in names:
            return _Kind("save", root=root, names=names)
        raise InputError(
            "a zip archive, but not a PyTorch file (no data.pkl, code/ or models/ record)",
            path=str(p),
            hint="Give a file written by torch.save, torch.jit.save or torch.export.save",
        )
    if head[:1] == b"\x80":  # a pickle protocol marker: torch.save's legacy (pre-1.6) format
        return _Kind("save", legacy=True)
    raise InputError(
        "not a PyTorch file (neither a zip archive nor a legacy torch.save pickle)",
        path=str(p),
        hint="Give a file written by torch.save, torch.jit.save or torch.export.save",
    )


# =================================================================================================
# tensors -> numpy
# =================================================================================================


def _to_numpy(t: Any) -> np.ndarray | None:
    """A copy of a CPU tensor as numpy; bfloat16 widens to float32; None where numpy has no dtype."""
    import torch

    t = t.detach()
    if t.is_quantized or t.layout != torch.strided or t.is_meta:
        return None
    t = t.cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    try:
        return np.array(t.contiguous().numpy(), copy=True)
    except (TypeError, RuntimeError):
        return None


def _tensor_like(arr: np.ndarray, orig: Any) -> Any:
    """``arr`` as a tensor with ``orig``'s dtype (and Parameter-ness)."""
    import torch

    t = torch.from_numpy(np.array(arr, copy=True)).to(orig.dtype)
    if isinstance(orig, torch.nn.Parameter):
        return torch.nn.Parameter(t, requires_grad=orig.requires_grad)
    return t


# =================================================================================================
# weight roles for files without a graph (and the fallback for weights a graph does not use)
# =================================================================================================


def _split_key(key: str) -> tuple[str, str]:
    head, _, tail = key.rpartition(".")
    return head, tail


def _guess_roles(weights: dict[str, Weight]) -> None:
    """Roles and layer ops from parameter names and siblings, as torch modules name them."""
    names = set(weights)
    for w in weights.values():
        layer, suffix = _split_key(w.source)
        w.layer = layer or w.name
        has_bn = f"{layer}.running_mean" in names if layer else "running_mean" in names
        nd = len(w.shape)
        floating = np.issubdtype(w.dtype, np.floating)
        if re.fullmatch(r"weight_(ih|hh)_l\d+(_reverse)?", suffix) and floating:
            w.role, w.op = "recurrent", "Recurrent"  # nn.LSTM / GRU / RNN
        elif re.fullmatch(r"bias_(ih|hh)_l\d+(_reverse)?", suffix):
            w.role, w.op = "bias", "Recurrent"
        elif suffix == "weight" or (suffix.endswith("_weight") and nd == 2):
            if nd == 1 and has_bn:
                w.role, w.op = "bn_gamma", "BatchNormalization"
            elif nd == 2 and "embed" in layer.lower():
                w.role, w.op = "embedding", "Embedding"
            elif nd == 2:
                w.role, w.op = "kernel", "Dense"
            elif 3 <= nd <= 5:
                w.role, w.op = "kernel", "Conv"
            else:
                w.role, w.op = ("other" if floating else "buffer"), ""
        elif suffix == "bias" or suffix.endswith("_bias"):
            w.role = "bn_beta" if has_bn else "bias"
            w.op = "BatchNormalization" if has_bn else ""
        elif suffix == "running_mean":
            w.role, w.op = "bn_mean", "BatchNormalization"
        elif suffix == "running_var":
            w.role, w.op = "bn_var", "BatchNormalization"
        elif suffix == "num_batches_tracked" or not floating:
            w.role, w.op = "buffer", ""
        else:
            w.role, w.op = "other", ""
    # a bias takes the op of its layer's weight
    for w in weights.values():
        if w.role == "bias":
            layer, suffix = _split_key(w.source)
            sib = weights.get(f"{layer}.{suffix[: -len('bias')]}weight" if layer else "weight")
            if sib is not None and sib.role == "kernel":
                w.op = sib.op


def _weights_from(tensors: Mapping[str, Any], skipped: list[str]) -> dict[str, Weight]:
    out: dict[str, Weight] = {}
    for k, t in tensors.items():
        arr = _to_numpy(t)
        if arr is None:
            skipped.append(k)
            continue
        out[k] = Weight(name=k, value=arr, source=k)
    return out


def _dtype_notes(tensors: Mapping[str, Any], skipped: list[str]) -> list[str]:
    import torch

    return _notes_of(sum(getattr(t, "dtype", None) == torch.bfloat16 for t in tensors.values()), skipped)


def _notes_of(bf16: int, skipped: list[str]) -> list[str]:
    """What a user should know of the dtypes read: bfloat16 widened, tensors numpy cannot hold."""
    notes = []
    if bf16:
        notes.append(f"{bf16} bfloat16 tensors read as float32 (written back as bfloat16)")
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        notes.append(f"{len(skipped)} tensors with no numpy dtype kept unchanged ({shown})")
    return notes


# =================================================================================================
# torch.save files: state_dicts, checkpoints, (trusted) pickled modules
# =================================================================================================


@dataclass
class _Source:
    """What a writer needs to rebuild the file: the graph's ``source`` handle."""

    kind: str  # "state-dict" | "checkpoint" | "module" | "tensor" | "torchscript" | "torch-export"
    path: str
    legacy: bool = False
    trusted: bool = False
    key: str | None = None  # the checkpoint entry holding the weights (None: the top level)
    tensors: list[str] = field(default_factory=list)  # the file's tensor names the writer may replace
    extra_files: list[str] = field(default_factory=list)  # TorchScript extra/ members to keep
    drop: list[str] = field(default_factory=list)  # checkpoint entries left out when written (training state)


def _torch_load(p: Path, *, trusted: bool) -> Any:
    import pickle

    import torch

    try:
        return torch.load(str(p), map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as e:
        msg = plain(str(e))
        if not trusted and "Weights only load failed" in msg and not _looks_corrupt(msg):
            raise _pickle_refusal(p, _refused_class(msg)) from None
        raise InputError(
            f"corrupt torch.save data ({error_line(e)})", path=str(p), hint="Re-save or re-download the file"
        ) from None
    except (AttributeError, ModuleNotFoundError, ImportError) as e:
        if trusted:
            raise UnsupportedError(
                f"the pickled object needs Python code that cannot be imported here ({error_line(e)})",
                path=str(p),
                hint="Run nncompress where the model's code is importable, "
                "or re-save it with torch.save(model.state_dict())",
            ) from None
        raise InputError(f"cannot read torch.save data ({error_line(e)})", path=str(p)) from None
    except Exception as e:
        raise InputError(
            f"truncated or corrupt torch.save file ({error_line(e)})",
            path=str(p),
            hint="Re-save or re-download the file",
        ) from None


def _looks_corrupt(msg: str) -> bool:
    return any(s in msg for s in ("Unsupported operand", "EOF", "invalid load key", "truncated"))


def _refused_class(msg: str) -> str | None:
    for pat in (r"GLOBAL ([\w.]+)", r"but got <class '([\w.]+)'>", r"Unsupported class ([\w.]+)"):
        m = re.search(pat, msg)
        if m:
            return m.group(1)
    return None


def _pickle_refusal(p: Path, cls: str | None) -> UnsupportedError:
    what = f" ({cls})" if cls else ""
    return UnsupportedError(
        f"holds a pickled Python object{what}; nncompress does not unpickle untrusted data",
        path=str(p),
        hint=_RESAVE_HINT,
    )


def _is_tensor_map(v: Any) -> bool:
    import torch

    return (
        isinstance(v, Mapping)
        and len(v) > 0
        and all(isinstance(k, str) for k in v)
        and all(isinstance(t, torch.Tensor) for t in v.values())
    )


def _count_tensors(v: Any, depth: int = 0) -> int:
    import torch

    if isinstance(v, torch.Tensor):
        return 1
    if depth > 20:
        return 0
    if isinstance(v, Mapping):
        return sum(_count_tensors(x, depth + 1) for x in v.values())
    if isinstance(v, (list, tuple)):
        return sum(_count_tensors(x, depth + 1) for x in v)
    return 0


def _load_saved(p: Path, *, legacy: bool, trusted: bool) -> Graph:
    if not trusted:
        return _load_saved_safely(p, legacy=legacy)
    import torch

    obj = _torch_load(p, trusted=trusted)
    notes: list[str] = []
    key: str | None = None
    if isinstance(obj, torch.nn.Module):
        kind, fmt, tensors = "module", "torch-checkpoint", obj.state_dict()
        notes.append(f"a pickled {type(obj).__qualname__} module, unpickled by request (--trust-pickle)")
    elif isinstance(obj, torch.Tensor):
        kind, fmt, tensors = "tensor", "torch-state-dict", {"tensor": obj}
        notes.append("a single tensor, named 'tensor'")
    elif _is_tensor_map(obj):
        kind, fmt, tensors = "state-dict", "torch-state-dict", obj
    elif isinstance(obj, Mapping):
        kind, fmt = "checkpoint", "torch-checkpoint"
        key, tensors = _find_state(obj, p, trusted=trusted)
        if isinstance(tensors, torch.nn.Module):
            notes.append(f"{key!r} holds a pickled module, unpickled by request (--trust-pickle)")
            tensors = tensors.state_dict()
        ignored = []
        for k, v in obj.items():
            if k == key or (key is None and isinstance(v, torch.Tensor)):
                continue
            n = _count_tensors(v)
            ignored.append(f"{k} ({n} tensors)" if n else str(k))
        where = f"weights from {key!r}" if key is not None else "weights from the top-level tensors"
        notes.append(where)
        if ignored:
            notes.append("ignored: " + ", ".join(ignored))
            notes.append("ignored entries are kept unchanged when the file is written")
    else:
        raise UnsupportedError(
            f"holds a {type(obj).__name__}, not a state_dict or a checkpoint dict",
            path=str(p),
            hint="Re-save it with torch.save(model.state_dict())",
        )
    skipped: list[str] = []
    weights = _weights_from(tensors, skipped)
    if not weights:
        raise UnsupportedError("holds no tensors nncompress can read", path=str(p))
    _guess_roles(weights)
    if any(k.startswith("module.") for k in weights):
        notes.append("names carry DataParallel's 'module.' prefix; kept as they are")
    notes.extend(_dtype_notes(tensors, skipped))
    if trusted and kind not in ("module",) and not any("unpickled" in n for n in notes):
        notes.append("loaded with --trust-pickle")
    src = _Source(
        kind=kind,
        path=str(p),
        legacy=legacy,
        trusted=trusted,
        key=key,
        tensors=list(weights),
    )
    meta = ModelMeta(
        format=fmt,
        producer="pytorch",
        producer_version="",
        path=str(p),
        notes=[_WEIGHTS_NOTE, *notes],
        extra={"legacy": legacy} if legacy else {},
    )
    g = Graph(weights=weights, has_graph=False, meta=meta, name=p.stem, source=src)
    g.validate()
    return g


def _find_state(obj: Mapping[str, Any], p: Path, *, trusted: bool) -> tuple[str | None, Any]:
    import torch

    def usable(v: Any) -> bool:
        return _is_tensor_map(v) or (trusted and isinstance(v, torch.nn.Module))

    for k in _WRAPPER_KEYS:
        if k in obj and usable(obj[k]):
            return k, obj[k]
    for k, v in obj.items():
        if isinstance(k, str) and usable(v):
            return k, v
    loose = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if loose:
        return None, loose
    raise UnsupportedError(
        "a checkpoint dict without a state_dict (no entry maps names to tensors)",
        path=str(p),
        hint="Re-save it with torch.save(model.state_dict())",
    )


def _load_saved_safely(p: Path, *, legacy: bool) -> Graph:
    """A torch.save file read by the inert unpickler: nothing in it is called (see `torchsave`)."""
    from nncompress.io.torch.checkpoint import find_weights
    from nncompress.io.torch.torchsave import open_saved

    ts = open_saved(p, legacy=legacy)
    found = find_weights(ts.obj)
    if found is None:
        what = type(ts.obj).__name__ if not hasattr(ts.obj, "fullname") else ts.obj.fullname
        raise UnsupportedError(
            f"holds a {what}, not a state_dict, a module or a checkpoint dict with tensors",
            path=str(p),
            hint="Re-save it with torch.save(model.state_dict())",
        )
    readable = {k: r for k, r in found.refs.items() if r.kind == "strided" and r.dtype in _NUMPY_DTYPES}
    skipped = [k for k in found.refs if k not in readable]
    arrays = ts.arrays(readable)
    weights = {k: Weight(name=k, value=arrays[k], source=k) for k in readable}
    if not weights:
        raise UnsupportedError("holds no tensors nncompress can read", path=str(p))
    _guess_roles(weights)
    notes = list(found.notes)
    if found.kind == "checkpoint":
        notes.append(f"weights from {found.key!r}" if found.key else "weights from the top-level tensors")
    if found.training:
        shown = ", ".join(
            f"{k} ({n} tensors, {human_bytes(b, _NOTE_UNITS)})" if n else k
            for k, (n, b) in found.training.items()
        )
        notes.append(f"training state left out of the artifact: {shown} (--keep-training-state keeps it)")
    if found.ignored:
        notes.append("kept unchanged: " + ", ".join(found.ignored))
    if ts.foreign:
        names = sorted(ts.foreign)
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        notes.append(f"holds {len(names)} Python classes ({shown}): read without running any of them")
    if any(k.startswith("module.") for k in weights):
        notes.append("names carry DataParallel's 'module.' prefix; kept as they are")
    notes += _notes_of(sum(r.dtype == "bfloat16" for r in readable.values()), skipped)
    src = _Source(
        kind=found.kind, path=str(p), legacy=legacy, key=found.key, tensors=list(weights),
        drop=list(found.training),
    )  # fmt: skip
    fmt = "torch-state-dict" if found.kind in ("state-dict", "tensor") else "torch-checkpoint"
    extra: dict[str, Any] = {"legacy": legacy} if legacy else {}
    if found.training:
        extra["training_state"] = {k: {"tensors": n, "bytes": b} for k, (n, b) in found.training.items()}
    meta = ModelMeta(format=fmt, producer="pytorch", path=str(p), notes=[_WEIGHTS_NOTE, *notes], extra=extra)
    g = Graph(weights=weights, has_graph=False, meta=meta, name=p.stem, source=src)
    g.validate()
    return g


_NUMPY_DTYPES = frozenset(
    "float64 float32 float16 bfloat16 int64 int32 int16 int8 uint8 uint16 uint32 uint64 bool".split()
)


def _save_saved_safely(graph: Graph, src: _Source, tmp: Path) -> None:
    """The source file copied with only the changed tensors' bytes rewritten (training state cut
    unless the graph asks to keep it)."""
    from nncompress.io.torch.checkpoint import find_weights
    from nncompress.io.torch.torchsave import open_saved

    ts = open_saved(Path(src.path), legacy=src.legacy)
    found = find_weights(ts.obj)
    if found is None:
        raise OutputError("the source file no longer holds its weights", path=src.path)
    refs = found.refs
    changes = _changes(graph, src, lambda k: ts.stored(refs[k]) if k in refs else None)
    keep = bool(graph.meta.extra.get("keep_training_state"))
    ts.write(tmp, changes, drop=() if keep else tuple(src.drop))


def _save_saved(graph: Graph, src: _Source, tmp: Path) -> None:
    if not src.trusted:
        _save_saved_safely(graph, src, tmp)
        return
    import torch

    obj = _torch_load(Path(src.path), trusted=src.trusted)
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


def _changes(graph: Graph, src: _Source, where: Callable[[str], Any]) -> list[tuple[Any, np.ndarray]]:
    """(record view, new values in the file's layout) of each file tensor the graph holds; ``where``
    locates a tensor (an `archive.Stored`, or None where the file has no such tensor)."""
    out = []
    for k in src.tensors:
        w = graph.weights.get(k)
        st = where(k) if w is not None else None
        if w is None or st is None:
            continue
        _check_shape(w, st.shape, src)
        out.append((st, w.to_source()))
    return out


def _check_shape(w: Weight, shape: tuple[int, ...], src: _Source) -> None:
    if tuple(w.source_shape) != tuple(shape) or tuple(w.shape) != tuple(shape):
        raise OutputError(
            f"weight {w.name!r} has shape {w.shape}, the file holds {tuple(shape)}; the torch writer "
            "keeps the model's architecture",
            path=src.path,
            hint="Write an .nnc artifact or .onnx for shape-changing compression",
        )


def _replace_in(sd: Any, graph: Graph, src: _Source) -> None:
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


def _copy_into(sd: Mapping[str, Any], graph: Graph, src: _Source) -> None:
    """Copy into a module's live state_dict tensors (they share storage with its parameters)."""
    import torch

    with torch.no_grad():
        for k, t in sd.items():
            w = graph.weights.get(k)
            if w is None or k not in src.tensors:
                continue
            _check_shape(w, tuple(t.shape), src)
            t.copy_(torch.from_numpy(np.array(w.to_source(), copy=True)))


# =================================================================================================
# the converter: values, the builder, and aten op -> IR op mapping (shared by TorchScript and export)
# =================================================================================================


class _Unconvertible(Exception):
    """The graph cannot be converted (control flow, opaque objects): fall back to weights only."""


class _NotMapped(Exception):
    """This op has no IR counterpart with these arguments: carry it as an aten op."""


@dataclass(frozen=True)
class _Ref:
    """A tensor: an IR value or weight name."""

    name: str


@dataclass(frozen=True)
class _Dim:
    """``x.size(dim)``: an int only known at run time."""

    of: str
    dim: int


class _UnknownT:
    """A value the converter does not follow (a data-dependent scalar, an opaque object)."""

    def __repr__(self) -> str:
        return "?"


_UNKNOWN = _UnknownT()


@dataclass
class _Mod:
    """A (sub)module reached through prim::GetAttr: its dotted path and the live object."""

    path: str
    obj: Any


# torch dtypes (the ScalarType enum of TorchScript, or torch.dtype names) -> ONNX TensorProto and numpy
_SCALAR_TYPES = {
    0: "uint8",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "int64",
    5: "float16",
    6: "float32",
    7: "float64",
    11: "bool",
    15: "bfloat16",
}
_ONNX_TYPES = {
    "float32": 1,
    "uint8": 2,
    "int8": 3,
    "int16": 5,
    "int32": 6,
    "int64": 7,
    "bool": 9,
    "float16": 10,
    "float64": 11,
    "bfloat16": 16,
}
_JIT_SCALAR_NAMES = {
    "Float": "float32",
    "Double": "float64",
    "Half": "float16",
    "BFloat16": "bfloat16",
    "Long": "int64",
    "Int": "int32",
    "Short": "int16",
    "Char": "int8",
    "Byte": "uint8",
    "Bool": "bool",
}


def _dtype_name(d: Any) -> str | None:
    if d is None:
        return None
    if isinstance(d, int) and not isinstance(d, bool):
        return _SCALAR_TYPES.get(d)
    s = str(d)
    return s[len("torch.") :] if s.startswith("torch.") else None


class _Args:
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

    def t(self, name: str, idx: int) -> _Ref:
        v = self.get(name, idx)
        if not isinstance(v, _Ref):
            raise _NotMapped(f"{name} is not a tensor")
        return v

    def opt_t(self, name: str, idx: int) -> _Ref | None:
        v = self.get(name, idx)
        if v is None:
            return None
        if not isinstance(v, _Ref):
            raise _NotMapped(f"{name} is not a tensor")
        return v


class _Builder:
    """Collects IR nodes, weights and what is known of value ranks and dtypes."""

    def __init__(self, weights: dict[str, Weight], file_keys: set[str]) -> None:
        self.weights = weights
        self.file_keys = file_keys  # weights that come from the file (the others are converter consts)
        self.nodes: list[Node] = []
        self.used: set[str] = set(weights)
        self.node_names: set[str] = set()
        self.rank: dict[str, int] = {k: len(w.shape) for k, w in weights.items()}
        self.dtype: dict[str, str] = {k: str(w.dtype) for k, w in weights.items()}
        self.inputs: list[ValueInfo] = []
        self.notes: list[str] = []
        self.unknown_ops: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        base = base or "v"
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def _node_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.node_names:
            name, i = f"{base}_{i}", i + 1
        self.node_names.add(name)
        return name

    def const(self, base: str, arr: np.ndarray) -> _Ref:
        name = self.fresh(base)
        self.weights[name] = Weight(name=name, value=np.asarray(arr, order="C"), layer=base, role="const")
        self.rank[name] = arr.ndim
        self.dtype[name] = str(arr.dtype)
        return _Ref(name)

    def layer_of(self, inputs: list[str]) -> str:
        for i in inputs:
            if i in self.file_keys:
                return _split_key(i)[0] or i
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
    ) -> list[_Ref]:
        while inputs and inputs[-1] == "":
            inputs = inputs[:-1]
        outs = [self.fresh(base if i == 0 else f"{base}.{i}") for i in range(n_out)]
        layer = self.layer_of(inputs)
        name = self._node_name(layer or outs[0])
        node = Node(name=name, op=op, inputs=inputs, outputs=outs, attrs=dict(attrs or {}), domain=domain)
        node.layer = layer or name
        self.nodes.append(node)
        r = _infer_rank(self, node)
        if r is not None:
            self.rank[outs[0]] = r
        if op not in ("Cast", "Gather", "Shape") and inputs and inputs[0] in self.dtype:
            self.dtype.setdefault(outs[0], self.dtype[inputs[0]])
        return [_Ref(o) for o in outs]

    def one(self, op: str, inputs: list[str], base: str, **kw: Any) -> _Ref:
        return self.emit(op, inputs, base, **kw)[0]

    def operand(self, v: Any, like: _Ref | None, base: str) -> str:
        """A tensor operand's name: a Python number becomes a scalar constant weight."""
        if isinstance(v, _Ref):
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
        raise _NotMapped("operand is not a tensor or a number")


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


def _infer_rank(b: _Builder, n: Node) -> int | None:
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


# -- mapping helpers -------------------------------------------------------------------------------


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise _NotMapped("expected an int")
    return int(v)


def _ints(v: Any, n: int | None = None) -> list[int]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        vals = [int(v)]
    elif isinstance(v, (list, tuple)):
        vals = [_int(x) for x in v]
    else:
        raise _NotMapped("expected an int list")
    if n is not None and len(vals) == 1 and n > 1:
        vals = vals * n
    if n is not None and len(vals) != n:
        raise _NotMapped("int list of the wrong length")
    return vals


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
        raise _NotMapped("expected a number")
    return float(v)


def _is_one(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 1)


def _kernel_shape(b: _Builder, w: _Ref) -> tuple[int, ...] | None:
    wt = b.weights.get(w.name)
    return tuple(wt.shape[2:]) if wt is not None and len(wt.shape) >= 3 else None


def _conv(
    b: _Builder,
    base: str,
    x: _Ref,
    w: _Ref,
    bias: _Ref | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: Any,
) -> _Ref:
    ks = _kernel_shape(b, w)
    if ks is not None:
        k = len(ks)
    elif isinstance(stride, (list, tuple)) and len(stride) > 1:
        k = len(stride)
    else:
        raise _NotMapped("convolution of unknown rank")
    attrs: dict[str, Any] = {
        "strides": _ints(stride, k),
        "dilations": _ints(dilation, k),
        "group": _int(groups),
    }
    if isinstance(padding, str):
        if padding == "valid":
            attrs["pads"] = [0] * (2 * k)
        elif padding == "same" and ks is not None:
            total = [d * (kk - 1) for d, kk in zip(attrs["dilations"], ks, strict=True)]
            attrs["pads"] = [t // 2 for t in total] + [t - t // 2 for t in total]
        elif padding == "same":
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            raise _NotMapped(f"padding {padding!r}")
    else:
        pads = _ints(padding, k)
        attrs["pads"] = pads + pads
    if ks is not None:
        attrs["kernel_shape"] = list(ks)
    if transposed:
        attrs["output_padding"] = _ints(output_padding, k) if output_padding is not None else [0] * k
        return b.one("ConvTranspose", [x.name, w.name, bias.name if bias else ""], base, attrs=attrs)
    return b.one("Conv", [x.name, w.name, bias.name if bias else ""], base, attrs=attrs)


def _m_conv_nd(b: _Builder, a: _Args, base: str) -> _Ref:
    return _conv(
        b, base, a.t("input", 0), a.t("weight", 1), a.opt_t("bias", 2), a.get("stride", 3, 1),
        a.get("padding", 4, 0), a.get("dilation", 5, 1), False, None, a.get("groups", 6, 1),
    )  # fmt: skip


def _m_conv_transpose_nd(b: _Builder, a: _Args, base: str) -> _Ref:
    return _conv(
        b, base, a.t("input", 0), a.t("weight", 1), a.opt_t("bias", 2), a.get("stride", 3, 1),
        a.get("padding", 4, 0), a.get("dilation", 7, 1), True, a.get("output_padding", 5, 0),
        a.get("groups", 6, 1),
    )  # fmt: skip


def _m_convolution(b: _Builder, a: _Args, base: str) -> _Ref:
    transposed = a.get("transposed", 6, False)
    if not isinstance(transposed, bool):
        raise _NotMapped("transposed is not a constant")
    return _conv(
        b, base, a.t("input", 0), a.t("weight", 1), a.opt_t("bias", 2), a.get("stride", 3),
        a.get("padding", 4), a.get("dilation", 5), transposed, a.get("output_padding", 7),
        a.get("groups", 8, 1),
    )  # fmt: skip


def _m_linear(b: _Builder, a: _Args, base: str) -> _Ref:
    x, w, bias = a.t("input", 0), a.t("weight", 1), a.opt_t("bias", 2)
    return b.one("Dense", [x.name, w.name, bias.name if bias else ""], base)


def _batch_norm(
    b: _Builder,
    base: str,
    x: _Ref,
    w: _Ref | None,
    bias: _Ref | None,
    mean: Any,
    var: Any,
    eps: Any,
    training: Any,
) -> _Ref:
    if not isinstance(mean, _Ref) or not isinstance(var, _Ref):
        raise _NotMapped("batch norm without running statistics")
    if training is True:
        msg = "a batch_norm in training mode is converted in its inference form (running statistics)"
        if msg not in b.notes:
            b.notes.append(msg)
    c = b.weights[mean.name].shape if mean.name in b.weights else None
    if (w is None or bias is None) and c is None:
        raise _NotMapped("affine-less batch norm of unknown size")
    wn = w.name if w is not None else b.const(f"{base}.scale", np.ones(c, np.float32)).name  # type: ignore[arg-type]
    bn = bias.name if bias is not None else b.const(f"{base}.bias", np.zeros(c, np.float32)).name  # type: ignore[arg-type]
    return b.one(
        "BatchNormalization", [x.name, wn, bn, mean.name, var.name], base, attrs={"epsilon": _num(eps)}
    )


def _m_batch_norm(b: _Builder, a: _Args, base: str) -> _Ref:
    return _batch_norm(
        b, base, a.t("input", 0), a.opt_t("weight", 1), a.opt_t("bias", 2), a.get("running_mean", 3),
        a.get("running_var", 4), a.get("eps", 7, 1e-5), a.get("training", 5, False),
    )  # fmt: skip


def _m_bn_no_training(b: _Builder, a: _Args, base: str) -> tuple[Any, ...]:
    y = _batch_norm(
        b, base, a.t("input", 0), a.opt_t("weight", 1), a.opt_t("bias", 2), a.get("running_mean", 3),
        a.get("running_var", 4), a.get("eps", 6, 1e-5), False,
    )  # fmt: skip
    return (y, _UNKNOWN, _UNKNOWN)


def _m_native_bn(b: _Builder, a: _Args, base: str) -> tuple[Any, ...]:
    y = _batch_norm(
        b, base, a.t("input", 0), a.opt_t("weight", 1), a.opt_t("bias", 2), a.get("running_mean", 3),
        a.get("running_var", 4), a.get("eps", 7, 1e-5), a.get("training", 5, False),
    )  # fmt: skip
    return (y, _UNKNOWN, _UNKNOWN)


def _unary(op: str, **attrs: Any) -> Callable[[_Builder, _Args, str], _Ref]:
    def fn(b: _Builder, a: _Args, base: str) -> _Ref:
        return b.one(op, [a.t("self", 0).name], base, attrs=dict(attrs))

    return fn


def _identity(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.values[0] if a.values else None
    if not isinstance(x, _Ref):
        raise _NotMapped("not a tensor")
    return b.one("Identity", [x.name], base)


def _m_leaky_relu(b: _Builder, a: _Args, base: str) -> _Ref:
    return b.one(
        "LeakyRelu", [a.t("self", 0).name], base, attrs={"alpha": _num(a.get("negative_slope", 1, 0.01))}
    )


def _clip(b: _Builder, base: str, x: _Ref, lo: Any, hi: Any) -> _Ref:
    ins = [x.name]
    for v, tag in ((lo, "min"), (hi, "max")):
        if v is None:
            ins.append("")
        elif isinstance(v, _Ref):
            ins.append(v.name)
        else:
            ins.append(b.const(f"{base}.{tag}", np.asarray(_num(v), np.float32)).name)
    return b.one("Clip", ins, base)


def _m_hardtanh(b: _Builder, a: _Args, base: str) -> _Ref:
    return _clip(b, base, a.t("self", 0), a.get("min_val", 1, -1.0), a.get("max_val", 2, 1.0))


def _m_relu6(b: _Builder, a: _Args, base: str) -> _Ref:
    return _clip(b, base, a.t("self", 0), 0.0, 6.0)


def _m_clamp(b: _Builder, a: _Args, base: str) -> _Ref:
    return _clip(b, base, a.t("self", 0), a.get("min", 1), a.get("max", 2))


def _m_clamp_min(b: _Builder, a: _Args, base: str) -> _Ref:
    return _clip(b, base, a.t("self", 0), a.get("min", 1), None)


def _m_clamp_max(b: _Builder, a: _Args, base: str) -> _Ref:
    return _clip(b, base, a.t("self", 0), None, a.get("max", 1))


def _m_gelu(b: _Builder, a: _Args, base: str) -> _Ref:
    approx = a.get("approximate", 1, "none")
    if approx not in ("none", "tanh"):
        raise _NotMapped("gelu approximation")
    return b.one("Gelu", [a.t("self", 0).name], base, attrs={"approximate": approx})


def _m_silu(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    s = b.one("Sigmoid", [x.name], f"{base}.sigmoid")
    return b.one("Mul", [x.name, s.name], base)


def _m_mish(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    sp = b.one("Softplus", [x.name], f"{base}.softplus")
    th = b.one("Tanh", [sp.name], f"{base}.tanh")
    return b.one("Mul", [x.name, th.name], base)


def _m_elu(b: _Builder, a: _Args, base: str) -> _Ref:
    if not (_is_one(a.get("scale", 2, 1)) and _is_one(a.get("input_scale", 3, 1))):
        raise _NotMapped("scaled elu")
    return b.one("Elu", [a.t("self", 0).name], base, attrs={"alpha": _num(a.get("alpha", 1, 1.0))})


def _m_softplus(b: _Builder, a: _Args, base: str) -> _Ref:
    if not _is_one(a.get("beta", 1, 1)):
        raise _NotMapped("softplus beta")
    return b.one("Softplus", [a.t("self", 0).name], base)


def _m_prelu(b: _Builder, a: _Args, base: str) -> _Ref:
    x, w = a.t("self", 0), a.t("weight", 1)
    wt = b.weights.get(w.name)
    if wt is None:
        raise _NotMapped("prelu slope is not a weight")
    if wt.role in ("other", "kernel", "bn_gamma"):
        wt.role, wt.op = "alpha", "PRelu"
    slope = w.name
    r = b.rank.get(x.name)
    if wt.size > 1:
        if r is None:
            raise _NotMapped("prelu on a tensor of unknown rank")
        if r > 2:  # torch's slope is per channel (axis 1); ONNX broadcasts from the last axis
            shape = b.const(f"{base}.slope_shape", np.asarray([-1] + [1] * (r - 2), np.int64))
            slope = b.one("Reshape", [w.name, shape.name], f"{base}.slope").name
    return b.one("PRelu", [x.name, slope], base)


def _m_softmax(op: str) -> Callable[[_Builder, _Args, str], _Ref]:
    def fn(b: _Builder, a: _Args, base: str) -> _Ref:
        dtype = a.get("dtype", 2)
        if a.has("dtype") and dtype is not None:
            raise _NotMapped("softmax with a dtype")
        return b.one(op, [a.t("self", 0).name], base, attrs={"axis": _int(a.get("dim", 1))})

    return fn


def _pool(kernel: Any, stride: Any, padding: Any, dilation: Any, ceil: Any) -> dict[str, Any]:
    ks = _ints(kernel)
    k = len(ks)
    st = _ints(stride, k) if stride not in (None, [], ()) else list(ks)
    pads = _ints(padding, k)
    attrs: dict[str, Any] = {
        "kernel_shape": ks,
        "strides": st,
        "pads": pads + pads,
        "ceil_mode": int(bool(ceil)),
    }
    if dilation is not None:
        attrs["dilations"] = _ints(dilation, k)
    return attrs


def _m_max_pool(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    attrs = _pool(
        a.get("kernel_size", 1),
        a.get("stride", 2),
        a.get("padding", 3, 0),
        a.get("dilation", 4, 1),
        a.get("ceil_mode", 5, False),
    )
    return b.one("MaxPool", [x.name], base, attrs=attrs)


def _m_max_pool_with_indices(b: _Builder, a: _Args, base: str) -> tuple[Any, ...]:
    return (_m_max_pool(b, a, base), _UNKNOWN)


def _m_avg_pool(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    if a.get("divisor_override", 6) is not None:
        raise _NotMapped("divisor_override")
    attrs = _pool(
        a.get("kernel_size", 1),
        a.get("stride", 2),
        a.get("padding", 3, 0),
        None,
        a.get("ceil_mode", 4, False),
    )
    attrs["count_include_pad"] = int(bool(a.get("count_include_pad", 5, True)))
    return b.one("AveragePool", [x.name], base, attrs=attrs)


def _m_adaptive(op: str, with_indices: bool = False) -> Callable[[_Builder, _Args, str], Any]:
    def fn(b: _Builder, a: _Args, base: str) -> Any:
        size = a.get("output_size", 1)
        if not all(v == 1 for v in _ints(size)):
            raise _NotMapped("adaptive pool to a size other than 1")
        y = b.one(op, [a.t("self", 0).name], base)
        return (y, _UNKNOWN) if with_indices else y

    return fn


def _m_reduce(op: str) -> Callable[[_Builder, _Args, str], _Ref]:
    def fn(b: _Builder, a: _Args, base: str) -> _Ref:
        if a.get("dtype", 3) is not None and a.has("dtype"):
            raise _NotMapped("reduction with a dtype")
        dims = a.get("dim", 1)
        attrs: dict[str, Any] = {"keepdims": int(bool(a.get("keepdim", 2, False)))}
        if a.has("dim") and dims not in (None, [], ()):
            attrs["axes"] = _ints(dims)
        return b.one(op, [a.t("self", 0).name], base, attrs=attrs)

    return fn


def _shape_list(b: _Builder, x: _Ref, dims: Any) -> list[int]:
    if not isinstance(dims, (list, tuple)):
        raise _NotMapped("shape is not a list")
    out: list[int | None] = []
    for i, d in enumerate(dims):
        if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
            out.append(int(d))
        elif isinstance(d, _Dim) and d.dim == i and (d.of == x.name or i == 0):
            out.append(0)  # ONNX: 0 copies the input's size on this axis (the batch, typically)
        else:
            out.append(None)
    unknown = sum(v is None for v in out)
    if unknown and (unknown > 1 or -1 in out):
        raise _NotMapped("shape with several run-time sizes")
    return [-1 if v is None else v for v in out]


def _reshape(b: _Builder, x: _Ref, shape: list[int], base: str) -> _Ref:
    s = b.const(f"{base}.shape", np.asarray(shape, np.int64))
    return b.one("Reshape", [x.name, s.name], base)


def _m_view(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    return _reshape(b, x, _shape_list(b, x, a.values[1] if len(a.values) > 1 else None), base)


def _m_flatten(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    start, end = _int(a.get("start_dim", 1, 0)), _int(a.get("end_dim", 2, -1))
    r = b.rank.get(x.name)
    if r is not None:
        start = start + r if start < 0 else start
        end = end + r if end < 0 else end
        if end == r - 1:
            end = -1
    if end != -1 or start < 0:
        raise _NotMapped("flatten of inner axes")
    if start == 1:
        return b.one("Flatten", [x.name], base, attrs={"axis": 1})
    return _reshape(b, x, [0] * start + [-1], base)


def _m_unsqueeze(b: _Builder, a: _Args, base: str) -> _Ref:
    return b.one("Unsqueeze", [a.t("self", 0).name], base, attrs={"axes": [_int(a.get("dim", 1))]})


def _m_squeeze(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    if len(a.values) < 2:
        return b.one("Squeeze", [x.name], base)
    return b.one("Squeeze", [x.name], base, attrs={"axes": _ints(a.values[1])})


def _m_permute(b: _Builder, a: _Args, base: str) -> _Ref:
    dims = _ints(a.get("dims", 1))
    perm = [d % len(dims) for d in dims]
    return b.one("Transpose", [a.t("self", 0).name], base, attrs={"perm": perm})


def _m_transpose(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    r = b.rank.get(x.name)
    if r is None:
        raise _NotMapped("transpose of unknown rank")
    d0, d1 = _int(a.get("dim0", 1)) % r, _int(a.get("dim1", 2)) % r
    perm = list(range(r))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return b.one("Transpose", [x.name], base, attrs={"perm": perm})


def _m_t(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    r = b.rank.get(x.name)
    if r is not None and r < 2:
        return b.one("Identity", [x.name], base)
    return b.one("Transpose", [x.name], base, attrs={"perm": [1, 0]})


def _m_cat(b: _Builder, a: _Args, base: str) -> _Ref:
    ts = a.get("tensors", 0)
    if not isinstance(ts, (list, tuple)) or not ts or not all(isinstance(t, _Ref) for t in ts):
        raise _NotMapped("cat of unknown tensors")
    return b.one("Concat", [t.name for t in ts], base, attrs={"axis": _int(a.get("dim", 1, 0))})


def _m_stack(b: _Builder, a: _Args, base: str) -> _Ref:
    ts = a.get("tensors", 0)
    if not isinstance(ts, (list, tuple)) or not ts or not all(isinstance(t, _Ref) for t in ts):
        raise _NotMapped("stack of unknown tensors")
    dim = _int(a.get("dim", 1, 0))
    parts = [b.one("Unsqueeze", [t.name], f"{base}.in{i}", attrs={"axes": [dim]}) for i, t in enumerate(ts)]
    return b.one("Concat", [p.name for p in parts], base, attrs={"axis": dim})


def _m_embedding(b: _Builder, a: _Args, base: str) -> _Ref:
    w, ids = a.t("weight", 0), a.t("indices", 1)
    return b.one("Gather", [w.name, ids.name], base, attrs={"axis": 0})


def _m_matmul(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    y = a.values[1] if len(a.values) > 1 else None
    if not isinstance(y, _Ref):
        raise _NotMapped("matmul operand")
    return b.one("MatMul", [x.name, y.name], base)


def _m_addmm(b: _Builder, a: _Args, base: str) -> _Ref:
    c, m1, m2 = a.t("self", 0), a.t("mat1", 1), a.t("mat2", 2)
    attrs = {"alpha": _num(a.get("alpha", 4, 1)), "beta": _num(a.get("beta", 3, 1))}
    return b.one("Gemm", [m1.name, m2.name, c.name], base, attrs=attrs)


def _binary(op: str) -> Callable[[_Builder, _Args, str], _Ref]:
    def fn(b: _Builder, a: _Args, base: str) -> _Ref:
        x = a.t("self", 0)
        y = a.get("other", 1)
        alpha = a.get("alpha", 2, 1) if op in ("Add", "Sub") else 1
        if op == "Div" and a.get("rounding_mode", 2) is not None:
            raise _NotMapped("div with a rounding mode")
        if not _is_one(alpha):
            if isinstance(y, _Ref):
                y = b.one("Mul", [y.name, b.operand(_num(alpha), y, base)], f"{base}.alpha")
            else:
                y = _num(y) * _num(alpha)
        return b.one(op, [x.name, b.operand(y, x, base)], base)

    return fn


def _compare(op: str, negate: bool = False) -> Callable[[_Builder, _Args, str], _Ref]:
    def fn(b: _Builder, a: _Args, base: str) -> _Ref:
        x = a.t("self", 0)
        y = b.one(op, [x.name, b.operand(a.get("other", 1), x, base)], f"{base}.cmp" if negate else base)
        b.dtype[y.name] = "bool"
        if negate:
            y = b.one("Not", [y.name], base)
            b.dtype[y.name] = "bool"
        return y

    return fn


def _m_where(b: _Builder, a: _Args, base: str) -> _Ref:
    c, x = a.t("condition", 0), a.get("self", 1)
    like = x if isinstance(x, _Ref) else None
    y = a.get("other", 2)
    like = like or (y if isinstance(y, _Ref) else None)
    return b.one("Where", [c.name, b.operand(x, like, base), b.operand(y, like, base)], base)


def _m_minmax(op: str) -> Callable[[_Builder, _Args, str], _Ref]:
    def fn(b: _Builder, a: _Args, base: str) -> _Ref:
        x = a.t("self", 0)
        return b.one(op, [x.name, b.operand(a.get("other", 1), x, base)], base)

    return fn


def _m_rsqrt(b: _Builder, a: _Args, base: str) -> _Ref:
    r = b.one("Sqrt", [a.t("self", 0).name], f"{base}.sqrt")
    return b.one("Reciprocal", [r.name], base)


def _m_rsub(b: _Builder, a: _Args, base: str) -> _Ref:
    x, y, alpha = a.t("self", 0), a.get("other", 1), a.get("alpha", 2, 1)
    if not _is_one(alpha):
        x = b.one("Mul", [x.name, b.operand(_num(alpha), x, base)], f"{base}.alpha")
    return b.one("Sub", [b.operand(y, x, base), x.name], base)


def _m_pow(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    return b.one("Pow", [x.name, b.operand(a.get("exponent", 1), x, base)], base)


def _m_to(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    dt = _dtype_name(a.get("dtype", 1)) if a.has("dtype") else None
    if dt is None:
        return b.one("Identity", [x.name], base)
    if dt not in _ONNX_TYPES:
        raise _NotMapped("cast to an unknown dtype")
    y = b.one("Cast", [x.name], base, attrs={"to": _ONNX_TYPES[dt]})
    b.dtype[y.name] = dt
    return y


def _m_slice(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    dim, start, end, step = a.get("dim", 1, 0), a.get("start", 2), a.get("end", 3), a.get("step", 4, 1)
    start = 0 if start is None else _int(start)
    end = 2**63 - 1 if end is None else _int(end)
    consts = [
        b.const(f"{base}.{tag}", np.asarray([v], np.int64)).name
        for tag, v in (("starts", start), ("ends", end), ("axes", _int(dim)), ("steps", _int(step)))
    ]
    return b.one("Slice", [x.name, *consts], base)


def _m_select(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    idx = b.const(f"{base}.index", np.asarray(_int(a.get("index", 2)), np.int64))
    return b.one("Gather", [x.name, idx.name], base, attrs={"axis": _int(a.get("dim", 1))})


def _m_constant_pad(b: _Builder, a: _Args, base: str) -> _Ref:
    x = a.t("self", 0)
    pad = _ints(a.get("pad", 1))
    if len(pad) % 2:
        raise _NotMapped("odd pad list")
    k = len(pad) // 2
    pads = b.const(f"{base}.pads", np.asarray(pad[0::2] + pad[1::2], np.int64))
    value = b.const(f"{base}.value", np.asarray(_num(a.get("value", 2, 0.0)), np.float32))
    axes = b.const(f"{base}.axes", np.asarray([-(i + 1) for i in range(k)], np.int64))
    return b.one("Pad", [x.name, pads.name, value.name, axes.name], base, attrs={"mode": "constant"})


_OPS: dict[str, Callable[[_Builder, _Args, str], Any]] = {
    "linear": _m_linear,
    "conv1d": _m_conv_nd,
    "conv2d": _m_conv_nd,
    "conv3d": _m_conv_nd,
    "conv_transpose1d": _m_conv_transpose_nd,
    "conv_transpose2d": _m_conv_transpose_nd,
    "conv_transpose3d": _m_conv_transpose_nd,
    "_convolution": _m_convolution,
    "_convolution_mode": _m_conv_nd,
    "convolution": _m_convolution,
    "batch_norm": _m_batch_norm,
    "_native_batch_norm_legit_no_training": _m_bn_no_training,
    "_native_batch_norm_legit": _m_native_bn,
    "native_batch_norm": _m_native_bn,
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "exp": _unary("Exp"),
    "log": _unary("Log"),
    "sqrt": _unary("Sqrt"),
    "abs": _unary("Abs"),
    "neg": _unary("Neg"),
    "erf": _unary("Erf"),
    "reciprocal": _unary("Reciprocal"),
    "hardswish": _unary("HardSwish"),
    "hardsigmoid": _unary("HardSigmoid", alpha=1 / 6, beta=0.5),
    "selu": _unary("Selu"),
    "leaky_relu": _m_leaky_relu,
    "hardtanh": _m_hardtanh,
    "relu6": _m_relu6,
    "clamp": _m_clamp,
    "clip": _m_clamp,
    "clamp_min": _m_clamp_min,
    "clamp_max": _m_clamp_max,
    "gelu": _m_gelu,
    "silu": _m_silu,
    "mish": _m_mish,
    "elu": _m_elu,
    "softplus": _m_softplus,
    "prelu": _m_prelu,
    "_prelu_kernel": _m_prelu,
    "softmax": _m_softmax("Softmax"),
    "_softmax": _m_softmax("Softmax"),
    "log_softmax": _m_softmax("LogSoftmax"),
    "_log_softmax": _m_softmax("LogSoftmax"),
    "max_pool1d": _m_max_pool,
    "max_pool2d": _m_max_pool,
    "max_pool2d_with_indices": _m_max_pool_with_indices,
    "avg_pool1d": _m_avg_pool,
    "avg_pool2d": _m_avg_pool,
    "adaptive_avg_pool1d": _m_adaptive("GlobalAveragePool"),
    "adaptive_avg_pool2d": _m_adaptive("GlobalAveragePool"),
    "_adaptive_avg_pool2d": _m_adaptive("GlobalAveragePool"),
    "adaptive_max_pool1d": _m_adaptive("GlobalMaxPool", with_indices=True),
    "adaptive_max_pool2d": _m_adaptive("GlobalMaxPool", with_indices=True),
    "mean": _m_reduce("ReduceMean"),
    "sum": _m_reduce("ReduceSum"),
    "amax": _m_reduce("ReduceMax"),
    "flatten": _m_flatten,
    "view": _m_view,
    "reshape": _m_view,
    "_unsafe_view": _m_view,
    "unsqueeze": _m_unsqueeze,
    "squeeze": _m_squeeze,
    "permute": _m_permute,
    "transpose": _m_transpose,
    "t": _m_t,
    "cat": _m_cat,
    "concat": _m_cat,
    "stack": _m_stack,
    "embedding": _m_embedding,
    "matmul": _m_matmul,
    "mm": _m_matmul,
    "bmm": _m_matmul,
    "addmm": _m_addmm,
    "add": _binary("Add"),
    "sub": _binary("Sub"),
    "mul": _binary("Mul"),
    "div": _binary("Div"),
    "rsub": _m_rsub,
    "gt": _compare("Greater"),
    "lt": _compare("Less"),
    "ge": _compare("GreaterOrEqual"),
    "le": _compare("LessOrEqual"),
    "eq": _compare("Equal"),
    "ne": _compare("Equal", negate=True),
    "where": _m_where,
    "minimum": _m_minmax("Min"),
    "maximum": _m_minmax("Max"),
    "rsqrt": _m_rsqrt,
    "pow": _m_pow,
    "to": _m_to,
    "_to_copy": _m_to,
    "type_as": _identity,
    "dropout": _identity,
    "feature_dropout": _identity,
    "alpha_dropout": _identity,
    "feature_alpha_dropout": _identity,
    "clone": _identity,
    "contiguous": _identity,
    "detach": _identity,
    "alias": _identity,
    "lift_fresh_copy": _identity,
    "slice": _m_slice,
    "select": _m_select,
    "constant_pad_nd": _m_constant_pad,
}


def _attr_value(v: Any) -> Any:
    """A non-tensor argument of a carried op, in plain Python (what writers and inspect show)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_attr_value(x) for x in v]
    if isinstance(v, _Dim):
        return f"size({v.of},{v.dim})"
    return str(v)


def _flat_refs(v: Any) -> Iterator[Any]:
    if isinstance(v, (list, tuple)):
        for x in v:
            yield from _flat_refs(x)
    else:
        yield v


def _emit_op(b: _Builder, full: str, a: _Args, base: str, n_out: int, tensor_inputs: list[bool]) -> Any:
    """Map one aten op; an unmapped one is carried as ``aten::name`` in domain ``torch``."""
    name = full.split("::", 1)[-1]
    fn = _OPS.get(name)
    if fn is None and name.endswith("_") and not name.endswith("__"):
        fn = _OPS.get(name[:-1])  # in-place variants compute the same values
    if fn is not None:
        try:
            return fn(b, a, base)
        except _NotMapped:
            pass
    ins: list[str] = []
    attrs: dict[str, Any] = {}
    for i, (n, v) in enumerate(zip(a.names, a.values, strict=False)):
        is_t = tensor_inputs[i] if i < len(tensor_inputs) else False
        if isinstance(v, _Ref) or (
            isinstance(v, (list, tuple)) and v and all(isinstance(x, _Ref) for x in v)
        ):
            ins.extend(x.name for x in _flat_refs(v))
        elif is_t and v is not None:
            raise _Unconvertible(f"{full} reads a tensor the converter could not follow")
        else:
            attrs[n or f"arg{i}"] = _attr_value(v)
    b.unknown_ops[full] = b.unknown_ops.get(full, 0) + 1
    outs = b.emit(full, ins, base, attrs=attrs, n_out=max(n_out, 1), domain="torch")
    return outs[0] if n_out <= 1 else tuple(outs)


# -- after conversion --------------------------------------------------------------------------------


def _fuse_dense(b: _Builder) -> None:
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
        n.layer = _split_key(t.inputs[0])[0] or n.layer
        drop.add(id(t))
    b.nodes = [n for n in b.nodes if id(n) not in drop]


def _assign_graph_roles(b: _Builder) -> None:
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


def _finish(
    b: _Builder, outputs: list[ValueInfo], meta: ModelMeta, name: str, src: _Source, *, dtypes_known: bool
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


def _fallback(
    file_tensors: Mapping[str, Any], meta: ModelMeta, name: str, src: _Source, reason: str, skipped: list[str]
) -> Graph:
    weights = _weights_from(file_tensors, [])
    _guess_roles(weights)
    meta.notes = [
        f"graph not converted ({reason}); weights only: fidelity is measured on weights",
        *_dtype_notes(file_tensors, skipped),
    ]
    src.tensors = list(weights)
    g = Graph(weights=weights, has_graph=False, meta=meta, name=name, source=src)
    g.validate()
    return g


def _outputs_of(b: _Builder, vals: list[Any], info: list[tuple[Any, Any]] | None = None) -> list[ValueInfo]:
    outs: list[ValueInfo] = []
    seen: set[str] = set()
    graph_inputs = {v.name for v in b.inputs}
    for i, v in enumerate(vals):
        if not isinstance(v, _Ref):
            raise _Unconvertible("the model returns something other than tensors")
        name = v.name
        if name in seen or name in graph_inputs or name in b.weights:
            name = b.one("Identity", [name], f"output_{i}").name  # IR outputs are distinct computed values
        seen.add(name)
        shape, dtype = info[i] if info is not None else (None, b.dtype.get(v.name, "float32"))
        outs.append(ValueInfo(name=name, shape=shape, dtype=dtype or "float32"))
    return outs


# =================================================================================================
# TorchScript
# =================================================================================================


def _torchscript_tensors(p: Path) -> tuple[str, Any]:
    """(record folder, data.pkl's module structure), with every tensor record of data.pkl and
    constants.pkl checked against the size its pickle declares: torch.jit.load trusts the declared
    size, and a short record made it read past its buffer (and compress then crash)."""
    from nncompress.io.torch.archive import ITEMSIZE, NUMPY_OF, Stored, TorchZip
    from nncompress.io.torch.torchsave import collect_storages
    from nncompress.io.torch.unpickle import SafeUnpickler, Storage, iter_refs

    with TorchZip.open(p) as z:
        module: Any = None
        for pkl, folder in (("data.pkl", "data"), ("constants.pkl", "constants")):
            if not z.has(pkl):
                continue
            storages: dict[str, Storage] = {}
            try:
                data = z.read(pkl, limit=1 << 30)
                obj = SafeUnpickler(io.BytesIO(data), persistent=collect_storages(storages)).load()
            except NNCError:
                raise
            except Exception as e:
                raise InputError(
                    f"corrupt TorchScript archive: {pkl} is unreadable ({error_line(e)})",
                    path=str(p),
                    hint="Re-save it with torch.jit.save",
                ) from None
            for key, st in storages.items():
                need, record = st.numel * ITEMSIZE.get(st.dtype, 1), f"{folder}/{key}"
                have = z.size(record) if z.has(record) else 0
                if need > have:
                    raise InputError(
                        f"corrupt TorchScript archive: record {record} holds {have} bytes, its tensor "
                        f"declares {need}",
                        path=str(p),
                        hint="Re-save it with torch.jit.save",
                    )
            for name, ref in iter_refs(obj):
                if ref.kind == "strided" and ref.dtype in NUMPY_OF:
                    view = Stored(
                        f"{z.root}/{folder}/{ref.storage.key}", ref.dtype, ref.offset, ref.shape, ref.strides
                    )
                    z.check(view, f"tensor {name!r}")
            if pkl == "data.pkl":
                module = obj
        return z.root, module


def _load_torchscript(p: Path, kind: _Kind) -> Graph:
    import torch

    _torchscript_tensors(p)
    traced = "traced_inputs.pkl" in kind.names
    extra_names = [
        n[len("extra/") :] for n in kind.names if n.startswith("extra/") and len(n) > len("extra/")
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.10+ deprecates TorchScript
            m = torch.jit.load(str(p), map_location="cpu", _restore_shapes=traced)
    except Exception as e:
        raise InputError(
            f"corrupt or unreadable TorchScript archive ({error_line(e)})",
            path=str(p),
            hint="Re-save it with torch.jit.save",
        ) from None
    was_training = bool(getattr(m, "training", False))
    m.eval()
    sd = m.state_dict()
    skipped: list[str] = []
    weights = _weights_from(sd, skipped)
    _guess_roles(weights)
    src = _Source(kind="torchscript", path=str(p), tensors=list(weights), extra_files=extra_names)
    meta = ModelMeta(format="torchscript", producer="pytorch", producer_version="", path=str(p))
    meta.extra["archive_version"] = _read_member(p, kind, "version")
    b = _Builder(weights, set(weights))
    try:
        outputs = _TorchScript(b, m).run()
        if any(vi.shape for vi in b.inputs):
            meta.extra["input_shapes"] = {vi.name: list(vi.shape or ()) for vi in b.inputs}
        if was_training:
            b.notes.append("saved in training mode; converted in eval mode")
        meta.notes = [*_dtype_notes(sd, skipped)]
        src.tensors = [k for k in b.weights if k in b.file_keys]
        return _finish(b, outputs, meta, p.stem, src, dtypes_known=traced)
    except (_Unconvertible, IRError) as e:
        return _fallback(sd, meta, p.stem, src, str(e), skipped)


def _read_member(p: Path, kind: _Kind, name: str) -> str:
    try:
        with zipfile.ZipFile(p) as z:
            return z.read(f"{kind.root}/{name}").decode("utf-8", "replace").strip()
    except (KeyError, OSError, zipfile.BadZipFile):
        return ""


_SCHEMAS: dict[str, tuple[list[str], str]] = {}


def _schema_names(schema: str) -> list[str]:
    """Argument names of a TorchScript node's matched schema ('(no schema)' -> [])."""
    import torch

    if schema not in _SCHEMAS:
        try:
            fs = torch._C.parse_schema(schema)
            _SCHEMAS[schema] = ([a.name for a in fs.arguments], fs.name)
        except RuntimeError:
            _SCHEMAS[schema] = ([], "")
    return _SCHEMAS[schema][0]


def _is_tensor_type(t: Any) -> bool:
    import torch

    if isinstance(t, torch._C.TensorType):
        return True
    if isinstance(t, torch._C.OptionalType):
        return _is_tensor_type(t.getElementType())
    return False


def _holds_tensors(t: Any) -> bool:
    import torch

    if _is_tensor_type(t):
        return True
    if isinstance(t, torch._C.ListType):
        return _holds_tensors(t.getElementType())
    if isinstance(t, torch._C.TupleType):
        return any(_holds_tensors(e) for e in t.elements())
    return False


# scalar ops of TorchScript code (shape checks, None tests, arithmetic on sizes), evaluated on constants
_SCALAR_OPS: dict[str, Callable[..., Any]] = {
    "aten::eq": operator.eq,
    "aten::ne": operator.ne,
    "aten::lt": operator.lt,
    "aten::le": operator.le,
    "aten::gt": operator.gt,
    "aten::ge": operator.ge,
    "aten::add": operator.add,
    "aten::sub": operator.sub,
    "aten::mul": operator.mul,
    "aten::div": operator.truediv,
    "aten::floordiv": operator.floordiv,
    "aten::remainder": operator.mod,
    "aten::neg": operator.neg,
    "aten::__not__": operator.not_,
    "aten::__and__": operator.and_,
    "aten::__or__": operator.or_,
    "aten::len": len,
    "aten::__getitem__": lambda s, i: s[i],
    "aten::Int": int,
    "aten::Float": float,
    "aten::Bool": bool,
    "aten::ScalarImplicit": lambda x: x,
    "prim::min": min,
    "prim::max": max,
    "aten::list": list,
    "aten::__contains__": operator.contains,
}


class _TorchScript:
    """Walks an inlined TorchScript graph, folding constants and control flow known at load time."""

    def __init__(self, b: _Builder, module: Any) -> None:
        self.b, self.m = b, module
        self.env: dict[int, Any] = {}

    def val(self, v: Any) -> Any:
        return self.env.get(v.unique(), _UNKNOWN)

    def set(self, v: Any, x: Any) -> None:
        self.env[v.unique()] = x

    def run(self) -> list[ValueInfo]:
        import torch

        g = self.m.forward.graph.copy()
        torch._C._jit_pass_inline(g)
        ins = list(g.inputs())
        arg_names = [a.name for a in self.m.forward.schema.arguments]
        self.set(ins[0], _Mod("", self.m))
        for v, name in zip(ins[1:], arg_names[1:], strict=False):
            t = v.type()
            if not isinstance(t, torch._C.TensorType):
                raise _Unconvertible(f"forward takes a non-tensor argument {name!r} ({t})")
            sizes = t.sizes()
            dt = _JIT_SCALAR_NAMES.get(t.scalarType() or "", "float32")
            # A trace records its example input's sizes; the example's batch size is no constraint
            # (size(0) in views is converted to 0/-1), so the batch axis is left dynamic.
            shape: tuple[int | str | None, ...] | None = (
                ("batch", *(int(s) for s in sizes[1:])) if sizes else None
            )
            vname = self.b.fresh(name)
            self.b.inputs.append(ValueInfo(name=vname, shape=shape, dtype=dt))
            self.b.dtype[vname] = dt
            if shape is not None:
                self.b.rank[vname] = len(shape)
            self.set(v, _Ref(vname))
        self.block(g.nodes())
        results = [self.val(o) for o in g.outputs()]
        flat = list(_flat_refs(results))
        return _outputs_of(self.b, flat)

    def block(self, nodes: Any) -> None:
        for n in nodes:
            self.node(n)

    def node(self, n: Any) -> None:
        k = n.kind()
        outs = list(n.outputs())
        if k == "prim::Constant":
            self.set(outs[0], self.constant(n))
        elif k == "prim::GetAttr":
            self.set(outs[0], self.getattr(self.val(n.input()), n.s("name")))
        elif k in ("prim::ListConstruct", "prim::TupleConstruct"):
            self.set(outs[0], [self.val(i) for i in n.inputs()])
        elif k in ("prim::ListUnpack", "prim::TupleUnpack"):
            seq = self.val(n.input())
            ok = isinstance(seq, (list, tuple)) and len(seq) == len(outs)
            for i, o in enumerate(outs):
                self.set(o, seq[i] if ok else _UNKNOWN)
        elif k in ("prim::TupleIndex", "prim::ListIndex"):
            seq, i = (self.val(x) for x in n.inputs())
            self.set(outs[0], seq[i] if isinstance(seq, (list, tuple)) and isinstance(i, int) else _UNKNOWN)
        elif k == "prim::If":
            self.if_node(n)
        elif k == "prim::RaiseException":
            raise _Unconvertible("the model raises an exception on its eval path")
        elif k in ("aten::warn", "prim::Print"):
            pass
        elif k == "prim::Loop":
            raise _Unconvertible("the model has a loop (prim::Loop)")
        elif k in ("aten::Int", "aten::ScalarImplicit") and isinstance(self.val(n.input()), _Dim):
            self.set(outs[0], self.val(n.input()))  # traced code turns sizes into tensors and back
        elif k in ("prim::unchecked_cast", "prim::NumToTensor", "aten::detach_"):
            self.set(outs[0], self.val(n.input()))
        elif k == "prim::Uninitialized":
            self.set(outs[0], _UNKNOWN)
        elif k in ("aten::size", "aten::dim", "aten::numel"):
            self.shape_query(n)
        elif any(_holds_tensors(o.type()) for o in outs):
            self.tensor_op(n)
        elif k in ("aten::__is__", "aten::__isnot__"):
            a, c = (self.val(x) for x in n.inputs())
            res: Any = _UNKNOWN
            if a is None and c is None:
                res = True
            elif (a is None) != (c is None) and _UNKNOWN not in (a, c):
                res = False
            elif a is not _UNKNOWN and c is not _UNKNOWN and not isinstance(a, (_Ref, _Dim, _Mod)):
                res = a is c or a == c
            self.set(outs[0], res if k == "aten::__is__" or res is _UNKNOWN else not res)
        elif k in _SCALAR_OPS and outs:
            self.set(outs[0], self.scalar(n, _SCALAR_OPS[k]))
        elif k.startswith(("aten::", "prim::")) and not any(_is_tensor_type(o.type()) for o in outs):
            for o in outs:  # dtype/device queries, string formatting: values we do not need
                self.set(o, _UNKNOWN)
        else:
            raise _Unconvertible(f"unsupported TorchScript node {k}")

    def constant(self, n: Any) -> Any:
        import torch

        o = n.output()
        try:
            v = o.toIValue()
        except RuntimeError:
            return _UNKNOWN
        if isinstance(v, torch.Tensor):
            arr = _to_numpy(v)
            return _UNKNOWN if arr is None else self.b.const(f"const.{o.debugName()}", arr)
        if isinstance(v, (bool, int, float, str)) or v is None:
            return v
        if isinstance(v, (list, tuple)):
            return list(v)
        if isinstance(v, (torch.device, torch.dtype)):
            return v
        return _UNKNOWN

    def getattr(self, owner: Any, name: str) -> Any:
        import torch

        if not isinstance(owner, _Mod):
            return _UNKNOWN
        try:
            attr = getattr(owner.obj, name)
        except Exception:
            return _UNKNOWN
        path = f"{owner.path}.{name}" if owner.path else name
        if isinstance(attr, torch.jit.ScriptModule) or isinstance(attr, torch._C.ScriptModule):
            return _Mod(path, attr)
        if isinstance(attr, torch.Tensor):
            if path not in self.b.weights:
                arr = _to_numpy(attr)
                if arr is None:
                    raise _Unconvertible(f"tensor attribute {path!r} has no numpy dtype")
                self.b.weights[path] = Weight(name=path, value=arr, source=path)
                _guess_roles({path: self.b.weights[path]})
                self.b.file_keys.add(path)
                self.b.used.add(path)
                self.b.rank[path] = arr.ndim
                self.b.dtype[path] = str(arr.dtype)
            return _Ref(path)
        if attr is None or isinstance(attr, (bool, int, float, str)):
            return attr
        if isinstance(attr, (list, tuple)) and all(isinstance(x, (bool, int, float, str)) for x in attr):
            return list(attr)
        return _UNKNOWN

    def if_node(self, n: Any) -> None:
        cond = self.val(n.input())
        outs = list(n.outputs())
        if isinstance(cond, bool) or (isinstance(cond, int) and not isinstance(cond, _UnknownT)):
            blocks = list(n.blocks())
            blk = blocks[0] if cond else blocks[1]
            self.block(blk.nodes())
            for o, r in zip(outs, blk.outputs(), strict=True):
                self.set(o, self.val(r))
        elif not any(_holds_tensors(o.type()) for o in outs) and not _has_tensor_ops(n):
            # a run-time check (shape assertions, `a and b` on sizes): nothing the graph computes
            for o in outs:
                self.set(o, _UNKNOWN)
        else:
            raise _Unconvertible("data-dependent control flow (prim::If)")

    def shape_query(self, n: Any) -> None:
        k = n.kind()
        vals = [self.val(i) for i in n.inputs()]
        x = vals[0]
        out = n.output()
        r = self.b.rank.get(x.name) if isinstance(x, _Ref) else None
        if k == "aten::dim":
            self.set(out, r if r is not None else _UNKNOWN)
        elif k == "aten::size" and len(vals) > 1 and isinstance(x, _Ref) and isinstance(vals[1], int):
            d = vals[1]
            self.set(out, _Dim(x.name, d % r if r is not None else d))
        elif k == "aten::size" and len(vals) == 1 and isinstance(x, _Ref) and r is not None:
            self.set(out, [_Dim(x.name, i) for i in range(r)])
        else:
            self.set(out, _UNKNOWN)

    def scalar(self, n: Any, fn: Callable[..., Any]) -> Any:
        vals = [self.val(i) for i in n.inputs()]
        if any(isinstance(v, (_UnknownT, _Ref, _Dim, _Mod)) for v in vals):
            return _UNKNOWN
        try:
            return fn(*vals)
        except Exception:
            return _UNKNOWN

    def tensor_op(self, n: Any) -> None:
        k = n.kind()
        if not k.startswith("aten::"):
            raise _Unconvertible(f"unsupported TorchScript node {k}")
        ins = list(n.inputs())
        vals = [self.val(i) for i in ins]
        names = _schema_names(n.schema())
        a = _Args(names, vals)
        outs = list(n.outputs())
        base = outs[0].debugName() if outs else k.split("::")[1]
        base = re.sub(r"\.\d+$", "", base) if not base.isdigit() else k.split("::")[1]
        tensor_inputs = [_holds_tensors(i.type()) for i in ins]
        res = _emit_op(self.b, k, a, base, len(outs), tensor_inputs)
        if len(outs) == 1:
            self.set(outs[0], res[0] if isinstance(res, tuple) else res)
        else:
            for i, o in enumerate(outs):
                self.set(o, res[i] if isinstance(res, tuple) and i < len(res) else _UNKNOWN)
        op = k.split("::")[1]
        # an in-place op changes its first argument: later reads of it see the result
        if op.endswith("_") and not op.endswith("__") and ins and isinstance(vals[0], _Ref) and outs:
            if vals[0].name in self.b.weights:
                raise _Unconvertible(f"{k} modifies a weight in place")
            self.set(ins[0], self.val(outs[0]))


def _has_tensor_ops(n: Any) -> bool:
    for blk in n.blocks():
        for inner in blk.nodes():
            if any(_holds_tensors(o.type()) for o in inner.outputs()) or _has_tensor_ops(inner):
                return True
    return False


def _save_torchscript(graph: Graph, src: _Source, tmp: Path) -> None:
    """The source archive copied member by member with only the weights' records rewritten: code,
    debug info, extra files and the record folder's name stay as they were (the same bytes on every
    run; torch.jit.save named the folder after a random temp file)."""
    from nncompress.io.torch import archive
    from nncompress.io.torch.unpickle import Opaque, TensorRef

    root, module = _torchscript_tensors(Path(src.path))

    def where(key: str) -> archive.Stored:
        obj: Any = module
        for part in key.split("."):
            state = obj.record.state if isinstance(obj, Opaque) else None
            obj = state.get(part) if isinstance(state, dict) else None
        if not isinstance(obj, TensorRef):
            raise OutputError(f"tensor {key!r} is not an attribute of the TorchScript module", path=src.path)
        return archive.Stored(f"{root}/data/{obj.storage.key}", obj.dtype, obj.offset, obj.shape, obj.strides)

    changes = _changes(graph, src, where)
    archive.patch(Path(src.path), tmp, changes)


# =================================================================================================
# torch.export (.pt2)
# =================================================================================================


def _load_export(p: Path, kind: _Kind, *, trust_pickle: bool) -> Graph:
    """A .pt2 archive read by `pt2` (never by torch.export.load) and converted from its JSON."""
    from nncompress.io.torch.archive import NUMPY_OF, TorchZip
    from nncompress.io.torch.pt2 import open_pt2

    pt2 = open_pt2(p, trusted=trust_pickle)
    arrays: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    with TorchZip.open(p) as z:
        by_record: dict[str, list[str]] = {}
        for fqn, st in pt2.tensors.items():
            if st.dtype not in NUMPY_OF:
                skipped.append(fqn)
            else:
                by_record.setdefault(st.record, []).append(fqn)
        for fqns in by_record.values():  # each record read once, views of it made, bytes dropped
            cache: dict[str, bytes] = {}
            for fqn in fqns:
                arrays[fqn] = z.array(pt2.tensors[fqn], f"tensor {fqn!r}", cache=cache)
        for fqn, member in pt2.pickled.items():  # only with --trust-pickle: the user vouched for them
            import torch

            t = torch.load(io.BytesIO(z.read(member)), map_location="cpu", weights_only=False)
            arr = _to_numpy(t) if isinstance(t, torch.Tensor) else None
            if arr is None:
                skipped.append(fqn)
            else:
                arrays[fqn] = arr
    order = [k for k in pt2.tensors if k in arrays] + [k for k in pt2.pickled if k in arrays]
    weights = {k: Weight(name=k, value=arrays[k], source=k) for k in order}
    _guess_roles(weights)
    src = _Source(
        kind="torch-export",
        path=str(p),
        trusted=trust_pickle,
        tensors=[k for k in order if k in pt2.tensors],
        extra_files=pt2.extra_files,
    )
    meta = ModelMeta(
        format="torch-export", producer="pytorch", producer_version=pt2.torch_version, path=str(p)
    )
    notes = _notes_of(sum(st.dtype == "bfloat16" for st in pt2.tensors.values()), skipped)
    b = _Builder(weights, set(weights))
    try:
        outputs = _convert_program(b, pt2.program)
        meta.notes = notes
        meta.extra["input_shapes"] = {vi.name: list(vi.shape or ()) for vi in b.inputs}
        return _finish(b, outputs, meta, p.stem, src, dtypes_known=True)
    except (_Unconvertible, IRError) as e:
        meta.notes = [f"graph not converted ({e}); weights only: fidelity is measured on weights", *notes]
        g = Graph(weights=weights, has_graph=False, meta=meta, name=p.stem, source=src)
        g.validate()
        return g


_PT2_SCHEMAS: dict[str, Any] = {}


def _op_schema(target: str) -> Any:
    """The registered schema of ``torch.ops.ns.op.overload``: a look-up, nothing is called."""
    import torch

    if target not in _PT2_SCHEMAS:
        _, _, ns, op, overload = target.split(".")
        try:
            _PT2_SCHEMAS[target] = torch._C._get_schema(
                f"{ns}::{op}", "" if overload == "default" else overload
            )
        except RuntimeError:
            _PT2_SCHEMAS[target] = None
    return _PT2_SCHEMAS[target]


class _Program:
    """Reads a torch.export program's JSON (torch/_export/serde/schema.py) into the builder."""

    def __init__(self, b: _Builder, program: Mapping[str, Any]) -> None:
        self.b = b
        try:
            gm = program["graph_module"]
            self.graph, self.sig = gm["graph"], gm["signature"]
            self.meta = self.graph.get("tensor_values", {})
        except (KeyError, TypeError):
            raise _Unconvertible("the program has no graph or signature") from None
        if not isinstance(self.meta, dict):
            raise _Unconvertible("the program's tensor_values is not an object")
        self.env: dict[str, Any] = {}

    def tensor_info(self, name: str) -> tuple[tuple[int | str | None, ...] | None, str | None]:
        from nncompress.io.torch.pt2 import dtype_of, sym_name

        tm = self.meta.get(name)
        if not isinstance(tm, dict) or not isinstance(tm.get("sizes"), list):
            return None, None
        shape: list[int | str | None] = []
        for s in tm["sizes"]:
            if isinstance(s, dict) and type(s.get("as_int")) is int:
                shape.append(s["as_int"])
            elif isinstance(s, dict) and isinstance(s.get("as_expr"), dict):
                shape.append(sym_name(str(s["as_expr"].get("expr_str", ""))))
            else:
                shape.append(None)
        return tuple(shape), dtype_of(tm.get("dtype"))

    def arg(self, a: Any) -> Any:
        from nncompress.io.torch.pt2 import dtype_of

        if not isinstance(a, dict) or len(a) != 1:
            raise _Unconvertible("malformed argument")
        ((k, v),) = a.items()
        if k == "as_none":
            return None
        if k == "as_tensor":
            return self.env.get(_name(v), _UNKNOWN)
        if k == "as_tensors":
            return [self.env.get(_name(t), _UNKNOWN) for t in _list(v)]
        if k == "as_optional_tensor":
            return self.arg(v)
        if k == "as_optional_tensors":
            return [self.arg(t) for t in _list(v)]
        if k in ("as_int", "as_bool", "as_string", "as_ints", "as_bools", "as_strings", "as_int_lists"):
            return v
        if k in ("as_float", "as_floats", "as_float_lists"):
            return _floats(v)
        if k in ("as_sym_int", "as_sym_bool", "as_sym_float"):
            return self.sym(v)
        if k in ("as_sym_ints", "as_sym_bools", "as_sym_floats"):
            return [self.sym(x) for x in _list(v)]
        if k == "as_scalar_type":
            return f"torch.{dtype_of(v) or 'unknown'}"  # what _dtype_name reads from str(torch.dtype)
        if k in ("as_memory_format", "as_layout", "as_device"):
            return f"{k[3:]}:{v}"
        if k == "as_complex" and isinstance(v, dict):
            return complex(_floats(v.get("real", 0)), _floats(v.get("imag", 0)))
        raise _Unconvertible(f"unsupported program argument {k}")

    def sym(self, v: Any) -> Any:
        if not isinstance(v, dict) or len(v) != 1:
            raise _Unconvertible("malformed symbolic argument")
        ((k, x),) = v.items()
        if k == "as_name":
            return self.env.get(str(x), _UNKNOWN)
        return _floats(x) if k == "as_float" else x

    def run(self) -> list[ValueInfo]:
        b = self.b
        for spec in _list(self.sig.get("input_specs")):
            kind, body = _one(spec)
            if kind in ("parameter", "buffer", "tensor_constant"):
                target = body.get(f"{kind}_name")
                if target not in b.weights:
                    raise _Unconvertible(f"{kind} {target!r} has no readable tensor")
                self.env[_name(body.get("arg"))] = _Ref(target)
            elif kind == "user_input":
                arg = body.get("arg")
                akind, aval = _one(arg)
                if akind != "as_tensor":
                    raise _Unconvertible(f"a program input of kind {akind}")
                node_name = _name(aval)
                shape, dt = self.tensor_info(node_name)
                name = b.fresh(node_name)
                b.inputs.append(ValueInfo(name=name, shape=shape, dtype=dt or "float32"))
                b.rank[name], b.dtype[name] = (len(shape) if shape is not None else 0), dt or "float32"
                self.env[node_name] = _Ref(name)
            elif kind == "constant_input":
                self.env[str(body.get("name"))] = self.arg(body.get("value"))
            else:
                raise _Unconvertible(f"unsupported program input kind {kind}")
        for node in _list(self.graph.get("nodes")):
            if not isinstance(node, dict):
                raise _Unconvertible("malformed node")
            self.node(node)
        vals, info = [], []
        for spec in _list(self.sig.get("output_specs")):
            kind, body = _one(spec)
            if kind != "user_output":
                continue  # buffer mutations, tokens: not model outputs
            akind, aval = _one(body.get("arg"))
            if akind != "as_tensor":
                raise _Unconvertible("the model returns something other than tensors")
            vals.append(self.env.get(_name(aval), _UNKNOWN))
            info.append(self.tensor_info(_name(aval)))
        if not vals:
            raise _Unconvertible("the program has no output")
        return _outputs_of(b, vals, info)

    def node(self, node: dict[str, Any]) -> None:
        target = str(node.get("target", ""))
        inputs = {na.get("name"): na.get("arg") for na in _list(node.get("inputs")) if isinstance(na, dict)}
        outs = _list(node.get("outputs"))
        if not target.startswith("torch.ops."):
            self.scalar(target, inputs, outs)
            return
        schema = _op_schema(target)
        if schema is None:
            raise _Unconvertible(f"unknown operator {target}")
        full = schema.name
        if full == "aten::sym_size":
            x, d = self.arg(inputs.get("self")), self.arg(inputs.get("dim"))
            val = _Dim(x.name, int(d)) if isinstance(x, _Ref) and isinstance(d, int) else _UNKNOWN
            self.bind_sym(outs, val)
            return
        names = [a.name for a in schema.arguments]
        vals = [
            self.arg(inputs[a.name])
            if a.name in inputs
            else (a.default_value if a.has_default_value() else None)
            for a in schema.arguments
        ]
        tensor_outs = [o for o in outs if isinstance(o, dict) and ("as_tensor" in o or "as_tensors" in o)]
        if not tensor_outs:
            self.bind_sym(outs, _UNKNOWN)  # assertions, or a scalar the converter does not follow
            return
        if len(outs) == 1 and "as_tensors" in outs[0]:
            names_out = [_name(t) for t in _list(outs[0]["as_tensors"])]
        else:
            names_out = [_name(o["as_tensor"]) if "as_tensor" in o else "" for o in outs]
        tensor_inputs = [_is_tensor_type(a.type) or "Tensor" in str(a.type) for a in schema.arguments]
        base = str(node.get("name") or (names_out[0] if names_out else "v"))
        res = _emit_op(self.b, full, _Args(names, vals), base, len(names_out), tensor_inputs)
        results = list(res) if isinstance(res, tuple) else [res]
        for out_name, r in zip(names_out, results, strict=False):
            if not out_name:
                continue
            self.env[out_name] = r
            if isinstance(r, _Ref):
                shape, dt = self.tensor_info(out_name)
                if shape is not None:
                    self.b.rank[r.name] = len(shape)
                if dt:
                    self.b.dtype[r.name] = dt

    def scalar(self, target: str, inputs: dict[Any, Any], outs: list[Any]) -> None:
        """Python arithmetic on sizes (``_operator.mul`` of two sym ints): folded where known."""
        args = [self.arg(a) for a in inputs.values()]
        fn = _SYM_FNS.get(target)
        val: Any = _UNKNOWN
        if fn is not None and all(isinstance(v, (int, float, bool)) for v in args):
            try:
                val = fn(*args)
            except (ArithmeticError, TypeError, ValueError):
                val = _UNKNOWN
        elif any(isinstance(o, dict) and ("as_tensor" in o or "as_tensors" in o) for o in outs):
            raise _Unconvertible(f"unsupported call {target}")
        self.bind_sym(outs, val)

    def bind_sym(self, outs: list[Any], val: Any) -> None:
        for o in outs:
            if isinstance(o, dict) and len(o) == 1:
                ((_, v),) = o.items()
                if isinstance(v, dict) and isinstance(v.get("as_name"), str):
                    self.env[v["as_name"]] = val


_SYM_FNS: dict[str, Callable[..., Any]] = {
    "_operator.add": operator.add,
    "_operator.sub": operator.sub,
    "_operator.mul": operator.mul,
    "_operator.floordiv": operator.floordiv,
    "_operator.truediv": operator.truediv,
    "_operator.mod": operator.mod,
    "_operator.neg": operator.neg,
    "_operator.eq": operator.eq,
    "_operator.ne": operator.ne,
    "_operator.lt": operator.lt,
    "_operator.le": operator.le,
    "_operator.gt": operator.gt,
    "_operator.ge": operator.ge,
    "torch.sym_max": max,
    "torch.sym_min": min,
    "torch.sym_int": int,
    "torch.sym_float": float,
}


def _name(v: Any) -> str:
    if not isinstance(v, dict) or not isinstance(v.get("name"), str):
        raise _Unconvertible("malformed tensor argument")
    return str(v["name"])


def _list(v: Any) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Unconvertible("malformed program: a list was expected")
    return v


def _one(v: Any) -> tuple[str, Any]:
    if not isinstance(v, dict) or len(v) != 1:
        raise _Unconvertible("malformed program entry")
    ((k, x),) = v.items()
    return str(k), x if isinstance(x, dict) else {"value": x}


def _floats(v: Any) -> Any:
    """torch writes non-finite floats as the strings "Infinity", "-Infinity" and "NaN"."""
    if isinstance(v, list):
        return [_floats(x) for x in v]
    if isinstance(v, str) and v in ("Infinity", "-Infinity", "NaN"):
        return float(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise _Unconvertible("malformed float argument")


def _convert_program(b: _Builder, program: Mapping[str, Any]) -> list[ValueInfo]:
    return _Program(b, program).run()


def _save_export(graph: Graph, src: _Source, tmp: Path) -> None:
    """The source archive copied member by member, with only the tensor records rewritten."""
    from nncompress.io.torch import archive
    from nncompress.io.torch.pt2 import open_pt2

    pt2 = open_pt2(Path(src.path), trusted=src.trusted)
    archive.patch(Path(src.path), tmp, _changes(graph, src, pt2.tensors.get))


# =================================================================================================
# writer dispatch
# =================================================================================================


def _source_of(graph: Graph, out: Path) -> _Source:
    src = graph.source
    if isinstance(src, _Source):
        return src
    fmt = graph.meta.format
    if fmt in FORMATS and graph.meta.path and Path(graph.meta.path).is_file():
        # a graph rebuilt without its handle (e.g. from an artifact): re-read the source file
        trusted = any("--trust-pickle" in n for n in graph.meta.notes)
        reread = load_torch(graph.meta.path, trust_pickle=trusted).source
        if isinstance(reread, _Source):
            return reread
    what = fmt or "an unknown format"
    if graph.has_graph:
        raise OutputError(
            f"cannot write a PyTorch file from this {what} model: nncompress cannot make a torch module "
            "from a Keras or ONNX graph",
            path=str(out),
            hint="write .onnx instead",
        )
    raise OutputError(
        f"cannot write a PyTorch file from these {what} weights",
        path=str(out),
        hint="write the source format instead",
    )
