"""Kernel benchmark: time and bytes of y = x @ W.T for numpy dense, scipy CSR and the native kernels.

    python benchmarks/bench_kernels.py [--quick] [--repeats N] [--out benchmarks/out]

Sweep: W of 4096x4096 and 4096x25088 at densities 0.1, 0.05, 0.01 with k = 32 shared nonzero values
(seeded), batch 1 and 8, one thread. Every kernel of a case is timed once per round, round after
round, each time right after an untimed run of its own, after warm-up runs
(``nncompress.timing.time_rounds``). For each kernel: bytes, median and IQR of the wall time, time
over numpy dense and over scipy CSR (medians of the ratios within each round), bytes over dense bytes
(psi), max abs error against the numpy reference ``fmt.dot``, and achieved bandwidth (bytes / median
time) over the machine's measured bandwidth (numpy triad on 512 MB arrays, measured in the same run).
``--quick`` runs one size (4096x4096, density 0.1) with fewer repeats. Prints a markdown table and
writes JSON to ``--out``. Numbers depend on the machine: rerun, don't quote.
"""

from __future__ import annotations

import os

# BLAS must be single-threaded: these are read when numpy loads its BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from nncompress.timing import Timing, markdown_table, time_rounds, timeit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ["csr", "im", "cser", "ham", "sham"]


def make_matrix(n_out: int, n_in: int, density: float, k: int, seed: int) -> np.ndarray:
    """A float32 matrix with round(density * size) nonzeros drawn from k random shared values."""
    rng = np.random.default_rng(seed)
    values = np.unique(rng.standard_normal(4 * k).astype(np.float32))
    values = rng.choice(values[values != 0], size=k, replace=False)
    w = np.zeros(n_out * n_in, dtype=np.float32)
    nnz = round(density * w.size)
    pos = rng.choice(w.size, size=nnz, replace=False)
    w[pos] = values[rng.integers(0, k, size=nnz)]
    return w.reshape(n_out, n_in)


def bandwidth(nbytes: int = 512 << 20, repeats: int = 5) -> float:
    """Memory bandwidth in GB/s of the numpy triad a = b + s * c on float32 arrays (3 arrays streamed)."""
    n = nbytes // 4
    b = np.ones(n, dtype=np.float32)
    c = np.ones(n, dtype=np.float32)
    a = np.empty(n, dtype=np.float32)

    def triad() -> None:
        np.multiply(c, np.float32(1.5), out=a)
        np.add(a, b, out=a)

    # the two passes read c, write a, read a, read b, write a: 5 array transfers
    return 5 * n * 4 / timeit(triad, repeats, 1).median / 1e9


def bench_case(
    n_out: int, n_in: int, density: float, batch: int, k: int, repeats: int, warmup: int, bw: float, seed: int
) -> list[dict[str, Any]]:
    """Rows of the table for one (shape, density, batch)."""
    import scipy.sparse

    from nncompress.formats import FORMATS
    from nncompress.native import native_dot

    w = make_matrix(n_out, n_in, density, k, seed)
    x = np.random.default_rng(seed + 1).standard_normal((batch, n_in)).astype(np.float32)
    xin = x[0] if batch == 1 else x
    ref = w @ x.T  # (out, B), the reference layout for the dense timing
    ref_y = np.ascontiguousarray(ref.T)
    dense_bytes = w.nbytes
    kernels: dict[str, tuple[Callable[[], Any], int, np.ndarray]] = {}
    kernels["numpy-dense"] = (lambda: w @ xin.T if batch > 1 else w @ xin, dense_bytes, ref_y)
    sp = scipy.sparse.csr_matrix(w)
    sp_bytes = sp.data.nbytes + sp.indices.nbytes + sp.indptr.nbytes
    kernels["scipy-csr"] = (lambda: sp @ xin.T if batch > 1 else sp @ xin, sp_bytes, ref_y)
    for name in NATIVE:
        fmt = FORMATS[name].encode(w)
        fref = np.atleast_2d(fmt.dot(xin))  # the format's own numpy reference

        def call(fmt: Any = fmt) -> np.ndarray:
            return native_dot(fmt, xin, threads=1)

        kernels[f"native-{name}"] = (call, fmt.nbytes, fref)
    errs = {}
    for label, (fn, _, fref) in kernels.items():
        out = np.asarray(fn())
        got = out.T if label in ("numpy-dense", "scipy-csr") and batch > 1 else out
        errs[label] = float(np.max(np.abs(np.atleast_2d(got) - fref)))
    times = time_rounds({label: fn for label, (fn, _, _) in kernels.items()}, repeats, warmup)
    rows = []
    for label, (_, nbytes, _) in kernels.items():
        t = Timing.of(times[label])
        achieved = nbytes / t.median / 1e9
        rows.append(
            {
                "shape": f"{n_out}x{n_in}",
                "density": density,
                "batch": batch,
                "kernel": label,
                "bytes": int(nbytes),
                "psi": nbytes / dense_bytes,
                "median_ms": t.median * 1e3,
                "iqr_ms": t.iqr * 1e3,
                "max_abs_err": errs[label],
                "achieved_gbs": achieved,
                "bw_fraction": achieved / bw,
                # medians of the round-by-round ratios (see time_rounds)
                "vs_dense": float(np.median(times[label] / times["numpy-dense"])),
                "vs_scipy_csr": float(np.median(times[label] / times["scipy-csr"])),
            }
        )
    return rows


TABLE = [
    ("shape", "{shape}"),
    ("density", "{density}"),
    ("batch", "{batch}"),
    ("kernel", "{kernel}"),
    ("bytes", "{bytes}"),
    ("psi", "{psi:.4f}"),
    ("median ms", "{median_ms:.3f}"),
    ("IQR ms", "{iqr_ms:.3f}"),
    ("/dense", "{vs_dense:.2f}"),
    ("/scipy CSR", "{vs_scipy_csr:.2f}"),
    ("max abs err", "{max_abs_err:.2e}"),
    ("GB/s", "{achieved_gbs:.2f}"),
    ("of bw", "{bw_fraction:.3f}"),
]


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of all rows."""
    return markdown_table(TABLE, rows)


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, print the table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one size (4096x4096, density 0.1), fewer repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per kernel (default 25, quick 5)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--k", type=int, default=32, help="shared nonzero values")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args(argv)
    from nncompress.native import available

    if not available():
        raise SystemExit("the native kernels are not built: pip install -e .")
    repeats = args.repeats or (5 if args.quick else 25)
    shapes = [(4096, 4096)] if args.quick else [(4096, 4096), (4096, 25088)]
    densities = [0.1] if args.quick else [0.1, 0.05, 0.01]
    batches = [1, 8]
    bw = bandwidth(repeats=3 if args.quick else 7)
    print(f"memory bandwidth (numpy float32 triad, 512 MB arrays): {bw:.2f} GB/s")
    rows: list[dict[str, Any]] = []
    for n_out, n_in in shapes:
        for d in densities:
            for b in batches:
                rows += bench_case(n_out, n_in, d, b, args.k, repeats, args.warmup, bw, args.seed)
    print(table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("bench_kernels_quick.json" if args.quick else "bench_kernels.json")
    info = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "numpy": np.__version__}
    path.write_text(
        json.dumps({"bandwidth_gbs": bw, "repeats": repeats, "info": info, "rows": rows}, indent=1)
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
