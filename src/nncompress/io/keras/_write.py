"""Writing a Keras file. The writer never re-serialises a model: it copies the source file and
overwrites each weight dataset in place (same dtype and shape), so the config, optimizer state and
attributes stay as they were. A flat .keras model can also be written as a legacy .h5 (its
config.json as model_config, as Keras 3 does)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import OutputError
from nncompress.io._atomic import atomic_path, check_output
from nncompress.io._zip import read_member
from nncompress.io.keras._load import json_member
from nncompress.io.keras._model import NESTED, is_model_config
from nncompress.io.keras._store import (
    KerasSource,
    ZipStore,
    collect_vars,
    copy_without,
    patch,
    read_attr,
    snake,
)
from nncompress.ir import Graph
from nncompress.ir.names import Counter


def _zip_to_h5(graph: Graph, src: KerasSource, tmp: Path, out: Path) -> None:
    """Write a flat .keras model in the legacy .h5 layout (model_config + model_weights), as Keras 3 does."""
    import h5py

    with zipfile.ZipFile(src.path) as z:
        cfg = json_member(z, "config.json", Path(src.path))
        meta = json_member(z, "metadata.json", Path(src.path)) if "metadata.json" in z.namelist() else {}
        buf = io.BytesIO(read_member(z, "model.weights.h5", src.path))
    layers = cfg.get("config", {}).get("layers") if is_model_config(cfg) else None
    if layers is None or any(lc.get("class_name") in NESTED for lc in layers):
        # A nested model's legacy weight order (all trainable, then the rest) is Keras's to decide.
        raise OutputError(
            "only a flat Sequential or Functional .keras model can be written as .h5",
            path=str(out),
            hint="Write .keras (as the source) or .onnx",
        )
    slot_of = {p: name.rsplit("/", 1)[-1] for name, p in src.datasets.items()}
    if cfg["class_name"] == "Sequential":  # Keras 3 keys a Sequential's layers without its InputLayer
        layers = [lc for lc in layers if lc.get("class_name") != "InputLayer"]
    with h5py.File(buf, "r+") as wf, h5py.File(tmp, "w") as f:
        patch(wf, graph, src, out)
        store = ZipStore(wf)
        f.attrs["model_config"] = json.dumps({"class_name": cfg["class_name"], "config": cfg["config"]})
        f.attrs["keras_version"] = str(meta.get("keras_version", "3"))
        mw = f.create_group("model_weights")
        key_of = Counter()
        names = []
        for lc in layers:
            name = lc.get("config", {}).get("name") or lc.get("name")
            names.append(name)
            g = store.group((name,), (key_of(snake(lc["class_name"])),))
            wns = []
            for i, v in enumerate(collect_vars(g) if g is not None else []):
                wns.append(f"{name}/{slot_of.get(v.path, i)}")
                mw.create_dataset(f"{name}/{wns[-1]}", data=v.array)
            mw.require_group(name).attrs["weight_names"] = [w.encode() for w in wns] if wns else np.array([])
        mw.attrs["layer_names"] = [n.encode() for n in names]


def save_keras(graph: Graph, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``graph`` back into a copy of the Keras file it was loaded from, weights patched in place."""
    import h5py

    out = Path(path)
    src = graph.source
    if not isinstance(src, KerasSource):
        raise OutputError(
            "only a model loaded from a Keras file can be written as Keras",
            path=str(out),
            hint="Write .onnx instead",
        )
    out = check_output(out, force=force, inputs=(src.path,))
    if not Path(src.path).is_file():
        raise OutputError(
            f"the source file {src.path} is gone; the Keras writer patches a copy of it", path=str(out)
        )
    want = "keras" if out.suffix.lower() == ".keras" else "h5"
    state = graph.meta.extra.get("training_state") or {}
    drop = "" if graph.meta.extra.get("keep_training_state") else next(iter(state), "")
    if want == "keras" and src.container != "keras":
        raise OutputError(
            "cannot turn an .h5 model into .keras", path=str(out), hint="Write .h5 (as the source) or .onnx"
        )
    with atomic_path(out) as tmp:
        if src.container == "keras" and want == "h5":
            _zip_to_h5(graph, src, tmp, out)
        elif want == "h5" and drop:
            with h5py.File(src.path, "r") as fin, h5py.File(tmp, "w") as f:
                copy_without(fin, f, drop)
                patch(f, graph, src, out)
        elif want == "h5":
            shutil.copyfile(src.path, tmp)
            with h5py.File(tmp, "r+") as f:
                patch(f, graph, src, out)
        else:
            with zipfile.ZipFile(src.path) as zin, zipfile.ZipFile(tmp, "w") as zout:
                for info in zin.infolist():
                    data = zin.read(info)
                    if info.filename == "model.weights.h5":
                        buf = io.BytesIO(data)
                        if drop:
                            fresh = io.BytesIO()
                            with h5py.File(buf, "r") as fin, h5py.File(fresh, "w") as f:
                                copy_without(fin, f, drop)
                            buf = fresh
                        with h5py.File(buf, "r+") as f:
                            patch(f, graph, src, out)
                        data = buf.getvalue()
                    zout.writestr(info, data)  # same name, date and compression as the source member
    return out


