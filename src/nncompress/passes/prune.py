"""Magnitude pruning: set the weights of smallest absolute value to exactly zero.

Han, Pool, Tran & Dally 2015, "Learning both Weights and Connections for Efficient Neural
Networks". Example: ``nncompress compress model.h5 --pipeline prune:sparsity=0.9``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nncompress.ir import Graph, Weight
from nncompress.options import option
from nncompress.passes._infra import (
    CHUNK,
    Pass,
    PassOptions,
    PassResult,
    PerBlock,
    PerWeight,
    Select,
    Source,
    Transform,
    flat_chunks,
    selected,
    source_chunks,
    weight_stats,
)


def smallest(mag: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Mask of the ``n`` smallest entries of the flat ``mag`` (ties: lowest index first), and the n-th value.

    O(size): one ``partition`` finds the threshold; of the entries equal to it, the first ones by
    index fill the count, so the result is exact and deterministic.
    """
    if n <= 0:
        return np.zeros(mag.size, dtype=bool), 0.0
    if n >= mag.size:
        return np.ones(mag.size, dtype=bool), float(mag.max())
    t = np.partition(mag, n - 1)[n - 1]
    mask = mag < t
    ties = np.flatnonzero(mag == t)[: n - int(np.count_nonzero(mask))]
    mask[ties] = True
    return mask, float(t)


