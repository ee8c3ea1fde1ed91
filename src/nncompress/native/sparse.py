"""Native products of the ``csr``, ``csc`` and ``coo`` formats (native/sparse.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.coo import COO
from nncompress.formats.csc import CSC
from nncompress.formats.csr import CSR
from nncompress.native._call import check, kernel, prepare_x, ptr, typed, uint_arg


def sparse_dot(fmt: CSR | CSC | COO, x: np.ndarray, threads: int = 1, naive: bool = False) -> np.ndarray:
    """x @ W.T for a CSR, CSC or COO matrix (csc and coo run on one thread)."""
    n_out, n_in = fmt.shape
    xb, single = prepare_x(x, n_in, fmt.name)
    values = typed(fmt.values, np.float32, fmt.name, "values")
    if isinstance(fmt, CSR):
        idx = uint_arg(fmt.name, fmt.col_idx, "col_idx") + uint_arg(fmt.name, fmt.row_ptr, "row_ptr")
    elif isinstance(fmt, CSC):
        idx = uint_arg(fmt.name, fmt.row_idx, "row_idx") + uint_arg(fmt.name, fmt.col_ptr, "col_ptr")
    else:
        idx = uint_arg(fmt.name, fmt.row_idx, "row_idx") + uint_arg(fmt.name, fmt.col_idx, "col_idx")
    y = np.empty((xb.shape[0], n_out), dtype=np.float32)
    st = kernel(fmt.name, naive)(
        n_out,
        n_in,
        ptr(values, "float *"),
        values.size,
        *idx,
        ptr(xb, "float *"),
        xb.shape[0],
        ptr(y, "float *"),
        threads,
    )
    check(st, fmt.name)
    return y[0] if single else y
