"""cabac coder benchmark (issue 15): throughput on one core, and bits per weight against the order-0
entropy of the levels and against ham on the same values.

    python benchmarks/bench_cabac.py [--repeats N] [--out benchmarks/out]

Cases: a 2048x2048 matrix (4M entries) of Laplacian weights (std 1) quantized with step 0.5 (half a
standard deviation), and the trained kernels of examples/models/lenet300.onnx and vggmini.onnx (Conv
reshaped to (out, in*kh*kw)), each layer quantized uniformly, levels round(w / step) with step = rms/8
and rms/32 of that layer, and rms/8 after setting the 90 % smallest |w| of each layer to zero. Every layer is its own stream, as the format stores it.

Columns: M weights/s of the C coder alone (``encode``: int32 levels to stream; ``decode``: stream to
levels) and of the whole format (``Cabac.encode`` from the float matrix: grid detection, levels and
the coder; ``to_dense``: decode and scale), each the sum over layers of the median CPU time of
``--repeats`` runs (one thread: see `cpu_median`); bits per weight of the cabac stream, of the whole cabac format (stream + step), of ham
(``FORMATS["ham"].encode`` on the same float matrix, every table counted), and the order-0 empirical
entropy of each layer's levels (what a static per-layer model such as rANS approaches before the cost
of its table), all weighted by layer size. Timings depend on the machine and its load: rerun, don't quote.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from nncompress.formats import FORMATS  # noqa: E402
from nncompress.formats.cabac import Cabac  # noqa: E402
from nncompress.native import available  # noqa: E402
from nncompress.native import cabac as native_cabac  # noqa: E402
from nncompress.timing import markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lenet300.onnx", "vggmini.onnx")


def cpu_median(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of this thread's CPU time over ``repeats`` calls (after one untimed call).

    CPU time, not wall time: on a machine shared with other jobs, wall time counts the time the
    scheduler gave to them; CPU time counts what one core spent on this work (cache and memory
    contention from the other jobs still slow it, so the figures are if anything low)."""
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        fn()
        ts.append((time.thread_time_ns() - t0) * 1e-9)
    return float(np.median(ts))


def entropy0(levels: np.ndarray) -> float:
    """Order-0 empirical entropy of the levels, bits per level."""
    if levels.size == 0:
        return 0.0
    _, counts = np.unique(levels, return_counts=True)
    p = counts / levels.size
    return float(-(p * np.log2(p)).sum())


def quantize(w: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """(levels, the float32 matrix they stand for): round(w / step), times the float32 step."""
    s = np.float32(step)
    lv = np.rint(w.astype(np.float64) / float(s)).astype(np.int32)
    return lv, lv.astype(np.float32) * s


def trained_layers() -> dict[str, list[np.ndarray]]:
    """Model name -> its float32 2-D kernels."""
    from nncompress.io import load

    out: dict[str, list[np.ndarray]] = {}
    for name in MODELS:
        g = load(ROOT / "examples" / "models" / name)
        out[name] = [
            np.ascontiguousarray(w.array.reshape(w.array.shape[0], -1), np.float32) for w in g.select()
        ]
    return out


def bench_case(label: str, layers: list[tuple[np.ndarray, np.ndarray]], repeats: int) -> dict[str, Any]:
    """One row: layers is a list of (levels, float matrix)."""
    n = sum(lv.size for lv, _ in layers)
    t = {"enc": 0.0, "dec": 0.0, "fmt_enc": 0.0, "fmt_dec": 0.0}
    bits = {"stream": 0, "cabac": 0, "ham": 0}
    h0 = 0.0
    for lv, w in layers:
        flat = lv.reshape(-1)
        stream = native_cabac.encode(flat)
        assert np.array_equal(native_cabac.decode(stream, flat.size), flat)
        fmt = Cabac.encode(w)
        assert np.array_equal(fmt.to_dense(), w)
        t["enc"] += cpu_median(lambda f=flat: native_cabac.encode(f), repeats)
        t["dec"] += cpu_median(lambda s=stream, m=flat.size: native_cabac.decode(s, m), repeats)
        t["fmt_enc"] += cpu_median(lambda m=w: Cabac.encode(m), repeats)
        t["fmt_dec"] += cpu_median(fmt.to_dense, repeats)
        bits["stream"] += 8 * stream.size
        bits["cabac"] += 8 * fmt.nbytes
        bits["ham"] += 8 * FORMATS["ham"].encode(w).nbytes
        h0 += entropy0(flat) * flat.size
    return {
        "case": label,
        "weights": n,
        "layers": len(layers),
        "encode_mw_s": n / t["enc"] / 1e6,
        "decode_mw_s": n / t["dec"] / 1e6,
        "format_encode_mw_s": n / t["fmt_enc"] / 1e6,
        "to_dense_mw_s": n / t["fmt_dec"] / 1e6,
        "bpw_stream": bits["stream"] / n,
        "bpw_cabac": bits["cabac"] / n,
        "bpw_entropy0": h0 / n,
        "bpw_ham": bits["ham"] / n,
        "cabac_over_entropy0": bits["stream"] / h0 if h0 else float("nan"),
        "cabac_over_ham": bits["cabac"] / bits["ham"],
    }


COLUMNS = [
    ("case", "{case}"),
    ("weights", "{weights}"),
    ("coder encode M/s", "{encode_mw_s:.1f}"),
    ("coder decode M/s", "{decode_mw_s:.1f}"),
    ("Cabac.encode M/s", "{format_encode_mw_s:.1f}"),
    ("to_dense M/s", "{to_dense_mw_s:.1f}"),
    ("bits/w stream", "{bpw_stream:.3f}"),
    ("bits/w cabac", "{bpw_cabac:.3f}"),
    ("bits/w H0", "{bpw_entropy0:.3f}"),
    ("bits/w ham", "{bpw_ham:.3f}"),
    ("stream/H0", "{cabac_over_entropy0:.3f}"),
    ("cabac/ham", "{cabac_over_ham:.3f}"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    if not available():
        raise SystemExit("the native extension is not built: pip install -e . first")
    rng = np.random.default_rng(0)
    w = rng.laplace(0.0, 1.0 / np.sqrt(2.0), (2048, 2048))  # std 1
    rows = [bench_case("laplace 2048x2048, step 0.5 std", [quantize(w, 0.5)], args.repeats)]
    for name, mats in trained_layers().items():
        for div in (8, 32):
            layers = [quantize(m, float(np.sqrt(np.mean(m.astype(np.float64) ** 2))) / div) for m in mats]
            rows.append(bench_case(f"{name}, step rms/{div}", layers, args.repeats))
        # pruned first (the 90 % smallest |w| of each layer to 0), the regime a context model is for
        pruned = [np.where(np.abs(m) < np.quantile(np.abs(m), 0.9), np.float32(0), m) for m in mats]
        layers = [
            quantize(p, float(np.sqrt(np.mean(m.astype(np.float64) ** 2))) / 8)
            for p, m in zip(pruned, mats, strict=True)
        ]
        rows.append(bench_case(f"{name}, 90 % pruned, step rms/8", layers, args.repeats))
    print(markdown_table(COLUMNS, rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_cabac.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
