"""Structured-format benchmark (issue 5): error versus parameters for psm, sss, dct, lowrank and prune.

    python benchmarks/bench_structured.py [--quick] [--repeats N] [--out benchmarks/out]

Layers: the trained Dense and Conv kernels (min side >= 16; Conv reshaped to (out, in*kh*kw)) of
examples/models/lenet300.onnx and vggmini.onnx, plus one VGG16-shaped 4096x4096 layer, He-init random
normal (seeded). Random matrices have no structure, so they are a worst case for every method.
The large VGG16 files in examples/models (vgg16*, gitignored, not always present) are not read.

For each method and budget (share of the dense parameter count): relative Frobenius error of the stored
matrix, parameters stored (floats), bytes (``fmt.nbytes``, every index counted), encode time, and product
time ``x @ W.T`` at batch 1 and 8 (median of repeats, one BLAS thread, one kernel thread) over numpy dense
``W @ x`` timed in the same run: the format's native C kernel when the extension is built (kernel column
says which), and its numpy reference ``dot()`` beside it. ``prune`` keeps the round(budget * size)
largest |w| as a CSR matrix: parameters are the kept values, bytes include its column indices and row
pointers.

The psm solvers are compared on a 256x256 crop of lenet300's first trained layer: one pyfaust palm4msa
run, then our PALM with growing iteration counts until it reaches pyfaust's error.
``--quick`` skips the VGG16 layer and pyfaust. Prints markdown tables and writes JSON to ``--out``.
Timings depend on the machine and its load: rerun, don't quote.
"""

from __future__ import annotations

import os

# BLAS must be single-threaded: these are read when numpy loads its BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from nncompress.timing import markdown_table, timeit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lenet300.onnx", "vggmini.onnx")
METHODS = ("psm", "sss", "dct", "lowrank", "prune")
BUDGETS = (0.05, 0.1, 0.2, 0.4)
PSM_ITERATIONS = 100
# The 4096x4096 layer: each lowrank/sss encode runs full SVDs (about a minute or more each on one core) and
# one PALM iteration about 40 s, so those run at one budget, sss at one block count, psm with 2 iterations.
VGG_BUDGETS = {"psm": (0.1,), "sss": (0.1,), "dct": BUDGETS, "lowrank": (0.1,), "prune": BUDGETS}
VGG_PSM_ITERATIONS = 2
VGG_SSS_BLOCKS = 16
FAUST_ITERATIONS = 20
FAUST_BUDGET = 0.2


def trained_layers() -> list[tuple[str, np.ndarray]]:
    """(label, float32 2-D kernel) of the trained Dense and Conv layers with both sides >= 16."""
    from nncompress.io import load

    out = []
    for name in MODELS:
        g = load(ROOT / "examples" / "models" / name)
        for w in g.select():
            a = np.ascontiguousarray(w.array.reshape(w.array.shape[0], -1), dtype=np.float32)
            if min(a.shape) >= 16:
                out.append((f"{name}:{w.name}", a))
    return out


