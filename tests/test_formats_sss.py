"""sss: semiseparable realization (SSSPass), exact at full state, two-sweep dot, budgeted search."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nncompress.errors import InputError, UsageError
from nncompress.formats.sss import SSS, block_sizes
from nncompress.passes.sss import SSSPass, parameter_count

from .conftest import check_lossy_contract


def fit(w: np.ndarray, **options: Any) -> SSS:
    return SSSPass.fit(w, SSSPass.Options(**options))


def semiseparable(shape: tuple[int, int], n: int, rank: int, seed: int) -> np.ndarray:
    """A matrix whose strictly lower and upper block parts have Hankel rank <= rank (plus any diagonal)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    lo = rng.standard_normal((shape[0], rank)) @ rng.standard_normal((rank, shape[1]))
    up = rng.standard_normal((shape[0], rank)) @ rng.standard_normal((rank, shape[1]))
    r0 = np.concatenate([[0], np.cumsum(block_sizes(shape[0], n))])
    c0 = np.concatenate([[0], np.cumsum(block_sizes(shape[1], n))])
    for k in range(n):
        for j in range(n):
            if j != k:
                w[r0[k] : r0[k + 1], c0[j] : c0[j + 1]] = (lo if j < k else up)[
                    r0[k] : r0[k + 1], c0[j] : c0[j + 1]
                ]
    return w.astype(np.float32)


@pytest.mark.parametrize(("shape", "n"), [((24, 24), 4), ((20, 33), 5), ((13, 7), 7), ((9, 16), 2)])
def test_exact_reconstruction_at_full_state_dimension(shape: tuple[int, int], n: int) -> None:
    w = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    fmt = fit(w, blocks=n, state=min(shape))
    np.testing.assert_allclose(fmt.to_dense(), w, atol=2e-5)
    assert fmt.parameters == parameter_count(shape, n, min(shape))
    check_lossy_contract(fmt)


def test_exact_at_the_hankel_rank_and_lossy_below_it() -> None:
    w = semiseparable((40, 48), 8, 3, 8)
    exact = fit(w, blocks=8, state=3)
    np.testing.assert_allclose(exact.to_dense(), w, atol=1e-4)
    assert exact.parameters < w.size / 2
    check_lossy_contract(exact)
    lossy = fit(w, blocks=8, state=2)
    assert np.linalg.norm(lossy.to_dense() - w) > 1e-2 * np.linalg.norm(w)
    check_lossy_contract(lossy)


def test_parameter_count_matches_the_textbook_formula_minus_unused_boundary_stages() -> None:
    shape, n, d = (30, 41), 6, 4
    rs, cs = block_sizes(30, n), block_sizes(41, n)
    textbook = int(sum(2 * d * d + 2 * r * d + 2 * d * c + r * c for r, c in zip(rs, cs, strict=True)))
    unused = 4 * d * d + d * (rs[0] + rs[-1]) + d * (cs[0] + cs[-1])
    assert parameter_count(shape, n, d) == textbook - unused
    w = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    assert fit(w, blocks=n, state=d).parameters == parameter_count(shape, n, d)


@pytest.mark.parametrize("budget", [0.1, 0.4])
def test_budget_search_stays_within_the_budget(budget: float) -> None:
    w = semiseparable((64, 64), 8, 4, 10)
    fmt = fit(w, budget=budget)
    assert fmt.parameters <= budget * w.size
    check_lossy_contract(fmt)
    if budget >= 0.4:  # 8 blocks at state 4 fit (1600 floats): the search finds an (almost) exact realization
        assert np.linalg.norm(fmt.to_dense() - w) < 1e-3 * np.linalg.norm(w)


def test_dot_on_a_large_batch_and_edge_shapes() -> None:
    w = np.random.default_rng(11).standard_normal((33, 50)).astype(np.float32)
    fmt = fit(w, blocks=6, state=3)
    x = np.random.default_rng(12).standard_normal((300, 50))
    np.testing.assert_allclose(fmt.dot(x), x @ fmt.to_dense().T.astype(np.float64), rtol=1e-4, atol=1e-4)
    for shape in ((1, 1), (1, 9), (9, 1), (0, 4)):
        check_lossy_contract(fit(np.ones(shape, np.float32)))


def test_bad_parameters_are_usage_errors() -> None:
    for bad in ({"budget": 2}, {"budget": 0}, {"blocks": 0}, {"state": -1}, {"state": 1.5}):
        with pytest.raises(UsageError):
            fit(np.ones((8, 8), np.float32), **bad)
    with pytest.raises(TypeError):  # the pipeline parser names unknown options; Options takes none
        fit(np.ones((8, 8), np.float32), bogus=1)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"al": np.ones((1, 2, 2), np.float32)}, "al has shape"),
        ({"cu": np.ones((7, 2), np.float32)}, "cu has shape"),
        ({"d": np.ones(3, np.float32)}, "d has shape"),
        ({"bl": np.full((2, 9), np.nan, np.float32)}, "NaN or Inf"),
        ({"blocks": 11}, "blocks=11"),
        ({"state": 99}, "state=99"),
    ],
)
def test_corruption_is_an_input_error(changes: dict[str, Any], match: str) -> None:
    fmt = fit(np.random.default_rng(0).standard_normal((10, 12)).astype(np.float32), blocks=4, state=2)
    arrays: dict[str, Any] = dict(fmt.arrays())
    meta: dict[str, Any] = dict(fmt.meta())
    for key, value in changes.items():
        (arrays if key in arrays else meta)[key] = value
    with pytest.raises(InputError, match=match):
        SSS.from_arrays(arrays, meta)


@pytest.mark.parametrize(
    ("shape", "n", "d"),
    [((24, 24), 4, 3), ((20, 33), 5, 2), ((13, 7), 7, 1), ((9, 16), 1, 0), ((40, 12), 3, 0)],
)
def test_to_dense_is_the_reference_dot_on_the_identity(shape: tuple[int, int], n: int, d: int) -> None:
    # to_dense builds the matrix from the stages directly; dot (the reference) sweeps an input
    w = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    fmt = fit(w, blocks=n, state=d)
    ref = fmt.dot(np.eye(shape[1])).T
    np.testing.assert_allclose(fmt.to_dense(), ref, rtol=1e-6, atol=1e-6)
