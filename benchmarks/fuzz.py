"""Mutation fuzzer for the CLI: hostile copies of every example model and artifact (issue 12, item 5).

Inputs (the seeds): every example model in ``examples/models`` (vgg16* excepted), a small
``torch.export`` program it builds with ``torch.export.save`` (``tiny.pt2``), and the ``.nnc``
artifact of each of them (``nncompress compress MODEL --method sham --samples 4``). Seeds are built
once under ``benchmarks/out/fuzz/seeds`` (git-ignored; ``--rebuild-seeds`` builds them again).

Each case draws one mutation from the families that fit the input:

- bytes: byte flips, interesting byte values, truncation, chunk duplication and deletion;
- zip (``.keras``, ``.pt``, ``.pt2``, ``.nnc``): a member's bytes replaced, a member dropped or
  renamed, a duplicate name, a member byte-flipped or truncated inside, an inflate bomb (a deflate or
  bzip2 member that decompresses to gigabytes, with a correct CRC and sizes);
- json (members ending in ``.json``: ``manifest.json``, ``config.json``, ``metadata.json``, the
  ``.pt2`` ``models/model.json`` and weights configs): deep nesting, NaN/Infinity, huge numbers,
  wrong types, whole-document replacements, broken text;
- h5 (``.h5`` files and ``.h5`` members of a zip, edited with h5py on a copy): ``model_config``
  and other attributes replaced by deep, broken or wrongly typed JSON, datasets replaced by ones that
  declare an enlarged shape, another dtype or a scalar, objects deleted;
- onnx (``.onnx``): initializer dims enlarged, raw data shortened, data type changed, op renamed.

Each model mutant goes through ``nncompress inspect`` and, unless inspect refused it (the same
loader would refuse it again: measured below), ``nncompress compress ... --method sham --samples 4
--force``, each ``.nnc`` mutant through ``inspect`` and ``nncompress decompress ...
--force`` (compress refuses a ``.nnc`` by its name, reading nothing: until seed 46 it ran anyway), each in a
subprocess with a wall-time limit and an address-space limit (RLIMIT_AS), its peak RSS read with
``os.wait4``. Every result gets one class:

    ok            exit 0
    refusal       exit 2-6, exactly one stderr line starting "nncompress: error:", no traceback
    bad-error     exit 2-6 with several stderr lines, a traceback or a line over 1000 characters
    internal      exit 1 (rerun with NNCOMPRESS_DEBUG=1 to record the traceback)
    signal        killed by a signal (negative return code)
    hang          over the wall-time limit (the CLI's watchdogs on libhdf5 reads and on model runs
                  are set to half of it, so what they stop is a refusal naming the file)
    over-memory   peak RSS over 1 GB (whatever the exit code)
    sanitizer     with --asan: an AddressSanitizer or UBSan report from the C kernels
    other-exit    any other exit code

It prints a markdown table of counts per input and class and writes every non-clean case (input,
mutation, command, return code, stderr last line, traceback tail) to a JSON file; the mutant of
each non-clean case is kept beside it to reproduce it.

    python benchmarks/fuzz.py --cases 20 --seed 1                # 20 mutants per input
    python benchmarks/fuzz.py --only lenet300.h5 --only .nnc     # inputs whose name contains these
    python benchmarks/fuzz.py --only '.pt$'                      # ... or ends with (one loader)
    python benchmarks/fuzz.py --minutes 30                       # as many rounds as fit in 30 min
    python benchmarks/fuzz.py --asan --only .pt                   # kernels built with ASan + UBSan
    python benchmarks/fuzz.py --fork --pipeline SPEC --seed 7 --cases 0 --minutes 120  # long runs

``--fork`` runs each command in a child forked from the harness after it imported the frameworks
once (a fresh interpreter spends 1-3 s importing them, most of a refused mutant's time: 0.2 s
against 1.1 s for a truncated .pt's inspect, measured); one case at a time, so a long run starts
one harness per core with different seeds. ``--pipeline SPEC`` compresses with that pipeline
instead of ``--method sham`` (the loaders and decoders see the same bytes without the budget
search: 0.7 s against 2.7 s on lenet300.onnx).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import io
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"
OUT_DIR = ROOT / "benchmarks" / "out" / "fuzz"
CACHE_DIR = OUT_DIR / "cache"  # bomb payloads, shared by every run

MODEL_NAMES = [
    "vggmini.h5",
    "vggmini.onnx",
    "vggmini.pt",
    "lenet300.h5",
    "lenet300.keras",
    "lenet300.onnx",
    "lenet300.pt",
]
PT2_NAME = "tiny.pt2"
ZIP_EXTS = (".keras", ".pt", ".pt2", ".nnc")

CLASSES = [
    "ok",
    "refusal",
    "bad-error",
    "internal",
    "signal",
    "hang",
    "over-memory",
    "sanitizer",
    "other-exit",
]
CLEAN = {"ok", "refusal"}
MAX_LINE = 1000
RSS_LIMIT_KB = 1024 * 1024  # 1 GB of peak RSS


# --------------------------------------------------------------------------------------------
# seeds


def cli_argv(*args: str) -> list[str]:
    """``nncompress ARGS`` in this interpreter (the venv's), as tests/conftest.py runs it."""
    return [sys.executable, "-c", "from nncompress.cli import main; main()", *args]


PT2_SCRIPT = """
import sys, torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
torch.export.save(torch.export.export(model, (torch.randn(2, 32),)), sys.argv[1])
"""


def build_pt2(path: Path) -> None:
    """A small torch.export program (two Linear layers), written with torch.export.save in a child
    process: a forked child's ru_maxrss counts the parent's pages, so the parent stays small."""
    subprocess.run(
        [sys.executable, "-c", PT2_SCRIPT, str(path)], check=True, capture_output=True, timeout=300
    )


def build_seeds(seed_dir: Path, names: list[str], rebuild: bool = False) -> list[Path]:
    """The model files and their .nnc artifacts named in ``names`` (a model's ``NAME.nnc``)."""
    seed_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for name in names:
        path = seed_dir / name
        if rebuild or not path.exists():
            if name.endswith(".nnc"):
                src = build_seeds(seed_dir, [name[: -len(".nnc")]], rebuild=False)[0]
                argv = [
                    "compress",
                    str(src),
                    "--method",
                    "sham",
                    "-o",
                    str(path),
                    "--samples",
                    "4",
                    "--force",
                ]
                r = subprocess.run(cli_argv(*argv), capture_output=True, text=True, timeout=300)
                if r.returncode != 0:
                    raise RuntimeError(f"cannot build seed {name}: {r.stderr.strip()[-500:]}")
            elif name == PT2_NAME:
                build_pt2(path)
            else:
                shutil.copyfile(MODELS / name, path)
        out.append(path)
    return out


def all_seed_names() -> list[str]:
    models = [*MODEL_NAMES, PT2_NAME]
    return [*models, *(f"{m}.nnc" for m in models)]


# --------------------------------------------------------------------------------------------
# zip containers, read and written by hand so that a mutant may hold what zipfile never writes


@dataclass
class Member:
    name: bytes
    method: int  # 0 stored, 8 deflate, 12 bzip2, 14 lzma
    data: bytes  # the compressed bytes as they lie in the file
    crc: int
    size: int  # uncompressed size
    flags: int = 0

    @classmethod
    def make(cls, name: bytes, payload: bytes, method: int = 0) -> Member:
        data = payload
        if method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = c.compress(payload) + c.flush()
        elif method != 0:
            method = 0
        return cls(name, method, data, zlib.crc32(payload), len(payload))

    def content(self) -> bytes:
        """The uncompressed bytes (only for members small enough to hold)."""
        import bz2
        import lzma

        if self.method == 0:
            return self.data
        if self.method == 8:
            return zlib.decompress(self.data, -15)
        if self.method == 12:
            return bz2.decompress(self.data)
        if self.method == 14:  # zip's LZMA: 2+2 bytes of version and props length, props, raw stream
            (plen,) = struct.unpack("<H", self.data[2:4])
            props = self.data[4 : 4 + plen]
            filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
            return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt]).decompress(self.data[4 + plen :])
        raise ValueError(f"method {self.method}")

    def with_content(self, payload: bytes) -> Member:
        return Member.make(self.name, payload, 8 if self.method == 8 else 0)


