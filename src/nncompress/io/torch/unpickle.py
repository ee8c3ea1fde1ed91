"""Pickles read without running anything from them: the one door every torch pickle goes through.

A pickle is a program: each global it names is called with arguments it chooses, so loading one
from an untrusted file runs whatever the file asks for (``os.system`` included). This unpickler gives
every global an inert meaning instead:

- torch's tensor rebuild functions, storage classes and dtypes become *descriptions*: `TensorRef`
  (which storage record, dtype, offset, shape, strides), never a tensor. The bytes are read later
  from the archive, after their sizes were checked against what the record holds.
- plain containers (``collections.OrderedDict``, ``builtins.set``...) are rebuilt as themselves;
  constructing them runs no code from the file.
- every other global becomes a placeholder class (`Opaque`): calling it, building it, setting its
  state or items only records the arguments. A Lightning checkpoint's config objects, a pickled
  ``nn.Module`` and a ``posix.system`` call all end up as such records; nothing is ever called.

``foreign`` lists the globals that got a placeholder, so a caller can say what the file holds.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "STORAGE_DTYPES",
    "Opaque",
    "SafeUnpickler",
    "Storage",
    "TensorRef",
    "iter_refs",
    "safe_loads",
]

# torch's legacy typed-storage classes (what torch.save still names in a storage's persistent id)
STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "QInt8Storage": "qint8",
    "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32",
    "UntypedStorage": "uint8",
    "TypedStorage": "uint8",
}

# torch dtype globals (``torch.float32``...) and their aliases
_TORCH_DTYPES = {
    "float64": "float64",
    "double": "float64",
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "short": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "bool": "bool",
    "complex64": "complex64",
    "complex128": "complex128",
    "cfloat": "complex64",
    "cdouble": "complex128",
    "float8_e4m3fn": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2",
}


@dataclass(frozen=True)
class DType:
    """A torch dtype named by a pickle."""

    name: str


@dataclass(frozen=True)
class StorageType:
    """A torch storage class named by a pickle (its dtype)."""

    dtype: str


@dataclass
class Storage:
    """A storage a pickle refers to by persistent id: its key (the record name) and extent."""

    key: str
    dtype: str
    numel: int
    location: str = "cpu"
    # legacy files: a view into another storage (key, offset in elements, size in elements)
    view: tuple[str, int, int] | None = None


@dataclass
class TensorRef:
    """A tensor a pickle describes: where its elements lie; no bytes read."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str
    requires_grad: bool = False
    parameter: bool = False
    kind: str = "strided"  # "strided", or what torch rebuilt instead (sparse, quantized, meta...)


class Opaque:
    """An object of a class the unpickler does not trust: a record of how the pickle built it."""

    module: str = ""
    qualname: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        obj = object.__new__(cls)
        obj.__dict__["_nnc"] = _Record(args=args, kwargs=kwargs)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @property
    def record(self) -> _Record:
        rec: _Record = self.__dict__["_nnc"]
        return rec

    # what pickle's BUILD, APPEND(S) and SETITEM(S) call: kept, never interpreted
    def __setstate__(self, state: Any) -> None:
        self.record.state = state

    def append(self, item: Any) -> None:
        self.record.items.append(item)

    def extend(self, items: Any) -> None:
        self.record.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.record.entries[key] = value

    def __repr__(self) -> str:
        return f"<{self.module}.{self.qualname}>"

    @property
    def fullname(self) -> str:
        return f"{self.module}.{self.qualname}"


@dataclass
class _Record:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any = None
    items: list[Any] = field(default_factory=list)
    entries: dict[Any, Any] = field(default_factory=dict)


def _placeholder(module: str, name: str) -> type[Opaque]:
    # a class, not a function: pickle's NEWOBJ refuses anything that is not a type
    return type(name.rsplit(".", 1)[-1] or "obj", (Opaque,), {"module": module, "qualname": name})


def _int_tuple(v: Any) -> tuple[int, ...]:
    if not isinstance(v, (tuple, list)) or not all(type(x) is int for x in v):
        raise pickle.UnpicklingError("tensor sizes and strides must be integers")
    return tuple(v)


