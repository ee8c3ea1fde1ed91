"""benchmarks/fuzz.py, a short seeded run: hostile mutants of every example model and artifact
through inspect, compress and decompress end in exit 0 or one clean error line, never in an
internal error, a signal, a hang or a multi-line error (issue 12, item 5).

Two mutants of each of the 16 inputs (8 models, 8 artifacts): 80 command runs, about 1.5 minutes
on 2 cores (seeds built in a temp folder included). The long run and its table: benchmarks/fuzz.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
FAILING = ("internal", "signal", "hang", "bad-error", "other-exit")

# the .pt/.pt2 seeds and their artifacts need torch; not imported here, so that this process stays
# small (a forked child's ru_maxrss counts the parent's pages)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


def _fuzz_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nnc_fuzz", BENCH / "fuzz.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nnc_fuzz"] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def test_zip_writer_round_trips(tmp_path: Path) -> None:
    """The hand-written zip writer gives archives zipfile reads back, duplicates and all."""
    import io
    import zipfile

    fuzz = _fuzz_module()
    members = [fuzz.Member.make(b"a.json", b'{"x": 1}', 8), fuzz.Member.make(b"b.bin", bytes(100))]
    blob = fuzz.write_zip([*members, fuzz.Member.make(b"a.json", b"[]")])
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert [i.filename for i in z.infolist()] == ["a.json", "b.bin", "a.json"]
        assert z.read("b.bin") == bytes(100)
    assert [m.content() for m in fuzz.read_zip(blob)] == [b'{"x": 1}', bytes(100), b"[]"]


def test_classify() -> None:
    fuzz = _fuzz_module()
    assert fuzz.classify(0, 100, "") == "ok"
    assert fuzz.classify(3, 100, "nncompress: error: x.h5: truncated. Use another file\n") == "refusal"
    assert fuzz.classify(3, 100, "warning: y\nnncompress: error: x.h5: truncated\n") == "bad-error"
    assert fuzz.classify(3, 100, "nncompress: error: " + "a" * 2000) == "bad-error"
    assert fuzz.classify(1, 100, "nncompress: error: internal") == "internal"
    assert fuzz.classify(-11, 100, "") == "signal"
    assert fuzz.classify(None, 100, "") == "hang"
    assert fuzz.classify(3, 2000, "nncompress: error: x") == "over-memory"


def test_short_fuzz_run_is_clean(tmp_path: Path) -> None:
    fuzz = _fuzz_module()
    opt = fuzz.Options(timeout=60.0, mem_bytes=3 * 10**9, out_dir=tmp_path, tracebacks=False)
    results = fuzz.fuzz(fuzz.all_seed_names(), cases=2, base_seed=0, opt=opt, jobs=2)
    assert len(results) == 80
    bad = [r for r in results if r.klass in FAILING]
    report = "\n".join(
        f"{r.klass}: {r.input} #{r.case} [{r.mutation}] {r.command} -> {r.returncode}: {r.stderr_last[:300]}"
        f" (mutant kept at {r.mutant})"
        for r in bad
    )
    assert not bad, f"{len(bad)} non-clean results (python benchmarks/fuzz.py --seed 0 --cases 2):\n{report}"


def test_forked_run_classifies_like_fresh_interpreters(tmp_path: Path) -> None:
    """--fork (the long runs' mode: children forked from a process that imported the frameworks)
    on the lenet300.onnx mutants: every run is classified and clean; a truncated file's inspect
    gets the same exit code and class forked as in a fresh interpreter."""
    import json
    import subprocess

    spec = "prune:sparsity=0.8,quantize:method=kmeans:k=32,sham"
    argv = [sys.executable, str(BENCH / "fuzz.py"), "--fork", "--cases", "3", "--seed", "5"]
    argv += ["--only", "lenet300.onnx", "--pipeline", spec, "--out", str(tmp_path), "--no-tracebacks"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
    summary = json.loads((tmp_path / "fuzz-seed5.json").read_text())
    assert summary["runs"] == 15, done.stdout  # 3 mutants x (2 commands + 3 for the artifact)
    assert not any(k in summary["counts"] for k in FAILING), summary["non_clean"]
    assert summary["counts"].get("refusal", 0) + summary["counts"].get("ok", 0) == 15

    # one truncated file, inspected both ways in a fresh process (this one has torch imported and
    # must not fork): the same exit code and class
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes((tmp_path / "seeds" / "lenet300.onnx").read_bytes()[:700])
    script = (
        "import sys, json; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import fuzz; "
        "fuzz.preload(); w = Path(sys.argv[2]); a = ['inspect', sys.argv[3]]; "
        "f = fuzz.run_forked(a, w, 60, 3 * 10**9, {}); "
        "s = fuzz.run_limited(fuzz.cli_argv(*a), w, 60, 3 * 10**9, {}); "
        "print(json.dumps([[r[0], fuzz.classify(r[0], r[2], r[3])] for r in (f, s)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(BENCH), str(tmp_path), str(bad)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[3, "refusal"], [3, "refusal"]]
