"""The `.nnc` artifact: a zip of ``manifest.json`` and one raw array member, readable with zipfile + numpy.

Layout (docs/format.md is the reference for users):

- ``manifest.json``: schema version, tool version, source format and file name, the recipe, its
  sha256 and the seed, and one entry per tensor: its name, format, IR shape, source dtype, the
  format's small parameters (``meta``) and where each of its arrays lies in ``arrays.bin``
  (offset, little-endian dtype, shape).
- ``arrays.bin``: every tensor's arrays back to back, each at a multiple of its item size. Schema
  /1 stored each array as its own ``.npy`` member, about 230 bytes of headers per array: 38 % of a
  small model's file. /1 files are still read.
- ``skeleton/<name>``: the source model with every weight zeroed, cut to what its writer needs to
  rebuild a runnable model in the source format (`nncompress.io.slim_skeleton`).

``manifest.json`` and the skeleton are each stored with whichever of stored, deflate (level 9),
bzip2 and LZMA gives the fewest bytes (a tie keeps the earlier of that order); a skeleton above
64 MB is bzip2 without trying the others (time, and zipfile would inflate LZMA in one piece).
``arrays.bin`` is always stored: its arrays are entropy-coded or dense floats.

Writing is deterministic: members in a fixed order, fixed timestamps, fixed compression settings,
so the same input, recipe and seed give a byte-identical file. Reading validates the schema, every
member's CRC (zipfile does it on read), array dtypes and shapes, and each format's own offsets
before anything is used; any inconsistency is an InputError naming the file.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import lzma
import math
import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from nncompress import __version__, zippack
from nncompress._limits import check_alloc
from nncompress.errors import InputError
from nncompress.io._json import JSONError, loads
from nncompress.io._zip import UNREADABLE, check_member, read_member

SCHEMA = "nncompress.artifact/2"
SCHEMA_V1 = "nncompress.artifact/1"  # one .npy member per array; read, no longer written
MANIFEST = "manifest.json"
ARRAYS = "arrays.bin"
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Arrays are already entropy-coded or dense floats: deflate gains little and costs time.
_ARRAY_COMPRESSION = zipfile.ZIP_STORED
# What reading a damaged member raises: zipfile's own errors, and its decompressors' (a flipped byte
# in deflate or LZMA data fails there, before the CRC is reached).
_UNREADABLE = (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, lzma.LZMAError)


@dataclass
class TensorEntry:
    """One stored tensor: which format, and its arrays."""

    name: str
    format: str
    shape: tuple[int, ...]
    dtype: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def payload_bytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))


@dataclass
class Artifact:
    """The content of a `.nnc` file, in memory."""

    source_format: str
    source_name: str
    recipe: dict[str, Any]
    seed: int
    tensors: list[TensorEntry]
    # bytes, or a file streamed into the zip when written (a zeroed VGG16 is 553 MB: not held in memory)
    skeleton: bytes | Path = b""
    skeleton_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA  # what the file was read as; always written as SCHEMA
    # member name -> its compressed bytes in the zip, as written (write_artifact) or read
    stored: dict[str, int] = field(default_factory=dict)

    @property
    def skeleton_size(self) -> int:
        """Uncompressed bytes of the skeleton."""
        return self.skeleton.stat().st_size if isinstance(self.skeleton, Path) else len(self.skeleton)

    @property
    def recipe_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.recipe, sort_keys=True).encode()).hexdigest()


def _little(a: np.ndarray) -> np.ndarray:
    """``a`` contiguous and little-endian (the stored byte order, whatever machine writes it)."""
    return np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C")  # keeps 0-d arrays 0-d


def _layout(art: Artifact) -> list[dict[str, tuple[int, np.ndarray]]]:
    """Per tensor, array name -> (offset in arrays.bin, its little-endian array), in write order."""
    out, end = [], 0
    for t in art.tensors:
        placed = {}
        for k in sorted(t.arrays):
            a = _little(t.arrays[k])
            end += -end % a.dtype.itemsize  # aligned to its items: views without a copy
            placed[k] = (end, a)
            end += a.nbytes
        out.append(placed)
    return out


def _info(name: str, compress: int) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=_EPOCH)
    zi.compress_type = compress
    zi.external_attr = 0o644 << 16
    zi.create_system = 3  # unix, whatever machine writes it: part of the bytes
    return zi


def manifest_of(
    art: Artifact, layout: list[dict[str, tuple[int, np.ndarray]]] | None = None, packing: str | None = None
) -> dict[str, Any]:
    layout = _layout(art) if layout is None else layout
    extra = {"skeleton_packing": packing} if packing else {}
    return {
        **extra,
        "schema": SCHEMA,
        "tool": {"name": "nncompress", "version": __version__},
        "source": {"format": art.source_format, "name": art.source_name},
        "recipe": art.recipe,
        "recipe_sha256": art.recipe_sha256,
        "seed": art.seed,
        "skeleton": art.skeleton_name and f"skeleton/{art.skeleton_name}",
        "arrays_member": ARRAYS,
        "extra": art.extra,
        "tensors": [
            {
                "name": t.name,
                "format": t.format,
                "shape": list(t.shape),
                "dtype": t.dtype,
                "meta": t.meta,
                "arrays": {
                    k: {"offset": off, "dtype": a.dtype.str, "shape": list(a.shape)}
                    for k, (off, a) in placed.items()
                },
                "payload_bytes": t.payload_bytes,
            }
            for t, placed in zip(art.tensors, layout, strict=True)
        ],
    }


_BZIP2_ABOVE = 64 << 20
_MAX_MANIFEST = 256 << 20  # about a million tensors' entries
_MAX_STRUCTURE = 256 << 20  # a skeleton's bytes beyond its tensors: graph, config, code


def _itemsize(dtype: str) -> int:
    try:
        return max(1, np.dtype(dtype).itemsize)
    except TypeError:
        return 8  # bfloat16 and other names numpy lacks: counted generously


# The methods a small member is tried with, in this order: a tie keeps the earlier (stored is the
# cheapest to read, LZMA the slowest). Every one of them is what zipfile reads.
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_LEVEL = {zipfile.ZIP_DEFLATED: 9, zipfile.ZIP_BZIP2: 9}  # LZMA: zipfile's fixed settings


def _compressed_size(data: bytes, method: int) -> int:
    """The bytes ``data`` takes as a zip member's data with ``method``, exactly as written below."""
    with zipfile.ZipFile(io.BytesIO(), "w") as z:
        z.writestr(_info("m", method), data, compresslevel=_LEVEL.get(method))
        return z.getinfo("m").compress_size


