"""What the coverage-guided runs of benchmarks/atheris_fuzz.py found, one regression test each, with
the reproducer built here (issue 12; the runs: benchmarks/fuzz.md, "Coverage-guided (atheris)")."""

from __future__ import annotations

from pathlib import Path

import pytest

from nncompress.errors import InputError


def test_wire_strip_of_an_empty_file(tmp_path: Path) -> None:
    """onnx_wire, input of 0 bytes: mmap refuses a zero-length map (ValueError, not WireError).
    An empty file is an empty message; read_model refuses it before the walk, in one line."""
    from nncompress.io.onnx import wire
    from nncompress.io.onnx.reader import read_model

    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    assert wire.strip(p) == (b"", [])
    with pytest.raises(InputError, match="file is empty"):
        read_model(p)
