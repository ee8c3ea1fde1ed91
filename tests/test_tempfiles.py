"""Nothing is left behind: temp files and folders go on SIGINT/SIGTERM, and the next run sweeps what
a SIGKILL left (they carry the id of the process that made them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nncompress._tempfiles import sweep

from .conftest import MODELS


def _start(tmp: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-c", "from nncompress.cli import main; main()", "compress",
           str(MODELS / "vggmini.pt"), "-o", str(out), "--samples", "500", "--quiet"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ours(tmp: Path, out_dir: Path) -> list[str]:
    return sorted(
        p.name for p in (*tmp.iterdir(), *out_dir.iterdir()) if p.name.startswith((".m.nnc", "nnc-"))
    )


def _wait_for_temp(tmp: Path, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):  # the skeleton folder appears once compress is under way
        if any(p.name.startswith("nnc-") for p in tmp.iterdir()) or proc.poll() is not None:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_removes_its_temp_files(sig: int, tmp_path: Path) -> None:
    tmp, out_dir = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    out_dir.mkdir()
    proc = _start(tmp, out_dir / "m.nnc")
    _wait_for_temp(tmp, proc)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    assert not (out_dir / "m.nnc").exists() or proc.returncode == 0
    assert _ours(tmp, out_dir) == []


def test_killed_run_is_swept_by_the_next(tmp_path: Path) -> None:
    tmp, out_dir = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    out_dir.mkdir()
    proc = _start(tmp, out_dir / "m.nnc")
    _wait_for_temp(tmp, proc)
    proc.kill()
    proc.wait(timeout=60)
    (out_dir / f".m.nnc.{proc.pid}.abcd.tmp.nnc").write_bytes(b"half")  # as an atomic write leaves it
    assert _ours(tmp, out_dir)  # SIGKILL runs no handler: the folder is still there
    assert sweep(tmp) >= 1
    env = {**os.environ, "TMPDIR": str(tmp)}
    res = subprocess.run(
        [sys.executable, "-c", "from nncompress.cli import main; main()", "compress",
         str(MODELS / "lenet300.onnx"), "-o", str(out_dir / "m.nnc"), "--samples", "4", "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert [p.name for p in out_dir.iterdir()] == ["m.nnc"]
