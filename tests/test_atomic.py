"""Safe output: temp file then rename, no clobbering, and every way a write can fail is exit 6."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

from nncompress.errors import EXIT_OUTPUT, EXIT_USAGE, OutputError
from nncompress.io._atomic import atomic_path, check_output

from .conftest import MODELS, run_cli


def test_refusals(tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"x")
    with pytest.raises(OutputError, match="overwrite the input"):
        check_output(src, force=True, inputs=(src,))
    with pytest.raises(OutputError, match="--force"):
        check_output(src, force=False)
    with pytest.raises(OutputError, match="is not a directory"):
        check_output(src / "x.nnc", force=False)
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "no" / "x.nnc", force=False)
    link = tmp_path / "dangling.nnc"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="symbolic link"):
        check_output(link, force=False)
    assert check_output(link, force=True) == link


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC, errno.EROFS, errno.EFBIG])
def test_write_failures_are_output_errors_and_leave_nothing(code: int, tmp_path: Path) -> None:
    out = tmp_path / "m.nnc"
    with pytest.raises(OutputError, match=os.strerror(code)), atomic_path(out) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError(code, os.strerror(code), str(tmp))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_temp_file_that_cannot_be_made(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*a: object, **k: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match="Permission denied"), atomic_path(tmp_path / "m.nnc"):
        pass


def test_cli_exit_codes_for_outputs(tmp_path: Path) -> None:
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", "/etc/hostname/x.nnc", "--samples", "4")
    assert res.returncode == EXIT_OUTPUT and len(res.stderr.strip().splitlines()) == 1, res.stderr
    art = tmp_path / "m.nnc"
    assert (
        run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(art), "--samples", "4").returncode == 0
    )
    for bad in ("m.txt", "m.nnc", "m"):
        res = run_cli("decompress", str(art), "-o", str(tmp_path / bad))
        assert res.returncode == EXIT_USAGE, (bad, res.stderr)
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(tmp_path / "m.onnx"))
    assert res.returncode == EXIT_USAGE
