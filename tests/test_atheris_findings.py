"""What the coverage-guided runs of benchmarks/atheris_fuzz.py found, one regression test each, with
the reproducer built here (issue 12; the runs: benchmarks/fuzz.md, "Coverage-guided (atheris)")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nncompress.errors import InputError


def test_wire_strip_of_an_empty_file(tmp_path: Path) -> None:
    """onnx_wire, input of 0 bytes: mmap refuses a zero-length map (ValueError, not WireError).
    An empty file is an empty message; read_model refuses it before the walk, in one line."""
    from nncompress.io.onnx import wire
    from nncompress.io.onnx.reader import read_model

    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    assert wire.strip(p) == (b"", [])
    with pytest.raises(InputError, match="file is empty"):
        read_model(p)


@pytest.mark.parametrize("opcode", [b"r" + (10_000_000).to_bytes(4, "little"), b"p10000000\n"])
def test_pickle_memo_index_allocates_nothing(opcode: bytes) -> None:
    """torch_pickle, a 95-byte data.pkl ending ``LONG_BINPUT 643786851``: the C unpickler's memo is
    an array as long as the largest index put, so it allocated and zeroed 10 GB (libFuzzer's
    out-of-memory at 2 GB). The safe unpickler keeps its memo in a dict: a 10-byte pickle naming
    index 10,000,000 (160 MB in the C memo) allocates next to nothing, through the .pt door too."""
    import tracemalloc

    from nncompress.io.torch.unpickle import safe_loads

    payload = b"\x80\x02}" + opcode + b"."  # PROTO 2, EMPTY_DICT, (LONG_)PUT index, STOP
    tracemalloc.start()
    try:
        obj, foreign = safe_loads(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert obj == {} and foreign == {}
    assert peak < 16 << 20, f"{peak:,} bytes allocated for a {len(payload)}-byte pickle"


def test_pickle_memo_index_through_the_pt_door(tmp_path: Path) -> None:
    """The fuzz input itself (a module named by GLOBAL, a dict, a LONG_BINPUT before STOP; its index
    lowered to 10,000,000) as a torch.save archive's data.pkl: read without the allocation."""
    import io
    import tracemalloc
    import zipfile

    from nncompress.io.torch.torchsave import open_saved

    pkl = (
        b"\x80\x02c__torch__.torch.nn.modules.container\n___torch_mangle_21 Sequential\nq\x00)\x81}("
        + b"X\x08\x00\x00\x00train_tor"
        + (10_000_000).to_bytes(4, "little")
        + b"."
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", b"3\n")
    p = tmp_path / "memo.pt"
    p.write_bytes(buf.getvalue())
    tracemalloc.start()
    try:
        open_saved(p, legacy=False)
    except InputError as e:  # what STOP leaves on the stack may be refused, in one line
        assert "MemoryError" not in str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak:,} bytes allocated reading a {len(pkl)}-byte pickle"


@pytest.mark.parametrize("arg", [b"\x8e\x01\x02", b"G\x00\x01", b"J\x00", b"\x95\x01"])
def test_pickle_cut_in_a_fixed_size_argument(arg: bytes, tmp_path: Path) -> None:
    """torch_pickle, after the pure-Python unpickler came in: a BINBYTES8 length cut short raised
    struct.error, which no caller maps; BINFLOAT, BININT and FRAME cut short do the same. Now an
    UnpicklingError, and through the .pt door one InputError line."""
    import io
    import pickle
    import zipfile

    from nncompress.io.torch.torchsave import open_saved
    from nncompress.io.torch.unpickle import safe_loads

    payload = b"\x80\x04" + arg  # PROTO 4, then an opcode whose fixed-size argument is cut
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        safe_loads(payload)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", payload)
    p = tmp_path / "cut.pt"
    p.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="pickle is unreadable"):
        open_saved(p, legacy=False)


