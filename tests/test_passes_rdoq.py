"""The rdoq pass: the exact grid, rounding at lam=0, the rate-distortion trade, its rate model
against the literal cabac binarization (and the coder, once it is registered), edge cases, streaming
forms and a CLI run."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nncompress.errors import UnsupportedError, UsageError
from nncompress.formats import FORMATS
from nncompress.io import load
from nncompress.ir import Graph
from nncompress.ir.interpreter import run
from nncompress.native import available as native_available
from nncompress.passes import RDOQ, PassResult, _infra, default_select, parse_pipeline
from nncompress.passes import rdoq as rdoq_module
from nncompress.passes._infra import pipeline_blocks, pipeline_per_weight
from nncompress.passes.rdoq import grid_values, rate_bits

from .conftest import DATA, MODELS, run_cli, snapshot, tiny_model

KERNELS = ("conv.w", "fc1.w", "fc2.w", "emb.table")


def rdoq(g: Graph, **opts: object) -> PassResult:
    return RDOQ()(g, RDOQ.Options(**opts), select=default_select, rng=np.random.default_rng(0))  # type: ignore[arg-type]


def levels_of(after: np.ndarray, abs_step: float) -> np.ndarray:
    return np.rint(after.astype(np.float64) / abs_step).astype(np.int64)


@pytest.fixture(scope="module")
def lenet_fc1() -> np.ndarray:
    g = load(MODELS / "lenet300.onnx")
    return max((w.array for w in g.weights.values() if w.array.ndim == 2), key=lambda a: a.size)


def one_weight(a: np.ndarray) -> Graph:
    g = tiny_model()
    g.weights["emb.table"].value = a.astype(np.float32).reshape(-1, 8)
    return g


# -- the grid ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.3, 3.0])
def test_values_lie_exactly_on_the_float32_grid_of_the_step(lam: float) -> None:
    g = tiny_model()
    res = rdoq(g, step=0.1, lam=lam, min_size=0)
    for s in res.stats:
        a = g.weights[s["weight"]].array
        after = res.graph.weights[s["weight"]].array
        rms = float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
        assert s["decision_step"] == np.float32(0.1 * rms)
        assert (s["abs_step"] == s["decision_step"]) == (lam == 0.0)  # lam > 0: the refitted step
        step = np.float32(s["abs_step"])
        np.testing.assert_array_equal(after, grid_values(levels_of(after, float(step)), step))
        assert after.dtype == a.dtype and after.shape == a.shape
    assert {s["weight"] for s in res.stats} == set(KERNELS)


def test_refit_undoes_the_shrinkage_toward_zero(lenet_fc1: np.ndarray) -> None:
    g = one_weight(lenet_fc1)
    w = lenet_fc1.reshape(-1).astype(np.float64)
    kept = rdoq(g, step=1.0, lam=0.3).graph.weights["emb.table"].array.reshape(-1).astype(np.float64)
    shrunk = rdoq(g, step=1.0, lam=0.3, refit=False).graph.weights["emb.table"].array.reshape(-1)
    assert w @ shrunk < 0.97 * (w @ w)  # the chosen levels alone shrink the tensor along itself
    assert w @ kept == pytest.approx(w @ w, rel=1e-6)  # the refitted step: regression slope 1
    np.testing.assert_array_equal(kept == 0, shrunk == 0)  # the same levels, another step


def test_small_tensors_are_rounded_whatever_lam() -> None:
    g = tiny_model()
    rounded = rdoq(g, lam=0.0)
    for min_size, same in ((4096, True), (0, False)):
        res = rdoq(g, lam=3.0, min_size=min_size)
        assert (snapshot(res.graph) == snapshot(rounded.graph)) == same


def test_zeros_stay_exactly_zero_even_when_zero_is_expensive() -> None:
    rng = np.random.default_rng(1)
    a = rng.choice([-1.0, 1.0], size=4000).astype(np.float32)
    a[::97] = 0.0  # rare zeros among +-1 steps: level 0 costs ~6 bits more than +-1
    a[5] = -0.0
    res = rdoq(one_weight(a), step=1.0, lam=1.0, min_size=0)
    after = res.graph.weights["emb.table"].array.reshape(-1)
    assert (after[a == 0] == 0).all()
    assert not np.signbit(after[a == 0]).any()  # -0.0 comes out as 0.0, level 0
    assert (after[a != 0] != 0).all()


def test_lam_zero_is_plain_rounding(lenet_fc1: np.ndarray) -> None:
    res = rdoq(one_weight(lenet_fc1), step=0.07, lam=0.0)
    (s,) = [s for s in res.stats if s["weight"] == "emb.table"]
    step = np.float32(s["abs_step"])
    expected = grid_values(np.rint(lenet_fc1.astype(np.float64) / float(step)).astype(np.int64), step)
    np.testing.assert_array_equal(res.graph.weights["emb.table"].array.reshape(-1), expected.reshape(-1))


def test_ties_round_half_to_even_like_rint() -> None:
    a = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 3.2, 1.0, -1.0] * 16, np.float32)
    rms = float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    # step * rms is 1 within float64 rounding, so the float32 step is exactly 1 and every .5 a tie
    res = rdoq(one_weight(a), step=1 / rms, lam=0.0)
    (s,) = [s for s in res.stats if s["weight"] == "emb.table"]
    assert s["abs_step"] == 1.0
    out = res.graph.weights["emb.table"].array.reshape(-1)
    np.testing.assert_array_equal(out, [0, 2, 2, 0, -2, 3, 1, -1] * 16)


# -- the trade ---------------------------------------------------------------------------------


def test_larger_lam_gives_fewer_bits_and_larger_error(lenet_fc1: np.ndarray) -> None:
    g = one_weight(lenet_fc1)
    bits, errors = [], []
    for lam in (0.0, 0.1, 0.3, 1.0, 3.0):
        (s,) = [s for s in rdoq(g, step=0.5, lam=lam).stats if s["weight"] == "emb.table"]
        bits.append(s["est_bits"])
        errors.append(s["rel_error"])
    assert all(b1 < b0 for b0, b1 in itertools.pairwise(bits)), bits
    assert all(e1 > e0 for e0, e1 in itertools.pairwise(errors)), errors
    assert bits[-1] < 0.8 * bits[0]  # a real trade, not rounding noise


def test_magnitude_weighting_keeps_large_weights_closer(lenet_fc1: np.ndarray) -> None:
    g = one_weight(lenet_fc1)
    x = lenet_fc1.reshape(-1)
    big = np.abs(x) > 2 * np.sqrt(np.mean(x.astype(np.float64) ** 2))
    err = {}
    for wt in ("none", "magnitude"):
        after = rdoq(g, step=0.25, lam=1.0, weighting=wt).graph.weights["emb.table"].array.reshape(-1)
        err[wt] = float(np.sum((after[big] - x[big]).astype(np.float64) ** 2))
    assert err["magnitude"] < err["none"]


@pytest.mark.skipif(not native_available(), reason="the C kernels did not build")
@pytest.mark.parametrize("weighting", ["none", "magnitude", "entries"])
def test_native_levels_equal_the_numpy_reference(weighting: str) -> None:
    """native/rdoq.c and `reference_levels` choose the same level for every entry: random pieces,
    exact half-steps (ties), zeros and -0.0, every lam, per-entry weights (fisher's, read from the
    piece's offset and stride in the tensor), and outliers beyond the rate table (the native call
    declines those and numpy answers)."""
    rng = np.random.default_rng(7)
    for trial in range(24):
        n = int(rng.integers(0, 5000))
        step = np.float32(rng.uniform(0.01, 2.0))
        c = (rng.standard_normal(n) * rng.uniform(0.01, 3.0)).astype(np.float32)
        if trial % 4 == 1:
            c = (rng.integers(-40, 40, n) * 0.5 * step).astype(np.float32)
        elif trial % 4 == 2:
            c[rng.random(n) < 0.5] = 0.0
            c[::7] = -0.0
        elif trial % 4 == 3 and n:
            c[0] = np.float32(step) * 3e6  # past the tabulated magnitudes (2**20)
        model = rdoq_module.RateModel(rdoq_module.Counts.of(np.rint(c / step).astype(np.int64)))
        model.extend_table(int(np.abs(c / step).max(initial=0.0)) + 1)
        rms = float(np.sqrt(np.mean(np.square(c.astype(np.float64))))) if n else 1.0
        entries = rng.gamma(0.5, 2.0, 3 * n + 1) if weighting == "entries" else None
        for lam in (0.05, 0.15, 1.0, 5.0):
            f = rdoq_module._Fitted(
                step, rms or 1.0, 1.0, model, lam, weighting == "magnitude", step, entries
            )
            wt = None if entries is None else entries[1 : 1 + 3 * n : 3]
            assert np.array_equal(f.levels(c, 1, 3), f.reference_levels(c, wt)), (trial, lam)


def test_same_input_same_output() -> None:
    a, b = rdoq(tiny_model(), lam=0.5), rdoq(tiny_model(), lam=0.5)
    assert snapshot(a.graph) == snapshot(b.graph)


def test_input_graph_is_untouched() -> None:
    g = tiny_model()
    before = snapshot(g)
    rdoq(g, lam=1.0)
    assert snapshot(g) == before


# -- the rate model ----------------------------------------------------------------------------


def binarize(levels: np.ndarray) -> list[tuple[str, int]]:
    """The spec's bins of each level, as (flag, value); bypass bins as ('bypass', bit)."""
    out: list[tuple[str, int]] = []
    for lv in levels.reshape(-1).tolist():
        out.append(("sig", int(lv != 0)))
        if lv == 0:
            continue
        out.append(("sign", int(lv < 0)))
        a = abs(lv)
        for k in range(1, 5):
            out.append((f"gt{k}", int(a > k)))
            if a <= k:
                break
        if a > 4:
            r = a - 5
            u = (r + 1).bit_length() - 1  # floor(log2(r + 1)), exact for any int
            out.extend((f"pre{min(i, 15)}", 1) for i in range(u))
            out.append((f"pre{min(u, 15)}", 0))
            out.extend(("bypass", 0) for _ in range(u))
    return out


