"""Loaders and writers: model files <-> the graph IR.

``load(path)`` sniffs the file (extension, then magic bytes) and calls the matching loader;
``save(graph, path)`` picks the writer from the output's extension. Each format module imports its
framework lazily, inside its functions, so importing nncompress.io costs nothing.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from nncompress.errors import InputError, UnsupportedError, UsageError
from nncompress.ir import Graph

# extension -> format family
EXTENSIONS = {
    ".h5": "keras",
    ".hdf5": "keras",
    ".keras": "keras",
    ".pt": "torch",
    ".pth": "torch",
    ".pt2": "torch",
    ".jit": "torch",  # TorchScript archives as silero-vad and others ship them
    ".bin": "torch",
    ".ckpt": "torch",
    ".onnx": "onnx",
    ".nnc": "nnc",
}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return the format family of ``path`` or raise InputError with a one-line reason."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=str(p), hint="Check the path")
    if p.is_dir():
        raise InputError("is a directory, not a model file", path=str(p))
    size = p.stat().st_size
    if size == 0:
        raise InputError("file is empty", path=str(p), hint="Re-export the model")
    fam = EXTENSIONS.get(p.suffix.lower())
    if fam is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise InputError(
            f"unknown extension {p.suffix or '(none)'!r}", path=str(p), hint=f"Supported: {known}"
        )
    with open(p, "rb") as f:
        head = f.read(8)
    if fam == "keras" and p.suffix.lower() == ".keras":
        if not zipfile.is_zipfile(p):
            raise InputError("not a .keras zip archive (truncated or corrupt?)", path=str(p))
    elif fam == "keras" and head != _HDF5_MAGIC:
        raise InputError(
            "not an HDF5 file (truncated or corrupt?)", path=str(p), hint="Re-save it with model.save()"
        )
    return fam


def require(module: str, what: str, path: str | os.PathLike[str]) -> None:
    """Fail in one line when an optional framework a format needs is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UnsupportedError(
            f"{what} needs {module}, which is not installed",
            path=str(path),
            hint="pip install torch==2.13.0 (the CPU build), or pip install 'nncompress[torch]'",
        )


def load(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Graph:
    """Load any supported model file into the IR."""
    fam = detect_format(path)
    if fam == "torch":
        require("torch", "reading PyTorch files", path)
    if fam == "keras":
        from nncompress.io import keras as mod_k

        return mod_k.load_keras(path)
    if fam == "torch":
        from nncompress.io import torch as mod_t

        return mod_t.load_torch(path, trust_pickle=trust_pickle)
    if fam == "onnx":
        from nncompress.io import onnx as mod_o

        return mod_o.load_onnx(path)
    raise InputError(f"{fam} files are not model files for this command", path=str(path))


def save(graph: Graph, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``graph`` to ``path`` (format from the extension), atomically; return the path."""
    p = Path(path)
    fam = EXTENSIONS.get(p.suffix.lower())
    if fam == "keras":
        from nncompress.io import keras as mod_k

        return mod_k.save_keras(graph, p, force=force)
    if fam == "torch":
        require("torch", "writing PyTorch files", p)
        from nncompress.io import torch as mod_t

        return mod_t.save_torch(graph, p, force=force)
    if fam == "onnx":
        from nncompress.io import onnx as mod_o

        return mod_o.save_onnx(graph, p, force=force)
    raise UsageError(
        f"cannot write {p.suffix or 'files without extension'!r}",
        path=str(p),
        hint="Use .h5, .keras, .pt, .pt2 or .onnx",
    )


__all__ = ["EXTENSIONS", "detect_format", "load", "save"]
