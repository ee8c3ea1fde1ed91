"""The .nnc container's non-payload bytes: each member's compression method, the reader's acceptance
and bomb guards for every method, and the slimmed skeletons of each source format."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nncompress.artifact import MANIFEST, Artifact, TensorEntry, read_artifact, write_artifact
from nncompress.errors import InputError

MODELS = Path(__file__).resolve().parent.parent / "examples" / "models"
ORDER = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _art(skeleton: bytes) -> Artifact:
    t = TensorEntry(
        "w", "dense", (3, 2), "float32", {}, {"values": np.arange(6, dtype=np.float32).reshape(3, 2)}
    )
    return Artifact(
        "onnx", "m.onnx", {"pipeline": "quantize"}, 0, [t], skeleton=skeleton, skeleton_name="m.onnx"
    )


def _size(data: bytes, method: int) -> int:
    with zipfile.ZipFile(io.BytesIO(), "w") as z:
        z.writestr("m", data, compress_type=method, compresslevel=9 if method != zipfile.ZIP_LZMA else None)
        return z.getinfo("m").compress_size


@pytest.mark.parametrize(
    "skeleton",
    [
        b"",
        np.random.default_rng(0).bytes(5000),  # incompressible: stored
        b"".join(f'{{"layer": {i}, "units": {i * 7 % 13}}}'.encode() for i in range(400)),  # text
        b"\0" * 300_000,  # zeros
    ],
)
def test_each_member_takes_its_smallest_method(skeleton: bytes, tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    art = _art(skeleton)
    write_artifact(art, p)
    with zipfile.ZipFile(p) as z:
        for name in (MANIFEST, "skeleton/m.onnx"):
            info, data = z.getinfo(name), z.read(name)
            sizes = [_size(data, m) for m in ORDER]
            assert info.compress_size == min(sizes), (name, sizes)
            assert info.compress_type == ORDER[sizes.index(min(sizes))]  # the first of a tie
            assert art.stored[name] == info.compress_size
        assert z.getinfo("arrays.bin").compress_type == zipfile.ZIP_STORED
        assert b"\n" not in z.read(MANIFEST) and b", " not in z.read(MANIFEST)  # compact JSON
    assert read_artifact(p).skeleton == skeleton


def _rewrite(src: Path, dst: Path, method: int) -> None:
    """``src`` with its manifest and skeleton members recompressed with ``method``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename != "arrays.bin":
                info.compress_type = method
            zout.writestr(info, data)


@pytest.mark.parametrize("method", ORDER)
def test_every_method_reads_back(method: int, tmp_path: Path) -> None:
    skeleton = b"graph" * 1000 + b"\0" * 50_000
    write_artifact(_art(skeleton), tmp_path / "a.nnc")
    q = tmp_path / "b.nnc"
    _rewrite(tmp_path / "a.nnc", q, method)
    back = read_artifact(q)
    assert back.skeleton == skeleton and back.tensors[0].arrays["values"].sum() == 15
    (tmp_path / "out").mkdir()
    streamed = read_artifact(q, skeleton_dir=tmp_path / "out")
    assert isinstance(streamed.skeleton, Path) and streamed.skeleton.read_bytes() == skeleton


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_manifest_bomb_is_refused_whatever_the_method(method: int, tmp_path: Path) -> None:
    write_artifact(_art(b""), tmp_path / "a.nnc")
    with zipfile.ZipFile(tmp_path / "a.nnc") as z:
        m = json.loads(z.read(MANIFEST))
    m["extra"] = {"pad": " " * (8 << 20)}  # 8 MB that bzip2 and LZMA pack into a few kilobytes
    q = tmp_path / "bomb.nnc"
    with zipfile.ZipFile(tmp_path / "a.nnc") as zin, zipfile.ZipFile(q, "w") as zout:
        for info in zin.infolist():
            data = json.dumps(m).encode() if info.filename == MANIFEST else zin.read(info.filename)
            info.compress_type = method if info.filename == MANIFEST else info.compress_type
            zout.writestr(info, data)
    with pytest.raises(InputError, match="decompression bomb"):
        read_artifact(q)


def test_an_unknown_method_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.nnc"
    write_artifact(_art(b"x" * 100), p)
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo(MANIFEST)
    # the manifest is the first member: its method field in the local and the central header
    for at in (info.header_offset + 8, raw.find(b"PK\x01\x02") + 10):
        raw[at : at + 2] = (99).to_bytes(2, "little")
    p.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="compression method 99"):
        read_artifact(p)


def test_torchscript_skeleton_keeps_what_a_rebuild_needs() -> None:
    torch = pytest.importorskip("torch")
    from nncompress.io import load
    from nncompress.pipeline.artifacts import skeleton_file

    g = load(MODELS / "vggmini.pt")
    skel = skeleton_file(g, "vggmini.pt")
    with zipfile.ZipFile(skel) as z:
        names = z.namelist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    assert not any(n.endswith(".debug_pkl") for n in names)
    assert any("/code/" in n and n.endswith(".py") for n in names)
    m = torch.jit.load(str(skel))
    assert tuple(m(torch.ones(2, 1, 28, 28)).shape) == (2, 10)
    back = load(skel)  # nncompress's loader: the same graph, every weight zero
    assert set(back.weights) == set(g.weights)
    assert all(not np.any(w.value) for w in back.weights.values())


@pytest.mark.parametrize("name", ["vggmini.h5", "lenet300.keras"])
def test_keras_skeleton_stores_no_zeros(name: str) -> None:
    h5py = pytest.importorskip("h5py")
    from nncompress.io import load
    from nncompress.pipeline.artifacts import skeleton_file

    g = load(MODELS / name)
    skel = skeleton_file(g, name)
    assert skel.stat().st_size < (MODELS / name).stat().st_size // 10
    if name.endswith(".keras"):
        with zipfile.ZipFile(skel) as z:
            assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
            f = h5py.File(io.BytesIO(z.read("model.weights.h5")))
    else:
        f = h5py.File(skel)
    sizes: list[int] = []
    f.visititems(lambda _, o: sizes.append(o.id.get_storage_size()) if isinstance(o, h5py.Dataset) else None)
    assert sizes and not any(sizes)
    f.close()
    back = load(skel)
    assert {k: w.shape for k, w in back.weights.items()} == {k: w.shape for k, w in g.weights.items()}
    assert all(not np.any(w.value) for w in back.weights.values())


def test_report_totals_count_the_container(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    import nncompress as n

    r = n.compress(MODELS / "vggmini.onnx", method="sham", samples=4)
    out = n.save(r, tmp_path / "v.nnc")
    t = r.report["totals"]
    with zipfile.ZipFile(out) as z:
        assert t["skeleton_bytes"] == z.getinfo("skeleton/vggmini.onnx").compress_size
    assert (
        t["container_bytes"]
        == out.stat().st_size - t["payload_bytes"]
        == t["output_bytes"] - t["payload_bytes"]
    )
    assert 0 < t["skeleton_bytes"] < t["container_bytes"] < t["output_bytes"]
