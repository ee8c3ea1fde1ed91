"""Coverage-guided fuzzing (atheris/libFuzzer) of every door untrusted bytes come through (issue 12).

One harness per target, each a plain function ``bytes -> None`` that feeds the bytes to the real
entry point. nncompress's own errors (``NNCError`` subclasses: a clean refusal) are the expected
outcome of bad bytes and end the input quietly; anything else escaping a harness (another
exception, a failed property check), a hang (libFuzzer ``-timeout``) or a crash is a finding.

    python benchmarks/atheris_fuzz.py seeds                  # build every corpus (a few seconds)
    nice -n 19 python benchmarks/atheris_fuzz.py run nnc -max_total_time=180
    python benchmarks/atheris_fuzz.py replay nnc FILE...     # run inputs without atheris

Corpora live in benchmarks/out/atheris/<target>/corpus, findings (libFuzzer's crash-*, timeout-*)
in benchmarks/out/atheris/<target>/findings/. The harness functions import neither atheris nor any
framework at module level: tests/test_atheris_harness.py runs them on their seeds in CI, where
atheris is not installed. Results and the fixes they led to: benchmarks/fuzz.md.
"""

from __future__ import annotations

import atexit
import io
import json
import math
import os
import random
import shutil
import struct
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
OUT = ROOT / "benchmarks" / "out" / "atheris"
# A low budget makes the declared-size checks fire early, and anything allocated past them shows up
# as a finding under libFuzzer's -rss_limit_mb instead of as slow progress.
BUDGET = "256M"

_work: Path | None = None


def work() -> Path:
    """This process's scratch folder: the file each input is written to, and nncompress's temp
    folders, emptied after every input (libFuzzer leaves through _exit: atexit would run never)."""
    global _work
    if _work is None:
        os.environ.setdefault("NNCOMPRESS_MAX_MEMORY", BUDGET)
        _sweep_stale()
        _work = Path(tempfile.mkdtemp(prefix=f"nnc-atheris-{os.getpid()}-"))
        tempfile.tempdir = str(_work / "tmp")
        (_work / "tmp").mkdir()
        atexit.register(shutil.rmtree, str(_work), True)
    return _work


