"""Deployable compressed TorchScript (``nncompress decompress --keep-compressed``) against the dense one.

    python benchmarks/bench_keep_compressed.py [--models lenet300,vggmini] [--methods sham,csr,lowrank,psm]
        [--runs 200] [--rss-repeats 3] [--batches 1,8] [--check 1000] [--out benchmarks/out/keep_compressed]

For each example model (examples/models/MODEL.onnx; vgg16 is the VGG16-shaped one of
``python examples/make_vgg16.py --formats onnx``, fed seeded normal inputs instead of digits) and
method (its preset's pipeline, no budget search; fidelity on 16 inputs): the artifact, then three models of it: the dense decompressed ONNX
(``nncompress decompress``), the compressed TorchScript (``--keep-compressed``) and the dense
TorchScript of the same traced graph (`nncompress.torch.export.save_torchscript` with
``keep_compressed=False``: every compressed slot decoded to a float32 matrix), so that the two .pt
files differ only in how the weights are held.

Measured:
- check: max |compressed .pt - dense ONNX (onnxruntime)| / max |dense ONNX| over the first
  ``--check`` digits of examples/data/mnist_test.npz;
- tensors: the bytes of the tensors each .pt stores (its ``data/`` records);
- RSS: resident memory after ``torch.jit.load`` in a fresh ``python -I`` process that imports only
  torch and numpy, minus the same process's RSS before the load, taken once TorchScript has loaded
  and run a tiny model (its own start-up is not the model's); median of ``--rss-repeats``
  processes; it includes the loaded module's code objects, which both files have;
- latency: ``--batches`` (1 and 8), one thread (``torch.set_num_threads(1)``), both models loaded in one
  torch-only process and timed round-robin (`nncompress.timing.time_rounds`' rule: each timed call
  follows an untimed one of the same model), median of ``--runs`` rounds; the ratio is compressed
  over dense, per round, then its median.

Prints a markdown table and writes results_MODELS.json to ``--out``. Numbers depend on the machine and its
load: rerun, don't quote.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
DIGITS = ROOT / "examples" / "data" / "mnist_test.npz"
DIGITS_MODEL = {"lenet300": True, "vggmini": True, "vgg16": False}  # which take the digits

# the presets' pipelines at their preset settings (nncompress methods), run without a budget search
PIPELINES = {
    "sham": "prune:sparsity=0.8:scope=global,quantize:method=kmeans:k=32,sham",
    "csr": "prune:sparsity=0.8:scope=global,csr",
    "lowrank": "lowrank",
    "psm": "psm",
    "sss": "sss",
    "dct": "dct",
    "ham": "quantize:method=kmeans:k=32,ham",
    "smallest": "rdoq:step=0.25,cabac",
}

# Runs with torch and numpy only (python -I); prints one JSON line.
WORKER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import torch

    def rss_kib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

    job = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    if job["kind"] == "rss":
        # TorchScript's own start-up (the JIT's first load and run) before the baseline: a tiny model
        import io
        buf = io.BytesIO()
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), buf)
        buf.seek(0)
        torch.jit.load(buf)(torch.zeros(1, 2))
        before = rss_kib()
        m = torch.jit.load(job["pt"])
        after = rss_kib()
        print(json.dumps({"rss_kib": after - before}))
        sys.exit(0)
    x = np.load(job["x"])["x"]
    models = {k: torch.jit.load(p) for k, p in job["pts"].items()}
    out = {}
    with torch.no_grad():
        for batch in job["batches"]:
            xb = torch.from_numpy(x[:batch])
            for m in models.values():
                for _ in range(5):
                    m(xb)
            ts = {k: [] for k in models}
            for _ in range(job["runs"]):
                for k, m in models.items():
                    m(xb)
                    t0 = time.perf_counter_ns()
                    m(xb)
                    ts[k].append((time.perf_counter_ns() - t0) * 1e-9)
            out[str(batch)] = ts
    print(json.dumps(out))
    """
)


