"""Native product of the ``cser`` format (native/cser.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.cser import CSER
from nncompress.native._call import check, kernel, prepare_x, ptr, typed, uint_arg


def cser_dot(fmt: CSER, x: np.ndarray, threads: int = 1, naive: bool = False) -> np.ndarray:
    """x @ W.T for a CSER matrix."""
    n_out, n_in = fmt.shape
    xb, single = prepare_x(x, n_in, fmt.name)
    omega = typed(fmt.omega, np.float32, fmt.name, "omega")
    idx = (
        uint_arg(fmt.name, fmt.col_idx, "col_idx")
        + uint_arg(fmt.name, fmt.w_idx, "w_idx")
        + uint_arg(fmt.name, fmt.w_ptr, "w_ptr")
        + uint_arg(fmt.name, fmt.row_ptr, "row_ptr")
    )
    y = np.empty((xb.shape[0], n_out), dtype=np.float32)
    st = kernel("cser", naive)(
        n_out,
        n_in,
        ptr(omega, "float *"),
        omega.size,
        *idx,
        ptr(xb, "float *"),
        xb.shape[0],
        ptr(y, "float *"),
        threads,
    )
    check(st, fmt.name)
    return y[0] if single else y
