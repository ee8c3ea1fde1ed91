"""compress -> .nnc -> decompress/eval, end to end through the CLI, on the shipped models."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nncompress.errors import EXIT_GATE, EXIT_INPUT, EXIT_OUTPUT, EXIT_USAGE
from nncompress.ir.interpreter import run
from nncompress.pipeline import graph_from_artifact
from nncompress.pipeline.recipe import PRESETS

from .conftest import DATA, MODELS, run_cli

DIGITS = str(DATA / "mnist_test.npz")
# The sham preset's own settings, with no fidelity budget: what tests of the format and the engine use
SHAM = PRESETS["sham"]


def compress(model: str, out: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    res = run_cli("compress", str(MODELS / model), "-o", str(out), "--data", DIGITS, "--json", *extra)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_sham_is_smaller_on_disk_by_the_reported_ratio(tmp_path: Path) -> None:
    out = tmp_path / "l.nnc"
    r = compress("lenet300.onnx", out, "--pipeline", SHAM)
    assert r["totals"]["output_bytes"] == out.stat().st_size
    assert r["totals"]["input_bytes"] == (MODELS / "lenet300.onnx").stat().st_size
    assert r["totals"]["ratio"] == pytest.approx(r["totals"]["input_bytes"] / out.stat().st_size)
    assert r["totals"]["ratio"] > 10
    assert r["totals"]["gzip9_input_bytes"] > 0.8 * r["totals"]["input_bytes"]  # float weights barely gzip
    f = r["fidelity"]
    assert f["accuracy_before"] == pytest.approx(0.938, abs=0.05)
    assert f["accuracy_drop"] < 0.03
    assert {row["format"] for row in r["layers"]} == {"sham"}
    # one global magnitude threshold: 80 % of all kernel weights are zero, unevenly across layers
    n = sum(np.prod(row["shape"]) for row in r["layers"])
    zeros = sum(row["sparsity"] * np.prod(row["shape"]) for row in r["layers"])
    assert zeros / n == pytest.approx(0.8, abs=1e-4)
    assert all(row["distinct"] <= 33 for row in r["layers"])  # 32 shared values and the zero


def test_same_input_recipe_and_seed_give_identical_bytes(tmp_path: Path) -> None:
    compress("vggmini.onnx", tmp_path / "a.nnc", "--method", "sham")
    compress("vggmini.onnx", tmp_path / "b.nnc", "--method", "sham")
    assert (tmp_path / "a.nnc").read_bytes() == (tmp_path / "b.nnc").read_bytes()


@pytest.mark.parametrize("name", ["lenet300.onnx", "vggmini.onnx", "vggmini.h5", "lenet300.keras"])
def test_decompress_runs_in_its_framework(name: str, tmp_path: Path) -> None:
    art = tmp_path / "m.nnc"
    compress(name, art, "--pipeline", SHAM)
    out = tmp_path / name
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    x = np.load(DATA / "mnist_test.npz")["x"][:100]
    mine = run(graph_from_artifact(art), x)[0]
    from .test_examples import framework_predict

    ref = framework_predict(out, x)
    np.testing.assert_allclose(ref, mine, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


def test_any_graph_decompresses_to_onnx(tmp_path: Path) -> None:
    art = tmp_path / "m.nnc"
    compress("vggmini.h5", art, "--method", "ham")
    res = run_cli("decompress", str(art), "-o", str(tmp_path / "m.onnx"))
    assert res.returncode == 0, res.stderr
    import onnxruntime as ort

    x = np.load(DATA / "mnist_test.npz")["x"][:50].reshape(-1, 28, 28, 1)
    s = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    ref = s.run(None, {s.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(run(graph_from_artifact(art), x)[0], ref, rtol=1e-4, atol=1e-5)


# Floors from benchmarks/README.md table (a), lenet300.onnx: the measured ratio less 10 % and the
# measured accuracy drop plus 1 point, so a regression of either shows here (a 5x smaller ratio
# used to pass a floor of 1.5).
PRESET_FLOORS = {  # method: (ratio measured, accuracy drop measured)
    "prune": (3.31, 0.013),
    "csr": (3.31, 0.013),
    "quantize": (6.28, -0.001),
    "im": (6.28, -0.001),
    "ham": (6.81, -0.001),
    "sham": (19.77, 0.014),
    "cser": (8.21, 0.014),
}


@pytest.mark.parametrize("method", list(PRESET_FLOORS))
def test_every_preset(method: str, tmp_path: Path) -> None:
    """The preset's own settings reach the benchmark's figures; under its default fidelity budget
    the preset keeps the budget, backing off (never further than its settings) where they break it."""
    ratio, drop = PRESET_FLOORS[method]
    r = compress("lenet300.onnx", tmp_path / "m.nnc", "--pipeline", PRESETS[method])
    assert r["totals"]["ratio"] > 0.9 * ratio
    assert r["fidelity"]["accuracy_drop"] <= drop + 0.01
    b = compress("lenet300.onnx", tmp_path / "b.nnc", "--method", method)
    assert b["budget"]["held"] is True
    assert b["fidelity"]["top1_agreement_ci95"][1] >= 0.99
    assert 1.5 < b["totals"]["ratio"] <= r["totals"]["ratio"] * 1.001
    if b["budget"]["searched"] is False:  # the preset kept it: its own settings, byte for byte
        assert b["totals"]["payload_bytes"] == r["totals"]["payload_bytes"]


def test_size_gate_fails_with_exit_4_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.nnc"
    res = run_cli(
        "compress", str(MODELS / "lenet300.onnx"), "-o", str(out), "--min-ratio", "1000", "--samples", "16"
    )
    assert res.returncode == EXIT_GATE, res.stderr
    assert "--min-ratio" in res.stderr and not out.exists()
    assert not list(tmp_path.iterdir())
    res = run_cli(
        "compress",
        str(MODELS / "lenet300.onnx"),
        "-o",
        str(out),
        "--min-ratio",
        "1000",
        "--keep-failed",
        "--samples",
        "16",
    )
    assert res.returncode == EXIT_GATE and out.exists()


def test_accuracy_gate(tmp_path: Path) -> None:
    out = tmp_path / "m.nnc"
    res = run_cli(
        "compress", str(MODELS / "lenet300.onnx"), "-o", str(out), "--pipeline", "prune:sparsity=0.99,csr",
        "--data", DIGITS, "--max-drop", "1",
    )  # fmt: skip
    assert res.returncode == EXIT_GATE, res.stderr
    assert "accuracy drop" in res.stderr and not out.exists()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.nnc"
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(out), "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["dry_run"] is True and not out.exists()


def test_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "m.nnc"
    out.write_bytes(b"precious")
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(out), "--samples", "8")
    assert res.returncode == EXIT_OUTPUT and out.read_bytes() == b"precious"
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(out), "--samples", "8", "--force")
    assert res.returncode == 0 and zipfile.is_zipfile(out)


@pytest.mark.parametrize(
    "args",
    [
        ("--method", "zip"),
        ("--pipeline", "prune:sparsity=2"),
        ("--pipeline", "prune:density=0.5"),
        ("--pipeline", "magic,sham"),
        ("--method", "sham", "--pipeline", "prune"),
        ("--samples", "0"),
    ],
)
def test_bad_recipes_are_usage_errors(args: tuple[str, ...], tmp_path: Path) -> None:
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(tmp_path / "m.nnc"), *args)
    assert res.returncode == EXIT_USAGE, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_corrupt_artifact_is_a_clean_error(tmp_path: Path) -> None:
    art = tmp_path / "m.nnc"
    compress("lenet300.onnx", art, "--method", "sham")
    data = art.read_bytes()
    for i, bad in enumerate([data[: len(data) // 2], data[:-30], data[:200] + bytes(200) + data[400:]]):
        p = tmp_path / f"bad{i}.nnc"
        p.write_bytes(bad)
        for cmd in (
            ("decompress", str(p), "-o", str(tmp_path / f"o{i}.onnx")),
            ("eval", str(p), "--data", DIGITS),
        ):
            res = run_cli(*cmd)
            assert res.returncode == EXIT_INPUT, (cmd, res.stderr)
            assert len(res.stderr.strip().splitlines()) == 1 and str(p) in res.stderr


def test_eval_reports_accuracy_and_fidelity(tmp_path: Path) -> None:
    art = tmp_path / "m.nnc"
    compress("vggmini.onnx", art, "--method", "sham")
    res = run_cli("eval", str(art), "--data", DIGITS, "--reference", str(MODELS / "vggmini.onnx"), "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["samples"] == 1000 and 0.9 < r["accuracy"] <= 1
    assert r["fidelity"]["top1_agreement"] > 0.9


def test_weights_only_input_reports_weight_error_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    m = torch.jit.load(str(MODELS / "lenet300.pt"))
    sd = tmp_path / "sd.pt"
    torch.save(m.state_dict(), sd)
    res = run_cli("compress", str(sd), "-o", str(tmp_path / "sd.nnc"), "--method", "sham", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["fidelity"] is None
    assert any("weight error only" in n for n in r["notes"])
    assert all(0 < row["rel_error"] < 1 for row in r["layers"])
    res = run_cli("decompress", str(tmp_path / "sd.nnc"), "-o", str(tmp_path / "back.pt"))
    assert res.returncode == 0, res.stderr
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert list(back) == list(m.state_dict())


def test_inspect_artifact_accounts_for_every_byte(tmp_path: Path) -> None:
    art = tmp_path / "m.nnc"
    compress("vggmini.h5", art, "--pipeline", SHAM)
    res = run_cli("inspect", str(art), "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["file_bytes"] == art.stat().st_size
    t = r["totals"]
    assert t["payload_bytes"] + t["skeleton_bytes_stored"] + t["container_bytes"] == r["file_bytes"]
    kernels = {row["name"]: row["format"] for row in r["tensors"] if row["shape"] and len(row["shape"]) >= 2}
    assert set(kernels.values()) == {"sham"}
    table = run_cli("inspect", str(art))
    assert table.returncode == 0 and "sham" in table.stderr


def test_recipe_rules_later_wins_and_exclude(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[[rule]]\nop = "Dense"\nmethod = "sham"\n\n'
        '[[rule]]\nop = "Conv"\npipeline = "quantize:method=kmeans:k=16,ham"\n\n'
        '[[rule]]\nmatch = "fc2"\nexclude = true\n'
    )
    r = compress("vggmini.h5", tmp_path / "m.nnc", "--recipe", str(recipe))
    fmts = {row["layer"]: row["format"] for row in r["layers"]}
    assert fmts["fc1"] == "sham" and "fc2" not in fmts
    assert {fmts[c] for c in ("conv1", "conv2", "conv3", "conv4")} == {"ham"}
    assert r["recipe"]["rule"][2] == {"match": "fc2", "exclude": True}


@pytest.mark.parametrize(
    "text",
    [
        '[[rule]]\nmethod = "zip"\n',
        "[[rule]]\nwhat = 1\n",
        "rule = 3\n",
        "[[rule\n",
        '[[rule]]\nregex = "("\nmethod="sham"\n',
    ],
)
def test_bad_recipe_files(text: str, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    res = run_cli(
        "compress", str(MODELS / "lenet300.onnx"), "-o", str(tmp_path / "m.nnc"), "--recipe", str(recipe)
    )
    assert res.returncode == EXIT_INPUT, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and str(recipe) in res.stderr


@pytest.mark.parametrize("method", ["lowrank", "sss", "dct", "psm"])
@pytest.mark.parametrize("model", ["lenet300.onnx", "vggmini.onnx"])
def test_structured_methods_at_a_budget_decompress_to_onnx(method: str, model: str, tmp_path: Path) -> None:
    art = tmp_path / "m.nnc"
    r = compress(model, art, "--method", method, "--budget", "0.2", "--samples", "200")
    rows = [row for row in r["layers"] if row["format"] == method]
    assert rows, r["layers"]
    for row in rows:
        assert 0 < row["rel_error"] < 1
        floats_budget = 0.2 * row["bytes_before"]
        # stored floats stay within the budget; sparse positions (dct, psm) add their index bytes
        assert row["bytes_after"] <= (floats_budget if method in ("lowrank", "sss") else 2 * floats_budget)
    # no retraining: the MLP keeps most of its accuracy at 20 % of its parameters; the small CNN does
    # not (about 30 % with lowrank on every conv), which the report must show, not hide
    if model.startswith("lenet"):
        assert r["fidelity"]["accuracy_after"] > 0.5
    assert 0 <= r["fidelity"]["accuracy_after"] <= r["fidelity"]["accuracy_before"] + 0.02
    out = tmp_path / "m.onnx"
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    import onnxruntime as ort

    x = np.load(DATA / "mnist_test.npz")["x"][:50]
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    xin = x.reshape(-1, 1, 28, 28) if model.startswith("vgg") else x
    ref = s.run(None, {s.get_inputs()[0].name: xin})[0]
    np.testing.assert_allclose(run(graph_from_artifact(art), xin)[0], ref, rtol=1e-4, atol=1e-4)


def test_budget_is_for_structured_formats_only(tmp_path: Path) -> None:
    res = run_cli(
        "compress",
        str(MODELS / "lenet300.onnx"),
        "-o",
        str(tmp_path / "m.nnc"),
        "--method",
        "sham",
        "--budget",
        "0.1",
    )
    assert res.returncode == EXIT_USAGE and "--budget" in res.stderr


def test_release_drops_the_originals_and_dense_layers_run_on_compressed_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nncompress import native
    from nncompress.formats.shaped import Shaped
    from nncompress.io import load
    from nncompress.pipeline import compress_graph, plan_from

    plan = plan_from("sham", None, None)
    kept, freed = load(MODELS / "lenet300.onnx"), load(MODELS / "lenet300.onnx")
    _, e1, r1 = compress_graph(kept, plan, seed=0)
    g2, e2, r2 = compress_graph(freed, plan, seed=0, release=True)
    assert r1 == r2
    for a, b in zip(e1, e2, strict=True):
        assert (a.name, a.format, a.meta) == (b.name, b.format, b.meta)
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    for name, w in freed.weights.items():  # no memory left behind, shape and dtype kept
        assert w.shape == kept.weights[name].shape and w.dtype == kept.weights[name].dtype
        assert not np.any(w.array) and all(s == 0 for s in w.array.strides)
    calls = []
    real = Shaped.dot

    def spy(self: Shaped, x: np.ndarray) -> np.ndarray | None:
        y = real(self, x)
        calls.append(y is not None)
        return y

    monkeypatch.setattr(Shaped, "dot", spy)
    x = np.load(DATA / "mnist_test.npz")["x"][:50]
    fast = run(g2, x)[0]
    assert calls and all(calls) == native.available()
    for w in g2.weights.values():
        if w.is_compressed:
            w.value = w.array  # decoded: the plain matmul path
    slow = run(g2, x)[0]
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5 * float(np.abs(slow).max()))
