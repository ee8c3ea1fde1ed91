"""Packed torch skeletons (nncompress.zippack): rebuilt byte for byte, smaller in the artifact, and
every malformed header refused in one line before anything is allocated."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import pytest

from nncompress.artifact import read_artifact
from nncompress.errors import InputError
from nncompress.pipeline.run import compress, save
from nncompress.zippack import MAGIC, PACKING, pack, unpack

from .conftest import MODELS


@pytest.fixture(scope="module")
def skeletons(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, Path]]:
    """The raw skeleton of each example torch model, and its artifact."""
    out = {}
    d = tmp_path_factory.mktemp("zippack")
    for name in ("lenet300.pt", "vggmini.pt"):
        res = compress(MODELS / name, pipeline="rdoq:step=0.5,cabac", samples=2)
        art = d / f"{name}.nnc"
        save(res, art)
        a = read_artifact(art)
        assert isinstance(a.skeleton, bytes)
        out[name] = (a.skeleton, art)
    return out


@pytest.mark.parametrize("name", ["lenet300.pt", "vggmini.pt"])
def test_torch_skeletons_pack_and_rebuild_byte_for_byte(skeletons: dict, name: str) -> None:
    raw, art = skeletons[name]
    with zipfile.ZipFile(art) as z:
        manifest = json.loads(z.read("manifest.json"))
        stored = z.getinfo(manifest["skeleton"]).compress_size
    assert manifest["skeleton_packing"] == PACKING
    packed = pack(raw)
    assert packed is not None and len(packed) < len(raw)
    assert unpack(packed, len(raw)) == raw
    assert stored < 2300  # the zip of 50 members compressed as one: 3,038 B for vggmini.pt


def test_archives_that_would_not_rebuild_identically_are_not_packed() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/code.py", "x = 1\n" * 50)
    assert pack(buf.getvalue()) is None  # deflated members
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.comment = b"a comment the rebuild would drop"
        z.writestr("a/data/0", bytes(64))
    assert pack(buf.getvalue()) is None
    assert pack(b"not a zip") is None


def _packed(members: object, body: bytes = b"") -> bytes:
    header = json.dumps({"members": members}).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + body


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"PK\x03\x04" + bytes(40), "not a packed zip"),
        (MAGIC + struct.pack("<I", 1 << 30) + b"{}", "runs past its end"),
        (MAGIC + struct.pack("<I", 3) + b"{[}", "not valid JSON"),
        (MAGIC + struct.pack("<I", 5) + b"[1,2]", "no valid member list"),
        (_packed([["a", 4, False, [2000, 1, 1, 0, 0, 0], 0, 3]], b"ab"), "do not add up"),
        (_packed([["a", -1, True, [2000, 1, 1, 0, 0, 0], 0, 3]]), "member 0"),
        (_packed([["a", 1, True, [1970, 1, 1, 0, 0, 0], 0, 3]]), "member 0"),
        (_packed([["a", 1, True, [2000, 1, 1, 0, 0, 0], 0, 3]] * 2), "member 1"),
        (_packed([["a", 1 << 40, True, [2000, 1, 1, 0, 0, 0], 0, 3]]), "more than the"),
    ],
)
def test_malformed_packed_skeletons_are_refused(blob: bytes, why: str) -> None:
    with pytest.raises(InputError, match=why):
        unpack(blob, 1 << 20)


def test_a_packing_bomb_in_an_artifact_is_one_clean_error(skeletons: dict, tmp_path: Path) -> None:
    """An artifact whose packed skeleton declares a terabyte of zeros: refused before allocating."""
    _, art = skeletons["vggmini.pt"]
    bad = tmp_path / "bomb.nnc"
    with zipfile.ZipFile(art) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.startswith("skeleton/"):
                data = _packed([["m/data/0", 1 << 40, True, [1980, 1, 1, 0, 0, 0], 0, 0]])
            zout.writestr(info.filename, data)
    with pytest.raises(InputError, match="more than the"):
        read_artifact(bad)
