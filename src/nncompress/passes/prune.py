"""Magnitude pruning: set the weights of smallest absolute value to exactly zero.

Han, Pool, Tran & Dally 2015, "Learning both Weights and Connections for Efficient Neural
Networks". Example: ``nncompress compress model.h5 --pipeline prune:sparsity=0.9``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nncompress.ir import Graph
from nncompress.passes._infra import Pass, PassOptions, PassResult, Select, option, selected, weight_stats


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

    def __call__(
        self, graph: Graph, options: Prune.Options, *, select: Select, rng: np.random.Generator
    ) -> PassResult:
        ws = selected(graph, select)
        out = graph.copy()
        arrays = [w.array for w in ws]
        masks: list[np.ndarray] = []
        thresholds: list[float] = []
        if options.scope == "layer":
            for a in arrays:
                m, t = smallest(np.abs(a).ravel(), round(options.sparsity * a.size))
                masks.append(m)
                thresholds.append(t)
        elif arrays:
            mags = np.concatenate([np.abs(a).ravel() for a in arrays])
            m, t = smallest(mags, round(options.sparsity * mags.size))
            cuts = np.cumsum([a.size for a in arrays])[:-1]
            masks = list(np.split(m, cuts))
            thresholds = [t] * len(arrays)
        stats = []
        for w, a, m, t in zip(ws, arrays, masks, thresholds, strict=True):
            new = a.copy()  # C order, so reshape(-1) is a view
            new.reshape(-1)[m] = 0
            out.weights[w.name].value = new
            stats.append(weight_stats(self.name, w, a, new, scope=options.scope, threshold=t))
        return PassResult(out, stats)
