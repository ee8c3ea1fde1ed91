"""Native products of the ``csr``, ``csc`` and ``coo`` formats (native/sparse.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.sparse import SparseFormat
from nncompress.native._call import Bound, kernel, ptr, typed, uint_arg


def sparse_bind(fmt: SparseFormat, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for a CSR, CSC or COO matrix (csc and coo run on one thread)."""
    values = typed(fmt.values, np.float32, fmt.name, "values")
    # Each kernel takes (pointer, length, width) of the two index arrays in index_keys order.
    idx = [
        arg
        for key, a in zip(fmt.index_keys, fmt.index_arrays(), strict=True)
        for arg in uint_arg(fmt.name, a, key)
    ]
    head = (*fmt.shape, ptr(values, "float *"), values.size, *idx)
    return Bound(fmt.name, fmt.shape, kernel(fmt.name, naive), head, [values], threads)
