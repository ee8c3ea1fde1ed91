"""One-dimensional clustering for weight sharing: exact Lloyd k-means, ECSQ, stochastic rounding.

In one dimension the clusters of Lloyd's algorithm are intervals of the sorted values, bounded by
the midpoints between neighbouring centroids. With the values sorted once and their cumulative
counts and sums at hand, an iteration is ``searchsorted`` for the k-1 boundaries and k differences
of cumulative sums: O(k log n) instead of the O(nk) of a generic k-means (Lloyd 1982; the interval
structure is what Wu 1991 and Grønlund et al. 2017 build on).

Data are first condensed into `Points`: sorted distinct values with their multiplicities (exact
mode), or, above ``2 * bins`` values, the means of ``bins`` equal-width histogram bins with their
counts and exact sums (one streaming pass, no sort of the whole array). Lloyd then runs on those
weighted points. In histogram mode the centroids are still exact means of the values assigned to
them; what is approximate is only where a boundary falls during the iterations: the values of the
one bin a boundary cuts all go to the side of the bin's mean, i.e. a boundary moves by at most one
bin width, (max - min) / bins, per iteration. Measured cost (10 M Laplace-like weights, 2**20
bins, 1000 iterations): SSE within 1e-5 (k=32) to 1e-4 (k=256) of the exact mode's, either way;
with 1 M values in 2**16 bins, within 3e-4. The final nearest-level assignment of every value
(`assign`) is exact in both modes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Init = Literal["linear", "quantile", "density"]
_CHUNK = 1 << 22  # values per chunk in streaming loops: bounds the float64/int temporaries


@dataclass(frozen=True)
class Grid:
    """Equal-width bins over [lo, hi]: bin i holds the values with ``floor((v - lo) * scale) == i``."""

    lo: float
    scale: float  # bins per unit of value
    bins: int

    def index(self, v: np.ndarray) -> np.ndarray:
        """Bin of each value (float64 arithmetic, so the index is within one bin of the true one)."""
        i = ((v.astype(np.float64) - self.lo) * self.scale).astype(np.intp)
        np.clip(i, 0, self.bins - 1, out=i)
        return i


@dataclass(frozen=True)
class Points:
    """Sorted 1-D data as weighted points: ``x[i]`` stands for ``cnt[i+1] - cnt[i]`` values summing to ``sums[i]``."""

    x: np.ndarray  # float64, increasing
    sums: np.ndarray  # float64, sum of the values each point stands for
    cnt: np.ndarray  # float64 cumulative counts, len(x) + 1, starting at 0
    cs: np.ndarray  # float64 cumulative sums, len(x) + 1, starting at 0
    lo: float  # smallest and largest value (exact, also in histogram mode)
    hi: float
    grid: Grid | None  # the histogram, when the points are bins

    @property
    def n(self) -> int:
        return int(self.cnt[-1])


def _points(
    x: np.ndarray, counts: np.ndarray, sums: np.ndarray, lo: float, hi: float, grid: Grid | None
) -> Points:
    cnt = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    cs = np.concatenate([[0.0], np.cumsum(sums, dtype=np.float64)])
    return Points(x=x, sums=sums, cnt=cnt, cs=cs, lo=lo, hi=hi, grid=grid)


def condense(values: np.ndarray, bins: int = 1 << 20) -> Points:
    """Sort ``values`` into weighted points: exact up to ``2 * bins`` values (or if ``bins`` is 0), a histogram above."""
    v = np.ravel(values)
    if v.size == 0:
        raise ValueError("no values to cluster")
    if bins <= 0 or v.size <= 2 * bins:
        return _exact(v)
    return condense_chunks(lambda: (v[s : s + _CHUNK] for s in range(0, v.size, _CHUNK)), bins)


def condense_chunks(chunks: Callable[[], Iterable[np.ndarray]], bins: int = 1 << 20) -> Points:
    """`condense` of the values of all the chunks ``chunks()`` yields, never holding them all at once.

    ``chunks`` is called twice when the values are many (the histogram needs their range first):
    it must yield the same values each time. This is what lets quantize fit the levels of a 100 M
    weight layer from its nonzeros a few MB at a time.
    """
    n, lo, hi = 0, np.inf, -np.inf
    kept: list[np.ndarray] | None = []
    for c in chunks():
        if c.size:
            n += c.size
            lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
        if kept is not None and (bins <= 0 or n <= 2 * bins):
            kept.append(c)
        else:
            kept = None
    if n == 0:
        raise ValueError("no values to cluster")
    if kept is not None:
        return _exact(np.concatenate(kept))
    if lo == hi:
        return _points(np.array([lo]), np.array([float(n)]), np.array([lo * n]), lo, hi, None)
    grid = Grid(lo=lo, scale=bins / (hi - lo), bins=bins)
    counts = np.zeros(bins)
    sums = np.zeros(bins)
    for c in chunks():
        i = grid.index(c)
        counts += np.bincount(i, minlength=bins)
        sums += np.bincount(i, weights=c, minlength=bins)
    keep = counts > 0
    # The bin index is monotone in the value, so bins are contiguous runs of the sorted values
    # and their means are increasing.
    return _points(sums[keep] / counts[keep], counts[keep], sums[keep], lo, hi, grid)


def _exact(v: np.ndarray) -> Points:
    s = np.sort(v)  # in the input dtype: sorting float32 is much faster than float64
    starts = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
    x = s[starts].astype(np.float64)
    counts = np.diff(np.append(starts, s.size)).astype(np.float64)
    return _points(x, counts, x * counts, float(x[0]), float(x[-1]), None)


def quantiles(pts: Points, q: np.ndarray) -> np.ndarray:
    """The values at ranks ``q * (n - 1)`` of the data (``q`` in [0, 1])."""
    r = np.asarray(q, dtype=np.float64) * (pts.n - 1)
    i = np.searchsorted(pts.cnt[1:], r, side="right")
    return pts.x[np.minimum(i, pts.x.size - 1)]


def init_levels(pts: Points, k: int, init: Init) -> np.ndarray:
    """Initial centroids (Han et al. 2016, "Deep Compression", section 3.1).

    ``linear``: k points evenly spaced over [min, max] (the paper's best for accuracy: it keeps
    levels for the rare large weights). ``quantile``: the centres of k equal-mass slices,
    quantiles (j + 1/2) / k. ``density``: the paper's "density-based" init, which spaces the CDF
    linearly and reads the values off it: quantiles j / (k - 1), so min and max included. Both
    quantile variants put more levels where weights are dense.
    """
    if init == "linear":
        return np.linspace(pts.lo, pts.hi, k)
    if init == "quantile":
        return quantiles(pts, (np.arange(k) + 0.5) / k)
    if init == "density":
        return quantiles(pts, np.linspace(0.0, 1.0, k))
    raise ValueError(f"unknown init {init!r}")


def _bounds(pts: Points, breaks: np.ndarray) -> np.ndarray:
    """Point index where each interval starts (k + 1 entries); a point equal to a break goes below it."""
    return np.concatenate([[0], np.searchsorted(pts.x, breaks, side="right"), [pts.x.size]])


def _interval_stats(pts: Points, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum of the values in each interval [b[j], b[j+1]) of points."""
    return pts.cnt[b[1:]] - pts.cnt[b[:-1]], pts.cs[b[1:]] - pts.cs[b[:-1]]


