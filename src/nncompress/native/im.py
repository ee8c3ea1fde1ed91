"""Native product of the ``im`` (index map) format (native/im.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.im import IndexMap
from nncompress.native._call import check, kernel, prepare_x, ptr, typed


def im_dot(fmt: IndexMap, x: np.ndarray, threads: int = 1, naive: bool = False) -> np.ndarray:
    """x @ W.T for an IndexMap matrix."""
    n_out, n_in = fmt.shape
    xb, single = prepare_x(x, n_in, fmt.name)
    cb = typed(fmt.codebook, np.float32, fmt.name, "codebook")
    stream = typed(fmt.stream, np.uint32, fmt.name, "stream")
    y = np.empty((xb.shape[0], n_out), dtype=np.float32)
    st = kernel("im", naive)(
        n_out,
        n_in,
        ptr(cb, "float *"),
        cb.size,
        ptr(stream, "uint32_t *"),
        stream.size,
        ptr(xb, "float *"),
        xb.shape[0],
        ptr(y, "float *"),
        threads,
    )
    check(st, fmt.name)
    return y[0] if single else y
