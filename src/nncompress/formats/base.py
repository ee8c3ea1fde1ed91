"""The contract every compressed tensor format follows, and the checks they share.

A format object holds ONE 2-D float32 matrix W in the IR layout (out, in); conv kernels are
flattened by the caller to (out, in/groups*kh*kw), which keeps the original shape. It satisfies
the IR's `CompressedTensor` protocol (``shape``, ``dtype``, ``to_dense()``) and adds:

- ``encode(w, **params)``: build from a dense matrix (codebook formats want an already quantized one);
- ``dot(x)``: ``y = x @ W.T`` for x of shape (in,) or (B, in), computed from the compressed arrays by
  a short numpy reference (the oracle native kernels are tested against); it accumulates in float64
  and returns float32;
- ``arrays()`` / ``meta()``: what is serialized (plain numeric arrays; small JSON-able parameters);
- ``from_arrays(arrays, meta)``: rebuild AND validate; any inconsistency is a one-line InputError;
- ``nbytes``: the exact payload, the sum of ``arrays()`` sizes (every table and offset counted);
  ``meta()`` holds only a few integers and names (it goes into the artifact's manifest).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nncompress.errors import InputError, UsageError
from nncompress.options import Options

MAX_DIM = 2**31 - 1  # native kernels index rows and columns with int32
MAX_CODEBOOK = 2**16
_BATCH_ELEMS = 1 << 24  # the references gather (B, nnz) blocks: cap them at 128 MiB of float64


# Rows r0:r1 of a matrix being encoded, as a (r1 - r0, cols) array.
Rows = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class NoOptions(Options):
    """The options of a storage format that takes none."""


class Format(ABC):
    """One compressed 2-D matrix (out, in); see the module docstring for the contract."""

    name: ClassVar[str]
    # The options `encode` takes, in the schema passes use (so ``sham:gap_coder=huffman`` parses
    # like a pass step); the structured formats are made by their passes and take none here.
    Options: ClassVar[type[Options]] = NoOptions

    def __init__(self, shape: tuple[int, int]) -> None:
        self._shape = (int(shape[0]), int(shape[1]))

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.float32)

    @property
    def size(self) -> int:
        return self._shape[0] * self._shape[1]

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> Format:
        """Compress a 2-D matrix exactly (storage formats); the structured formats are fitted by
        their passes (`nncompress.passes`) instead."""
        raise UsageError(
            f"{cls.name} is not a storage format: its pass fits it (nncompress.passes.{cls.name})"
        )

    @classmethod
    def encode_rows(cls, shape: tuple[int, int], rows: Rows, **params: Any) -> Format:
        """Encode the matrix of ``shape`` whose rows ``r0:r1`` are ``rows(r0, r1)``.

        Formats that can code a block of rows at a time override this, so that the matrix never
        exists whole (compress feeds them pruned and quantized rows made on demand); this default
        builds the matrix and calls `encode`.
        """
        return cls.encode(rows(0, shape[0]), **params)

    @abstractmethod
    def to_dense(self) -> np.ndarray:
        """The exact float32 matrix."""

    @abstractmethod
    def dot(self, x: np.ndarray) -> np.ndarray:
        """``x @ W.T`` from the compressed data (float64 accumulation, float32 result)."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """Everything serialized, each a plain numeric array."""

    @abstractmethod
    def meta(self) -> dict[str, Any]:
        """Small JSON-able parameters (shape, counts, bit widths, coder choices)."""

    @classmethod
    @abstractmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Format:
        """Rebuild from `arrays()` and `meta()`, validating everything (InputError)."""

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], *, path: str | None = None
    ) -> Format:
        """Rebuild and validate; a corrupt or inconsistent input is a one-line InputError naming ``path``."""
        hint = "Re-create it with nncompress compress"
        try:
            if not isinstance(arrays, Mapping) or not isinstance(meta, Mapping):
                raise InputError("arrays and meta must be mappings")
            return cls._from_arrays(arrays, meta)
        except InputError as e:
            raise InputError(f"{cls.name} tensor: {e.detail}", path=path, hint=hint) from None
        except (ValueError, TypeError, IndexError, KeyError, OverflowError, MemoryError) as e:
            # A last guard: the explicit checks should make this unreachable (tests assert so).
            raise InputError(
                f"{cls.name} tensor: unexpected inconsistency ({type(e).__name__}: {e})", path=path, hint=hint
            ) from None

    @property
    def nbytes(self) -> int:
        """Exact serialized payload in bytes."""
        return int(sum(a.nbytes for a in self.arrays().values()))

    @property
    def bits_per_weight(self) -> float:
        """Payload bits per matrix entry (0.0 for an empty matrix)."""
        return 8.0 * self.nbytes / self.size if self.size else 0.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.shape[0]}x{self.shape[1]} {self.nbytes} B>"


# ---- encoding helpers ------------------------------------------------------------------------


def as_matrix(w: np.ndarray, fmt: str, *, finite: bool = False) -> np.ndarray:
    """The float32 2-D matrix to encode, or a UsageError saying what is wrong with ``w``."""
    a = np.asarray(w)
    check_matrix_shape(a.shape, fmt)
    if a.dtype.kind not in "fiub":
        raise UsageError(f"{fmt} encodes real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if finite:
        check_finite(a, fmt)
    return a


def check_matrix_shape(shape: tuple[int, ...], fmt: str) -> None:
    if len(shape) != 2:
        raise UsageError(
            f"{fmt} encodes 2-D matrices (out, in), got shape {shape}; flatten conv kernels first"
        )
    if max(shape) > MAX_DIM:
        raise UsageError(f"{fmt}: dimension {max(shape)} exceeds {MAX_DIM}")


def check_finite(a: np.ndarray, fmt: str) -> None:
    if not np.all(np.isfinite(a)):
        raise UsageError(f"{fmt} needs finite weights, the matrix holds NaN or Inf")


def row_blocks(
    shape: tuple[int, ...], rows: Rows, fmt: str, entries: int
) -> tuple[Callable[[int, int], np.ndarray], list[tuple[int, int]]]:
    """For ``encode_rows``: a reader of rows [r0, r1) as checked finite float32 blocks, and the row
    ranges of about ``entries`` matrix entries each that cover the matrix."""
    check_matrix_shape(shape, fmt)
    n_rows, n_cols = int(shape[0]), int(shape[1])

    def block(r0: int, r1: int) -> np.ndarray:
        b = np.ascontiguousarray(rows(r0, r1), dtype=np.float32)
        if b.shape != (r1 - r0, n_cols):
            raise ValueError(f"rows({r0}, {r1}) gave shape {b.shape}, expected {(r1 - r0, n_cols)}")
        check_finite(b, fmt)
        return b

    step = max(1, entries // max(n_cols, 1))
    return block, [(r, min(r + step, n_rows)) for r in range(0, n_rows, step)]


def take_params(fmt: str, params: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    """The known encode parameters with defaults; an unknown one is a UsageError."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise UsageError(f"{fmt} has no parameter {unknown[0]!r} (known: {sorted(defaults) or 'none'})")
    return {**defaults, **params}


