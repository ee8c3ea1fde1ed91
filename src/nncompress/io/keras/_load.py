"""Loading a Keras file: opening the .h5 or .keras container, telling a full model from a weights-only
file, and the metadata every loaded graph carries. Needs only h5py (imported when a file is opened)."""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nncompress._stall import guard
from nncompress.errors import InputError, NNCError
from nncompress.io._json import JSONError, loads
from nncompress.io._zip import UNREADABLE, first_duplicate, read_member
from nncompress.io.keras._model import build, is_model_config
from nncompress.io.keras._store import (
    KerasSource,
    LegacyStore,
    ZipStore,
    as_str,
    count_datasets,
    read_attr,
    refuse_foreign,
)
from nncompress.io.keras._weights_only import WEIGHTS_ONLY_NOTE, k3_layers, legacy_layers, weights_only
from nncompress.ir import Graph
from nncompress.ir.graph import IRError

_MAX_CONFIG = 64 << 20  # a config.json of a thousand-layer model is a few megabytes


def _major(version: str, default: int) -> int:
    m = re.match(r"(\d+)\.", version)
    return int(m.group(1)) if m else default


def json_member(z: zipfile.ZipFile, name: str, p: Path) -> Any:
    """Member ``name`` of a .keras zip, parsed as JSON (InputError if it is not)."""
    try:
        return loads(read_member(z, name, p, limit=_MAX_CONFIG))
    except JSONError as e:
        raise InputError(f"{name} is not valid JSON ({e})", path=str(p)) from None


def _json_attr(raw: Any, what: str, p: Path) -> Any:
    try:
        return loads(as_str(raw))
    except JSONError as e:
        raise InputError(f"{what} is not valid JSON ({e})", path=str(p)) from None


def _from_config_or_weights(cfg: Any, store: Any, layers: Callable[[], list], major: int, path: str) -> Graph:
    if is_model_config(cfg):
        return build(cfg, store, major, path)
    weights, datasets = weights_only(layers())
    g = Graph(weights=weights, has_graph=False, source=KerasSource(path, "", datasets))
    if cfg is not None:
        g.meta.notes.append(
            f"the model is a {cfg.get('class_name')!s}, not a Sequential or Functional config"
        )
    g.meta.notes.append(WEIGHTS_ONLY_NOTE)
    return g


def _load_h5(p: Path) -> Graph:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise InputError(
            f"not a readable HDF5 file (truncated or corrupt?): {e}",
            path=str(p),
            hint="Re-save it with model.save()",
        ) from None
    with f, guard("reading the HDF5 file", str(p), p.stat().st_size):
        refuse_foreign(f)
        a = f.attrs
        version = as_str(read_attr(f, "keras_version", ""))
        major = _major(version, 2)
        opt: tuple[int, int, str] = (0, 0, "")
        if "model_config" in a:
            cfg = _json_attr(read_attr(f, "model_config"), "the model_config attribute", p)
            root = f["model_weights"] if "model_weights" in f else f
            opt = (*count_datasets(f.get("optimizer_weights")), "optimizer_weights")
            g = _from_config_or_weights(cfg, LegacyStore(root), lambda: legacy_layers(root), major, str(p))
        elif "layer_names" in a or "layer_names0" in a:
            g = _from_config_or_weights(None, None, lambda: legacy_layers(f), major, str(p))
        elif "model_weights" in f:
            g = _from_config_or_weights(None, None, lambda: legacy_layers(f["model_weights"]), major, str(p))
        elif "layers" in f:
            major = _major(version, 3)
            g = _from_config_or_weights(None, None, lambda: k3_layers(f["layers"]), major, str(p))
            opt = (*count_datasets(f.get("optimizer")), "optimizer")
        else:
            raise InputError(
                "HDF5 file holds neither a Keras model_config nor Keras weights",
                path=str(p),
                hint="Give a file written by model.save() or model.save_weights()",
            )
        g.meta.format = "keras-h5"
        g.meta.extra["backend"] = as_str(read_attr(f, "backend", "")) or (
            as_str(read_attr(f["model_weights"], "backend", "")) if "model_weights" in f else ""
        )
    return _finish(g, p, "h5", version, major, opt)


def _load_zip(p: Path) -> Graph:
    import h5py

    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            members = set(names)
            twice = first_duplicate(names)
            if twice is not None:
                raise InputError(
                    f".keras archive holds two members named {twice[:80]!r}",
                    path=str(p),
                    hint="Re-save it with model.save('x.keras')",
                )
            if "config.json" not in members:
                raise InputError(
                    ".keras archive has no config.json",
                    path=str(p),
                    hint="Re-save it with model.save('x.keras')",
                )
            if "model.weights.h5" not in members:
                raise InputError(
                    ".keras archive has no model.weights.h5",
                    path=str(p),
                    hint="Re-save it with model.save('x.keras')",
                )
            cfg = json_member(z, "config.json", p)
            meta = json_member(z, "metadata.json", p) if "metadata.json" in members else {}
            data = read_member(z, "model.weights.h5", p)
    except UNREADABLE as e:
        raise InputError(f"not a valid .keras zip archive: {e}", path=str(p)) from None
    version = as_str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
    major = _major(version, 3)
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise InputError(
            f"model.weights.h5 inside the archive is not readable HDF5: {e}", path=str(p)
        ) from None
    with f, guard("reading model.weights.h5", str(p), len(data)):
        refuse_foreign(f)
        layers = f["layers"] if "layers" in f else f
        g = _from_config_or_weights(cfg, ZipStore(f), lambda: k3_layers(layers), major, str(p))
        opt = (*count_datasets(f.get("optimizer")), "optimizer")
    g.meta.format = "keras"
    g.meta.extra["backend"] = ""
    return _finish(g, p, "keras", version, major, opt)


def _finish(g: Graph, p: Path, container: str, version: str, major: int, opt: tuple[int, int, str]) -> Graph:
    g.meta.producer, g.meta.producer_version, g.meta.path = "keras", version, str(p)
    g.meta.extra["keras_major"] = major
    if opt[0]:
        group = opt[2]
        g.meta.extra["training_state"] = {group: {"tensors": opt[0], "bytes": opt[1]}}
        g.meta.notes.append(
            f"training state left out of the artifact: {group} ({opt[0]} tensors, {opt[1]} bytes) "
            "(--keep-training-state keeps it)"
        )
    g.source.container = container
    g.validate()
    return g


def load_keras(path: str | os.PathLike[str]) -> Graph:
    """Load a Keras .h5 (full model or weights only, Keras 2 or 3) or .keras file into the IR."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", path=str(p), hint="Check the path")
    if p.stat().st_size == 0:
        raise InputError("file is empty", path=str(p), hint="Re-export the model")
    try:
        return _load_zip(p) if p.suffix.lower() == ".keras" else _load_h5(p)
    except NNCError as e:
        if e.path is None:  # raised where the file's name is not at hand
            e.path = str(p)
        raise
    except IRError as e:
        raise InputError(f"the model config does not form a valid graph: {e}", path=str(p)) from None
    except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as e:
        # h5py raises RuntimeError (and OSError, KeyError...) on damaged headers and B-trees
        raise InputError(
            f"cannot read the Keras model ({type(e).__name__}: {e})",
            path=str(p),
            hint="The file is corrupt or from an unsupported Keras version; re-save it with model.save()",
        ) from None