def vgg_layer(seed: int) -> np.ndarray:
    """A VGG16 fc-shaped 4096x4096 float32 matrix, He-init normal (std sqrt(2 / fan_in))."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((4096, 4096)) * np.sqrt(2.0 / 4096)).astype(np.float32)


def rel_err(w: np.ndarray, approx: np.ndarray) -> float:
    """||W - approx||_F / ||W||_F in float64."""
    w64 = w.astype(np.float64)
    return float(np.linalg.norm(w64 - approx.astype(np.float64)) / np.linalg.norm(w64))


def encode(
    method: str, w: np.ndarray, budget: float, extra: dict[str, Any]
) -> tuple[Any, int, Callable[..., Any], str]:
    """(format, parameters stored, product function x -> x @ W.T, kernel kind) of one method."""
    from nncompress.formats import CSR
    from nncompress.native import native_dot, supports
    from nncompress.passes.dct import DCTPass
    from nncompress.passes.lowrank import LowRankPass
    from nncompress.passes.prune import smallest
    from nncompress.passes.psm import PSMPass
    from nncompress.passes.sss import SSSPass

    if method == "prune":
        keep = round(budget * w.size)
        drop, _ = smallest(np.abs(w).ravel(), w.size - keep)
        pruned = w.copy()
        pruned.reshape(-1)[drop] = 0
        fmt = CSR.encode(pruned)
        n_params = int(fmt.values.size)
    else:
        step = {p.name: p for p in (LowRankPass, SSSPass, DCTPass, PSMPass)}[method]
        fmt = step.fit(w, step.Options(budget=budget, **extra))
        n_params = int(fmt.parameters)
    if supports(fmt.name):
        return fmt, n_params, lambda x: native_dot(fmt, x, threads=1), "native"
    return fmt, n_params, fmt.dot, "numpy"


def bench_layer(
    label: str,
    w: np.ndarray,
    budgets: dict[str, tuple[float, ...]],
    extra: dict[str, dict[str, Any]],
    repeats: int,
    warmup: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Rows of one layer: every method at every budget, timed against numpy dense in the same run."""
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(w.shape[1]).astype(np.float32)
    x8 = rng.standard_normal((8, w.shape[1])).astype(np.float32)
    dense1 = timeit(lambda: w @ x1, repeats, warmup).median
    dense8 = timeit(lambda: w @ x8.T, repeats, warmup).median
    rows = []
    for method in METHODS:
        for b in budgets[method]:
            t0 = time.perf_counter()
            fmt, n_params, dot, kind = encode(method, w, b, extra.get(method, {}))
            enc = time.perf_counter() - t0
            approx = fmt.to_dense()
            err = rel_err(w, approx)
            # the timed products must compute the stored matrix, else their timings mean nothing
            ref8 = x8.astype(np.float64) @ approx.T.astype(np.float64)
            dot_err = 0.0
            for f in (dot, fmt.dot):
                e = float(np.linalg.norm(np.asarray(f(x8), np.float64) - ref8) / np.linalg.norm(ref8))
                if e > 1e-4:
                    raise SystemExit(f"{label} {method} budget={b}: dot disagrees with to_dense ({e:.2e})")
                dot_err = max(dot_err, e)
            t1 = timeit(lambda dot=dot: dot(x1), repeats, warmup).median
            t8 = timeit(lambda dot=dot: dot(x8), repeats, warmup).median
            same = kind == "numpy"  # the numpy reference is the timed product already
            ref1 = t1 if same else timeit(lambda fmt=fmt: fmt.dot(x1), repeats, warmup).median
            ref8_t = t8 if same else timeit(lambda fmt=fmt: fmt.dot(x8), repeats, warmup).median
            rows.append(
                {
                    "layer": label,
                    "shape": f"{w.shape[0]}x{w.shape[1]}",
                    "method": method,
                    "budget": b,
                    "rel_err": err,
                    "dot_vs_to_dense": dot_err,
                    "params": n_params,
                    "params_ratio": n_params / w.size,
                    "bytes": int(fmt.nbytes),
                    "bytes_ratio": fmt.nbytes / w.nbytes,
                    "encode_s": enc,
                    "b1_ms": t1 * 1e3,
                    "b1_vs_dense": t1 / dense1,
                    "b8_ms": t8 * 1e3,
                    "b8_vs_dense": t8 / dense8,
                    "numpy_b1_ms": ref1 * 1e3,
                    "numpy_b8_ms": ref8_t * 1e3,
                    "dense_b1_ms": dense1 * 1e3,
                    "dense_b8_ms": dense8 * 1e3,
                    "kernel": kind,
                }
            )
            print(f"  {label} {method} budget={b}: err {err:.4f}, encode {enc:.2f} s", file=sys.stderr)
    return rows


