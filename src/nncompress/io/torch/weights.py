"""Tensors read from a torch file -> IR weights: numpy copies, notes on their dtypes, and roles
guessed from parameter names (for files without a graph, and for weights a graph does not use)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from nncompress.ir import Weight

__all__ = ["dtype_notes", "guess_roles", "notes_of", "split_key", "to_numpy", "weights_from"]


def to_numpy(t: Any) -> np.ndarray | None:
    """A copy of a CPU tensor as numpy; bfloat16 widens to float32; None where numpy has no dtype."""
    import torch

    t = t.detach()
    if t.is_quantized or t.layout != torch.strided or t.is_meta:
        return None
    t = t.cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    try:
        return np.array(t.contiguous().numpy(), copy=True)
    except (TypeError, RuntimeError):
        return None


def split_key(key: str) -> tuple[str, str]:
    head, _, tail = key.rpartition(".")
    return head, tail


def guess_roles(weights: dict[str, Weight]) -> None:
    """Roles and layer ops from parameter names and siblings, as torch modules name them."""
    names = set(weights)
    for w in weights.values():
        layer, suffix = split_key(w.source)
        w.layer = layer or w.name
        has_bn = f"{layer}.running_mean" in names if layer else "running_mean" in names
        nd = len(w.shape)
        floating = np.issubdtype(w.dtype, np.floating)
        if re.fullmatch(r"weight_(ih|hh)_l\d+(_reverse)?", suffix) and floating:
            w.role, w.op = "recurrent", "Recurrent"  # nn.LSTM / GRU / RNN
        elif re.fullmatch(r"bias_(ih|hh)_l\d+(_reverse)?", suffix):
            w.role, w.op = "bias", "Recurrent"
        elif suffix == "weight" or (suffix.endswith("_weight") and nd == 2):
            if nd == 1 and has_bn:
                w.role, w.op = "bn_gamma", "BatchNormalization"
            elif nd == 2 and "embed" in layer.lower():
                w.role, w.op = "embedding", "Embedding"
            elif nd == 2:
                w.role, w.op = "kernel", "Dense"
            elif 3 <= nd <= 5:
                w.role, w.op = "kernel", "Conv"
            else:
                w.role, w.op = ("other" if floating else "buffer"), ""
        elif suffix == "bias" or suffix.endswith("_bias"):
            w.role = "bn_beta" if has_bn else "bias"
            w.op = "BatchNormalization" if has_bn else ""
        elif suffix == "running_mean":
            w.role, w.op = "bn_mean", "BatchNormalization"
        elif suffix == "running_var":
            w.role, w.op = "bn_var", "BatchNormalization"
        elif suffix == "num_batches_tracked" or not floating:
            w.role, w.op = "buffer", ""
        else:
            w.role, w.op = "other", ""
    # a bias takes the op of its layer's weight
    for w in weights.values():
        if w.role == "bias":
            layer, suffix = split_key(w.source)
            sib = weights.get(f"{layer}.{suffix[: -len('bias')]}weight" if layer else "weight")
            if sib is not None and sib.role == "kernel":
                w.op = sib.op


def weights_from(tensors: Mapping[str, Any], skipped: list[str]) -> dict[str, Weight]:
    out: dict[str, Weight] = {}
    for k, t in tensors.items():
        arr = to_numpy(t)
        if arr is None:
            skipped.append(k)
            continue
        out[k] = Weight(name=k, value=arr, source=k)
    return out


def dtype_notes(tensors: Mapping[str, Any], skipped: list[str]) -> list[str]:
    import torch

    return notes_of(sum(getattr(t, "dtype", None) == torch.bfloat16 for t in tensors.values()), skipped)


def notes_of(bf16: int, skipped: list[str]) -> list[str]:
    """What a user should know of the dtypes read: bfloat16 widened, tensors numpy cannot hold."""
    notes = []
    if bf16:
        notes.append(f"{bf16} bfloat16 tensors read as float32 (written back as bfloat16)")
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        notes.append(f"{len(skipped)} tensors with no numpy dtype kept unchanged ({shown})")
    return notes