def codebook_of(values: np.ndarray, fmt: str) -> np.ndarray:
    """np.unique of the values as float32, or a UsageError when there are more than 2**16."""
    cb = np.unique(values).astype(np.float32)
    if cb.size > MAX_CODEBOOK:
        raise UsageError(
            f"{fmt} takes at most {MAX_CODEBOOK} distinct values, the matrix has {cb.size}: quantize first"
        )
    return cb


def uint_for(max_value: int) -> np.dtype[Any]:
    """The smallest unsigned integer dtype that holds ``max_value``."""
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"{max_value} does not fit in 64 bits")


def as_uint(a: np.ndarray, max_value: int | None = None) -> np.ndarray:
    """``a`` in the smallest unsigned dtype for ``max_value`` (default: its own maximum)."""
    a = np.asarray(a)
    top = int(a.max()) if max_value is None and a.size else int(max_value or 0)
    return a.astype(uint_for(max(top, 0)))


# ---- dot helpers -----------------------------------------------------------------------------


def as_input(x: np.ndarray, fmt: Format) -> tuple[np.ndarray, bool]:
    """x as a float64 (B, in) batch, and whether it was a single vector."""
    a = np.asarray(x)
    n_in = fmt.shape[1]
    if a.ndim not in (1, 2) or a.shape[-1] != n_in:
        raise UsageError(f"{fmt.name}.dot wants x of shape ({n_in},) or (B, {n_in}), got {a.shape}")
    single = a.ndim == 1
    return np.atleast_2d(a).astype(np.float64), single


def as_output(y: np.ndarray, single: bool) -> np.ndarray:
    """The float32 result, a vector again when the input was one."""
    y = y.astype(np.float32)
    return y[0] if single else y