def faust_compare(w: np.ndarray, budget: float, faust_its: int) -> list[dict[str, Any]]:
    """pyfaust palm4msa (one run) against our PALM run until it reaches the same error, same budget."""
    from nncompress.passes.psm import PSMPass

    rows = []

    def run(solver: str, its: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        fmt = PSMPass.fit(w, PSMPass.Options(budget=budget, iterations=its, solver=solver))
        dt = time.perf_counter() - t0
        return {
            "solver": solver,
            "iterations": its,
            "rel_err": rel_err(w, fmt.to_dense()),
            "params": int(fmt.parameters),
            "bytes": int(fmt.nbytes),
            "encode_s": dt,
        }

    ref = run("pyfaust", faust_its)
    rows.append(ref)
    its = 5
    while True:
        r = run("palm", its)
        r["reached"] = r["rel_err"] <= ref["rel_err"]
        rows.append(r)
        if r["reached"] or its >= 640:
            break
        its *= 2
    return rows


TABLE = [
    ("method", "{method}"),
    ("budget", "{budget}"),
    ("rel err", "{rel_err:.4f}"),
    ("params", "{params}"),
    ("params/dense", "{params_ratio:.3f}"),
    ("bytes", "{bytes}"),
    ("bytes/dense", "{bytes_ratio:.3f}"),
    ("encode s", "{encode_s:.2f}"),
    ("B=1 ms", "{b1_ms:.3f}"),
    ("/dense", "{b1_vs_dense:.2f}"),
    ("B=8 ms", "{b8_ms:.3f}"),
    ("/dense", "{b8_vs_dense:.2f}"),
    ("kernel", "{kernel}"),
    ("numpy B=1 ms", "{numpy_b1_ms:.3f}"),
    ("numpy B=8 ms", "{numpy_b8_ms:.3f}"),
]
FAUST_TABLE = [
    ("solver", "{solver}"),
    ("iterations", "{iterations}"),
    ("rel err", "{rel_err:.4f}"),
    ("params", "{params}"),
    ("bytes", "{bytes}"),
    ("encode s", "{encode_s:.2f}"),
    ("reached pyfaust err", "{reached_text}"),
]


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of one layer's rows."""
    return markdown_table(TABLE, rows)


def faust_table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the psm solver comparison."""

    def reached(r: dict[str, Any]) -> str:
        return "-" if r["solver"] == "pyfaust" else ("yes" if r["reached"] else "no")

    return markdown_table(FAUST_TABLE, ({**r, "reached_text": reached(r)} for r in rows))


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, print the tables, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the VGG16-shaped layer and pyfaust")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per product (default 21, quick 7)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args(argv)
    repeats = args.repeats or (7 if args.quick else 21)
    every = dict.fromkeys(METHODS, BUDGETS)
    trained_extra = {"psm": {"iterations": PSM_ITERATIONS}}
    layers = [(label, w, every, trained_extra) for label, w in trained_layers()]
    if not args.quick:
        vgg_extra = {"psm": {"iterations": VGG_PSM_ITERATIONS}, "sss": {"blocks": VGG_SSS_BLOCKS}}
        layers.append(("vgg16-fc-shaped (random He-init)", vgg_layer(args.seed), VGG_BUDGETS, vgg_extra))
    notes = [
        "relative error = ||W - W~||_F / ||W||_F; params = stored floats; bytes = fmt.nbytes (indices included)",
        "times: median of runs of x @ W.T, one BLAS thread; /dense = over numpy dense W @ x in the same run; "
        "B=1/B=8 time the native C kernel (one thread) where built, numpy B=1/B=8 the numpy reference dot()",
        f"psm: factors=2, iterations={PSM_ITERATIONS} (palm); dct: kernel=dct; sss and lowrank: defaults",
        "prune: largest |w| kept as CSR; params = kept values, bytes include its column indices and row pointers",
    ]
    if not args.quick:
        notes.append(
            f"vgg16-fc-shaped layer: random He-init, a worst case for every method (no structure to find); "
            f"budgets reduced to {VGG_BUDGETS}, psm iterations to {VGG_PSM_ITERATIONS}, sss blocks fixed "
            f"at {VGG_SSS_BLOCKS}, repeats to {max(3, repeats // 3)}, to stay within minutes"
        )
    for n in notes:
        print(f"- {n}")
    rows: list[dict[str, Any]] = []
    for label, w, budgets, extra in layers:
        big = w.size > 1 << 22
        layer_rows = bench_layer(
            label,
            w,
            budgets,
            extra,
            max(3, repeats // 3) if big else repeats,
            1 if big else args.warmup,
            args.seed,
        )
        rows += layer_rows
        r0 = layer_rows[0]
        print(
            f"\n### {label} ({r0['shape']}); numpy dense: B=1 {r0['dense_b1_ms']:.3f} ms, "
            f"B=8 {r0['dense_b8_ms']:.3f} ms\n"
        )
        print(table(layer_rows), flush=True)
    faust_rows: list[dict[str, Any]] = []
    if not args.quick:
        label, w = trained_layers()[0]
        crop = np.ascontiguousarray(w[:256, :256])
        print(f"\n### psm solvers on {label}[:256, :256], budget {FAUST_BUDGET}, factors 2\n")
        faust_rows = faust_compare(crop, FAUST_BUDGET, FAUST_ITERATIONS)
        print(faust_table(faust_rows))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("bench_structured_quick.json" if args.quick else "bench_structured.json")
    info = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "numpy": np.__version__}
    doc = {"notes": notes, "repeats": repeats, "info": info, "rows": rows, "psm_solvers": faust_rows}
    path.write_text(json.dumps(doc, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