def _sweep_stale() -> None:
    """Remove the scratch folders of earlier runs whose process is gone: libFuzzer ends a run (a
    crash, -max_total_time, a signal) through _exit, so the atexit rmtree never ran for them."""
    for d in Path(tempfile.gettempdir()).glob("nnc-atheris-*"):
        parts = d.name.split("-")
        pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None
        if pid is not None:
            try:
                os.kill(pid, 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # another user's live process
        shutil.rmtree(d, ignore_errors=True)  # (older folders had no pid in their name)


def _as_file(data: bytes, name: str) -> Path:
    p = work() / name
    p.write_bytes(data)
    return p


def _clean_temp() -> None:
    tmp = work() / "tmp"
    for child in tmp.iterdir():
        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
    # nncompress registers an rmtree per temp folder; they are gone already, and 100,000 of them
    # would be a leak
    atexit.unregister(shutil.rmtree)
    atexit.register(shutil.rmtree, str(work()), True)


def _expected(fn: Callable[[], None]) -> None:
    """Run ``fn``; a clean nncompress refusal ends it, anything else propagates (a finding)."""
    from nncompress.errors import NNCError

    try:
        fn()
    except NNCError as e:
        line = str(e)
        if "\n" in line or len(line) > 1000:  # the CLI prints it as one line: more is a finding
            raise AssertionError(f"error is not one short line: {line[:200]!r}") from e


# -- targets --------------------------------------------------------------------------------------


def fuzz_nnc(data: bytes) -> None:
    """A .nnc file: read_artifact (every member, size and offset), then graph_from_artifact (the
    skeleton loaded, each stored tensor validated by its format) and every weight decoded."""
    from nncompress.artifact import read_artifact
    from nncompress.pipeline.artifacts import graph_from_artifact

    p = _as_file(data, "input.nnc")

    def go() -> None:
        read_artifact(p, with_skeleton=False)
        g = graph_from_artifact(p)
        for w in g.weights.values():
            v = w.value
            if hasattr(v, "to_dense"):
                v.to_dense()

    try:
        _expected(go)
    finally:
        _clean_temp()


# The formats target's dtypes: what a .nnc arrays member may hold (artifact._view's kinds "biuf").
_DTYPES = ("u1", "i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8", "?")


class _Cursor:
    """Reads the formats target's structured scheme from the fuzz bytes; None when they run out."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes | None:
        if self.pos + n > len(self.data):
            return None
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int | None:
        b = self.take(1)
        return None if b is None else b[0]

    def u16(self) -> int | None:
        b = self.take(2)
        return None if b is None else struct.unpack("<H", b)[0]


def encode_format_input(name: str, arrays: dict[str, Any], meta: dict[str, Any]) -> bytes:
    """The formats target's bytes for a stored tensor: format index, meta JSON (u16 length), arrays
    (count; each: name, dtype code, rank, u16 dims, little-endian data). Seeds are real encodings."""
    import numpy as np

    from nncompress.formats import FORMATS

    out = bytearray([list(FORMATS).index(name)])
    m = json.dumps(meta, separators=(",", ":")).encode()
    out += struct.pack("<H", len(m)) + m + bytes([len(arrays)])
    for k, a in arrays.items():
        a = np.asarray(a)
        code = _DTYPES.index(a.dtype.newbyteorder("<").str if a.dtype.itemsize > 1 else a.dtype.str[1:])
        out += bytes([len(k)]) + k.encode() + bytes([code, a.ndim])
        out += b"".join(struct.pack("<H", d) for d in a.shape)
        out += a.astype(np.dtype(_DTYPES[code])).tobytes()
    return bytes(out)


def decode_format_input(data: bytes) -> tuple[str, dict[str, Any], Any] | None:
    """The inverse of `encode_format_input`; None where the bytes run out or the meta is no JSON
    a manifest could hold (the artifact reader refuses those before a format sees them)."""
    import numpy as np

    from nncompress.formats import FORMATS
    from nncompress.io._json import JSONError, loads

    c = _Cursor(data)
    idx, mlen = c.u8(), c.u16()
    if idx is None or mlen is None:
        return None
    raw = c.take(mlen)
    if raw is None:
        return None
    try:
        meta = loads(raw)
    except JSONError:
        return None
    n = c.u8()
    if n is None:
        return None
    arrays: dict[str, Any] = {}
    for _ in range(n % 10):
        klen = c.u8()
        key = c.take(klen % 16) if klen is not None else None
        code, ndim = c.u8(), c.u8()
        if key is None or code is None or ndim is None:
            return None
        dims = [c.u16() for _ in range(ndim % 4)]
        if any(d is None for d in dims):
            return None
        shape = tuple(int(d) for d in dims if d is not None)
        dt = np.dtype(_DTYPES[code % len(_DTYPES)])
        body = c.take(math.prod(shape) * dt.itemsize)  # the bytes must be there, as in a .nnc
        if body is None:
            return None
        arrays[key.decode("latin-1")] = np.frombuffer(body, dtype=dt).reshape(shape)
    return list(FORMATS)[idx % len(FORMATS)], arrays, meta


def fuzz_formats(data: bytes) -> None:
    """A stored tensor: load_format (each format's validating from_arrays), then to_dense, the numpy
    reference dot and the native kernel (where built), whose product must match to_dense's."""
    import numpy as np

    from nncompress import native
    from nncompress._limits import memory_budget
    from nncompress.formats import load_format

    decoded = decode_format_input(data)
    if decoded is None or not isinstance(decoded[2], dict):
        return
    name, arrays, meta = decoded

    def go() -> None:
        f = load_format(name, arrays, meta, path="fuzz.nnc")
        rows, cols = f.shape
        # the artifact reader checks each entry's shape against the budget before its format is
        # loaded (and graph_from_artifact that the format's shape is the entry's)
        if rows * cols * 8 > memory_budget():
            return
        dense = np.asarray(f.to_dense())
        if dense.shape != (rows, cols):
            raise AssertionError(f"{name}: to_dense gave {dense.shape}, the format says {(rows, cols)}")
        x = np.linspace(-1, 1, 2 * cols, dtype=np.float32).reshape(2, cols)
        ref = np.asarray(f.dot(x))
        if not native.supports(name):
            return
        got = native.native_dot(f, x)
        with np.errstate(all="ignore"):
            want = x.astype(np.float64) @ dense.astype(np.float64).T
            tame = np.isfinite(dense).all() and (np.abs(dense).max(initial=0) < 1e4)
        if tame and not np.allclose(got, want, rtol=1e-4, atol=1e-3):
            raise AssertionError(f"{name}: native product differs from to_dense's")
        if tame and not np.allclose(ref, want, rtol=1e-4, atol=1e-3):
            raise AssertionError(f"{name}: the numpy dot differs from to_dense's")

    _expected(go)


def fuzz_onnx(data: bytes) -> None:
    """An .onnx file: the protobuf wire walk (wire.strip, payloads read straight from the file),
    read_model (parse, UTF-8 and external-data checks) and the graph reader (load_onnx)."""
    from nncompress.io.onnx import load_onnx

    p = _as_file(data, "input.onnx")
    _expected(lambda: load_onnx(p))


def fuzz_onnx_wire(data: bytes) -> None:
    """The wire walker alone, on any bytes: it must end in WireError (read_model turns that into
    one InputError) or give payload locations that lie inside the file and read back."""
    from nncompress.io.onnx import wire

    p = _as_file(data, "input.onnx")
    try:
        stripped, raws = wire.strip(p)
    except wire.WireError:
        return
    for t in raws:
        if not (0 <= t.offset and t.offset + t.length <= len(data)):
            raise AssertionError(f"payload {t.name!r} lies outside the file")
        a = wire.read(p, t)
        if a.nbytes != t.length:
            raise AssertionError(f"payload {t.name!r} read {a.nbytes} bytes of {t.length}")
    if len(stripped) > len(data) + 16 * (len(raws) + 1):
        raise AssertionError("the stripped model is larger than the file")


def _depth(v: Any) -> int:
    stack, deepest = [(v, 1)], 0
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict | list):
            deepest = max(deepest, d)
            stack.extend((y, d + 1) for y in (x.values() if isinstance(x, dict) else x))
    return deepest


def fuzz_json(data: bytes) -> None:
    """The bounded JSON reader: a JSONError (which every caller turns into one InputError line), or
    a value within the depth limit holding only finite numbers."""
    from nncompress.io._json import MAX_DEPTH, JSONError, loads

    try:
        v = loads(data)
    except JSONError as e:
        if "\n" in str(e) or len(str(e)) > 200:
            raise AssertionError(f"JSONError is not one short line: {str(e)[:200]!r}") from e
        return
    if _depth(v) > MAX_DEPTH:
        raise AssertionError(f"accepted nesting {_depth(v)} deep")
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, float) and not math.isfinite(x):
            raise AssertionError(f"accepted a non-finite number {x}")
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def fuzz_zip(data: bytes) -> None:
    """Zip members through io/_zip.read_member (size, ratio and method checks, then a CRC-checked
    read) on an archive opened as the .keras and .nnc readers open theirs."""
    from nncompress.errors import InputError
    from nncompress.io._zip import UNREADABLE, read_member

    p = _as_file(data, "input.zip")
    try:
        z = zipfile.ZipFile(p)
    except UNREADABLE:  # every caller maps the constructor's errors to one InputError
        return
    with z:
        for info in z.infolist()[:64]:
            try:
                raw = read_member(z, info.filename, p, limit=64 << 20)
            except InputError as e:
                if "\n" in str(e):
                    raise AssertionError("error is not one line") from e
                continue
            if len(raw) != info.file_size:
                raise AssertionError(f"member {info.filename!r}: {len(raw)} bytes, declared {info.file_size}")


