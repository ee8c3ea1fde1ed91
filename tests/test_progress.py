"""Progress: the stages each long call reports (nncompress.progress), and where the CLI draws them.

The library side is checked with a recording Progress; the CLI side in a pseudo-terminal (the bar
shows), through pipes (it does not), and with --quiet and --json (it does not either).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nncompress
from nncompress.bench import bench
from nncompress.cli.app import app
from nncompress.evaluate import evaluate
from nncompress.formats import sham
from nncompress.io import load

from .conftest import DATA, MODELS

LENET = MODELS / "lenet300.onnx"
FAST = "prune:sparsity=0.5,csr"  # a pipeline: no budget search, so the run takes a second


class Recorder:
    """A Progress that keeps every stage with its total and what was advanced in it."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float | None]] = []
        self.steps: list[list[float]] = []  # each stage's advances

    def stage(self, name: str, total: float | None = None) -> None:
        self.stages.append((name, total))
        self.steps.append([])

    def advance(self, amount: float = 1) -> None:
        assert self.stages, "advance before any stage"
        assert amount >= 0
        self.steps[-1].append(amount)

    def names(self) -> list[str]:
        return [n for n, _ in self.stages]

    def find(self, name: str) -> list[int]:
        return [i for i, (n, _) in enumerate(self.stages) if n == name]

    def counted(self, name: str) -> tuple[float | None, float]:
        """The total and the amount advanced of the one stage ``name``."""
        (i,) = self.find(name)
        return self.stages[i][1], sum(self.steps[i])


def _in_order(names: list[str], expected: list[str]) -> None:
    """``expected`` appear in ``names`` in this order (other stages may come between)."""
    it = iter(names)
    missing = [e for e in expected if e not in it]
    assert not missing, (missing, names)


def _weights(path: Path) -> int:
    return sum(w.size for w in load(path).weights.values())


def test_compress_reports_every_stage_and_counts_weights(tmp_path: Path) -> None:
    rec = Recorder()
    r = nncompress.compress(LENET, pipeline=FAST, samples=40, progress=rec)
    nncompress.save(r, tmp_path / "a.nnc", progress=rec)
    _in_order(
        rec.names(),
        [
            "loading lenet300.onnx",
            "original's outputs (onnxruntime)",
            "encoding",
            "building the artifact",
            "fidelity check: building the model",
            "fidelity check",
            "writing the artifact",
            "saving a.nnc",
        ],
    )
    total, done = rec.counted("encoding")
    assert total == done == _weights(LENET)  # numbers of weights, not tensors
    assert rec.counted("original's outputs (onnxruntime)") == (40, 40)  # samples
    assert rec.counted("fidelity check") == (40, 40)


def test_a_large_weight_moves_the_bar_as_its_rows_are_coded(monkeypatch: pytest.MonkeyPatch) -> None:
    # sham codes row blocks of _BLOCK entries (4 M); smaller here, so that lenet's layers have many
    monkeypatch.setattr(sham, "_BLOCK", 4096)
    rec = Recorder()
    pipeline = "prune:sparsity=0.5,quantize:method=kmeans:k=16,sham"
    nncompress.compress(LENET, pipeline=pipeline, samples=8, progress=rec)
    (i,) = rec.find("encoding")
    steps = rec.steps[i]
    tensors = load(LENET).weights
    assert sum(steps) == rec.stages[i][1] == sum(w.size for w in tensors.values())
    assert len(steps) > 2 * len(tensors)  # not one jump per tensor
    assert max(steps) < max(w.size for w in tensors.values()) / 2


def test_budget_search_reports_each_phase() -> None:
    rec = Recorder()
    r = nncompress.compress(LENET, method="prune", max_drop=5.0, samples=32, progress=rec)
    assert r.report["budget"]["searched"]
    names = rec.names()
    checks = [n for n in names if n.startswith("search check ") and ":" not in n]
    assert checks and checks[0].startswith("search check 1 (at most ")
    _in_order(
        names,
        ["sensitivity: original's outputs", "sensitivity scan", checks[0], "encoding", "fidelity check"],
    )
    total, done = rec.counted("sensitivity scan")
    assert total is not None and total > 0 and done == total
    # every whole-model check is its own stage, numbered, each counting the samples
    assert (
        len(checks) + sum(n.startswith("refine check ") and ":" not in n for n in names)
        == (r.report["budget"]["evaluations"])
    )
    assert all(rec.counted(n) == (32, 32) for n in checks)