def static_cost(bins: list[tuple[str, int]]) -> float:
    """Bits of ``bins`` with each flag coded at its own frequency (clamped as the coder clamps)."""
    seen = Counter(bins)
    total = 0.0
    for (flag, bit), n in seen.items():
        if flag == "bypass":
            total += n
            continue
        p = seen[(flag, bit)] / (seen[(flag, 0)] + seen[(flag, 1)])
        total -= n * math.log2(min(max(p, 32 / 32768), 1 - 32 / 32768))
    return total


@pytest.mark.parametrize(
    "levels",
    [
        np.array([0, 0, 0, 1, -1, 2, 3, -4, 5, 6, -9, 12, 40, -300, 70000]),
        np.arange(-40, 41),
        np.array([5] * 7 + [1 << 21, -(1 << 25) + 3, 1 << 29]),  # beyond the table: the formula path
        np.zeros(10, np.int64),
        np.array([1, 2, 3, 4]),
    ],
)
def test_rate_bits_is_the_static_cost_of_the_literal_binarization(levels: np.ndarray) -> None:
    assert rate_bits(levels) == pytest.approx(static_cost(binarize(levels)), rel=1e-9)


def test_rate_bits_of_nothing_and_refusal_beyond_the_coder() -> None:
    assert rate_bits(np.zeros(0, np.int64)) == 0.0
    with pytest.raises(ValueError, match="2\\*\\*30"):
        rate_bits(np.array([1 << 30]))


