"""1-D clustering maths: exact Lloyd against brute force, histogram mode, ECSQ, assignment, rounding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nncompress.passes import _kmeans1d as km


def brute_lloyd(x: np.ndarray, c: np.ndarray, iters: int) -> np.ndarray:
    """Textbook Lloyd: full distance matrix, argmin (first on ties), means; empty clusters stay."""
    c = c.astype(np.float64).copy()
    for _ in range(iters):
        lab = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
        for j in range(c.size):
            if (lab == j).any():
                c[j] = x[lab == j].mean()
    return np.sort(c)


def sample(n: int, seed: int = 0) -> np.ndarray:
    """Weight-like values: a Laplace bulk with a few wide outliers."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.laplace(0, 0.05, n - n // 50), rng.normal(0, 0.5, n // 50)]).astype(np.float32)


@pytest.mark.parametrize("init", ["linear", "quantile", "density"])
def test_lloyd_equals_brute_force_iteration_by_iteration(init: str) -> None:
    x = np.sort(sample(400).astype(np.float64))
    pts = km.condense(x, bins=0)
    c0 = km.init_levels(pts, 7, init)
    for t in range(0, 25, 3):
        np.testing.assert_allclose(km.lloyd(pts, c0, t), brute_lloyd(x, c0, t), rtol=0, atol=1e-12)


def test_lloyd_sse_never_increases_and_converges() -> None:
    v = sample(5000, seed=1)
    pts = km.condense(v, bins=0)
    c0 = km.init_levels(pts, 16, "linear")
    curve = [km.sse(v, km.lloyd(pts, c0, t)) for t in range(0, 200, 10)]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(curve))
    assert curve[-1] < 0.5 * curve[0]
    assert np.array_equal(km.lloyd(pts, c0, 10_000), km.lloyd(pts, c0, 20_000))  # a fixed point


def test_condense_counts_duplicates() -> None:
    pts = km.condense(np.array([3.0, 1.0, 3.0, 2.0, 3.0], np.float32), bins=0)
    np.testing.assert_array_equal(pts.x, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.diff(pts.cnt), [1, 1, 3])
    np.testing.assert_array_equal(pts.sums, [1.0, 2.0, 9.0])
    assert (pts.n, pts.lo, pts.hi, pts.grid) == (5, 1.0, 3.0, None)


def test_histogram_mode_is_close_to_exact_on_a_big_array() -> None:
    v = sample(1_000_000, seed=2)
    exact = km.condense(v, bins=0)
    hist = km.condense(v, bins=1 << 16)  # 15 values per bin on average: coarse on purpose
    assert hist.grid is not None and hist.x.size <= 1 << 16 and hist.n == v.size
    assert (hist.lo, hist.hi) == (exact.lo, exact.hi)
    ce = km.lloyd(exact, km.init_levels(exact, 32, "linear"), 300)
    ch = km.lloyd(hist, km.init_levels(hist, 32, "linear"), 300)
    # Lloyd's fixed points are flat: centroids drift apart a little, the error barely moves.
    assert np.abs(ce - ch).max() < 2e-3 * (exact.hi - exact.lo)
    assert km.sse(v, ch) == pytest.approx(km.sse(v, ce), rel=2e-3)


def test_grid_assignment_equals_full_search() -> None:
    v = sample(300_000, seed=3)
    pts = km.condense(v, bins=1 << 12)
    c = km.lloyd(pts, km.init_levels(pts, 20, "quantile"), 50)
    breaks = (c[:-1] + c[1:]) / 2
    # Put breaks exactly on values and on bin edges too: the hard cases for the lookup table.
    breaks = np.sort(
        np.concatenate([breaks, v[:5].astype(np.float64), pts.grid.lo + np.arange(1, 6) / pts.grid.scale])
    )
    np.testing.assert_array_equal(km.assign(v, breaks, pts.grid), km.assign(v, breaks))
    np.testing.assert_array_equal(
        km.assign(v, breaks), np.searchsorted(breaks, v.astype(np.float64), side="left")
    )


def test_inits() -> None:
    v = np.arange(1, 1001, dtype=np.float32)
    pts = km.condense(v, bins=0)
    np.testing.assert_allclose(km.init_levels(pts, 5, "linear"), np.linspace(1, 1000, 5))
    q = km.init_levels(pts, 4, "quantile")
    np.testing.assert_allclose(q, [125, 375, 625, 875], atol=1)  # centres of four equal-mass slices
    d = km.init_levels(pts, 4, "density")
    assert (d[0], d[-1]) == (1, 1000)  # Han et al.: the CDF spaced linearly, ends included
    np.testing.assert_allclose(d, [1, 334, 667, 1000], atol=1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-3, 3), st.floats(0, 5)), min_size=1, max_size=12), st.floats(-4, 4))