def _peak_of(fn: Callable[[], object]) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    except Exception:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize(
    "payload",
    [
        # BYTEARRAY8 declaring 2^26 bytes and holding 3: the stdlib's pure-Python unpickler makes
        # bytearray(2^26) before it reads (the C one checks the bytes first)
        b"\x80\x05\x96" + (1 << 26).to_bytes(8, "little") + b"abc.",
        # ...and one above sys.maxsize: read(n) raised OverflowError (the fuzzer, on that handler)
        b"\x80\x05\x96" + (0x9696969696969696).to_bytes(8, "little") + b"abc.",
        # builtins.bytearray, an allowed container, REDUCEd with an int: 2^26 zero bytes
        b"\x80\x03cbuiltins\nbytearray\nJ" + (1 << 26).to_bytes(4, "little") + b"\x85R.",
    ],
    ids=["bytearray8", "bytearray8-above-maxsize", "bytearray-int"],
)
def test_pickle_declared_bytearray_allocates_nothing(payload: bytes) -> None:
    """Found reading the pure-Python unpickler after the memo finding (the fuzzer's next target):
    a few bytes of pickle asked for a bytearray of any size. Refused before allocating."""
    import pickle

    from nncompress.io.torch.unpickle import safe_loads

    with pytest.raises(pickle.UnpicklingError):
        safe_loads(payload)
    assert _peak_of(lambda: safe_loads(payload)) < 16 << 20


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickled_bytearrays_still_read(protocol: int) -> None:
    import pickle

    from nncompress.io.torch.unpickle import safe_loads

    obj, _ = safe_loads(pickle.dumps([bytearray(b"xyz"), bytearray()], protocol=protocol))
    if protocol > 2:  # protocol 2 names __builtin__.bytearray: a placeholder, as before
        assert obj == [bytearray(b"xyz"), bytearray()]


def _h5_with_long_vlen(tmp: Path, length: int) -> Path:
    """An .h5 whose group attribute weight_names (two variable-length strings) says the first is
    ``length`` bytes long: its stored reference is (u32 length, u64 heap address, u32 index)."""
    import struct

    import h5py
    import numpy as np

    p = tmp / "vlen.h5"
    with h5py.File(p, "w") as f:
        g = f.create_group("dense")
        g.attrs["weight_names"] = np.array(["dense/kernel:0", "dense/bias:0"], dtype=h5py.string_dtype())
    data = bytearray(p.read_bytes())
    heap = data.find(b"GCOL")
    ref = data.find(struct.pack("<IQ", len("dense/kernel:0"), heap))
    assert heap > 0 and ref > 0
    data[ref : ref + 4] = struct.pack("<I", length)
    p.write_bytes(bytes(data))
    return p


def test_h5_vlen_string_length_is_not_trusted(tmp_path: Path) -> None:
    """hdf5, a mutant of vggmini.h5: a variable-length string of weight_names whose stored length
    was flipped made libhdf5 allocate 2.7 GB before it failed (libFuzzer: out of memory). Now one
    InputError naming the attribute, with the process's peak memory where it was."""
    import resource

    import h5py

    from nncompress.io.keras._store import attr_strings

    p = _h5_with_long_vlen(tmp_path, 1 << 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with h5py.File(p, "r") as f, pytest.raises(InputError, match="attribute weight_names of /dense"):
        attr_strings(f["dense"], "weight_names")
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grew_kb < 256 << 10, f"peak memory grew {grew_kb:,} KB"


def test_h5_attributes_still_read(tmp_path: Path) -> None:
    import h5py

    from nncompress.io.keras._store import attr_strings, read_attr

    p = _h5_with_long_vlen(tmp_path, len("dense/kernel:0"))  # the true length: unchanged
    with h5py.File(p, "r") as f:
        assert attr_strings(f["dense"], "weight_names") == ["dense/kernel:0", "dense/bias:0"]
        assert read_attr(f["dense"], "absent", "x") == "x"


@pytest.mark.parametrize("copier", ["copy_slim", "copy_without"])
def test_h5_vlen_bomb_is_refused_by_the_copies_too(tmp_path: Path, copier: str) -> None:
    """The writer's copies of an HDF5 file (the slim skeleton compress makes, the copy decompress
    makes of a .nnc skeleton) read attributes the same guarded way: the 2.7 GB string is one
    InputError, memory where it was."""
    import resource

    import h5py

    from nncompress.io.keras import _store, _write

    p = _h5_with_long_vlen(tmp_path, 1 << 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with h5py.File(p, "r") as fin, h5py.File(tmp_path / "out.h5", "w") as fout:
        with pytest.raises(InputError, match=r"weight_names|dense"):
            if copier == "copy_slim":
                _write._copy_slim(fin, fout)
            else:
                _store.copy_without(fin, fout, drop="none")
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grew_kb < 256 << 10, f"peak memory grew {grew_kb:,} KB"
