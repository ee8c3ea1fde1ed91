"""fidelity: which runtime measures it, what happens when none can, intervals, determinism.

Fixtures are ONNX graphs built here with onnx.helper: symbolic batch and spatial dims; three inputs
with an int64 scalar; an op only onnxruntime runs; an op nothing here runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nncompress.errors import EXIT_GATE, UnsupportedError
from nncompress.fidelity import paired_drop_interval, reference, wilson
from nncompress.inputs import GUESSES, signatures
from nncompress.io import load
from nncompress.ir.interpreter import run

from .conftest import DATA, MODELS, run_cli

DIGITS = DATA / "mnist_test.npz"

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _save(
    tmp_path: Path, name: str, nodes: list, inputs: list, outputs: list, inits: list, opset: int = 13, **kw
) -> Path:  # type: ignore[type-arg]
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), *kw.get("extra_opsets", [])])
    m.ir_version = 8
    p = tmp_path / f"{name}.onnx"
    onnx.save(m, str(p))
    return p


def _w(name: str, *shape: int, seed: int = 0) -> object:
    return numpy_helper.from_array(
        np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.1, name
    )


def conv_symbolic(tmp_path: Path, flatten_to: int | None = None) -> Path:
    """Conv over (N, 3, H, W) with H and W symbolic; with ``flatten_to`` a Flatten + Gemm that only
    takes one spatial size (16x16 maps to 8 * 16 * 16 features)."""
    nodes = [
        helper.make_node("Conv", ["img", "k"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
    ]
    inits = [_w("k", 8, 3, 3, 3)]
    if flatten_to is None:
        nodes += [
            helper.make_node("GlobalAveragePool", ["r"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "w", "b"], ["out"], transB=1),
        ]
        inits += [_w("w", 40, 8, seed=1), _w("b", 40, seed=2)]
    else:
        nodes += [
            helper.make_node("Flatten", ["r"], ["f"]),
            helper.make_node("Gemm", ["f", "w", "b"], ["out"], transB=1),
        ]
        inits += [_w("w", 10, 8 * flatten_to * flatten_to, seed=1), _w("b", 10, seed=2)]
    return _save(
        tmp_path,
        "convsym" if flatten_to is None else f"convflat{flatten_to}",
        nodes,
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", None])],
        inits,
    )


def three_inputs(tmp_path: Path) -> Path:
    """x (batch, 16) float, ids (batch, 4) int64 into an embedding table, sr an int64 scalar."""
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
        helper.make_node("ReduceMean", ["e"], ["em"], axes=[1], keepdims=0),
        helper.make_node("Add", ["x", "em"], ["h"]),
        helper.make_node("MatMul", ["h", "w"], ["m"]),
        helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["m", "srf"], ["out"]),
    ]
    return _save(
        tmp_path,
        "three",
        nodes,
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 64])],
        [_w("table", 100, 16), _w("w", 16, 64, seed=3)],
    )


def with_op(tmp_path: Path, op: str, domain: str = "", name: str = "withop") -> Path:
    """Gemm -> ``op`` -> Gemm: weights to compress on both sides of an op."""
    nodes = [
        helper.make_node("Gemm", ["x", "w1"], ["a"], transB=1),
        helper.make_node(op, ["a"], ["b"], domain=domain),
        helper.make_node("Gemm", ["b", "w2"], ["out"], transB=1),
    ]
    extra = [helper.make_opsetid(domain, 1)] if domain else []
    return _save(
        tmp_path,
        name,
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 32])],
        [_w("w1", 64, 64, seed=4), _w("w2", 32, 64, seed=5)],
        extra_opsets=extra,
    )


def compress_json(model: Path, tmp_path: Path, *extra: str, code: int = 0) -> dict:  # type: ignore[type-arg]
    res = run_cli("compress", str(model), "-o", str(tmp_path / "out.nnc"), "--json", "--force", *extra)
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr
    return json.loads(res.stdout)


# -- the fixtures, end to end ---------------------------------------------------------------------------


def test_symbolic_batch_and_spatial_dims(tmp_path: Path) -> None:
    p = conv_symbolic(tmp_path)
    r = compress_json(p, tmp_path, "--method", "quantize")
    f = r["fidelity"]
    assert f["runtime"].startswith("onnxruntime") and f["samples"] == 64
    assert r["inputs"][0]["shape"] == [1, 3, 32, 32] and r["inputs"][0]["guessed_axes"] == [2, 3]
    assert any("guessed 32" in n and "H" in n and "W" in n for n in r["notes"])
    r = compress_json(p, tmp_path, "--method", "quantize", "--input-shape", "img=1x3x20x24", "--samples", "5")
    assert r["inputs"][0]["shape"] == [1, 3, 20, 24] and r["fidelity"]["samples"] == 5
    assert not any("guessed" in n for n in r["notes"])


def test_a_guess_the_model_refuses_is_replaced_by_one_it_takes(tmp_path: Path) -> None:
    """A Flatten + Gemm takes one spatial size: the guesses are tried in a fixed order."""
    p = conv_symbolic(tmp_path, flatten_to=28)
    assert GUESSES.index(28) > 0
    r = compress_json(p, tmp_path, "--method", "quantize")
    assert r["fidelity"] is not None, r["notes"]
    assert any("guessed 28" in n for n in r["notes"])


def test_three_inputs_with_an_int64_scalar(tmp_path: Path) -> None:
    p = three_inputs(tmp_path)
    g = load(p)
    specs, notes = signatures(g)
    assert [(s.name, s.fill, s.batch_axis) for s in specs] == [
        ("x", "normal", 0),
        ("ids", "ids", 0),
        ("sr", "zeros", None),
    ]
    assert specs[1].high == 100 and any("sr" in n for n in notes)
    r = compress_json(p, tmp_path, "--method", "quantize")
    f = r["fidelity"]
    assert f["runtime"].startswith("onnxruntime") and f["samples"] == 64
    assert 0 < f["rel_error_mean"] < 0.2
    # --data keyed by name, labels under y
    d = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    x, ids = rng.standard_normal((30, 16)).astype(np.float32), rng.integers(0, 100, (30, 4))
    np.savez(d, x=x, ids=ids, sr=np.array(16000), y=rng.integers(0, 64, 30))
    r = compress_json(p, tmp_path, "--method", "quantize", "--data", str(d))
    assert r["fidelity"]["samples"] == 30 and "accuracy_drop_ci95" in r["fidelity"]


def test_an_op_only_onnxruntime_runs(tmp_path: Path) -> None:
    p = with_op(tmp_path, "Hardmax")
    g = load(p)
    with pytest.raises(UnsupportedError, match="Hardmax"):  # else pick another op for this test
        run(g, np.zeros((1, 64), np.float32))
    r = compress_json(p, tmp_path, "--method", "quantize", "--max-drop", "100")
    assert r["fidelity"]["runtime"].startswith("onnxruntime") and r["fidelity_not_measured"] is None
    assert (tmp_path / "out.nnc").exists()


def test_an_op_nothing_runs_still_compresses(tmp_path: Path) -> None:
    p = with_op(tmp_path, "Mystery", domain="com.example", name="mystery")
    r = compress_json(p, tmp_path, "--method", "sham")
    assert r["fidelity"] is None and (tmp_path / "out.nnc").exists()
    why = r["fidelity_not_measured"]
    assert "onnxruntime" in why and "Mystery" in why
    assert any(n.startswith("fidelity not measured") for n in r["notes"])
    assert all(0 < row["rel_error"] < 1 for row in r["layers"])
    res = run_cli("decompress", str(tmp_path / "out.nnc"), "-o", str(tmp_path / "back.onnx"))
    assert res.returncode == 0, res.stderr
    (tmp_path / "out.nnc").unlink()
    res = run_cli("compress", str(p), "-o", str(tmp_path / "out.nnc"), "--max-drop", "5")
    assert res.returncode == EXIT_GATE and not (tmp_path / "out.nnc").exists()
    assert "--max-drop 5 cannot be checked: fidelity was not measured" in res.stderr
    r = compress_json(p, tmp_path, "--max-drop", "5", "--keep-failed", code=EXIT_GATE)
    assert r["gates"] and (tmp_path / "out.nnc").exists()


def test_weights_only_max_drop_fails(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sd = tmp_path / "sd.pt"
    torch.save({"fc.weight": torch.randn(64, 64), "fc.bias": torch.randn(64)}, sd)
    res = run_cli("compress", str(sd), "-o", str(tmp_path / "sd.nnc"), "--max-drop", "1")
    assert res.returncode == EXIT_GATE and "weights-only" in res.stderr


@pytest.mark.parametrize("model", ["vggmini.onnx", "lenet300.keras"])
def test_the_same_command_gives_the_same_figures(model: str, tmp_path: Path) -> None:
    a = compress_json(MODELS / model, tmp_path, "--method", "sham")
    b = compress_json(MODELS / model, tmp_path, "--method", "sham")
    assert a["fidelity"] == b["fidelity"] and a["fidelity"]["samples"] == 64
    assert a == b


def test_reference_on_examples_picks_the_runtime() -> None:
    assert reference(load(MODELS / "lenet300.onnx"), samples=4).runtime.startswith("onnxruntime")
    r = reference(load(MODELS / "lenet300.keras"), samples=4)
    assert r.runtime == "reference executor" and r.out is not None and r.out.shape == (4, 10)


# -- intervals -------------------------------------------------------------------------------------------


def test_wilson_interval() -> None:
    lo, hi = wilson(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-3) and hi == pytest.approx(0.9785, abs=1e-3)
    assert wilson(0, 10)[0] == 0 and wilson(10, 10)[1] == pytest.approx(1)


def test_paired_drop_interval() -> None:
    before = np.array([True] * 90 + [False] * 10)
    lo, hi = paired_drop_interval(before, before.copy())
    assert lo < 0 < hi and hi - lo < 0.05  # no disagreement: narrow, but not zero width
    after = before.copy()
    after[:9] = False  # nine samples lost
    lo, hi = paired_drop_interval(before, after)
    assert 0 < lo < 0.09 < hi < 0.2
    big = np.repeat(before, 10)
    lo2, hi2 = paired_drop_interval(big, np.repeat(after, 10))
    assert hi2 - lo2 < (hi - lo) / 2.5  # ten times the samples: about a third the width


def test_scores_are_compared_rather_than_a_label_output(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["scores"], transB=1),
        helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
    ]
    p = _save(
        tmp_path,
        "labelled",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 32]),
        ],
        [_w("w", 32, 64)],
    )
    r = compress_json(p, tmp_path, "--method", "quantize")
    assert r["fidelity"]["output"] == "scores" and r["fidelity"]["rel_error_mean"] > 0


def test_eval_feeds_inputs_by_name_in_onnxruntime(tmp_path: Path) -> None:
    p = three_inputs(tmp_path)
    compress_json(p, tmp_path, "--method", "quantize")
    d = tmp_path / "d.npz"
    rng = np.random.default_rng(1)
    np.savez(d, x=rng.standard_normal((20, 16)), ids=rng.integers(0, 100, (20, 4)), sr=np.array(3))
    res = run_cli("eval", str(tmp_path / "out.nnc"), "--data", str(d), "--reference", str(p), "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["samples"] == 20 and r["runtime"].startswith("onnxruntime") and "accuracy" not in r
    assert r["fidelity"]["output"] == "out" and 0 < r["fidelity"]["rel_error_mean"] < 0.2
    np.savez(d, x=rng.standard_normal((20, 16)))
    res = run_cli("eval", str(p), "--data", str(d))
    assert res.returncode == 3 and "no array for input ids, sr" in res.stderr


def test_an_onnx_graph_onnxruntime_refuses_falls_back_to_the_executor(tmp_path: Path) -> None:
    """The IR's own Dense op in the default domain: no ONNX runtime knows it, the executor does."""
    nodes = [helper.make_node("Dense", ["x", "w", "b"], ["out"])]
    p = _save(
        tmp_path,
        "irdense",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 32])],
        [_w("w", 32, 64), _w("b", 32, seed=1)],
    )
    r = compress_json(p, tmp_path, "--method", "quantize")
    assert r["fidelity"]["runtime"] == "reference executor" and r["fidelity"]["samples"] == 64
    assert any(n.startswith("onnxruntime cannot load it") and "Dense" in n for n in r["notes"])