def _smallest(data: bytes) -> tuple[int, int]:
    """The method of `_METHODS` that stores ``data`` in the fewest bytes (the first on a tie), and
    that size."""
    sizes = [_compressed_size(data, m) for m in _METHODS]
    return _METHODS[sizes.index(min(sizes))], min(sizes)


def _write_small(z: zipfile.ZipFile, name: str, data: bytes, method: int | None = None) -> None:
    method = _smallest(data)[0] if method is None else method
    z.writestr(_info(name, method), data, compresslevel=_LEVEL.get(method))


def write_artifact(art: Artifact, path: str | Path) -> int:
    """Write ``art`` to ``path`` (the caller handles temp file and rename); return bytes on disk.
    ``art.stored`` gets each member's compressed bytes."""
    layout = _layout(art)
    small, method, packing = None, None, None
    if art.skeleton_name and art.skeleton_size <= _BZIP2_ABOVE:
        small = art.skeleton.read_bytes() if isinstance(art.skeleton, Path) else art.skeleton
        method, size = _smallest(small)
        packed = zippack.pack(small) if small[:4] == b"PK\x03\x04" else None
        if packed is not None:
            m_packed, s_packed = _smallest(packed)
            if s_packed < size:
                small, method, packing = packed, m_packed, zippack.PACKING
    with zipfile.ZipFile(path, "w") as z:
        # compact separators: indentation and spaces cost a tenth of the compressed manifest
        text = json.dumps(manifest_of(art, layout, packing), sort_keys=True, separators=(",", ":"))
        _write_small(z, MANIFEST, text.encode())
        if art.skeleton_name:
            member = f"skeleton/{art.skeleton_name}"
            size = art.skeleton_size
            if small is not None:
                _write_small(z, member, small, method)
            elif isinstance(art.skeleton, Path):
                # Above 64 MB a skeleton is mostly zeros: bzip2's run-length stage packs them as
                # tightly as LZMA (a zeroed VGG16: 553 MB to under a kilobyte) in half the time,
                # and `_copy_member` reads it back in bounded pieces.
                zi = _info(member, zipfile.ZIP_BZIP2)
                # What writestr does, fed in chunks (same bytes); the size picks zip64 up front.
                zi.file_size = size
                with art.skeleton.open("rb") as src, z.open(zi, "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
            else:
                z.writestr(_info(member, zipfile.ZIP_BZIP2), art.skeleton)
        zi = _info(ARRAYS, _ARRAY_COMPRESSION)
        arrays = [(off, a) for placed in layout for off, a in placed.values()]
        zi.file_size = max((off + a.nbytes for off, a in arrays), default=0)  # picks zip64 up front
        with z.open(zi, "w") as dst:
            at = 0
            for off, a in arrays:
                dst.write(bytes(off - at))
                dst.write(a.tobytes())
                at = off + a.nbytes
        art.stored = {i.filename: i.compress_size for i in z.infolist()}
    return Path(path).stat().st_size


def _bad(path: str | os.PathLike[str], what: str) -> InputError:
    return InputError(
        f"corrupt .nnc artifact: {what}", path=str(path), hint="Re-create it with nncompress compress"
    )


def _read_npy(z: zipfile.ZipFile, member: str, path: str | os.PathLike[str]) -> np.ndarray:
    try:
        raw = read_member(z, member, path)  # sizes checked, then zipfile checks the CRC
        f = io.BytesIO(raw)
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(f)
        if math.prod(shape) * dtype.itemsize > len(raw):  # a header may claim more than the member holds
            raise _bad(path, f"member {member} declares {shape} {dtype}, more than its {len(raw)} bytes")
        f.seek(0)
        a = np.load(f, allow_pickle=False)
    except InputError:
        raise
    except _UNREADABLE as e:
        raise _bad(path, f"member {member} is unreadable ({e})") from None
    if a.dtype.kind not in "biuf":
        raise _bad(path, f"member {member} has dtype {a.dtype}, not a plain number")
    return a


def _check_entry(entry: Any, i: int, path: str | os.PathLike[str]) -> None:
    """A manifest tensor entry has the types the rest of nncompress relies on."""
    if not isinstance(entry, dict):
        raise _bad(path, f"tensor entry {i} is not an object")
    for key, kind in (("name", str), ("format", str), ("dtype", str), ("meta", dict), ("arrays", dict)):
        if not isinstance(entry.get(key), kind):
            raise _bad(path, f"tensor entry {i}: {key} must be a {kind.__name__}")
    shape = entry.get("shape")
    if (
        not isinstance(shape, list)
        or not all(type(d) is int and d >= 0 for d in shape)
        or math.prod(shape) >= 1 << 48  # int64 products of it downstream must not overflow
    ):
        raise _bad(
            path,
            f"tensor {entry['name']!r}: shape must be a list of non-negative integers, below 2^48 in all",
        )


def _read_blob(z: zipfile.ZipFile, member: str, path: str | os.PathLike[str]) -> bytearray:
    """The whole arrays member, CRC-checked, in a writable buffer (the arrays are views of it)."""
    try:
        with z.open(member) as f:
            blob = bytearray(z.getinfo(member).file_size)
            n = cast(io.BufferedIOBase, f).readinto(blob)  # a ZipExtFile
            if n != len(blob) or f.read(1):  # reading to the end is what checks the CRC
                raise zipfile.BadZipFile(f"{n} bytes, the header says {len(blob)}")
    except KeyError:
        raise _bad(path, f"member {member} is missing") from None
    except _UNREADABLE as e:
        raise _bad(path, f"member {member} is unreadable ({e})") from None
    return blob


def _view(blob: bytearray, spec: Any, what: str, path: str | os.PathLike[str]) -> np.ndarray:
    """The array a manifest entry {offset, dtype, shape} places in the arrays member, checked."""
    if not isinstance(spec, dict):
        raise _bad(path, f"{what}: not an {{offset, dtype, shape}} entry")
    try:
        dt = np.dtype(spec["dtype"])
    except TypeError:
        raise _bad(path, f"{what} has dtype {spec['dtype']!r}, not a plain number") from None
    if dt.kind not in "biuf" or dt.fields is not None or dt.subdtype is not None or dt.byteorder == ">":
        raise _bad(path, f"{what} has dtype {spec['dtype']!r}, not a plain little-endian number")
    off, shape = spec["offset"], spec["shape"]
    if not (isinstance(off, int) and isinstance(shape, list) and all(isinstance(d, int) for d in shape)):
        raise _bad(path, f"{what}: offset and shape must be integers")
    count = math.prod(shape)  # Python ints: a crafted shape cannot overflow past the check below
    if off < 0 or any(d < 0 for d in shape) or off + count * dt.itemsize > len(blob):
        raise _bad(path, f"{what} lies outside {ARRAYS} ({len(blob)} bytes)")
    return np.frombuffer(blob, dtype=dt, count=count, offset=off).reshape(shape)


def _copy_member(path: Path, z: zipfile.ZipFile, member: str, dst: Any) -> None:
    """Write a member's bytes to ``dst``, a bounded piece at a time, CRC checked. zipfile's reader
    inflates bzip2 (and LZMA) data a whole compressed block at once: the bzip2 skeleton of a VGG16,
    a few hundred bytes of zeros, came out as 553 MB in one piece."""
    info = z.getinfo(member)
    if info.compress_type != zipfile.ZIP_BZIP2:  # the others are written below 64 MB only
        with z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 22)  # reading to the end checks the CRC
        return
    with path.open("rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("bad local file header")
        f.seek(int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little"), os.SEEK_CUR)
        dec, left, crc, size = bz2.BZ2Decompressor(), info.compress_size, 0, 0
        while not dec.eof:
            chunk = b""
            if dec.needs_input:
                chunk = f.read(min(1 << 20, left))
                if not chunk:
                    raise zipfile.BadZipFile("compressed data ends early")
                left -= len(chunk)
            out = dec.decompress(chunk, max_length=1 << 22)
            size += len(out)
            if size > info.file_size:
                raise zipfile.BadZipFile("more data than the header says")
            crc = zlib.crc32(out, crc)
            dst.write(out)
    if size != info.file_size or crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 or size for file {member!r}")


def read_artifact(
    path: str | os.PathLike[str],
    skeleton_dir: str | os.PathLike[str] | None = None,
    *,
    with_skeleton: bool = True,
) -> Artifact:
    """Read and validate a `.nnc` file (formats validate their own arrays when decoded).

    ``skeleton_dir``: stream the skeleton into a file of that folder (``Artifact.skeleton`` is then
    its path) instead of memory, where a VGG16's takes 553 MB. ``with_skeleton=False`` leaves it
    unread (``inspect`` reports its stored size only)."""
    p = Path(path)
    try:
        z = zipfile.ZipFile(p)
    except UNREADABLE as e:  # NotImplementedError too: a zip version or feature zipfile lacks
        raise _bad(p, f"not a readable zip ({e})") from None
    with z:
        if MANIFEST not in z.namelist():
            raise _bad(p, "manifest.json is missing")
        try:
            m = loads(read_member(z, MANIFEST, p, limit=_MAX_MANIFEST))
        except JSONError as e:
            raise _bad(p, f"manifest.json is not valid JSON ({e})") from None
        except InputError as e:
            raise _bad(p, e.detail) from None
        if not isinstance(m, dict) or m.get("schema") not in (SCHEMA, SCHEMA_V1):
            got = m.get("schema") if isinstance(m, dict) else type(m).__name__
            raise InputError(
                f"unsupported artifact schema {got!r} (this nncompress reads {SCHEMA} and {SCHEMA_V1})",
                path=str(p),
                hint="Use the nncompress version that wrote it",
            )
        try:
            v1 = m["schema"] == SCHEMA_V1
            declared, source_bytes = 0, 0
            for i, entry in enumerate(m["tensors"]):
                _check_entry(entry, i, p)
                n = math.prod(entry["shape"])
                declared += n * 8  # what decoding it may take, at most
                source_bytes += n * _itemsize(entry["dtype"])
            check_alloc(declared, "the artifact's tensors", p)
            if not v1 and m["arrays_member"]:
                check_member(z, m["arrays_member"], p)
            blob = _read_blob(z, m["arrays_member"], p) if not v1 and m["arrays_member"] else bytearray()
            tensors = []
            for entry in m["tensors"]:
                if v1:
                    arrays = {k: _read_npy(z, member, p) for k, member in entry["arrays"].items()}
                else:
                    arrays = {
                        k: _view(blob, spec, f"tensor {entry['name']!r} array {k!r}", p)
                        for k, spec in entry["arrays"].items()
                    }
                shape = tuple(entry["shape"])
                tensors.append(
                    TensorEntry(entry["name"], entry["format"], shape, entry["dtype"], entry["meta"], arrays)
                )
            skel_member = m["skeleton"]
            skel_name = skel_member.split("/", 1)[1] if skel_member else ""
            if skel_member and (
                not skel_member.startswith("skeleton/")
                or Path(skel_name).name != skel_name
                or skel_name in ("", ".", "..")
            ):  # it becomes a file name: no folders, no way out of the folder it is written to
                raise _bad(p, f"skeleton member {skel_member!r} is not skeleton/<file name>")
            skeleton: bytes | Path = b""
            packing = m.get("skeleton_packing")
            if packing not in (None, zippack.PACKING):
                raise _bad(
                    p, f"unknown skeleton packing {packing!r} (this nncompress reads {zippack.PACKING})"
                )
            if skel_member:
                # our skeletons are mostly zeros (bzip2 packs a zeroed VGG16's 553 MB under a
                # kilobyte), so the ratio says nothing; the model it holds is bounded by the budget
                info = check_member(z, skel_member, p, ratio=False)
                # ...but it is the model with its weights zeroed: the weights (in the manifest) plus
                # its structure, and training state where compress kept it (Adam: twice the weights)
                if info.file_size > 4 * source_bytes + _MAX_STRUCTURE:
                    raise _bad(
                        p,
                        f"skeleton declares {info.file_size:,} bytes for a model whose tensors take "
                        f"{source_bytes:,} (a decompression bomb?)",
                    )
            try:
                if not with_skeleton:
                    pass
                elif skel_member and packing:
                    # a torch skeleton's members without their zip (`zippack`): the archive it
                    # rebuilds is bounded like a skeleton member's declared size
                    data = zippack.unpack(z.read(skel_member), 4 * source_bytes + _MAX_STRUCTURE)
                    skeleton = data
                    if skeleton_dir is not None:
                        skeleton = Path(skeleton_dir) / skel_name
                        skeleton.write_bytes(data)
                elif skel_member and skeleton_dir is not None:
                    skeleton = Path(skeleton_dir) / skel_name
                    with skeleton.open("wb") as dst:
                        _copy_member(p, z, skel_member, dst)
                elif skel_member:
                    skeleton = z.read(skel_member)
            except _UNREADABLE as e:
                raise _bad(p, f"member {skel_member} is unreadable ({e})") from None
            except InputError as e:
                raise _bad(p, e.detail) from None
            return Artifact(
                source_format=m["source"]["format"],
                source_name=m["source"]["name"],
                recipe=m["recipe"],
                seed=int(m["seed"]),
                tensors=tensors,
                skeleton=skeleton,
                skeleton_name=skel_name,
                extra=m.get("extra", {}),
                schema=m["schema"],
                stored={i.filename: i.compress_size for i in z.infolist()},
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise _bad(p, f"manifest is inconsistent ({type(e).__name__}: {e})") from None
        except zipfile.BadZipFile as e:
            raise _bad(p, str(e)) from None
