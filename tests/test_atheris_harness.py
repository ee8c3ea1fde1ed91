"""benchmarks/atheris_fuzz.py's harnesses without atheris: each target's function on a few of its
seeds and on mutants of them (cut, bit-flipped, a member's bytes changed) ends quietly or in an
nncompress error, never in another exception; so the harnesses keep working between the
coverage-guided runs (issue 12; the runs and their findings: benchmarks/fuzz.md).
"""

from __future__ import annotations

import importlib.util
import io
import random
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _harness() -> ModuleType:
    mod = sys.modules.get("nnc_atheris_fuzz")
    if mod is None:
        spec = importlib.util.spec_from_file_location("nnc_atheris_fuzz", BENCH / "atheris_fuzz.py")
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules["nnc_atheris_fuzz"] = mod
        spec.loader.exec_module(mod)
    return mod


def _mutants(seed: bytes, rng: random.Random) -> list[bytes]:
    """A cut copy, a few flipped bits, and a copy with a byte run overwritten."""
    flipped = bytearray(seed)
    for _ in range(8):
        if flipped:
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    at = rng.randrange(max(len(seed), 1))
    return [seed[: len(seed) // 2], bytes(flipped), seed[:at] + b"\xff" * 16 + seed[at + 16 :]]


def test_harness_imports_without_atheris() -> None:
    """The module, its targets and its mutator load whether atheris is installed or not."""
    fuzz = _harness()
    assert set(fuzz.TARGETS) == {
        *("nnc", "formats", "onnx", "onnx_wire", "json", "zip", "torch_pickle", "torch_zip", "hdf5")
    }
    assert "atheris" not in fuzz.__dict__


@pytest.mark.parametrize(
    "target", ["nnc", "formats", "onnx", "onnx_wire", "json", "zip", "torch_pickle", "torch_zip", "hdf5"]
)
def test_harness_runs_on_its_seeds(target: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    fuzz = _harness()
    scratch = tmp_path_factory.getbasetemp() / "atheris-seeds"
    seeds = fuzz.seed_inputs(target, scratch, quick=True)[:3]
    assert seeds
    rng = random.Random(target)
    for s in seeds:
        for data in (s, *_mutants(s, rng)):
            fuzz.TARGETS[target](data)  # raises on a finding


def test_formats_scheme_round_trips() -> None:
    """The formats target decodes its seeds back into the arrays and meta they were made of."""
    import numpy as np

    from nncompress.formats import CSR

    fuzz = _harness()
    w = np.array([[0, 1.5, 0], [2, 0, -1]], dtype=np.float32)
    f = CSR.encode(w)
    name, arrays, meta = fuzz.decode_format_input(fuzz.encode_format_input("csr", f.arrays(), f.meta()))
    assert name == "csr" and meta == f.meta()
    for k, a in f.arrays().items():
        np.testing.assert_array_equal(arrays[k], a)
        assert arrays[k].dtype == a.dtype
    assert fuzz.decode_format_input(b"\x01\x05\x00{}") is None  # bytes run out: no input, no error


def test_zip_mutate_keeps_the_archive_readable() -> None:
    """Member edits give an archive zipfile reads back with every CRC right; bytes that are no zip
    fall back to the plain mutation."""
    fuzz = _harness()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", b'{"a": 1}')
        z.writestr(zipfile.ZipInfo("big.bin"), bytes(10_000))

    def mutate(b: bytes, n: int) -> bytes:
        return (b[:-1] + b"X")[:n] if b else b"X"

    changed = 0
    for seed in range(40):
        out = fuzz.zip_mutate(buf.getvalue(), 1 << 20, seed, mutate)
        if out[-1:] == b"X":  # the whole-file fallback
            continue
        with zipfile.ZipFile(io.BytesIO(out)) as z:
            assert z.testzip() is None
            changed += sum(z.read(n).endswith(b"X") or b"X" in z.read(n) for n in z.namelist())
    assert changed > 0
    assert {fuzz.zip_mutate(b"not a zip", 100, seed, mutate) for seed in range(8)} == {b"not a ziX"}
