"""`nncompress bench` and `nncompress.bench`: real native timings beside dense and CSR, rows that match
the model, and an honest fallback without the extension; the shared timing and table helpers."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nncompress import native, timing
from nncompress.bench import DEFAULT_PREPARE, load_layers

from .conftest import MODELS, run_cli

REPORT_KEYS = {"schema", "model", "threads", "repeat", "native", "notes", "rows", "skipped"}
ROW_KEYS = {"layer", "shape", "format", "kernel", "batch", "bytes", "psi", "time_s", "iqr_s", "dense_s"}
ROW_KEYS |= {"csr_s", "vs_dense", "vs_csr", "max_abs_err"}
KERNEL = "native" if native.available() else "numpy-ref"
# vggmini.onnx's weights of at least --min-size (4096) entries, as (out, in*kh*kw)
VGGMINI_LAYERS = {"9.weight": [32, 288], "13.weight": [64, 1568], "onnx::Conv_43": [32, 144]}


def _positive(v: Any) -> bool:
    return isinstance(v, float) and math.isfinite(v) and v > 0


def _check_report(r: dict[str, Any], repeat: int) -> None:
    """The --json schema (keys unchanged), and every timing a positive number."""
    assert set(r) == REPORT_KEYS and r["schema"] == "nncompress.bench/1"
    assert r["repeat"] == repeat and r["threads"] == 1 and r["native"] is native.available()
    assert r["rows"]
    for row in r["rows"]:
        assert set(row) == ROW_KEYS
        assert row["kernel"] == KERNEL
        for key in ("time_s", "dense_s", "csr_s", "vs_dense", "vs_csr", "psi"):
            assert _positive(row[key]), (key, row)
        assert row["iqr_s"] >= 0 and row["max_abs_err"] < 1e-4
        assert isinstance(row["bytes"], int) and row["bytes"] > 0


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """lenet300.onnx compressed with the default method, and compress's --json report of it."""
    art = tmp_path_factory.mktemp("bench") / "m.nnc"
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(art), "--samples", "8", "--json")
    assert res.returncode == 0, res.stderr
    yield art, json.loads(res.stdout)


