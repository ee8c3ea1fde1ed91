"""`nncompress sweep`: each method over a range of its one setting, file bytes against fidelity.

A method is a preset (`pipeline.recipe.PRESETS`) and its setting is the preset's knob
(`pipeline.knobs.KNOBS`: sparsity, k, budget or step). Each point compresses the model by the
preset's pipeline with that knob set for every tensor, written as ``--pipeline`` text: no fidelity
budget backs anything off, so the table shows the raw trade-off. The original file is a point too.

Every finished point is saved at once as ``DIR/points/<id>.json`` (written atomically, with the
options it was made under) beside its artifact ``DIR/artifacts/<id>.nnc``; a rerun into the same
folder reuses the points whose options match, so an interrupted sweep resumes. Points may run in
worker processes (``jobs``); each point is computed alone from the same inputs and seed, so the
report does not depend on how many ran at once.

    rep = sweep("vggmini.onnx", "sweep/", data="mnist_test.npz", methods=["sham", "ham"])
    [(p["id"], p["file_bytes"], p["pareto"]) for p in rep["points"]]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nncompress.errors import NNCError, OutputError, UsageError

SCHEMA = "nncompress.sweep/1"
POINT_SCHEMA = "nncompress.sweep-point/1"

# Each family, quick on small models: pruning alone and with sharing and coding, sharing and coding,
# rate-distortion quantization with arithmetic coding, and two structured approximations. psm and
# sss fit slowly (vggmini: 54 s and 13 s a point), so they run only when asked for.
DEFAULT_METHODS = ("sham", "prune", "ham", "smallest", "lowrank", "dct")

# The values of each knob a sweep tries (mildest first): a subset of the budget search's values
# (`pipeline.knobs`), spread so that a curve has five to seven points.
DEFAULT_VALUES: dict[str, tuple[int | float, ...]] = {
    "sparsity": (0.5, 0.7, 0.8, 0.9, 0.95),
    "k": (256, 64, 32, 16, 8, 4),
    "budget": (0.5, 0.3, 0.2, 0.1),
    # half octaves of the tensor's RMS, from about 6 bits a weight to about 2
    "step": (0.125, 0.176777, 0.25, 0.353553, 0.5, 0.707107, 1.0),
}

ORIGINAL = "original"
FIDELITY_KEYS = (
    "accuracy",
    "accuracy_drop",
    "accuracy_drop_ci95",
    "top1_agreement",
    "top1_agreement_ci95",
    "rel_error_mean",
    "rel_error_max",
)


@dataclass(frozen=True)
class Setting:
    """One point to make: ``method`` with its knob ``option`` at ``value``, as ``pipeline`` text."""

    method: str
    option: str
    value: int | float
    pipeline: str

    @property
    def id(self) -> str:
        return f"{self.method}-{value_text(self.value)}"


def value_text(v: int | float) -> str:
    """A setting as the pipeline text and the file names write it (shortest exact form)."""
    return str(v) if isinstance(v, int) else repr(float(v))


def pipeline_at(method: str, value: int | float) -> str:
    """The pipeline of preset ``method`` with its knob set to ``value`` for every tensor.

    ``pipeline_at("sham", 0.9)`` is ``"prune:sparsity=0.9:scope=global,quantize:method=kmeans:k=32,sham"``:
    the preset's own steps and options, only the knob changed (added to the step that takes it when
    the preset leaves it at the default, as ``lowrank`` does with its budget).
    """
    from nncompress.pipeline.knobs import KNOBS
    from nncompress.pipeline.recipe import PRESETS
    from nncompress.pipeline.steps import all_steps

    option = KNOBS[method].option
    steps = [s.split(":") for s in PRESETS[method].split(",")]
    hits = [p for p in steps if any(o.partition("=")[0] == option for o in p[1:])]
    if not hits:  # the preset leaves the knob at its default: add it to the step that has it
        hits = [p for p in steps if option in {f.name for f in _fields(all_steps()[p[0]].Options)}]
    if len(hits) != 1:
        raise AssertionError(f"preset {method!r} has {len(hits)} steps with {option!r}")
    step = hits[0]
    text = f"{option}={value_text(value)}"
    if any(o.partition("=")[0] == option for o in step[1:]):
        step[1:] = [text if o.partition("=")[0] == option else o for o in step[1:]]
    else:
        step.append(text)
    return ",".join(":".join(p) for p in steps)


def _fields(options: type) -> Iterable[Any]:
    import dataclasses

    return dataclasses.fields(options)


def _number(option: str, raw: str, where: str) -> int | float:
    try:
        return int(raw) if option == "k" else float(raw)
    except ValueError:
        want = "an integer" if option == "k" else "a number"
        raise UsageError(f"{where}: {raw!r} is not {want} (the {option} of each point)") from None


def parse_values(text: str, option: str, where: str) -> tuple[int | float, ...]:
    """``"0.5,0.9"`` -> (0.5, 0.9), typed for the knob (k is an integer); repeats dropped."""
    vals = [_number(option, t.strip(), where) for t in text.split(",") if t.strip()]
    if not vals:
        raise UsageError(f"{where}: no values given")
    return tuple(dict.fromkeys(vals))


def settings(
    methods: Sequence[str] | None = None,
    values: Mapping[str, Sequence[int | float]] | None = None,
    budgets: Sequence[float] | None = None,
) -> list[Setting]:
    """The points of a sweep, in report order, each pipeline checked before anything runs.

    ``values`` sets a method's values; ``budgets`` those of every structured method (lowrank, sss,
    dct, psm) that ``values`` does not name; the rest get `DEFAULT_VALUES` of their knob.
    """
    from nncompress.pipeline.knobs import KNOBS
    from nncompress.pipeline.steps import parse_steps

    names = list(dict.fromkeys(methods or DEFAULT_METHODS))
    if not names:
        raise UsageError("--methods names no method", hint=f"Methods: {', '.join(KNOBS)}")
    for m in names:
        if m not in KNOBS:
            raise UsageError(f"unknown method {m!r}", hint=f"Methods: {', '.join(KNOBS)}")
    values = dict(values or {})
    for m in values:
        if m not in names:
            raise UsageError(
                f"--values names {m!r}, which is not among the methods swept ({', '.join(names)})",
                hint="Add it to --methods",
            )
    structured = [m for m in names if KNOBS[m].option == "budget"]
    if budgets is not None and not structured:
        raise UsageError(
            "--budgets applies to the structured methods (lowrank, sss, dct, psm); none is swept",
            hint="Add one to --methods, or use --values METHOD=V1,V2 for the others",
        )
    out: list[Setting] = []
    for m in names:
        option = KNOBS[m].option
        vals = values.get(m)
        if vals is None and budgets is not None and option == "budget":
            vals = budgets
        for v in vals if vals is not None else DEFAULT_VALUES[option]:
            s = Setting(m, option, v, pipeline_at(m, v))
            try:
                parse_steps(s.pipeline)  # range checks of the option schema, before any work
            except UsageError as e:
                raise UsageError(f"{m} at {option}={value_text(v)}: {e.detail}") from None
            out.append(s)
    return out


@dataclass(frozen=True)
class _Job:
    """What a worker needs to make one point (picklable: it crosses to worker processes)."""

    model: str
    data: str | None
    samples: int | None
    shapes: tuple[tuple[str | None, tuple[int | None, ...]], ...]
    seed: int
    trust_pickle: bool
    out: str
    key: dict[str, Any]
    setting: Setting | None  # None: the original


def _digest(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fidelity(fid: dict[str, Any] | None) -> dict[str, Any] | None:
    """The figures a point keeps (the rest of `fidelity.figures` is the same for every point)."""
    if fid is None:
        return None
    out = {"accuracy": fid.get("accuracy_after"), **{k: fid.get(k) for k in FIDELITY_KEYS[1:]}}
    return {k: v for k, v in out.items() if v is not None}


def _write_json(path: Path, obj: Any) -> None:
    from nncompress.io._atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def _make(job: _Job) -> dict[str, Any]:
    """Make one point (in this process or a worker), save it, and return its record.

    A user error of this point alone (a model the compressed graph no longer runs...) is recorded as
    the point's error, not raised, and not saved, so that a rerun tries it again.
    """
    if not os.environ.get("NNCOMPRESS_DEBUG"):
        import warnings

        warnings.simplefilter("ignore")  # as the CLI does: library chatter is not for the user
    out = Path(job.out)
    s = job.setting
    base: dict[str, Any] = {
        "id": s.id if s else ORIGINAL,
        "method": s.method if s else ORIGINAL,
        "option": s.option if s else None,
        "value": s.value if s else None,
        "pipeline": s.pipeline if s else None,
    }
    try:
        point = {**base, **(_compressed(job, s, out) if s else _original(job))}
    except NNCError as e:
        return {**base, "error": e.one_line()}
    _write_json(
        out / "points" / f"{base['id']}.json", {"schema": POINT_SCHEMA, "key": job.key, "point": point}
    )
    return point


def _original(job: _Job) -> dict[str, Any]:
    from nncompress.fidelity import figures, reference
    from nncompress.io import load

    graph = load(job.model, trust_pickle=job.trust_pickle)
    ref = reference(graph, data_path=job.data, samples=job.samples, seed=job.seed, shapes=dict(job.shapes))
    fid = None
    if ref.out is not None and ref.data is not None:
        fid = figures(ref.out, ref.out, ref.data, ref.runtime, ref.output)
        fid["accuracy_after"] = fid.get("accuracy_before")
    return {
        "artifact": None,
        "file_bytes": Path(job.model).stat().st_size,
        "ratio": 1.0,
        "payload_bytes": None,
        "fidelity": _fidelity(fid),
        "fidelity_not_measured": ref.reason if fid is None else None,
        "runtime": ref.runtime if fid is not None else None,
        "samples": fid["samples"] if fid is not None else None,
        "data": fid["data"] if fid is not None else None,
        "notes": list(graph.meta.notes) + ref.notes,
    }


def _compressed(job: _Job, s: Setting, out: Path) -> dict[str, Any]:
    from nncompress.pipeline.run import compress, save

    r = compress(
        job.model,
        pipeline=s.pipeline,
        data=job.data,
        samples=job.samples,
        input_shapes=dict(job.shapes),
        seed=job.seed,
        trust_pickle=job.trust_pickle,
    )
    assert r.path is not None
    rel = f"artifacts/{s.id}.nnc"
    save(r, out / rel, force=True)  # a stale artifact of this id is ours to replace
    shutil.rmtree(r.path.parent, ignore_errors=True)  # its temp folder would wait for the exit
    tot = r.report["totals"]
    return {
        "artifact": rel,
        "file_bytes": tot["output_bytes"],
        "ratio": tot["ratio"],
        "payload_bytes": tot["payload_bytes"],
        "fidelity": _fidelity(r.fidelity),
        "fidelity_not_measured": r.report.get("fidelity_not_measured"),
        "notes": r.notes,
    }


def _saved(out: Path, pid: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The saved point ``pid`` if it was made under ``key`` and its artifact is there, else None."""
    from nncompress.io._json import JSONError, loads

    try:
        doc = loads((out / "points" / f"{pid}.json").read_bytes())
    except (OSError, JSONError):
        return None  # absent, or cut short by a crash: made again
    if not isinstance(doc, dict) or doc.get("schema") != POINT_SCHEMA or doc.get("key") != key:
        return None
    point = doc.get("point")
    if not isinstance(point, dict) or point.get("id") != pid:
        return None
    art = point.get("artifact")
    if art is not None:
        try:
            if (out / str(art)).stat().st_size != point.get("file_bytes"):
                return None
        except OSError:
            return None
    return point


