"""Native products of the ``csr``, ``csc`` and ``coo`` formats (native/sparse.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.coo import COO
from nncompress.formats.csc import CSC
from nncompress.formats.csr import CSR
from nncompress.native._call import Bound, kernel, ptr, typed, uint_arg


def sparse_bind(fmt: CSR | CSC | COO, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for a CSR, CSC or COO matrix (csc and coo run on one thread)."""
    values = typed(fmt.values, np.float32, fmt.name, "values")
    if isinstance(fmt, CSR):
        idx = uint_arg(fmt.name, fmt.col_idx, "col_idx") + uint_arg(fmt.name, fmt.row_ptr, "row_ptr")
    elif isinstance(fmt, CSC):
        idx = uint_arg(fmt.name, fmt.row_idx, "row_idx") + uint_arg(fmt.name, fmt.col_ptr, "col_ptr")
    else:
        idx = uint_arg(fmt.name, fmt.row_idx, "row_idx") + uint_arg(fmt.name, fmt.col_idx, "col_idx")
    head = (*fmt.shape, ptr(values, "float *"), values.size, *idx)
    return Bound(fmt.name, fmt.shape, kernel(fmt.name, naive), head, [values], threads)
