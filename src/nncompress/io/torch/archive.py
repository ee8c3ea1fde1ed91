"""PyTorch zip archives (torch.save, TorchScript, torch.export) read and rewritten without torch.

Every one of them keeps a tensor's elements in a raw member (a *record*) and describes it elsewhere
(a pickle, or a JSON config): dtype, offset, shape and strides. Reading checks that description
against the bytes the record really holds before any array is made, so a short or lying record is a
clean error, never a read past a buffer. Writing copies the archive member by member, in order, with
only the records whose tensors changed rewritten: everything torch (or the user) stored beside the
weights stays byte for byte what it was, and the same input gives the same bytes on every run.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncompress.errors import InputError, UnsupportedError
from nncompress.io._zip import first_duplicate

__all__ = ["Stored", "TorchZip", "bf16_to_f32", "f32_to_bf16"]

# torch dtype name -> the numpy dtype of its bytes (bfloat16 is read as raw 16-bit words)
NUMPY_OF = {
    "float64": "<f8",
    "float32": "<f4",
    "float16": "<f2",
    "bfloat16": "<u2",
    "int64": "<i8",
    "int32": "<i4",
    "int16": "<i2",
    "int8": "i1",
    "uint8": "u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "bool": "?",
    "complex64": "<c8",
    "complex128": "<c16",
}
ITEMSIZE = {k: np.dtype(v).itemsize for k, v in NUMPY_OF.items()}

# A record member above this is refused before it is read (a weight of 16 G elements of float32).
MAX_RECORD = 1 << 36
# Members torch writes deflated are small (JSON, pickles): one whose inflated size is far above its
# compressed one is a bomb, refused before it is inflated.
MAX_RATIO = 1000
_ALIGN = 64  # torch's readers map records aligned to 64 bytes


def bf16_to_f32(words: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32 values (exact)."""
    return (words.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounded to nearest even as torch's ``.to(bfloat16)`` does."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    nan = np.isnan(values)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return np.where(nan, (bits >> 16) | 0x40, rounded).astype(np.uint16)


@dataclass(frozen=True)
class Stored:
    """Where one tensor's elements lie: a record, its dtype, and the strided view into it."""

    record: str  # full member name in the zip
    dtype: str  # torch dtype name
    offset: int  # in elements
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def extent(self) -> int:
        """Elements of the record this view reaches (0 for an empty tensor)."""
        if self.numel == 0:
            return 0
        return self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.strides, strict=True)) + 1