def _storage_dtype(storage: Any) -> str:
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError("a tensor's storage is not a storage record")
    return storage.dtype


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> TensorRef:
    if type(offset) is not int:
        raise pickle.UnpicklingError("a tensor's storage offset must be an integer")
    requires_grad = bool(rest[0]) if rest and isinstance(rest[0], bool) else False
    return TensorRef(
        storage, offset, _int_tuple(size), _int_tuple(stride), _storage_dtype(storage), requires_grad
    )


def _rebuild_tensor_v3(
    storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any, dtype: Any, *rest: Any
) -> TensorRef:
    t = _rebuild_tensor(storage, offset, size, stride, requires_grad)
    if isinstance(dtype, DType):
        t.dtype = dtype.name  # the storage is untyped (bytes): the tensor says what they are
    return t


def _rebuild_parameter(data: Any, requires_grad: Any = False, *rest: Any) -> Any:
    if isinstance(data, TensorRef):
        data.parameter = True
        data.requires_grad = bool(requires_grad)
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    # a tensor subclass (or a tensor with Python attributes): the data is what ``func`` rebuilds
    return func(*args) if callable(func) and isinstance(args, tuple) else Opaque()


def _other_tensor(kind: str) -> Callable[..., TensorRef]:
    def rebuild(*args: Any) -> TensorRef:
        st = Storage(key="", dtype="", numel=0)
        return TensorRef(st, 0, (), (), "", kind=kind)

    return rebuild


_REBUILD: dict[str, Callable[..., Any]] = {
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_tensor_v2": _rebuild_tensor,
    "_rebuild_tensor_v3": _rebuild_tensor_v3,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter,
    "_rebuild_qtensor": _other_tensor("quantized"),
    "_rebuild_sparse_tensor": _other_tensor("sparse"),
    "_rebuild_sparse_csr": _other_tensor("sparse"),
    "_rebuild_meta_tensor_no_storage": _other_tensor("meta"),
    "_rebuild_wrapper_subclass": _other_tensor("subclass"),
    "_rebuild_nested_tensor": _other_tensor("nested"),
    "_rebuild_device_tensor_from_numpy": _other_tensor("numpy"),
    "_rebuild_device_tensor_from_cpu_tensor": _other_tensor("device"),
    "_rebuild_xla_tensor": _other_tensor("device"),
    "_rebuild_mtia_tensor": _other_tensor("device"),
}


def _bytearray(*args: Any) -> bytearray:
    # bytearray(n) allocates n zero bytes: 30 bytes of pickle could ask for gigabytes. A pickled
    # bytearray is bytearray(), bytearray(bytes) or, below protocol 3, bytearray(str, "latin-1").
    if len(args) > 2 or (args and not isinstance(args[0], (bytes, str))):
        raise pickle.UnpicklingError("bytearray arguments must be bytes or text")
    if len(args) == 2:
        return bytearray(_encode(*args))
    return bytearray(*args)


_CONTAINERS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): _bytearray,
    ("builtins", "complex"): complex,
    ("__builtin__", "set"): set,
}


def _encode(text: Any, encoding: str = "utf-8") -> bytes:
    # how protocol-2 pickles write bytes: _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError("unexpected arguments to _codecs.encode")
    return text.encode(encoding)


