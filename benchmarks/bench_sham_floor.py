"""The floor under batch-1 sham: the lane decoder's dependency chain alone, against scipy CSR.

    python benchmarks/bench_sham_floor.py [--quick] [--repeats N] [--out benchmarks/out]

Issue 4 asks for sham at <= 1.0x scipy CSR (batch 1, one thread, densities 0.1 and 0.05). This
measures how far below the real kernel any kernel of this design can go on the machine at hand:
``benchmarks/sham_floor.c`` keeps only the part of native/sham.c's lane kernel that no
optimization removes (peek at each row's bit position, one lookup in the 13-bit lane table, step
the position and the column) and drops the product, the column bounds check and the fallback for
the entries the table misses. Its result is meaningless; its time is a lower bound. Timed in rounds
with scipy CSR and the real native sham on the same matrices (``nncompress.timing.time_rounds``), with
the decoder's four lanes and with eight. Needs a C compiler (cffi builds the floor in a temporary
folder). Prints a markdown table and writes JSON to ``--out``. Numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench_kernels import make_matrix  # sets BLAS to one thread before numpy loads it

from nncompress.timing import Timing, markdown_table, time_rounds

ROOT = Path(__file__).resolve().parents[1]
CDEF = """
int64_t nnc_sham_floor(int64_t n_out, int64_t n_in, const float *codebook, const uint8_t *value_len, int64_t k,
    int gap_coder, const uint8_t *gap_len, int64_t n_gap_len, int escape_bits, int gap_order,
    const uint32_t *stream, int64_t n_words, const void *row_bits, int64_t n_rbits, int rbits_width,
    const float *x, int64_t batch, float *y, int threads, int lanes);
"""


def build_floor(tmp: Path) -> Any:
    """Compile sham_floor.c with native/sham.c and huffman_codes.c (whose internals it calls, through
    nnc_sham.h) and the package's flags; the module."""
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        "_sham_floor",
        CDEF,
        sources=[str(ROOT / "benchmarks" / "sham_floor.c")]
        + [str(ROOT / "native" / name) for name in ("sham.c", "huffman_codes.c")],
        include_dirs=[str(ROOT / "native"), str(ROOT / "native" / "include")],
        extra_compile_args=["-O3", "-std=c11", "-pthread"],
        libraries=["m"],
    )
    so = ffi.compile(tmpdir=str(tmp))
    spec = importlib.util.spec_from_file_location("_sham_floor", so)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def floor_call(mod: Any, fmt: Any, x: np.ndarray, lanes: int) -> Any:
    """A no-argument call of the floor on fmt's arrays (kept alive by the closure)."""
    ffi, lib = mod.ffi, mod.lib
    cb = np.ascontiguousarray(fmt.codebook, np.float32)
    vlen = np.ascontiguousarray(fmt.value_len, np.uint8)
    glen = np.ascontiguousarray(fmt.gap["gap_len"], np.uint8)
    stream = np.ascontiguousarray(fmt.stream, np.uint32)
    rb = np.ascontiguousarray(fmt.row_bits)
    y = np.empty(fmt.shape[0], np.float32)
    n_out, n_in = fmt.shape
    args = (
        n_out, n_in, ffi.cast("float *", ffi.from_buffer(cb)), ffi.cast("uint8_t *", ffi.from_buffer(vlen)),
        cb.size, 0, ffi.cast("uint8_t *", ffi.from_buffer(glen)), glen.size, int(fmt.gap["escape_bits"]), 0,
        ffi.cast("uint32_t *", ffi.from_buffer(stream)), stream.size, ffi.from_buffer(rb), rb.size,
        rb.dtype.itemsize, ffi.cast("float *", ffi.from_buffer(x)), 1, ffi.cast("float *", ffi.from_buffer(y)),
        1, lanes,
    )  # fmt: skip

    def call() -> int:
        r = int(lib.nnc_sham_floor(*args))
        if r < 0:
            raise RuntimeError(f"sham floor: native status {r}")
        return r

    return call


def bench_case(
    mod: Any, n_out: int, n_in: int, density: float, repeats: int, seed: int
) -> list[dict[str, Any]]:
    """Rows for one matrix: scipy CSR, native sham and the floor at 4 and 8 lanes."""
    import scipy.sparse

    from nncompress.formats import FORMATS
    from nncompress.native import native_dot

    w = make_matrix(n_out, n_in, density, 32, seed)
    x = np.random.default_rng(seed + 1).standard_normal(n_in).astype(np.float32)
    sp = scipy.sparse.csr_matrix(w)
    fmt = FORMATS["sham"].encode(w)
    if fmt.gap["gap_coder"] != "huffman":
        raise SystemExit(
            f"{n_out}x{n_in} at {density}: sham chose {fmt.gap['gap_coder']} gaps, no lane table"
        )
    err = float(np.max(np.abs(native_dot(fmt, x, threads=1) - fmt.dot(x))))
    fns = {
        "scipy-csr": lambda: sp @ x,
        "native-sham": lambda: native_dot(fmt, x, threads=1),
        "floor-4-lanes": floor_call(mod, fmt, x, 4),
        "floor-8-lanes": floor_call(mod, fmt, x, 8),
    }
    times = time_rounds(fns, repeats, 3)
    rows = []
    for label, t in times.items():
        stats = Timing.of(t)
        rows.append(
            {
                "shape": f"{n_out}x{n_in}",
                "density": density,
                "kernel": label,
                "nnz": int(sp.nnz),
                "median_ms": stats.median * 1e3,
                "iqr_ms": stats.iqr * 1e3,
                "ns_per_nnz": stats.median * 1e9 / sp.nnz,
                "vs_scipy_csr": float(np.median(t / times["scipy-csr"])),
                "vs_native_sham": float(np.median(t / times["native-sham"])),
                "native_sham_max_abs_err": err,
            }
        )
    return rows


TABLE = [
    ("shape", "{shape}"),
    ("density", "{density}"),
    ("kernel", "{kernel}"),
    ("median ms", "{median_ms:.3f}"),
    ("IQR ms", "{iqr_ms:.3f}"),
    ("ns/nonzero", "{ns_per_nnz:.2f}"),
    ("/scipy CSR", "{vs_scipy_csr:.2f}"),
    ("/native sham", "{vs_native_sham:.2f}"),
]


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of all rows."""
    return markdown_table(TABLE, rows)


def main(argv: list[str] | None = None) -> int:
    """Build the floor, time the cases, print the table, write JSON."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one case (4096x4096, density 0.1)")
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds per case (default 15)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args(argv)
    from nncompress.native import available

    if not available():
        raise SystemExit("the native kernels are not built: pip install -e .")
    shapes = [(4096, 4096)] if args.quick else [(4096, 4096), (4096, 25088)]
    densities = [0.1] if args.quick else [0.1, 0.05]
    with tempfile.TemporaryDirectory() as tmp:
        mod = build_floor(Path(tmp))
        rows = [r for s in shapes for d in densities for r in bench_case(mod, *s, d, args.repeats, args.seed)]
    print(table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("bench_sham_floor_quick.json" if args.quick else "bench_sham_floor.json")
    info = {"machine": platform.platform(), "python": sys.version.split()[0], "numpy": np.__version__}
    path.write_text(json.dumps({"repeats": args.repeats, "info": info, "rows": rows}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