def _exact_sums(pts: Points, b: np.ndarray) -> np.ndarray:
    """Interval sums added up directly: differences of long cumulative sums lose low-order bits."""
    out = np.zeros(b.size - 1)
    nonempty = b[1:] > b[:-1]
    out[nonempty] = np.add.reduceat(pts.sums, b[:-1][nonempty])
    return out


def lloyd(pts: Points, levels: np.ndarray, iters: int) -> np.ndarray:
    """Lloyd's k-means from ``levels`` for at most ``iters`` iterations (fewer once the partition is stable).

    An empty cluster keeps its centroid. Returns the sorted centroids (len(levels) of them).
    """
    c = np.sort(np.asarray(levels, dtype=np.float64))
    prev: np.ndarray | None = None
    b = _bounds(pts, (c[:-1] + c[1:]) / 2)
    for _ in range(iters):
        if prev is not None and np.array_equal(b, prev):
            break
        n, s = _interval_stats(pts, b)
        c = np.sort(np.where(n > 0, s / np.maximum(n, 1), c))
        prev, b = b, _bounds(pts, (c[:-1] + c[1:]) / 2)
    if prev is not None:
        # Polish the last means with direct sums (same partition, fewer rounding errors).
        n, _ = _interval_stats(pts, prev)
        c = np.sort(np.where(n > 0, _exact_sums(pts, prev) / np.maximum(n, 1), c))
    return c


