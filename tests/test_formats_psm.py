"""psm: products of sparse factors fitted by PSMPass (our PALM, pyfaust's palm4msa), within a budget."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError, UsageError
from nncompress.formats.psm import PSM, factor_shapes
from nncompress.passes.psm import PSMPass, splincol

from .conftest import check_lossy_contract


def fit(w: np.ndarray, **options: Any) -> PSM:
    return PSMPass.fit(w, PSMPass.Options(**options))


def sparse_rows(shape: tuple[int, int], k: int, rng: np.random.Generator) -> np.ndarray:
    """A random matrix with exactly k nonzeros per row."""
    m = np.zeros(shape)
    for i in range(shape[0]):
        m[i, rng.choice(shape[1], k, replace=False)] = rng.standard_normal(k)
    return m


def product_of_sparse(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (sparse_rows((32, 32), 1, rng) @ sparse_rows((32, 32), 3, rng)).astype(np.float32)


def rel_err(fmt: PSM, w: np.ndarray) -> float:
    return float(np.linalg.norm(fmt.to_dense() - w) / np.linalg.norm(w))


@pytest.mark.parametrize("seed", [0, 1])
def test_our_palm_recovers_a_product_of_sparse_factors(seed: int) -> None:
    w = product_of_sparse(seed)
    fmt = fit(w, budget=0.25, iterations=300)
    assert rel_err(fmt, w) < 0.05
    assert fmt.parameters <= 0.25 * w.size
    check_lossy_contract(fmt)


def test_pyfaust_solver_matches_within_a_few_percent() -> None:
    pytest.importorskip("pyfaust")
    w = product_of_sparse(0)
    start = time.perf_counter()
    fmt = fit(w, budget=0.25, iterations=300, solver="pyfaust")
    if time.perf_counter() - start > 10:
        pytest.skip("pyfaust took over 10 s on this machine")
    assert rel_err(fmt, w) < 0.1
    assert fmt.parameters <= 0.25 * w.size
    check_lossy_contract(fmt)


@pytest.mark.parametrize(("shape", "q"), [((24, 40), 2), ((40, 24), 3), ((20, 20), 1), ((1, 7), 2)])
@pytest.mark.parametrize("budget", [0.1, 0.3])
def test_budget_and_contract_on_rectangular_matrices(shape: tuple[int, int], q: int, budget: float) -> None:
    w = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    fmt = fit(w, budget=budget, factors=q, iterations=30)
    s = max(1, int(budget * w.size // sum(a + b for a, b in factor_shapes(shape, q))))
    assert fmt.parameters <= s * sum(a + b for a, b in factor_shapes(shape, q))
    if s * sum(a + b for a, b in factor_shapes(shape, q)) <= budget * w.size:  # not the 1-per-row floor
        assert fmt.parameters <= budget * w.size
    check_lossy_contract(fmt)


def test_more_budget_lowers_the_error() -> None:
    w = np.random.default_rng(4).standard_normal((32, 32)).astype(np.float32)
    errs = [rel_err(fit(w, budget=b, iterations=60), w) for b in (0.1, 0.3, 0.6)]
    assert errs[0] > errs[1] > errs[2]


def test_splincol_keeps_the_top_entries_of_each_row_and_column() -> None:
    m = np.array([[5.0, 1, 0, 0], [4, 3, 2, 0], [0, 0, 0, 9]])
    kept = splincol(m, 1)
    np.testing.assert_array_equal(kept, [[5, 0, 0, 0], [4, 3, 2, 0], [0, 0, 0, 9]])


def test_empty_matrix_and_bad_parameters() -> None:
    check_lossy_contract(fit(np.zeros((0, 5), np.float32)))
    w = np.ones((4, 4), np.float32)
    for bad in (
        {"solver": "admm"},
        {"factors": 0},
        {"budget": -1},
        {"budget": 0},
        {"iterations": 0},
        {"seed": -1},
    ):
        with pytest.raises(UsageError):
            fit(w, **bad)
    with pytest.raises(TypeError):  # the pipeline parser names unknown options; Options takes none
        fit(w, bogus=1)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"nnz": "3"}, "not a list"),
        ({"values0": np.ones(1, np.float32)}, "values0 has shape"),
        ({"row_ptr1": np.zeros(7, np.uint8)}, "row_ptr1 must run"),
        ({"col_idx0": np.full(10, 200, np.uint8)}, "col_idx0 .*|has .* entries"),
        ({"inner": 3}, "inner=3"),
        ({"extra": np.ones(2, np.float32)}, "differ from the expected"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, Any], match: str) -> None:
    fmt = fit(np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32), iterations=5)
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        (meta if key in meta or key in ("nnz", "inner") else arrays)[key] = value
    with pytest.raises(InputError, match=match):
        PSM.from_arrays(arrays, meta)


def test_hierarchical_solver_keeps_stdout_clean(capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyfaust")
    rng = np.random.default_rng(0)
    w = (
        sparse_rows((32, 32), 2, rng) @ sparse_rows((32, 32), 2, rng) @ sparse_rows((32, 32), 2, rng)
    ).astype(np.float32)
    fmt = fit(w, budget=0.4, factors=3, iterations=100, solver="hierarchical")
    out, _ = capfd.readouterr()
    assert out == ""  # pyfaust's progress lines must not reach stdout (--json)
    assert len(fmt.factors) == 3
    assert fmt.parameters <= 0.4 * w.size
    assert rel_err(fmt, w) < 0.3
    check_lossy_contract(fmt)
