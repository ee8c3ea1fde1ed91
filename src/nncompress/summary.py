"""What `nncompress inspect` reports about a loaded model: per-layer weight statistics and totals.

The JSON form is documented in docs/inspect-schema.md; keep the two in step.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.ir import Graph, Weight
from nncompress.progress import SILENT, Progress

SCHEMA = "nncompress.inspect/1"
DENSE_OPS = ("Dense", "Gemm", "MatMul")
CONV_OPS = ("Conv", "ConvTranspose")


def value_stats(arrays: list[np.ndarray]) -> dict[str, float | int]:
    """Share of exact zeros, number of distinct values and empirical entropy (bits per weight).

    The entropy is that of the distribution of distinct values, the lower bound any symbol-wise
    entropy coder (Huffman, HAM/sHAM) can reach on these weights.
    """
    n = sum(a.size for a in arrays)
    if n == 0:
        return {"sparsity": 0.0, "distinct": 0, "entropy_bits": 0.0}
    flat = np.concatenate([a.ravel() for a in arrays])
    # Sorting raw bytes counts +0.0 and -0.0 apart; they are one value to a decoder.
    if np.issubdtype(flat.dtype, np.floating):
        flat = flat + flat.dtype.type(0)
    _, counts = np.unique(flat, return_counts=True)
    p = counts / n
    return {
        "sparsity": float(np.count_nonzero(flat == 0) / n),
        "distinct": int(counts.size),
        "entropy_bits": float(max(0.0, -(p * np.log2(p)).sum())),
    }


def _layer_op(ws: list[Weight]) -> str:
    for w in ws:
        if w.role == "kernel" or w.role == "embedding":
            return w.op or ""
    return ws[0].op or ""


def _main_shape(ws: list[Weight]) -> tuple[int, ...]:
    for role in ("kernel", "embedding"):
        for w in ws:
            if w.role == role:
                return w.shape
    return max((w.shape for w in ws), key=lambda s: int(np.prod(s, dtype=np.int64)))


def is_parameter(w: Weight) -> bool:
    """Model parameters, as opposed to constants an op needs (shapes, axes) and scalar counters."""
    if w.role == "const":
        return False
    return not (w.size <= 1 and not np.issubdtype(w.dtype, np.floating))


def layer_rows(graph: Graph, progress: Progress = SILENT) -> list[dict[str, Any]]:
    """One row per weight-carrying layer; ``progress`` hears a stage counting parameters (the
    distinct values of a VGG16's first dense layer take seconds to sort)."""
    rows = []
    layers = graph.layers()
    progress.stage("weight statistics", sum(w.size for ws in layers.values() for w in ws if is_parameter(w)))
    for layer, ws in layers.items():
        params = [w for w in ws if is_parameter(w)]
        if not params:
            continue
        arrays = [w.array for w in params]
        dtypes = sorted({str(w.dtype) for w in params})
        rows.append(
            {
                "name": layer,
                "op": _layer_op(params),
                "shape": list(_main_shape(params)),
                "params": int(sum(w.size for w in params)),
                "dtype": "/".join(dtypes),
                "bytes": int(sum(a.nbytes for a in arrays)),
                "tensors": [
                    {"name": w.name, "role": w.role, "shape": list(w.shape), "dtype": str(w.dtype)}
                    for w in params
                ],
                **value_stats(arrays),
            }
        )
        progress.advance(sum(w.size for w in params))
    return rows


def _io(graph: Graph, which: str) -> list[dict[str, Any]]:
    vals = graph.inputs if which == "inputs" else graph.outputs
    return [
        {"name": v.name, "shape": None if v.shape is None else list(v.shape), "dtype": v.dtype} for v in vals
    ]


def summarize(graph: Graph, path: str | os.PathLike[str], *, progress: Progress = SILENT) -> dict[str, Any]:
    """The `inspect` report as one JSON-ready dict."""
    rows = layer_rows(graph, progress)
    total = sum(r["params"] for r in rows)
    dense = sum(r["params"] for r in rows if r["op"] in DENSE_OPS)
    conv = sum(r["params"] for r in rows if r["op"] in CONV_OPS)
    consts = [w for w in graph.weights.values() if not is_parameter(w)]
    ops = Counter(n.op if not n.domain else f"{n.domain}:{n.op}" for n in graph.all_nodes())
    m = graph.meta
    return {
        "schema": SCHEMA,
        "file": str(path),
        "file_bytes": Path(path).stat().st_size,
        "format": m.format,
        "producer": m.producer,
        "producer_version": m.producer_version,
        "has_graph": graph.has_graph,
        "notes": list(m.notes),
        "inputs": _io(graph, "inputs"),
        "outputs": _io(graph, "outputs"),
        "nodes": sum(1 for _ in graph.all_nodes()),
        "ops": dict(sorted(ops.items())),
        "layers": rows,
        "totals": {
            "layers": len(rows),
            "params": total,
            "bytes": sum(r["bytes"] for r in rows),
            "const_tensors": len(consts),
            "const_bytes": int(sum(w.array.nbytes for w in consts)),
            "dense_params": dense,
            "conv_params": conv,
            "dense_share": dense / total if total else 0.0,
            "conv_share": conv / total if total else 0.0,
        },
    }


def summarize_artifact(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a `.nnc` holds: per tensor its format and exact bytes, and where the file's bytes go."""
    import zipfile

    from nncompress.artifact import read_artifact

    art = read_artifact(path, with_skeleton=False)
    with zipfile.ZipFile(path) as z:
        skel = sum(i.compress_size for i in z.infolist() if i.filename.startswith("skeleton/"))
    tensors = [
        {
            "name": t.name,
            "format": t.format,
            "shape": list(t.shape),
            "dtype": t.dtype,
            "bytes": t.payload_bytes,
            "bits_per_weight": 8.0 * t.payload_bytes / max(1, int(np.prod(t.shape, dtype=np.int64))),
        }
        for t in art.tensors
    ]
    size = Path(path).stat().st_size
    payload = sum(int(t.payload_bytes) for t in art.tensors)
    return {
        "schema": "nncompress.inspect-artifact/1",
        "file": str(path),
        "file_bytes": size,
        "schema_version": art.schema,
        "source": {"format": art.source_format, "name": art.source_name},
        "recipe": art.recipe,
        "seed": art.seed,
        "tensors": tensors,
        "totals": {
            "tensors": len(tensors),
            "payload_bytes": payload,
            "skeleton_bytes_stored": skel,
            "container_bytes": size - payload - skel,
        },
    }
