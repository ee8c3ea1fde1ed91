"""Fine-tuning by distillation (nncompress.finetune): through compress and on an existing artifact.

Small and real: lenet300.onnx, 600 of the shipped training digits, one epoch; the checks are that
training moves the model the right way, keeps every format and structure, and is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nncompress.artifact import read_artifact
from nncompress.errors import EXIT_USAGE

from .conftest import DATA, MODELS, run_cli

pytest.importorskip("torch")

SHAM = "prune:sparsity=0.95:scope=global,quantize:method=kmeans:k=16,sham"


@pytest.fixture(scope="module")
def train_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with np.load(DATA / "mnist_train.npz") as d:
        x, y = d["x"][:600], d["y"][:600]
    p = tmp_path_factory.mktemp("ft") / "train600.npz"
    np.savez(p, x=x, y=y)
    return p


def _compress(out: Path, train: Path | None, *extra: str) -> dict:
    from nncompress.finetune import TrainOptions
    from nncompress.pipeline import compress, save

    opts = TrainOptions(str(train), epochs=1, lr=2e-3) if train is not None else None
    r = compress(
        MODELS / "lenet300.onnx", pipeline=SHAM, data=DATA / "mnist_test.npz", samples=400, finetune=opts
    )
    save(r, out, force=True)
    return r.report


@pytest.fixture(scope="module")
def plain_and_tuned(
    train_npz: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict, Path, dict]:
    d = tmp_path_factory.mktemp("cmp")
    plain, tuned = d / "plain.nnc", d / "tuned.nnc"
    return plain, _compress(plain, None), tuned, _compress(tuned, train_npz)


def test_finetune_recovers_accuracy_and_reports_before(plain_and_tuned: tuple) -> None:
    _, plain, _, tuned = plain_and_tuned
    ft = tuned["finetune"]
    assert ft["samples"] == 600 and ft["epochs"] == 1 and ft["labels"] is True
    assert ft["pruned_first"] is not None  # the recipe prunes then shares: pruned weights train first
    before = ft["before"]["accuracy_after"]
    after = tuned["fidelity"]["accuracy_after"]
    # 95 % pruning costs lenet300 tens of points without training; one epoch on 600 digits
    # wins most of them back
    assert plain["fidelity"]["accuracy_after"] < after - 0.05, (plain["fidelity"], after)
    assert before <= after + 0.01
    # the layer rows measure the trained weights against the original ones
    assert {r["weight"] for r in tuned["layers"]} == {r["weight"] for r in plain["layers"]}


def test_finetune_keeps_formats_and_masks(plain_and_tuned: tuple) -> None:
    plain_p, _, tuned_p, _ = plain_and_tuned
    a, b = read_artifact(plain_p), read_artifact(tuned_p)
    fa = {t.name: t for t in a.tensors}
    for t in b.tensors:
        assert t.format == fa[t.name].format, t.name
        assert t.shape == fa[t.name].shape
    assert "finetune" in b.recipe and "seconds" not in b.recipe["finetune"]
    # the pruning deepened gradually while the weights trained, so which entries are zero depends on
    # the training; how many does not: the recipe's global 95 %, over the same weights
    from nncompress.pipeline.artifacts import graph_from_artifact

    ga, gb = graph_from_artifact(plain_p), graph_from_artifact(tuned_p)
    names = [n for n, w in ga.weights.items() if w.is_compressed]
    assert names and all(gb.weights[n].is_compressed for n in names)
    zeros = [sum(int(np.count_nonzero(np.asarray(g.weights[n].array) == 0)) for n in names) for g in (ga, gb)]
    assert zeros[0] == zeros[1], zeros
    # and the trained weights are not the plain ones with the same zeros: the masks moved
    assert any(
        not np.array_equal(np.asarray(ga.weights[n].array) == 0, np.asarray(gb.weights[n].array) == 0)
        for n in names
    )


def test_finetune_is_deterministic(train_npz: Path, plain_and_tuned: tuple, tmp_path: Path) -> None:
    _, _, tuned_p, first = plain_and_tuned
    again = tmp_path / "again.nnc"
    second = _compress(again, train_npz)
    assert again.read_bytes() == tuned_p.read_bytes()
    assert second["fidelity"] == first["fidelity"]
    assert second["finetune"]["loss_per_epoch"] == first["finetune"]["loss_per_epoch"]


def test_finetune_command_keeps_the_stored_structure(
    train_npz: Path, plain_and_tuned: tuple, tmp_path: Path
) -> None:
    plain_p = plain_and_tuned[0]
    out = tmp_path / "ft.nnc"
    res = run_cli(
        "finetune",
        str(plain_p),
        "--data",
        str(train_npz),
        "--teacher",
        str(MODELS / "lenet300.onnx"),
        "--eval-data",
        str(DATA / "mnist_test.npz"),
        "--samples",
        "400",
        "--epochs",
        "1",
        "-o",
        str(out),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["schema"] == "nncompress.finetune/1"
    assert rep["fidelity"]["accuracy_after"] > rep["finetune"]["before"]["accuracy_after"]
    a, b = read_artifact(plain_p), read_artifact(out)
    fa = {t.name: t for t in a.tensors}
    for t in b.tensors:
        old = fa[t.name]
        assert t.format == old.format
        if t.format == "sham":  # codebook assignments and positions kept: only the codebook moved
            for k, v in t.arrays.items():
                if k != "codebook":
                    assert np.array_equal(v, old.arrays[k]), (t.name, k)
    # the result decompresses to a model that runs
    model = tmp_path / "ft.onnx"
    assert run_cli("decompress", str(out), "-o", str(model)).returncode == 0
    ev = run_cli("eval", str(model), "--data", str(DATA / "mnist_test.npz"), "--samples", "400", "--json")
    assert (
        ev.returncode == 0
        and abs(json.loads(ev.stdout)["accuracy"] - rep["fidelity"]["accuracy_after"]) < 0.01
    )


def test_finetune_bad_options_are_one_line(train_npz: Path, plain_and_tuned: tuple, tmp_path: Path) -> None:
    plain_p = plain_and_tuned[0]
    res = run_cli(
        "finetune", str(plain_p), "--data", str(train_npz), "--epochs", "0", "-o", str(tmp_path / "x.nnc")
    )
    assert res.returncode == EXIT_USAGE and len(res.stderr.strip().splitlines()) == 1, res.stderr
    # no original and no labels: nothing to learn from
    nolabels = tmp_path / "x_only.npz"
    with np.load(train_npz) as d:
        np.savez(nolabels, x=d["x"][:64])
    res = run_cli("finetune", str(plain_p), "--data", str(nolabels), "-o", str(tmp_path / "y.nnc"))
    assert res.returncode == EXIT_USAGE and "labels" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "y.nnc").exists()
    # never over the input
    res = run_cli("finetune", str(plain_p), "--data", str(train_npz), "-o", str(plain_p), "--force")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1


def test_gradual_pruning_reaches_the_recipe_cut_like_the_prune_pass() -> None:
    from nncompress.finetune import _gradual
    from nncompress.io import load
    from nncompress.passes import run_pipeline

    g = load(MODELS / "lenet300.onnx")
    names = ["0.weight", "2.weight"]
    spec = "prune:sparsity=0.9:scope=global"
    at = _gradual({spec: names})
    weights = {n: np.asarray(g.weights[n].array) for n in names}
    assert not any(m.any() for m in at(0.0, weights).values())  # the ramp starts with nothing cut
    half = sum(int(m.sum()) for m in at(0.5, weights).values())
    size = sum(w.size for w in weights.values())
    assert half == round(0.9 * (1 - 0.5**3) * size)  # the cubic ramp
    # at its end, the same entries the pass zeroes on the same weights
    pruned, _ = run_pipeline(g, spec, select=lambda w: w.name in names, detailed=False)
    for n, m in at(1.0, weights).items():
        assert np.array_equal(m.reshape(weights[n].shape), np.asarray(pruned.weights[n].array) == 0), n


def test_a_budgeted_preset_is_searched_on_the_original_then_trained(train_npz: Path, tmp_path: Path) -> None:
    """Under a fidelity budget the settings are judged against the original, so no pruned-first
    stage runs before the search (a retrained copy differs from the original: the budget kept every
    tensor as it, 1.0x); the compressed model is trained after."""
    from nncompress.finetune import TrainOptions
    from nncompress.pipeline import compress

    r = compress(
        MODELS / "lenet300.onnx",
        method="sham",
        data=DATA / "mnist_test.npz",
        samples=128,
        finetune=TrainOptions(str(train_npz), epochs=1),
    )
    assert r.report["finetune"]["pruned_first"] is None
    assert r.report["totals"]["ratio"] > 3, r.report["totals"]
    assert "budget" in r.report
