"""``sss``: a sequentially semiseparable matrix, the time-varying system realization of W.

Rows are split into N blocks of sizes n_k and columns into N blocks m_k (``numpy.array_split``). With
x_k the k-th input block and y_k the k-th output block, ``y_k = D_k x_k + causal_k + anticausal_k``, where
the causal part runs a state of dimension d forward, ``h_2 = B_1 x_1``, ``h_{k+1} = A_k h_k + B_k x_k``,
``causal_k = C_k h_k``, and the anticausal part is the same recursion run backward from block N. The
stages are fitted (from the SVDs of the Hankel blocks, within a parameter budget) by `nncompress.passes.sss`.

Only the stage matrices a recursion uses are stored (C_1, B_N and the boundary A_1, A_N are zero for the
causal part, mirrored for the anticausal one), so the float count is
``2 (N - 2) d^2 + d (2 out - n_1 - n_N) + d (2 in - m_1 - m_N) + sum_k n_k m_k``, a little below the
textbook ``sum_k [2 d^2 + 2 n_k d + 2 d m_k + n_k m_k]``.

Arrays, all float32: causal ``al`` (N-2, d, d), ``cl`` (out - n_1, d) = C_2..C_N stacked,
``bl`` (d, in - m_N) = B_1..B_{N-1} side by side; anticausal ``au``, ``cu`` (out - n_N, d), ``bu``
(d, in - m_1), realized on the block-reversed matrix in its own (reversed) order; ``d`` the diagonal blocks
D_1..D_N, each row-major, concatenated. Meta: ``shape``, ``blocks`` (N), ``state`` (d).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from nncompress.formats.base import (
    Format,
    as_input,
    as_output,
    check_keys,
    float_array,
    meta_int,
    meta_shape,
)


def block_sizes(total: int, n: int) -> np.ndarray:
    """The sizes of ``numpy.array_split(range(total), n)``."""
    return np.array([len(s) for s in np.array_split(np.arange(total), n)], dtype=np.int64)


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


def _causal_dense(a: np.ndarray, c: np.ndarray, b: np.ndarray, rs: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """The causal part as a dense (out, in) matrix: `_sweep` run on the state's map from the input,
    d x in, instead of on an in x in identity (a 1024 x 9216 kernel's eye is 680 MB, and applying
    the stages to it was 96 % of megnet's sss search)."""
    n = rs.size
    r0, c0 = np.concatenate([[0], np.cumsum(rs)]), np.concatenate([[0], np.cumsum(cs)])
    out = np.zeros((int(r0[-1]), int(c0[-1])))
    if n < 2 or b.shape[0] == 0:
        return out
    state = np.zeros((b.shape[0], int(c0[-1])))  # h as a linear map of x
    state[:, : c0[1]] = b[:, : c0[1]]
    for k in range(1, n):
        out[r0[k] : r0[k + 1], : c0[k]] = c[r0[k] - rs[0] : r0[k + 1] - rs[0]] @ state[:, : c0[k]]
        if k < n - 1:
            state[:, : c0[k]] = a[k - 1] @ state[:, : c0[k]]
            state[:, c0[k] : c0[k + 1]] = b[:, c0[k] : c0[k + 1]]
    return out


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

    def to_dense(self) -> np.ndarray:
        s, rs, cs = self._stages64(), self._rs, self._cs
        w = _causal_dense(s["al"], s["cl"], s["bl"], rs, cs)
        w += _causal_dense(s["au"], s["cu"], s["bu"], rs[::-1], cs[::-1])[::-1, ::-1]
        for rows, cols, blk in self._diagonal(s["d"]):
            w[rows, cols] += blk
        return w.astype(np.float32)

    def _apply(self, xb: np.ndarray) -> np.ndarray:
        """``xb @ W.T`` in float64."""
        s, rs, cs = self._stages64(), self._rs, self._cs
        y = _sweep(xb, s["al"], s["cl"], s["bl"], rs, cs)
        y += _sweep(xb[:, ::-1], s["au"], s["cu"], s["bu"], rs[::-1], cs[::-1])[:, ::-1]
        for rows, cols, blk in self._diagonal(s["d"]):
            y[:, rows] += xb[:, cols] @ blk.T
        return y

    def _stages64(self) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float64) for k, v in self.stages.items()}

    def _diagonal(self, d: np.ndarray) -> Iterator[tuple[slice, slice, np.ndarray]]:
        """Each diagonal block D_k: its rows, its columns and the block, from the concatenated ``d``."""
        rs, cs = self._rs, self._cs
        r0, c0, o = np.cumsum(rs) - rs, np.cumsum(cs) - cs, 0
        for k in range(self.blocks):
            yield (
                slice(r0[k], r0[k] + rs[k]),
                slice(c0[k], c0[k] + cs[k]),
                d[o : o + rs[k] * cs[k]].reshape(rs[k], cs[k]),
            )
            o += rs[k] * cs[k]

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
