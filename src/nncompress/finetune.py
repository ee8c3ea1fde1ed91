"""Fine-tuning a compressed graph by distillation from the original (`compress --finetune`, `finetune`).

The compressed graph becomes a PyTorch module (`nncompress.torch.graph.to_torch`) whose compressed
slots are the format's own trainable representation (`nncompress.torch`): a codebook with its
assignments fixed, a sparse matrix's values with its pattern fixed, a structured format's factors
with their supports fixed. Training moves only those values (and the plain float weights: biases,
normalization scales), so every weight re-encodes in the format it had.

The loss is distillation on the compared output (the first floating-point one, as fidelity uses):
on class scores, KL divergence between the original's and the compressed model's softened
distributions (temperature T, scaled by T^2, Hinton et al.), plus cross-entropy on the labels when
the data has them; probabilities (a softmax at the end of the model) are taken as they are, through
their logarithm. On one-value outputs, mean squared error relative to the original's mean square.

Each stage's learning rate decays from ``lr`` to 0 on a cosine. Where a recipe prunes and then
shares, the first stage (`pretrain_pruned`) trains the plain weights while the cut deepens gradually
to the recipe's sparsity, the second trains the shared values (Han et al.'s staging).

Deterministic for a seed on one machine: batches are drawn from a seeded permutation, torch's
generator is seeded, and nothing depends on timing. A GPU is used when torch sees one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nncompress.errors import InputError, UnsupportedError, UsageError
from nncompress.inputs import EvalData, load_data, signatures
from nncompress.ir import Graph, Weight
from nncompress.progress import SILENT, Progress

# Rows of training data a step takes when the user does not say: small enough for CPU steps to stay
# quick, large enough for the Adam moments to be meaningful.
DEFAULT_BATCH = 64
TEMPERATURE = 2.0
# Gradual pruning in the first stage (Zhu & Gupta 2017, "To prune, or not to prune"): the sparsity
# rises as 1 - (1 - t)^3 over the first PRUNE_SHARE of the steps, in PRUNE_POINTS steps, so that
# the weights left adapt while the cut deepens; the rest of the steps train at the final mask. At
# 97 % one cut at the start loses what the rest of the training cannot win back.
PRUNE_SHARE = 0.5
PRUNE_POINTS = 8


@dataclass(frozen=True)
class TrainOptions:
    """What `--finetune` takes: the data file and the schedule."""

    data: str
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = DEFAULT_BATCH
    seed: int = 0
    temperature: float = TEMPERATURE
    # cosine: the rate decays from lr to 0 over each stage's steps (Loshchilov & Hutter's SGDR
    # without restarts); the last steps then settle the values instead of jumping around a minimum
    schedule: Literal["cosine", "constant"] = "cosine"

    def check(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")


@dataclass
class TrainData:
    """The training rows in the model's layout, with the original's outputs on them."""

    data: EvalData
    targets: np.ndarray | None  # the original model's compared output per row (None: labels only)
    notes: list[str] = field(default_factory=list)


def load_train(
    graph: Graph,
    path: str | os.PathLike[str],
    *,
    shapes: dict[str | None, tuple[int | None, ...]] | None = None,
) -> EvalData:
    """Every row of ``path`` (an .npz like --data: one array per input, ``y`` labels) fitted to the
    model's inputs."""
    if not graph.has_graph:
        raise UnsupportedError(
            "fine-tuning needs the model's graph; this is a weights-only file", path=graph.meta.path or None
        )
    specs, _ = signatures(graph, shapes or {})
    data = load_data(path, specs, samples=1 << 62)
    if data.n < 1:
        raise InputError("holds no training rows", path=str(path), hint="Save at least one row per input")
    return data


def teacher_outputs(graph: Graph, data: EvalData, *, batch: int, progress: Progress = SILENT) -> np.ndarray:
    """The original model's compared output on every training row (run in torch, no gradient)."""
    import torch

    from nncompress.torch.feeds import compared_output, pick, take_rows
    from nncompress.torch.graph import to_torch

    module = to_torch(graph).eval()
    dev = _device()
    module.to(dev)
    k = compared_output(graph)
    outs = []
    progress.stage("fine-tuning: the original's outputs", data.n)
    with torch.no_grad():
        for i in range(0, data.n, batch):
            j = min(i + batch, data.n)
            out = pick(module(take_rows(data, np.arange(i, j), dev)), k)
            outs.append(out.detach().to("cpu", torch.float32).numpy())
            progress.advance(j - i)
    return np.concatenate(outs, axis=0)


