"""Native product of the ``cser`` format (native/cser.c)."""

from __future__ import annotations

import numpy as np

from nncompress.formats.cser import CSER
from nncompress.native._call import Bound, kernel, ptr, typed, uint_arg


def cser_bind(fmt: CSER, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for a CSER matrix."""
    omega = typed(fmt.omega, np.float32, fmt.name, "omega")
    idx = (
        uint_arg(fmt.name, fmt.col_idx, "col_idx")
        + uint_arg(fmt.name, fmt.w_idx, "w_idx")
        + uint_arg(fmt.name, fmt.w_ptr, "w_ptr")
        + uint_arg(fmt.name, fmt.row_ptr, "row_ptr")
    )
    head = (*fmt.shape, ptr(omega, "float *"), omega.size, *idx)
    return Bound(fmt.name, fmt.shape, kernel("cser", naive), head, [omega], threads)