def _check_dir(out: Path, force: bool) -> None:
    """A sweep writes into a new or empty folder, or one a sweep made (to resume); others need force."""
    if out.exists() and not out.is_dir():
        raise OutputError("the output exists and is not a folder", path=str(out), hint="Give a folder path")
    if out.is_dir() and not force:
        ours = (out / "sweep.json").is_file() or (out / "points").is_dir()
        if not ours and any(out.iterdir()):
            raise OutputError(
                "the output folder holds files that are not a sweep's",
                path=str(out),
                hint="Choose a new or empty folder, or pass --force to write into it",
            )
    try:
        (out / "points").mkdir(parents=True, exist_ok=True)
        (out / "artifacts").mkdir(exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot make the output folder ({e.strerror})", path=str(out)) from None


def pareto(points: Sequence[dict[str, Any]], measure: str) -> set[str]:
    """The ids of the points no other point beats: none is as small and as faithful, and better in one."""
    xy = [
        (p["id"], p["file_bytes"], p["fidelity"][measure])
        for p in points
        if p.get("fidelity") and p["fidelity"].get(measure) is not None
    ]
    return {i for i, x, y in xy if not any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for _, x2, y2 in xy)}


def sweep(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    methods: Sequence[str] | None = None,
    values: Mapping[str, Sequence[int | float]] | None = None,
    budgets: Sequence[float] | None = None,
    samples: int | None = None,
    input_shapes: dict[str | None, tuple[int | None, ...]] | None = None,
    seed: int = 0,
    jobs: int = 1,
    trust_pickle: bool = False,
    force: bool = False,
    plot: bool = True,
    on_point: Callable[[dict[str, Any], bool, int], None] | None = None,
) -> dict[str, Any]:
    """Sweep ``model`` into the folder ``out`` and return the report (schema ``nncompress.sweep/1``,
    docs/sweep-schema.md), also written there as sweep.json, with sweep.md and the plots.

    ``on_point(point, reused, total)`` is called as each point is done (in the order they finish).
    ``force`` remakes every point and allows a folder holding other files.
    """
    from nncompress import __version__
    from nncompress.errors import InputError

    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    plan = settings(methods, values, budgets)
    src = Path(model)
    if not src.is_file():
        raise InputError("no such model file", path=str(src))
    if data is not None and not Path(data).is_file():
        raise InputError("no such data file", path=str(data))
    dest = Path(out)
    _check_dir(dest, force)
    shapes = tuple(sorted((input_shapes or {}).items(), key=lambda kv: (kv[0] is not None, kv[0] or "")))
    # what a point depends on: a saved point made under the same is reused
    common = {
        "model_sha256": _digest(src),
        "data_sha256": _digest(data) if data is not None else None,
        "samples": samples,
        "seed": seed,
        "input_shapes": [[k, list(v)] for k, v in shapes],
        "nncompress": __version__,
    }

    def job(s: Setting | None) -> _Job:
        key = {**common, "pipeline": s.pipeline if s else None}
        return _Job(
            str(src),
            None if data is None else str(data),
            samples,
            shapes,
            seed,
            trust_pickle,
            str(dest),
            key,
            s,
        )

    jobs_all = [job(None)] + [job(s) for s in plan]
    total = len(jobs_all)
    done: dict[str, dict[str, Any]] = {}
    todo: list[_Job] = []
    for j in jobs_all:
        pid = j.setting.id if j.setting else ORIGINAL
        hit = None if force else _saved(dest, pid, j.key)
        if hit is not None:
            done[pid] = hit
            if on_point:
                on_point(hit, True, total)
        else:
            todo.append(j)
    # the original first, here: a model or data file nothing can read fails before any work
    if todo and todo[0].setting is None:
        first = _make(todo.pop(0))
        if "error" in first:
            raise InputError(first["error"])
        done[ORIGINAL] = first
        if on_point:
            on_point(first, False, total)
    for point in _run(todo, jobs):
        done[point["id"]] = point
        if on_point:
            on_point(point, False, total)
    points = [done[j.setting.id if j.setting else ORIGINAL] for j in jobs_all]
    report = _report(src, dest, data, seed, samples, points)
    if plot:
        report["plots"], note = draw(report, dest)
        if note:
            report["notes"].append(note)
    for name in ("sweep.png", "sweep.svg"):
        if name not in report["plots"]:  # an earlier run's plot would no longer match the report
            (dest / name).unlink(missing_ok=True)
    _write_json(dest / "sweep.json", report)
    from nncompress.io._atomic import atomic_path

    with atomic_path(dest / "sweep.md") as tmp:
        tmp.write_text(table(report))
    return report


