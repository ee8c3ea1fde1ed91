"""Native product of the ``dense`` format (native/dense.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.dense import Dense
from nncompress.native._call import check, kernel, prepare_x, ptr


def dense_dot(fmt: Dense, x: np.ndarray, threads: int = 1, naive: bool = False) -> np.ndarray:
    """x @ W.T for a Dense matrix."""
    n_out, n_in = fmt.shape
    xb, single = prepare_x(x, n_in, fmt.name)
    w = np.ascontiguousarray(fmt.values, dtype=np.float32)
    y = np.empty((xb.shape[0], n_out), dtype=np.float32)
    st = kernel("dense", naive)(
        n_out, n_in, ptr(w, "float *"), w.size, ptr(xb, "float *"), xb.shape[0], ptr(y, "float *"), threads
    )
    check(st, fmt.name)
    return y[0] if single else y
