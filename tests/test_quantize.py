"""Weight sharing: zeros kept, at most k levels, shared codebooks, unbiased pws, ECSQ, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nncompress.errors import UnsupportedError
from nncompress.ir import Graph
from nncompress.passes import PassResult, Prune, Quantize, default_select, run_pipeline
from nncompress.passes import _kmeans1d as km
from nncompress.summary import value_stats

from .conftest import snapshot, tiny_model

KERNELS = ("conv.w", "fc1.w", "fc2.w", "emb.table")
METHODS = ("uniform", "kmeans", "pws", "ecsq")


def quantize(g: Graph, seed: int = 0, **opts: object) -> PassResult:
    return Quantize()(g, Quantize.Options(**opts), select=default_select, rng=np.random.default_rng(seed))  # type: ignore[arg-type]


def pruned(sparsity: float = 0.6) -> Graph:
    g = tiny_model()
    return Prune()(g, Prune.Options(sparsity), select=default_select, rng=np.random.default_rng(0)).graph


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [2, 5, 16])
def test_zeros_stay_zero_and_at_most_k_nonzero_levels(method: str, k: int) -> None:
    g = pruned()
    before = snapshot(g)
    res = quantize(g, method=method, k=k)
    assert snapshot(g) == before  # the input graph is untouched
    for name, s in zip(KERNELS, res.stats, strict=True):
        a, q = g.weights[name].array, res.graph.weights[name].array
        vs = value_stats([q])  # the pass counts levels instead of sorting: same figures
        assert (s["sparsity_after"], s["distinct_after"]) == (vs["sparsity"], vs["distinct"])
        assert s["entropy_after"] == pytest.approx(vs["entropy_bits"], abs=1e-12)
        assert q.dtype == a.dtype and q.shape == a.shape
        np.testing.assert_array_equal(q == 0, a == 0)  # no zero lost, none made
        assert 1 <= np.unique(q[q != 0]).size <= k
    for name in ("conv.b", "fc1.b", "bn.g", "bn.b", "bn.m", "bn.v", "shape"):
        assert res.graph.weights[name].array.tobytes() == before[name]


@pytest.mark.parametrize("method", ["uniform", "kmeans", "ecsq"])
def test_each_weight_goes_to_its_nearest_or_cheapest_level(method: str) -> None:
    g = tiny_model()
    res = quantize(g, method=method, k=8, lam=0.05)
    for s in res.stats:
        a = g.weights[s["weight"]].array.astype(np.float64)
        q = res.graph.weights[s["weight"]].array.astype(np.float64)
        levels = np.unique(q)
        if method != "ecsq":  # ECSQ trades distance for bits, so a farther level may win
            best = np.abs(a[..., None] - levels).min(-1)
            np.testing.assert_allclose(np.abs(a - q), best, atol=1e-7)
        assert s["levels"] == levels.size and s["rel_error"] > 0


def test_kmeans_levels_are_lloyd_centroids() -> None:
    g = tiny_model()
    res = quantize(g, method="kmeans", k=6, init="quantile", iters=300)
    a = g.weights["fc1.w"].array
    pts = km.condense(a[a != 0], bins=0)
    c = km.lloyd(pts, km.init_levels(pts, 6, "quantile"), 300)
    np.testing.assert_array_equal(
        np.unique(res.graph.weights["fc1.w"].array), np.unique(c.astype(np.float32))
    )


def test_uniform_levels_are_evenly_spaced_over_the_range() -> None:
    g = tiny_model()
    q = quantize(g, method="uniform", k=9).graph.weights["emb.table"].array
    a = g.weights["emb.table"].array
    lv = np.unique(q).astype(np.float64)
    assert (lv[0], lv[-1]) == (a.min(), a.max())
    steps = np.diff(lv) / ((a.max() - a.min()) / 8)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)  # on the grid (empty levels skipped)


def test_no_level_is_zero_even_when_the_grid_crosses_it() -> None:
    g = tiny_model()
    a = np.array([[-1.0, -0.4, -0.05, 0.03], [0.01, 0.45, 0.7, 1.0]], np.float32)
    g.weights["fc2.w"].value = a  # the uniform 3-level grid is -1, 0, 1
    q = quantize(g, method="uniform", k=3).graph.weights["fc2.w"].array
    assert (q != 0).all()
    assert np.unique(q).size == 3 and q[0, 2] == q[0, 3] == q[1, 0] == np.float32(0.01)


def test_share_type_gives_one_codebook_per_layer_type() -> None:
    g = pruned(0.5)
    res = quantize(g, method="kmeans", k=4, share="type")
    books = {s["weight"]: s["codebook"] for s in res.stats}
    assert books["fc1.w"] == books["fc2.w"] == "type:Dense"
    assert books["conv.w"] == "type:Conv" and books["emb.table"] == "type:Gather"
    dense = np.concatenate([res.graph.weights[n].array.ravel() for n in ("fc1.w", "fc2.w")])
    assert np.unique(dense[dense != 0]).size <= 4
    # fc2.w is 10x wider than fc1.w: with one codebook, fc1.w gets only the levels near 0.
    per_layer = quantize(g, method="kmeans", k=4, share="layer")
    assert np.unique(per_layer.graph.weights["fc1.w"].array).size == 5
    assert np.unique(res.graph.weights["fc1.w"].array).size < 5


def test_pws_is_unbiased_over_seeds() -> None:
    g = tiny_model()
    a = g.weights["fc1.w"].array.astype(np.float64)
    reps = 300
    qs = np.stack([quantize(g, seed=s, method="pws", k=4).graph.weights["fc1.w"].array for s in range(reps)])
    qs = qs.astype(np.float64)  # a float32 mean would add its own rounding error
    levels = np.unique(qs)
    assert levels.size <= 4 and (levels[0], levels[-1]) == (a.min(), a.max())  # same levels every seed
    # Each q is one of two neighbours lo < hi of w, so sd(q) = sqrt((w - lo)(hi - w)).
    j = np.clip(np.searchsorted(levels, a, side="right") - 1, 0, levels.size - 2)
    sd = np.sqrt((a - levels[j]) * (levels[j + 1] - a))
    tol = 5 * sd / np.sqrt(reps) + 1e-7
    assert (np.abs(qs.mean(0) - a) <= tol).all()
    # The tolerance has teeth: nearest rounding to the same levels breaks it for most weights.
    near = levels[np.argmin(np.abs(a[..., None] - levels), -1)]
    assert np.mean(np.abs(near - a) > tol) > 0.6


def test_ecsq_lowers_the_entropy_as_lam_grows() -> None:
    g = tiny_model(seed=3)
    sel = {"select": lambda w: w.name == "emb.table"}
    ent, err = [], []
    for lam in (0.0, 0.02, 0.1, 0.5):
        res = Quantize()(
            g, Quantize.Options(method="ecsq", k=32, lam=lam), rng=np.random.default_rng(0), **sel
        )
        (s,) = res.stats
        ent.append(s["entropy_after"])
        err.append(s["rel_error"])
        assert s["ecsq_entropy_bits"] == pytest.approx(s["entropy_after"])  # no zeros in this weight
    assert all(b < a for a, b in itertools.pairwise(ent)), ent
    assert all(b > a for a, b in itertools.pairwise(err)), err
    kmeans = quantize(g, method="kmeans", k=32).graph.weights["emb.table"].array
    lam0 = Quantize()(g, Quantize.Options(method="ecsq", k=32, lam=0.0), rng=np.random.default_rng(0), **sel)
    assert np.unique(lam0.graph.weights["emb.table"].array).size <= np.unique(kmeans).size


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_bytes(method: str) -> None:
    g = pruned()
    spec = f"quantize:method={method}:k=8"
    a, sa = run_pipeline(g, spec, seed=11)
    b, sb = run_pipeline(g, spec, seed=11)
    assert snapshot(a) == snapshot(b) and sa == sb


def test_histogram_mode_through_the_pass() -> None:
    g = tiny_model()
    big = np.random.default_rng(1).laplace(0, 0.05, (5000, 40)).astype(np.float32)
    big[big.shape[0] // 2 :] = 0  # half pruned
    g.weights["emb.table"].value = big
    sel = {"select": lambda w: w.name == "emb.table", "rng": np.random.default_rng(0)}
    (e,) = Quantize()(g, Quantize.Options(k=16), **sel).stats
    res = Quantize()(g, Quantize.Options(k=16, bins=1 << 12), **sel)  # 100k values > 2 * 4096
    (h,) = res.stats
    assert (e["mode"], h["mode"]) == ("exact", "histogram")
    assert h["rel_error"] == pytest.approx(e["rel_error"], rel=1e-2)
    q = res.graph.weights["emb.table"].array
    np.testing.assert_array_equal(q == 0, big == 0)
    assert np.unique(q[q != 0]).size == h["levels"] <= 16


def test_nan_weights_are_refused_with_the_weight_named() -> None:
    g = tiny_model()
    a = g.weights["fc1.w"].array.copy()
    a[0, 0] = np.nan
    g.weights["fc1.w"].value = a
    with pytest.raises(UnsupportedError, match=r"'fc1\.w' holds NaN"):
        quantize(g)


def test_all_zero_weight_is_left_alone() -> None:
    g = tiny_model()
    g.weights["fc1.w"].value = np.zeros((32, 8), np.float32)
    res = quantize(g, k=4)
    assert "fc1.w" not in {s["weight"] for s in res.stats}
    assert not res.graph.weights["fc1.w"].array.any()


@pytest.mark.parametrize("method", METHODS)
def test_chunk_size_does_not_change_the_result(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Levels are fitted and weights assigned a chunk at a time; pws draws its random numbers in
    # order whatever the chunks, so 7-entry chunks give the arrays of one big chunk.
    import nncompress.passes._infra as infra

    g = pruned()
    want = quantize(g, seed=3, method=method, k=8).graph
    monkeypatch.setattr(infra, "CHUNK", 7)
    got = quantize(g, seed=3, method=method, k=8).graph
    for name in KERNELS:
        np.testing.assert_array_equal(got.weights[name].array, want.weights[name].array)
