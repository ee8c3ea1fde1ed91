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