# Attributes that hold JSON (Keras's legacy .h5): rewritten with compact separators in a skeleton.
_JSON_ATTRS = ("model_config", "training_config")


def _copy_slim(fin: Any, fout: Any) -> None:
    """Group ``fin`` into ``fout``: groups and attributes as they are (JSON attributes compacted),
    numeric datasets of zeros created without storage (HDF5 reads them as their fill value, 0, and
    allocates when the writer patches them), any other dataset copied with its data."""
    import h5py

    # attributes read through read_attr: a crafted variable-length string made libhdf5 allocate
    # 2.7 GB on a plain read (the loader reads them the same way)
    for k in list(fin.attrs):
        v = read_attr(fin, k)
        if k in _JSON_ATTRS and isinstance(v, (str, bytes)):
            with contextlib.suppress(ValueError):  # not JSON after all: kept as it is
                v = json.dumps(json.loads(v), separators=(",", ":"))
        fout.attrs[k] = v
    for name, obj in fin.items():
        if obj is None:  # h5py's value for a link that resolves to nothing (dangling or damaged)
            raise KeyError(f"{fin.name.rstrip('/')}/{name} links to nothing")
        if isinstance(obj, h5py.Group):
            _copy_slim(obj, h5py.Group(h5py.h5g.create(fout.id, name.encode(), gcpl=_untimed())))
            continue
        if obj.dtype.kind in "biuf" and obj.dtype.fields is None and _all_zero(obj):
            d = fout.create_dataset(name, shape=obj.shape, dtype=obj.dtype, track_times=False)
        else:
            d = fout.create_dataset(name, data=obj[()], track_times=False)
        for k in list(obj.attrs):
            d.attrs[k] = read_attr(obj, k)


def _all_zero(ds: Any) -> bool:
    """Whether every element of dataset ``ds`` is zero, read a bounded slab at a time (a zeroed
    VGG16's largest kernel is 411 MB)."""
    if ds.ndim == 0 or ds.size == 0:
        return not np.any(ds[()])
    step = max(1, (16 << 20) // max(1, ds.size // ds.shape[0] * ds.dtype.itemsize))
    return not any(np.any(ds[i : i + step]) for i in range(0, ds.shape[0], step))


def _untimed() -> Any:
    """A creation property list without timestamps: HDF5 1.8 object headers record creation and
    modification times unless told not to, and the skeleton must be the same bytes on every run."""
    import h5py

    plist = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    plist.set_obj_track_times(False)
    return plist


def _slim_h5(src: Any, dst: Any) -> None:
    import h5py

    # HDF5 1.8's object headers and compact groups: about half the bytes of the earliest layout
    # Keras writes, and readable by every h5py (HDF5 >= 1.8) that Keras and tf_keras use
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)  # the root group's times
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_V18)
    if isinstance(dst, io.BytesIO):
        fapl.set_fileobj_driver(h5py.h5fd.fileobj_driver, dst)
        fid = h5py.h5f.create(b"in-memory", h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    else:
        fid = h5py.h5f.create(str(dst).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    with h5py.File(src, "r") as fin, h5py.File(fid) as fout:
        _copy_slim(fin, fout)


def slim_skeleton(path: Path, out: Path) -> bool:
    """Write to ``out`` the zeroed Keras file at ``path`` cut to what a runnable rebuild needs: the
    same groups, attributes and datasets, zeroed weights without storage, JSON configs compacted,
    in HDF5 1.8's smaller layout; a .keras zip's members stored rather than deflated (the artifact
    compresses the skeleton as a whole) with its model.weights.h5 slimmed the same way. A .keras
    rebuilt from it is written stored too (the writer keeps each member's method)."""
    if path.suffix.lower() != ".keras":
        _slim_h5(path, out)
        return True
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = read_member(zin, info.filename, path)
            if info.filename == "model.weights.h5":
                buf = io.BytesIO()
                _slim_h5(io.BytesIO(data), buf)
                data = buf.getvalue()
            zi = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            zi.external_attr = info.external_attr
            zout.writestr(zi, data)  # ZipInfo's default: stored
    return True