# Records every pickle of the torch_pickle target can point its storages at (keys 0-3).
_RECORDS = {f"data/{i}": bytes(range(256)) * 16 for i in range(4)}


def torch_archive(pickle_bytes: bytes, records: dict[str, bytes] | None = None) -> bytes:
    """A torch.save zip archive holding ``pickle_bytes`` as data.pkl beside ``records``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", b"little")
        for k, v in (_RECORDS if records is None else records).items():
            z.writestr(f"archive/{k}", v)
        z.writestr("archive/version", b"3\n")
    return buf.getvalue()


def fuzz_torch_pickle(data: bytes) -> None:
    """Raw pickle bytes through the restricted unpickler, as torch.save's data.pkl: open_saved (the
    one door every pickle of a .pt goes through), every tensor reference located and read, and the
    checkpoint walk that picks the weights out of what it holds."""
    from nncompress.io.torch.checkpoint import find_weights
    from nncompress.io.torch.torchsave import open_saved
    from nncompress.io.torch.unpickle import iter_refs

    p = _as_file(torch_archive(data), "input.pt")

    def go() -> None:
        ts = open_saved(p, legacy=False)
        refs = dict(iter_refs(ts.obj))
        ts.arrays(refs)
        find_weights(ts.obj)

    _expected(go)


def fuzz_torch_zip(data: bytes) -> None:
    """A PyTorch file: sniff (zip layout or legacy pickle), then nncompress's own reader of that
    kind: TorchScript records checked against data.pkl/constants.pkl, a torch.export archive read
    without torch (open_pt2), or a torch.save file unpickled inertly with every tensor read. The
    TorchScript program itself is then torch.jit.load's, out of this harness's reach."""
    from nncompress.io.torch.pt2 import open_pt2
    from nncompress.io.torch.sniff import sniff
    from nncompress.io.torch.torchsave import open_saved
    from nncompress.io.torch.torchscript import torchscript_tensors
    from nncompress.io.torch.unpickle import iter_refs

    p = _as_file(data, "input.pt")

    def go() -> None:
        kind = sniff(p)
        if kind.kind == "torchscript":
            torchscript_tensors(p)
        elif kind.kind == "export":
            open_pt2(p)
        else:
            ts = open_saved(p, legacy=kind.legacy)
            ts.arrays(dict(iter_refs(ts.obj)))

    _expected(go)


def fuzz_hdf5(data: bytes) -> None:
    """A Keras .h5 file through load_keras (h5py opens it; every attribute, config and dataset the
    loader reads is checked, each weight read)."""
    from nncompress.io.keras import load_keras

    p = _as_file(data, "input.h5")

    def go() -> None:
        g = load_keras(p)
        for w in g.weights.values():
            _ = w.value

    _expected(go)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "nnc": fuzz_nnc,
    "formats": fuzz_formats,
    "onnx": fuzz_onnx,
    "onnx_wire": fuzz_onnx_wire,
    "json": fuzz_json,
    "zip": fuzz_zip,
    "torch_pickle": fuzz_torch_pickle,
    "torch_zip": fuzz_torch_zip,
    "hdf5": fuzz_hdf5,
}

# What each target's instrumentation covers (atheris instruments these modules' bytecode).
_MODULES = {
    "nnc": ["nncompress.artifact", "nncompress.pipeline.artifacts", "nncompress.formats", "nncompress.io"],
    "formats": ["nncompress.formats", "nncompress.native"],
    "onnx": ["nncompress.io.onnx"],
    "onnx_wire": ["nncompress.io.onnx.wire"],
    "json": ["nncompress.io._json"],
    "zip": ["nncompress.io._zip"],
    "torch_pickle": [
        *("nncompress.io.torch.unpickle", "nncompress.io.torch.torchsave", "nncompress.io.torch.archive"),
        "nncompress.io.torch.checkpoint",
    ],
    "torch_zip": [
        *("nncompress.io.torch.sniff", "nncompress.io.torch.unpickle", "nncompress.io.torch.archive"),
        *("nncompress.io.torch.torchsave", "nncompress.io.torch.torchscript", "nncompress.io.torch.pt2"),
    ],
    "hdf5": ["nncompress.io.keras"],
}


# -- zip-aware mutation ---------------------------------------------------------------------------


def zip_mutate(data: bytes, max_size: int, seed: int, mutate: Callable[[bytes, int], bytes]) -> bytes:
    """libFuzzer's byte mutation applied inside a zip: one member's bytes mutated (a window of a
    large one), or a member dropped, and the archive written again with correct CRCs and sizes. On
    the raw archive nearly every mutant fails its CRC check, and the manifest, configs, pickles and
    records behind it would stay out of reach. A quarter of the time, and for bytes that are no
    zip, the whole file is mutated instead (headers, directory, CRCs). ``mutate`` is
    atheris.Mutate; passed in so that this module imports without atheris."""
    rng = random.Random(seed)
    if rng.random() < 0.25:
        return mutate(data, max_size)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = [(i, z.read(i.filename)) for i in z.infolist()]
    except Exception:  # any reason the archive does not read back: mutate it as bytes
        return mutate(data, max_size)
    if not members:
        return mutate(data, max_size)
    k = rng.randrange(len(members))
    info, body = members[k]
    if len(members) > 1 and rng.random() < 0.05:
        del members[k]
    elif len(body) <= 4096:
        members[k] = (info, mutate(body, 2 * len(body) + 64))
    else:
        at = rng.randrange(len(body))
        piece = body[at : at + 256]
        members[k] = (info, body[:at] + mutate(piece, 512) + body[at + len(piece) :])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, b in members:
            zi = zipfile.ZipInfo(i.filename, i.date_time)
            zi.compress_type = i.compress_type
            z.writestr(zi, b)
    out = buf.getvalue()
    return out if len(out) <= max_size else mutate(data, max_size)


_ZIP_TARGETS = ("nnc", "zip", "torch_zip")


# -- seeds ----------------------------------------------------------------------------------------


_ARTIFACTS = (
    ("lenet300.onnx", "sham"),
    ("vggmini.onnx", "csr"),
    ("vggmini.onnx", "lowrank"),
    ("lenet300.h5", "cser"),
)


def _artifacts(folder: Path, quick: bool = False) -> list[Path]:
    """Small artifacts of the example models (ONNX and Keras skeletons), made by the API; ``quick``:
    the first only (what `compress examples/models/lenet300.onnx --method sham --samples 4` makes)."""
    from nncompress.api import compress, save

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for model, method in _ARTIFACTS[:1] if quick else _ARTIFACTS:
        dst = folder / f"{model}.{method}.nnc"
        if not dst.exists():
            save(compress(MODELS / model, method=method, samples=4), dst, force=True)
        out.append(dst)
    return out


def _format_seeds() -> Iterator[bytes]:
    import numpy as np

    from nncompress.formats import FORMATS
    from nncompress.passes import PASSES

    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 10)).astype(np.float32)
    w[np.abs(w) < 0.8] = 0
    w = np.round(w * 2) / 2
    wide = rng.normal(size=(16, 24)).astype(np.float32)
    for name, cls in FORMATS.items():
        if name in PASSES:  # a structured format: its pass fits it
            p = PASSES[name]
            f = p.fit(wide, p.Options())  # type: ignore[attr-defined]
        else:
            f = cls.encode(w)
        yield encode_format_input(name, f.arrays(), f.meta())


def _members(path: Path, suffix: str) -> Iterator[bytes]:
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if n.endswith(suffix):
                yield z.read(n)


def seed_inputs(target: str, scratch: Path, *, quick: bool = False) -> list[bytes]:
    """The seed corpus of ``target``, built from the example models and artifacts made of them
    (``quick``: from one artifact, for the test that runs the harnesses in CI)."""
    arts = _artifacts(scratch / "artifacts", quick) if target in ("nnc", "json", "zip") else []
    if target == "nnc":
        return [a.read_bytes() for a in arts]
    if target == "formats":
        return list(_format_seeds())
    if target in ("onnx", "onnx_wire"):
        return [(MODELS / m).read_bytes() for m in ("vggmini.onnx", "lenet300.onnx")]
    if target == "json":
        seeds = [m for a in arts for m in _members(a, "manifest.json")]
        seeds += list(_members(MODELS / "lenet300.keras", ".json"))
        return [*seeds, b'{"a": [1, 2.5, -3e5, "x\\u00e9", true, null, {}]}', b"[[[[]]]]"]
    if target == "zip":
        return [(MODELS / "lenet300.keras").read_bytes(), *(a.read_bytes() for a in arts[:2])]
    if target == "torch_pickle":
        return [m for f in ("lenet300.pt", "vggmini.pt") for m in _members(MODELS / f, "data.pkl")]
    if target == "torch_zip":
        return [(MODELS / m).read_bytes() for m in ("vggmini.pt", "lenet300.pt")]
    if target == "hdf5":
        return [(MODELS / m).read_bytes() for m in ("vggmini.h5", "lenet300.h5")]
    raise KeyError(target)


def write_seeds(targets: list[str]) -> None:
    scratch = OUT / "scratch"
    for t in targets:
        corpus = OUT / t / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(seed_inputs(t, scratch)):
            (corpus / f"seed-{i:02d}").write_bytes(s)
        print(f"{t}: {len(list(corpus.iterdir()))} inputs in {corpus}")


# -- main -----------------------------------------------------------------------------------------


def _run(target: str, args: list[str]) -> None:
    import atheris  # only here: the harness functions run without it

    with atheris.instrument_imports(include=_MODULES[target]):
        import importlib

        for m in _MODULES[target]:
            importlib.import_module(m)
    if target.startswith("torch"):
        # the safe unpickler runs the stdlib's pure-Python one: its opcode handlers are the coverage
        import pickle

        for f in vars(pickle._Unpickler).values():
            if callable(f) and hasattr(f, "__code__"):
                atheris.instrument_func(f)
    fn = TARGETS[target]
    (OUT / target / "findings").mkdir(parents=True, exist_ok=True)
    corpus = str(OUT / target / "corpus")
    argv = [sys.argv[0], *args, f"-artifact_prefix={OUT / target / 'findings'}/", corpus]
    if target in _ZIP_TARGETS:
        atheris.Setup(argv, fn, custom_mutator=lambda d, n, s: zip_mutate(d, n, s, atheris.Mutate))
    else:
        atheris.Setup(argv, fn)
    atheris.Fuzz()


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("seeds", "run", "replay"):
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "seeds":
        write_seeds(rest or list(TARGETS))
    elif cmd == "run":
        _run(rest[0], rest[1:])
    else:
        fn = TARGETS[rest[0]]
        for f in rest[1:]:
            print(f, flush=True)
            fn(Path(f).read_bytes())


if __name__ == "__main__":
    main()
