"""setup.py: without a working C compiler the install still succeeds, says why in one line, and the
package falls back to the numpy references."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _build(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "native", src / "native", ignore=shutil.ignore_patterns("*.o", "*.so"))
    shutil.copytree(
        ROOT / "src", src / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info")
    )
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    cmd = [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", "lib", "--build-temp", "tmp"]
    return subprocess.run(
        cmd, cwd=src, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


@pytest.mark.skipif(
    shutil.which("false") is None, reason="needs a `false` command to stand in for the compiler"
)
def test_a_failing_compiler_skips_the_kernels_with_one_warning(tmp_path: Path) -> None:
    false = shutil.which("false") or "false"
    res = _build(tmp_path, CC=false, NNC_REQUIRE_NATIVE="0")
    assert res.returncode == 0, res.stderr[-2000:]
    warnings = [line for line in res.stderr.splitlines() if "nncompress: native kernels not built" in line]
    assert len(warnings) == 1 and "C compiler" in warnings[0]
    assert not list((tmp_path / "src").rglob("_nnc*.so"))


@pytest.mark.skipif(
    shutil.which("false") is None, reason="needs a `false` command to stand in for the compiler"
)
def test_nnc_require_native_makes_a_failed_build_fail(tmp_path: Path) -> None:
    res = _build(tmp_path, CC=shutil.which("false") or "false", NNC_REQUIRE_NATIVE="1")
    assert res.returncode != 0
