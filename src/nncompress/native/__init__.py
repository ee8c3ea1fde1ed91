"""C kernels (cffi extension ``_nnc``, sources in native/) computing ``x @ W.T`` on compressed arrays.

`available()` says whether the extension built; without it everything still imports and
`native_dot` raises UsageError. Each family has a thin wrapper module (dense, sparse, im, cser,
huffman, and structured for lowrank, psm, sss and dct) that checks dtypes and shapes, calls the kernel
and maps its status to InputError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from nncompress.errors import UsageError
from nncompress.formats.base import Format
from nncompress.native._call import loaded


def available() -> bool:
    """Whether the compiled kernels can be used."""
    return loaded()


# Formats with a C kernel (every format of nncompress.formats).
NATIVE_FORMATS = ("dense", "csr", "csc", "coo", "im", "cser", "ham", "sham", "lowrank", "psm", "sss", "dct")


def supports(name: str) -> bool:
    """Whether format ``name`` has a native kernel and the extension is built."""
    return name in NATIVE_FORMATS and available()


@functools.cache  # built once: re-running the imports cost more than a small product
def _dispatch() -> dict[str, Callable[..., np.ndarray]]:
    from nncompress.native.cser import cser_dot
    from nncompress.native.dense import dense_dot
    from nncompress.native.huffman import ham_dot, sham_dot
    from nncompress.native.im import im_dot
    from nncompress.native.sparse import sparse_dot
    from nncompress.native.structured import dct_dot, lowrank_dot, psm_dot, sss_dot

    return {
        "dense": dense_dot,
        "csr": sparse_dot,
        "csc": sparse_dot,
        "coo": sparse_dot,
        "im": im_dot,
        "cser": cser_dot,
        "ham": ham_dot,
        "sham": sham_dot,
        "lowrank": lowrank_dot,
        "psm": psm_dot,
        "sss": sss_dot,
        "dct": dct_dot,
    }


def native_dot(fmt: Format, x: np.ndarray, threads: int = 1, naive: bool = False) -> np.ndarray:
    """``x @ W.T`` (float32) by the C kernel of ``fmt``'s format; ``naive`` picks the reference loops."""
    if not available():
        raise UsageError("the native kernels are not built: reinstall nncompress (pip install -e .)")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError(f"threads must be a positive integer, got {threads!r}")
    fn: Any = _dispatch().get(fmt.name)
    if fn is None:
        raise UsageError(f"no native kernel for format {fmt.name!r}")
    return fn(fmt, x, threads=threads, naive=naive)


__all__ = ["NATIVE_FORMATS", "available", "native_dot", "supports"]
