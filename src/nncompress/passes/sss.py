"""``sss``: fit a sequentially semiseparable realization of each selected weight (the `SSS` format).

Each of the causal and anticausal parts is realized from the SVDs of its Hankel blocks (the strictly
lower block rows k..N x block columns 1..k-1), truncated to state dimension d with balanced factors
``O = U sqrt(S)``, ``R = sqrt(S) V^T``; C_k and B_k are block rows and columns of them and A_k follows
from shift invariance. With d at least the largest Hankel rank the realization is exact (up to float32).

Options: ``budget`` (default 0.1), ``blocks`` N and ``state`` d (default None: searched). The search
tries the three smallest powers of two N whose diagonal blocks fit (or the given N), for each the
largest d within ``budget * out * in`` floats (or the given d), and keeps the lowest error; when nothing
fits (tiny matrices) it takes the configuration with the fewest floats.
Example: ``nncompress compress model.onnx --pipeline sss:budget=0.2``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from nncompress.formats.base import as_matrix
from nncompress.formats.sss import SSS, block_sizes
from nncompress.options import option
from nncompress.passes._structured import BudgetOptions, Structured


def parameter_count(shape: tuple[int, int], n: int, d: int) -> int:
    """Floats an `SSS` of N blocks and state dimension d stores (see formats/sss.py's docstring)."""
    rs, cs = block_sizes(shape[0], n), block_sizes(shape[1], n)
    return int(
        2 * max(n - 2, 0) * d * d
        + d * (2 * shape[0] - rs[0] - rs[-1])
        + d * (2 * shape[1] - cs[0] - cs[-1])
        + int(np.sum(rs * cs))
    )


def _largest_state(shape: tuple[int, int], n: int, limit: float) -> int:
    """The largest d whose float count fits ``limit`` (-1 if not even d = 0 does)."""
    if parameter_count(shape, n, 0) > limit:
        return -1
    lo, hi = 0, min(shape)  # d beyond min(out, in) never lowers the error
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if parameter_count(shape, n, mid) <= limit else (lo, mid - 1)
    return lo


# The Hankel blocks' SVDs, by content. A budget search fits each tensor at every budget it tries,
# and where the state d is a large share of a block's rank (few blocks), the blocks' full SVDs are
# what the budgets share. Kept least recently used first out; the search visits one tensor at a time.
SVD_CACHE_BYTES = 256 << 20
_svds: OrderedDict[tuple[bytes, bool, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
_svd_lock = threading.Lock()
# Where d is small against the block (many blocks: the budget goes to stage overhead), the top d
# triplets come from the smaller Gram matrix's top eigenpairs: 12x faster than the full SVD on a
# 2048 x 4608 block at d = 8 (numpy's SVD took 87 % of nudenet's sss search), the same to ~1e-13.
# Not where the d-th singular value is below GRAM_FLOOR of the first: squaring loses it.
GRAM_SHARE = 8
GRAM_FLOOR = 1e-4


def _top(
    key: tuple[bytes, bool, int, int], h: np.ndarray, q: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u (a, <= q), s, vt of h's largest singular triplets (all of them where q is not small)."""
    a, b = h.shape
    if GRAM_SHARE * q <= min(a, b) and q > 0:
        wide = a <= b
        g = h @ h.T if wide else h.T @ h
        m = g.shape[0]
        lam, vec = scipy.linalg.eigh(g, subset_by_index=[m - q, m - 1])
        lam, vec = lam[::-1], vec[:, ::-1]
        if lam[0] > 0 and lam[-1] >= lam[0] * GRAM_FLOOR**2:
            s = np.sqrt(lam)
            if wide:
                return vec, s, (h.T @ vec / s).T
            return h @ vec / s, s, vec.T
    return _svd(key, h)


def _svd(key: tuple[bytes, bool, int, int], h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with _svd_lock:
        hit = _svds.get(key)
        if hit is not None:
            _svds.move_to_end(key)
            return hit
    u, s, vt = np.linalg.svd(h, full_matrices=False)
    made = (u, s, vt)
    for x in made:
        x.flags.writeable = False  # shared by every fit of this block
    size = sum(x.nbytes for x in made)
    if size <= SVD_CACHE_BYTES:
        with _svd_lock:
            _svds[key] = made
            held = sum(x.nbytes for v in _svds.values() for x in v)
            while held > SVD_CACHE_BYTES:
                _, gone = _svds.popitem(last=False)
                held -= sum(x.nbytes for x in gone)
    return made


def _realize(
    t: np.ndarray, rs: np.ndarray, cs: np.ndarray, d: int, key: tuple[bytes, bool]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Causal stages (A_2..A_{N-1}, C_2..C_N stacked, B_1..B_{N-1} side by side) of t's strictly
    lower blocks; ``key`` names t (and its direction) for the SVD cache."""
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
        u, s, vt = _top((*key, n, k), h, d)
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


def realize(w: np.ndarray, n: int, d: int) -> SSS:
    """The SSS of the float64 matrix ``w`` with N = n blocks and state dimension d."""
    rs, cs = block_sizes(w.shape[0], n), block_sizes(w.shape[1], n)
    digest = hashlib.blake2b(np.ascontiguousarray(w).data, digest_size=20)
    digest.update(repr((w.shape, w.dtype.str)).encode())
    al, cl, bl = _realize(w, rs, cs, d, (digest.digest(), False))
    # The anticausal part is the causal realization of the block-reversed matrix.
    au, cu, bu = _realize(w[::-1, ::-1], rs[::-1], cs[::-1], d, (digest.digest(), True))
    r0, c0 = np.cumsum(rs) - rs, np.cumsum(cs) - cs
    diag = [w[r0[k] : r0[k] + rs[k], c0[k] : c0[k] + cs[k]].ravel() for k in range(n)]
    stages = {"al": al, "cl": cl, "bl": bl, "au": au, "cu": cu, "bu": bu, "d": np.concatenate(diag)}
    return SSS(w.shape, n, d, {k: v.astype(np.float32) for k, v in stages.items()})


class SSSPass(Structured):
    """Sequentially semiseparable stages within a parameter budget (see the module docstring)."""

    name = "sss"

    @dataclass(frozen=True)
    class Options(BudgetOptions):
        blocks: int | None = option(
            None, lo=1, doc="number of blocks N (capped at min(out, in)); none: searched"
        )
        state: int | None = option(
            None, lo=0, doc="state dimension d (capped at min(out, in)); none: searched"
        )

    @classmethod
    def fit(cls, w: np.ndarray, options: SSSPass.Options) -> SSS:
        budget = options.budget
        a = as_matrix(w, cls.name, finite=True).astype(np.float64)
        top = max(1, min(a.shape))
        if options.blocks is not None:
            ns = [min(int(options.blocks), top)]
        else:
            grid = sorted({min(2**i, top) for i in range(top.bit_length() + 1)})
            # More blocks than the first few that fit only spend the budget on stage overhead.
            fits = [n for n in grid if parameter_count(a.shape, n, 0) <= budget * a.size]
            ns = fits[:3] or grid[-1:]
        ds: list[int] | None = None
        if options.state is not None:
            ds = [min(int(options.state), min(a.shape))]
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
                f = realize(a, n, d)
                err = float(np.sum((f.to_dense() - a) ** 2))
                if best is None or err < best[0]:
                    best = (err, count, f)
        if best is not None:
            return best[2]
        assert fewest is not None
        return realize(a, fewest[1], fewest[2])
