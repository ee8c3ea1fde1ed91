"""The structured passes (lowrank, sss, dct, psm): their options, and what ``__call__`` puts in a graph.

How well each fits, and its budget arithmetic, is tested with its format in tests/test_formats_<name>.py.
"""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

import numpy as np
import pytest

from nncompress.errors import UsageError
from nncompress.formats.dct import DCT, KERNELS
from nncompress.formats.lowrank import LowRank
from nncompress.formats.psm import PSM
from nncompress.formats.shaped import Shaped, as_matrix2d
from nncompress.formats.sss import SSS
from nncompress.ir import Weight
from nncompress.options import parse_step
from nncompress.passes import default_select
from nncompress.passes._structured import MIN_SIDE, Structured
from nncompress.passes.dct import DCTPass
from nncompress.passes.lowrank import LowRankPass
from nncompress.passes.psm import PSMPass
from nncompress.passes.sss import SSSPass

from .conftest import tiny_model

PASSES: dict[str, tuple[type[Structured], type[Any]]] = {
    "lowrank": (LowRankPass, LowRank),
    "sss": (SSSPass, SSS),
    "dct": (DCTPass, DCT),
    "psm": (PSMPass, PSM),
}
REGISTRY = {name: p for name, (p, _) in PASSES.items()}
# a few PALM iterations are enough to check where the fit goes
FAST: dict[str, dict[str, Any]] = {"psm": {"iterations": 5}}


@pytest.mark.parametrize("name", list(PASSES))
def test_call_fits_each_selected_slot_of_at_least_16x16_and_leaves_the_rest(name: str) -> None:
    step, fmt_cls = PASSES[name]
    options = step.Options(**FAST.get(name, {}))
    g = tiny_model(channels=16)
    g.validate()
    before = {k: w.value for k, w in g.weights.items()}
    res = step()(g, options, select=default_select, rng=np.random.default_rng(0))

    fitted = {"conv.w", "fc1.w"}
    assert {s["weight"] for s in res.stats} == fitted
    assert all(s["pass"] == name and s["format"] == name for s in res.stats)
    for k, w in res.graph.weights.items():
        if k in fitted:
            slot = w.value
            assert isinstance(slot, Shaped) and isinstance(slot.fmt, fmt_cls)
            assert slot.shape == before[k].shape and slot.dtype == np.float32
            assert min(slot.fmt.shape) >= MIN_SIDE
            # what the pass stores is its fit of the weight's matrix, bit for bit
            direct = step.fit(as_matrix2d(before[k]), options)
            assert slot.fmt.meta() == direct.meta()
            for key, a in direct.arrays().items():
                np.testing.assert_array_equal(slot.fmt.arrays()[key], a)
            np.testing.assert_array_equal(slot.to_dense(), direct.to_dense().reshape(before[k].shape))
            assert slot.fmt.nbytes < before[k].nbytes
        else:
            assert w.value is before[k]  # too small, not selected, or not float: as it was
    assert all(w.value is before[k] for k, w in g.weights.items())  # the input graph is untouched
    res.graph.validate()


