"""Keras weight stores: the variables of a layer in an HDF5 file, read lazily, and patched in place.

Two layouts: the legacy one (Keras 2 .h5, Keras 3 legacy .h5, weights-only .h5), where a layer's group
lists its datasets in a ``weight_names`` attribute, and Keras 3's model.weights.h5 (inside a .keras zip,
or a weights-only .h5), where layers/<key>/vars/<i> holds them by position. Only h5py handles are used
here: the modules that open files import h5py themselves, lazily.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nncompress._stall import guard
from nncompress.errors import InputError, OutputError, UnsupportedError
from nncompress.ir import Graph, apply_layout
from nncompress.ir.graph import LayoutOp


@dataclass
class KerasSource:
    """What save_keras needs from the file a graph was loaded from (left in ``Graph.source``)."""

    path: str
    container: str  # "h5" (legacy layout or weights-only h5) or "keras" (zip)
    datasets: dict[str, str] = field(default_factory=dict)  # IR weight -> dataset path in the h5


def as_str(x: Any) -> str:
    """An HDF5 attribute as text (h5py gives bytes or str depending on how it was written)."""
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _address_space_cap(file_size: int) -> int | None:
    """A soft RLIMIT_AS for reading one attribute: what the process maps now plus four times the
    file and 64 MB, never above the current limit; None where it cannot be set (no resource module,
    no /proc), or must not be: the limit is the whole process's, so in library use with another
    Python thread running (whose allocations it would fail) the read goes uncapped. The CLI owns its
    process; its threads (progress) allocate nothing large."""
    import threading

    from nncompress import _stall

    if not _stall.enabled() and threading.active_count() > 1:
        return None
    try:
        import resource

        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, IndexError):
        return None
    cap = mapped + 4 * file_size + (64 << 20)
    for limit in (soft, hard):
        if limit != resource.RLIM_INFINITY:
            cap = min(cap, limit)
    return cap


@contextlib.contextmanager
def capped(obj: Any, what: str) -> Iterator[None]:
    """libhdf5 work on ``obj``'s file under an address-space cap (see `read_attr`); an allocation the
    cap stops, or an unreadable object, is an InputError naming ``what``."""
    size = int(obj.file.id.get_filesize())
    name = obj.file.filename
    path = name if isinstance(name, str) and os.path.isfile(name) else None  # not an in-memory file
    cap = _address_space_cap(size)
    if cap is None:
        with guard(what, path, size):
            yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        with guard(what, path, size):
            yield
    except (OSError, MemoryError, RuntimeError) as e:  # h5py's RuntimeError: "memory allocation failed"
        raise InputError(
            f"{what} is unreadable or declares more than the file holds ({type(e).__name__}: {e})"
        ) from None
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_attr(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.attrs[name]`` (``default`` where absent), read under an address-space cap.

    libhdf5 allocates what a variable-length string's stored length says before it reads the heap
    object the string points to: one flipped length made a 0.5 MB .h5 allocate 2.7 GB, then fail
    (found by benchmarks/atheris_fuzz.py). No attribute can hold more than the file, so the read
    may map at most a few times the file's size more: beyond that the allocation fails inside
    libhdf5, which reports it as an error, and the attribute is refused in one line."""
    if name not in obj.attrs:  # reads the attribute's name, not its data
        return default
    with capped(obj, f"attribute {name} of {obj.name}"):
        return obj.attrs[name]


def attr_strings(group: Any, name: str) -> list[str]:
    """A list-of-strings attribute; Keras splits big ones into name0, name1... chunks."""
    if name in group.attrs:
        chunks = [read_attr(group, name)]
    else:
        chunks, i = [], 0
        while f"{name}{i}" in group.attrs:
            chunks.append(read_attr(group, f"{name}{i}"))
            i += 1
    return [as_str(v) for c in chunks for v in np.atleast_1d(c) if not isinstance(v, float | np.floating)]


