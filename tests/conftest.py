"""Shared test helpers: where the shipped examples live, and running the CLI as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nncompress.formats import Format
from nncompress.ir import Graph, Node, ValueInfo, Weight

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
DATA = ROOT / "examples" / "data"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `nncompress ARGS` in a fresh interpreter, exactly as a shell would."""
    return subprocess.run(
        [sys.executable, "-c", "from nncompress.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


# -- graphs and matrices several test modules build ---------------------------------------------


def tiny_model(seed: int = 0, channels: int = 8) -> Graph:
    """Conv -> pool -> Dense -> BN -> Relu -> Dense, plus an embedding lookup: every role passes meet.

    ``channels`` is the conv's output count and fc1's input (16 makes both kernels at least 16x16,
    what the structured passes fit; fc2 (4, 32) and the (50, 8) embedding stay below that).
    """
    rng = np.random.default_rng(seed)

    def w(name: str, shape: tuple[int, ...], layer: str, role: str, op: str, scale: float = 0.1) -> Weight:
        return Weight(
            name, (rng.normal(size=shape) * scale).astype(np.float32), layer=layer, role=role, op=op
        )

    ws = [
        w("conv.w", (channels, 3, 3, 3), "conv", "kernel", "Conv"),
        w("conv.b", (channels,), "conv", "bias", "Conv"),
        w("fc1.w", (32, channels), "fc1", "kernel", "Dense"),
        w("fc1.b", (32,), "fc1", "bias", "Dense"),
        w("bn.g", (32,), "bn", "bn_gamma", "BatchNormalization", 1.0),
        w("bn.b", (32,), "bn", "bn_beta", "BatchNormalization"),
        w("bn.m", (32,), "bn", "bn_mean", "BatchNormalization"),
        Weight("bn.v", np.full(32, 0.5, np.float32), layer="bn", role="bn_var", op="BatchNormalization"),
        w("fc2.w", (4, 32), "fc2", "kernel", "Dense", 1.0),
        w("fc2.b", (4,), "fc2", "bias", "Dense"),
        w("emb.table", (50, 8), "emb", "embedding", "Gather"),
        Weight("shape", np.array([-1, channels], np.int64), layer="flat", role="const"),
    ]
    nodes = [
        Node("conv", "Conv", ["x", "conv.w", "conv.b"], ["c"], {"pads": [1, 1, 1, 1]}),
        Node("pool", "GlobalAveragePool", ["c"], ["p"]),
        Node("flat", "Reshape", ["p", "shape"], ["f"]),
        Node("fc1", "Dense", ["f", "fc1.w", "fc1.b"], ["h"]),
        Node("bn", "BatchNormalization", ["h", "bn.g", "bn.b", "bn.m", "bn.v"], ["hb"]),
        Node("relu", "Relu", ["hb"], ["hr"]),
        Node("fc2", "Dense", ["hr", "fc2.w", "fc2.b"], ["y"]),
        Node("emb", "Gather", ["emb.table", "ids"], ["e"]),
    ]
    return Graph(
        nodes=nodes,
        inputs=[ValueInfo("x", (None, 3, 5, 5)), ValueInfo("ids", (None,), "int64")],
        outputs=[ValueInfo("y"), ValueInfo("e")],
        weights={x.name: x for x in ws},
    )


def snapshot(g: Graph) -> dict[str, bytes]:
    return {k: w.array.tobytes() for k, w in g.weights.items()}


def quantized(shape: tuple[int, int], k: int, sparsity: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cb = np.linspace(-1, 1, k + 1, dtype=np.float32)
    cb = cb[cb != 0][:k]
    w = cb[rng.integers(0, k, size=shape)]
    w[rng.random(shape) < sparsity] = 0
    return w


def canonical_codes(lengths: list[int]) -> dict[str, int]:
    """Bit text -> symbol, rebuilt from code lengths as RFC 1951 3.2.2 does (independent of the package)."""
    max_len = max(lengths)
    count = [sum(1 for n in lengths if n == b) for b in range(max_len + 1)]
    count[0] = 0
    code, nxt = 0, [0] * (max_len + 2)
    for b in range(1, max_len + 1):
        code = (code + count[b - 1]) << 1
        nxt[b] = code
    table = {}
    for sym, n in enumerate(lengths):
        if n:
            table[format(nxt[n], f"0{n}b")] = sym
            nxt[n] += 1
    return table


def wide_gaps(seed: int) -> np.ndarray:
    """Clustered nonzeros with a few long jumps: the escape of the Huffman gap coder gets used."""
    rng = np.random.default_rng(seed)
    w = np.zeros((4, 3000), np.float32)
    for r in range(4):
        starts = rng.choice(3000 - 8, size=6, replace=False)
        for s in starts:
            w[r, s : s + rng.integers(1, 8)] = rng.choice([-0.5, 0.25, 1.0])
    return w


def check_lossy_contract(fmt: Format, seed: int = 0) -> None:
    """For the structured formats: dot equals x @ to_dense().T, exact byte count, and a lossless round trip through arrays/meta."""
    dense = fmt.to_dense()
    assert dense.dtype == np.float32 and dense.shape == fmt.shape
    arrays = fmt.arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype.kind in "uif" for a in arrays.values())
    assert fmt.nbytes == sum(a.nbytes for a in arrays.values())
    again = type(fmt).from_arrays(arrays, json.loads(json.dumps(fmt.meta())))
    np.testing.assert_array_equal(again.to_dense(), dense)
    rng = np.random.default_rng(seed)
    for x in (rng.standard_normal(fmt.shape[1]), rng.standard_normal((4, fmt.shape[1]))):
        y = fmt.dot(x.astype(np.float32))
        assert y.dtype == np.float32 and y.shape == (*x.shape[:-1], fmt.shape[0])
        ref = x.astype(np.float32).astype(np.float64) @ dense.T.astype(np.float64)
        scale = np.abs(x) @ np.abs(dense.astype(np.float64)).T
        assert np.all(np.abs(y - ref) <= 1e-5 * scale + 1e-30)
