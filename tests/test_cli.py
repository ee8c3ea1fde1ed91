"""The command line: inspect as table and JSON, exit codes, one-line errors, a fast --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nncompress.cli.app import app
from nncompress.errors import EXIT_INPUT, EXIT_USAGE

from .conftest import MODELS, run_cli

# vgg16* are built on demand by examples/make_vgg16.py for benchmarks, not tests.
EXAMPLES = sorted(
    p.name
    for p in MODELS.iterdir()
    if p.suffix in {".h5", ".keras", ".pt", ".onnx"} and not p.name.startswith("vgg16")
)


def test_help_imports_no_framework() -> None:
    code = (
        "import sys; from nncompress.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'onnxruntime', 'onnx', 'h5py') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.parametrize("name", EXAMPLES)
def test_inspect_json_on_every_example(name: str) -> None:
    res = CliRunner().invoke(app, ["inspect", str(MODELS / name), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["schema"] == "nncompress.inspect/1"
    assert r["has_graph"] is True
    assert r["inputs"] and r["outputs"]
    assert r["totals"]["params"] == sum(row["params"] for row in r["layers"])
    # lenet300: 784*300+300 + 300*100+100 + 100*10+10. vggmini: its convs and Dense layers, plus the
    # 4 statistics of its 2 BatchNorm layers (16 and 32 channels) except in ONNX, where the exporter
    # folded BatchNorm into the convolutions.
    expected = 266_610 if name.startswith("lenet") else 117_434 + (0 if name.endswith(".onnx") else 4 * 48)
    assert r["totals"]["params"] == expected
    share = r["totals"]["dense_share"] + r["totals"]["conv_share"]
    assert 0.95 < share <= 1.0


def test_inspect_table_goes_to_stderr() -> None:
    res = run_cli("inspect", str(MODELS / "vggmini.onnx"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    for word in ("layer", "sparsity", "entropy", "Conv", "total"):
        assert word in res.stderr


def test_inspect_reports_weight_statistics() -> None:
    res = CliRunner().invoke(app, ["inspect", str(MODELS / "lenet300.onnx"), "--json"])
    rows = {r["op"] for r in json.loads(res.stdout)["layers"]}
    assert rows == {"Dense"}
    row = json.loads(res.stdout)["layers"][0]
    assert 0 <= row["sparsity"] < 0.01 and row["distinct"] > 1000 and 10 < row["entropy_bits"] < 32


def _one_line_error(res: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("nncompress: error: ")
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0]


@pytest.mark.parametrize("suffix", [".onnx", ".pt", ".h5", ".keras"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"empty{suffix}"
    p.write_bytes(b"")
    _one_line_error(run_cli("inspect", str(p)), EXIT_INPUT, str(p), "empty")


@pytest.mark.parametrize("name", ["lenet300.onnx", "lenet300.pt", "lenet300.h5", "lenet300.keras"])
def test_truncated_file(tmp_path: Path, name: str) -> None:
    data = (MODELS / name).read_bytes()
    p = tmp_path / name
    p.write_bytes(data[: len(data) // 2])
    _one_line_error(run_cli("inspect", str(p)), EXIT_INPUT, str(p))


def test_text_file_named_onnx(tmp_path: Path) -> None:
    p = tmp_path / "notes.onnx"
    p.write_text("this is not a model\n" * 20)
    _one_line_error(run_cli("inspect", str(p)), EXIT_INPUT, str(p))


def test_unknown_extension(tmp_path: Path) -> None:
    p = tmp_path / "model.tflite"
    p.write_bytes(b"\0" * 64)
    _one_line_error(run_cli("inspect", str(p)), EXIT_INPUT, str(p), ".tflite")


def test_missing_file(tmp_path: Path) -> None:
    _one_line_error(run_cli("inspect", str(tmp_path / "nope.onnx")), EXIT_INPUT, "no such file")


def test_pickled_module_is_read_without_trust(tmp_path: Path) -> None:
    """Issue 13 item 8: a whole pickled nn.Module is read by the inert unpickler, no --trust-pickle."""
    torch = pytest.importorskip("torch")
    p = tmp_path / "module.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 3)), p)
    for extra in ((), ("--trust-pickle",)):
        res = run_cli("inspect", str(p), "--json", *extra)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["totals"]["params"] == 15


def test_weights_only_h5_says_so(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="d")])
    p = tmp_path / "w.weights.h5"
    m.save_weights(str(p))
    res = run_cli("inspect", str(p), "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["has_graph"] is False
    assert any("weights only" in n for n in r["notes"])
    assert r["totals"]["params"] == 28


def test_wrong_flag_is_a_usage_error() -> None:
    _one_line_error(run_cli("inspect", "--nope", "x.onnx"), EXIT_USAGE, "--nope")


def test_version() -> None:
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("nncompress ")


@pytest.mark.parametrize(
    "shape", ["nosuch=1x784", "input=1x783", "input=1x784x1", "1xAx3", "input=1x784 input=2x784"]
)
def test_bad_input_shape_is_a_usage_error(shape: str, tmp_path: Path) -> None:
    args = [a for s in shape.split() for a in ("--input-shape", s)]
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(tmp_path / "m.nnc"), *args)
    _one_line_error(res, EXIT_USAGE, "--input-shape")
    assert not (tmp_path / "m.nnc").exists()
