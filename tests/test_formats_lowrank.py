"""lowrank: truncated SVD factors within a parameter budget (fitted by LowRankPass, stored as LowRank)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError, UsageError
from nncompress.formats.lowrank import LowRank
from nncompress.passes.lowrank import LowRankPass

from .conftest import check_lossy_contract


def fit(w: np.ndarray, **options: Any) -> LowRank:
    return LowRankPass.fit(w, LowRankPass.Options(**options))


@pytest.mark.parametrize("budget", [0.05, 0.1, 0.3, 1.0])
def test_budget_is_respected_and_rank_is_the_largest_that_fits(budget: float) -> None:
    w = np.random.default_rng(1).standard_normal((40, 70)).astype(np.float32)
    fmt = fit(w, budget=budget)
    assert fmt.parameters == fmt.rank * (40 + 70) <= budget * w.size
    assert (fmt.rank + 1) * 110 > budget * w.size or fmt.rank == 40
    check_lossy_contract(fmt)


def test_exact_for_a_low_rank_matrix_and_optimal_otherwise() -> None:
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((30, 3)) @ rng.standard_normal((3, 50))).astype(np.float32)
    fmt = fit(w, rank=3)
    np.testing.assert_allclose(fmt.to_dense(), w, atol=1e-4)
    check_lossy_contract(fmt)
    noisy = rng.standard_normal((30, 50)).astype(np.float32)
    s = np.linalg.svd(noisy.astype(np.float64), compute_uv=False)
    err = np.linalg.norm(fit(noisy, rank=5).to_dense() - noisy)
    assert err == pytest.approx(np.sqrt(np.sum(s[5:] ** 2)), rel=1e-4)  # Eckart-Young


def test_tiny_and_empty_matrices() -> None:
    check_lossy_contract(fit(np.array([[2.0]], np.float32)))
    assert fit(np.array([[2.0]], np.float32)).rank == 1
    check_lossy_contract(fit(np.zeros((0, 4), np.float32)))


def test_bad_parameters_are_usage_errors() -> None:
    w = np.ones((4, 4), np.float32)
    for bad in ({"budget": 0}, {"budget": 1.5}, {"rank": 0}, {"rank": 2.0}, {"budget": True}):
        with pytest.raises(UsageError):
            fit(w, **bad)
    with pytest.raises(TypeError):  # the pipeline parser names unknown options; Options takes none
        fit(w, bogus=1)
    with pytest.raises(UsageError, match="NaN"):
        fit(np.array([[np.nan]], np.float32))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"a": np.ones((6, 3), np.float32)}, "a has shape"),
        ({"b": np.ones((2, 8), np.float64)}, "b must be float32"),
        ({"rank": 7}, "rank=7"),
        ({"a": np.full((6, 2), np.inf, np.float32)}, "NaN or Inf"),
        ({"shape": [6]}, "not a pair"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, Any], match: str) -> None:
    fmt = fit(np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32), rank=2)
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        (arrays if key in arrays else meta)[key] = value
    with pytest.raises(InputError, match=match):
        LowRank.from_arrays(arrays, meta)
