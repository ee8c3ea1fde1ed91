"""Weight sharing: replace each nonzero weight by one of k levels (a codebook per weight or per layer type).

Methods: ``uniform`` (k evenly spaced levels), ``kmeans`` (exact 1-D Lloyd, Han et al. 2016
"Deep Compression"), ``pws`` (probabilistic weight sharing: k-means levels, then unbiased
stochastic rounding to a neighbouring level) and ``ecsq`` (entropy-constrained scalar quantization,
Chou, Lookabaugh & Gray 1989: fewer bits after entropy coding for a given error).
Example: ``nncompress compress model.h5 --pipeline prune:sparsity=0.9,quantize:method=kmeans:k=32``.

Only nonzero weights are quantized: pruned zeros stay exactly zero, k counts the nonzero levels,
and no level is 0 (a level that comes out 0 is moved to the nearest nonzero value it owns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nncompress.errors import UnsupportedError
from nncompress.ir import Graph, Weight
from nncompress.options import option
from nncompress.passes import _kmeans1d as km
from nncompress.passes._infra import (
    Pass,
    PassOptions,
    PassResult,
    PerBlock,
    PerWeight,
    Select,
    Source,
    Transform,
    flat_chunks,
    may_overwrite,
    profile_from_counts,
    selected,
    source_chunks,
    weight_stats,
)
from nncompress.summary import CONV_OPS, DENSE_OPS


def share_key(w: Weight, share: str) -> str:
    """Codebook a weight uses: its own, or the one of its layer type (all Dense, all Conv kernels)."""
    if share == "layer":
        return f"weight:{w.name}"
    if w.op in DENSE_OPS:
        return "type:Dense"
    if w.op in CONV_OPS:
        return "type:Conv"
    return f"type:{w.op or w.role}"


class Quantize(Pass):
    """Quantize the nonzero entries of the selected weights to at most k shared values."""

    name = "quantize"

    @dataclass(frozen=True)
    class Options(PassOptions):
        method: Literal["uniform", "kmeans", "pws", "ecsq"] = option("kmeans", doc="how levels are chosen")
        k: int = option(16, lo=2, hi=65536, doc="number of nonzero levels (at most)")
        init: Literal["linear", "quantile", "density"] = option(
            "linear", doc="k-means start (kmeans, pws, ecsq); see _kmeans1d.init_levels"
        )
        lam: float = option(
            0.02, lo=0.0, doc="ecsq: bits-vs-error trade-off; error is relative to the weights' mean square"
        )
        share: Literal["layer", "type"] = option(
            "layer", doc="layer: a codebook per weight; type: one for all Dense and one for all Conv kernels"
        )
        iters: int = option(1000, lo=0, hi=100000, doc="most Lloyd / ECSQ iterations (stops when stable)")
        bins: int = option(
            1 << 20, lo=0, hi=1 << 24, doc="histogram bins beyond 2*bins values (0: always sort exactly)"
        )

    def __call__(
        self, graph: Graph, options: Quantize.Options, *, select: Select, rng: np.random.Generator
    ) -> PassResult:
        out = graph.copy()
        groups: dict[str, list[Weight]] = {}
        for w in selected(graph, select):
            groups.setdefault(share_key(w, options.share), []).append(w)
        stats = []
        for key, ws in groups.items():
            done = self._group(ws, [w.array for w in ws], options, rng, may_overwrite, graph.meta.path)
            for w, a, new, fields in done:
                out.weights[w.name].value = new
                stats.append(weight_stats(self.name, w, a, new, **{**fields, "codebook": key}))
        return PassResult(out, stats)

    def per_weight(
        self, graph: Graph | None, options: Quantize.Options, *, select: Select, rng: np.random.Generator
    ) -> PerWeight | None:
        if options.share != "layer":
            return None  # a codebook shared by a layer type is fitted on all its weights at once
        path = graph.meta.path if graph is not None else None

        def one(w: Weight, a: np.ndarray, owned: bool) -> np.ndarray:
            done = self._group([w], [a], options, rng, lambda _: owned, path)
            return done[0][2] if done else a

        return one

    def per_block(
        self, graph: Graph | None, options: Quantize.Options, *, select: Select, rng: np.random.Generator
    ) -> PerBlock | None:
        if options.share != "layer" or options.method == "pws":
            return None  # a shared codebook needs all its weights; pws draws a number per entry
        path = graph.meta.path if graph is not None else None

        def fit(w: Weight, source: Source) -> Transform:
            fitted = self._fit([w], lambda: ((w, c) for c in source_chunks(source, w.size)), options, path)
            if fitted is None:
                return lambda c, start: c  # nothing but zeros
            stored = fitted.levels.astype(w.dtype)

            def transform(c: np.ndarray, start: int) -> np.ndarray:
                _assign(c, c, True, fitted, stored, options.method, rng)
                return c

            return transform

        return fit

    def _fit(
        self,
        ws: list[Weight],
        pieces: Callable[[], Iterable[tuple[Weight, np.ndarray]]],
        options: Quantize.Options,
        path: str | None,
    ) -> _Fitted | None:
        """The levels for the nonzeros of every (weight, piece) ``pieces()`` yields; None if all are zero."""
        seen = [0]

        def nonzeros() -> Iterator[np.ndarray]:
            for w, c in pieces():
                v = c[c != 0]
                if v.size and not np.isfinite(v).all():
                    raise UnsupportedError(
                        f"weight {w.name!r} holds NaN or infinite values, which cannot be quantized",
                        path=path or None,
                        hint="Fix or retrain the model; leave this weight out of the selection",
                    )
                seen[0] += v.size
                yield v

        try:
            pts = km.condense_chunks(nonzeros, options.bins)
        except ValueError:
            if seen[0]:
                raise
            return None
        levels, breaks, extra = self._levels(pts, options, ws[0].dtype)
        return _Fitted(levels, breaks, pts.grid, extra)

    def _group(
        self,
        ws: list[Weight],
        arrays: list[np.ndarray],
        options: Quantize.Options,
        rng: np.random.Generator,
        overwrite: Callable[[np.ndarray], bool],
        path: str | None,
    ) -> list[tuple[Weight, np.ndarray, np.ndarray, dict[str, Any]]]:
        """(weight, before, after, stats fields) for weights sharing one codebook; [] for all zeros.

        Everything runs a chunk at a time: no full-size mask, list of nonzeros or index array exists,
        so quantizing a 400 MB layer costs its output array and tens of MB (with ``overwrite``, not
        even the output).
        """
        arrays = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in arrays]
        pairs = list(zip(ws, arrays, strict=True))
        fitted = self._fit(ws, lambda: ((w, c) for w, a in pairs for c in flat_chunks(a)), options, path)
        if fitted is None:
            return []  # nothing but zeros: nothing to quantize
        done = []
        for w, a in pairs:
            stored = fitted.levels.astype(a.dtype)
            in_place = overwrite(a)
            new = a if in_place else np.zeros(a.shape, dtype=a.dtype)
            used = np.zeros(fitted.levels.size, dtype=np.int64)
            for c, out in zip(flat_chunks(a), flat_chunks(new), strict=True):
                idx = _assign(c, out, in_place, fitted, stored, options.method, rng)
                used += np.bincount(idx, minlength=fitted.levels.size)
            # Levels are distinct in a.dtype and, unless one underflowed, nonzero: then their
            # use counts give the stats without sorting the output again.
            done.append(
                (
                    w,
                    a,
                    new,
                    {
                        "after_profile": profile_from_counts(used, a.size) if stored.all() else None,
                        "method": options.method,
                        "k": options.k,
                        "levels": int(np.count_nonzero(used)),
                        "codebook": "",  # the caller's share key
                        "codebook_size": int(fitted.levels.size),
                        "mode": "exact" if fitted.grid is None else "histogram",
                        **fitted.extra,
                    },
                )
            )
        return done

    @staticmethod
    def _levels(
        pts: km.Points, o: Quantize.Options, dtype: np.dtype
    ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """Sorted levels (representable in ``dtype``, none 0), the breaks between them, extra stats."""
        extra: dict[str, float] = {}
        if o.method == "uniform":
            c = np.linspace(pts.lo, pts.hi, o.k)
        else:
            c = km.lloyd(pts, km.init_levels(pts, o.k, o.init), o.iters)
        if o.method == "pws":
            # Every value needs a level on each side for its rounding to be unbiased.
            c[0], c[-1] = pts.lo, pts.hi
        p = None
        if o.method == "ecsq":
            c, p = km.ecsq(pts, c, o.lam, o.iters)
            extra["ecsq_entropy_bits"] = km.entropy_bits(p)
        # Round to the weights' dtype before assigning, so that the assignment is nearest in the
        # values actually stored (and pws stays unbiased for them).
        c = km.nonzero_levels(c, pts).astype(dtype).astype(np.float64)
        if p is not None:
            c, p = _merge_equal(c, p)
            power = float(np.sum(pts.sums * pts.x) / pts.n) or 1.0
            keep, breaks = km.envelope(c, c * c + o.lam * power * -np.log2(p))
            return c[keep], breaks, extra
        c = np.unique(c)
        return c, (c[:-1] + c[1:]) / 2, extra


@dataclass(frozen=True)
class _Fitted:
    """A codebook: sorted levels (float64), the breaks between them, the histogram grid if any."""

    levels: np.ndarray
    breaks: np.ndarray
    grid: km.Grid | None
    extra: dict[str, float]


def _assign(
    c: np.ndarray,
    out: np.ndarray,
    in_place: bool,
    fitted: _Fitted,
    stored: np.ndarray,
    method: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Write the level of each nonzero of ``c`` into ``out`` (``c`` itself when in place); the level indices."""
    m = c != 0
    v = c[m]
    if method == "pws":
        idx = km.stochastic_round(v, fitted.levels, rng)
    else:
        idx = km.assign(v, fitted.breaks, fitted.grid)
    if in_place:
        out[~m] = 0  # -0.0 becomes 0.0, as in a fresh array
    out[m] = stored[idx]
    return idx


def _merge_equal(c: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge levels that became equal in the weights' dtype, adding their probabilities."""
    u, inv = np.unique(c, return_inverse=True)
    return u, np.bincount(inv, weights=p, minlength=u.size)
