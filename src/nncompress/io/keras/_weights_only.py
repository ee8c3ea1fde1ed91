"""Weights-only files (model.save_weights(), or a model whose config this loader cannot walk): IR
weights without a graph, each variable's role told from its name, its layer's key and its shape."""

from __future__ import annotations

import re
from typing import Any

from nncompress.io.keras._store import Var, attr_strings, collect_vars, read, vars_name
from nncompress.io.keras._variables import conv_layout, depthwise_layout
from nncompress.ir import Weight
from nncompress.ir.graph import LayoutOp
from nncompress.ir.names import Names

WEIGHTS_ONLY_NOTE = "weights only: no model_config; fidelity is measured on weights"
_BN_ROLES = {"gamma": "bn_gamma", "beta": "bn_beta", "moving_mean": "bn_mean", "moving_variance": "bn_var"}


def _roles_of_vars(layer: str, kind: str, vs: list[Var]) -> list[tuple[str, str, str, list[LayoutOp]]]:
    """The IR weight each variable of a layer becomes, as (slot, role, op, layout): the slot names the
    weight (<layer>/<slot>), role and op say what it is for, layout turns it into the IR's. Only the
    variables' recorded names (where the file keeps them), the layer's name or key and the shapes are
    known: there is no config."""
    names = [v.name for v in vs]
    if not all(names):
        key_slots = {
            "dense": ["kernel", "bias"],
            "embedding": ["embeddings"],
            "p_re_lu": ["alpha"],
            "batch_normalization": ["gamma", "beta", "moving_mean", "moving_variance"],
        }
        if re.fullmatch(r"(depthwise_)?conv[123]d(_transpose)?", kind):
            key_slots[kind] = ["kernel", "bias"]
        if re.fullmatch(r"separable_conv[12]d", kind):
            key_slots[kind] = ["depthwise_kernel", "pointwise_kernel", "bias"]
        slots = key_slots.get(kind, [])
        if kind == "batch_normalization" and len(vs) < 4:
            # moving statistics come last; with 3 variables, gamma or beta is missing and we cannot tell which
            slots = ["0"] * (len(vs) - 2) + slots[2:]
        elif len(vs) != len(slots) and not (slots[-1:] == ["bias"] and len(vs) == len(slots) - 1):
            slots = []  # not the layer its key suggests: guess from shapes
        if not slots and 1 <= len(vs) <= 2 and len(vs[0].shape) >= 2:
            if len(vs) == 1 or vs[1].shape == vs[0].shape[-1:]:
                slots = ["kernel", "bias"]
        names = [slots[i] if i < len(slots) else str(i) for i in range(len(vs))]
    is_bn = "moving_mean" in names
    out: list[tuple[str, str, str, list[LayoutOp]]] = []
    kernel_op = ""
    for slot, v in zip(names, vs, strict=True):
        shape, nd = v.shape, len(v.shape)
        assert slot is not None
        if (slot == "depthwise_kernel" or (slot == "kernel" and kind.startswith("depthwise"))) and nd >= 3:
            kernel_op = "Conv"
            out.append((slot, "kernel", "Conv", depthwise_layout(shape)))
        elif slot in ("kernel", "pointwise_kernel") and nd == 2:
            kernel_op = "Dense"
            out.append((slot, "kernel", "Dense", [("transpose", (1, 0))]))
        elif slot in ("kernel", "pointwise_kernel") and nd >= 3:
            kernel_op = "ConvTranspose" if "transpose" in f"{kind}/{layer}".lower() else "Conv"
            out.append((slot, "kernel", kernel_op, conv_layout(nd)))
        elif slot == "bias":
            out.append((slot, "bias", kernel_op, []))
        elif slot in _BN_ROLES and is_bn:
            out.append((slot, _BN_ROLES[slot], "BatchNormalization", []))
        elif slot == "embeddings":
            out.append((slot, "embedding", "Embedding", []))
        elif slot == "alpha":
            out.append((slot, "alpha", "PRelu", []))
        else:
            out.append((slot, "other" if v.dtype.kind == "f" else "buffer", "", []))
    return out


def legacy_layers(root: Any) -> list[tuple[str, str, list[Var]]]:
    """(layer, kind, variables) of a legacy-layout group; a nested model's weights split by inner layer."""
    out: dict[str, list[Var]] = {}
    for lname in attr_strings(root, "layer_names"):
        g = root.get(lname)
        for w in attr_strings(g, "weight_names") if g is not None else []:
            parts = w.split("/")
            owner = parts[-2] if len(parts) > 1 else lname
            layer = lname if owner == lname else f"{lname}/{owner}"
            out.setdefault(layer, []).append(read(g[w], parts[-1].split(":")[0]))
    return [(layer, layer.rsplit("/", 1)[-1], vs) for layer, vs in out.items()]


def k3_layers(g: Any, prefix: str = "") -> list[tuple[str, str, list[Var]]]:
    """(layer, kind, variables) of a Keras 3 layers/ group, nested models' layers included."""
    out = []
    for key in g:
        child = g[key]
        if not hasattr(child, "keys"):
            continue
        name = prefix + (vars_name(child) or key)
        vs = collect_vars(child)
        if vs:
            out.append((name, re.sub(r"_\d+$", "", key), vs))
        if "layers" in child:
            out += k3_layers(child["layers"], f"{name}/")
    return out


def weights_only(layers: list[tuple[str, str, list[Var]]]) -> tuple[dict[str, Weight], dict[str, str]]:
    """The IR weights of ``layers`` and, for each, its dataset path in the file."""
    weights: dict[str, Weight] = {}
    datasets: dict[str, str] = {}
    taken = Names(sep="#")
    for layer, kind, vs in layers:
        for (slot, role, op, layout), v in zip(_roles_of_vars(layer, kind, vs), vs, strict=True):
            name = taken.fresh(f"{layer}/{slot}")
            weights[name] = Weight(
                name,
                v.ir_array(layout),
                layer=layer,
                role=role,
                op=op,
                source=v.path,
                source_shape=v.shape,
                layout=layout,
            )
            datasets[name] = v.path
    return weights, datasets
