"""torch.save files (zip and legacy) read through the safe unpickler and written back by patching.

``torch.load(weights_only=True)`` refuses a Lightning checkpoint (config objects inside) or a pickled
``nn.Module``, and ``weights_only=False`` runs whatever the file names. Here the pickle is read by
`SafeUnpickler`, which never calls anything: tensors come out as descriptions located in the file's
storage records (zip members ``data/<key>``, or the raw blocks after a legacy file's pickles), each
checked against the bytes present before it is read. Writing copies the file and rewrites only the
bytes of the tensors that changed, so every object, key order and setting the file held stays exactly
as it was, and the copy loads wherever the original loaded.

Dropping a checkpoint entry (training state) cuts that entry's span out of the top-level dict's
pickle opcodes, and the storage records only it used, where nothing else refers into the span.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import InputError, UnsupportedError
from nncompress.io.torch.archive import ITEMSIZE, NUMPY_OF, Stored, TorchZip, bf16_to_f32, patch
from nncompress.io.torch.unpickle import SafeUnpickler, Storage, TensorRef, storage_from_pid

__all__ = ["TorchSave", "collect_storages", "open_saved"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_MAX_PICKLE = 1 << 30


@dataclass
class TorchSave:
    """A torch.save file read inertly: its object, the globals it names, where tensors lie."""

    path: Path
    legacy: bool
    obj: Any
    foreign: dict[str, int]
    root: str = ""  # zip: the record folder
    pickle_member: str = ""  # zip: full name of data.pkl
    blocks: dict[str, tuple[int, int]] = field(default_factory=dict)  # legacy: key -> (offset, bytes)
    storages: dict[str, Storage] = field(default_factory=dict)

    def stored(self, ref: TensorRef) -> Stored:
        st = ref.storage
        offset = ref.offset
        key = st.key
        if st.view is not None:  # a legacy view: offset into its root storage
            key, offset = st.view[0], st.view[1] + offset
        record = f"{self.root}/data/{key}" if not self.legacy else key
        return Stored(record, ref.dtype, offset, ref.shape, ref.strides)

    def check(self, ref: TensorRef, what: str) -> Stored:
        """The tensor's location, refused if it reaches past the bytes its storage holds."""
        if ref.kind != "strided" or ref.dtype not in NUMPY_OF:
            raise UnsupportedError(f"{what} is a {ref.kind} {ref.dtype} tensor", path=str(self.path))
        st = self.stored(ref)
        if any(d < 0 for d in st.shape) or any(s < 0 for s in st.strides) or st.offset < 0:
            raise _bad(self.path, f"{what} has a negative size, stride or offset")
        if len(st.shape) != len(st.strides):
            raise _bad(self.path, f"{what} has {len(st.shape)} sizes but {len(st.strides)} strides")
        have = self._record_bytes(st.record)
        need = st.extent() * ITEMSIZE[st.dtype]
        if need > have:
            raise _bad(self.path, f"{what} needs {need} bytes of storage {st.record!r}, which holds {have}")
        return st

    def _record_bytes(self, record: str) -> int:
        if self.legacy:
            return self.blocks.get(record, (0, 0))[1]
        with zipfile.ZipFile(self.path) as z:
            try:
                return z.getinfo(record).file_size
            except KeyError:
                return 0

    def arrays(self, refs: dict[str, TensorRef]) -> dict[str, np.ndarray]:
        """Each tensor as a new numpy array (bfloat16 widened to float32); records read once."""
        located = {name: self.check(ref, f"tensor {name!r}") for name, ref in refs.items()}
        by_record: dict[str, list[str]] = {}
        for name, st in located.items():
            by_record.setdefault(st.record, []).append(name)
        out: dict[str, np.ndarray] = {}
        z = None if self.legacy else TorchZip.open(self.path)
        try:
            with open(self.path, "rb") as f:
                for record, names in by_record.items():
                    raw = b""
                    if any(located[n].numel for n in names):
                        if z is not None:
                            raw = z.read(record[len(self.root) + 1 :])
                        else:
                            off, size = self.blocks[record]
                            f.seek(off)
                            raw = f.read(size)
                    for n in names:
                        out[n] = _view(raw, located[n])
        finally:
            if z is not None:
                z.close()
        return out

    def write(
        self, dst: Path, changes: list[tuple[Stored, np.ndarray]], drop: tuple[str, ...] = ()
    ) -> list[str]:
        """A copy at ``dst`` with ``changes`` written and top-level entries ``drop`` cut (where
        they can be cut cleanly); returns the entries actually dropped."""
        new_pickle: bytes | None = None
        dropped: list[str] = []
        freed: set[str] = set()
        if drop:
            data = self._pickle_bytes()
            new_pickle, dropped = _cut_entries(data, set(drop))
            if dropped:
                used = _storage_keys(new_pickle)
                freed = {k for k in self.storages if k not in used}
        if self.legacy:
            _write_legacy(self, dst, changes, new_pickle, freed)
        else:
            replace = {self.pickle_member: new_pickle} if new_pickle is not None else {}
            gone = {f"{self.root}/data/{k}" for k in freed}
            changes = [(st, a) for st, a in changes if st.record not in gone]
            patch(self.path, dst, changes, replace=replace, drop=gone)
        return dropped

    def _pickle_bytes(self) -> bytes:
        if self.legacy:
            return _legacy_sections(self.path.read_bytes())[3]
        with TorchZip.open(self.path) as z:
            return z.read(self.pickle_member[len(self.root) + 1 :], limit=_MAX_PICKLE)


