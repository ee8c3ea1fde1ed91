"""`nncompress bench`: real native timings beside dense and CSR, and an honest fallback without them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nncompress import native

from .conftest import MODELS, run_cli


def test_bench_artifact_times_its_stored_formats(tmp_path: Path) -> None:
    art = tmp_path / "m.nnc"
    assert (
        run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(art), "--samples", "8").returncode == 0
    )
    res = run_cli("bench", str(art), "--batch", "1,4", "--repeat", "3", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["native"] is native.available()
    rows = r["rows"]
    assert {row["format"] for row in rows} == {"sham"}
    assert {row["batch"] for row in rows} == {1, 4}
    for row in rows:
        assert row["kernel"] == ("native" if native.available() else "numpy-ref")
        assert row["max_abs_err"] < 1e-4
        assert 0 < row["psi"] < 0.2
        assert row["time_s"] > 0 and row["dense_s"] > 0 and row["csr_s"] > 0
        assert abs(row["vs_csr"] - row["time_s"] / row["csr_s"]) < 1e-9


def test_bench_plain_model_compares_formats_side_by_side() -> None:
    res = run_cli(
        "bench",
        str(MODELS / "vggmini.onnx"),
        "--formats",
        "csr,ham,sham,lowrank",
        "--batch",
        "2",
        "--repeat",
        "2",
    )
    assert res.returncode == 0, res.stderr
    for word in ("csr", "ham", "sham", "lowrank", "vs dense", "vs csr"):
        assert word in res.stderr


def test_bench_without_the_extension_says_so_in_one_line(tmp_path: Path) -> None:
    code = (
        "import sys, nncompress.native._call as c; c.lib = None\n"
        "from nncompress.cli import main\n"
        f"main(['bench', {str(MODELS / 'lenet300.onnx')!r}, '--formats', 'csr', '--repeat', '2', '--json'])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["native"] is False and r["notes"]
    assert {row["kernel"] for row in r["rows"]} == {"numpy-ref"}
    assert res.stderr.count("native extension not built") == 1


def test_bench_bad_options() -> None:
    for args in (("--batch", "0"), ("--batch", "a"), ("--formats", "zip"), ("--repeat", "0")):
        res = run_cli("bench", str(MODELS / "lenet300.onnx"), *args)
        assert res.returncode == 2, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1
