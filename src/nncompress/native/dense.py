"""Native product of the ``dense`` format (native/dense.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.dense import Dense
from nncompress.native._call import Bound, kernel, ptr


def dense_bind(fmt: Dense, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for a Dense matrix."""
    w = np.ascontiguousarray(fmt.values, dtype=np.float32)
    head = (*fmt.shape, ptr(w, "float *"), w.size)
    return Bound(fmt.name, fmt.shape, kernel("dense", naive), head, [w], threads)