class TorchZip:
    """An open PyTorch zip archive whose member names and sizes were checked before use."""

    def __init__(self, path: Path, zf: zipfile.ZipFile, root: str) -> None:
        self.path, self.zf, self.root = path, zf, root
        self.infos = {i.filename: i for i in zf.infolist()}

    @classmethod
    def open(cls, path: Path) -> TorchZip:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            raise InputError(f"truncated or corrupt zip archive ({e})", path=str(path)) from None
        infos = zf.infolist()
        names = [i.filename for i in infos]
        size = path.stat().st_size
        if first_duplicate(names) is not None:
            zf.close()
            raise _bad(path, "the archive names a member twice")
        for i in infos:
            n = i.filename
            if n.startswith("/") or "\\" in n or any(part in ("", ".", "..") for part in n.split("/")[:-1]):
                zf.close()
                raise _bad(path, f"member name {n[:80]!r} is not a plain relative path")
            if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                zf.close()
                raise _bad(path, f"member {n[:80]!r} uses a compression torch does not write")
            if i.compress_type == zipfile.ZIP_STORED and i.file_size != i.compress_size:
                zf.close()
                raise _bad(
                    path, f"member {n[:80]!r} declares {i.file_size} bytes but stores {i.compress_size}"
                )
            if i.header_offset + i.compress_size > size:
                zf.close()
                raise _bad(path, f"member {n[:80]!r} lies past the end of the file")
            if i.file_size > MAX_RECORD or i.file_size > MAX_RATIO * max(i.compress_size, 1) + (1 << 20):
                zf.close()
                raise _bad(path, f"member {n[:80]!r} declares {i.file_size} bytes (a decompression bomb?)")
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or not all("/" in n for n in names):
            zf.close()
            raise _bad(path, "members are not all under one record folder")
        return cls(path, zf, roots.pop())

    def close(self) -> None:
        self.zf.close()

    def __enter__(self) -> TorchZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, name: str) -> bool:
        return f"{self.root}/{name}" in self.infos

    def names(self) -> list[str]:
        cut = len(self.root) + 1
        return [n[cut:] for n in self.infos]

    def size(self, name: str) -> int:
        return self.infos[f"{self.root}/{name}"].file_size

    def read(self, name: str, *, limit: int = MAX_RECORD) -> bytes:
        """A member's bytes (CRC checked), refused above ``limit`` before anything is inflated."""
        full = f"{self.root}/{name}"
        info = self.infos.get(full)
        if info is None:
            raise _bad(self.path, f"member {name!r} is missing")
        if info.file_size > limit:
            raise _bad(self.path, f"member {name!r} is {info.file_size} bytes, above the {limit}-byte limit")
        try:
            return self.zf.read(full)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            raise _bad(self.path, f"member {name!r} is unreadable ({e})") from None

    def check(self, st: Stored, what: str) -> None:
        """Refuse a view that reaches past its record, or an unknown dtype, before any read."""
        if st.dtype not in NUMPY_OF:
            raise UnsupportedError(
                f"{what} has dtype {st.dtype}, which nncompress cannot read", path=str(self.path)
            )
        if any(d < 0 for d in st.shape) or any(s < 0 for s in st.strides) or st.offset < 0:
            raise _bad(self.path, f"{what} has a negative size, stride or offset")
        if len(st.shape) != len(st.strides):
            raise _bad(self.path, f"{what} has {len(st.shape)} sizes but {len(st.strides)} strides")
        info = self.infos.get(st.record)
        need = st.extent() * ITEMSIZE[st.dtype]
        if info is None:
            if need:
                raise _bad(self.path, f"{what}: its record {st.record!r} is missing")
            return
        if need > info.file_size:
            raise _bad(
                self.path,
                f"{what} needs {need} bytes of record {st.record!r}, which holds {info.file_size}",
            )

    def array(self, st: Stored, what: str, *, cache: dict[str, bytes] | None = None) -> np.ndarray:
        """The tensor as a new contiguous numpy array (bfloat16 widened to float32), checked first."""
        self.check(st, what)
        if st.numel == 0:
            out = np.zeros(st.shape, dtype=NUMPY_OF[st.dtype])
        else:
            raw = cache.get(st.record) if cache is not None else None
            if raw is None:
                raw = self.read(st.record[len(self.root) + 1 :])
                if cache is not None:
                    cache[st.record] = raw
            flat = np.frombuffer(raw, dtype=NUMPY_OF[st.dtype], count=len(raw) // ITEMSIZE[st.dtype])
            item = flat.itemsize
            view = np.lib.stride_tricks.as_strided(
                flat[st.offset :], shape=st.shape, strides=[s * item for s in st.strides], writeable=False
            )
            out = np.array(view, copy=True)
        return bf16_to_f32(out) if st.dtype == "bfloat16" else out


def _bad(path: Path, what: str) -> InputError:
    return InputError(
        f"corrupt PyTorch archive: {what}", path=str(path), hint="Re-save or re-download the file"
    )


def _padding(offset: int, name: bytes) -> bytes:
    """The local-header extra field that puts a member's data at a multiple of 64 bytes (torch's
    own "FB" padding record)."""
    start = offset + 30 + len(name) + 4
    pad = -start % _ALIGN
    return struct.pack("<2sH", b"FB", pad) + b"Z" * pad


def patch(
    src: Path,
    dst: Path,
    changes: Iterable[tuple[Stored, np.ndarray]],
    *,
    replace: Mapping[str, bytes] | None = None,
    drop: Iterable[str] = (),
    stored: bool = False,
) -> None:
    """Copy archive ``src`` to ``dst`` with the tensors of ``changes`` written into their records,
    whole members of ``replace`` (full names) swapped and those of ``drop`` left out; every other
    byte of content is kept. ``stored``: every member written uncompressed (torch reads both) and
    without torch's alignment padding, for an archive that is compressed again as a whole (LZMA sees
    through raw text, not through deflate) and patched again before use (which pads each record)."""
    by_record: dict[str, list[tuple[Stored, np.ndarray]]] = {}
    for st, arr in changes:
        by_record.setdefault(st.record, []).append((st, arr))
    replace = dict(replace or {})
    with zipfile.ZipFile(src) as zin, open(dst, "wb") as f, zipfile.ZipFile(f, "w") as zout:
        gone = set(drop)
        for info in zin.infolist():
            if info.filename in gone:
                continue
            data = replace.pop(info.filename, None)
            if data is None:
                data = zin.read(info.filename)
            if info.filename in by_record:
                data = _write_views(data, by_record.pop(info.filename))
            zi = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            zi.compress_type = zipfile.ZIP_STORED if stored else info.compress_type
            zi.external_attr = info.external_attr
            zi.create_system = info.create_system
            if not stored and zi.compress_type == zipfile.ZIP_STORED and len(data) < (1 << 31):
                zi.extra = _padding(f.tell(), zi.filename.encode("utf-8"))
            zout.writestr(zi, data)
    if by_record or replace:
        missing = sorted(set(by_record) | set(replace))
        raise ValueError(f"records {missing[:3]} are not in the archive")


def _write_views(data: bytes, views: list[tuple[Stored, np.ndarray]]) -> bytes:
    buf = bytearray(data)
    for st, arr in views:
        if st.numel == 0:
            continue
        if st.extent() * ITEMSIZE[st.dtype] > len(buf):
            raise ValueError(f"record {st.record} is too short for its tensor")
        flat = np.frombuffer(buf, dtype=NUMPY_OF[st.dtype], count=len(buf) // ITEMSIZE[st.dtype])
        view = np.lib.stride_tricks.as_strided(
            flat[st.offset :], shape=st.shape, strides=[s * flat.itemsize for s in st.strides], writeable=True
        )
        new = np.asarray(arr)
        if st.dtype == "bfloat16":
            new = f32_to_bf16(new.astype(np.float32, copy=False))
        view[...] = new.reshape(st.shape).astype(view.dtype, copy=False)
    return bytes(buf)
