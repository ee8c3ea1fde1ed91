"""torch.save files -> weights-only graphs: state_dicts, checkpoints, whole pickled modules.

By default the file is read by the inert unpickler (`torchsave`, `checkpoint`): nothing it names is
called. With ``trusted`` (the user's --trust-pickle) it goes through ``torch.load(weights_only=False)``,
which can also rebuild what the inert reader only describes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nncompress._text import error_line, human_bytes, plain
from nncompress.errors import InputError, UnsupportedError
from nncompress.io.torch.archive import NUMPY_OF
from nncompress.io.torch.checkpoint import WRAPPER_KEYS, find_weights
from nncompress.io.torch.source import Source
from nncompress.io.torch.torchsave import open_saved
from nncompress.io.torch.weights import dtype_notes, guess_roles, notes_of, weights_from
from nncompress.ir import Graph, ModelMeta, Weight

__all__ = ["load_saved", "torch_load"]

_WEIGHTS_NOTE = "weights only: a state_dict has no graph; fidelity is measured on weights"

_RESAVE_HINT = (
    "Re-save it with torch.save(model.state_dict()), torch.jit.save or torch.export.save, "
    "or pass --trust-pickle if you trust this file"
)

# What the inert reader turns into weights: every dtype `archive` reads but complex ones, which stay
# in the file untouched (the notes count them among the tensors with no numpy dtype).
_READABLE = frozenset(NUMPY_OF) - {"complex64", "complex128"}

# The unit names of the training-state note: notes are stored in artifacts, which must not change.
_NOTE_UNITS = ("B", "KB", "MB", "GB")


def torch_load(p: Path, *, trusted: bool) -> Any:
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


def load_saved(p: Path, *, legacy: bool, trusted: bool) -> Graph:
    if not trusted:
        return _load_saved_safely(p, legacy=legacy)
    import torch

    obj = torch_load(p, trusted=trusted)
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
    weights = weights_from(tensors, skipped)
    if not weights:
        raise UnsupportedError("holds no tensors nncompress can read", path=str(p))
    guess_roles(weights)
    if any(k.startswith("module.") for k in weights):
        notes.append("names carry DataParallel's 'module.' prefix; kept as they are")
    notes.extend(dtype_notes(tensors, skipped))
    if trusted and kind not in ("module",) and not any("unpickled" in n for n in notes):
        notes.append("loaded with --trust-pickle")
    src = Source(
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

    for k in WRAPPER_KEYS:
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
    ts = open_saved(p, legacy=legacy)
    found = find_weights(ts.obj)
    if found is None:
        what = type(ts.obj).__name__ if not hasattr(ts.obj, "fullname") else ts.obj.fullname
        raise UnsupportedError(
            f"holds a {what}, not a state_dict, a module or a checkpoint dict with tensors",
            path=str(p),
            hint="Re-save it with torch.save(model.state_dict())",
        )
    readable = {k: r for k, r in found.refs.items() if r.kind == "strided" and r.dtype in _READABLE}
    skipped = [k for k in found.refs if k not in readable]
    arrays = ts.arrays(readable)
    weights = {k: Weight(name=k, value=arrays[k], source=k) for k in readable}
    if not weights:
        raise UnsupportedError("holds no tensors nncompress can read", path=str(p))
    guess_roles(weights)
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
    notes += notes_of(sum(r.dtype == "bfloat16" for r in readable.values()), skipped)
    src = Source(
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