_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _keys(chunk: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """Unsigned sort keys of |chunk|: non-negative IEEE floats order like their bit patterns."""
    return np.abs(chunk.astype(dtype, copy=False)).view(_UINT[dtype.itemsize])


Chunks = Callable[[], Iterable[np.ndarray]]


def _pieces(arrays: Sequence[np.ndarray]) -> Chunks:
    return lambda: (c for a in arrays for c in flat_chunks(a))


def nth_magnitude(chunks: Chunks, n: int, dtype: np.dtype[Any]) -> float:
    """The n-th smallest (1-based) |value| over all pieces ``chunks()`` yields, by radix selection on the float bits.

    16 bits per pass from the top, each pass a bincount over the entries whose higher bits match:
    O(size) time and O(65536) memory, where a partition of the concatenated magnitudes would copy
    them twice (two copies of a VGG16 are 1.1 GB).
    """
    width = 8 * dtype.itemsize
    prefix, rank = 0, n  # rank within the entries whose top bits equal prefix
    for shift in range(width - 16, -1, -16):
        counts = np.zeros(1 << 16, dtype=np.int64)
        for c in chunks():
            k = _keys(c, dtype)
            if shift + 16 < width:
                k = k[(k >> (shift + 16)) == prefix]
            counts += np.bincount(((k >> shift) & 0xFFFF).astype(np.intp), minlength=1 << 16)
        cum = np.cumsum(counts)
        digit = int(np.searchsorted(cum, rank))
        rank -= int(cum[digit - 1]) if digit else 0
        prefix = (prefix << 16) | digit
    return float(np.array(prefix, dtype=_UINT[dtype.itemsize]).view(dtype))


def _threshold(chunks: Chunks, n: int, dtype: np.dtype[Any]) -> tuple[float, int]:
    """(t, ties): the n smallest magnitudes over all pieces are those < t and the first ``ties`` == t.

    For 0 < n < total entries.
    """
    t = nth_magnitude(chunks, n, dtype)
    below = sum(int(np.count_nonzero(np.abs(c.astype(dtype, copy=False)) < t)) for c in chunks())
    return t, n - below


def _mag(c: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    return np.abs(c.astype(dtype, copy=False))


def _tie_cut(source: Source, size: int, t: float, ties: int, dtype: np.dtype[Any]) -> tuple[int, int]:
    """(cut, taken): zeroing the entries of magnitude t up to flat index ``cut`` takes the first
    ``ties`` of them, or all ``taken`` < ``ties`` there are (cut = size); cut = -1 for none."""
    seen = 0
    for start in range(0, size, CHUNK) if ties > 0 else ():
        eq = np.flatnonzero(_mag(source(start, min(start + CHUNK, size)), dtype) == t)
        if seen + eq.size >= ties:
            return start + int(eq[ties - seen - 1]), ties
        seen += eq.size
    return (size, seen) if ties > 0 else (-1, 0)


def _zeroing(t: float, cut: int, dtype: np.dtype[Any]) -> Transform:
    """Zero magnitudes < t, and those == t up to flat index ``cut`` (what `_zero_below` does in order)."""

    def transform(c: np.ndarray, start: int) -> np.ndarray:
        mag = _mag(c, dtype)
        m = mag < t
        if start <= cut:
            eq = np.flatnonzero(mag == t)
            m[eq[eq <= cut - start]] = True
        c[m] = 0
        return c

    return transform


def _all_or_nothing(zero: bool) -> Transform:
    def transform(c: np.ndarray, start: int) -> np.ndarray:
        if zero:
            c[...] = 0
        return c

    return transform


def _zero_below(a: np.ndarray, t: float, ties: int, dtype: np.dtype[Any]) -> tuple[np.ndarray, int]:
    """A copy of ``a`` with magnitudes < t and the first ``ties`` equal to t zeroed; the ties left."""
    new = a.copy()  # C order, so reshape(-1) is a view
    for c in flat_chunks(new):
        mag = np.abs(c.astype(dtype, copy=False))
        m = mag < t
        if ties:
            eq = np.flatnonzero(mag == t)[:ties]
            m[eq] = True
            ties -= eq.size
        c[m] = 0
    return new, ties


def prune_below(arrays: Sequence[np.ndarray], n: int, dtype: np.dtype[Any]) -> tuple[list[np.ndarray], float]:
    """Copies of ``arrays`` with the n smallest magnitudes over all of them zeroed (ties: first by index).

    Equal to `smallest` on the concatenated magnitudes, a chunk at a time.
    """
    if n <= 0:
        return [a.copy() for a in arrays], 0.0
    total = sum(a.size for a in arrays)
    if n >= total:
        top = max((float(np.abs(a).max()) for a in arrays if a.size), default=0.0)
        return [np.zeros_like(a) for a in arrays], top
    t, ties = _threshold(_pieces(arrays), n, dtype)
    out = []
    for a in arrays:
        new, ties = _zero_below(a, t, ties, dtype)
        out.append(new)
    return out, t


def _prune_layer(a: np.ndarray, sparsity: float, radix: bool) -> tuple[np.ndarray, float]:
    """A copy of one weight with its ``round(sparsity * size)`` smallest magnitudes zeroed; the threshold."""
    n = round(sparsity * a.size)
    if radix:
        (new,), t = prune_below([a], n, a.dtype)
        return new, t
    m, t = smallest(np.abs(a).ravel(), n)
    new = a.copy()
    new.reshape(-1)[m] = 0
    return new, t


def _global_fit(
    graph: Graph | None, select: Select, sparsity: float
) -> tuple[float, int, np.dtype[Any]] | bool | None:
    """One threshold over the selected originals: (t, ties, dtype); True to zero all, False to
    keep all; None where it cannot be fitted here (after another step, whose outputs never exist
    together, or on a dtype without radix keys)."""
    if graph is None:
        return None
    arrays = [w.array for w in selected(graph, select)]
    common = np.result_type(*arrays) if arrays else np.dtype(np.float32)
    if not (common.kind == "f" and common.itemsize in _UINT):
        return None
    total = sum(a.size for a in arrays)
    n = round(sparsity * total)
    if n <= 0 or n >= total:
        return n > 0
    t, ties = _threshold(_pieces(arrays), n, common)
    return t, ties, common


class Prune(Pass):
    """Zero the smallest-magnitude ``round(sparsity * size)`` entries, per weight or over all selected weights.

    Zeros already there count towards the target (a weight that already holds more zeros keeps
    them all). ``scope=global`` uses one threshold for all selected weights together, so layers with
    larger weights lose fewer of them.
    """

    name = "prune"

    @dataclass(frozen=True)
    class Options(PassOptions):
        sparsity: float = option(0.5, lo=0.0, hi=1.0, doc="share of entries set to zero")
        scope: Literal["layer", "global"] = option(
            "layer", doc="layer: each weight reaches the sparsity; global: one threshold over all"
        )

    def per_weight(
        self, graph: Graph | None, options: Prune.Options, *, select: Select, rng: np.random.Generator
    ) -> PerWeight | None:
        if options.scope == "layer":

            def layer(w: Weight, a: np.ndarray, owned: bool) -> np.ndarray:
                radix = a.dtype.kind == "f" and a.dtype.itemsize in _UINT
                return _prune_layer(a, options.sparsity, radix)[0]

            return layer
        fit = _global_fit(graph, select, options.sparsity)
        if fit is None:
            return None
        if isinstance(fit, bool):
            return lambda w, a, owned: np.zeros_like(a) if fit else a.copy()
        t, ties, common = fit
        left = [ties]  # the ties still to prune, in graph order as prune_below takes them

        def global_(w: Weight, a: np.ndarray, owned: bool) -> np.ndarray:
            new, left[0] = _zero_below(a, t, left[0], common)
            return new

        return global_

    def per_block(
        self, graph: Graph | None, options: Prune.Options, *, select: Select, rng: np.random.Generator
    ) -> PerBlock | None:
        if options.scope == "layer":

            def layer(w: Weight, source: Source) -> Transform:
                n = round(options.sparsity * w.size)
                if not (w.dtype.kind == "f" and w.dtype.itemsize in _UINT):  # no radix keys: whole mask
                    mask = smallest(np.abs(source(0, w.size)), n)[0]
                    return lambda c, start: np.where(mask[start : start + c.size], 0, c).astype(c.dtype)
                if n <= 0 or n >= w.size:
                    return _all_or_nothing(n > 0)
                t, ties = _threshold(lambda: source_chunks(source, w.size), n, w.dtype)
                return _zeroing(t, _tie_cut(source, w.size, t, ties, w.dtype)[0], w.dtype)

            return layer
        fit = _global_fit(graph, select, options.sparsity)
        if fit is None:
            return None
        if isinstance(fit, bool):
            return lambda w, source: _all_or_nothing(fit)
        t, ties, common = fit
        left = [ties]  # the ties still to prune, in graph order as prune_below takes them

        def global_(w: Weight, source: Source) -> Transform:
            cut, taken = _tie_cut(source, w.size, t, left[0], common)
            left[0] -= taken
            return _zeroing(t, cut, common)

        return global_

    def __call__(
        self, graph: Graph, options: Prune.Options, *, select: Select, rng: np.random.Generator
    ) -> PassResult:
        ws = selected(graph, select)
        out = graph.copy()
        arrays = [w.array for w in ws]
        news: list[np.ndarray] = []
        thresholds: list[float] = []
        common = np.result_type(*arrays) if arrays else np.dtype(np.float32)
        radix = common.kind == "f" and common.itemsize in _UINT
        if options.scope == "layer":
            for a in arrays:
                new, t = _prune_layer(a, options.sparsity, radix)
                news.append(new)
                thresholds.append(t)
        elif arrays:
            n = round(options.sparsity * sum(a.size for a in arrays))
            if radix:
                news, t = prune_below(arrays, n, common)
            else:
                m, t = smallest(np.concatenate([np.abs(a).ravel() for a in arrays]), n)
                cuts = np.cumsum([a.size for a in arrays])[:-1]
                news = [a.copy() for a in arrays]
                for new, mk in zip(news, np.split(m, cuts), strict=True):
                    new.reshape(-1)[mk] = 0
            thresholds = [t] * len(arrays)
        stats = []
        for w, a, new, t in zip(ws, arrays, news, thresholds, strict=True):
            out.weights[w.name].value = new
            stats.append(weight_stats(self.name, w, a, new, scope=options.scope, threshold=t))
        return PassResult(out, stats)
