"""Same input, options and seed: byte-identical artifacts, for every input format, also when several
compress processes run on one input at once (nothing random, no shared temp names)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MODELS, run_cli

EXAMPLES = ["vggmini.h5", "vggmini.onnx", "vggmini.pt", "lenet300.keras", "lenet300.pt"]


def _compress(src: Path, out: Path) -> bytes:
    res = run_cli("compress", str(src), "--method", "sham", "-o", str(out), "--samples", "8", "--quiet")
    assert res.returncode == 0, res.stderr
    return out.read_bytes()


@pytest.mark.parametrize("name", EXAMPLES)
def test_same_input_same_bytes(name: str, tmp_path: Path) -> None:
    assert _compress(MODELS / name, tmp_path / "a.nnc") == _compress(MODELS / name, tmp_path / "b.nnc")


def test_torch_export_and_state_dict_are_reproducible(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).eval()
    torch.export.save(torch.export.export(model, (torch.randn(2, 32),)), str(tmp_path / "m.pt2"))
    torch.save(model.state_dict(), str(tmp_path / "sd.pt"))
    for src in (tmp_path / "m.pt2", tmp_path / "sd.pt"):
        a, b = tmp_path / f"{src.stem}_a.nnc", tmp_path / f"{src.stem}_b.nnc"
        assert _compress(src, a) == _compress(src, b), src.name


def test_four_processes_at_once_match_a_sequential_run(tmp_path: Path) -> None:
    src = MODELS / "vggmini.pt"
    want = _compress(src, tmp_path / "seq.nnc")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from nncompress.cli import main; main()",
                "compress",
                str(src),
                "--method",
                "sham",
                "-o",
                str(tmp_path / f"p{i}.nnc"),
                "--samples",
                "8",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read() if p.stderr else ""
    for i in range(4):
        assert (tmp_path / f"p{i}.nnc").read_bytes() == want, i
