"""The .nnc container: round trip, byte-identical rewrites, clean errors on corruption."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nncompress.artifact import (
    ARRAYS,
    SCHEMA,
    SCHEMA_V1,
    Artifact,
    TensorEntry,
    manifest_of,
    read_artifact,
    write_artifact,
)
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
    assert back.skeleton == b"\0" * 100_000 and back.skeleton_name == "m.onnx" and back.schema == SCHEMA
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
    assert read_artifact(p).skeleton == b"\0" * 100_000
    monkeypatch.setattr(artifact, "_BZIP2_ABOVE", 100_000)  # at the limit: every method is tried
    write_artifact(_art(), p)
    assert read_artifact(p).skeleton == b"\0" * 100_000


def test_truncated(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"corrupt \.nnc"):
        read_artifact(p)


def _data_start(raw: bytes, info: zipfile.ZipInfo) -> int:
    """Where a member's data begins: after its local header, name and extra field."""
    o = info.header_offset
    return (
        o
        + 30
        + int.from_bytes(raw[o + 26 : o + 28], "little")
        + int.from_bytes(raw[o + 28 : o + 30], "little")
    )


def test_flipped_byte_fails_the_crc(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    with zipfile.ZipFile(p) as z:
        info = z.getinfo(ARRAYS)
    data = bytearray(p.read_bytes())
    data[_data_start(bytes(data), info) + 5] ^= 0xFF  # inside fc1.kernel's values
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"arrays\.bin is unreadable"):
        read_artifact(p)


@pytest.mark.parametrize("member", ["manifest.json", "skeleton/m.onnx"])
def test_damaged_compressed_member_is_a_clean_error(tmp_path: Path, member: str) -> None:
    """A flipped byte in deflate or LZMA data fails in the decompressor, before the CRC check."""
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    with zipfile.ZipFile(p) as z:
        info = z.getinfo(member)
    data = bytearray(p.read_bytes())
    start = _data_start(bytes(data), info)
    for i in range(start + 2, start + info.compress_size - 2, 7):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"{member} is unreadable"):
        read_artifact(p)


