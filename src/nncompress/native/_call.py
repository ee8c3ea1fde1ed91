"""Shared plumbing of the native wrappers: the loaded library, array-to-pointer casts, status codes."""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompress.errors import InputError, UsageError

try:
    from nncompress.native._nnc import ffi, lib
except ImportError:  # the extension did not build: callers check `available()` first
    ffi = lib = None

_STATUS = {
    -1: "an array's length, width or a dimension is inconsistent",
    -2: "an offset, pointer or index lies outside its range",
    -3: "the bit stream or a code table does not decode",
}


def loaded() -> bool:
    """Whether the compiled extension imported."""
    return lib is not None


def ptr(a: np.ndarray, ctype: str) -> Any:
    """A C pointer on a contiguous array (the array must outlive the call)."""
    return ffi.cast(ctype, ffi.from_buffer(a)) if a.size else ffi.NULL


def uint_arg(fmt_name: str, a: np.ndarray, key: str) -> tuple[Any, int, int]:
    """(pointer, length, element width) of a 1-D native-endian unsigned index array."""
    if not isinstance(a, np.ndarray) or a.dtype.kind != "u" or not a.dtype.isnative or a.ndim != 1:
        raise InputError(f"{fmt_name} tensor: array {key} must be a 1-D unsigned integer array")
    a = np.ascontiguousarray(a)
    return ffi.from_buffer(a) if a.size else ffi.NULL, int(a.size), int(a.dtype.itemsize)


def typed(a: np.ndarray, dtype: type, fmt_name: str, key: str) -> np.ndarray:
    """``a`` as a contiguous array of exactly this dtype (no conversion: a wrong dtype is corrupt data)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype) or a.ndim != 1:
        raise InputError(f"{fmt_name} tensor: array {key} must be 1-D {np.dtype(dtype)}")
    return np.ascontiguousarray(a)


def prepare_x(x: np.ndarray, n_in: int, fmt_name: str) -> tuple[np.ndarray, bool]:
    """x as a contiguous float32 (B, in) batch, and whether it was one vector."""
    a = np.asarray(x)
    if a.ndim not in (1, 2) or a.shape[-1] != n_in:
        raise UsageError(f"{fmt_name} native dot wants x of shape ({n_in},) or (B, {n_in}), got {a.shape}")
    return np.ascontiguousarray(np.atleast_2d(a), dtype=np.float32), a.ndim == 1


def check(status: int, fmt_name: str) -> None:
    """Map a kernel status to a typed exception."""
    if status == 0:
        return
    if status == -4:
        raise MemoryError(f"{fmt_name} native kernel: out of memory")
    if status in _STATUS:
        raise InputError(
            f"{fmt_name} tensor: {_STATUS[status]} (native kernel status {status})",
            hint="Re-create it with nncompress compress",
        )
    raise RuntimeError(f"{fmt_name} native kernel returned unknown status {status}")


class Bound:
    """``x -> x @ W.T`` by one C kernel, the format's arguments checked and converted once.

    Every kernel's last four arguments are (x, batch, y, threads); ``head`` holds the ones before
    them. Converting a format's arrays to pointers costs several microseconds a call, as much as a
    small layer's whole product, so a layer run in a loop binds once. ``keep`` holds the arrays the
    pointers in ``head`` borrow from (a cast pointer does not keep its buffer alive).
    """

    def __init__(
        self,
        fmt_name: str,
        shape: tuple[int, int],
        fn: Any,
        head: tuple[Any, ...],
        keep: list[Any],
        threads: int,
    ) -> None:
        self.name, self.n_out, self.n_in = fmt_name, shape[0], shape[1]
        self._fn, self._head, self._keep, self._threads = fn, head, keep, threads

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xb, single = prepare_x(x, self.n_in, self.name)
        y = np.empty((xb.shape[0], self.n_out), dtype=np.float32)
        st = self._fn(*self._head, ptr(xb, "float *"), xb.shape[0], ptr(y, "float *"), self._threads)
        check(st, self.name)
        return y[0] if single else y


def kernel(name: str, naive: bool) -> Any:
    """The C function nnc_<name>_dot or its _naive reference."""
    return getattr(lib, f"nnc_{name}_dot_naive" if naive else f"nnc_{name}_dot")