def test_bench_artifact_times_its_stored_formats(artifact: tuple[Path, dict[str, Any]]) -> None:
    art, compressed = artifact
    res = run_cli("bench", str(art), "--batch", "1,4", "--repeat", "3", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    _check_report(r, 3)
    # one row per stored kernel of at least --min-size entries and batch, in the stored format and
    # with the payload bytes compress reported for it
    stored = {c["weight"]: c for c in compressed["layers"] if math.prod(c["shape"]) >= 4096}
    assert len(stored) == 2
    got = [(row["layer"], row["batch"]) for row in r["rows"]]
    assert sorted(got) == sorted(itertools.product(stored, [1, 4]))
    for row in r["rows"]:
        c = stored[row["layer"]]
        assert row["format"] == c["format"] == "sham"
        assert row["bytes"] == c["bytes_after"]
        assert row["shape"] == [c["shape"][0], math.prod(c["shape"][1:])]
        assert 0 < row["psi"] < 0.2


def test_layers_of_an_artifact_add_the_asked_formats(artifact: tuple[Path, dict[str, Any]]) -> None:
    layers = load_layers(artifact[0], ["csr", "sham"], DEFAULT_PREPARE)
    assert [layer.name for layer in layers] == [c["weight"] for c in artifact[1]["layers"]]
    for layer in layers:
        assert [f.name for f in layer.encoded] == ["sham", "csr"]  # the stored one first, not twice
        for fmt in layer.encoded:
            np.testing.assert_array_equal(fmt.to_dense(), layer.dense)


def test_bench_plain_model_compares_formats_side_by_side() -> None:
    args = ["--formats", "csr,ham,sham,lowrank", "--batch", "2", "--repeat", "2", "--json"]
    res = run_cli("bench", str(MODELS / "vggmini.onnx"), *args)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    _check_report(r, 2)
    per_layer: dict[str, list[str]] = {}
    for row in r["rows"]:
        assert row["batch"] == 2 and row["shape"] == VGGMINI_LAYERS[row["layer"]]
        per_layer.setdefault(row["layer"], []).append(row["format"])
    assert per_layer == {layer: ["csr", "ham", "sham", "lowrank"] for layer in VGGMINI_LAYERS}
    # every format of a layer is compared with the same baseline measurements
    for layer in VGGMINI_LAYERS:
        rows = [row for row in r["rows"] if row["layer"] == layer]
        assert len({(row["dense_s"], row["csr_s"]) for row in rows}) == 1
    # the encodings differ: a lossless sparse one is smaller than the matrix, lowrank fits a budget
    sizes = {(row["layer"], row["format"]): row["bytes"] for row in r["rows"]}
    assert sizes["13.weight", "sham"] < sizes["13.weight", "csr"] < 64 * 1568 * 4


def test_bench_prints_one_table_row_per_layer_and_format() -> None:
    res = run_cli(
        "bench", str(MODELS / "vggmini.onnx"), "--formats", "csr,sham", "--batch", "1", "--repeat", "2"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""  # the table is for a person: stderr
    cells = [
        [c.strip() for c in line.split("│")[1:-1]] for line in res.stderr.splitlines() if line.startswith("│")
    ]
    # layer, format, batch, shape, then bytes, psi and the times in ms (one kernel: said below)
    assert sorted((c[0], c[1]) for c in cells) == sorted(itertools.product(VGGMINI_LAYERS, ["csr", "sham"]))
    for c in cells:
        assert c[3] == "x".join(map(str, VGGMINI_LAYERS[c[0]])) and c[2] == "1"
        assert all(re.fullmatch(r"\d+\.\d{3}", t) for t in (c[6], c[8], c[9])), c
        assert all(re.fullmatch(r"\d+\.\d\dx", t) for t in (c[10], c[11])), c
    assert f"median of 2 runs after {timing.WARMUP} warm-ups, 1 thread(s), {KERNEL} kernels" in res.stderr


def test_layers_of_a_plain_model_are_prepared_then_encoded() -> None:
    layers = load_layers(MODELS / "lenet300.onnx", ["csr", "sham"], DEFAULT_PREPARE)
    assert [layer.name for layer in layers] == ["0.weight", "2.weight", "4.weight"]
    # DEFAULT_PREPARE ran: 80 % of all the weights pruned, at most 32 nonzero values per layer
    zeros = sum(int(np.count_nonzero(layer.dense == 0)) for layer in layers)
    assert zeros >= 0.79 * sum(layer.dense.size for layer in layers)
    rng = np.random.default_rng(1)
    for layer in layers:
        assert np.unique(layer.dense[layer.dense != 0]).size <= 32
        assert [f.name for f in layer.encoded] == ["csr", "sham"]
        x = rng.standard_normal((3, layer.dense.shape[1])).astype(np.float32)
        want = x.astype(np.float64) @ layer.dense.T.astype(np.float64)
        for fmt in layer.encoded:
            np.testing.assert_array_equal(fmt.to_dense(), layer.dense)
            got = native.native_dot(fmt, x) if native.available() else fmt.dot(x)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bench_without_the_extension_says_so_in_one_line() -> None:
    code = (
        "import sys, nncompress.native._call as c; c.lib = None\n"
        "from nncompress.cli import main\n"
        f"main(['bench', {str(MODELS / 'lenet300.onnx')!r}, '--formats', 'csr', '--repeat', '2', '--json'])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["native"] is False and r["notes"]
    assert r["rows"] and {row["kernel"] for row in r["rows"]} == {"numpy-ref"}
    assert res.stderr.count("native extension not built") == 1


def test_bench_bad_options() -> None:
    for args in (("--batch", "0"), ("--batch", "a"), ("--formats", "zip"), ("--repeat", "0")):
        res = run_cli("bench", str(MODELS / "lenet300.onnx"), *args)
        assert res.returncode == 2, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1


# ---- nncompress.timing ------------------------------------------------------------------------


class FakeClock:
    """perf_counter_ns stand-in: each timed call lasts the next of ``durations_ms``."""

    def __init__(self, durations_ms: list[int]) -> None:
        self.now, self.durations, self.started = 0, iter(durations_ms), False

    def __call__(self) -> int:
        if self.started:  # the end of a timed call
            self.now += next(self.durations) * 1_000_000
        self.started = not self.started
        return self.now


def test_timeit_warms_up_then_takes_median_and_iqr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing.time, "perf_counter_ns", FakeClock([5, 1, 4, 2, 3]))
    calls: list[int] = []
    t = timing.timeit(lambda: calls.append(1), repeat=5, warmup=2)
    assert len(calls) == 7
    assert (t.median, t.iqr) == pytest.approx((0.003, 0.002), rel=1e-12)
    with pytest.raises(ValueError, match="repeat"):
        timing.timeit(lambda: None, repeat=0)


def test_time_rounds_interleaves_and_times_the_second_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing.time, "perf_counter_ns", FakeClock([1, 10, 2, 20]))
    calls: list[str] = []
    ts = timing.time_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2, warmup=1)
    assert "".join(calls) == "ab" + "aabb" * 2
    np.testing.assert_allclose(ts["a"], [0.001, 0.002])
    np.testing.assert_allclose(ts["b"], [0.010, 0.020])


def test_markdown_table() -> None:
    rows = [{"k": "csr", "ms": 1.23456}, {"k": "sham", "ms": 10}]
    out = timing.markdown_table([("kernel", "{k}"), ("median ms", "{ms:.3f}")], rows)
    assert out == "| kernel | median ms |\n|---|---|\n| csr | 1.235 |\n| sham | 10.000 |"
