"""``cabac``: every entry as a signed integer level, context-adaptive binary arithmetic coded in one stream.

The levels are coded in row-major scan order by the coder of `_cabac_ref` (its docstring is the spec;
native/cabac.c is the same coder in C, bit-exact): a significance flag, a sign, greater-than-1..4
flags and an Exp-Golomb remainder, each bin with a probability adapted to the bins before it and to
the two levels before it. Predictable levels (mostly zeros, small magnitudes next to small ones) cost
well under one bit each, which a prefix code such as ``ham``'s cannot go below.

Two modes, exact either way:

- ``grid``: every value is ``float32(float32(l) * step)`` for integer levels l (|l| < 2**30) and one
  float32 step (a uniform quantizer's output). Arrays ``stream`` uint8 and ``step`` float32 (1,),
  finite and > 0. Meta ``shape``, ``mode``.
- ``codebook``: any matrix of at most 2**16 distinct values. Arrays ``stream`` uint8 and
  ``codebook`` float32 (k,), np.unique of the matrix (finite, strictly increasing); level l stands
  for ``codebook[l + zero]`` where ``zero`` is the index of 0.0 (of the value of smallest magnitude
  when 0 is absent), so levels keep the values' order and sign. Meta ``shape``, ``mode``, ``k``,
  ``zero``.

Grid is chosen when the matrix lies on a grid whose steps of min |v| / j (j = 1..4) it fills densely
(its levels span at most 2k + 2 integers for k distinct values): on a sparsely filled grid the
codebook's indices are smaller levels, worth more than the 4k bytes of the table. The stream is the
whole matrix's (``_cabac_ref``: 5 bytes plus one per renormalization); decoding needs the native
coder for speed, and falls back to the plain Python reference when the extension is not built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.errors import InputError
from nncompress.formats import _cabac_ref
from nncompress.formats.base import (
    MAX_CODEBOOK,
    Format,
    as_input,
    as_matrix,
    as_output,
    check_keys,
    check_sorted_codebook,
    codebook_of,
    float_array,
    meta_int,
    meta_shape,
    take_params,
)

MODES = ("grid", "codebook")
_MAX_LEVEL = _cabac_ref.MAX_MAG - 1
_SAMPLE = 4096  # entries a candidate grid step is tried on before the whole matrix


def _native() -> Any:
    """The C coder's wrapper module, or None when the extension is not built."""
    from nncompress.native._call import loaded

    if not loaded():
        return None
    from nncompress.native import cabac

    return cabac


def encode_levels(levels: np.ndarray) -> np.ndarray:
    """The uint8 stream of int32 levels (|l| < 2**30), by the C coder when it is built."""
    nat = _native()
    if nat is not None:
        out: np.ndarray = nat.encode(levels)
        return out
    return np.frombuffer(_cabac_ref.encode(levels), dtype=np.uint8).copy()


def decode_levels(stream: np.ndarray, n: int) -> np.ndarray:
    """n int32 levels from a uint8 stream; InputError when it does not decode to exactly n."""
    nat = _native()
    if nat is not None:
        out: np.ndarray = nat.decode(stream, n)
        return out
    return _cabac_ref.decode(stream.tobytes(), n)


def _on_grid(v: np.ndarray, step: np.float32) -> np.ndarray | None:
    """The int32 levels l with float32(float32(l) * step) == v for every entry, or None."""
    # float32 division first (4x cheaper); its rint can miss by one past 2**22, float64 then decides
    for dt in (np.float32, np.float64):
        q = np.rint(v.astype(dt, copy=False) / dt(step))
        if q.size and float(np.abs(q).max()) > _MAX_LEVEL:
            continue
        lv = q.astype(np.int32)
        if np.array_equal(lv.astype(np.float32) * step, v):
            return lv
    return None


def _min_nonzero_abs(flat: np.ndarray) -> np.float32 | None:
    """min |v| over the nonzero entries of finite float32 ``flat`` (None when all are zero), from the
    bit patterns: positive floats order like their bits, and 0 - 1 wraps to the largest uint32."""
    bits = flat.view(np.uint32) & np.uint32(0x7FFFFFFF)
    m = int((bits - np.uint32(1)).min()) + 1 if bits.size else 2**32
    return None if m == 2**32 else np.uint32(m).view(np.float32)


