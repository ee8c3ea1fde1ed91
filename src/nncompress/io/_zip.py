"""Zip members read with their declared sizes checked first (.keras archives, .nnc artifacts).

zipfile inflates a member to whatever size its header declares; a few kilobytes of deflate or
bzip2 can declare gigabytes. `read_member` refuses a member above a limit or inflating more than
MAX_RATIO times its compressed size before reading it, and turns every error the zip layer can raise
(bad CRC, damaged deflate/LZMA/bzip2 data, unsupported features) into one InputError line.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zipfile
import zlib

from nncompress._limits import MAX_RATIO, check_alloc
from nncompress.errors import InputError

__all__ = ["METHODS", "UNREADABLE", "check_member", "first_duplicate", "read_member"]

UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    ValueError,
    OSError,
    EOFError,
    NotImplementedError,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,  # zipfile: encrypted members, bad passwords
)
_ = bz2  # bzip2 errors surface as OSError/EOFError from zipfile
# What a member may be compressed with: the methods .nnc writers choose among, and the ones zipfile
# reads; every one of them passes the size and ratio checks below before it is inflated.
METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def first_duplicate(names: list[str]) -> str | None:
    """The first member name that occurs twice, or None (zipfile reads the last of two by name,
    a loader walking the list the first: such an archive means two different things)."""
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


def check_member(
    z: zipfile.ZipFile,
    name: str,
    path: str | os.PathLike[str],
    *,
    limit: int | None = None,
    ratio: bool = True,
) -> zipfile.ZipInfo:
    """The member's info, refused if missing, above ``limit`` or the memory budget, or a bomb."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise InputError(f"member {name} is missing", path=str(path)) from None
    if info.compress_type not in METHODS:
        raise InputError(
            f"member {name} uses compression method {info.compress_type}, which nncompress does not read",
            path=str(path),
        )
    if limit is not None and info.file_size > limit:
        raise InputError(
            f"member {name} declares {info.file_size:,} bytes, above the {limit:,} such a member may hold",
            path=str(path),
        )
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise InputError(
            f"member {name} declares {info.file_size:,} bytes but stores {info.compress_size:,}",
            path=str(path),
        )
    if ratio and info.file_size > MAX_RATIO * max(info.compress_size, 1) + (1 << 20):
        raise InputError(
            f"member {name} would inflate {info.compress_size:,} bytes to {info.file_size:,} "
            "(a decompression bomb?)",
            path=str(path),
        )
    check_alloc(info.file_size, f"member {name}", path)
    return info


def read_member(
    z: zipfile.ZipFile, name: str, path: str | os.PathLike[str], *, limit: int | None = None
) -> bytes:
    """A member's bytes, CRC-checked, after `check_member`."""
    check_member(z, name, path, limit=limit)
    try:
        return z.read(name)
    except UNREADABLE as e:
        raise InputError(f"member {name} is unreadable ({type(e).__name__}: {e})", path=str(path)) from None
