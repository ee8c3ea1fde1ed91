"""Compression benchmarks: ratio and accuracy per preset, coding efficiency, time and memory.

    python benchmarks/bench_compress.py [--vgg16 examples/models/vgg16.onnx] [--out benchmarks/out]

(a) every preset on every example model: file bytes in/out, ratio, accuracy before/after on the
    1,000 held-out digits (examples/data/mnist_test.npz), and the ratio on a VGG16-shaped model;
(b) ham and sham payload bits over the empirical entropy of the quantized matrix (n * H);
(c) wall time and peak RSS of ``nncompress compress --method sham`` on the VGG16-shaped model, in
    a child process (peak RSS from getrusage), against its file size.

Prints markdown tables and writes them as JSON (``--out``). Build the VGG16-shaped model first with
``python examples/make_vgg16.py --formats onnx``. Numbers depend on the machine: rerun, don't quote.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.timing import markdown_table

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
DIGITS = ROOT / "examples" / "data" / "mnist_test.npz"
PRESETS = ["prune", "csr", "quantize", "im", "ham", "sham", "cser"]


def compress_file(model: Path, method: str, out: Path, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "nncompress.cli", "compress", str(model), "-o", str(out), "--force"]
    res = subprocess.run([*cmd, "--method", method, "--json", *extra], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{model} {method}: {res.stderr.strip()}")
    return json.loads(res.stdout)


def table_a(tmp: Path) -> list[dict[str, Any]]:
    rows = []
    models = sorted(p for p in MODELS.iterdir() if p.suffix in {".h5", ".keras", ".pt", ".onnx"})
    for m in models:
        if m.name.startswith("vgg16"):
            continue
        for method in PRESETS:
            r = compress_file(m, method, tmp / "a.nnc", "--data", str(DIGITS), "--samples", "1000")
            t, f = r["totals"], r["fidelity"]
            rows.append(
                {
                    "model": m.name,
                    "method": method,
                    "bytes_in": t["input_bytes"],
                    "bytes_out": t["output_bytes"],
                    "ratio": round(t["ratio"], 2),
                    "gzip9_ratio": round(t["input_bytes"] / t["gzip9_input_bytes"], 2),
                    "acc_before": f["accuracy_before"],
                    "acc_after": f["accuracy_after"],
                }
            )
            print(rows[-1], file=sys.stderr)
    return rows


def entropy_bits(a: np.ndarray) -> float:
    _, c = np.unique(a, return_counts=True)
    p = c / a.size
    return float(-(p * np.log2(p)).sum() * a.size)


def table_b() -> list[dict[str, Any]]:
    from nncompress.io import load
    from nncompress.pipeline import compress_graph, plan_from

    rows = []
    for name in ("lenet300.onnx", "vggmini.onnx"):
        g = load(MODELS / name)
        for method in ("ham", "sham"):
            g2, entries, _ = compress_graph(g, plan_from(method, None, None))
            for e in entries:
                if e.format != method:
                    continue
                w = g2.weights[e.name].array
                payload_bits = 8 * e.payload_bytes
                stream_bits = int(e.meta["nbits"])
                nh = entropy_bits(w)
                rows.append(
                    {
                        "model": name,
                        "weight": e.name,
                        "method": method,
                        "entries": int(w.size),
                        "nH_bits": round(nh),
                        "stream_bits": stream_bits,
                        "payload_bits": payload_bits,
                        "stream_over_nH": round(stream_bits / nh, 3),
                        "payload_over_nH": round(payload_bits / nh, 3),
                    }
                )
    return rows


def table_c(vgg: Path, tmp: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = compress_file(vgg, "sham", tmp / "vgg.nnc", "--samples", "2")
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kilobytes on Linux
    return {
        "model": vgg.name,
        "bytes_in": r["totals"]["input_bytes"],
        "bytes_out": r["totals"]["output_bytes"],
        "ratio": round(r["totals"]["ratio"], 2),
        "wall_s": round(wall, 1),
        "peak_rss_bytes": peak,
        "peak_rss_over_model": round(peak / r["totals"]["input_bytes"], 2),
        "fidelity_top1_agreement": r["fidelity"]["top1_agreement"] if r["fidelity"] else None,
    }


def md(rows: list[dict[str, Any]]) -> str:
    """The markdown table of rows that share their keys, one column per key."""
    return markdown_table([(k, "{" + k + "}") for k in rows[0]], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vgg16", type=Path, default=MODELS / "vgg16.onnx")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    ap.add_argument("--skip", default="", help="comma list of a,b,c to skip")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "a" not in skip:
            results["a"] = table_a(tmp)
            print("## (a) presets on the example models\n\n" + md(results["a"]) + "\n")
        if "b" not in skip:
            results["b"] = table_b()
            print("## (b) ham/sham bits over n*H\n\n" + md(results["b"]) + "\n")
        if "c" not in skip:
            if not args.vgg16.exists():
                raise SystemExit(f"{args.vgg16} is missing: python examples/make_vgg16.py --formats onnx")
            results["c"] = table_c(args.vgg16, tmp)
            print("## (c) sham on the VGG16-shaped model\n\n" + md([results["c"]]) + "\n")
    (args.out / "bench_compress.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