def sse(values: np.ndarray, levels: np.ndarray) -> float:
    """Sum of squared distances from each value to its nearest level (for tests and reports)."""
    lv = np.sort(np.asarray(levels, dtype=np.float64))
    v = np.ravel(values).astype(np.float64)
    q = lv[assign(v, (lv[:-1] + lv[1:]) / 2)]
    return float(np.sum((v - q) ** 2))


def envelope(c: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower envelope of the lines ``d[j] - 2 c[j] x`` (c increasing): which lines win, and where they meet.

    With cost (x - c_j)^2 + lam * L_j = x^2 + (c_j^2 + lam L_j) - 2 c_j x, the x^2 term is shared,
    so the cheapest level for x is the lowest of these lines: each winning level owns one
    interval, and a level whose line never wins gets no values. Monotone-stack hull, O(k).
    """
    cl, dl = c.tolist(), d.tolist()

    def meet(i: int, j: int) -> float:
        return (dl[j] - dl[i]) / (2.0 * (cl[j] - cl[i]))

    st: list[int] = []
    for j in range(len(cl)):
        if st and cl[st[-1]] == cl[j]:
            if dl[j] >= dl[st[-1]]:
                continue
            st.pop()
        while len(st) >= 2 and meet(st[-2], j) <= meet(st[-2], st[-1]):
            st.pop()
        st.append(j)
    keep = np.array(st, dtype=np.intp)
    return keep, np.array([meet(st[t], st[t + 1]) for t in range(len(st) - 1)], dtype=np.float64)


def _code_lengths(p: np.ndarray) -> np.ndarray:
    return -np.log2(p)


def ecsq(pts: Points, levels: np.ndarray, lam: float, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Entropy-constrained scalar quantization (Chou, Lookabaugh & Gray 1989) started from ``levels``.

    Minimises  sum (x - c(x))^2 / E[x^2]  +  lam * sum -log2 p(c(x))  over levels c and their
    probabilities p: alternately assign every value to its cheapest level (intervals from the lower
    envelope), then move each level to its values' mean and set p to its share. Distortion is
    measured relative to the mean square of the data, so one ``lam`` suits every layer: lam = 0.1
    trades one bit per weight for 10% of the weights' power in squared error. Levels that lose all
    their values are dropped. Start from k-means levels (`lloyd`): with lam = 0 it then returns
    them. Returns (sorted levels, probabilities).
    """
    c = np.sort(np.asarray(levels, dtype=np.float64))
    n_tot = float(pts.n)
    power = float(np.sum(pts.sums * pts.x) / n_tot) or 1.0  # sum count*x^2 over points
    b = _bounds(pts, (c[:-1] + c[1:]) / 2)
    n, s = _interval_stats(pts, b)
    live = n > 0
    c, p = c[live], n[live] / n_tot
    prev: np.ndarray | None = None
    for _ in range(iters):
        keep, breaks = envelope(c, c * c + lam * power * _code_lengths(p))
        b = _bounds(pts, breaks)
        if prev is not None and keep.size == c.size and np.array_equal(b, prev):
            break
        n, _ = _interval_stats(pts, b)
        s = _exact_sums(pts, b)
        live = n > 0
        c, p = s[live] / n[live], n[live] / n_tot
        prev = b[np.concatenate([[True], live])]
    return c, p


def ecsq_objective(values: np.ndarray, levels: np.ndarray, p: np.ndarray, lam: float) -> float:
    """The ECSQ cost of quantizing ``values`` with ``levels`` at code lengths -log2 ``p`` (as `ecsq` minimises it)."""
    v = np.ravel(values).astype(np.float64)
    power = float(np.mean(v * v)) or 1.0
    d = levels * levels + lam * power * _code_lengths(p)
    keep, breaks = envelope(levels, d)
    j = keep[assign(v, breaks)]
    return float(np.sum((v - levels[j]) ** 2) / power + lam * np.sum(_code_lengths(p)[j]))


def assign(values: np.ndarray, breaks: np.ndarray, grid: Grid | None = None) -> np.ndarray:
    """Interval of each value among sorted ``breaks`` (a value equal to a break goes below): int32.

    With a ``grid`` (the histogram the levels were fitted on) most values are placed by a table
    lookup on their bin; only the values of the few bins next to a break are searched, so the
    result is the same as a full search, at gather speed.
    """
    v = np.ravel(values)
    br = np.asarray(breaks, dtype=np.float64)
    out = np.empty(v.size, dtype=np.int32)
    if grid is None or br.size == 0:
        for s in range(0, v.size, _CHUNK):
            out[s : s + _CHUNK] = np.searchsorted(br, v[s : s + _CHUNK].astype(np.float64), side="left")
        return out
    centres = grid.lo + (np.arange(grid.bins) + 0.5) / grid.scale
    lut = np.searchsorted(br, centres, side="left").astype(np.int32)
    # Grid.index is within one bin of a value's true bin, so a bin two away from the bin of a
    # break holds values that are all on the same side of it as the bin's centre.
    near = np.zeros(grid.bins, dtype=bool)
    pb = np.floor((br - grid.lo) * grid.scale).astype(np.int64)
    for off in (-1, 0, 1):
        near[np.clip(pb + off, 0, grid.bins - 1)] = True
    for s in range(0, v.size, _CHUNK):
        c = v[s : s + _CHUNK]
        i = grid.index(c)
        o = lut[i]
        fix = np.flatnonzero(near[i])
        o[fix] = np.searchsorted(br, c[fix].astype(np.float64), side="left")
        out[s : s + _CHUNK] = o
    return out


def stochastic_round(values: np.ndarray, levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round each value to one of its two neighbouring levels, unbiased: E[q] = v (Gupta et al. 2015).

    ``levels`` (sorted, float64) must span the values: the up-probability is the value's relative
    position between its neighbours. Returns int32 level indices.
    """
    v = np.ravel(values)
    lv = np.asarray(levels, dtype=np.float64)
    if lv.size == 1:
        return np.zeros(v.size, dtype=np.int32)
    out = np.empty(v.size, dtype=np.int32)
    for s in range(0, v.size, _CHUNK):
        c = v[s : s + _CHUNK].astype(np.float64)
        j = np.clip(np.searchsorted(lv, c, side="right") - 1, 0, lv.size - 2)
        up = (c - lv[j]) / (lv[j + 1] - lv[j])
        out[s : s + _CHUNK] = j + (rng.random(c.size) < up)
    return out


def entropy_bits(p: np.ndarray) -> float:
    """Shannon entropy in bits of a probability vector."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(max(0.0, -(p * np.log2(p)).sum())) if p.size else 0.0


def nonzero_levels(levels: np.ndarray, pts: Points) -> np.ndarray:
    """``levels`` (same order) with any exact 0 replaced by a nonzero value, so no nonzero weight becomes 0.

    Levels are means of nonzero values, so a zero level needs exact cancellation (or a uniform grid
    through 0): it becomes the value nearest to 0 among the points it owns (or among all points).
    The replacement lies in the level's own interval, so the order of levels with values is kept.
    """
    lv = np.array(levels, dtype=np.float64)
    zero = np.flatnonzero(lv == 0)
    nz = np.flatnonzero(pts.x != 0)
    if zero.size == 0 or nz.size == 0:
        return lv
    srt = np.sort(lv)
    b = _bounds(pts, (srt[:-1] + srt[1:]) / 2)
    for z in zero:
        j = int(np.searchsorted(srt, 0.0))  # the (first) zero among the sorted levels
        own = nz[(nz >= b[j]) & (nz < b[j + 1])]
        cand = own if own.size else nz
        lv[z] = pts.x[cand[np.argmin(np.abs(pts.x[cand]))]]
    return lv
