"""Recurrent weights are compressed by default, in every format that stores them.

A speaker encoder whose parameters are 95 % LSTM shrank 1.04x: its LSTM weights had no role the
default selection accepted. Each model here is mostly LSTM or GRU; compress with no option but
--method must shrink it at least 2x, store the recurrent weights in the method's format, and the
decompressed file must load in its framework.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from nncompress.io import load
from nncompress.passes import default_select

from .conftest import run_cli


class _Speaker(nn.Module):
    def __init__(self, cell: str) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(40, 128, num_layers=2, batch_first=True)
        self.fc = nn.Linear(128, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def _model(cell: str) -> _Speaker:
    torch.manual_seed(0)
    return _Speaker(cell).eval()


def _write(kind: str, cell: str, tmp: Path) -> Path:
    m, x = _model(cell), torch.randn(1, 20, 40)
    if kind == "state":
        path = tmp / f"{cell}.pt"
        torch.save(m.state_dict(), str(path))
    elif kind == "script":
        path = tmp / f"{cell}_ts.pt"
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(m, x), str(path))
    else:
        path = tmp / f"{cell}.onnx"
        torch.onnx.export(m, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    return path


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("kind", ["state", "script", "onnx"])
def test_recurrent_models_shrink_and_load(kind: str, cell: str, tmp_path: Path) -> None:
    src = _write(kind, cell, tmp_path)
    g = load(src)
    recurrent = [w for w in g.weights.values() if w.role == "recurrent"]
    assert recurrent and all(default_select(w) for w in recurrent)
    assert sum(w.size for w in recurrent) > 0.9 * sum(w.size for w in g.weights.values() if w.role != "const")
    art = tmp_path / "m.nnc"
    res = run_cli("compress", str(src), "--method", "sham", "-o", str(art), "--samples", "4", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["totals"]["ratio"] >= 2.0, report["totals"]
    formats = {r["weight"]: r["format"] for r in report["layers"]}
    assert all(formats[w.name] == "sham" for w in recurrent), formats
    out = tmp_path / f"back{src.suffix}"
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    x = np.random.default_rng(0).standard_normal((1, 20, 40)).astype(np.float32)
    if kind == "onnx":
        import onnxruntime as ort

        (y,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    elif kind == "script":
        y = torch.jit.load(str(out))(torch.from_numpy(x)).detach().numpy()
    else:
        m = _Speaker(cell).eval()
        m.load_state_dict(torch.load(str(out), weights_only=True))
        y = m(torch.from_numpy(x)).detach().numpy()
    assert y.shape == (1, 16) and np.isfinite(y).all()


def test_layer_norms_and_biases_stay_raw() -> None:
    from nncompress.ir import Weight

    gamma = Weight("ln.weight", np.ones(4096, np.float32), role="other")
    proj = Weight("attn.q", np.ones((64, 64), np.float32), role="other")
    small = Weight("pos", np.ones((4, 8), np.float32), role="other")
    bias = Weight("fc.bias", np.ones((2048,), np.float32), role="bias")
    flat = Weight("tp.weight", np.ones((86_016,), np.float32), role="other")  # e3nn's flat weights
    assert [default_select(w) for w in (gamma, proj, small, bias, flat)] == [False, True, False, False, True]
