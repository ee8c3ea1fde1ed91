"""summary.py: the figures inspect reports, checked against values worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nncompress.ir import Weight
from nncompress.summary import is_parameter, layer_rows, summarize, summarize_artifact, value_stats

from .conftest import MODELS, run_cli, tiny_model


def test_value_stats_by_hand() -> None:
    a = np.array([0.0, -0.0, 1.0, 1.0, 2.0, 0.0, 3.0, 3.0], np.float32)
    s = value_stats([a[:3], a[3:]])
    assert s["sparsity"] == pytest.approx(3 / 8)
    assert s["distinct"] == 4  # -0.0 and 0.0 are one value
    p = np.array([3, 2, 1, 2]) / 8
    assert s["entropy_bits"] == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert value_stats([np.zeros(0)]) == {"sparsity": 0.0, "distinct": 0, "entropy_bits": 0.0}
    assert value_stats([np.ones(5)])["entropy_bits"] == 0.0


def test_constants_and_int_scalars_are_not_parameters() -> None:
    assert not is_parameter(Weight("s", np.array([-1, 8], np.int64), role="const"))
    assert not is_parameter(Weight("step", np.array(7, np.int64), role="buffer"))
    assert is_parameter(Weight("t", np.array(0.5, np.float32), role="buffer"))


def test_layer_rows_of_a_small_graph() -> None:
    rows = {r["name"]: r for r in layer_rows(tiny_model())}
    assert "flat" not in rows  # only a shape constant
    conv = rows["conv"]
    assert conv["op"] == "Conv" and conv["shape"] == [8, 3, 3, 3]
    assert conv["params"] == 8 * 27 + 8 and conv["bytes"] == 4 * conv["params"]
    assert rows["bn"]["params"] == 4 * 32 and rows["emb"]["op"] == "Gather"
    assert [t["role"] for t in conv["tensors"]] == ["kernel", "bias"]


def test_summarize_totals_add_up() -> None:
    path = MODELS / "lenet300.onnx"
    from nncompress.io import load

    r = summarize(load(path), path)
    t = r["totals"]
    assert (
        t["params"]
        == sum(x["params"] for x in r["layers"])
        == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    )
    assert t["dense_share"] == pytest.approx(1.0) and t["conv_share"] == 0.0
    assert r["file_bytes"] == path.stat().st_size and r["format"] == "onnx"
    assert math.isclose(t["dense_share"] + t["conv_share"], 1.0)


def test_artifact_bytes_add_up_to_the_file(tmp_path: Path) -> None:
    out = tmp_path / "l.nnc"
    res = run_cli(
        "compress", str(MODELS / "lenet300.onnx"), "-m", "ham", "-o", str(out), "--samples", "2", "-q"
    )
    assert res.returncode == 0, res.stderr
    r = summarize_artifact(out)
    t = r["totals"]
    assert t["payload_bytes"] + t["skeleton_bytes_stored"] + t["container_bytes"] == out.stat().st_size
    assert {x["format"] for x in r["tensors"]} == {"ham", "array"}
    assert r["recipe"]["method"] == "ham" and r["source"]["format"] == "onnx"