def _worker(job: dict[str, Any]) -> Any:
    r = subprocess.run(
        [sys.executable, "-I", "-c", WORKER, json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    if r.returncode:
        raise SystemExit(f"worker failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _inputs(art: Path, n: int) -> np.ndarray:
    """The first ``n`` held-out digits in the model's input shape; seeded normal values for a model
    that does not take digits (the VGG16-shaped one)."""
    from nncompress.inputs import random_data, signatures
    from nncompress.pipeline.artifacts import graph_from_artifact

    g = graph_from_artifact(art)
    shape = g.inputs[0].shape
    if DIGITS_MODEL.get(art.stem.split("_")[0], False):
        with np.load(DIGITS) as d:
            return np.ascontiguousarray(d["x"][:n].astype(np.float32).reshape(-1, *shape[1:]))
    specs, _ = signatures(g)
    return random_data(specs, n, seed=0).arrays[specs[0].name]


def _check(art: Path, dense_onnx: Path, pt: Path, n: int) -> float:
    """Max relative difference of the .pt's outputs from the dense ONNX's on ``n`` inputs."""
    import onnxruntime as ort
    import torch

    x = _inputs(art, n)
    sess = ort.InferenceSession(str(dense_onnx), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = torch.jit.load(str(pt))(torch.from_numpy(x)).numpy()
    return _rel(got, ref)


def run_case(
    model: str, method: str, out: Path, runs: int, rss_repeats: int, batches: list[int], n_check: int
) -> dict[str, Any]:
    import nncompress
    from nncompress.pipeline.artifacts import graph_from_artifact
    from nncompress.torch.export import save_torchscript, stored_tensor_bytes

    stem = out / f"{model}_{method}"
    art = stem.with_suffix(".nnc")
    if not art.exists():  # artifacts are deterministic: one from an earlier run is the same
        data = DIGITS if DIGITS_MODEL.get(model, False) else None  # else seeded random inputs
        r = nncompress.compress(MODELS / f"{model}.onnx", pipeline=PIPELINES[method], data=data, samples=16)
        nncompress.save(r, art)
    dense_onnx, pt = out / f"{stem.name}_dense.onnx", out / f"{stem.name}.pt"
    dense_pt = out / f"{stem.name}_dense.pt"
    nncompress.decompress(art, dense_onnx, force=True)
    nncompress.decompress(art, pt, force=True, keep_compressed=True)
    save_torchscript(graph_from_artifact(art), dense_pt, keep_compressed=False, force=True)

    x = out / f"{model}_x.npz"
    np.savez(x, x=_inputs(art, max(batches)))
    rss = {
        k: statistics.median(_worker({"kind": "rss", "pt": str(p)})["rss_kib"] for _ in range(rss_repeats))
        for k, p in (("compressed", pt), ("dense", dense_pt))
    }
    pts = {"compressed": str(pt), "dense": str(dense_pt)}
    times = _worker({"kind": "time", "pts": pts, "x": str(x), "runs": runs, "batches": batches})
    row: dict[str, Any] = {
        "model": model,
        "method": method,
        "artifact_bytes": art.stat().st_size,
        "tensors_compressed": stored_tensor_bytes(pt),
        "tensors_dense": stored_tensor_bytes(dense_pt),
        "rss_compressed_kib": rss["compressed"],
        "rss_dense_kib": rss["dense"],
        "check_rel": _check(art, dense_onnx, pt, n_check),
    }
    row["tensors_ratio"] = row["tensors_dense"] / row["tensors_compressed"]
    row["rss_ratio"] = rss["dense"] / max(rss["compressed"], 1)
    for b in ("1", "8"):
        if b not in times:
            nan = float("nan")
            row.update({f"b{b}_compressed_us": nan, f"b{b}_dense_us": nan, f"b{b}_ratio": nan})
            continue
        c, d = np.array(times[b]["compressed"]), np.array(times[b]["dense"])
        row[f"b{b}_compressed_us"] = float(np.median(c)) * 1e6
        row[f"b{b}_dense_us"] = float(np.median(d)) * 1e6
        row[f"b{b}_ratio"] = float(np.median(c / d))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="lenet300,vggmini")
    ap.add_argument("--methods", default="sham,csr,lowrank,psm")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rss-repeats", type=int, default=3)
    ap.add_argument("--batches", default="1,8", help="batch sizes timed (1 and/or 8)")
    ap.add_argument("--check", type=int, default=1000, help="inputs of the check against the dense ONNX")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "keep_compressed")
    a = ap.parse_args()
    bad = sorted(set(a.methods.split(",")) - set(PIPELINES))
    if bad:
        raise SystemExit(f"unknown methods {bad}; known: {', '.join(PIPELINES)}")
    a.out = a.out.resolve()  # the workers run elsewhere (cwd /)
    a.out.mkdir(parents=True, exist_ok=True)

    from nncompress.timing import markdown_table

    rows = []
    for model in a.models.split(","):
        for method in a.methods.split(","):
            batches = [int(b) for b in a.batches.split(",")]
            rows.append(run_case(model, method, a.out, a.runs, a.rss_repeats, batches, a.check))
            print(f"{model} {method} done", file=sys.stderr)
    print(
        markdown_table(
            [
                ("model", "{model}"),
                ("method", "{method}"),
                ("artifact B", "{artifact_bytes}"),
                ("tensors B compressed / dense", "{tensors_compressed} / {tensors_dense}"),
                ("tensors dense/compr.", "{tensors_ratio:.2f}x"),
                ("RSS KiB compressed / dense", "{rss_compressed_kib} / {rss_dense_kib}"),
                ("RSS dense/compr.", "{rss_ratio:.2f}x"),
                ("batch 1 us compr. / dense", "{b1_compressed_us:.0f} / {b1_dense_us:.0f}"),
                ("b1 time compr./dense", "{b1_ratio:.2f}"),
                ("batch 8 us compr. / dense", "{b8_compressed_us:.0f} / {b8_dense_us:.0f}"),
                ("b8 time compr./dense", "{b8_ratio:.2f}"),
                ("max rel. diff vs dense ONNX", "{check_rel:.1e}"),
            ],
            rows,
        )
    )
    import torch

    meta = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()}
    (a.out / f"results_{'_'.join(a.models.split(','))}.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