def train(
    g2: Graph,
    train_data: TrainData,
    opts: TrainOptions,
    *,
    keep_zeros: Callable[[str], bool] = lambda name: False,
    prune: Callable[[float, dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Fine-tune ``g2`` in place (its slots get the trained formats and arrays); the figures.

    ``keep_zeros(name)``: a plain weight whose zeros must stay zeros (pruned and stored as is).
    ``prune(t, weights)``: gradual pruning; called at a few points of training with ``t`` the share
    of the steps done and the current values of the plain weights ``keep_zeros`` names, it returns
    the masks (True: pruned) those weights get from then on (`pretrain_pruned`).
    """
    import torch

    from nncompress.torch import CompressedWeight
    from nncompress.torch.feeds import compared_output, pick, take_rows
    from nncompress.torch.graph import to_torch

    opts.check()
    data, targets = train_data.data, train_data.targets
    if targets is None and data.y is None:
        raise UsageError(
            "fine-tuning needs the original model's outputs or labels: the data has no y and no "
            "original model was given"
        )
    torch.manual_seed(opts.seed)
    dev = _device()
    module = to_torch(g2).to(dev)
    module.train()
    k = compared_output(g2)
    slots: dict[str, Any] = {}
    params = []
    # plain weights whose zeros stay zeros: the kept entries (1) per weight, re-applied after every
    # step, since Adam's momentum would move a zero whose gradient is masked
    masks: dict[str, Any] = {}
    for name, w in g2.weights.items():
        try:
            slot = module.weight(name)
        except KeyError:
            continue  # a weight the graph module does not hold (a subgraph's): left as it is
        slots[name] = slot
        if isinstance(slot, torch.nn.Parameter):
            params.append(slot)
            if keep_zeros(name) and not w.is_compressed:
                mask = (slot.detach() != 0).to(slot.dtype)
                if prune is not None or not bool(mask.all()):
                    masks[name] = mask
        elif isinstance(slot, CompressedWeight):
            params.extend(p for p in slot.parameters() if p.requires_grad)
    if not params:
        raise UnsupportedError("nothing in this model can be fine-tuned (no float weights)")
    for name in masks:
        slots[name].register_hook(lambda g, n=name: g * masks[n])
    opt = torch.optim.Adam(params, lr=opts.lr)
    y = None if data.y is None else torch.as_tensor(np.asarray(data.y).astype(np.int64))
    t_all = None if targets is None else torch.as_tensor(targets)
    kind = _kind(targets) if targets is not None else "labels"
    rng = np.random.default_rng(opts.seed)
    losses: list[float] = []
    step = data.step or 0
    if step and opts.batch_size % step:
        raise UsageError(f"--batch-size must be a multiple of the model's fixed batch of {step}")
    n_batches = math.ceil(data.n / opts.batch_size)
    steps = opts.epochs * n_batches
    # gradual pruning: the masks change at PRUNE_POINTS evenly spaced points of the first half
    prune_at = {round(steps * PRUNE_SHARE * i / PRUNE_POINTS): i for i in range(PRUNE_POINTS + 1)}
    t0 = time.perf_counter()
    done = 0
    for epoch in range(opts.epochs):
        order = rng.permutation(data.n)
        progress.stage(f"fine-tuning: epoch {epoch + 1}/{opts.epochs}", n_batches)
        total, seen = 0.0, 0
        for b in range(n_batches):
            if prune is not None and done in prune_at:
                _reprune(prune, prune_at[done] / PRUNE_POINTS, slots, masks)
            if opts.schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = opts.lr * 0.5 * (1.0 + math.cos(math.pi * done / steps))
            done += 1
            idx = np.sort(order[b * opts.batch_size : (b + 1) * opts.batch_size])
            if step and len(idx) % step:
                progress.advance(1)
                continue  # a model with a fixed batch takes only whole batches
            feeds = take_rows(data, idx, dev)
            out = pick(module(feeds), k)
            loss = _loss(
                out,
                None if t_all is None else t_all[idx].to(dev),
                None if y is None else y[idx].to(dev),
                kind,
                opts.temperature,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if masks:
                with torch.no_grad():
                    for n, m in masks.items():
                        slots[n].mul_(m)
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            progress.advance(1)
        losses.append(total / max(seen, 1))
    seconds = time.perf_counter() - t0
    _write_back(g2, slots)
    return {
        "data": str(opts.data),
        "samples": int(data.n),
        "epochs": opts.epochs,
        "lr": opts.lr,
        "batch_size": opts.batch_size,
        "schedule": opts.schedule,
        "seed": opts.seed,
        "loss": "distillation" if kind != "labels" else "cross-entropy on labels",
        "temperature": opts.temperature if kind == "scores" else None,
        "labels": data.y is not None,
        "device": str(dev),
        "loss_per_epoch": [round(v, 6) for v in losses],
        "seconds": round(seconds, 3),
    }


def _reprune(
    prune: Callable[[float, dict[str, np.ndarray]], dict[str, np.ndarray]],
    t: float,
    slots: dict[str, Any],
    masks: dict[str, Any],
) -> None:
    """Zero the weights ``prune`` says at ``t`` and keep them zero from now on."""
    import torch

    current = {n: slots[n].detach().to("cpu").numpy() for n in masks}
    with torch.no_grad():
        for n, pruned in prune(t, current).items():
            keep = torch.as_tensor(~pruned.reshape(current[n].shape)).to(masks[n])
            masks[n].copy_(keep)
            slots[n].mul_(keep)


def _write_back(g2: Graph, slots: dict[str, Any]) -> None:
    """Put the trained values into the graph: formats re-made from their modules, arrays copied."""
    import torch

    from nncompress.torch import CompressedWeight

    for name, slot in slots.items():
        w = g2.weights[name]
        if isinstance(slot, CompressedWeight):
            w.value = slot.to_format()
        elif isinstance(slot, torch.nn.Parameter):
            a = slot.detach().to("cpu").numpy()
            w.value = np.ascontiguousarray(a.astype(w.dtype, copy=False).reshape(w.shape))


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _kind(targets: np.ndarray) -> str:
    """ "scores" (class scores or probabilities over the last axis) or "values" (one number a row)."""
    if targets.ndim < 2 or targets.shape[-1] < 2:
        return "values"
    return "scores"


def _loss(out: Any, target: Any, y: Any, kind: str, temperature: float) -> Any:
    import torch
    import torch.nn.functional as F

    from nncompress.torch.feeds import is_distribution

    out = out.float()
    if kind == "values":
        t = target.float()
        scale = (t * t).mean().clamp_min(1e-12)
        return ((out - t) ** 2).mean() / scale
    flat = out.reshape(-1, out.shape[-1])
    # probabilities are compared through their logarithms, so that one code path serves both
    s_logits = torch.log(flat.clamp_min(1e-12)) if is_distribution(flat.detach()) else flat
    loss = flat.new_zeros(())
    if target is not None:
        t = target.float().reshape(-1, target.shape[-1])
        t_logits = torch.log(t.clamp_min(1e-12)) if is_distribution(t) else t
        p_t = F.softmax(t_logits / temperature, dim=-1)
        log_p_s = F.log_softmax(s_logits / temperature, dim=-1)
        loss = loss + F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature**2
    if y is not None and y.numel() == flat.shape[0]:
        loss = loss + F.cross_entropy(s_logits, y.reshape(-1))
    return loss


def snapshot(graph: Graph) -> dict[str, np.ndarray]:
    """Copies of the plain float weights, taken before compression may release them: the report's
    weight errors after fine-tuning are measured against these."""
    return {
        n: np.array(w.array)
        for n, w in graph.weights.items()
        if not w.is_compressed and w.dtype.kind == "f" and w.size
    }


def refresh(
    entries: list[Any], rows: list[dict[str, Any]], g2: Graph, originals: dict[str, np.ndarray]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """The stored tensors and report rows of ``g2`` after training: each entry re-made from its
    slot in the format it had; tied tensors stay tied (the first one's trained values)."""
    from nncompress.artifact import TensorEntry
    from nncompress.formats import Format
    from nncompress.formats.shaped import Shaped
    from nncompress.pipeline.engine import ALIAS, RAW
    from nncompress.pipeline.report import layer_row

    out: list[TensorEntry] = []
    for e in entries:
        w = g2.weights[e.name]
        if e.format == ALIAS:
            w.value = g2.weights[e.meta["of"]].value
            out.append(e)
        elif e.format == RAW:
            out.append(TensorEntry(e.name, RAW, e.shape, e.dtype, {}, {"values": np.asarray(w.value)}))
        else:
            v = w.value
            f = v.fmt if isinstance(v, Shaped) else v
            if not isinstance(f, Format) or f.name != e.format:
                raise AssertionError(f"{e.name}: fine-tuning changed its storage from {e.format}")
            out.append(TensorEntry(e.name, f.name, e.shape, e.dtype, f.meta(), f.arrays()))
    by_name = {e.name: e for e in out}
    new_rows = []
    for r in rows:
        name = r["weight"]
        w, e = g2.weights[name], by_name.get(name)
        if name not in originals or e is None or e.format == ALIAS:
            new_rows.append(r)
            continue
        src = Weight(name, originals[name], w.layer, w.role, w.op)
        after = np.asarray(w.array, dtype=np.float64).reshape(w.shape)
        new_rows.append(layer_row(src, after, e.format, e.payload_bytes, e.meta.get("k")))
    return out, new_rows


def finetune_artifact(
    artifact: str | os.PathLike[str],
    out: str | os.PathLike[str],
    opts: TrainOptions,
    *,
    teacher: str | os.PathLike[str] | None = None,
    eval_data: str | os.PathLike[str] | None = None,
    samples: int | None = None,
    force: bool = False,
    trust_pickle: bool = False,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Fine-tune the model of an existing ``.nnc`` and write it, in the same formats, to ``out``.

    The original model (``teacher``) gives the soft targets and the fidelity reference; without it
    the labels of the training data are the only signal and fidelity is not measured (a report of
    agreement with the artifact's own starting point would say nothing about the original).
    """
    import shutil

    from nncompress._tempfiles import temp_dir
    from nncompress.artifact import Artifact, read_artifact, write_artifact
    from nncompress.fidelity import compressed, reference
    from nncompress.io import detect_format, load
    from nncompress.io._atomic import atomic_path, check_output
    from nncompress.pipeline.artifacts import graph_from_artifact

    src, dst = Path(artifact), Path(out)
    opts.check()
    if detect_format(src) != "nnc":
        raise InputError(
            "is not a .nnc artifact", path=str(src), hint="Give the output of nncompress compress"
        )
    if dst.suffix != ".nnc":
        raise UsageError(f"the output must end in .nnc, got {dst}")
    check_output(dst, force=force, inputs=(src,) + ((Path(teacher),) if teacher else ()))
    progress.stage(f"loading {src.name}")
    art = read_artifact(src, skeleton_dir=temp_dir("art"))
    g2 = graph_from_artifact(src, art)
    notes: list[str] = []
    tgraph = None
    if teacher is not None:
        progress.stage(f"loading {Path(teacher).name}")
        tgraph = load(teacher, trust_pickle=trust_pickle)
        if set(tgraph.weights) != set(g2.weights):
            raise InputError(
                "is not the model this artifact was made from (its weights differ)",
                path=str(teacher),
                hint="Give the original model file as --teacher",
            )
    else:
        notes.append(
            "no --teacher: trained on the labels alone and fidelity not measured (give the original "
            "model as --teacher to distil from it and compare against it)"
        )
    data = load_train(tgraph or g2, opts.data)
    targets = None
    if tgraph is not None:
        targets = teacher_outputs(tgraph, data, batch=max(opts.batch_size, 256), progress=progress)
    ref = None
    before = None
    if tgraph is not None:
        ref = reference(tgraph, data_path=eval_data, samples=samples, seed=opts.seed, progress=progress)
        notes += ref.notes
        before, _ = compressed(ref, g2, progress=progress, label="fidelity before fine-tuning")
    originals = snapshot(tgraph) if tgraph is not None else {}
    info = train(g2, TrainData(data, targets), opts, progress=progress)
    entries, _ = refresh(art.tensors, [], g2, originals)
    after, unmeasured = compressed(ref, g2, progress=progress) if ref is not None else (None, None)
    if unmeasured:
        notes.append(f"fidelity not measured: {unmeasured}")
    recipe = {**art.recipe, "finetune": {k: v for k, v in info.items() if k not in ("seconds", "device")}}
    new = Artifact(
        source_format=art.source_format,
        source_name=art.source_name,
        recipe=recipe,
        seed=art.seed,
        tensors=entries,
        skeleton=art.skeleton,
        skeleton_name=art.skeleton_name,
    )
    progress.stage("writing the artifact")
    tmp = temp_dir("out") / "artifact.nnc"
    size = write_artifact(new, tmp)
    with atomic_path(dst) as t:
        shutil.copyfile(tmp, t)
    return {
        "schema": "nncompress.finetune/1",
        "artifact": str(src),
        "output": str(dst),
        "teacher": None if teacher is None else str(teacher),
        "input_bytes": src.stat().st_size,
        "output_bytes": size,
        "finetune": {**info, "before": before},
        "fidelity": after,
        "notes": notes,
    }


def _leading_prune(passes: str) -> tuple[str, bool]:
    """The pruning steps a recipe starts with, and whether other passes follow them."""
    steps = [s.strip() for s in passes.split(",") if s.strip()]
    k = 0
    while k < len(steps) and steps[k].split(":", 1)[0] == "prune":
        k += 1
    return ",".join(steps[:k]), k < len(steps)


def _cuts(spec: str) -> list[tuple[float, str]]:
    """The (sparsity, scope) of each prune step of ``spec``, parsed as the pipeline parses them."""
    from nncompress.options import parse_step
    from nncompress.passes import PASSES
    from nncompress.passes.prune import Prune

    out = []
    for step in (t for t in spec.split(",") if t.strip()):
        _, o = parse_step(step, PASSES)
        assert isinstance(o, Prune.Options)  # _leading_prune took only prune steps
        out.append((float(o.sparsity), str(o.scope)))
    return out


def _gradual(groups: dict[str, list[str]]) -> Callable[[float, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The masks of each group's prune steps at ``t`` of the ramp: sparsity s * (1 - (1 - t)^3),
    by magnitude like the prune pass (one threshold over the group for scope=global)."""
    from nncompress.passes.prune import smallest

    cuts = {spec: _cuts(spec) for spec in groups}

    def at(t: float, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ramp = 1.0 - (1.0 - min(max(t, 0.0), 1.0)) ** 3
        out: dict[str, np.ndarray] = {}
        for spec, names in groups.items():
            mags = {n: np.abs(weights[n]).reshape(-1) for n in names}
            done = {n: np.zeros(m.size, dtype=bool) for n, m in mags.items()}
            for sparsity, scope in cuts[spec]:
                if scope == "global":
                    flat = np.concatenate([np.where(done[n], 0.0, mags[n]) for n in names])
                    mask, _ = smallest(flat, round(sparsity * ramp * flat.size))
                    for n, part in zip(
                        names, np.split(mask, np.cumsum([mags[n].size for n in names])[:-1]), strict=True
                    ):
                        done[n] |= part
                else:
                    for n in names:
                        m = np.where(done[n], 0.0, mags[n])
                        done[n] |= smallest(m, round(sparsity * ramp * m.size))[0]
            out.update(done)
        return out

    return at


def pretrain_pruned(
    graph: Graph,
    plan: Any,
    train_data: TrainData,
    opts: TrainOptions,
    *,
    seed: int = 0,
    progress: Progress = SILENT,
) -> tuple[Graph, dict[str, Any] | None]:
    """Deep Compression's first retraining: where a recipe prunes and then shares or quantizes, the
    weights it prunes are trained while the cut deepens gradually to the recipe's sparsity (then
    with those zeros kept) before the sharing sees them, so that the codebook is fitted to weights
    that already work without the pruned ones. The recipe's own prune step then finds exactly these
    zeros. Returns a new graph (``graph`` is left as it is: it is the teacher) and the figures, or
    ``graph`` and None where no recipe does that.
    """
    groups: dict[str, list[str]] = {}
    for n, w in graph.weights.items():
        r = plan.recipe_for(w)
        if r is None:
            continue
        prune, more = _leading_prune(r.passes)
        if prune and more and not w.is_compressed and w.dtype.kind == "f":
            groups.setdefault(prune, []).append(n)
    if not groups:
        return graph, None
    g1 = graph.copy()
    pruned = {n for names in groups.values() for n in names}
    info = train(
        g1, train_data, opts, keep_zeros=lambda n: n in pruned, prune=_gradual(groups), progress=progress
    )
    return g1, info