def read_zip(blob: bytes) -> list[Member]:
    import zipfile

    members: list[Member] = []
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for info in z.infolist():
            off = info.header_offset
            nlen, elen = struct.unpack("<HH", blob[off + 26 : off + 30])
            start = off + 30 + nlen + elen
            name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
            members.append(
                Member(
                    name,
                    info.compress_type,
                    blob[start : start + info.compress_size],
                    info.CRC,
                    info.file_size,
                    info.flag_bits & 0x800,
                )
            )
    return members


def write_zip(members: list[Member]) -> bytes:
    """A plain (non-zip64) archive of ``members`` in order, duplicates and all."""
    out = bytearray()
    central = bytearray()
    for m in members:
        offset = len(out)
        version = 46 if m.method == 12 else 63 if m.method == 14 else 20
        head = struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            version,
            m.flags,
            m.method,
            0,
            0x21,
            m.crc,
            len(m.data),
            m.size,
            len(m.name),
            0,
        )
        out += head + m.name + m.data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            version,
            version,
            m.flags,
            m.method,
            0,
            0x21,
            m.crc,
            len(m.data),
            m.size,
            len(m.name),
            0,
            0,
            0,
            0,
            0o644 << 16,
            offset,
        )
        central += m.name
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0)
    return bytes(out)


BOMB_BYTES = 2 * 1024**3  # what a bomb member inflates to: 2 GiB of zeros


def bomb(method: int) -> tuple[bytes, int]:
    """(compressed bytes, crc32) of BOMB_BYTES zeros as a raw deflate (8) or bzip2 (12) stream,
    cached under CACHE_DIR."""
    import bz2

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"bomb-{method}-{BOMB_BYTES}.bin"
    if not path.exists():
        chunk = bytes(1 << 24)
        crc = 0
        for _ in range(BOMB_BYTES // len(chunk)):
            crc = zlib.crc32(chunk, crc)
        if method == 8:
            # after a full flush the compressor starts afresh, so every chunk compresses to the same
            # bytes: one chunk's output repeated is the stream (a fraction of a second, not a minute)
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
            stream = block * (BOMB_BYTES // len(chunk)) + c.flush()
        else:  # a bzip2 stream cannot be spliced so: about 15 s, once
            bz = bz2.BZ2Compressor(9)
            stream = b"".join(bz.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))) + bz.flush()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(struct.pack("<I", crc) + stream)
        tmp.replace(path)
    blob = path.read_bytes()
    return blob[4:], struct.unpack("<I", blob[:4])[0]


# --------------------------------------------------------------------------------------------
# mutations: each takes the input bytes and a Random and returns (new bytes, description)

Mutation = Callable[[bytes, random.Random, "Context"], tuple[bytes, str]]


@dataclass
class Context:
    name: str  # the seed's file name
    work: Path  # a scratch folder for h5py/onnx edits


def mut_flip(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    b = bytearray(blob)
    n = rng.choice([1, 2, 4, 16, 64])
    where = sorted(rng.randrange(len(b)) for _ in range(n))
    for i in where:
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), f"flip {n} bits at {where[:4]}{'...' if n > 4 else ''}"


