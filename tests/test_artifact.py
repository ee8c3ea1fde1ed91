"""The .nnc container: round trip, byte-identical rewrites, clean errors on corruption."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nncompress.artifact import SCHEMA, Artifact, TensorEntry, read_artifact, write_artifact
from nncompress.errors import InputError


def _art() -> Artifact:
    rng = np.random.default_rng(0)
    t = [
        TensorEntry(
            "fc1.kernel",
            "dense",
            (4, 3),
            "float32",
            {"note": 1},
            {"values": rng.normal(size=(4, 3)).astype(np.float32)},
        ),
        TensorEntry(
            "fc1.bias",
            "csr",
            (4,),
            "float32",
            {},
            {"idx": np.arange(3, dtype=np.uint8), "v": np.ones(3, np.float32)},
        ),
    ]
    return Artifact(
        "onnx",
        "m.onnx",
        {"pipeline": "prune:sparsity=0.5"},
        7,
        t,
        skeleton=b"\0" * 100_000,
        skeleton_name="m.onnx",
    )


def test_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    size = write_artifact(_art(), p)
    assert size == p.stat().st_size
    back = read_artifact(p)
    assert back.recipe == {"pipeline": "prune:sparsity=0.5"} and back.seed == 7
    assert back.skeleton == b"\0" * 100_000 and back.skeleton_name == "m.onnx"
    for a, b in zip(_art().tensors, back.tensors, strict=True):
        assert (a.name, a.format, a.shape, a.meta) == (b.name, b.format, b.shape, b.meta)
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
            assert a.arrays[k].dtype == b.arrays[k].dtype
    with zipfile.ZipFile(p) as z:
        m = json.loads(z.read("manifest.json"))
    assert m["schema"] == SCHEMA and m["recipe_sha256"] == _art().recipe_sha256


def test_byte_identical(tmp_path: Path) -> None:
    write_artifact(_art(), tmp_path / "a.nnc")
    write_artifact(_art(), tmp_path / "b.nnc")
    assert (tmp_path / "a.nnc").read_bytes() == (tmp_path / "b.nnc").read_bytes()


def test_skeleton_of_zeros_is_tiny(tmp_path: Path) -> None:
    art = _art()
    art.skeleton = b"\0" * 10_000_000
    assert write_artifact(art, tmp_path / "a.nnc") < 10_000


def test_a_large_skeleton_is_bzip2_and_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nncompress.artifact as artifact

    monkeypatch.setattr(artifact, "_BZIP2_ABOVE", 50_000)
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    with zipfile.ZipFile(p) as z:
        assert z.getinfo("skeleton/m.onnx").compress_type == zipfile.ZIP_BZIP2
        assert z.getinfo("manifest.json").compress_type == zipfile.ZIP_DEFLATED
    assert read_artifact(p).skeleton == b"\0" * 100_000
    monkeypatch.setattr(artifact, "_BZIP2_ABOVE", 100_000)
    write_artifact(_art(), p)
    with zipfile.ZipFile(p) as z:
        assert z.getinfo("skeleton/m.onnx").compress_type == zipfile.ZIP_LZMA


def test_truncated(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"corrupt \.nnc"):
        read_artifact(p)


def test_flipped_byte_fails_the_crc(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("t/0/values.npy")
    data = bytearray(p.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 140] ^= 0xFF  # inside the array's payload
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"t/0/values\.npy"):
        read_artifact(p)


def test_wrong_schema_and_missing_member(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("manifest.json", json.dumps({"schema": "other/9"}))
    with pytest.raises(InputError, match="unsupported artifact schema"):
        read_artifact(p)
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("nothing", "x")
    with pytest.raises(InputError, match=r"manifest\.json is missing"):
        read_artifact(p)
    m = {
        "schema": SCHEMA,
        "tensors": [
            {
                "name": "w",
                "format": "dense",
                "shape": [2],
                "dtype": "float32",
                "meta": {},
                "arrays": {"values": "t/0/values.npy"},
            }
        ],
    }
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("manifest.json", json.dumps(m))
    with pytest.raises(InputError, match="missing"):
        read_artifact(p)


def test_pickled_member_is_refused(tmp_path: Path) -> None:
    import io

    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(p, "a") as z:
        z.writestr("t/0/evil.npy", buf.getvalue())
    m = json.loads(zipfile.ZipFile(p).read("manifest.json"))
    m["tensors"][0]["arrays"]["evil"] = "t/0/evil.npy"
    q = tmp_path / "b.nnc"
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(q, "w") as dst:
        for item in src.infolist():
            data = json.dumps(m).encode() if item.filename == "manifest.json" else src.read(item.filename)
            dst.writestr(item.filename, data)
    with pytest.raises(InputError, match="unreadable"):
        read_artifact(q)
