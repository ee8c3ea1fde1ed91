"""The figures of a compress report: one row per selected weight, and the gzip baseline of the input."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.ir import Weight
from nncompress.passes._infra import Source, rel_error

SCHEMA = "nncompress.compress/1"


def layer_row(
    src: Weight, after: np.ndarray | Source, fmt: str, payload: int, k: int | None
) -> dict[str, Any]:
    """The report row of one weight; ``after`` is what the model gets, whole or as a source of pieces."""
    before = src.array
    # a codebook format knows its distinct values; sorting 100 M weights to count them costs seconds
    known = fmt in ("ham", "im", "sham") and k is not None
    nonzero, uniques = [0], list[np.ndarray]()

    def seen(piece: np.ndarray) -> None:
        nonzero[0] += int(np.count_nonzero(piece))
        if not known:
            uniques.append(np.unique(piece))

    err = rel_error(before, after, seen=seen)  # one pass: a source's pieces are made again each time
    zeros = src.size - nonzero[0]
    if fmt in ("ham", "im") and k is not None:  # codebook of every value, zero included
        distinct = int(k)
    elif fmt == "sham" and k is not None:  # codebook of the nonzero values
        distinct = int(k) + (1 if zeros else 0)
    else:
        distinct = int(np.unique(np.concatenate(uniques or [np.zeros(0)])).size)
    return {
        "weight": src.name,
        "layer": src.layer,
        "op": src.op,
        "shape": list(src.shape),
        "format": fmt,
        "bytes_before": int(before.nbytes),
        "bytes_after": int(payload),
        "ratio": before.nbytes / payload if payload else float("inf"),
        "bits_per_weight": 8.0 * payload / max(1, src.size),
        "sparsity": zeros / max(1, src.size),
        "distinct": distinct,
        "rel_error": err,
    }


def gzip_baseline(path: Path) -> int:
    """Bytes of ``gzip -9`` of the input: what a user gets for free."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            n += len(c.compress(chunk))
    return n + len(c.flush())
