"""The pass contract, the registry, the pipeline spec parser and the pass manager."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest

from nncompress.errors import UsageError
from nncompress.ir import Graph
from nncompress.options import option
from nncompress.passes import (
    PASSES,
    Pass,
    PassOptions,
    PassResult,
    Prune,
    Quantize,
    default_select,
    parse_pipeline,
    run_pipeline,
)
from nncompress.passes._infra import pipeline_blocks, pipeline_per_weight, selected, weight_stats

from .conftest import snapshot, tiny_model

# -- registry and contract -------------------------------------------------------------------


def test_model_fixture_is_a_valid_graph() -> None:
    tiny_model().validate()


@pytest.mark.parametrize("name", sorted(PASSES))
def test_registry_key_is_cli_word_and_module_name(name: str) -> None:
    cls = PASSES[name]
    assert cls.name == name
    assert cls.__module__ == f"nncompress.passes.{name}"
    assert importlib.import_module(cls.__module__)
    assert issubclass(cls, Pass) and issubclass(cls.Options, PassOptions)
    cls.Options()  # every option has a default


def test_default_selection_is_float_kernels_and_embeddings() -> None:
    names = [w.name for w in selected(tiny_model(), default_select)]
    assert names == ["conv.w", "fc1.w", "fc2.w", "emb.table"]


def test_selection_never_offers_non_float_weights() -> None:
    assert "shape" not in [w.name for w in selected(tiny_model(), lambda w: True)]


def test_weight_stats_figures() -> None:
    g = tiny_model()
    w = g.weights["fc2.w"]
    before = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    after = np.array([[3.0, 0.0], [0.0, 0.0]], np.float32)
    s = weight_stats("x", w, before, after)
    assert (s["sparsity_before"], s["sparsity_after"]) == (0.5, 0.75)
    assert (s["distinct_before"], s["distinct_after"]) == (3, 2)
    assert s["rel_error"] == pytest.approx(4.0 / 5.0)
    assert (s["weight"], s["layer"]) == ("fc2.w", "fc2")


# -- pipeline specs --------------------------------------------------------------------------


def test_parse_pipeline_happy_path() -> None:
    steps = parse_pipeline(" prune:sparsity=0.9:scope=global , quantize:method=kmeans:k=32:init=density ")
    assert steps == [
        ("prune", Prune.Options(sparsity=0.9, scope="global")),
        ("quantize", Quantize.Options(method="kmeans", k=32, init="density")),
    ]
    assert isinstance(steps[1][1].k, int)
    (_, q), *_ = parse_pipeline("quantize:lam=1")
    assert isinstance(q.lam, float) and q.lam == 1.0
    assert parse_pipeline("prune") == [("prune", Prune.Options())]


@pytest.mark.parametrize(
    ("spec", "must_name", "must_list"),
    [
        ("prnue:sparsity=0.9", "'prnue'", "prune, quantize"),
        ("prune:sparsity=0.9,quantise", "'quantise'", "prune, quantize"),
        ("prune:sparsty=0.9", "'sparsty'", "sparsity="),
        ("prune:sparsity", "'sparsity'", "key=value"),
        ("prune:sparsity=", "'sparsity='", "key=value"),
        ("prune:sparsity=lots", "'sparsity=lots'", "float in [0.0, 1.0]"),
        ("prune:sparsity=1.5", "'sparsity=1.5'", "float in [0.0, 1.0]"),
        ("prune:sparsity=nan", "'sparsity=nan'", "finite"),
        ("prune:scope=model", "'scope=model'", "layer|global"),
        ("quantize:method=lloyd", "'method=lloyd'", "uniform, kmeans, pws, ecsq"),
        ("quantize:k=1", "'k=1'", "int in [2, 65536]"),
        ("quantize:k=32.5", "'k=32.5'", "must be an integer"),
        ("quantize:k=70000", "'k=70000'", "int in [2, 65536]"),
        ("quantize:k=8:k=16", "'k'", "twice"),
        ("quantize:lam=-1", "'lam=-1'", ">= 0.0"),
        ("prune,,quantize", "empty step", "comma"),
        ("", "empty", "prune, quantize"),
    ],
)
def test_parse_pipeline_errors_are_one_line_usage_errors(spec: str, must_name: str, must_list: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_pipeline(spec)
    msg = str(e.value)
    assert "\n" not in msg
    assert must_name in msg and must_list in msg, msg


def test_options_check_values_when_built_directly() -> None:
    with pytest.raises(UsageError, match=r"sparsity=2\.0 .* must be >= 0\.0 and <= 1\.0"):
        Prune.Options(sparsity=2.0)
    with pytest.raises(UsageError, match="one of uniform, kmeans, pws, ecsq"):
        Quantize.Options(method="nope")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="must be an integer"):
        Quantize.Options(k=True)  # bool is not a count
    assert Prune.Options(sparsity=1).sparsity == 1.0


def test_bool_options_parse() -> None:
    @dataclass(frozen=True)
    class Opts(PassOptions):
        flag: bool = option(False)

    class Flagger(Pass):
        name = "flagger"
        Options = Opts

        def __call__(self, graph: Graph, options: Opts, *, select, rng) -> PassResult:  # type: ignore[no-untyped-def]
            return PassResult(graph, [])

    reg = {"flagger": Flagger}
    assert parse_pipeline("flagger:flag=yes", reg)[0][1] == Opts(flag=True)
    assert parse_pipeline("flagger:flag=False", reg)[0][1] == Opts(flag=False)
    with pytest.raises(UsageError, match="true or false"):
        parse_pipeline("flagger:flag=maybe", reg)


# -- pass manager ----------------------------------------------------------------------------


class Jitter(Pass):
    """A third-party pass that uses its rng: adds seeded noise to each selected weight."""

    name = "jitter"

    @dataclass(frozen=True)
    class Options(PassOptions):
        scale: float = option(0.01, lo=0.0)
        mode: Literal["add", "mul"] = option("add")

    def __call__(self, graph: Graph, options: Options, *, select, rng) -> PassResult:  # type: ignore[no-untyped-def]
        out = graph.copy()
        stats = []
        for w in selected(graph, select):
            a = w.array
            new = (a + rng.normal(size=a.shape) * options.scale).astype(a.dtype)
            out.weights[w.name].value = new
            stats.append(weight_stats(self.name, w, a, new))
        return PassResult(out, stats)


REG = {**PASSES, "jitter": Jitter}


def test_run_pipeline_is_deterministic_and_seeded() -> None:
    spec = "jitter:scale=0.1,prune:sparsity=0.5,quantize:method=pws:k=4"
    g = tiny_model()
    a, _ = run_pipeline(g, spec, seed=7, registry=REG)
    b, _ = run_pipeline(g, parse_pipeline(spec, REG), seed=7, registry=REG)
    c, _ = run_pipeline(g, spec, seed=8, registry=REG)
    assert snapshot(a) == snapshot(b)
    assert snapshot(a) != snapshot(c)


def test_run_pipeline_chains_steps_and_numbers_stats() -> None:
    g = tiny_model()
    before = snapshot(g)
    out, stats = run_pipeline(g, "prune:sparsity=0.75,quantize:k=4", seed=0)
    assert snapshot(g) == before  # the input graph is untouched
    assert [(s["step"], s["pass"]) for s in stats] == [(0, "prune")] * 4 + [(1, "quantize")] * 4
    for name in ("conv.w", "fc1.w", "fc2.w", "emb.table"):
        a = out.weights[name].array
        assert np.count_nonzero(a == 0) == round(0.75 * a.size)
        assert np.unique(a[a != 0]).size <= 4
    for name in ("conv.b", "bn.g", "bn.m", "bn.v", "shape"):
        assert out.weights[name].array.tobytes() == g.weights[name].array.tobytes()
    assert [n.name for n in out.nodes] == [n.name for n in g.nodes]


def test_run_pipeline_honours_a_custom_selection() -> None:
    g = tiny_model()
    out, stats = run_pipeline(
        g, "prune:sparsity=0.5", seed=0, select=lambda w: w.op == "Dense" and w.role == "kernel"
    )
    assert {s["weight"] for s in stats} == {"fc1.w", "fc2.w"}
    assert out.weights["conv.w"].array.tobytes() == g.weights["conv.w"].array.tobytes()


def test_run_pipeline_step_options_default_and_type_checked() -> None:
    g = tiny_model()
    out, _ = run_pipeline(g, [("prune", None)], seed=0)
    assert np.mean(out.weights["fc1.w"].array == 0) == 0.5
    with pytest.raises(TypeError, match=r"Prune\.Options"):
        run_pipeline(g, [("prune", Quantize.Options())], seed=0)
    with pytest.raises(UsageError, match="unknown pass 'nope'"):
        run_pipeline(g, [("nope", None)], seed=0)


def test_passes_replace_slots_without_touching_shared_objects() -> None:
    g = tiny_model()
    res = PASSES["prune"]()(g, Prune.Options(0.5), select=default_select, rng=np.random.default_rng(0))
    assert res.graph is not g and res.graph.weights["fc1.w"] is not g.weights["fc1.w"]
    new = res.graph.weights["fc1.w"]
    assert new.array.dtype == np.float32 and new.shape == (32, 8)
    old = g.weights["fc1.w"]
    assert (new.layer, new.role, new.op, new.source, new.layout) == (
        old.layer,
        old.role,
        old.op,
        old.source,
        old.layout,
    )


@pytest.mark.parametrize(
    "spec", ["prune:sparsity=0.7,quantize:k=4", "quantize:k=8,quantize:k=3:method=uniform"]
)
def test_later_steps_reuse_scratch_arrays_without_changing_results_or_the_input(spec: str) -> None:
    g = tiny_model()
    before = snapshot(g)
    detailed, _ = run_pipeline(g, spec, seed=3)
    lean, _ = run_pipeline(g, spec, seed=3, detailed=False)
    assert snapshot(lean) == snapshot(detailed)
    assert snapshot(g) == before


def tied_model() -> Graph:
    """tiny_model with few distinct magnitudes: a global threshold has ties in several weights."""
    g = tiny_model(3)
    rng = np.random.default_rng(0)
    for name in ("conv.w", "fc1.w", "fc2.w", "emb.table"):
        w = g.weights[name]
        w.value = rng.choice(np.float32([-0.03, -0.02, -0.01, 0.01, 0.02, 0.03]), size=w.shape)
    return g


@pytest.mark.parametrize(
    "steps",
    [
        "prune:sparsity=0.8:scope=global,quantize:method=kmeans:k=32",
        "prune:sparsity=0.5,quantize:method=pws:k=8",
        "quantize:method=kmeans:k=16",  # the first step gets the originals: it must not overwrite them
        "prune:sparsity=0.6:scope=global",
        "prune:sparsity=0.0:scope=global,quantize:method=ecsq:k=8",
    ],
)
def test_per_weight_pipeline_equals_run_pipeline(steps: str) -> None:
    g = tied_model()  # the per-weight path must take the threshold's ties in the same order
    before = {n: w.array.copy() for n, w in g.weights.items()}
    want, _ = run_pipeline(g, steps, seed=5)
    one = pipeline_per_weight(g, steps, seed=5)
    assert one is not None
    for name, w in g.weights.items():
        got = one(w) if np.issubdtype(w.dtype, np.floating) and default_select(w) else w.array
        np.testing.assert_array_equal(got, want.weights[name].array, err_msg=f"{steps}: {name}")
    for name, w in g.weights.items():
        np.testing.assert_array_equal(w.array, before[name])  # inputs untouched


@pytest.mark.parametrize(
    "steps",
    [
        "prune:sparsity=0.5,prune:sparsity=0.8:scope=global",  # a global step after another
        "prune:sparsity=0.5,quantize:method=kmeans:k=8:share=type",  # one codebook for all Dense
    ],
)
def test_per_weight_pipeline_declines_what_needs_every_weight(steps: str) -> None:
    assert pipeline_per_weight(tiny_model(), steps) is None


@pytest.mark.parametrize(
    "steps",
    [
        "prune:sparsity=0.8:scope=global,quantize:method=kmeans:k=32",
        "prune:sparsity=0.5,quantize:method=uniform:k=8",
        "quantize:method=kmeans:k=16:bins=8",  # a histogram: bin sums must add in the same order
        "prune:sparsity=0.6:scope=global",
        "prune:sparsity=0.37,prune:sparsity=0.9",
        "prune:sparsity=0.0:scope=global,quantize:method=ecsq:k=8",
        "prune:sparsity=1.0:scope=global,quantize:k=4",  # all zeros: quantize leaves them
    ],
)
@pytest.mark.parametrize("chunk", [7, 1 << 22])
def test_block_pipeline_equals_run_pipeline(steps: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ties of the threshold fall in several weights and across pieces of 7 entries; every piece
    # is read in any order and more than once, as the encoders do.
    import nncompress.passes._infra as infra

    g = tied_model()
    rng = np.random.default_rng(0)
    before = {n: w.array.copy() for n, w in g.weights.items()}
    want, _ = run_pipeline(g, steps, seed=5)
    monkeypatch.setattr(infra, "CHUNK", chunk)
    blocks = pipeline_blocks(g, steps, seed=5)
    assert blocks is not None
    for name, w in g.weights.items():
        if not (np.issubdtype(w.dtype, np.floating) and default_select(w)):
            continue
        source = blocks(w)
        cuts = sorted({0, w.size, *rng.integers(0, w.size, 3).tolist()})
        pieces = [source(a, b) for a, b in zip(cuts[::-1][1:], cuts[::-1], strict=False)][::-1]
        got = np.concatenate(pieces).reshape(w.shape)
        np.testing.assert_array_equal(got, want.weights[name].array, err_msg=f"{steps}: {name}")
        np.testing.assert_array_equal(source(0, w.size).reshape(w.shape), got)
    for name, w in g.weights.items():
        np.testing.assert_array_equal(w.array, before[name])  # inputs untouched


@pytest.mark.parametrize(
    "steps",
    [
        "prune:sparsity=0.5,prune:sparsity=0.8:scope=global",
        "prune:sparsity=0.5,quantize:method=kmeans:k=8:share=type",
        "prune:sparsity=0.5,quantize:method=pws:k=8",  # a random number per entry, in order
    ],
)
def test_block_pipeline_declines_what_it_cannot_stream(steps: str) -> None:
    assert pipeline_blocks(tiny_model(), steps) is None