def test_rate_bits_predicts_the_cabac_coded_size(lenet_fc1: np.ndarray) -> None:
    if "cabac" not in FORMATS:
        pytest.skip("the cabac format is not registered yet")
    for lam in (0.0, 1.0):
        res = rdoq(one_weight(lenet_fc1), step=0.1, lam=lam)
        (s,) = [s for s in res.stats if s["weight"] == "emb.table"]
        after = res.graph.weights["emb.table"].array.reshape(lenet_fc1.shape)
        coded = FORMATS["cabac"].encode(after)
        assert 8 * coded.nbytes == pytest.approx(s["est_bits"], rel=0.10)


# -- edge cases --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["call", "per_weight", "per_block"])
def test_empty_all_zero_and_one_element_tensors(form: str) -> None:
    arrays = {
        "empty": np.zeros((0, 8), np.float32),
        "zeros": np.zeros((4, 8), np.float32),
        "one": np.array([[-0.37]], np.float32),
    }
    g = tiny_model()
    for name, a in arrays.items():
        g.weights["emb.table"].value = a
        opts = RDOQ.Options(step=0.5, lam=1.0)
        out = _run(g, opts, form)
        assert out.shape == a.shape and out.dtype == a.dtype
        if name == "one":  # rms = |w|: the level is round(1 / 0.5) = 2 steps, or cheaper
            step = np.float32(0.5 * 0.37)
            assert out[0, 0] in (
                grid_values(np.array([-2]), step)[0],
                grid_values(np.array([-1]), step)[0],
                0.0,
            )
        else:
            np.testing.assert_array_equal(out, a)