def test_call_honours_select_and_non_default_options() -> None:
    g = tiny_model(1, channels=16)

    def only_fc1(w: Weight) -> bool:
        return w.name == "fc1.w"

    res = LowRankPass()(g, LowRankPass.Options(rank=3), select=only_fc1, rng=np.random.default_rng(0))
    slot = res.graph.weights["fc1.w"].value
    assert isinstance(slot, Shaped) and isinstance(slot.fmt, LowRank) and slot.fmt.rank == 3
    assert res.graph.weights["conv.w"].value is g.weights["conv.w"].value


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("lowrank", {"budget": 0}),
        ("lowrank", {"budget": 0.0}),
        ("lowrank", {"budget": 1.5}),
        ("lowrank", {"budget": -0.1}),
        ("lowrank", {"budget": float("nan")}),
        ("lowrank", {"rank": 0}),
        ("lowrank", {"rank": 2.5}),
        ("sss", {"budget": 0}),
        ("sss", {"blocks": 0}),
        ("sss", {"state": -1}),
        ("dct", {"budget": 0}),
        ("dct", {"kernel": "foo"}),
        ("psm", {"budget": 0}),
        ("psm", {"factors": 0}),
        ("psm", {"iterations": 0}),
        ("psm", {"solver": "admm"}),
        ("psm", {"seed": -1}),
    ],
)
def test_bad_options_are_usage_errors(name: str, bad: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        REGISTRY[name].Options(**bad)


def test_budget_zero_names_the_open_range() -> None:
    for name, step in REGISTRY.items():
        with pytest.raises(UsageError, match=r"\(0, 1\]") as e:
            step.Options(budget=0)
        assert name in str(e.value)


@pytest.mark.parametrize(
    "spec",
    [
        "lowrank:budget=0",
        "lowrank:rank=0",
        "lowrank:bogus=1",
        "dct:kernel=foo",
        "sss:state=x",
        "psm:solver=admm",
    ],
)
def test_bad_steps_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_step(spec, REGISTRY)


def test_steps_parse_to_typed_options() -> None:
    assert parse_step("lowrank", REGISTRY) == ("lowrank", LowRankPass.Options())
    assert parse_step("lowrank:budget=1:rank=4", REGISTRY)[1] == LowRankPass.Options(budget=1.0, rank=4)
    assert parse_step("sss:blocks=none:state=0", REGISTRY)[1] == SSSPass.Options(state=0)
    assert parse_step("dct:kernel=dft", REGISTRY)[1] == DCTPass.Options(kernel="dft")
    opts = parse_step("psm:factors=3:solver=hierarchical:seed=2", REGISTRY)[1]
    assert opts == PSMPass.Options(factors=3, solver="hierarchical", seed=2)


def test_defaults_match_the_formats_of_old() -> None:
    assert LowRankPass.Options() == LowRankPass.Options(budget=0.1, rank=None)
    assert SSSPass.Options() == SSSPass.Options(budget=0.1, blocks=None, state=None)
    assert DCTPass.Options() == DCTPass.Options(budget=0.1, kernel="dct")
    assert PSMPass.Options() == PSMPass.Options(budget=0.2, factors=2, iterations=100, solver="palm", seed=0)
    # the pass offers exactly the kernels the format can store
    assert get_args(get_type_hints(DCTPass.Options)["kernel"]) == KERNELS


def test_sss_fits_reuse_the_hankel_svds_and_match_a_cold_fit() -> None:
    from nncompress.passes import sss

    w = np.random.default_rng(3).standard_normal((96, 80))
    # two blocks, states near the blocks' rank: the full SVDs, which every state shares
    options = [SSSPass.Options(blocks=2, state=d) for d in (30, 20, 12)]
    sss._svds.clear()
    warm = []
    for o in options:
        warm.append(SSSPass.fit(w, o))
        assert len(sss._svds) == 2  # one block each way, decomposed once
    for o, f in zip(options, warm, strict=True):
        sss._svds.clear()
        cold = SSSPass.fit(w, o)
        assert (cold.blocks, cold.state) == (f.blocks, f.state)
        for k, a in cold.stages.items():
            assert np.array_equal(a, f.stages[k]), k
    SSSPass.fit(w + 1.0, options[0])  # another matrix of the same shape is another key
    assert len(sss._svds) == 4


def test_sss_small_states_from_the_gram_matrix_match_the_full_svd(monkeypatch: pytest.MonkeyPatch) -> None:
    from nncompress.passes import sss

    rng = np.random.default_rng(4)
    # a decaying spectrum, as trained weights have, and a rank-deficient block (zeros)
    w = (rng.standard_normal((200, 40)) * 0.9 ** np.arange(40)) @ rng.standard_normal((40, 320))
    w[:, :60] = 0.0
    for o in (SSSPass.Options(blocks=8, state=3), SSSPass.Options(budget=0.05)):
        sss._svds.clear()
        gram = SSSPass.fit(w, o)
        if o.state is not None:  # d = 3 of blocks >= 25 wide: only the all-zero block's full SVD
            assert [k[1:] for k in sss._svds] == [(False, 8, 1)]
        with monkeypatch.context() as m:
            m.setattr(sss, "GRAM_SHARE", 10**9)
            full = SSSPass.fit(w, o)
        assert (gram.blocks, gram.state) == (full.blocks, full.state)
        np.testing.assert_allclose(gram.to_dense(), full.to_dense(), rtol=0, atol=1e-5 * np.abs(w).max())