class SafeUnpickler(pickle._Unpickler):
    """Unpickle without calling anything the file names (see the module docstring).

    ``persistent`` turns a persistent id into a value; by default torch's ``("storage", type, key,
    location, numel[, view])`` tuples become `Storage` records and anything else is refused.

    The pure-Python unpickler, not the C one: the C memo is an array as long as the largest index a
    PUT names, so 95 bytes with ``LONG_BINPUT 643786851`` made it allocate and zero 10 GB (found by
    benchmarks/atheris_fuzz.py); this one keeps the memo in a dict. It is about 4x slower (a 0.5 MB
    pickle of 5,000 entries: 40 ms -> 170 ms), next to nothing beside the tensors' reads.
    """

    # set by pickle._Unpickler.load: the framed reader and the stack's append
    read: Callable[[int], bytes]
    append: Callable[[Any], None]

    def _load_bytearray8(self) -> None:
        # the stdlib's allocates the declared length first, then reads: read first, then build
        (n,) = struct.unpack("<Q", self.read(8))
        data = self.read(n) if n <= sys.maxsize else b""  # read(n) overflows beyond an index
        if len(data) != n:
            raise pickle.UnpicklingError(f"pickle data was truncated (BYTEARRAY8 of {n} bytes)")
        self.append(bytearray(data))

    dispatch: ClassVar[dict[int, Callable[..., None]]] = {
        **pickle._Unpickler.dispatch,
        pickle.BYTEARRAY8[0]: _load_bytearray8,
    }

    def __init__(self, file: Any, *, persistent: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file, encoding="latin1")
        self.foreign: dict[str, int] = {}
        self._persistent = persistent or storage_from_pid

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise pickle.UnpicklingError("a global's module and name must be strings")
        if module == "torch._utils" and name in _REBUILD:
            return _REBUILD[name]
        if module == "torch._tensor" and name == "_rebuild_from_type_v2":
            return _rebuild_from_type_v2
        if module == "torch" and name in _TORCH_DTYPES:
            return DType(_TORCH_DTYPES[name])
        if module in ("torch", "torch.storage", "torch.cuda") and name in STORAGE_DTYPES:
            return StorageType(STORAGE_DTYPES[name])
        if (module, name) in _CONTAINERS:
            return _CONTAINERS[(module, name)]
        if module == "_codecs" and name == "encode":
            return _encode
        if module == "torch.nn.parameter" and name == "Parameter":
            return _rebuild_parameter
        key = f"{module}.{name}"
        self.foreign[key] = self.foreign.get(key, 0) + 1
        return _placeholder(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)

    def load(self) -> Any:
        try:
            return super().load()
        except struct.error as e:  # where the C unpickler says "truncated", the Python one unpacks short
            raise pickle.UnpicklingError(f"pickle data was truncated ({e})") from None


def _text(v: Any) -> str:
    return v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)


def storage_from_pid(pid: Any) -> Storage:
    """torch.save's persistent id of a storage (zip: 5 fields; legacy: 6, with a view)."""
    if not isinstance(pid, tuple) or not pid or _text(pid[0]) != "storage" or len(pid) not in (5, 6):
        raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:60]!r}")
    _, stype, key, location, numel, *view = pid
    if isinstance(stype, StorageType):
        dtype = stype.dtype
    elif isinstance(stype, DType):
        dtype = stype.name
    else:
        raise pickle.UnpicklingError("a storage's type is not a torch storage class")
    if type(numel) is not int or numel < 0:
        raise pickle.UnpicklingError("a storage's size must be a non-negative integer")
    st = Storage(key=_text(key), dtype=dtype, numel=numel, location=_text(location))
    if view and view[0] is not None:
        v = view[0]
        if not (isinstance(v, tuple) and len(v) == 3 and type(v[1]) is int and type(v[2]) is int):
            raise pickle.UnpicklingError("a storage view must be (key, offset, size)")
        st.view = (_text(v[0]), v[1], v[2])
    return st


def safe_loads(data: bytes, **kw: Any) -> tuple[Any, dict[str, int]]:
    """Unpickle ``data`` inertly; return the object and the globals that became placeholders."""
    u = SafeUnpickler(io.BytesIO(data), **kw)
    return u.load(), u.foreign


def iter_refs(obj: Any, prefix: str = "", *, limit: int = 1_000_000) -> Iterator[tuple[str, TensorRef]]:
    """Every `TensorRef` under ``obj`` with a dotted path to it, each object visited once.

    Iterative and memo-aware: a pickle can share one list under itself many times over (a
    "billion laughs" of references), which a naive recursive walk would visit exponentially often.
    """
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [(prefix, obj)]
    visited = 0
    while stack:
        path, v = stack.pop()
        if isinstance(v, TensorRef):
            yield path, v
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        visited += 1
        if visited > limit:
            return
        children: list[tuple[str, Any]] = []
        if isinstance(v, dict):
            children = [(f"{path}.{k}" if path else str(k), x) for k, x in v.items()]
        elif isinstance(v, (list, tuple)):
            children = [(f"{path}.{i}" if path else str(i), x) for i, x in enumerate(v)]
        elif isinstance(v, Opaque):
            r = v.record
            children = [(f"{path}.{i}" if path else str(i), x) for i, x in enumerate(r.args)]
            if isinstance(r.state, dict):
                children += [(f"{path}.{k}" if path else str(k), x) for k, x in r.state.items()]
            elif r.state is not None:
                children.append((path, r.state))
            children += [(f"{path}.{k}" if path else str(k), x) for k, x in r.entries.items()]
            children += [(f"{path}.{i}" if path else str(i), x) for i, x in enumerate(r.items)]
        stack.extend(reversed(children))