def test_eval_inspect_decompress_bench_report_stages(tmp_path: Path) -> None:
    rec = Recorder()
    evaluate(LENET, DATA / "mnist_test.npz", reference=MODELS / "lenet300.h5", samples=50, progress=rec)
    _in_order(rec.names(), ["loading lenet300.onnx", "running lenet300.onnx", "loading lenet300.h5"])
    assert rec.counted("running lenet300.onnx") == (50, 50)
    assert rec.counted("running lenet300.h5") == (50, 50)

    rec = Recorder()
    nncompress.inspect(LENET, progress=rec)
    assert rec.names() == ["reading lenet300.onnx", "weight statistics"]
    total, done = rec.counted("weight statistics")
    assert total == done == _weights(LENET)

    art = tmp_path / "a.nnc"
    nncompress.save(nncompress.compress(LENET, pipeline=FAST, samples=8), art)
    rec = Recorder()
    nncompress.decompress(art, tmp_path / "b.onnx", progress=rec)
    assert rec.names() == ["reading a.nnc", "writing b.onnx"]

    rec = Recorder()
    rep = bench(LENET, (1, 2), repeat=1, formats=["csr"], progress=rec)
    assert rec.names() == ["loading and encoding lenet300.onnx", "timing"]
    total, done = rec.counted("timing")
    # per layer and batch: dense, scipy CSR and the one format
    assert total == done == 3 * len(rep["rows"])


# -- the CLI ------------------------------------------------------------------------------------

SPINNER = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


def _in_pty(*args: str) -> tuple[str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout on a pipe): what each received."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from nncompress.cli import main; main()", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(slave)
    err = b""
    while True:  # read while it runs: a full pty buffer would block the child
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            err += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.wait(timeout=300) == 0, err.decode("utf8", "replace")
    os.close(master)
    return out, err.decode("utf8", "replace")


def test_cli_draws_progress_on_a_terminal_only(tmp_path: Path) -> None:
    out, err = _in_pty("compress", str(LENET), "--pipeline", FAST, "-o", str(tmp_path / "a.nnc"))
    assert out == ""
    for stage in ("loading lenet300.onnx", "encoding", "fidelity check", "saving a.nnc"):
        assert stage in err
    assert SPINNER & set(err)
    assert "wrote" in err  # the report follows the bar

    out, err = _in_pty("compress", str(LENET), "--pipeline", FAST, "-o", str(tmp_path / "b.nnc"), "-q")
    assert out == "" and err == ""  # nothing at all: no bar, no table

    out, err = _in_pty("compress", str(LENET), "--pipeline", FAST, "-o", str(tmp_path / "c.nnc"), "--json")
    assert json.loads(out)["output"] == str(tmp_path / "c.nnc")
    assert "encoding" not in err and not SPINNER & set(err)


@pytest.mark.parametrize(
    ("stage", "args"),
    [
        ("encoding", ["compress", str(LENET), "--pipeline", FAST]),
        ("weight statistics", ["inspect", str(LENET)]),
        ("running", ["eval", str(LENET), "--data", str(DATA / "mnist_test.npz"), "--samples", "20"]),
        ("timing", ["bench", str(LENET), "--repeat", "1", "--batch", "1"]),
    ],
    ids=lambda a: a if isinstance(a, str) else a[0],
)
def test_cli_off_a_terminal_no_progress_and_quiet_prints_nothing(
    stage: str, args: list[str], tmp_path: Path
) -> None:
    if args[0] == "compress":
        args = [*args, "-o", str(tmp_path / "a.nnc")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.stderr  # the human report
    assert not SPINNER & set(res.stderr) and stage not in res.stderr  # but no bar: not a terminal
    if args[0] == "compress":
        args[-1] = str(tmp_path / "b.nnc")
    res = CliRunner().invoke(app, [*args, "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and res.stderr == ""


def test_decompress_and_sensitivity_take_quiet(tmp_path: Path) -> None:
    art = tmp_path / "a.nnc"
    nncompress.save(nncompress.compress(LENET, pipeline=FAST, samples=8), art)
    res = CliRunner().invoke(app, ["decompress", str(art), "-o", str(tmp_path / "b.onnx"), "-q"])
    assert res.exit_code == 0, res.output
    assert res.stderr == "" and (tmp_path / "b.onnx").is_file()
    res = CliRunner().invoke(app, ["decompress", str(art), "-o", str(tmp_path / "c.onnx")])
    assert res.exit_code == 0 and "wrote" in res.stderr
    res = CliRunner().invoke(app, ["sensitivity", str(LENET), "-m", "prune", "--samples", "8", "-q"])
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and res.stderr == ""
