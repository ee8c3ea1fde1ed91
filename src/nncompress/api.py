"""The Python API: what the commands do, as functions (``import nncompress as n``).

    r = n.compress("model.onnx", method="sham", data="test.npz")
    r.report["totals"]["ratio"], r.fidelity
    n.save(r, "model.nnc")
    n.decompress("model.nnc", "model_small.onnx")
    n.inspect("model.onnx")["totals"]

Errors are the types of `nncompress.errors` (one line each, as the CLI prints them). Each call
takes an optional ``progress`` (`nncompress.progress.Progress`) that hears its stages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nncompress.ir import Graph
from nncompress.pipeline.run import Result, compress, save  # the pipeline's own, re-exported
from nncompress.progress import SILENT, Progress

__all__ = ["Graph", "Result", "compress", "decompress", "inspect", "load", "save"]


def load(path: str | os.PathLike[str], *, trust_pickle: bool = False, progress: Progress = SILENT) -> Graph:
    """Read a model file (.h5, .keras, .pt, .pt2, .onnx) or a .nnc artifact into the graph IR.

    An artifact gives the model it stores, its compressed weights as formats in their slots.
    """
    from nncompress.io import detect_format
    from nncompress.io import load as load_file
    from nncompress.pipeline.artifacts import graph_from_artifact

    progress.stage(f"loading {Path(path).name}")
    if detect_format(path) == "nnc":
        return graph_from_artifact(path)
    return load_file(path, trust_pickle=trust_pickle)


def decompress(
    artifact: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    keep_compressed: bool = False,
    progress: Progress = SILENT,
) -> Path:
    """Rebuild a runnable model from ``artifact`` at ``out``: the source's format, or .onnx from any;
    with ``keep_compressed`` a TorchScript .pt whose weights stay compressed in memory."""
    return rebuild(artifact, out, force=force, keep_compressed=keep_compressed, progress=progress)[0]


def rebuild(
    artifact: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    keep_compressed: bool = False,
    progress: Progress = SILENT,
) -> tuple[Path, str]:
    """`decompress`, also returning the source's format: `pipeline.artifacts.write_model` with a
    stage per step (reading and rebuilding the graph, then decoding and writing; each takes seconds
    on a large model). ``keep_compressed``: `nncompress.torch.export.save_torchscript` instead, a
    traced TorchScript .pt (any source format) running on the compressed weights."""
    from nncompress.errors import InputError, UsageError
    from nncompress.io import EXTENSIONS, detect_format
    from nncompress.io import save as save_model
    from nncompress.io._atomic import check_output
    from nncompress.pipeline.artifacts import graph_from_artifact

    # the checks of write_model, before anything is read: a wrong output is refused at once
    src, dst = Path(artifact), Path(out)
    if detect_format(src) != "nnc":
        raise InputError(
            "is not a .nnc artifact", path=str(src), hint="Give the output of nncompress compress"
        )
    if keep_compressed and dst.suffix.lower() != ".pt":
        raise UsageError(
            f"--keep-compressed writes TorchScript, not {dst.suffix or 'a file without extension'!r}",
            path=str(dst),
            hint="Give an output path ending in .pt",
        )
    if EXTENSIONS.get(dst.suffix.lower()) in (None, "nnc"):
        raise UsageError(
            f"cannot write a model as {dst.suffix or 'a file without extension'!r}",
            path=str(dst),
            hint="Use .h5, .keras, .pt, .pt2 or .onnx",
        )
    check_output(dst, force=force, inputs=(src,))
    progress.stage(f"reading {src.name}")
    g = graph_from_artifact(src)
    if keep_compressed:
        from nncompress.io import require

        require("torch", "writing TorchScript", dst)
        from nncompress.torch.export import save_torchscript

        progress.stage(f"tracing and writing {dst.name}")
        return save_torchscript(g, dst, force=force), g.meta.format
    progress.stage(f"writing {dst.name}")  # the writer decodes each weight as it goes
    return save_model(g, dst, force=force), g.meta.format


def inspect(
    path: str | os.PathLike[str], *, trust_pickle: bool = False, progress: Progress = SILENT
) -> dict[str, Any]:
    """The report of ``nncompress inspect --json``: layers, parameters, value statistics (or, for a
    .nnc, its tensors, formats and recipe)."""
    from nncompress.io import detect_format
    from nncompress.io import load as load_file
    from nncompress.summary import summarize, summarize_artifact

    progress.stage(f"reading {Path(path).name}")
    if detect_format(path) == "nnc":
        return summarize_artifact(path)
    return summarize(load_file(path, trust_pickle=trust_pickle), path, progress=progress)
