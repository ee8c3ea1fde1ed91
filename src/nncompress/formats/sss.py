"""``sss``: a sequentially semiseparable matrix, the time-varying system realization of W.

Rows are split into N blocks of sizes n_k and columns into N blocks m_k (``numpy.array_split``). With
x_k the k-th input block and y_k the k-th output block, ``y_k = D_k x_k + causal_k + anticausal_k``, where
the causal part runs a state forward, ``h_2 = B_1 x_1``, ``h_{k+1} = A_k h_k + B_k x_k``, ``causal_k =
C_k h_k``, and the anticausal part is the same recursion run backward from block N. Each part is realized
from the SVDs of its Hankel blocks (the strictly lower block rows k..N x block columns 1..k-1), truncated
to state dimension d with balanced factors ``O = U sqrt(S)``, ``R = sqrt(S) V^T``; C_k and B_k are block
rows and columns of them and A_k follows from shift invariance. With d at least the largest Hankel rank
the realization is exact (up to float32).

Only the stage matrices a recursion uses are stored (C_1, B_N and the boundary A_1, A_N are zero for the
causal part, mirrored for the anticausal one), so the float count is
``2 (N - 2) d^2 + d (2 out - n_1 - n_N) + d (2 in - m_1 - m_N) + sum_k n_k m_k``, a little below the
textbook ``sum_k [2 d^2 + 2 n_k d + 2 d m_k + n_k m_k]``.

Arrays, all float32: causal ``al`` (N-2, d, d), ``cl`` (out - n_1, d) = C_2..C_N stacked,
``bl`` (d, in - m_N) = B_1..B_{N-1} side by side; anticausal ``au``, ``cu`` (out - n_N, d), ``bu``
(d, in - m_1), realized on the block-reversed matrix in its own (reversed) order; ``d`` the diagonal blocks
D_1..D_N, each row-major, concatenated. Meta: ``shape``, ``blocks`` (N), ``state`` (d).

``encode(w, budget=0.1, blocks=None, state=None)`` tries the three smallest powers of two N whose diagonal
blocks fit (or the given N), for each the largest d within ``budget * out * in`` floats, and keeps the lowest error; when nothing fits
(tiny matrices) it takes the configuration with the fewest floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.formats._lowparam import check_budget, check_count
from nncompress.formats.base import (
    Format,
    as_input,
    as_matrix,
    as_output,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
    take_params,
)


def block_sizes(total: int, n: int) -> np.ndarray:
    """The sizes of ``numpy.array_split(range(total), n)``."""
    return np.array([len(s) for s in np.array_split(np.arange(total), n)], dtype=np.int64)


def parameter_count(shape: tuple[int, int], n: int, d: int) -> int:
    """Floats stored for N blocks and state dimension d (see the module docstring)."""
    rs, cs = block_sizes(shape[0], n), block_sizes(shape[1], n)
    return int(
        2 * max(n - 2, 0) * d * d
        + d * (2 * shape[0] - rs[0] - rs[-1])
        + d * (2 * shape[1] - cs[0] - cs[-1])
        + int(np.sum(rs * cs))
    )


def _realize(
    t: np.ndarray, rs: np.ndarray, cs: np.ndarray, d: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Causal stages (A_2..A_{N-1}, C_2..C_N stacked, B_1..B_{N-1} side by side) of t's strictly lower blocks."""
    n = rs.size
    r0, c0 = np.concatenate([[0], np.cumsum(rs)]), np.concatenate([[0], np.cumsum(cs)])
    a = np.zeros((max(n - 2, 0), d, d))
    c = np.zeros((int(r0[-1] - rs[0]), d))
    b = np.zeros((d, int(c0[-1] - cs[-1])))
    prev_r: np.ndarray | None = None
    if d == 0:
        return a, c, b
    for k in range(1, n):  # Hankel block of stage k (0-based): rows of blocks k.., columns of blocks ..k-1
        h = t[r0[k] :, : c0[k]]
        u, s, vt = np.linalg.svd(h, full_matrices=False)
        q = min(d, s.size)
        root = np.sqrt(s[:q])
        obs = np.zeros((h.shape[0], d))
        rch = np.zeros((d, h.shape[1]))
        obs[:, :q], rch[:q] = u[:, :q] * root, root[:, None] * vt[:q]
        c[r0[k] - rs[0] : r0[k + 1] - rs[0]] = obs[: rs[k]]
        b[:, c0[k - 1] : c0[k]] = rch[:, c0[k - 1] :]
        if prev_r is not None:  # shift invariance: R_k = [A_{k-1} R_{k-1}, B_{k-1}]
            a[k - 2] = rch[:, : c0[k - 1]] @ np.linalg.pinv(prev_r)
        prev_r = rch
    return a, c, b


def _sweep(
    x: np.ndarray, a: np.ndarray, c: np.ndarray, b: np.ndarray, rs: np.ndarray, cs: np.ndarray
) -> np.ndarray:
    """The causal part ``y`` (batch, out) of a realization applied to x (batch, in), one forward pass."""
    n = rs.size
    r0, c0 = np.concatenate([[0], np.cumsum(rs)]), np.concatenate([[0], np.cumsum(cs)])
    y = np.zeros((x.shape[0], int(r0[-1])))
    if n < 2 or b.shape[0] == 0:
        return y
    h = x[:, : c0[1]] @ b[:, : c0[1]].T
    for k in range(1, n):
        y[:, r0[k] : r0[k + 1]] = h @ c[r0[k] - rs[0] : r0[k + 1] - rs[0]].T
        if k < n - 1:
            h = h @ a[k - 1].T + x[:, c0[k] : c0[k + 1]] @ b[:, c0[k] : c0[k + 1]].T
    return y


