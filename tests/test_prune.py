"""Magnitude pruning: exact counts per weight, global threshold semantics, ties, untouched inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nncompress.ir import Graph
from nncompress.passes import PassResult, Prune, default_select
from nncompress.passes.prune import smallest

from .conftest import snapshot, tiny_model

KERNELS = ("conv.w", "fc1.w", "fc2.w", "emb.table")


def prune(g: Graph, **opts: object) -> PassResult:
    return Prune()(g, Prune.Options(**opts), select=default_select, rng=np.random.default_rng(0))  # type: ignore[arg-type]


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 1 / 3, 0.5, 0.9, 0.999, 1.0])
def test_layer_scope_hits_the_exact_count_in_every_weight(sparsity: float) -> None:
    g = tiny_model()
    res = prune(g, sparsity=sparsity)
    for name in KERNELS:
        before, after = g.weights[name].array, res.graph.weights[name].array
        zeros = after == 0
        assert np.count_nonzero(zeros) == round(sparsity * before.size)
        # Magnitude order: every pruned entry is no larger than every kept one, kept ones unchanged.
        if zeros.any() and (~zeros).any():
            assert np.abs(before[zeros]).max() <= np.abs(before[~zeros]).min()
        np.testing.assert_array_equal(after[~zeros], before[~zeros])
        assert after.dtype == before.dtype and after.shape == before.shape


def test_only_selected_weights_change_and_the_input_stays() -> None:
    g = tiny_model()
    before = snapshot(g)
    res = prune(g, sparsity=0.8)
    assert snapshot(g) == before
    changed = {k for k, v in snapshot(res.graph).items() if v != before[k]}
    assert changed == set(KERNELS)
    assert [s["weight"] for s in res.stats] == list(KERNELS)
    for s in res.stats:
        assert s["pass"] == "prune" and s["sparsity_after"] == pytest.approx(
            round(0.8 * s["params"]) / s["params"]
        )
        assert 0 < s["rel_error"] < 1


def test_ties_are_broken_by_index() -> None:
    mag = np.array([2.0, 1.0, 1.0, 1.0, 0.5, 1.0])
    mask, t = smallest(mag, 3)
    assert t == 1.0
    np.testing.assert_array_equal(np.flatnonzero(mask), [1, 2, 4])


def test_existing_zeros_count_towards_the_target() -> None:
    g = tiny_model()
    a = g.weights["fc1.w"].array.copy()
    a.reshape(-1)[:100] = 0  # 100 of 256 already zero
    g.weights["fc1.w"].value = a
    after = prune(g, sparsity=0.5).graph.weights["fc1.w"].array
    assert np.count_nonzero(after == 0) == 128
    assert (after.reshape(-1)[:100] == 0).all()
    # More zeros than asked for: they stay zero, nothing else is touched.
    np.testing.assert_array_equal(prune(g, sparsity=0.2).graph.weights["fc1.w"].array, a)


def test_global_scope_uses_one_threshold_over_all_selected_weights() -> None:
    g = tiny_model()  # fc2.w has 10x the scale of the other kernels
    res = prune(g, scope="global", sparsity=0.7)
    before = np.concatenate([np.abs(g.weights[n].array).ravel() for n in KERNELS])
    after = np.concatenate([res.graph.weights[n].array.ravel() for n in KERNELS])
    assert np.count_nonzero(after == 0) == round(0.7 * before.size)
    t = res.stats[0]["threshold"]
    assert {s["threshold"] for s in res.stats} == {t}
    assert (before[after == 0] <= t).all() and (before[after != 0] >= t).all()
    sp = {s["weight"]: s["sparsity_after"] for s in res.stats}
    assert sp["fc2.w"] < 0.2 < 0.7 < sp["fc1.w"]  # large weights survive a global cut


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, -0.5, 0.5, 1.0, -2.0, 3.0]), min_size=1, max_size=40),
    st.floats(0.0, 1.0),
)
def test_smallest_is_exact_on_any_ties(values: list[float], sparsity: float) -> None:
    mag = np.abs(np.array(values))
    n = round(sparsity * mag.size)
    mask, _ = smallest(mag, n)
    assert mask.sum() == n
    order = np.lexsort((np.arange(mag.size), mag))  # by magnitude, then by index
    np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(order[:n]))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    levels=st.integers(1, 6),
    sparsity=st.floats(0, 1),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    seed=st.integers(0, 2**16),
)
def test_radix_selection_equals_the_partition_on_concatenated_magnitudes(
    sizes: list[int], levels: int, sparsity: float, dtype: str, seed: int
) -> None:
    # Few distinct magnitudes (many ties, signs mixed) across several arrays, in chunks of 7 entries.
    import nncompress.passes._infra as infra
    import nncompress.passes.prune as pr

    rng = np.random.default_rng(seed)
    arrays = [(rng.integers(-levels, levels + 1, n) * 0.37).astype(dtype) for n in sizes]
    n = round(sparsity * sum(sizes))
    old, infra.CHUNK = infra.CHUNK, 7
    try:
        news, t = pr.prune_below(arrays, n, np.dtype(dtype))
    finally:
        infra.CHUNK = old
    mask, t_ref = smallest(np.abs(np.concatenate(arrays)).ravel(), n)
    want = np.where(mask, 0, np.concatenate(arrays)).astype(dtype)
    np.testing.assert_array_equal(np.concatenate(news), want)
    if 0 < n:
        assert t == t_ref
