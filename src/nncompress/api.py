"""The Python API: what the commands do, as functions (``import nncompress as n``).

    r = n.compress("model.onnx", method="sham", data="test.npz")
    r.report["totals"]["ratio"], r.fidelity
    n.save(r, "model.nnc")
    n.decompress("model.nnc", "model_small.onnx")
    n.inspect("model.onnx")["totals"]

Errors are the types of `nncompress.errors` (one line each, as the CLI prints them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nncompress.ir import Graph
from nncompress.pipeline.run import Result, compress, save  # the pipeline's own, re-exported

__all__ = ["Graph", "Result", "compress", "decompress", "inspect", "load", "save"]


def load(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Graph:
    """Read a model file (.h5, .keras, .pt, .pt2, .onnx) or a .nnc artifact into the graph IR.

    An artifact gives the model it stores, its compressed weights as formats in their slots.
    """
    from nncompress.io import detect_format
    from nncompress.io import load as load_file
    from nncompress.pipeline.artifacts import graph_from_artifact

    if detect_format(path) == "nnc":
        return graph_from_artifact(path)
    return load_file(path, trust_pickle=trust_pickle)


def decompress(artifact: str | os.PathLike[str], out: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Rebuild a runnable model from ``artifact`` at ``out``: the source's format, or .onnx from any."""
    from nncompress.pipeline.artifacts import write_model

    return write_model(artifact, out, force=force)[0]


def inspect(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> dict[str, Any]:
    """The report of ``nncompress inspect --json``: layers, parameters, value statistics (or, for a
    .nnc, its tensors, formats and recipe)."""
    from nncompress.io import detect_format
    from nncompress.io import load as load_file
    from nncompress.summary import summarize, summarize_artifact

    if detect_format(path) == "nnc":
        return summarize_artifact(path)
    return summarize(load_file(path, trust_pickle=trust_pickle), path)
