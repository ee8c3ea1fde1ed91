"""Where the initializer bytes of an ONNX file lie, found by walking the protobuf wire format.

Parsing a model with ``onnx.load`` holds the file's bytes and the parsed message at once, and
``numpy_helper.to_array`` copies every tensor again: three copies of a 550 MB VGG16. Instead the
loader parses a copy of the file without the top-level initializers' ``raw_data`` payloads (what
`strip` gives: kilobytes) and reads each payload straight into its numpy array; a writer that only
changes those payloads (same dtype and shape, hence same length) splices them into a copy of the
file. Field numbers are those of onnx.proto3: ModelProto.graph = 7, GraphProto.initializer = 5,
TensorProto.dims = 1, data_type = 2, name = 8, raw_data = 9.
"""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# data_type -> little-endian numpy dtype, for the types stored one element per itemsize bytes
# and read by numpy_helper.to_array as that same dtype
_DTYPES = {
    1: "<f4",
    2: "u1",
    3: "i1",
    4: "<u2",
    5: "<i2",
    6: "<i4",
    7: "<i8",
    9: "?",
    10: "<f2",
    11: "<f8",
    12: "<u4",
    13: "<u8",
}


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (truncated or corrupt file)."""


@dataclass(frozen=True)
class RawTensor:
    """A top-level initializer whose data is its ``raw_data`` payload at ``offset`` in the file."""

    index: int  # position among the graph's initializers
    name: str
    dtype: np.dtype
    dims: tuple[int, ...]
    offset: int
    length: int


def _varint(buf: mmap.mmap | bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: mmap.mmap | bytes, start: int, end: int) -> list[tuple[int, int, int, int, int]]:
    """(field number, wire type, tag start, value start, value end) of each field in buf[start:end]."""
    out = []
    pos = start
    while pos < end:
        tag_start = pos
        tag, pos = _varint(buf, pos, end)
        field, wt = tag >> 3, tag & 7
        if field == 0:
            raise WireError("field number 0")
        if wt == _VARINT:
            _, vend = _varint(buf, pos, end)
        elif wt == _I64:
            vend = pos + 8
        elif wt == _I32:
            vend = pos + 4
        elif wt == _LEN:
            n, pos = _varint(buf, pos, end)
            vend = pos + n
        else:
            raise WireError(f"wire type {wt} (groups are not used by ONNX)")
        if vend > end:
            raise WireError("a field runs past the end of its message")
        out.append((field, wt, tag_start, pos, vend))
        pos = vend
    return out


def _key(field: int, wt: int) -> bytes:
    return _enc((field << 3) | wt)


def _enc(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _tensor(buf: mmap.mmap, start: int, end: int, index: int) -> tuple[bytes, RawTensor | None]:
    """The TensorProto at buf[start:end] without its raw_data when that can be read directly."""
    dims: list[int] = []
    data_type, name, raw = 0, "", None
    fields = _fields(buf, start, end)
    for f, wt, _, vs, ve in fields:
        if f == 1 and wt == _VARINT:
            dims.append(_varint(buf, vs, ve)[0])
        elif f == 1 and wt == _LEN:
            p = vs
            while p < ve:
                d, p = _varint(buf, p, ve)
                dims.append(d)
        elif f == 2 and wt == _VARINT:
            data_type = _varint(buf, vs, ve)[0]
        elif f == 8 and wt == _LEN:
            name = bytes(buf[vs:ve]).decode("utf-8", "replace")
        elif f == 9 and wt == _LEN:
            raw = (vs, ve)
    dtype = _DTYPES.get(data_type)
    if raw is None or dtype is None:
        return bytes(buf[start:end]), None
    dt = np.dtype(dtype)
    if math.prod(dims) * dt.itemsize != raw[1] - raw[0]:
        return bytes(buf[start:end]), None  # inconsistent: let onnx parse it and complain
    kept = b"".join(bytes(buf[ts:ve]) for f, _, ts, _, ve in fields if f != 9)
    return kept, RawTensor(index, name, dt, tuple(dims), raw[0], raw[1] - raw[0])


def _graph(buf: mmap.mmap, start: int, end: int, raws: list[RawTensor]) -> bytes:
    out = bytearray()
    count = 0
    for f, wt, ts, vs, ve in _fields(buf, start, end):
        if f == 5 and wt == _LEN:
            t, raw = _tensor(buf, vs, ve, count)
            count += 1
            if raw is not None:
                raws.append(raw)
            out += _key(5, _LEN) + _enc(len(t)) + t
        else:
            out += buf[ts:ve]
    return bytes(out)


def strip(path: str | os.PathLike[str]) -> tuple[bytes, list[RawTensor]]:
    """The model's bytes without the top-level initializers' raw_data, and where those payloads lie.

    Raises WireError when the file is not a well-formed protobuf message.
    """
    if os.path.getsize(path) == 0:  # an empty message (mmap refuses a zero-length map: ValueError)
        return b"", []
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        out = bytearray()
        raws: list[RawTensor] = []
        fields = _fields(buf, 0, len(buf))
        graphs = [fl for fl in fields if fl[:2] == (7, _LEN)]
        for f, wt, ts, vs, ve in fields:
            if f == 7 and wt == _LEN and len(graphs) == 1:  # several would be merged: leave to onnx
                g = _graph(buf, vs, ve, raws)
                out += _key(7, _LEN) + _enc(len(g)) + g
            else:
                out += buf[ts:ve]
        return bytes(out), raws


def read(path: str | os.PathLike[str], t: RawTensor) -> np.ndarray:
    """The tensor's array, read straight from the file (native byte order)."""
    with open(path, "rb") as fh:
        fh.seek(t.offset)
        a = np.fromfile(fh, dtype=t.dtype, count=t.length // t.dtype.itemsize)
    if a.size * t.dtype.itemsize != t.length:
        raise WireError(f"tensor {t.name!r} is cut short")
    return a.astype(t.dtype.newbyteorder("="), copy=False).reshape(t.dims)


def splice(src: Path, dst: Path, patches: list[tuple[RawTensor, Callable[[], np.ndarray]]]) -> None:
    """Copy ``src`` to ``dst`` with each tensor's payload replaced by the bytes of a new array.

    Each array, made when its turn comes, must have the tensor's number of entries (it is cast to
    the tensor's dtype), so that its payload keeps its length and every enclosing length field
    stays right; it is written a block of rows at a time.
    """
    step = 1 << 24
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        pos = 0
        for t, make in sorted(patches, key=lambda p: p[0].offset):
            _copy(fi, fo, pos, t.offset)
            arr = make()
            if arr.size * t.dtype.itemsize != t.length:
                raise ValueError(f"tensor {t.name!r}: {arr.size} entries for {t.length} bytes")
            rows = arr.reshape(1, -1) if arr.ndim < 2 else arr
            per = max(1, step // max(1, rows[0].size * t.dtype.itemsize))
            for r in range(0, rows.shape[0], per):
                fo.write(np.ascontiguousarray(rows[r : r + per], dtype=t.dtype).tobytes())
            pos = t.offset + t.length
        _copy(fi, fo, pos, os.fstat(fi.fileno()).st_size)


def _copy(fi: BinaryIO, fo: BinaryIO, start: int, stop: int) -> None:
    fi.seek(start)
    left = stop - start
    while left > 0:
        chunk = fi.read(min(left, 1 << 24))
        if not chunk:
            raise WireError("source file changed while copying")
        fo.write(chunk)
        left -= len(chunk)