def open_saved(p: Path, *, legacy: bool) -> TorchSave:
    """Read a torch.save file's pickle inertly (nothing it names is called)."""
    try:
        return _open_legacy(p) if legacy else _open_zip(p)
    except (InputError, UnsupportedError):
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
    ) as e:
        raise _bad(p, f"its pickle is unreadable ({type(e).__name__}: {str(e)[:100]})") from None
    except (MemoryError, RecursionError) as e:
        raise _bad(p, f"its pickle is too large or too deep ({type(e).__name__})") from None


def collect_storages(storages: dict[str, Storage]) -> Callable[[Any], Storage]:
    """A persistent-id reader that also records each storage it meets (by key, first seen)."""

    def persistent(pid: Any) -> Storage:
        st = storage_from_pid(pid)
        storages.setdefault(st.key, st)
        return st

    return persistent


def _open_zip(p: Path) -> TorchSave:
    with TorchZip.open(p) as z:
        if z.has("byteorder") and z.read("byteorder", limit=16).strip() not in (b"little", b""):
            raise UnsupportedError(
                "a big-endian torch.save file", path=str(p), hint="Re-save it on this machine"
            )
        data = z.read("data.pkl", limit=_MAX_PICKLE)
        storages: dict[str, Storage] = {}
        u = SafeUnpickler(io.BytesIO(data), persistent=collect_storages(storages))
        obj = u.load()
        return TorchSave(
            p, False, obj, u.foreign, root=z.root, pickle_member=f"{z.root}/data.pkl", storages=storages
        )


def _legacy_sections(data: bytes) -> tuple[int, int, int, bytes, list[Any], int]:
    """(magic, protocol, end of sys_info, main pickle bytes, storage keys, start of the blocks)."""
    f = io.BytesIO(data)
    magic = SafeUnpickler(f).load()
    if magic != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a torch.save legacy file (bad magic number)")
    protocol = SafeUnpickler(f).load()
    info = SafeUnpickler(f).load()
    if isinstance(info, dict) and info.get("little_endian") is False:
        raise pickle.UnpicklingError("a big-endian legacy file")
    start = f.tell()
    SafeUnpickler(f).load()  # only to find where it ends
    end = f.tell()
    keys = SafeUnpickler(f).load()
    if not isinstance(keys, list):
        raise pickle.UnpicklingError("storage keys are not a list")
    return magic, protocol, start, data[start:end], keys, f.tell()


def _open_legacy(p: Path) -> TorchSave:
    data = p.read_bytes()
    _, _, _, main, keys, pos = _legacy_sections(data)
    storages: dict[str, Storage] = {}
    u = SafeUnpickler(io.BytesIO(main), persistent=collect_storages(storages))
    obj = u.load()
    blocks: dict[str, tuple[int, int]] = {}
    for key in keys:
        key = str(key)
        st = storages.get(key)
        if st is None or pos + 8 > len(data):
            raise pickle.UnpicklingError(f"storage {key!r} has no data block")
        (count,) = struct.unpack("<q", data[pos : pos + 8])
        size = count * ITEMSIZE.get(st.dtype, 1)
        if count < 0 or pos + 8 + size > len(data):
            raise _bad(p, f"storage {key!r} declares {count} elements, past the end of the file")
        blocks[key] = (pos + 8, size)
        pos += 8 + size
    return TorchSave(p, True, obj, u.foreign, blocks=blocks, storages=storages)


def _view(raw: bytes, st: Stored) -> np.ndarray:
    if st.numel == 0:
        out = np.zeros(st.shape, dtype=NUMPY_OF[st.dtype])
    else:
        flat = np.frombuffer(raw, dtype=NUMPY_OF[st.dtype], count=len(raw) // ITEMSIZE[st.dtype])
        view = np.lib.stride_tricks.as_strided(
            flat[st.offset :],
            shape=st.shape,
            strides=[s * flat.itemsize for s in st.strides],
            writeable=False,
        )
        out = np.array(view, copy=True)
    return bf16_to_f32(out) if st.dtype == "bfloat16" else out


def _write_legacy(
    ts: TorchSave,
    dst: Path,
    changes: list[tuple[Stored, np.ndarray]],
    new_pickle: bytes | None,
    freed: set[str],
) -> None:
    from nncompress.io.torch.archive import _write_views

    data = ts.path.read_bytes()
    by_key: dict[str, list[tuple[Stored, np.ndarray]]] = {}
    for st, arr in changes:
        by_key.setdefault(st.record, []).append((st, arr))
    if new_pickle is None:
        buf = bytearray(data)
        for key, views in by_key.items():
            off, n = ts.blocks[key]
            block = _write_views(bytes(buf[off : off + n]), [(_rebase(st), a) for st, a in views])
            buf[off : off + n] = block
        dst.write_bytes(bytes(buf))
        return
    # entries were cut: the file is laid out again (header pickles, main pickle, keys, blocks)
    _, _, start, _main, keys, _ = _legacy_sections(data)
    kept = [str(k) for k in keys if str(k) not in freed]
    out = io.BytesIO()
    out.write(data[:start])
    out.write(new_pickle)
    pickle.dump(kept, out, protocol=2)
    for key in kept:
        off, n = ts.blocks[key]
        block = data[off : off + n]
        if key in by_key:
            block = _write_views(block, [(_rebase(st), a) for st, a in by_key[key]])
        out.write(data[off - 8 : off])
        out.write(block)
    dst.write_bytes(out.getvalue())


def _rebase(st: Stored) -> Stored:
    return Stored("", st.dtype, st.offset, st.shape, st.strides)


# -- cutting top-level entries out of a pickle ---------------------------------------------------------

_PUTS = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}


