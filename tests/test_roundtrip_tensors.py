"""Every tensor survives compress -> decompress: 0-d, one-element, empty, every integer width, bool,
float16 and bfloat16, bit-exact where it is not selected for compression, with its dtype and shape.

An artifact that decompresses to something else is data loss, reported as a success.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from .conftest import run_cli


def _odd_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "scalar_f32": torch.tensor(3.25),
        "scalar_i64": torch.tensor(504, dtype=torch.int64),
        "one": torch.tensor([7.5]),
        "empty": torch.zeros(0, 4),
        "i8": torch.randint(-128, 127, (5, 3), dtype=torch.int8, generator=g),
        "i16": torch.randint(-30000, 30000, (4,), dtype=torch.int16, generator=g),
        "i32": torch.randint(-(2**31), 2**31 - 1, (2, 2), dtype=torch.int32, generator=g),
        "i64": torch.randint(-(2**62), 2**62, (3,), dtype=torch.int64, generator=g),
        "u8": torch.randint(0, 255, (6,), dtype=torch.uint8, generator=g),
        "flags": torch.tensor([True, False, True]),
        "half": torch.randn(8, generator=g).half(),
        "brain": torch.randn(5, 7, generator=g).bfloat16(),
        # a weight big enough to be compressed, so the artifact is not all raw
        "fc.weight": torch.randn(64, 64, generator=g),
        "fc.bias": torch.randn(64, generator=g),
        "bn.num_batches_tracked": torch.tensor(17),
    }


def _round_trip(src: Path, tmp: Path) -> Path:
    art, out = tmp / "m.nnc", tmp / f"back{src.suffix}"
    res = run_cli("compress", str(src), "--method", "sham", "-o", str(art), "--samples", "4")
    assert res.returncode == 0, res.stderr
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_state_dict_tensors_round_trip(legacy: bool, tmp_path: Path) -> None:
    sd = _odd_tensors()
    src = tmp_path / "odd.pt"
    torch.save(sd, str(src), _use_new_zipfile_serialization=not legacy)
    back = torch.load(str(_round_trip(src, tmp_path)), weights_only=True)
    assert list(back) == list(sd)
    for k, t in sd.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape, k
        if k != "fc.weight":  # not selected: bit-exact
            assert torch.equal(back[k].view(-1).view(torch.uint8), t.view(-1).view(torch.uint8)), k
    assert not torch.equal(back["fc.weight"], sd["fc.weight"])  # compressed (sham prunes 80 %)


def test_onnx_initializers_and_scalar_constants_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    inits = {
        "w": rng.standard_normal((64, 64)).astype(np.float32),
        "scale": np.asarray(0.5, np.float32),  # 0-d, as TF exporters write scalars
        "empty": np.zeros((0,), np.int64),
        "one": np.asarray([2], np.int64),
        "i8": rng.integers(-128, 127, (4, 4)).astype(np.int8),
        "u8": rng.integers(0, 255, (4,)).astype(np.uint8),
        "i16": rng.integers(-3000, 3000, (4,)).astype(np.int16),
        "i32": rng.integers(-3000, 3000, (4,)).astype(np.int32),
        "flags": np.asarray([True, False]),
        "half": rng.standard_normal(4).astype(np.float16),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.asarray(2.0, np.float32))),
        helper.make_node("Mul", ["h", "scale"], ["h2"]),
        helper.make_node("Mul", ["h2", "c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "odd",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    src = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    back = onnx.load(str(_round_trip(src, tmp_path)))
    got = {t.name: numpy_helper.to_array(t) for t in back.graph.initializer}
    for k, v in inits.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        if k != "w":
            assert got[k].tobytes() == v.tobytes(), k
    const = next(n for n in back.graph.node if n.op_type == "Constant")
    c = numpy_helper.to_array(const.attribute[0].t)
    assert c.shape == () and c.dtype == np.float32 and float(c) == 2.0