def _run(g: Graph, opts: RDOQ.Options, form: str) -> np.ndarray:
    w = g.weights["emb.table"]
    if form == "call":
        res = RDOQ()(g, opts, select=lambda x: x.name == w.name, rng=np.random.default_rng(0))
        return res.graph.weights[w.name].array
    if form == "per_weight":
        one = pipeline_per_weight(g, [("rdoq", opts)], select=lambda x: x.name == w.name)
        assert one is not None
        return one(w)
    blocks = pipeline_blocks(g, [("rdoq", opts)], select=lambda x: x.name == w.name)
    assert blocks is not None
    return blocks(w)(0, w.size).reshape(w.shape)


@pytest.mark.parametrize("chunk", [None, 10007])
def test_streaming_forms_equal_the_whole_pass(
    lenet_fc1: np.ndarray, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunk is not None:  # many pieces per weight, as a layer of over 4M entries is read
        monkeypatch.setattr(_infra, "CHUNK", chunk)
        monkeypatch.setattr(rdoq_module, "CHUNK", chunk)
    g = one_weight(lenet_fc1)
    opts = RDOQ.Options(step=0.2, lam=0.7, weighting="magnitude")
    whole = _run(g, opts, "call")
    np.testing.assert_array_equal(_run(g, opts, "per_weight"), whole)
    np.testing.assert_array_equal(_run(g, opts, "per_block"), whole)


def test_nan_weights_are_refused_with_the_weight_named() -> None:
    g = tiny_model()
    a = g.weights["fc1.w"].array.copy()
    a[0, 0] = np.nan
    g.weights["fc1.w"].value = a
    with pytest.raises(UnsupportedError, match=r"'fc1\.w' holds NaN"):
        rdoq(g)


def test_steps_the_coder_cannot_code_are_usage_errors() -> None:
    a = np.zeros(1 << 22, np.float32)
    a[0] = 1.0  # rms = 2**-11: a level of 2**11 / 1e-6 > 2**30 at the smallest step
    with pytest.raises(UsageError, match="beyond 2\\*\\*30"):
        rdoq(one_weight(a), step=1e-6)
    with pytest.raises(UsageError, match="step"):
        parse_pipeline("rdoq:step=0")


# -- the command line --------------------------------------------------------------------------


def test_cli_rdoq_then_ham_gives_a_faithful_running_model(tmp_path: Path) -> None:
    out = tmp_path / "v.nnc"
    r = run_cli(
        "compress",
        str(MODELS / "vggmini.onnx"),
        "--pipeline",
        "rdoq:step=0.05,ham",
        "-o",
        str(out),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["fidelity"]["top1_agreement"] >= 0.95
    assert report["totals"]["ratio"] > 4
    back = tmp_path / "v.onnx"
    r = run_cli("decompress", str(out), "-o", str(back))
    assert r.returncode == 0, r.stderr
    x = np.load(DATA / "mnist_test.npz")["x"][:64]
    (y,) = run(load(back), x)
    (y0,) = run(load(MODELS / "vggmini.onnx"), x)
    assert np.mean(y.argmax(1) == y0.argmax(1)) >= 0.9
