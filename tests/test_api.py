"""The public Python API: pinned by name (like onnx-ir's public API test), and each function used
as the README shows, agreeing byte for byte with the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import nncompress as n
from nncompress.errors import OutputError, UsageError

from .conftest import DATA, MODELS, ROOT, run_cli

PUBLIC = ["Result", "compress", "decompress", "inspect", "load", "save"]


def test_public_api_is_exactly_this() -> None:
    assert sorted(n.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(n, name) is not None
    with pytest.raises(AttributeError):
        n.compress_graph  # noqa: B018  (internal: reached through nncompress.pipeline)


def test_import_is_light() -> None:
    code = "import sys, nncompress; print(sorted(m for m in ('numpy', 'torch', 'onnx', 'h5py') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_readme_one_liner_matches_the_cli_bytes(tmp_path: Path) -> None:
    r = n.compress(MODELS / "vggmini.onnx", method="sham", samples=8)
    saved = n.save(r, tmp_path / "x.nnc")
    assert r.report["output"] == str(saved)
    assert r.ratio == pytest.approx(r.report["totals"]["input_bytes"] / saved.stat().st_size)
    assert r.fidelity is not None and r.fidelity["samples"] == 8
    cli = tmp_path / "cli.nnc"
    res = run_cli(
        "compress", str(MODELS / "vggmini.onnx"), "--method", "sham", "-o", str(cli), "--samples", "8", "-q"
    )
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(cli.read_bytes()).digest()
    assert (
        "x2.nnc"
        in subprocess.run(
            [
                sys.executable,
                "-c",
                "import nncompress as n; r = n.compress('examples/models/vggmini.onnx', "
                f"method='sham', samples=4); print(n.save(r, {str(tmp_path / 'x2.nnc')!r}))",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout
    )


def test_save_refuses_to_overwrite_and_non_nnc(tmp_path: Path) -> None:
    r = n.compress(MODELS / "lenet300.onnx", method="ham", samples=4)
    out = n.save(r, tmp_path / "a.nnc")
    with pytest.raises(OutputError):
        n.save(r, out)
    n.save(r, out, force=True)
    with pytest.raises(UsageError):
        n.save(r, tmp_path / "a.onnx")
    dry = n.compress(MODELS / "lenet300.onnx", method="ham", dry_run=True)
    with pytest.raises(UsageError):
        n.save(dry, tmp_path / "b.nnc")


def test_gates_accuracy_with_labels(tmp_path: Path) -> None:
    r = n.compress(MODELS / "lenet300.onnx", method="sham", data=DATA / "mnist_test.npz", samples=200)
    assert r.fidelity is not None and r.fidelity["samples"] == 200
    assert r.gates(min_ratio=1000) == [f"size ratio {r.ratio:.2f}x is below --min-ratio 1000"]
    assert r.gates(max_drop=100) == []


def test_decompress_inspect_and_load_an_artifact(tmp_path: Path) -> None:
    art = n.save(n.compress(MODELS / "vggmini.pt", method="sham", samples=4), tmp_path / "v.nnc")
    out = n.decompress(art, tmp_path / "v.onnx")
    assert out.stat().st_size > 0
    summary = n.inspect(art)
    assert {t["format"] for t in summary["tensors"]} >= {"sham"}
    g = n.load(art)
    assert any(w.is_compressed for w in g.weights.values())
    assert n.inspect(out)["format"] == "onnx"