def refuse_foreign(f: Any) -> None:
    """Refuse an HDF5 file whose data lives in other files: an external link (h5py follows it to any
    path), a dataset with external raw storage (its bytes read from any file, /etc/passwd or
    /dev/zero) or a virtual dataset (a map onto other files). A model's weights are its own bytes;
    reading someone else's files into an artifact is a disclosure. Metadata only: no data is read."""
    import h5py

    bad: list[str] = []

    def link(name: bytes, info: Any) -> int | None:
        if info.type not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
            bad.append(f"{name.decode('utf-8', 'replace')} is an external link")
            return 1  # stops the visit
        return None

    def dataset(name: str, obj: Any) -> int | None:
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                bad.append(f"dataset {name} is a virtual dataset mapped onto other files")
            elif obj.id.get_create_plist().get_external_count():
                bad.append(f"dataset {name} stores its bytes in an external file")
        return 1 if bad else None

    f.id.links.visit(link, info=True)
    if not bad:
        f.visititems(dataset)
    if bad:
        raise UnsupportedError(
            f"{bad[0]}: refused, a model file must hold its own weights",
            hint="Re-save the model with model.save() so that its weights are inside the file",
        )


def snake(name: str) -> str:
    """Keras 3's to_snake_case: the key a layer gets in a .keras weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# -- reading -----------------------------------------------------------------------------------------


_SLAB_BYTES = 1 << 24  # how much of a dataset a transposed read holds beside its output


def _check_dataset(ds: Any, path: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """A dataset's declared size against the memory budget and against the bytes the file stores
    for it, before it is read (a few bytes of HDF5 can declare a dataset of 2^40 elements)."""
    from nncompress._limits import MAX_RATIO, memory_budget

    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > memory_budget():
        raise InputError(
            f"dataset {path} declares {nbytes:,} bytes, above the memory budget of {memory_budget():,}",
            hint="If the file is genuine, raise the budget with --max-memory (or NNCOMPRESS_MAX_MEMORY)",
        )
    if nbytes > (64 << 20):
        stored = ds.id.get_storage_size()
        if stored * MAX_RATIO < nbytes:
            raise InputError(
                f"dataset {path} declares {nbytes:,} bytes but the file stores {stored:,} for it"
            )


class Var:
    """A variable of the file. Its dataset is read when first needed: ``array`` reads it as stored,
    ``ir_array`` reads a 2-D kernel slab by slab straight into the transposed IR layout (a large
    Dense kernel is then never in memory twice)."""

    def __init__(self, name: str | None, path: str, ds: Any) -> None:
        self.name = name  # Keras variable name (kernel, gamma...) where the file records it
        self.path = path  # dataset path inside the h5
        self._ds = ds
        self._array: np.ndarray | None = None
        self.shape: tuple[int, ...] = tuple(ds.shape)
        self.dtype: np.dtype[Any] = np.dtype(ds.dtype)
        _check_dataset(ds, path, self.shape, self.dtype)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.asarray(self._ds[()])
        return self._array

    def ir_array(self, layout: list[LayoutOp]) -> np.ndarray:
        """The variable in the IR layout. Where that is a transpose of the stored array, the variable
        then keeps a view of the IR copy instead of an array of its own, so that a large kernel is not
        in memory twice: a 2-D kernel not read yet is read slab by slab straight into the IR layout,
        and the file's copy of one read already is freed now rather than when loading ends."""
        if self._array is None and layout == [("transpose", (1, 0))] and len(self.shape) == 2:
            rows, cols = self.shape
            out = np.empty((cols, rows), dtype=self.dtype)
            step = max(1, _SLAB_BYTES // max(1, cols * self.dtype.itemsize))
            for i in range(0, rows, step):
                out[:, i : i + step] = np.asarray(self._ds[i : i + step]).T
        else:
            out = apply_layout(self.array, layout)
        if layout and all(kind == "transpose" for kind, _ in layout):
            view = out
            for _, arg in reversed(layout):
                view = np.transpose(view, np.argsort(arg))
            self._array = view
        return out


def read(ds: Any, name: str | None) -> Var:
    """The variable held by dataset ``ds`` (checked, not read yet)."""
    return Var(name, ds.name.lstrip("/"), ds)


class LegacyStore:
    """Weights in the legacy layout: <root>/<layer>/... listed by the layer's weight_names attribute."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def vars(self, names: tuple[str, ...], keys: tuple[str, ...]) -> list[Var]:
        top = self.root.get(names[0])
        if top is None:
            return []
        wns = attr_strings(top, "weight_names")
        if len(names) > 1:  # a layer inside a nested model: its weights are named .../<layer>/<var>
            wns = [w for w in wns if w.split("/")[-2:-1] == [names[-1]]]
        return [read(top[w], w.split("/")[-1].split(":")[0]) for w in wns]


def collect_vars(g: Any) -> list[Var]:
    """A .keras layer group's variables: its own vars/<i>, then those of wrapped layers (e.g. layer/)."""
    out: list[Var] = []
    v = g.get("vars")
    if v is not None:
        out += [read(v[k], None) for k in sorted(v, key=lambda k: int(k) if k.isdigit() else 1 << 30)]
    for k in sorted(g):
        if k not in ("vars", "layers") and hasattr(g[k], "keys"):
            out += collect_vars(g[k])
    return out


def vars_name(g: Any) -> str | None:
    """The layer name a .keras layer group records on its vars/ group, if any."""
    v = g.get("vars")
    n = read_attr(v, "name") if v is not None else None
    return None if n is None else as_str(n)


class ZipStore:
    """Weights in a Keras 3 model.weights.h5: layers/<key>[/layers/<key>...]/vars/<i>."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def group(self, names: tuple[str, ...], keys: tuple[str, ...]) -> Any:
        parent = "layers/" + "".join(f"{k}/layers/" for k in keys[:-1])
        g = self.f.get(parent + keys[-1])
        if g is None or vars_name(g) not in (None, names[-1]):
            # Keys come from class names in save order; where that guess misses, the recorded name decides.
            pg = self.f.get(parent.rstrip("/"))
            hits = [pg[k] for k in (pg or {}) if vars_name(pg[k]) == names[-1]]
            g = hits[0] if len(hits) == 1 else g
        return g

    def vars(self, names: tuple[str, ...], keys: tuple[str, ...]) -> list[Var]:
        g = self.group(names, keys)
        return [] if g is None else collect_vars(g)


def count_datasets(g: Any) -> tuple[int, int]:
    """(datasets, bytes) under an HDF5 group (0, 0 for None)."""
    if g is None:
        return 0, 0
    n = [0, 0]

    def visit(_name: str, obj: Any) -> None:
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            n[0] += 1
            n[1] += int(np.prod(obj.shape, dtype=np.int64)) * obj.dtype.itemsize

    g.visititems(visit)
    return n[0], n[1]


# -- writing -----------------------------------------------------------------------------------------


def copy_without(fin: Any, fout: Any, drop: str) -> None:
    """Every member and attribute of HDF5 file ``fin`` into ``fout`` except group ``drop``: deleting a
    group in place leaves its bytes in the file, a copy does not."""
    for k in list(fin.attrs):
        fout.attrs[k] = read_attr(fin, k)
    for name in fin:
        if name != drop:
            with capped(fin, f"group {name}"):  # the copy reads every attribute below it
                fin.copy(fin[name], fout, name=name)


def patch(f: Any, graph: Graph, src: KerasSource, out: Path) -> None:
    """Overwrite each weight dataset in place with the graph's value (same shape and dtype)."""
    for name, dpath in src.datasets.items():
        w = graph.weights.get(name)
        if w is None:  # dropped from the graph: the file keeps its original value
            continue
        ds = f[dpath]
        arr = w.to_source()
        if tuple(arr.shape) != tuple(ds.shape):
            raise OutputError(
                f"weight {name!r} has shape {tuple(arr.shape)} in Keras layout but the file stores {tuple(ds.shape)}",
                path=str(out),
                hint="A Keras file keeps its layer shapes; write .onnx for a model whose shapes changed",
            )
        ds[...] = arr.astype(ds.dtype, copy=False)