class SSS(Format):
    """Sequentially semiseparable stages."""

    name = "sss"

    def __init__(
        self, shape: tuple[int, int], blocks: int, state: int, stages: dict[str, np.ndarray]
    ) -> None:
        super().__init__(shape)
        self.blocks, self.state, self.stages = blocks, state, stages
        self._rs, self._cs = block_sizes(shape[0], blocks), block_sizes(shape[1], blocks)

    @property
    def parameters(self) -> int:
        """Stored float count."""
        return int(sum(v.size for v in self.stages.values()))

    @classmethod
    def _build(cls, w: np.ndarray, n: int, d: int) -> SSS:
        rs, cs = block_sizes(w.shape[0], n), block_sizes(w.shape[1], n)
        al, cl, bl = _realize(w, rs, cs, d)
        au, cu, bu = _realize(w[::-1, ::-1], rs[::-1], cs[::-1], d)
        r0, c0 = np.cumsum(rs) - rs, np.cumsum(cs) - cs
        diag = [w[r0[k] : r0[k] + rs[k], c0[k] : c0[k] + cs[k]].ravel() for k in range(n)]
        stages = {"al": al, "cl": cl, "bl": bl, "au": au, "cu": cu, "bu": bu, "d": np.concatenate(diag)}
        return cls(w.shape, n, d, {k: v.astype(np.float32) for k, v in stages.items()})

    @classmethod
    def encode(cls, w: np.ndarray, **params: Any) -> SSS:
        p = take_params(cls.name, params, budget=0.1, blocks=None, state=None)
        budget = check_budget(cls.name, p["budget"])
        a = as_matrix(w, cls.name, finite=True).astype(np.float64)
        top = max(1, min(a.shape))
        if p["blocks"] is not None:
            ns = [min(check_count(cls.name, "blocks", p["blocks"]), top)]
        else:
            grid = sorted({min(2**i, top) for i in range(top.bit_length() + 1)})
            # More blocks than the first few that fit only spend the budget on stage overhead.
            fits = [n for n in grid if parameter_count(a.shape, n, 0) <= budget * a.size]
            ns = fits[:3] or grid[-1:]
        ds: list[int] | None = None
        if p["state"] is not None:
            ds = [min(check_count(cls.name, "state", p["state"], lo=0), min(a.shape))]
        limit = budget * a.size
        best: tuple[float, int, SSS] | None = None
        fewest: tuple[int, int, int] | None = None
        for n in ns:
            cands = ds if ds is not None else [max(0, _largest_state(a.shape, n, limit))]
            for d in cands:
                count = parameter_count(a.shape, n, d)
                if fewest is None or count < fewest[0]:
                    fewest = (count, n, d)
                if count > limit and (ds is None or len(ns) > 1):
                    continue
                if d == 0 and ds is None and best is not None and best[2].state == 0:
                    continue  # block diagonal only: more blocks only drop more of W
                f = cls._build(a, n, d)
                err = float(np.sum((f.to_dense() - a) ** 2))
                if best is None or err < best[0]:
                    best = (err, count, f)
        if best is not None:
            return best[2]
        assert fewest is not None
        return cls._build(a, fewest[1], fewest[2])

    def to_dense(self) -> np.ndarray:
        return self._apply(np.eye(self.shape[1])).T.astype(np.float32)

    def _apply(self, xb: np.ndarray) -> np.ndarray:
        """``xb @ W.T`` in float64."""
        s, rs, cs = {k: v.astype(np.float64) for k, v in self.stages.items()}, self._rs, self._cs
        y = _sweep(xb, s["al"], s["cl"], s["bl"], rs, cs)
        y += _sweep(xb[:, ::-1], s["au"], s["cu"], s["bu"], rs[::-1], cs[::-1])[:, ::-1]
        r0, c0, o = np.cumsum(rs) - rs, np.cumsum(cs) - cs, 0
        for k in range(self.blocks):
            blk = s["d"][o : o + rs[k] * cs[k]].reshape(rs[k], cs[k])
            y[:, r0[k] : r0[k] + rs[k]] += xb[:, c0[k] : c0[k] + cs[k]] @ blk.T
            o += rs[k] * cs[k]
        return y

    def dot(self, x: np.ndarray) -> np.ndarray:
        xb, single = as_input(x, self)
        return as_output(self._apply(xb), single)

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.stages)

    def meta(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "blocks": self.blocks, "state": self.state}

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> SSS:
        check_keys(arrays, meta, {"al", "cl", "bl", "au", "cu", "bu", "d"}, {"shape", "blocks", "state"})
        out, n_in = shape = meta_shape(meta)
        n = meta_int(meta, "blocks", 1, max(1, min(shape)))
        d = meta_int(meta, "state", 0, min(shape))
        rs, cs = block_sizes(out, n), block_sizes(n_in, n)
        want = {
            "al": (max(n - 2, 0), d, d),
            "au": (max(n - 2, 0), d, d),
            "cl": (out - int(rs[0]), d),
            "cu": (out - int(rs[-1]), d),
            "bl": (d, n_in - int(cs[-1])),
            "bu": (d, n_in - int(cs[0])),
            "d": (int(np.sum(rs * cs)),),
        }
        stages = {k: float_array(arrays, k, v, finite=True) for k, v in want.items()}
        return cls(shape, n, d, stages)


def _largest_state(shape: tuple[int, int], n: int, limit: float) -> int:
    """The largest d whose float count fits ``limit`` (-1 if not even d = 0 does)."""
    if parameter_count(shape, n, 0) > limit:
        return -1
    lo, hi = 0, min(shape)  # d beyond min(out, in) never lowers the error
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if parameter_count(shape, n, mid) <= limit else (lo, mid - 1)
    return lo
