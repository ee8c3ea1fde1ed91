"""``lowrank``: fit a truncated SVD W ~ A @ B to each selected weight (stored as the `LowRank` format).

Without ``rank``, the largest rank r with ``r * (out + in) <= budget * out * in`` is kept (at least 1,
so a matrix too small for the budget still gets rank 1); with it, exactly ``rank`` (at most min(out, in)).
The singular values are split evenly, ``A = U sqrt(S)`` and ``B = sqrt(S) V^T``, so both factors have
the same scale. Example: ``nncompress compress model.onnx --pipeline lowrank:budget=0.05``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nncompress.formats.base import as_matrix
from nncompress.formats.lowrank import LowRank
from nncompress.options import option
from nncompress.passes._structured import BudgetOptions, Structured


class LowRankPass(Structured):
    """Truncated SVD factors within a parameter budget (see the module docstring)."""

    name = "lowrank"

    @dataclass(frozen=True)
    class Options(BudgetOptions):
        rank: int | None = option(None, lo=1, doc="exact rank (capped at min(out, in)); none: the budget's")

    @classmethod
    def fit(cls, w: np.ndarray, options: LowRankPass.Options) -> LowRank:
        a = as_matrix(w, cls.name, finite=True)
        out, n_in = a.shape
        full = min(out, n_in)
        if options.rank is not None:
            r = min(int(options.rank), full)
        else:
            r = min(max(1, int(options.budget * out * n_in // max(out + n_in, 1))), full)
        if r == 0:
            return LowRank(a.shape, np.zeros((out, 0), np.float32), np.zeros((0, n_in), np.float32))
        u, s, vt = np.linalg.svd(a.astype(np.float64), full_matrices=False)
        root = np.sqrt(s[:r])
        return LowRank(
            a.shape, (u[:, :r] * root).astype(np.float32), (root[:, None] * vt[:r]).astype(np.float32)
        )