def test_envelope_picks_the_cheapest_line(lines: list[tuple[float, float]], x: float) -> None:
    c = np.array(sorted(a for a, _ in lines))
    d = np.array([b for _, b in sorted(lines)])
    keep, breaks = km.envelope(c, d)
    cost = d - 2 * c * x
    j = keep[np.searchsorted(breaks, x, side="left")]
    assert cost[j] <= cost.min() + 1e-9


def test_ecsq_objective_never_increases_and_lam_zero_is_kmeans() -> None:
    v = sample(20_000, seed=4)
    pts = km.condense(v, bins=0)
    c0 = km.lloyd(pts, km.init_levels(pts, 16, "linear"), 500)
    c, p = km.ecsq(pts, c0, 0.0, 50)
    np.testing.assert_allclose(c, c0[np.isin(c0, c)], rtol=1e-12)
    curve = []
    for t in range(0, 40, 4):
        c, p = km.ecsq(pts, c0, 0.3, t)
        curve.append(km.ecsq_objective(v, c, p, 0.3))
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(curve))
    assert curve[-1] < curve[0]


def test_ecsq_entropy_falls_as_lam_grows() -> None:
    v = sample(50_000, seed=5)
    pts = km.condense(v, bins=0)
    c0 = km.lloyd(pts, km.init_levels(pts, 32, "linear"), 500)
    h = [km.entropy_bits(km.ecsq(pts, c0, lam, 200)[1]) for lam in (0.0, 0.01, 0.05, 0.2, 1.0)]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(h)), h
    assert h[-1] < h[0] - 1.0


def test_stochastic_round_is_unbiased_and_stays_between_neighbours() -> None:
    levels = np.array([-1.0, -0.2, 0.3, 1.0])
    v = np.array([-1.0, -0.6, 0.0, 0.29, 0.9, 1.0], np.float32)
    reps = 40_000
    idx = km.stochastic_round(np.tile(v, reps), levels, np.random.default_rng(0)).reshape(reps, -1)
    q = levels[idx]
    sd = np.sqrt(((q - v) ** 2).mean(0) / reps)  # standard error of the mean, per value
    assert (np.abs(q.mean(0) - v.astype(np.float64)) <= 5 * sd + 1e-12).all()
    lo = levels[np.clip(np.searchsorted(levels, v, "right") - 1, 0, 2)]
    assert ((q >= lo) & (q <= levels[np.searchsorted(levels, lo) + 1])).all()
    assert (q[:, 0] == -1).all() and (q[:, -1] == 1).all()  # values on a level stay there


def test_nonzero_levels_moves_a_zero_level_into_its_own_cluster() -> None:
    v = np.array([-1.0, -0.9, -0.01, 0.02, 0.9, 1.0])
    pts = km.condense(v, bins=0)
    lv = km.nonzero_levels(np.array([-0.95, 0.0, 0.95]), pts)
    np.testing.assert_array_equal(lv, [-0.95, -0.01, 0.95])


@pytest.mark.parametrize("bins", [0, 8, 1 << 12])
def test_condense_chunks_equals_condense_of_the_concatenation(bins: int) -> None:
    # 7 ragged pieces, some empty: exact below 2*bins values (and for bins=0), a histogram above.
    v = sample(5_000, seed=4)
    cuts = [0, 0, 10, 999, 999, 2500, 4990, 5_000]
    calls = []

    def chunks() -> list[np.ndarray]:
        calls.append(1)
        return [v[a:b] for a, b in itertools.pairwise(cuts)]

    got, want = km.condense_chunks(chunks, bins), km.condense(v, bins)
    assert (got.n, got.lo, got.hi, got.grid) == (want.n, want.lo, want.hi, want.grid)
    np.testing.assert_array_equal(got.cnt, want.cnt)
    np.testing.assert_allclose(got.x, want.x, rtol=1e-12)  # bin sums add in another order
    assert len(calls) == (1 if bins == 0 or v.size <= 2 * bins else 2)
    with pytest.raises(ValueError, match="no values"):
        km.condense_chunks(lambda: [v[:0]], bins)