def _cut_entries(data: bytes, drop: set[str]) -> tuple[bytes, list[str]]:
    """The pickle with the top-level dict's entries ``drop`` removed, where no opcode outside them
    reads a memo slot set inside them; returns the new bytes and the keys cut."""
    ops: list[tuple[Any, Any, int]] = [(op, arg, int(pos or 0)) for op, arg, pos in pickletools.genops(data)]
    spans = _top_level_items(ops)
    memo = 0
    slot_at: list[int | None] = []  # per opcode: the memo slot it sets (MEMOIZE numbers them implicitly)
    for op, arg, _ in ops:
        if op.name == "MEMOIZE":
            slot_at.append(memo)
            memo += 1
        elif op.name in _PUTS:
            slot_at.append(int(arg))
            memo = max(memo, int(arg) + 1)
        else:
            slot_at.append(None)
    cut = [k for k in spans if k in drop]

    def slots(a: int, b: int) -> set[int]:
        return {s for s in slot_at[a:b] if s is not None}

    while cut:
        removed = [spans[k] for k in cut]
        outside = {
            int(arg)
            for j, (op, arg, _) in enumerate(ops)
            if op.name in _GETS and not any(a <= j < b for a, b in removed)
        }
        shared = [k for k in cut if slots(*spans[k]) & outside]
        if not shared:
            break
        cut = [k for k in cut if k not in shared]  # another entry shares an object with it: kept
    if not cut:
        return data, []
    starts = [pos for _, _, pos in ops] + [len(data)]
    out, at = bytearray(), 0
    for a, b in sorted(spans[k] for k in cut):
        out += data[at : starts[a]]
        at = starts[b]
    out += data[at:]
    return bytes(out), cut


_KEY_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "UNICODE",
    "BINUNICODE8",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}


def _top_level_items(ops: list[tuple[Any, Any, int]]) -> dict[str, tuple[int, int]]:
    """key -> (first, end) opcode indices of each entry of the pickle's outermost dict.

    The opcodes are run on a symbolic stack whose entries are the opcode ranges that built each
    object; SETITEM(S) on the object at the bottom of the stack are the top-level entries."""
    stack: list[tuple[int, int] | None] = []  # None marks a MARK
    spans: dict[str, tuple[int, int]] = {}
    for j, (op, _arg, _) in enumerate(ops):
        if op.name == "MARK":
            stack.append(None)
            continue
        before = op.stack_before
        popped: list[tuple[int, int]] = []
        if pickletools.markobject in before:
            while stack and stack[-1] is not None:
                e = stack.pop()
                assert e is not None
                popped.insert(0, e)
            if stack:
                stack.pop()  # the mark
            sliced = popped
            n_plain = sum(
                1 for x in before if x is not pickletools.markobject and x is not pickletools.stackslice
            )
        else:
            sliced = []
            n_plain = len(before)
        popped_plain = [stack.pop() for _ in range(min(n_plain, len(stack)))][::-1]
        plain = [e for e in popped_plain if e is not None]
        if op.name in ("SETITEMS", "SETITEM") and len(stack) == 0 and plain:
            items = sliced if op.name == "SETITEMS" else plain[1:]
            for k, v in zip(items[::2], items[1::2], strict=False):
                key_op, key_arg, _ = ops[k[0]]
                if key_op.name in _KEY_OPS:
                    spans[str(key_arg)] = (k[0], v[1])
            stack.append((plain[0][0], j + 1))
            continue
        starts = [e[0] for e in (*plain, *sliced)]
        start = min(starts) if starts else j
        for _ in op.stack_after:
            stack.append((start, j + 1))
        if op.name == "STOP":
            break
    return spans


def _storage_keys(data: bytes) -> set[str]:
    keys: set[str] = set()

    def persistent(pid: Any) -> Any:
        st = storage_from_pid(pid)
        keys.add(st.key)
        return st

    SafeUnpickler(io.BytesIO(data), persistent=persistent).load()
    return keys


def _bad(path: Path, what: str) -> InputError:
    return InputError(
        f"corrupt torch.save file: {what}", path=str(path), hint="Re-save or re-download the file"
    )
