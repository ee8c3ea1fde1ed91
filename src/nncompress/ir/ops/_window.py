"""Window geometry shared by Conv, ConvTranspose and the pools: attribute defaults, padding (explicit
or auto_pad), output lengths and the strided view of every window (im2col without a copy)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nncompress.ir.ops._common import Arr, Attrs


def ints(a: Attrs, key: str, n: int, default: int) -> list[int]:
    """Int-list attribute ``key``, or ``n`` times ``default`` when it is absent or empty."""
    v = a.get(key)
    return [int(i) for i in v] if v is not None and len(v) else [default] * n


def pads(a: Attrs, size: Sequence[int], kern: Sequence[int]) -> tuple[list[int], ...]:
    """(pads_begin, pads_end, strides, dilations) for a window op over spatial ``size``."""
    n = len(size)
    s, d = ints(a, "strides", n, 1), ints(a, "dilations", n, 1)
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [
            max((-(-i // si) - 1) * si + (k - 1) * di + 1 - i, 0)
            for i, k, si, di in zip(size, kern, s, d, strict=True)
        ]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        return (small, big, s, d) if auto == "SAME_UPPER" else (big, small, s, d)
    if auto == "VALID":
        return [0] * n, [0] * n, s, d
    p = ints(a, "pads", 2 * n, 0)
    return p[:n], p[n:], s, d


def out_sizes(size: Sequence[int], geo: tuple[list[int], ...], kern: Sequence[int], ceil: bool) -> list[int]:
    """Output lengths of a window op; ``geo`` is what `pads` returns."""
    out = []
    for i, pb, pe, s, d, k in zip(size, *geo, kern, strict=True):
        span = i + pb + pe - (k - 1) * d - 1
        o = -(-span // s) + 1 if ceil else span // s + 1
        out.append(o - 1 if ceil and (o - 1) * s >= i + pb else o)  # no window may start in the end pad
    return out


def pad(x: Arr, pb: Sequence[int], pe: Sequence[int], value: float) -> Arr:
    """``x`` padded with ``value`` on its last ``len(pb)`` (spatial) axes."""
    if not any(pb) and not any(pe):
        return x
    widths = [(0, 0)] * (x.ndim - len(pb)) + list(zip(pb, pe, strict=True))
    return np.pad(x, widths, constant_values=value)


def windows(xp: Arr, kern: Sequence[int], s: Sequence[int], d: Sequence[int], out: Sequence[int]) -> Arr:
    """A strided view (N, C, *out, *kern) of every window of the padded input."""
    n = len(kern)
    eff = [(k - 1) * di + 1 for k, di in zip(kern, d, strict=True)]
    v = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + n)))
    idx = [slice(0, (o - 1) * si + 1, si) for o, si in zip(out, s, strict=True)]
    key = (slice(None), slice(None), *idx, *(slice(None, None, di) for di in d))
    return v[key]


def taps(
    xp: Arr, kern: Sequence[int], s: Sequence[int], d: Sequence[int], out: Sequence[int]
) -> Iterator[tuple[tuple[int, ...], Arr]]:
    """Each kernel tap (its index) and the strided view (N, C, *out) of the cells it sees: ops that
    combine taps cell by cell (max pooling, depthwise convolution) run one whole-array op per tap
    instead of reducing the window view's short, strided last axes (3-4x slower on 60 x 60 maps)."""
    for tap in itertools.product(*(range(k) for k in kern)):
        at = [
            slice(t * di, t * di + (o - 1) * si + 1, si) for t, di, o, si in zip(tap, d, out, s, strict=True)
        ]
        key = (slice(None), slice(None), *at)
        yield tap, xp[key]
