"""benchmarks/fuzz.py, a short seeded run: hostile mutants of every example model and artifact
through inspect, compress and decompress end in exit 0 or one clean error line, never in an
internal error, a signal, a hang or a multi-line error (issue 12, item 5).

Two mutants of each of the 16 inputs (8 models, 8 artifacts): 80 command runs in forked children,
about a minute (seeds built in a temp folder included). The long run and its table: benchmarks/fuzz.md.
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
    """The short seeded run in --fork mode (the long runs' mode: children forked from a harness that
    imported the frameworks once; half the time of fresh interpreters on both cores)."""
    import json
    import subprocess

    argv = [sys.executable, str(BENCH / "fuzz.py"), "--fork", "--cases", "2", "--seed", "0"]
    done = subprocess.run(
        [*argv, "--out", str(tmp_path), "--no-tracebacks"], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "fuzz-seed0.json").read_text())
    # 32 mutants: inspect each, then compress or decompress where inspect did not refuse it (a
    # model refused by inspect is refused by compress's same loader)
    assert summary["mutants"] == 32 and 32 < summary["runs"] <= 64, done.stdout
    bad = {k: n for k, n in summary["counts"].items() if k in FAILING}
    report = json.dumps(summary["non_clean"], indent=1)[:4000]
    assert not bad, f"{bad} (python benchmarks/fuzz.py --fork --seed 0 --cases 2):\n{report}"


def test_forked_run_classifies_like_fresh_interpreters(tmp_path: Path) -> None:
    """A truncated file's inspect gets the same exit code and class forked (`run_forked`, the
    short and long runs' mode) as in a fresh interpreter (`run_limited`, the --asan mode)."""
    import json
    import subprocess

    from .conftest import MODELS

    # one truncated file, inspected both ways in a fresh process (this one has torch imported and
    # must not fork): the same exit code and class
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes((MODELS / "lenet300.onnx").read_bytes()[:700])
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
