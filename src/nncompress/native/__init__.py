"""C kernels (cffi extension ``_nnc``, sources in native/) computing ``x @ W.T`` on compressed arrays.

`available()` says whether the extension built; without it everything still imports and
`native_dot` raises UsageError. Each family has a thin wrapper module (dense, sparse, im, cser,
huffman, and structured for lowrank, psm, sss and dct) that checks the format's dtypes and converts
its arrays to the kernel's arguments once (`bind`); the bound call checks x and maps the kernel's
status to InputError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from nncompress.errors import UsageError
from nncompress.formats.base import Format
from nncompress.native._call import Bound, loaded


def available() -> bool:
    """Whether the compiled kernels can be used."""
    return loaded()


# Formats with a C kernel (every format of nncompress.formats).
NATIVE_FORMATS = (
    *("dense", "csr", "csc", "coo", "im", "cser", "ham", "sham"),
    *("lowrank", "psm", "sss", "dct", "cabac"),
)


def supports(name: str) -> bool:
    """Whether format ``name`` has a native kernel and the extension is built."""
    return name in NATIVE_FORMATS and available()


@functools.cache  # built once: re-running the imports cost more than a small product
def _dispatch() -> dict[str, Callable[..., Bound]]:
    from nncompress.native.cabac import cabac_bind
    from nncompress.native.cser import cser_bind
    from nncompress.native.dense import dense_bind
    from nncompress.native.huffman import ham_bind, sham_bind
    from nncompress.native.im import im_bind
    from nncompress.native.sparse import sparse_bind
    from nncompress.native.structured import dct_bind, lowrank_bind, psm_bind, sss_bind

    return {
        "dense": dense_bind,
        "cabac": cabac_bind,
        "csr": sparse_bind,
        "csc": sparse_bind,
        "coo": sparse_bind,
        "im": im_bind,
        "cser": cser_bind,
        "ham": ham_bind,
        "sham": sham_bind,
        "lowrank": lowrank_bind,
        "psm": psm_bind,
        "sss": sss_bind,
        "dct": dct_bind,
    }


def bind(fmt: Format, threads: int = 1, naive: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> x @ W.T`` (float32) by the C kernel of ``fmt``'s format, its arrays checked and
    converted once (several microseconds a call saved); ``naive`` picks the reference loops. The
    callable keeps the arrays it reads alive; rebind after replacing any of ``fmt``'s arrays."""
    if not available():
        raise UsageError("the native kernels are not built: reinstall nncompress (pip install -e .)")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError(f"threads must be a positive integer, got {threads!r}")
    fn = _dispatch().get(fmt.name)
    if fn is None:
        raise UsageError(f"no native kernel for format {fmt.name!r}")
    return fn(fmt, threads=threads, naive=naive)


def native_dot(fmt: Format, x: np.ndarray, threads: int = 1, naive: bool = False) -> np.ndarray:
    """``x @ W.T`` (float32) by the C kernel of ``fmt``'s format; ``naive`` picks the reference loops."""
    return bind(fmt, threads, naive)(x)


__all__ = ["NATIVE_FORMATS", "available", "bind", "native_dot", "supports"]
