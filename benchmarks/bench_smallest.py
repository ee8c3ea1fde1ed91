"""``--method smallest`` side by side with nncodec, the ISO/IEC 15938-17 (NNC) reference codec.

    python benchmarks/bench_smallest.py                      # both tools, the four example models
    python benchmarks/bench_smallest.py --models lenet300.pt --drops 0.5,1
    python benchmarks/bench_smallest.py --pipeline "prune:sparsity=0.5,quantize:method=kmeans:k=16,sham"
    python benchmarks/bench_smallest.py --realworld [--only magika]   # second table (long)

nncodec is a benchmark-only tool, never a dependency of nncompress: it needs numpy < 2 and torch,
so it lives in its own environment, which ``_nncodec_worker.py`` runs under (``--nncodec-python``):

    python3 -m venv .venv-nncodec
    .venv-nncodec/bin/pip install nncodec==2.1.3 "numpy<2"

(PyPI's torch and torchvision come with it: about 6 GB. The CPU torch on our disk does not do: the
torchvision wheel nncodec imports links torch's CUDA libraries and fails to import without them.)

Per model (lenet300 and vggmini, .pt and .onnx; accuracy on all 1,000 digits of
``examples/data/mnist_test.npz``, as nncompress's own fidelity report measures it):

- nncodec: the tensors nncompress compresses (``passes.default_select``: kernels; ``--tensors all``
  gives it every float tensor) go, as float32 arrays in the source file's layout, to the worker,
  which codes them at each qp of ``--qps`` (``nnc.compress(..., use_dq=True)``) and decodes them.
  The decoded arrays are put back in the graph and it is run with ``fidelity.run_model`` (torch for
  .pt, onnxruntime for .onnx: the runtimes nncompress's report uses). Its bytes: the bitstream plus
  the raw bytes of the tensors it was not given (biases, norms), i.e. its payload; it stores no
  graph, so there is no file to compare but that.
- nncompress: ``nncompress compress MODEL --method smallest --max-drop X --data DIGITS --json`` for
  each X of ``--drops``, or each ``--pipeline SPEC`` given; bytes, accuracy and drop from the
  report (``totals``, ``fidelity``). Encode time: the whole command's wall time (search, fidelity
  runs and Python start-up included); decode time: reading the .nnc and decoding every tensor to
  a dense array, in this process.

Both choose on the same digits they are scored on (nncompress's search, and picking the best qp of
the sweep). Writes ``benchmarks/out/smallest/``: ``points.json`` (every point and the command),
``table.md`` (every point, then the bytes at <= 0.5 and <= 1 point drop of each tool and their
ratio) and ``plot.png`` (accuracy against bytes, one panel per model).

``--realworld``: each preset at its default budget (no ``--max-drop``) on every file of
``benchmarks/realworld.py``'s corpus (fetched and cached as that script does, in
``benchmarks/out/realworld``): ratio, top-1 agreement and relative output error per file, in
``realworld.json`` and ``realworld.md``. Numbers depend on the machine: rerun, don't quote.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from nncompress.timing import markdown_table

if TYPE_CHECKING:
    from nncompress.inputs import EvalData
    from nncompress.ir.graph import Graph, Weight

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "examples" / "models"
DIGITS = ROOT / "examples" / "data" / "mnist_test.npz"
OUT_DIR = ROOT / "benchmarks" / "out" / "smallest"
WORKER = Path(__file__).resolve().parent / "_nncodec_worker.py"
NNCODEC_PYTHON = ROOT / ".venv-nncodec" / "bin" / "python"
MODELS = ["lenet300.pt", "vggmini.pt", "lenet300.onnx", "vggmini.onnx"]
DROPS = [0.25, 0.5, 1.0, 2.0]
QPS = list(range(-40, -7))  # step 2^(qp/4) (qp_density 2): 0.001 .. 0.25, each 1.19x the last
TARGETS = (0.5, 1.0)  # accuracy drop in points the summary table reads bytes at
SAMPLES = 1000
EPS = 1e-9  # a drop of exactly 0.5 points is within 0.5 (float sums)


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def qp_range(text: str) -> list[int]:
    """``-40:-8:2`` (start:stop:step, stop included) or a comma list ``-38,-30,-20``."""
    if ":" in text:
        start, stop, step = (int(x) for x in text.split(":"))
        return list(range(start, stop + (1 if step > 0 else -1), step))
    return [int(x) for x in text.split(",") if x.strip()]


def nncompress_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "nncompress"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nncompress"]


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:400] if lines else ""


# -- the model side both tools share ---------------------------------------------------------


class Subject:
    """One example model loaded once: its graph, the digits as its inputs, its accuracy."""

    def __init__(self, path: Path, tensors: str) -> None:
        from nncompress.inputs import load_data, signatures
        from nncompress.io import load
        from nncompress.passes import default_select

        self.path = path
        self.graph: Graph = load(path)
        specs, _ = signatures(self.graph)
        self.data: EvalData = load_data(DIGITS, specs, samples=SAMPLES)
        floating = [w for w in self.graph.weights.values() if np.issubdtype(w.dtype, np.floating)]
        # nncompress compresses what default_select accepts; nncodec gets the same set by default
        self.coded: list[Weight] = (
            floating if tensors == "all" else [w for w in floating if default_select(w)]
        )
        names = {w.name for w in self.coded}
        self.rest_bytes = sum(w.array.nbytes for w in self.graph.weights.values() if w.name not in names)
        self.accuracy_before = self.accuracy(self.graph)

    def accuracy(self, graph: Graph) -> float:
        """Top-1 accuracy on the digits, run as nncompress's fidelity runs a model (run_model),
        labels read as ``nncompress eval`` reads them."""
        from nncompress.fidelity import run_model

        out, _, _ = run_model(graph, self.data)
        y = self.data.y
        if y is None:
            raise SystemExit(f"{DIGITS}: no labels (y)")
        labels = y.reshape(len(y), -1).argmax(1) if y.ndim > 1 else y
        return float((out.argmax(1) == labels).mean())

    def with_arrays(self, arrays: list[np.ndarray]) -> Graph:
        """A copy of the graph whose coded tensors hold ``arrays`` (source layout, any float dtype)."""
        from nncompress.ir.graph import apply_layout

        g = self.graph.copy()
        for w, a in zip(self.coded, arrays, strict=True):
            g.weights[w.name].value = apply_layout(a.reshape(w.source_shape), w.layout).astype(w.dtype)
        return g


# -- nncodec ---------------------------------------------------------------------------------


def nncodec_points(s: Subject, python: Path, qps: list[int], work: Path) -> list[dict[str, Any]]:
    """nncodec's sweep over ``qps`` on the subject's coded tensors, each point scored."""
    work.mkdir(parents=True, exist_ok=True)
    npz = work / "in.npz"
    arrays: dict[str, Any] = {
        f"t{i}": np.asarray(w.to_source(), dtype=np.float32) for i, w in enumerate(s.coded)
    }
    np.savez(npz, names=np.array([w.name for w in s.coded]), **arrays)
    cmd = [str(python), str(WORKER), str(npz), str(work), "--qps=" + ",".join(str(q) for q in qps)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(
            f"nncodec worker ({python}) failed: {last_line(res.stderr) or last_line(res.stdout)}"
        )
    points = []
    for p in json.loads(res.stdout.strip().splitlines()[-1]):
        with np.load(p["file"]) as d:
            decoded = [d[f"t{i}"] for i in range(len(s.coded))]
        acc = s.accuracy(s.with_arrays(decoded))
        points.append(
            {
                "model": s.path.name,
                "tool": "nncodec",
                "setting": f"qp={p['qp']}",
                "target": None,
                "coded_bytes": p["bitstream_bytes"],
                "payload_bytes": p["bitstream_bytes"] + s.rest_bytes,
                "file_bytes": None,
                "accuracy_before": s.accuracy_before,
                "accuracy": acc,
                "drop_points": 100 * (s.accuracy_before - acc),
                "encode_s": p["encode_s"],
                "decode_s": p["decode_s"],
                "max_abs_error": max(p["max_abs_error"].values(), default=0.0),
            }
        )
        print(
            f"[nncodec] {s.path.name} qp {p['qp']}: {p['bitstream_bytes']} B, acc {acc:.3f}", file=sys.stderr
        )
    return points


# -- nncompress ------------------------------------------------------------------------------


def decode_seconds(artifact: Path) -> float:
    """Reading ``artifact`` and decoding every tensor to a dense array (what nncodec's decompress does),
    best of three."""
    from nncompress.api import load

    times = []
    for _ in range(3):  # the best of three: the first also pays for imports and cold caches
        t0 = time.perf_counter()
        g = load(artifact)
        for w in g.weights.values():
            w.array  # noqa: B018 - decodes a compressed slot; the value itself is not needed
        times.append(time.perf_counter() - t0)
    return min(times)


def nncompress_point(
    s: Subject, step: list[str], label: str, target: float | None, work: Path
) -> dict[str, Any]:
    """One ``nncompress compress`` run (``step``: the method/pipeline options) scored from its report."""
    work.mkdir(parents=True, exist_ok=True)
    art = work / f"{s.path.stem}{s.path.suffix.replace('.', '_')}.nnc"
    cmd = [
        *nncompress_cmd(),
        "compress",
        str(s.path),
        *step,
        "--data",
        str(DIGITS),
        "--samples",
        str(SAMPLES),
    ]
    cmd += ["-o", str(art), "--json", "--force", "--quiet"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    err = last_line(res.stderr) or last_line(res.stdout)
    if res.returncode != 0 and "smallest" in step and ("smallest" in err or "max-drop" in err):
        raise SystemExit(
            f"nncompress has no --method smallest with --max-drop here ({err}); "
            "run with --pipeline SPEC until it lands"
        )
    try:
        report = json.loads(res.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"nncompress compress {s.path.name} {label}: exit {res.returncode}: {err}") from None
    t, f = report["totals"], report.get("fidelity") or {}
    if "accuracy_after" not in f:
        raise SystemExit(f"nncompress compress {s.path.name} {label}: no accuracy in its report")
    if abs(f["accuracy_before"] - s.accuracy_before) > EPS:  # both tools must be scored alike
        print(
            f"[warn] {s.path.name}: accuracy before {f['accuracy_before']} in nncompress's report, "
            f"{s.accuracy_before} here",
            file=sys.stderr,
        )
    point = {
        "model": s.path.name,
        "tool": "nncompress",
        "setting": label,
        "target": target,
        "coded_bytes": t["payload_bytes"],
        "payload_bytes": t["payload_bytes"],
        "file_bytes": t["output_bytes"],
        "accuracy_before": f["accuracy_before"],
        "accuracy": f["accuracy_after"],
        "drop_points": 100 * f["accuracy_drop"],
        "encode_s": seconds,
        "decode_s": decode_seconds(art) if art.exists() else None,
        "exit_code": res.returncode,
        "failed_gates": report.get("gates") or [],  # sentences, one per failed gate
        "allocation": (report.get("recipe") or {}).get("allocation"),
    }
    print(
        f"[nncompress] {s.path.name} {label}: {t['output_bytes']} B, acc {f['accuracy_after']:.3f}",
        file=sys.stderr,
    )
    return point


# -- tables and plot -------------------------------------------------------------------------


def best_under(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The point of fewest payload bytes whose drop is at most ``target`` points."""
    ok = [p for p in points if p["drop_points"] <= target + EPS]
    return min(ok, key=lambda p: p["payload_bytes"]) if ok else None


def robust_under(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """nncodec's coarsest qp such that it and every finer qp (more bytes) keep ``target``: what one
    gets without the luck of an isolated good point in a sweep whose accuracy is not monotonic."""
    best = None
    for p in sorted(points, key=lambda p: -p["payload_bytes"]):
        if p["drop_points"] > target + EPS:
            break
        best = p
    return best


def summary_rows(points: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    rows = []
    for m in models:
        for target in TARGETS:
            a = best_under([p for p in points if p["model"] == m and p["tool"] == "nncodec"], target)
            b = best_under([p for p in points if p["model"] == m and p["tool"] == "nncompress"], target)
            row: dict[str, Any] = {"model": m, "target": target}
            row["nncodec"] = (
                f"{a['setting']}: {a['payload_bytes']} ({a['coded_bytes']} coded)" if a else "none"
            )
            r = robust_under([p for p in points if p["model"] == m and p["tool"] == "nncodec"], target)
            row["robust"] = f"{r['setting']}: {r['payload_bytes']}" if r else "none"
            row["nncodec_enc_dec"] = f"{a['encode_s']:.2f} / {a['decode_s']:.2f}" if a else ""
            row["nncompress"] = (
                f"{b['setting']}: {b['payload_bytes']} ({b['file_bytes']} file)" if b else "none"
            )
            row["nncompress_enc_dec"] = (
                f"{b['encode_s']:.1f} / {b['decode_s']:.3f}" if b and b["decode_s"] is not None else ""
            )
            row["payload_ratio"] = f"{b['payload_bytes'] / a['payload_bytes']:.3f}" if a and b else ""
            row["file_ratio"] = f"{b['file_bytes'] / a['payload_bytes']:.3f}" if a and b else ""
            rows.append(row)
    return rows


def tables(points: list[dict[str, Any]], models: list[str]) -> str:
    rows = [
        {
            **p,
            "file": "" if p["file_bytes"] is None else p["file_bytes"],
            "tgt": "" if p["target"] is None else p["target"],
            "dec": "" if p["decode_s"] is None else f"{p['decode_s']:.3f}",
        }
        for p in points
    ]
    cols = [
        ("model", "{model}"),
        ("tool", "{tool}"),
        ("setting", "{setting}"),
        ("drop target", "{tgt}"),
        ("payload bytes", "{payload_bytes}"),
        ("file bytes", "{file}"),
        ("accuracy", "{accuracy:.3f}"),
        ("drop (points)", "{drop_points:.1f}"),
        ("encode s", "{encode_s:.2f}"),
        ("decode s", "{dec}"),
    ]
    summary = [
        ("model", "{model}"),
        ("drop <=", "{target}"),
        ("nncodec: setting, payload B", "{nncodec}"),
        ("nncodec, every finer qp within too", "{robust}"),
        ("nncodec enc / dec s", "{nncodec_enc_dec}"),
        ("nncompress: setting, payload B", "{nncompress}"),
        ("nncompress enc / dec s", "{nncompress_enc_dec}"),
        ("payload nncompress/nncodec", "{payload_ratio}"),
        ("file nncompress/nncodec", "{file_ratio}"),
    ]
    return (
        "### Every point\n\n"
        + markdown_table(cols, rows)
        + "\n\n### Fewest bytes at <= 0.5 and <= 1 point drop\n\n"
        + markdown_table(summary, summary_rows(points, models))
    )


def plot(points: list[dict[str, Any]], models: list[str], command: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    cols = 2 if len(models) > 1 else 1
    rows = (len(models) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.2 * rows), squeeze=False)
    for ax, m in zip(axes.flat, models, strict=False):
        before = None
        for tool, style in (("nncodec", "o-"), ("nncompress", "s-")):
            pts = sorted(
                (p for p in points if p["model"] == m and p["tool"] == tool), key=lambda p: p["payload_bytes"]
            )
            if pts:
                before = pts[0]["accuracy_before"]
                ax.plot(
                    [p["payload_bytes"] for p in pts], [p["accuracy"] for p in pts], style, label=tool, ms=4
                )
        if before is not None:
            for target, ls in zip(TARGETS, (":", "--"), strict=True):
                ax.axhline(before - target / 100, color="grey", ls=ls, lw=0.8, label=f"-{target:g} point")
        ax.set_xscale("log")
        ax.set_title(m)
        ax.set_xlabel("payload bytes (log)")
        ax.set_ylabel("accuracy, 1,000 digits")
        if before is not None:
            ax.set_ylim(max(0.0, before - 0.05), before + 0.01)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(models) :]:
        ax.axis("off")
    fig.suptitle(command, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- the second table: presets on the real-world corpus ----------------------------------------


def realworld_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "realworld", Path(__file__).resolve().parent / "realworld.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["realworld"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def default_presets() -> list[str]:
    """Every preset once: aliases with the same recipe text (csr = prune, im = quantize) run once."""
    from nncompress.pipeline.recipe import PRESETS

    seen: dict[str, str] = {}
    for name, text in PRESETS.items():
        seen.setdefault(text, name)
    return list(seen.values())


def realworld(only: list[str], presets: list[str], timeout: float, out: Path) -> list[dict[str, Any]]:
    rw = realworld_module()
    entries = [e for e in rw.CORPUS if not only or e.name in only]
    unknown = set(only) - {e.name for e in rw.CORPUS}
    if unknown:
        raise SystemExit(f"unknown corpus entries: {', '.join(sorted(unknown))}")
    records = []
    for entry in entries:
        step, path = rw.fetch(entry, rw.OUT_DIR, timeout)
        if path is None:
            records.append({"file": entry.name, "preset": "", "ok": False, "error": f"fetch: {step.error}"})
            continue
        for preset in presets:
            art = out / "realworld-work" / entry.name / f"{preset}.nnc"
            art.parent.mkdir(parents=True, exist_ok=True)
            cmd = [*nncompress_cmd(), "compress", str(path), "--method", preset, "-o", str(art)]
            st, stdout = rw.run_step([*cmd, "--json", "--force", "--quiet"], timeout)
            rec: dict[str, Any] = {"file": entry.name, "preset": preset, "ok": st.ok, "seconds": st.seconds}
            rec["error"] = st.error
            try:
                report = json.loads(stdout) if stdout.strip() else {}
            except json.JSONDecodeError:
                report = {}
            t, f = report.get("totals") or {}, report.get("fidelity") or {}
            rec.update(
                input_bytes=t.get("input_bytes"),
                output_bytes=t.get("output_bytes"),
                ratio=t.get("ratio"),
                top1_agreement=f.get("top1_agreement"),
                rel_error_mean=f.get("rel_error_mean"),
                failed_gates=report.get("gates") or [],
                fidelity_not_measured=report.get("fidelity_not_measured"),  # why, for weights-only files
            )
            records.append(rec)
            # each record as it comes: a run stopped part way keeps what it measured
            with (out / "realworld-partial.jsonl").open("a") as f:
                f.write(json.dumps(rec) + "\n")
            art.unlink(missing_ok=True)
            print(
                f"[realworld] {entry.name} {preset}: {'ok' if st.ok else st.error}",
                file=sys.stderr,
                flush=True,
            )
    return records


def realworld_table(records: list[dict[str, Any]]) -> str:
    def cell(x: Any, spec: str) -> str:
        return "" if x is None else format(x, spec)

    rows = [
        {
            "file": r["file"],
            "preset": r["preset"],
            "ratio": cell(r.get("ratio"), ".2f"),
            "agree": cell(r.get("top1_agreement"), ".3f"),
            "rel": cell(r.get("rel_error_mean"), ".4f"),
            "s": cell(r.get("seconds"), ".1f"),
            "note": (r["error"] if not r["ok"] else r.get("fidelity_not_measured") or "").replace("|", "/")[
                :120
            ],
        }
        for r in records
    ]
    cols = [
        ("file", "{file}"),
        ("preset", "{preset}"),
        ("ratio", "{ratio}"),
        ("top-1 agreement", "{agree}"),
        ("rel. error (mean)", "{rel}"),
        ("seconds", "{s}"),
        ("failure, or why no fidelity", "{note}"),
    ]
    return markdown_table(cols, rows)


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated, from examples/models")
    ap.add_argument("--drops", type=floats, default=DROPS, help="--max-drop values of the smallest sweep")
    ap.add_argument("--pipeline", action="append", default=[], help="run these specs instead of smallest")
    ap.add_argument("--qps", type=qp_range, default=QPS, help="nncodec qps: start:stop:step or a list")
    ap.add_argument("--tensors", choices=["selected", "all"], default="selected", help="what nncodec codes")
    ap.add_argument("--nncodec-python", type=Path, default=NNCODEC_PYTHON, help="python with nncodec")
    ap.add_argument("--skip", choices=["nncodec", "nncompress"], action="append", default=[])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument(
        "--replot", action="store_true", help="rewrite table.md and plot.png from --out's points.json"
    )
    ap.add_argument("--realworld", action="store_true", help="the presets on the real-world corpus instead")
    ap.add_argument("--only", action="append", default=[], help="--realworld: corpus entry (repeatable)")
    ap.add_argument("--presets", default="", help="--realworld: comma-separated (default: every preset)")
    ap.add_argument("--timeout", type=float, default=900.0, help="--realworld: seconds per command")
    args = ap.parse_args(args_in)
    command = "python benchmarks/bench_smallest.py " + shlex.join(args_in)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.out.mkdir(parents=True, exist_ok=True)

    if args.realworld:
        presets = [p for p in args.presets.split(",") if p] or default_presets()
        records = realworld(args.only, presets, args.timeout, args.out)
        md = realworld_table(records)
        print(md)
        suffix = "" if not args.only else "-" + "-".join(args.only)
        (args.out / f"realworld{suffix}.md").write_text(f"{stamp}\n\n`{command}`\n\n{md}\n")
        payload = {"date": stamp, "command": command, "presets": presets, "records": records}
        (args.out / f"realworld{suffix}.json").write_text(json.dumps(payload, indent=1))
        return 0

    if args.replot:
        saved = json.loads((args.out / "points.json").read_text())
        models = list(dict.fromkeys(p["model"] for p in saved["points"]))
        write_results(saved["points"], models, saved["command"], saved["date"], saved["tensors"], args.out)
        return 0
    models = [m for m in args.models.split(",") if m]
    missing = [m for m in models if not (MODELS_DIR / m).exists()]
    if missing:
        ap.error(f"not in {MODELS_DIR}: {', '.join(missing)}")
    if "nncodec" not in args.skip and not args.nncodec_python.exists():
        ap.error(f"{args.nncodec_python} does not exist: make it as the docstring says, or --skip nncodec")
    steps: list[tuple[list[str], str, float | None]]
    if args.pipeline:
        steps = [(["--pipeline", p], p, None) for p in args.pipeline]
    else:
        steps = [
            (["--method", "smallest", "--max-drop", f"{d:g}"], f"smallest --max-drop {d:g}", d)
            for d in args.drops
        ]
    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-smallest-") as tmp:
        for m in models:
            s = Subject(MODELS_DIR / m, args.tensors)
            print(
                f"[model] {m}: accuracy {s.accuracy_before:.3f}, {len(s.coded)} tensors coded",
                file=sys.stderr,
            )
            if "nncodec" not in args.skip:
                points += nncodec_points(s, args.nncodec_python, args.qps, Path(tmp) / m)
            if "nncompress" not in args.skip:
                points += [nncompress_point(s, step, label, t, Path(tmp)) for step, label, t in steps]
    payload = {"date": stamp, "command": command, "tensors": args.tensors, "points": points}
    (args.out / "points.json").write_text(json.dumps(payload, indent=1))
    write_results(points, models, command, stamp, args.tensors, args.out)
    return 0


def write_results(
    points: list[dict[str, Any]], models: list[str], command: str, stamp: str, tensors: str, out: Path
) -> None:
    md = tables(points, models)
    print(md)
    note = "nncodec codes the tensors nncompress compresses (passes.default_select)"
    if tensors == "all":
        note = "nncodec codes every float tensor"
    (out / "table.md").write_text(
        f"{stamp}\n\n`{command}`\n\n{note}; its payload adds the rest raw.\n\n{md}\n"
    )
    plot(points, models, command, out / "plot.png")
    print(f"wrote {out}/points.json, table.md, plot.png", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
