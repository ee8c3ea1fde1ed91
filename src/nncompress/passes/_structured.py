"""The contract of the structured passes (lowrank, sss, dct, psm): fit a structured `Format` to
each selected weight's matrix and put it in the weight's slot.

Unlike prune and quantize, whose output is an array a storage format then encodes, these passes
choose the storage themselves: the fitted factors are what the artifact keeps.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nncompress.errors import UsageError
from nncompress.formats.base import Format
from nncompress.formats.shaped import Shaped, as_matrix2d, matrix_shape
from nncompress.ir import Graph
from nncompress.options import Options, option
from nncompress.passes._infra import Pass, PassResult, Select, selected, weight_stats

# Smallest side a structured format is used on: a bias seen as (1, n), or a 3x3 first conv, would
# cost more than it saves (rank 1 of a tiny matrix is over any budget).
MIN_SIDE = 16


@dataclass(frozen=True)
class BudgetOptions(Options):
    """The option every structured pass has: the share of a matrix's floats it may store."""

    budget: float = option(0.1, lo=0.0, hi=1.0, doc="share of the matrix's floats stored, in (0, 1]")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget <= 0:  # option() bounds are inclusive, and a budget of 0 would store nothing
            step = type(self).__qualname__.split("Pass.")[0].lower()
            raise UsageError(
                f"{step}: budget={self.budget!r} must be a fraction of the matrix size in (0, 1]"
            )


class Structured(Pass):
    """A pass whose output per weight is a fitted structured format (see the module docstring)."""

    name: ClassVar[str]
    Options: ClassVar[type[Options]]

    @classmethod
    @abstractmethod
    def fit(cls, w: np.ndarray, options: Any) -> Format:
        """The structured approximation of the 2-D matrix ``w`` (any real dtype; finite, or UsageError)."""

    @staticmethod
    def applies_to(shape: tuple[int, ...]) -> bool:
        """Whether a weight of ``shape`` is worth fitting (both matrix sides at least `MIN_SIDE`)."""
        return min(matrix_shape(shape)) >= MIN_SIDE

    def __call__(self, graph: Graph, options: Any, *, select: Select, rng: np.random.Generator) -> PassResult:
        g = graph.copy()
        stats = []
        for w in selected(graph, select):
            if w.size == 0 or not self.applies_to(w.shape):
                continue
            f = self.fit(np.ascontiguousarray(as_matrix2d(w.array), dtype=np.float32), options)
            if f.nbytes >= w.array.nbytes:
                continue  # the approximation would not save bytes: the weight stays as it is
            approx = f.to_dense().reshape(w.shape)
            g.weights[w.name].value = Shaped(f, w.shape, approx)
            stats.append(weight_stats(self.name, w, w.array, approx, format=f.name, bytes_after=f.nbytes))
        return PassResult(g, stats)
