"""Native products of the structured formats ``lowrank``, ``psm``, ``sss`` and ``dct``.

Kernels in native/lowrank.c, psm.c, sss.c and dct.c. The wrappers only check dtypes and flatten: every
length is checked by the C side against the shape, exactly as the formats' ``_from_arrays`` do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.formats.dct import DCT, KERNELS
from nncompress.formats.lowrank import LowRank
from nncompress.formats.psm import PSM, factor_shapes
from nncompress.formats.sss import SSS
from nncompress.native._call import Bound, check, ffi, kernel, ptr, typed, uint_arg

MAX_FACTORS = 64  # psm.c's PSM_MAX_FACTORS, the bound of PSM._from_arrays
SSS_STAGES = ("al", "cl", "bl", "au", "cu", "bu", "d")


def _floats(a: Any, fmt_name: str, key: str) -> np.ndarray:
    """A float32 array of any shape, flat and contiguous (its length is the kernel's to check)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        raise InputError(f"{fmt_name} tensor: array {key} must be float32")
    return np.ascontiguousarray(a).reshape(-1)


def lowrank_bind(fmt: LowRank, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for LowRank factors, the (B, rank) intermediate kept in double."""
    a, b = _floats(fmt.a, fmt.name, "a"), _floats(fmt.b, fmt.name, "b")
    head = (*fmt.shape, fmt.rank, ptr(a, "float *"), a.size, ptr(b, "float *"), b.size)
    return Bound(fmt.name, fmt.shape, kernel("lowrank", naive), head, [a, b], threads)


def psm_bind(fmt: PSM, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for a PSM, its factors applied right to left by one C call."""
    q = len(fmt.factors)
    if not 1 <= q <= MAX_FACTORS:
        check(-1, fmt.name)
    shapes = factor_shapes(fmt.shape, q)
    dims = [a for a, _ in shapes] + [shapes[-1][1]]
    values = [typed(v, np.float32, fmt.name, f"values{i}") for i, (v, _, _) in enumerate(fmt.factors)]
    cols = [uint_arg(fmt.name, c, f"col_idx{i}") for i, (_, c, _) in enumerate(fmt.factors)]
    ptrs = [uint_arg(fmt.name, p, f"row_ptr{i}") for i, (_, _, p) in enumerate(fmt.factors)]
    # the pointer arrays borrow from values, cols and ptrs, which the Bound keeps
    head = (
        *fmt.shape,
        q,
        ffi.new("int64_t[]", dims),
        ffi.new("float *[]", [ptr(v, "float *") for v in values]),
        ffi.new("int64_t[]", [v.size for v in values]),
        ffi.new("void *[]", [c[0] for c in cols]),
        ffi.new("int64_t[]", [c[1] for c in cols]),
        ffi.new("int[]", [c[2] for c in cols]),
        ffi.new("void *[]", [p[0] for p in ptrs]),
        ffi.new("int64_t[]", [p[1] for p in ptrs]),
        ffi.new("int[]", [p[2] for p in ptrs]),
    )
    return Bound(fmt.name, fmt.shape, kernel("psm", naive), head, [values, cols, ptrs], threads)


def sss_bind(fmt: SSS, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for SSS stages: both sweeps and the diagonal blocks in one C call."""
    stages = [_floats(fmt.stages.get(k), fmt.name, k) for k in SSS_STAGES]
    head = (*fmt.shape, fmt.blocks, fmt.state, *[v for s in stages for v in (ptr(s, "float *"), s.size)])
    return Bound(fmt.name, fmt.shape, kernel("sss", naive), head, stages, threads)


def dct_bind(fmt: DCT, threads: int = 1, naive: bool = False) -> Bound:
    """x @ W.T for DCT coefficients: forward transform, sparse product, inverse transform in C."""
    if fmt.kernel not in KERNELS:
        raise InputError(f"{fmt.name} tensor: kernel {fmt.kernel!r} is not one of {', '.join(KERNELS)}")
    values = _floats(fmt.values, fmt.name, "values")
    head = (
        *fmt.shape,
        KERNELS.index(fmt.kernel),
        ptr(values, "float *"),
        values.size,
        *uint_arg(fmt.name, fmt.col_idx, "col_idx"),
        *uint_arg(fmt.name, fmt.row_ptr, "row_ptr"),
    )
    return Bound(fmt.name, fmt.shape, kernel("dct", naive), head, [values], threads)