def _write(p: Path, manifest: dict[str, Any], members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            z.writestr(name, data)


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _v1(art: Artifact) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and members a schema /1 writer made: one .npy member per array."""
    m = manifest_of(art)
    m["schema"] = SCHEMA_V1
    del m["arrays_member"]
    members = {m["skeleton"]: art.skeleton} if art.skeleton_name else {}
    for i, (entry, t) in enumerate(zip(m["tensors"], art.tensors, strict=True)):
        entry["arrays"] = {k: f"t/{i}/{k}.npy" for k in sorted(t.arrays)}
        members.update({f"t/{i}/{k}.npy": _npy(t.arrays[k]) for k in sorted(t.arrays)})
    return m, members


def test_schema_1_files_still_read(tmp_path: Path) -> None:
    p = tmp_path / "v1.nnc"
    _write(p, *_v1(_art()))
    back = read_artifact(p)
    assert back.schema == SCHEMA_V1
    for a, b in zip(_art().tensors, back.tensors, strict=True):
        assert a.arrays.keys() == b.arrays.keys()
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
            assert a.arrays[k].dtype == b.arrays[k].dtype


def test_arrays_share_one_member_aligned_and_little_endian(tmp_path: Path) -> None:
    art = _art()
    art.tensors[0].arrays["big"] = np.arange(5, dtype=">i8")  # after idx (3 bytes): padded to 8
    p = tmp_path / "a.nnc"
    write_artifact(art, p)
    with zipfile.ZipFile(p) as z:
        assert [i.filename for i in z.infolist()] == ["manifest.json", "skeleton/m.onnx", ARRAYS]
        m = json.loads(z.read("manifest.json"))
        blob = z.read(ARRAYS)
    specs = [s for t in m["tensors"] for s in t["arrays"].values()]
    assert all(s["offset"] % np.dtype(s["dtype"]).itemsize == 0 for s in specs)
    assert {s["dtype"] for s in specs} == {"<f4", "<i8", "|u1"}
    big = m["tensors"][0]["arrays"]["big"]
    assert np.frombuffer(blob, "<i8", 5, big["offset"]).tolist() == [0, 1, 2, 3, 4]
    back = read_artifact(p).tensors[0].arrays
    assert back["big"].tolist() == [0, 1, 2, 3, 4] and back["values"].flags.writeable


def test_per_array_overhead_is_small(tmp_path: Path) -> None:
    """What schema /2 is for: 40 small arrays cost their bytes plus a few dozen each, not a .npy
    header and two zip headers each (about 230 bytes)."""
    rng = np.random.default_rng(1)
    t = [
        TensorEntry(
            f"l{i}.w", "dense", (8,), "float32", {}, {"values": rng.normal(size=8).astype(np.float32)}
        )
        for i in range(40)
    ]
    art = Artifact("onnx", "m.onnx", {"pipeline": "prune"}, 0, t)
    size = write_artifact(art, tmp_path / "a.nnc")
    assert size - 40 * 32 < 40 * 60, size
    v1 = tmp_path / "v1.nnc"
    _write(v1, *_v1(art))
    assert v1.stat().st_size - 40 * 32 > 40 * 200  # the layout it replaces


def test_bad_array_entries(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    with zipfile.ZipFile(p) as z:
        m = json.loads(z.read("manifest.json"))
        members = {i.filename: z.read(i.filename) for i in z.infolist() if i.filename != "manifest.json"}
    spec = m["tensors"][0]["arrays"]["values"]
    for bad, msg in [
        ({**spec, "offset": 10_000}, "lies outside"),
        ({**spec, "shape": [4, 300]}, "lies outside"),
        ({**spec, "offset": -1}, "lies outside"),
        ({**spec, "dtype": "|O"}, "not a plain"),
        ({**spec, "dtype": ">f4"}, "not a plain"),
        ({**spec, "dtype": "no such type"}, "not a plain"),
        ({**spec, "shape": "4x3"}, "must be integers"),
        ("t/0/values.npy", "not an"),
    ]:
        m["tensors"][0]["arrays"]["values"] = bad
        q = tmp_path / "b.nnc"
        _write(q, m, members)
        with pytest.raises(InputError, match=msg):
            read_artifact(q)


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
    m = manifest_of(_art())
    _write(p, m, {})
    with pytest.raises(InputError, match=r"member arrays\.bin is missing"):
        read_artifact(p)
    m1, members = _v1(_art())
    del members["t/0/values.npy"]
    _write(p, m1, members)
    with pytest.raises(InputError, match=r"member t/0/values\.npy is missing"):
        read_artifact(p)


def test_pickled_member_is_refused(tmp_path: Path) -> None:
    """Schema /1 named .npy members: one holding pickled objects is refused, never unpickled."""
    m1, members = _v1(_art())
    members["t/0/evil.npy"] = _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)
    m1["tensors"][0]["arrays"]["evil"] = "t/0/evil.npy"
    q = tmp_path / "b.nnc"
    _write(q, m1, members)
    with pytest.raises(InputError, match="unreadable"):
        read_artifact(q)


def test_skeleton_streams_to_a_file(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    (tmp_path / "out").mkdir()
    back = read_artifact(p, skeleton_dir=tmp_path / "out")
    assert back.skeleton == tmp_path / "out" / "m.onnx" and back.skeleton_name == "m.onnx"
    assert back.skeleton.read_bytes() == b"\0" * 100_000


@pytest.mark.parametrize(
    "member", ["skeleton/../../evil.onnx", "skeleton/sub/m.onnx", "other/m.onnx", "skeleton/.."]
)
def test_a_skeleton_name_cannot_leave_its_folder(tmp_path: Path, member: str) -> None:
    """The skeleton's name becomes a file name under a temporary folder: a crafted manifest must not
    write anywhere else."""
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    with zipfile.ZipFile(p) as z:
        m = json.loads(z.read("manifest.json"))
        members = {i.filename: z.read(i.filename) for i in z.infolist() if i.filename != "manifest.json"}
    m["skeleton"] = member
    members[member] = members.pop("skeleton/m.onnx")
    q = tmp_path / "b.nnc"
    _write(q, m, members)
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="is not skeleton/<file name>"):
        read_artifact(q, skeleton_dir=tmp_path / "out")
    assert not (tmp_path / "evil.onnx").exists() and not any((tmp_path / "out").iterdir())


def test_a_bzip2_skeleton_streams_in_bounded_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zipfile inflates a bzip2 member a whole block at once; the skeleton is copied in pieces of at
    most 4 MB instead, its CRC and size checked, and damage is a clean error."""
    import nncompress.artifact as artifact

    monkeypatch.setattr(artifact, "_BZIP2_ABOVE", 50_000)
    art = _art()
    art.skeleton = bytes(range(256)) * 40_000  # 10 MB: several pieces
    p = tmp_path / "a.nnc"
    write_artifact(art, p)
    writes: list[int] = []

    class Sink(io.BytesIO):
        def write(self, b: Any) -> int:
            writes.append(len(b))
            return super().write(b)

    with zipfile.ZipFile(p) as z:
        assert z.getinfo("skeleton/m.onnx").compress_type == zipfile.ZIP_BZIP2
        sink = Sink()
        artifact._copy_member(p, z, "skeleton/m.onnx", sink)
    assert sink.getvalue() == art.skeleton and max(writes) <= 1 << 22 and len(writes) >= 3
    (tmp_path / "out").mkdir()
    assert read_artifact(p, skeleton_dir=tmp_path / "out").skeleton.read_bytes() == art.skeleton  # type: ignore[union-attr]
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("skeleton/m.onnx")
    data = bytearray(p.read_bytes())
    data[_data_start(bytes(data), info) + info.compress_size // 2] ^= 0x55
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"skeleton/m\.onnx is unreadable"):
        read_artifact(p, skeleton_dir=tmp_path / "out")


@pytest.mark.parametrize(
    ("key", "value", "msg"),
    [
        ("name", {}, "name must be a str"),
        ("format", [-3], "format must be a str"),
        ("meta", "x", "meta must be a dict"),
        ("arrays", [], "arrays must be a dict"),
        ("shape", [4, 1.5], "shape must be a list of non-negative integers"),
        ("shape", [10**20, 3], "below 2\\^48"),
        ("shape", [True, 3], "shape must be"),
    ],
)
def test_manifest_entries_of_the_wrong_type_are_clean_errors(
    tmp_path: Path, key: str, value: Any, msg: str
) -> None:
    """Found by mutating manifests: a dict as a name or a list as a format reached dict lookups
    (TypeError), a 10^20 dimension numpy's int64 (OverflowError)."""
    p = tmp_path / "a.nnc"
    write_artifact(_art(), p)
    with zipfile.ZipFile(p) as z:
        m = json.loads(z.read("manifest.json"))
        members = {i.filename: z.read(i.filename) for i in z.infolist() if i.filename != "manifest.json"}
    m["tensors"][0][key] = value
    q = tmp_path / "b.nnc"
    _write(q, m, members)
    with pytest.raises(InputError, match=msg):
        read_artifact(q)


def test_schema_1_npy_header_claiming_more_than_its_bytes(tmp_path: Path) -> None:
    m, members = _v1(_art())
    name = next(k for k in members if k.endswith(".npy"))
    members[name] = _npy_header_only((1 << 40,), np.float32)  # 4 TB declared in 144 bytes
    p = tmp_path / "v1_bomb.nnc"
    _write(p, m, members)
    with pytest.raises(InputError, match="declares"):
        read_artifact(p)


def _npy_header_only(shape: tuple[int, ...], dtype: type) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + bytes(16)
