"""A zip archive of stored members (a torch skeleton) as a list of members and their bytes, rebuilt
byte for byte when read.

A TorchScript skeleton is a zip of ~50 stored members: code, pickles and zeroed tensor records. Compressed
as one member of the artifact, its zip structure cost more than its content (vggmini.pt: 3,038 B
against 1,618 B for the code and pickles alone): every member's name twice, a CRC-32 twice (random
bytes LZMA cannot shrink) and a zero-filled record per tensor. Packed, it is a header (name, size,
whether the bytes are all zero, date and attributes of each member, in order) and the bytes of the
members that are not all zero; the reader writes the archive again with zipfile, which computes the
same CRCs and headers. `pack` checks that rebuild against the original and declines (None) when
they differ in any byte (an archive with extras, comments, compressed members or another writer's
layout), so a packed skeleton always reads back as the archive the writer produced.

Layout: MAGIC, the header's length (uint32 little-endian), the header (JSON: ``{"members":
[[name, size, zero, [Y, M, D, h, m, s], external_attr, create_system], ...]}``), then the bytes.
"""

from __future__ import annotations

import io
import struct
import zipfile
from typing import Any

from nncompress.errors import InputError
from nncompress.io._json import JSONError, loads

MAGIC = b"NNCZIP\x00\x01"
PACKING = "zip-members/1"  # the manifest's name for this packing
_MAX_MEMBERS = 1 << 16
_MAX_NAME = 1024


def pack(data: bytes) -> bytes | None:
    """``data`` (a zip archive) packed, or None where its rebuild would not be byte-identical."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > _MAX_MEMBERS or any(i.compress_type != zipfile.ZIP_STORED for i in infos):
                return None
            members, body = [], bytearray()
            for i in infos:
                b = z.read(i)
                zero = not any(b)
                members.append(
                    [i.filename, len(b), zero, list(i.date_time), i.external_attr, i.create_system]
                )
                if not zero:
                    body += b
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, KeyError):
        return None
    import json

    header = json.dumps({"members": members}, separators=(",", ":")).encode()
    packed = MAGIC + struct.pack("<I", len(header)) + header + bytes(body)
    try:
        return packed if unpack(packed, len(data)) == data else None
    except InputError:
        return None


def unpack(packed: bytes, limit: int, *, what: str = "packed skeleton") -> bytes:
    """The zip archive ``packed`` holds; InputError when it is malformed or would exceed ``limit`` bytes."""
    if packed[: len(MAGIC)] != MAGIC or len(packed) < len(MAGIC) + 4:
        raise InputError(f"{what}: not a packed zip archive")
    (n,) = struct.unpack_from("<I", packed, len(MAGIC))
    start = len(MAGIC) + 4
    if n > len(packed) - start:
        raise InputError(f"{what}: its header runs past its end")
    try:
        header = loads(packed[start : start + n])
    except JSONError as e:
        raise InputError(f"{what}: header is not valid JSON ({e})") from None
    members = _members(header, what)
    body = memoryview(packed)[start + n :]
    if sum(size for _, size, zero, *_ in members if not zero) != len(body):
        raise InputError(f"{what}: the members' bytes do not add up to what it holds")
    # zip headers: 30 + name local, 46 + name central, 22 at the end (zip64 records above 4 GB)
    total = sum(size + 76 + 2 * len(name.encode()) for name, size, *_ in members) + 22
    if total > limit:
        raise InputError(f"{what}: rebuilds to {total:,} bytes, more than the {limit:,} allowed")
    out = io.BytesIO()
    at = 0
    with zipfile.ZipFile(out, "w") as z:
        for name, size, zero, date_time, attr, system in members:
            y, mo, d, h, mi, sec = date_time
            zi = zipfile.ZipInfo(name, date_time=(y, mo, d, h, mi, sec))
            zi.compress_type = zipfile.ZIP_STORED
            zi.external_attr = attr
            zi.create_system = system
            if zero:
                z.writestr(zi, bytes(size))
            else:
                z.writestr(zi, bytes(body[at : at + size]))
                at += size
    return out.getvalue()


def _members(header: Any, what: str) -> list[tuple[str, int, bool, list[int], int, int]]:
    """The header's member list, every field checked for type and range."""
    rows = header.get("members") if isinstance(header, dict) else None
    if not isinstance(rows, list) or len(rows) > _MAX_MEMBERS:
        raise InputError(f"{what}: header has no valid member list")
    out = []
    names: set[str] = set()
    for k, row in enumerate(rows):
        ok = isinstance(row, list) and len(row) == 6
        if ok:
            name, size, zero, date_time, attr, system = row
            ok = (
                isinstance(name, str)
                and 0 < len(name) <= _MAX_NAME
                and "\x00" not in name
                and name not in names
                and type(size) is int
                and 0 <= size < 1 << 62
                and isinstance(zero, bool)
                and isinstance(date_time, list)
                and len(date_time) == 6
                and all(type(x) is int for x in date_time)
                and 1980 <= date_time[0] <= 2107
                and all(0 <= x <= 60 for x in date_time[1:])
                and type(attr) is int
                and 0 <= attr < 1 << 32
                and type(system) is int
                and 0 <= system < 256
            )
        if not ok:
            raise InputError(f"{what}: member {k} of its header is malformed")
        names.add(name)
        out.append((name, size, zero, date_time, attr, system))
    return out