def batch_chunks(x: np.ndarray, width: int) -> Iterator[slice]:
    """Slices of the batch so that a (chunk, width) gather stays small."""
    step = max(1, _BATCH_ELEMS // max(width, 1))
    for s in range(0, x.shape[0], step):
        yield slice(s, s + step)


def segment_lengths(ptr: np.ndarray) -> np.ndarray:
    """Lengths (int64) of the segments ``ptr[i]:ptr[i+1]``."""
    p = ptr.astype(np.int64)
    return p[1:] - p[:-1]


def segment_ids(ptr: np.ndarray) -> np.ndarray:
    """For each position of a segmented array, the index of its segment (row of a CSR entry)."""
    return np.repeat(np.arange(ptr.size - 1), segment_lengths(ptr))


def segment_sum(values: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Sum ``values`` (B, n) over the segments ``ptr[i]:ptr[i+1]`` of its last axis -> (B, len(ptr) - 1)."""
    out = np.zeros((values.shape[0], ptr.size - 1), dtype=values.dtype)
    starts = ptr[:-1].astype(np.int64)
    nonempty = starts < ptr[1:]
    if np.any(nonempty):
        # Empty segments are skipped: consecutive non-empty starts then delimit exactly one segment.
        out[:, nonempty] = np.add.reduceat(values, starts[nonempty], axis=1)
    return out


# ---- validation helpers (all raise InputError) ------------------------------------------------


def check_keys(
    arrays: Mapping[str, Any], meta: Mapping[str, Any], want_arrays: set[str], want_meta: set[str]
) -> None:
    """The exact array names and meta keys a format expects."""
    if set(arrays) != want_arrays:
        raise InputError(f"arrays {sorted(arrays)} differ from the expected {sorted(want_arrays)}")
    if set(meta) != want_meta:
        raise InputError(f"meta keys {sorted(meta)} differ from the expected {sorted(want_meta)}")


def meta_int(meta: Mapping[str, Any], key: str, lo: int = 0, hi: int = 2**62) -> int:
    """An integer meta field within [lo, hi]."""
    v = meta[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise InputError(f"meta {key}={v!r} is not an integer in [{lo}, {hi}]")
    return int(v)


def meta_shape(meta: Mapping[str, Any]) -> tuple[int, int]:
    """The (out, in) shape from meta."""
    s = meta["shape"]
    if not isinstance(s, (list, tuple)) or len(s) != 2:
        raise InputError(f"meta shape={s!r} is not a pair (out, in)")
    return meta_int({"shape[0]": s[0]}, "shape[0]", 0, MAX_DIM), meta_int(
        {"shape[1]": s[1]}, "shape[1]", 0, MAX_DIM
    )


def float_array(
    arrays: Mapping[str, Any], key: str, shape: tuple[int, ...], finite: bool = False
) -> np.ndarray:
    """A float32 array of exactly this shape."""
    a = arrays[key]
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise InputError(f"array {key} must be float32, got {got}")
    if a.shape != shape:
        raise InputError(f"array {key} has shape {a.shape}, expected {shape}")
    if finite and not np.all(np.isfinite(a)):
        raise InputError(f"array {key} holds NaN or Inf")
    return np.ascontiguousarray(a)


def uint_array(arrays: Mapping[str, Any], key: str, length: int, below: int | None = None) -> np.ndarray:
    """A 1-D unsigned integer array of this length whose entries are < ``below``; returned as int64."""
    a = arrays[key]
    if not isinstance(a, np.ndarray) or a.dtype.kind != "u" or not a.dtype.isnative or a.ndim != 1:
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise InputError(f"array {key} must be a 1-D unsigned integer array, got {got}")
    if a.size != length:
        raise InputError(f"array {key} has {a.size} entries, expected {length}")
    if a.dtype.itemsize == 8 and a.size and int(a.max()) >= 2**62:
        raise InputError(f"array {key} holds an entry beyond 2**62")
    out = a.astype(np.int64)
    if below is not None and out.size and int(out.max()) >= below:
        raise InputError(f"array {key} holds {int(out.max())}, not below {below}")
    return out


def check_ptr(ptr: np.ndarray, total: int, key: str, strict: bool = False) -> None:
    """A pointer array starts at 0, never decreases (increases if ``strict``) and ends at ``total``."""
    if ptr.size == 0 or ptr[0] != 0 or ptr[-1] != total:
        raise InputError(f"array {key} must run from 0 to {total}")
    d = np.diff(ptr)
    if np.any(d <= 0 if strict else d < 0):
        raise InputError(f"array {key} is not {'strictly increasing' if strict else 'monotone'}")


def check_sorted_codebook(cb: np.ndarray, key: str) -> None:
    """A codebook is finite and strictly increasing (it is np.unique's output)."""
    if not np.all(np.isfinite(cb)):
        raise InputError(f"array {key} holds NaN or Inf")
    if np.any(np.diff(cb) <= 0):
        raise InputError(f"array {key} is not strictly increasing")


def check_unique_cells(rows: np.ndarray, cols: np.ndarray, n_cols: int, what: str) -> None:
    """No (row, col) cell is stored twice."""
    cell = rows * max(n_cols, 1) + cols
    if cell.size > 1 and np.unique(cell).size != cell.size:
        raise InputError(f"{what} stores a cell twice")