def _run(todo: list[_Job], jobs: int) -> Iterable[dict[str, Any]]:
    """Each job's point as it finishes: here one after another, or in ``jobs`` worker processes."""
    if jobs == 1 or len(todo) <= 1:
        for j in todo:
            yield _make(j)
        return
    import multiprocessing

    from nncompress._tempfiles import sweep as remove_stale

    # spawn, not fork: a forked child would inherit onnxruntime's and BLAS's threads mid-state
    pool = multiprocessing.get_context("spawn").Pool(min(jobs, len(todo)), initializer=_worker_init)
    try:
        yield from pool.imap_unordered(_make, todo)
        pool.close()
    except BaseException:
        # Ctrl-C or an error: stop the points in progress now (what they had finished is saved)
        pool.terminate()
        raise
    finally:
        pool.join()
        # Worker processes end without running atexit, so the temp folders they made (skeletons)
        # would wait for the next run: remove those of processes now gone.
        remove_stale()


def _worker_init() -> None:
    """Ctrl-C reaches the whole process group: the parent alone answers it, by ending the workers
    (each would otherwise print its own KeyboardInterrupt traceback)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _report(
    src: Path,
    dest: Path,
    data: str | os.PathLike[str] | None,
    seed: int,
    samples: int | None,
    points: list[dict[str, Any]],
) -> dict[str, Any]:
    orig = points[0]
    ofid = orig.get("fidelity") or {}
    measure = "accuracy" if "accuracy" in ofid else "top1_agreement" if ofid else None
    front = pareto(points, measure) if measure else set()
    notes: list[str] = []
    if measure is None:
        notes.append(f"fidelity not measured: {orig.get('fidelity_not_measured')}; no front, no plot")
    elif measure == "top1_agreement":
        why = "the data has none" if data is not None else "seeded random inputs"
        notes.append(f"no labels ({why}): points are compared by top-1 agreement with the original")
    failed = [p["id"] for p in points if "error" in p]
    if failed:
        notes.append(f"{len(failed)} point(s) failed: {', '.join(failed)} (see each point's error)")
    methods: dict[str, dict[str, Any]] = {}
    for p in points[1:]:
        m = methods.setdefault(p["method"], {"method": p["method"], "option": p["option"], "values": []})
        m["values"].append(p["value"])
    return {
        "schema": SCHEMA,
        "input": str(src),
        "input_bytes": orig.get("file_bytes", src.stat().st_size),
        "output": str(dest),
        "data": orig.get("data") if data is not None else None,
        "samples": orig.get("samples"),
        "runtime": orig.get("runtime"),
        "seed": seed,
        "measure": measure,
        "methods": list(methods.values()),
        "points": [{**p, "pareto": p["id"] in front} for p in points],
        "pareto": [p["id"] for p in sorted(points, key=lambda p: p.get("file_bytes", 0)) if p["id"] in front],
        "plots": [],
        "table": "sweep.md",
        "notes": notes,
    }


def _pct(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{100 * v:.{digits}f} %"


def _setting(p: dict[str, Any]) -> str:
    return "" if p["value"] is None else f"{p['option']}={value_text(p['value'])}"


def table(report: dict[str, Any]) -> str:
    """sweep.md: the points in run order, then the Pareto front from the smallest file up."""
    from nncompress._text import human_bytes

    name = Path(report["input"]).name
    lines = [f"# nncompress sweep: {name}", ""]
    if report["measure"] is not None:
        where = report["data"] or "seeded random inputs"
        lines += [
            f"Fidelity on {report['samples']} samples of {where} in {report['runtime']}, seed {report['seed']}."
        ]
    lines += [
        "Bytes are whole files (the original model, then each `.nnc`). Front: on the Pareto front",
        "(no other point is as small and as faithful, and better in one).",
        "",
        "| method | setting | file bytes | size | ratio | accuracy | drop, points (95 %) | top-1 agreement | rel. error | front |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for p in report["points"]:
        if "error" in p:
            lines.append(f"| {p['method']} | {_setting(p)} | failed: {p['error']} | | | | | | | |")
            continue
        f = p.get("fidelity") or {}
        drop = f.get("accuracy_drop")
        ci = f.get("accuracy_drop_ci95")
        drop_s = "" if drop is None else f"{100 * drop:.2f}"
        if drop is not None and ci is not None and p["id"] != ORIGINAL:
            drop_s += f" ({100 * ci[0]:.2f} to {100 * ci[1]:.2f})"
        err = f.get("rel_error_mean")
        lines.append(
            f"| {p['method']} | {_setting(p)} | {p['file_bytes']:,} | {human_bytes(p['file_bytes'])} "
            f"| {p['ratio']:.2f} | {_pct(f.get('accuracy'))} | {drop_s} "
            f"| {_pct(f.get('top1_agreement'), 1)} | {'' if err is None else f'{err:.4f}'} "
            f"| {'*' if p['pareto'] else ''} |"
        )
    if report["pareto"]:
        lines += ["", "Pareto front, smallest file first: " + ", ".join(report["pareto"]) + "."]
    for n in report["notes"]:
        lines += ["", f"Note: {n}"]
    return "\n".join(lines) + "\n"


def draw(report: dict[str, Any], dest: Path) -> tuple[list[str], str | None]:
    """sweep.png and sweep.svg in ``dest``: fidelity against file bytes (log), one line per method,
    the original as a star, the Pareto front as a grey staircase with ringed points.

    Returns the files written and a note when none could be (no matplotlib, nothing measured).
    """
    if report["measure"] is None:
        return [], None  # the report's notes say why already
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return [], "no plot: matplotlib is not installed (pip install 'nncompress[plot]')"
    measure = report["measure"]
    label = "accuracy (%)" if measure == "accuracy" else "top-1 agreement with the original (%)"
    pts = [
        p for p in report["points"] if "error" not in p and (p.get("fidelity") or {}).get(measure) is not None
    ]
    orig = next((p for p in pts if p["id"] == ORIGINAL), None)
    # Two panels sharing the bytes axis: the whole range, where collapsed points show, and a close
    # look at the few points near the original, where the choice is made.
    with plt.rc_context({"svg.hashsalt": "nncompress-sweep", "font.size": 8}):
        fig, (near, whole) = plt.subplots(
            2, 1, sharex=True, figsize=(7.5, 7), gridspec_kw={"height_ratios": [3, 2]}
        )
        front = sorted((p for p in pts if p["pareto"]), key=lambda p: p["file_bytes"])
        for ax in (near, whole):
            if front:
                xs = [p["file_bytes"] for p in front]
                ys = [100 * p["fidelity"][measure] for p in front]
                right = max(p["file_bytes"] for p in pts)  # beyond its last point the front stays level
                ax.step(
                    [*xs, right],
                    [*ys, ys[-1]],
                    where="post",
                    color="0.6",
                    lw=2.5,
                    zorder=1,
                    label="Pareto front",
                )
                ax.scatter(xs, ys, s=90, facecolors="none", edgecolors="0.3", lw=1.2, zorder=3)
            for m in report["methods"]:
                mp = [p for p in pts if p["method"] == m["method"]]
                if not mp:
                    continue
                xs = [p["file_bytes"] for p in mp]
                ys = [100 * p["fidelity"][measure] for p in mp]
                (line,) = ax.plot(
                    xs, ys, marker="o", ms=4, lw=1, zorder=2, label=f"{m['method']} ({m['option']})"
                )
                if ax is near:
                    for p, x, y in zip(mp, xs, ys, strict=True):
                        ax.annotate(
                            f"{p['value']:.3g}",
                            (x, y),
                            xytext=(3, 3),
                            textcoords="offset points",
                            fontsize=6,
                            color=line.get_color(),
                        )
            if orig is not None:
                y0 = 100 * orig["fidelity"][measure]
                ax.scatter(
                    [orig["file_bytes"]], [y0], marker="*", s=160, color="k", zorder=4, label="original"
                )
                ax.axhline(y0, color="k", lw=0.5, ls=":", zorder=0)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_bytes_tick))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.grid(True, which="both", lw=0.3, alpha=0.5)
        if orig is not None:
            y0 = 100 * orig["fidelity"][measure]
            top = max(100 * p["fidelity"][measure] for p in pts)
            near.set_ylim(y0 - 5, max(top, y0) + 0.5)  # five points below the original
        whole.set_ylim(0, 100.5)
        near.set_ylabel(f"{label}, near the original")
        whole.set_ylabel(label)
        whole.set_xlabel("file bytes (log scale)")
        where = report["data"] or "random inputs"
        near.set_title(f"{Path(report['input']).name}: {measure.replace('_', ' ')} against size ({where})")
        whole.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        written = []
        for name, meta in (
            ("sweep.png", {"Software": None}),
            ("sweep.svg", {"Date": None, "Creator": None}),
        ):
            # no tool version or date in the files: the same report gives the same bytes
            from nncompress.io._atomic import atomic_path

            with atomic_path(dest / name) as tmp:
                fig.savefig(tmp, format=name.rsplit(".", 1)[1], metadata=meta, dpi=120)
            written.append(name)
        plt.close(fig)
    return written, None


def _bytes_tick(x: float, _pos: int) -> str:
    """A file size on the log axis in decimal units: 20 kB, 1 MB."""
    for div, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if x >= div:
            return f"{x / div:g} {unit}"
    return f"{x:g} B"