def mut_interesting(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    b = bytearray(blob)
    i = rng.randrange(max(1, len(b) - 8))
    val = rng.choice(
        [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\xff\xff\xff\x7f"]
    )
    b[i : i + len(val)] = val
    return bytes(b), f"write {val.hex()} at {i}"


def mut_truncate(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    n = rng.choice([0, 1, 8, 64, rng.randrange(len(blob)), len(blob) - 1, len(blob) - 22])
    n = max(0, min(len(blob) - 1, n))
    return blob[:n], f"truncate to {n} of {len(blob)} bytes"


def mut_dup_chunk(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    i = rng.randrange(len(blob))
    n = rng.choice([1, 16, 512, 4096, 65536])
    j = rng.randrange(len(blob))
    return blob[:j] + blob[i : i + n] + blob[j:], f"copy {n} bytes from {i} to {j}"


def mut_del_chunk(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    i = rng.randrange(len(blob))
    n = rng.choice([1, 16, 512, 4096, 65536])
    return blob[:i] + blob[i + n :], f"delete {n} bytes at {i}"


BYTE_MUTATIONS: list[Mutation] = [mut_flip, mut_interesting, mut_truncate, mut_dup_chunk, mut_del_chunk]


def pick_member(
    members: list[Member], rng: random.Random, pred: Callable[[Member], bool] = lambda m: True
) -> int:
    idx = [i for i, m in enumerate(members) if pred(m)]
    if not idx:
        raise LookupError("no member fits")
    return rng.choice(idx)


def _name(m: Member) -> str:
    return m.name.decode("utf-8", "replace")


def mut_zip(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    members = read_zip(blob)
    op = rng.choice(["replace", "drop", "rename", "duplicate", "bomb", "member-bytes", "member-truncate"])
    i = pick_member(members, rng)
    m = members[i]
    if op == "replace":
        what = rng.choice(["random", "empty", "other-member", "zeros"])
        payload = {
            "random": lambda: rng.randbytes(rng.choice([1, 100, 10000])),
            "empty": lambda: b"",
            "other-member": lambda: members[rng.randrange(len(members))].content(),
            "zeros": lambda: bytes(m.size),
        }[what]()
        members[i] = m.with_content(payload)
        return write_zip(members), f"zip: replace {_name(m)} with {what} ({len(payload)} bytes)"
    if op == "drop":
        del members[i]
        return write_zip(members), f"zip: drop {_name(m)}"
    if op == "rename":
        new_name = rng.choice([m.name + b".x", m.name.upper(), b"../" + m.name, b"x/" + m.name, m.name[:-1]])
        members[i] = dataclasses.replace(m, name=new_name)
        return write_zip(members), f"zip: rename {_name(m)} to {new_name.decode('utf-8', 'replace')}"
    if op == "duplicate":
        other = members[rng.randrange(len(members))]
        dup = dataclasses.replace(other, name=m.name)
        members.insert(rng.choice([i, i + 1, len(members)]), dup)
        return write_zip(members), f"zip: second member named {_name(m)} (bytes of {_name(other)})"
    if op == "bomb":
        method = rng.choice([8, 12])
        data, crc = bomb(method)
        members[i] = Member(m.name, method, data, crc, BOMB_BYTES, m.flags)
        kind = "deflate" if method == 8 else "bzip2"
        return write_zip(
            members
        ), f"zip: {_name(m)} is a {kind} bomb ({BOMB_BYTES >> 30} GiB from {len(data)} bytes)"
    if m.size > 64 * 1024 * 1024:
        raise LookupError("member too large to edit")
    content = m.content()
    if not content:
        raise LookupError("empty member")
    if op == "member-bytes":
        new_content, desc = rng.choice([mut_flip, mut_interesting, mut_dup_chunk, mut_del_chunk])(
            content, rng, ctx
        )
    else:
        new_content, desc = mut_truncate(content, rng, ctx)
    # half the time the CRC is fixed (the reader must catch the edit itself), half not
    fix_crc = rng.random() < 0.5
    new = m.with_content(new_content)
    if not fix_crc:
        new = dataclasses.replace(new, crc=m.crc)
    members[i] = new
    return write_zip(members), f"zip: in {_name(m)}: {desc} ({'crc fixed' if fix_crc else 'stale crc'})"


# JSON edits --------------------------------------------------------------------------------

SENTINEL = "__fuzz_sentinel__"


def json_paths(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, (*path, k))
    elif isinstance(obj, list):
        for k, v in enumerate(obj):
            yield from json_paths(v, (*path, k))


def json_set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return obj


def mutate_json_text(text: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One edit of a JSON document; the replacement is spliced in as raw text so that it may be
    what json.dumps never writes (NaN, 10**5000, 100000 levels of nesting)."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    op = rng.choice(["deep", "nan", "huge", "type", "type", "whole", "broken", "delete-key"])
    if op == "broken" or doc is None:
        cut = rng.randrange(max(1, len(text)))
        return text[:cut] + rng.choice([b"", b"\xff\xfe", b"{", b"]"]), f"json: broken at byte {cut}"
    if op == "whole":
        whole = rng.choice(["null", "[]", "0", '"x"', "{}", "[" * 50000 + "]" * 50000])
        return whole.encode(), f"json: whole document is {whole[:20]}"
    paths = list(json_paths(doc))
    if op == "delete-key":
        keyed = [p for p in paths if p and isinstance(p[-1], str)]
        if keyed:
            p = rng.choice(keyed)
            parent = doc
            for k in p[:-1]:
                parent = parent[k]
            del parent[p[-1]]
            return json.dumps(doc).encode(), f"json: delete {list(p)[-3:]}"
        op = "type"
    p = rng.choice(paths[1:] or paths)
    raw: str
    if op == "deep":
        depth = rng.choice([1000, 100000])
        raw = rng.choice(["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth])
        what = f"nesting {depth} deep"
    elif op == "nan":
        raw = rng.choice(["NaN", "Infinity", "-Infinity"])
        what = raw
    elif op == "huge":
        raw = rng.choice(["1e400", "-1e400", "1" + "0" * 5000, str(2**64), str(2**40), "-1", "1.5"])
        what = raw if len(raw) < 30 else f"an integer of {len(raw)} digits"
    else:
        raw = rng.choice(
            ['"x"', "null", "true", "[]", "{}", "[1,2]", '{"a":1}', "0", '"' + "A" * 100000 + '"']
        )
        what = f"type {raw[:12]}"
    doc = json_set(doc, p, SENTINEL)
    out = json.dumps(doc).replace(json.dumps(SENTINEL), raw, 1)
    return out.encode(), f"json: {list(p)[-3:]} = {what}"


def mut_json_member(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    members = read_zip(blob)
    i = pick_member(members, rng, lambda m: m.name.endswith(b".json") and m.size < 64 * 1024 * 1024)
    m = members[i]
    new, desc = mutate_json_text(m.content(), rng)
    members[i] = m.with_content(new)
    return write_zip(members), f"{_name(m)}: {desc}"


# HDF5 edits --------------------------------------------------------------------------------


def mutate_h5_file(path: Path, rng: random.Random) -> str:
    """Edit the HDF5 file at ``path`` in place with h5py; returns what was done."""
    import h5py
    import numpy as np

    # libver "latest": attributes over 64 KiB (a deep model_config) go to dense storage
    with h5py.File(path, "r+", libver="latest") as f:
        objects: list[str] = []
        f.visit(objects.append)
        datasets = [o for o in objects if isinstance(f[o], h5py.Dataset)]
        attr_owners = [o for o in ["/", *objects] if len(f[o].attrs)]
        op = rng.choice(["attr-json", "attr-json", "attr-type", "dataset", "dataset", "delete"])
        if op == "attr-json" and "model_config" not in f.attrs:
            op = "attr-type"
        if op == "attr-json":
            raw = f.attrs["model_config"]
            text = raw.encode() if isinstance(raw, str) else bytes(raw)
            new, desc = mutate_json_text(text, rng)
            f.attrs["model_config"] = (
                new.decode("utf-8", "surrogateescape") if rng.random() < 0.5 else np.void(new)
            )
            return f"h5: model_config {desc}"
        if op == "attr-type" and attr_owners:
            owner = rng.choice(attr_owners)
            key = rng.choice(list(f[owner].attrs))
            val: Any = rng.choice(
                [
                    "x",
                    b"\xff\xfe\x00",
                    np.float64("nan"),
                    np.arange(3),
                    np.array([b"nope", b"\xff"]),
                    np.zeros((2, 2)),
                    None,
                ]
            )
            if val is None:
                del f[owner].attrs[key]
                return f"h5: delete attribute {owner}:{key}"
            f[owner].attrs[key] = val
            return f"h5: attribute {owner}:{key} = {val!r:.40}"
        if op == "dataset" and datasets:
            name = rng.choice(datasets)
            old = f[name]
            shape, dtype = old.shape, old.dtype
            attrs = dict(old.attrs)
            kind = rng.choice(["enlarge", "enlarge-huge", "dtype", "scalar", "transpose", "string"])
            del f[name]
            if kind == "enlarge":
                new_shape = tuple(d * rng.choice([2, 10]) for d in shape) or (10,)
                f.create_dataset(name, shape=new_shape, dtype=dtype)
            elif kind == "enlarge-huge":
                new_shape = (*(max(d, 1) for d in shape[:-1]), 2**40) if shape else (2**40,)
                f.create_dataset(name, shape=new_shape, dtype=dtype, chunks=True)
            elif kind == "dtype":
                new_dtype = rng.choice(["<f8", "<i1", "<f2", "|b1", ">f4"])
                f.create_dataset(name, data=np.zeros(shape, new_dtype))
                kind = f"dtype {new_dtype}"
                new_shape = shape
            elif kind == "scalar":
                f.create_dataset(name, data=np.float32(1.0))
                new_shape = ()
            elif kind == "transpose":
                new_shape = tuple(reversed(shape))
                f.create_dataset(name, shape=new_shape, dtype=dtype)
            else:
                f.create_dataset(name, data=np.array([b"abc", b"\xff"]))
                new_shape = (2,)
            for k, v in attrs.items():
                f[name].attrs[k] = v
            return f"h5: dataset {name} {shape} -> {kind} {new_shape}"
        if objects:
            name = rng.choice(objects)
            del f[name]
            return f"h5: delete {name}"
    raise LookupError("nothing to edit")


def edit_h5(content: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    tmp = ctx.work / "edit.h5"
    tmp.write_bytes(content)
    try:
        desc = mutate_h5_file(tmp, rng)
    except (OSError, ValueError, TypeError) as e:  # h5py cannot write this edit: draw another
        raise LookupError(str(e)) from e
    return tmp.read_bytes(), desc


def mut_h5(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    if ctx.name.endswith(".h5"):
        return edit_h5(blob, rng, ctx)
    members = read_zip(blob)
    i = pick_member(members, rng, lambda m: m.name.endswith(b".h5"))
    m = members[i]
    new, desc = edit_h5(m.content(), rng, ctx)
    members[i] = m.with_content(new)
    return write_zip(members), f"{_name(m)}: {desc}"


# ONNX edits --------------------------------------------------------------------------------


def mut_onnx(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    import onnx

    model = onnx.load_from_string(blob)
    inits = list(model.graph.initializer)
    op = rng.choice(["dims", "raw-short", "dtype", "op", "dims-negative", "text"])
    if op == "text":  # protobuf keeps a proto2 string that is not UTF-8 as bytes
        names = sorted({v for n in model.graph.node for v in [*n.input, *n.output, n.name] if len(v) > 1})
        old_name = rng.choice(names).encode()
        bad = bytes([rng.choice([0xFF, 0xC3, 0x80, 0xE9])]) + old_name[1:]
        return blob.replace(old_name, bad), f"onnx: name {old_name!r} -> {bad!r} everywhere"
    if op == "op":
        node = rng.choice(list(model.graph.node))
        old = node.op_type
        node.op_type = rng.choice(["Conv", "Gemm", "MatMul", "NoSuchOp", "Loop", ""])
        return model.SerializeToString(), f"onnx: node {node.name} op {old} -> {node.op_type}"
    t = rng.choice(inits)
    if op == "dims":
        k = rng.randrange(len(t.dims)) if t.dims else 0
        if t.dims:
            t.dims[k] = rng.choice([2**40, 2**31, 2**62, t.dims[k] * 2])
        else:
            t.dims.append(2**40)
        desc = f"dims {list(t.dims)}"
    elif op == "dims-negative":
        if t.dims:
            t.dims[0] = -t.dims[0]
        desc = f"dims {list(t.dims)}"
    elif op == "raw-short":
        if t.raw_data:
            t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data))]
        desc = f"raw_data cut to {len(t.raw_data)} bytes"
    else:
        t.data_type = rng.choice([0, 2, 7, 8, 11, 16, 99])
        desc = f"data_type {t.data_type}"
    return model.SerializeToString(), f"onnx: initializer {t.name} {desc}"


def families(name: str) -> list[tuple[str, list[Mutation], float]]:
    """(family, mutations, weight) that fit the seed ``name``."""
    fams: list[tuple[str, list[Mutation], float]] = [("bytes", BYTE_MUTATIONS, 3.0)]
    if name.endswith(ZIP_EXTS):
        fams.append(("zip", [mut_zip], 3.0))
        if ".pt." not in name and not name.endswith(".pt"):  # TorchScript archives hold no JSON
            fams.append(("json", [mut_json_member], 2.0))
    if name.endswith(".h5") or ".h5." in name or name.endswith(".keras"):  # the file, or a member
        fams.append(("h5", [mut_h5], 3.0))
    if name.endswith(".onnx"):
        fams.append(("onnx", [mut_onnx], 2.0))
    return fams


def mutate(blob: bytes, rng: random.Random, ctx: Context) -> tuple[bytes, str]:
    """One mutant of ``blob``: a family drawn by weight, one of its mutations; a mutation that does
    not fit this input (no such member) is drawn again."""
    fams = families(ctx.name)
    for _ in range(20):
        _, muts, _ = rng.choices(fams, weights=[f[2] for f in fams])[0]
        try:
            return rng.choice(muts)(blob, rng, ctx)
        except LookupError:
            continue
    return mut_flip(blob, rng, ctx)


# --------------------------------------------------------------------------------------------
# running a command


@dataclass
class Result:
    input: str
    case: int
    mutation: str
    command: str
    returncode: int | None
    seconds: float
    peak_rss_mb: float
    klass: str
    stderr_last: str
    stderr_lines: int
    traceback_tail: list[str] = field(default_factory=list)
    mutant: str = ""
    base_seed: int = 0  # with case, names the mutant (a table over several runs' logs counts both)


def _limits(mem_bytes: int) -> Callable[[], None]:
    def apply() -> None:
        if mem_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_limited(
    argv: list[str], cwd: Path, timeout: float, mem_bytes: int, env: dict[str, str]
) -> tuple[int | None, float, float, str]:
    """(return code or None on timeout, seconds, peak RSS in MB, stderr) of ``argv``, run in its own
    session under RLIMIT_AS; peak RSS from os.wait4 (the child and what it waited for; it includes
    the pages the child had from the fork, the RSS of this process, some 70 MB without torch)."""
    err_path = cwd / ".stderr"
    t0 = time.monotonic()
    with open(err_path, "wb") as err:
        p = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            preexec_fn=_limits(mem_bytes),
            start_new_session=True,
        )
    rc: int | None = None
    rss_kb = 0
    deadline = t0 + timeout
    nap = 0.001  # most refusals take tens of milliseconds: poll often at first
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            rc = os.waitstatus_to_exitcode(status)
            rss_kb = usage.ru_maxrss
            break
        if time.monotonic() > deadline:
            os.killpg(p.pid, signal.SIGKILL)
            _, status, usage = os.wait4(p.pid, 0)
            rss_kb = usage.ru_maxrss
            break
        time.sleep(nap)
        nap = min(2 * nap, 0.02)
    p.returncode = rc if rc is not None else -9  # reaped here: Popen must not wait for it again
    seconds = time.monotonic() - t0
    stderr = err_path.read_bytes().decode("utf-8", "replace")
    err_path.unlink()
    return rc, seconds, rss_kb / 1024, stderr


# Modules a --fork parent imports once, so that each command's child starts with them loaded (a
# fresh interpreter spends 1-3 s importing them, most of a refused mutant's time). Nothing runs in
# the parent but imports: torch's OpenMP pool is not started, so a forked child may use it.
PRELOAD = (
    "numpy",
    "torch",
    "onnx",
    "onnxruntime",
    "h5py",
    "nncompress.cli",
    "nncompress.api",
    "nncompress.pipeline.run",
    "nncompress.io.onnx",
    "nncompress.io.keras",
    "nncompress.io.torch",
    "nncompress.artifact",
    "nncompress.fidelity",
    "nncompress.torch.graph",
    # what the CLI imports on its first parse of a command's options (typer's adapters pull in
    # pydantic: ~0.1 s of every forked child's time otherwise)
    "typer._adapters",
    "pydantic",
    "rich._emoji_codes",
)


def preload() -> list[str]:
    """Import PRELOAD in this process (the --fork parent); the names that could not be."""
    import importlib
    import warnings

    missing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:  # an optional framework not installed: its children import nothing
                missing.append(name)
    # the click command tree, built once per process (cached): built here, not in every child.
    # Nothing else of main() runs here (it sets handlers and the stall watchdog's flag).
    from nncompress.cli.app import command

    command()
    return missing


def run_forked(
    args: list[str], cwd: Path, timeout: float, mem_bytes: int, env: dict[str, str]
) -> tuple[int | None, float, float, str]:
    """`run_limited` for ``nncompress ARGS`` in a forked child of this process (which `preload`
    prepared): the child runs the CLI's ``main`` as the console script does, then the atexit
    handlers, and leaves with its exit code; an exception out of main prints its traceback and is
    exit 1, as an interpreter's. Peak RSS counts the pages the child had from the fork (this
    process with its frameworks imported), so it overstates the command's by that much."""
    err_path = cwd / ".stderr"
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the harness
        code = 1
        try:
            os.setsid()
            _limits(mem_bytes)()
            os.chdir(cwd)
            fd_in = os.open(os.devnull, os.O_RDONLY)
            fd_out = os.open(os.devnull, os.O_WRONLY)
            fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd_in, 0)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            os.environ.clear()
            os.environ.update(env)
            import atexit
            import traceback

            from nncompress.cli import main as cli_main

            sys.argv = ["nncompress", *args]
            try:
                cli_main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    rc: int | None = None
    rss_kb = 0
    deadline = t0 + timeout
    nap = 0.001  # most refusals take tens of milliseconds: poll often at first
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got:
            rc = os.waitstatus_to_exitcode(status)
            rss_kb = usage.ru_maxrss
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            rss_kb = usage.ru_maxrss
            break
        time.sleep(nap)
        nap = min(2 * nap, 0.02)
    seconds = time.monotonic() - t0
    stderr = err_path.read_bytes().decode("utf-8", "replace") if err_path.exists() else ""
    err_path.unlink(missing_ok=True)
    return rc, seconds, rss_kb / 1024, stderr


def classify(rc: int | None, rss_mb: float, stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if rc is None:
        return "hang"
    if "ERROR: AddressSanitizer" in stderr or ": runtime error: " in stderr:
        return "sanitizer"
    if rc < 0:
        return "signal"
    if rc == 1:
        return "internal"
    if rss_mb * 1024 > RSS_LIMIT_KB:
        return "over-memory"
    if rc == 0:
        return "ok"
    if 2 <= rc <= 6:
        clean = (
            len(lines) == 1
            and lines[0].startswith("nncompress: error:")
            and "Traceback" not in stderr
            and len(lines[0]) <= MAX_LINE
        )
        return "refusal" if clean else "bad-error"
    return "other-exit"


def traceback_tail(stderr: str, n: int = 6) -> list[str]:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return [ln[:300] for ln in lines[-n:]]


def output_ext(seed_name: str) -> str:
    """What decompress writes for an artifact of ``seed_name`` (``lenet300.h5.nnc`` -> ``.h5``)."""
    return Path(seed_name[: -len(".nnc")]).suffix


def commands(mutant: Path, seed_name: str, pipeline: str | None = None) -> list[tuple[str, list[str]]]:
    how = ["--pipeline", pipeline] if pipeline else ["--method", "sham"]
    if seed_name.endswith(".nnc"):  # compress refuses a .nnc by its name alone: nothing to fuzz there
        out = f"out{output_ext(seed_name)}"
        return [
            ("inspect", ["inspect", str(mutant)]),
            ("decompress", ["decompress", str(mutant), "-o", out, "--force"]),
        ]
    return [
        ("inspect", ["inspect", str(mutant)]),
        ("compress", ["compress", str(mutant), *how, "-o", "out.nnc", "--samples", "4", "--force"]),
    ]


@dataclass
class Job:
    seed_name: str
    seed_path: Path
    case: int
    base_seed: int


@dataclass
class Options:
    timeout: float
    mem_bytes: int
    out_dir: Path
    tracebacks: bool
    asan: Path | None = None  # the kernels built with AddressSanitizer (--asan), else None
    fork: bool = False  # commands in forked children of this process (--fork), not fresh interpreters
    pipeline: str | None = None  # compress with this --pipeline (no budget search), else --method sham


def build_asan(out_dir: Path) -> Path:
    """native/*.c built as the cffi extension with AddressSanitizer and UBSan, into ``out_dir``
    (the installed extension is left as it is); the path of the built module."""
    sys.path.insert(0, str(ROOT / "native"))
    import build_ffi  # native/build_ffi.py: the same sources, header and cdef as the install
    from cffi import FFI

    b = FFI()
    b.cdef(build_ffi._cdef())
    b.set_source(
        "nncompress.native._nnc",
        '#include "nnc_kernels.h"',
        sources=[str(ROOT / "native" / s) for s in build_ffi.SOURCES],
        include_dirs=[str(ROOT / "native" / "include"), str(ROOT / "native")],
        libraries=["m"],
        extra_compile_args=["-O1", "-g", "-std=c11", "-pthread", "-fno-omit-frame-pointer", *ASAN_FLAGS],
        extra_link_args=["-pthread", *ASAN_FLAGS],
    )
    target = out_dir / "asan"
    target.mkdir(parents=True, exist_ok=True)
    return Path(b.compile(tmpdir=str(target)))


ASAN_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
# A child imports the sanitized module under the installed one's name before the CLI runs.
ASAN_BOOT = (
    "import importlib.util, sys; "
    "spec = importlib.util.spec_from_file_location('nncompress.native._nnc', sys.argv.pop(1)); "
    "m = importlib.util.module_from_spec(spec); sys.modules['nncompress.native._nnc'] = m; "
    "spec.loader.exec_module(m); from nncompress.cli import main; main()"
)


def asan_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a child whose interpreter was not built with ASan: the runtime preloaded (with
    libstdc++, else ASan cannot intercept the C++ exceptions torch throws and aborts), leaks not
    reported (CPython's own allocations look like leaks), any report fatal."""

    def lib(name: str) -> str:
        return subprocess.run(
            ["cc", f"-print-file-name={name}"], capture_output=True, text=True
        ).stdout.strip()

    return {
        **env,
        "LD_PRELOAD": f"{lib('libasan.so')} {lib('libstdc++.so.6')}",
        "ASAN_OPTIONS": "detect_leaks=0:alloc_dealloc_mismatch=0:quarantine_size_mb=32:exitcode=86",
        "UBSAN_OPTIONS": "halt_on_error=1:exitcode=86",
    }


def run_case(job: Job, opt: Options) -> list[Result]:
    rng = random.Random(f"{job.base_seed}:{job.seed_name}:{job.case}")
    work = Path(tempfile.mkdtemp(prefix="case-", dir=opt.out_dir / "work"))
    try:
        ctx = Context(job.seed_name, work)
        blob, desc = mutate(job.seed_path.read_bytes(), rng, ctx)
        mutant = work / f"mutant-{job.case}{''.join(Path(job.seed_name).suffixes[-1:])}"
        mutant.write_bytes(blob)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
        env.pop("NNCOMPRESS_DEBUG", None)
        # The CLI's stall watchdog (a libhdf5 read looping on a corrupt file) must fire inside the
        # wall-time limit, or a read it bounds is counted as a hang; its exit is then a refusal.
        env["NNCOMPRESS_STALL_SECONDS"] = f"{opt.timeout / 2:g}"
        env["NNCOMPRESS_RUN_SECONDS"] = f"{opt.timeout / 2:g}"  # and a model run that never ends
        argv_of = cli_argv
        mem = opt.mem_bytes
        if opt.asan is not None:  # ASan maps terabytes of shadow memory: no address-space limit
            env, mem = asan_env(env), 0

            def argv_of(*args: str) -> list[str]:
                return [sys.executable, "-c", ASAN_BOOT, str(opt.asan), *args]

        def execute(args: list[str], env: dict[str, str]) -> tuple[int | None, float, float, str]:
            if opt.fork:
                return run_forked(args, work, opt.timeout, mem, env)
            return run_limited(argv_of(*args), work, opt.timeout, mem, env)

        results: list[Result] = []
        for _, args in commands(mutant, job.seed_name, opt.pipeline):
            rc, secs, rss, stderr = execute(args, env)
            klass = classify(rc, rss, stderr)
            lines = [ln for ln in stderr.splitlines() if ln.strip()]
            res = Result(
                job.seed_name,
                job.case,
                desc,
                "nncompress " + " ".join(args),
                rc,
                round(secs, 2),
                round(rss, 1),
                klass,
                lines[-1][:MAX_LINE] if lines else "",
                len(lines),
                base_seed=job.base_seed,
            )
            if klass not in CLEAN:
                if klass == "internal" and opt.tracebacks:
                    dbg = {**env, "NNCOMPRESS_DEBUG": "1"}
                    _, _, _, dstderr = execute(args, dbg)
                    res.traceback_tail = traceback_tail(dstderr, 12)
                elif klass == "bad-error":
                    res.traceback_tail = traceback_tail(stderr)
                keep = opt.out_dir / "cases" / f"{job.seed_name}-{job.base_seed}-{job.case}{mutant.suffix}"
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(mutant, keep)
                res.mutant = str(keep)
            results.append(res)
            if klass == "refusal" and args[0] == "inspect" and not job.seed_name.endswith(".nnc"):
                # compress loads the model with the same loader first: a file inspect refuses, it
                # refuses the same way (5,851 of 5,851 refused .pt mutants of seeds 47 and 53, the
                # same exit code; 16 lines differed in torch.jit.load's own message, which changes
                # between runs on the same bytes). Skipping it ~halves a refused mutant's cost.
                break
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# the run


def table(results: list[Result]) -> str:
    inputs = sorted({r.input for r in results})
    counts: dict[str, collections.Counter[str]] = {i: collections.Counter() for i in inputs}
    mutants: dict[str, set[tuple[int, int]]] = collections.defaultdict(set)
    for r in results:
        counts[r.input][r.klass] += 1
        mutants[r.input].add((r.base_seed, r.case))
    peak: dict[str, float] = collections.defaultdict(float)
    for r in results:
        peak[r.input] = max(peak[r.input], r.peak_rss_mb)
    head = ["input", "mutants", "runs", *CLASSES, "max RSS MB"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total: collections.Counter[str] = collections.Counter()
    for i in inputs:
        total.update(counts[i])
        n = sum(counts[i].values())
        rows.append(
            f"| {i} | {len(mutants[i])} | {n} | "
            + " | ".join(str(counts[i][c]) for c in CLASSES)
            + f" | {peak[i]:.0f} |"
        )
    nm = sum(len(v) for v in mutants.values())
    rows.append(
        f"| **total** | {nm} | {sum(total.values())} | "
        + " | ".join(str(total[c]) for c in CLASSES)
        + f" | {max(peak.values(), default=0):.0f} |"
    )
    return "\n".join(rows)


def fuzz(
    names: list[str],
    cases: int,
    base_seed: int,
    opt: Options,
    jobs: int = 1,
    minutes: float | None = None,
    rebuild_seeds: bool = False,
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run ``cases`` mutants of every seed in ``names`` (or round after round until ``minutes``
    have passed, when given); returns every command's result."""
    (opt.out_dir / "work").mkdir(parents=True, exist_ok=True)
    seeds = dict(zip(names, build_seeds(opt.out_dir / "seeds", names, rebuild_seeds), strict=True))
    t_end = time.monotonic() + minutes * 60 if minutes else None

    def job_stream() -> Iterator[Job]:
        case = 0
        while True:
            for name in names:
                yield Job(name, seeds[name], case, base_seed)
            case += 1
            if t_end is None and case >= cases:
                return
            if t_end is not None and (time.monotonic() > t_end or (cases and case >= cases)):
                return

    results: list[Result] = []
    if jobs <= 1:
        for job in job_stream():
            if t_end is not None and time.monotonic() > t_end:
                break
            for r in run_case(job, opt):
                results.append(r)
                if progress:
                    progress(r)
        return results
    from concurrent.futures import ThreadPoolExecutor

    # threads are enough: each case spends its time waiting on its subprocesses
    with ThreadPoolExecutor(jobs) as pool:
        for rs in pool.map(lambda j: run_case(j, opt), job_stream()):
            for r in rs:
                results.append(r)
                if progress:
                    progress(r)
    return results


def _matches(name: str, only: str) -> bool:
    """``--only`` is a substring of the name, or with a trailing ``$`` its end (``.pt$``: the .pt
    models, not their .nnc artifacts nor tiny.pt2)."""
    return name.endswith(only[:-1]) if only.endswith("$") else only in name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="base seed of every mutation (default 0)")
    ap.add_argument("--cases", type=int, default=10, help="mutants per input (0 with --minutes: no cap)")
    ap.add_argument("--minutes", type=float, default=None, help="run rounds until this much time has passed")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        help="inputs whose name contains this, or ends with it when it ends with $ (repeatable)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    ap.add_argument("--timeout", type=float, default=60.0, help="wall-time limit per command, seconds")
    ap.add_argument("--memory", type=float, default=3.0, help="RLIMIT_AS per command, GB")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="folder for seeds, kept mutants and the JSON")
    ap.add_argument("--json", type=Path, default=None, help="where to write the non-clean cases")
    ap.add_argument(
        "--log",
        type=Path,
        default=None,
        help="append every result to this JSON-lines file as it comes (a long run killed or spread "
        "over several sessions keeps what it did; --table-from adds logs up)",
    )
    ap.add_argument(
        "--table-from",
        type=Path,
        nargs="+",
        default=None,
        help="print the table of these --log files (mutants counted per input, seed and case) and exit",
    )
    ap.add_argument(
        "--no-tracebacks", action="store_true", help="do not rerun internal errors with NNCOMPRESS_DEBUG=1"
    )
    ap.add_argument(
        "--asan",
        action="store_true",
        help="run the children with the C kernels built with AddressSanitizer + UBSan (needs cc)",
    )
    ap.add_argument(
        "--fork",
        action="store_true",
        help="run each command in a forked child of a process that imported the frameworks once "
        "(several times faster; peak RSS then includes that process's pages); not with --asan",
    )
    ap.add_argument(
        "--pipeline",
        default=None,
        help="compress mutants with this --pipeline instead of --method sham (no budget search: "
        "the loaders and decoders see the same bytes, each ok case costs a third)",
    )
    ap.add_argument("--rebuild-seeds", action="store_true")
    ap.add_argument("--list", action="store_true", help="print the inputs and exit")
    args = ap.parse_args(argv)

    if args.table_from:
        logged = [
            Result(**json.loads(line))
            for path in args.table_from
            for line in path.read_text().splitlines()
            if line.strip()
        ]
        print(table(logged))
        print(f"\n{len(logged)} runs from {len(args.table_from)} log(s)")
        return 0
    names = [n for n in all_seed_names() if not args.only or any(_matches(n, o) for o in args.only)]
    if args.list or not names:
        print("\n".join(names) or "no input matches --only")
        return 0 if names else 2
    # absolute: each case's child changes into its work folder (a relative --out sent its stderr
    # file, and so its exit, astray)
    args.out = args.out.resolve()
    opt = Options(args.timeout, int(args.memory * 1e9), args.out, not args.no_tracebacks)
    if args.asan and args.fork:
        ap.error("--fork and --asan do not mix (a sanitized child needs its own interpreter)")
    if args.fork and args.jobs > 1:  # a fork while another thread holds a lock can hang the child
        ap.error("--fork runs one case at a time: start one process per core, each with its --seed")
    if args.asan:
        opt.asan = build_asan(args.out)
    opt.pipeline = args.pipeline
    if args.fork:
        opt.fork = True
        missing = preload()
        if missing:
            print(f"[fork] not preloaded: {', '.join(missing)}", file=sys.stderr)
    t0 = time.monotonic()

    def progress(r: Result) -> None:
        if args.log is not None:
            with open(args.log, "a") as f:
                f.write(json.dumps(dataclasses.asdict(r)) + "\n")
        if r.klass not in CLEAN:
            print(
                f"[{r.klass}] {r.input} #{r.case}: {r.mutation} | {r.command} -> {r.returncode}: {r.stderr_last[:200]}",
                file=sys.stderr,
            )

    results = fuzz(names, args.cases, args.seed, opt, args.jobs, args.minutes, args.rebuild_seeds, progress)
    elapsed = time.monotonic() - t0
    bad = [dataclasses.asdict(r) for r in results if r.klass not in CLEAN]
    out_json = args.json or args.out / f"fuzz-seed{args.seed}.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "seed": args.seed,
        "cases": args.cases,
        "minutes": args.minutes,
        "inputs": names,
        "mutants": len({(r.input, r.base_seed, r.case) for r in results}),
        "runs": len(results),
        "seconds": round(elapsed, 1),
        "max_peak_rss_mb": max((r.peak_rss_mb for r in results), default=0),
        "counts": dict(collections.Counter(r.klass for r in results)),
        "slowest": [
            {k: v for k, v in dataclasses.asdict(r).items() if k not in ("traceback_tail", "mutant")}
            for r in sorted(results, key=lambda r: -r.seconds)[:10]
        ],
        "non_clean": bad,
    }
    out_json.write_text(json.dumps(summary, indent=1))
    print(table(results))
    print(
        f"\n{len(results)} runs in {elapsed:.0f} s, max peak RSS {summary['max_peak_rss_mb']:.0f} MB; "
        f"{len(bad)} non-clean, written to {out_json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
