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

Modules: `reader` (file, external data, ONNX graph -> IR), `normalize` (the docs/ir.md rewrites,
weight roles), `source` (what a loaded graph keeps of its file), `writer` (the patching writer and
the file save), `exporter` (IR -> new ONNX model), `wire` (the protobuf wire-format walk).
"""

from __future__ import annotations

import os
from pathlib import Path

from nncompress.errors import InputError, NNCError, OutputError
from nncompress.io._atomic import check_output
from nncompress.io.onnx.exporter import write_exported
from nncompress.io.onnx.reader import Reader, read_model
from nncompress.io.onnx.source import Source, fingerprint
from nncompress.io.onnx.writer import patchable, write_patched
from nncompress.ir import Graph, IRError

__all__ = ["load_onnx", "save_onnx"]


def load_onnx(path: str | os.PathLike[str]) -> Graph:
    """Read an ONNX model (external data resolved next to the file) into the IR."""
    p = Path(path)
    model, raws = read_model(p)
    try:
        g = Reader(model, p, raws).read()
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
    g.source = Source(
        path=str(p.resolve()),
        stat=(st.st_size, st.st_mtime_ns),
        locators=g.source,
        fingerprint=fingerprint(g),
        functions=[f.SerializeToString() for f in model.functions],
    )
    return g


def save_onnx(graph: Graph, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``graph`` as an ONNX file: patch the loaded file when possible, else export the IR."""
    src = graph.source if isinstance(graph.source, Source) else None
    inputs = tuple(x for x in ((src.path if src else ""), graph.meta.path) if x)
    out = check_output(path, force=force, inputs=inputs)
    if graph.meta.format == "onnx" and src is not None and patchable(graph, src):
        return write_patched(graph, src, out, force)
    if not graph.has_graph:
        raise OutputError(
            f"{graph.meta.path or 'the model'} has no graph; cannot write ONNX",
            path=str(out),
            hint="Load the full model file (architecture and weights), or write the format it came in",
        )
    return write_exported(graph, src, out, force)