def test_figures_hold_with_a_cpu_heavy_job_beside(tmp_path: Path) -> None:
    import subprocess
    import sys

    quiet = compress_json(MODELS / "lenet300.onnx", tmp_path, "--method", "sham", "--data", str(DIGITS))
    burn = [
        subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<60: pass"])
        for _ in range(2)
    ]
    try:
        busy = compress_json(MODELS / "lenet300.onnx", tmp_path, "--method", "sham", "--data", str(DIGITS))
    finally:
        for b in burn:
            b.kill()
            b.wait()
    assert busy["fidelity"] == quiet["fidelity"] and quiet["fidelity"]["samples"] == 1000


def test_large_outputs_spill_to_a_temp_file_with_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    import nncompress.runtime as rt
    from nncompress.fidelity import figures

    g = load(MODELS / "lenet300.onnx")
    mem = reference(g, samples=40)
    monkeypatch.setattr(rt, "SPILL_BYTES", 0)
    spilled = reference(g, samples=40)
    assert isinstance(spilled.out, np.memmap) and not isinstance(mem.out, np.memmap)
    assert mem.out is not None and mem.data is not None and spilled.out is not None
    np.testing.assert_array_equal(mem.out, spilled.out)
    noisy = mem.out + np.random.default_rng(0).standard_normal(mem.out.shape).astype(np.float32)
    assert figures(mem.out, noisy, mem.data) == figures(spilled.out, noisy, mem.data)


def test_torchscript_source_is_measured_in_torch(tmp_path: Path) -> None:
    """TorchScript is deployed with torch: both models run there, the compressed one from the bytes
    decompress would write."""
    art = tmp_path / "v.nnc"
    res = run_cli("compress", str(MODELS / "vggmini.pt"), "--method", "sham", "-o", str(art), "--json",
                  "--data", str(DATA / "mnist_test.npz"), "--samples", "200")  # fmt: skip
    assert res.returncode == 0, res.stderr
    fid = json.loads(res.stdout)["fidelity"]
    assert fid["runtime"].startswith("torch ") and fid["samples"] == 200
    assert 0.9 < fid["top1_agreement"] < 1.0  # sham changes some answers, not most
