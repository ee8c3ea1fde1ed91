"""PyTorch files <-> the graph IR: torch.save state_dicts and checkpoints, TorchScript, torch.export.

Files are recognised by their content (zip layout or legacy pickle), not by their extension.
Nothing stored in a file is executed: torch.save files are read by the inert unpickler unless the
caller opts in (``trust_pickle``, then ``torch.load(weights_only=False)``), TorchScript is compiled
but never run, and a .pt2 archive is read by `pt2` from its JSON and raw records, never by
torch.export.load (which unpickles).

Graph files (TorchScript, .pt2) are converted op by op to the IR (docs/ir.md); an aten op without an
IR counterpart is kept as an op ``aten::name`` in domain ``torch``. Weights keep their state_dict names,
and torch's Linear/Conv layouts are the IR's, so no layout ops are needed. Writers re-read the source
file and replace its tensors, so everything the IR does not model is kept as it was.

Modules: `sniff` (which kind of file), `statedict` (torch.save files -> weights-only graphs),
`torchscript` and `export` (graph files, converted through `builder`, `aten`, `ops_nn` and
`ops_tensor`), `weights` (tensors -> IR weights, roles from names), `source` (the handle a graph keeps
to its file), `writer` (the source file copied with the new tensor bytes). The doors untrusted bytes
come through, none of which imports torch: `unpickle`, `archive` (zip records), `torchsave`,
`checkpoint` and `pt2`.
"""

from __future__ import annotations

import os
from pathlib import Path

from nncompress._text import error_line
from nncompress.errors import InputError, NNCError, OutputError
from nncompress.io._atomic import atomic_path, check_output
from nncompress.io.torch.export import load_export
from nncompress.io.torch.sniff import sniff
from nncompress.io.torch.source import Source
from nncompress.io.torch.statedict import load_saved
from nncompress.io.torch.torchscript import load_torchscript
from nncompress.io.torch.writer import save_export, save_saved, save_torchscript
from nncompress.ir import Graph

__all__ = ["load_torch", "save_torch"]

FORMATS = ("torch-state-dict", "torch-checkpoint", "torchscript", "torch-export")


def load_torch(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Graph:
    """Load a torch.save, TorchScript or torch.export file into the IR."""
    p = Path(path)
    kind = sniff(p)
    try:
        if kind.kind == "torchscript":
            return load_torchscript(p, kind)
        if kind.kind == "export":
            return load_export(p, kind, trust_pickle=trust_pickle)
        return load_saved(p, legacy=kind.legacy, trusted=trust_pickle)
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
                save_torchscript(graph, src, tmp)
            elif src.kind == "torch-export":
                save_export(graph, src, tmp)
            else:
                save_saved(graph, src, tmp)
    except NNCError:
        raise
    except Exception as e:
        raise OutputError(f"cannot write the PyTorch file ({error_line(e)})", path=str(out)) from e
    return out


def _source_of(graph: Graph, out: Path) -> Source:
    src = graph.source
    if isinstance(src, Source):
        return src
    fmt = graph.meta.format
    if fmt in FORMATS and graph.meta.path and Path(graph.meta.path).is_file():
        # a graph rebuilt without its handle (e.g. from an artifact): re-read the source file
        trusted = any("--trust-pickle" in n for n in graph.meta.notes)
        reread = load_torch(graph.meta.path, trust_pickle=trusted).source
        if isinstance(reread, Source):
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