def grid_levels(flat: np.ndarray) -> tuple[np.ndarray, np.float32] | None:
    """(levels, step) when every value of ``flat`` (finite float32) is a level times one float32
    step among min |v| / j for j = 1..4; (zeros, 1.0) when all are zero; None otherwise."""
    m = _min_nonzero_abs(flat)
    if m is None:
        return np.zeros(flat.size, np.int32), np.float32(1.0)
    sample = flat[:: max(1, flat.size // _SAMPLE)]
    for j in range(1, 5):
        step = np.float32(m / np.float32(j))
        if not (np.isfinite(step) and step > 0):
            continue
        # A cheap rejection on a subset first: a kmeans codebook fails here, not after 4 full passes.
        if _on_grid(sample, step) is None:
            continue
        lv = _on_grid(flat, step)
        if lv is not None:
            return lv, step
    return None


def _present(lv: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The distinct levels of ``lv`` (all within [lo, hi]), sorted."""
    if hi - lo < 1 << 20:
        return np.flatnonzero(np.bincount(lv - lo, minlength=hi - lo + 1)) + lo
    return np.unique(lv)


def _order_key(a: np.ndarray) -> np.ndarray:
    """int32 keys in the order of finite float32 values without -0.0 (the negative ones' magnitude
    bits flipped): searchsorted on them is 2-3x faster than on the floats."""
    b = a.view(np.int32)
    return b ^ ((b >> 31) & np.int32(0x7FFFFFFF))


class Cabac(Format):
    """Integer levels, CABAC-coded in one stream, on a uniform grid or over a codebook."""

    name = "cabac"

    def __init__(
        self,
        shape: tuple[int, int],
        stream: np.ndarray,
        *,
        step: np.ndarray | None = None,
        codebook: np.ndarray | None = None,
        zero: int = 0,
    ) -> None:
        super().__init__(shape)
        if (step is None) == (codebook is None):
            raise ValueError("a cabac matrix has a step (grid) or a codebook, not both")
        self.stream, self.step, self.codebook, self.zero = stream, step, codebook, int(zero)

    @property
    def mode(self) -> str:
        return "grid" if self.step is not None else "codebook"

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> Cabac:
        take_params(cls.name, params)
        a = as_matrix(w, cls.name, finite=True)
        flat = a.reshape(-1)
        grid = grid_levels(flat)
        if grid is not None:
            lv, step = grid
            lo, hi = (int(lv.min()), int(lv.max())) if lv.size else (0, 0)
            span = hi - lo + 1
            # Dense on its grid (the levels present cover half its span or more): decided on a
            # sample first, which saves counting the whole matrix's levels in the usual case.
            sample = lv[:: max(1, lv.size // _SAMPLE)]
            if span <= MAX_CODEBOOK and span <= 2 * _present(sample, lo, hi).size + 2:
                return cls(a.shape, encode_levels(lv), step=np.array([step], np.float32))
            present = _present(lv, lo, hi)
            if present.size > MAX_CODEBOOK:
                codebook_of(flat, cls.name)  # raises its one-line UsageError
            if span <= 2 * present.size + 2:
                return cls(a.shape, encode_levels(lv), step=np.array([step], np.float32))
            # Sparse on its grid: index the values present instead (no sort of the matrix needed).
            cb, idx = np.unique(present.astype(np.float32) * step + np.float32(0), return_inverse=True)
            index = idx[np.searchsorted(present, lv)].astype(np.int32)
        else:
            flat = flat + np.float32(0)  # -0.0 as 0.0: np.unique keeps one of them, the keys tell them apart
            cb = codebook_of(flat, cls.name) + np.float32(0)
            index = np.searchsorted(_order_key(cb), _order_key(flat)).astype(np.int32)
        zero = int(np.argmin(np.abs(cb)))  # 0.0 itself when present: np.unique holds it once
        return cls(a.shape, encode_levels(index - zero), codebook=cb, zero=zero)

    def _levels(self) -> np.ndarray:
        return decode_levels(self.stream, self.size)

    def _values(self, levels: np.ndarray) -> np.ndarray:
        if self.step is not None:
            return (levels.astype(np.float32) * self.step[0]).reshape(self.shape)
        assert self.codebook is not None
        return self.codebook[levels.astype(np.int64) + self.zero].reshape(self.shape)

    def to_dense(self) -> np.ndarray:
        return self._values(self._levels())

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        return as_output(xb @ self.to_dense().T.astype(np.float64), single)

    def arrays(self) -> dict[str, np.ndarray]:
        if self.step is not None:
            return {"stream": self.stream, "step": self.step}
        assert self.codebook is not None
        return {"stream": self.stream, "codebook": self.codebook}

    def meta(self) -> dict[str, Any]:
        m: dict[str, Any] = {"shape": list(self.shape), "mode": self.mode}
        if self.codebook is not None:
            m.update(k=int(self.codebook.size), zero=self.zero)
        return m

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Cabac:
        mode = meta.get("mode")
        if not isinstance(mode, str) or mode not in MODES:
            raise InputError(f"meta mode={mode!r} is not one of {', '.join(MODES)}")
        grid = mode == "grid"
        check_keys(
            arrays,
            meta,
            {"stream", "step"} if grid else {"stream", "codebook"},
            {"shape", "mode"} if grid else {"shape", "mode", "k", "zero"},
        )
        shape = meta_shape(meta)
        s = arrays["stream"]
        if not isinstance(s, np.ndarray) or s.dtype != np.uint8 or s.ndim != 1:
            got = f"{s.dtype} {s.shape}" if isinstance(s, np.ndarray) else type(s).__name__
            raise InputError(f"array stream must be 1-D uint8, got {got}")
        stream = np.ascontiguousarray(s)
        if grid:
            step = float_array(arrays, "step", (1,), finite=True)
            if not step[0] > 0:
                raise InputError(f"array step holds {float(step[0])!r}, not a positive number")
            fmt = cls(shape, stream, step=step)
        else:
            k = meta_int(meta, "k", 1, MAX_CODEBOOK)
            zero = meta_int(meta, "zero", 0, k - 1)
            cb = float_array(arrays, "codebook", (k,))
            check_sorted_codebook(cb, "codebook")
            fmt = cls(shape, stream, codebook=cb, zero=zero)
        # The stream decodes to exactly out * in levels, or InputError. The levels are not kept for
        # to_dense: an artifact's formats are all loaded before any is decoded, and holding every
        # tensor's int32 levels at once would cost 4 bytes a weight (VGG16: 550 MB) to save a decode.
        levels = fmt._levels()
        if levels.size:
            lo, hi = int(levels.min()), int(levels.max())
            if grid:
                with np.errstate(over="ignore"):
                    top = np.float32(max(-lo, hi)) * step[0]
                if not np.isfinite(top):
                    raise InputError(f"level {max(-lo, hi)} times step {float(step[0])!r} overflows float32")
            elif lo < -fmt.zero or hi > k - 1 - fmt.zero:
                raise InputError(
                    f"the stream holds levels {lo}..{hi}, outside the codebook's {-fmt.zero}..{k - 1 - fmt.zero}"
                )
        return fmt
