"""torch.export archives (.pt2) read without ``torch.export.load``, which may run code from the file.

``torch.export.load`` unpickles payloads marked ``use_pickle`` and custom objects with
``weights_only=False``, falls back to a legacy layout whose state dict is unpickled the same way,
retries sample inputs with ``weights_only=False`` when ``weights_only=True`` fails, and hands the
program's symbolic shape expressions to ``sympy.sympify``, which evaluates them as Python. None of
that happens here: the archive is a zip of JSON and raw tensor records, and this module reads exactly
that:

- member names and sizes are checked first (`TorchZip`);
- the program (``models/model.json``) is parsed as JSON, with a depth limit, and never evaluated;
  its node targets and symbolic expressions are checked against what torch itself writes, so a file
  that would run code when torch loads it (ours, rebuilt from it, included) is refused;
- weights and tensor constants come from their JSON configs as raw records, each view checked against
  the bytes its record holds before an array is made;
- anything pickled (``use_pickle`` payloads, custom objects, the legacy layout, sample inputs holding
  objects) is refused with exit 5 naming the member, unless the user passed ``--trust-pickle``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nncompress.errors import InputError, UnsupportedError
from nncompress.io._json import JSONError, loads
from nncompress.io.torch.archive import Stored, TorchZip
from nncompress.io.torch.unpickle import SafeUnpickler

__all__ = ["DTYPES", "Pt2", "dtype_of", "open_pt2", "sym_name"]

# torch/_export/serde/schema.py ScalarType -> torch dtype name
DTYPES = {
    1: "uint8",
    2: "int8",
    3: "int16",
    4: "int32",
    5: "int64",
    6: "float16",
    7: "float32",
    8: "float64",
    9: "complex32",
    10: "complex64",
    11: "complex128",
    12: "bool",
    13: "bfloat16",
    28: "uint16",
    34: "uint32",
    35: "uint64",
}
_STRIDED = 7  # schema Layout.Strided
_MAX_JSON = 256 << 20  # a program or config above this is refused before it is read

# What torch writes in a symbolic expression (sympy's srepr of sizes): these names, quoted symbol
# names, numbers and arithmetic. Anything else (a call to eval, an attribute) would run when torch
# loads the file, so it is refused.
_EXPR_NAMES = frozenset(
    """Symbol Integer Rational Float Add Mul Pow Mod Max Min Abs floor ceiling Eq Ne Lt Le Gt Ge
    StrictLessThan StrictGreaterThan LessThan GreaterThan Equality Unequality And Or Not Piecewise
    ExprCondPair true false True False oo zoo nan Infinity NegativeInfinity Half One Zero NegativeOne
    BooleanTrue BooleanFalse FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt
    CeilDiv LShift RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator
    TruncToFloat TruncToInt RoundToInt RoundDecimal ToFloat Identity OpaqueUnaryFn BitwiseFn positive
    negative integer nonnegative nonpositive real finite infinite zero nonzero even odd rational
    extended_real precision commutative prime composite""".split()
)
_EXPR_TOKEN = re.compile(
    r"""\s+|'[A-Za-z_][A-Za-z0-9_]*'|"[A-Za-z_][A-Za-z0-9_]*"|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[(),=+\-*/<>!]"""
)
# node targets torch writes: aten and other registered ops, Python operators on sizes, sym helpers
_TARGET = re.compile(
    r"torch\.ops\.[A-Za-z_]\w*\.[A-Za-z_]\w*\.[A-Za-z_]\w*"
    r"|_operator\.[a-z_]+|math\.[a-z_]+|torch\._?sym_[a-z_]+|#[\w.:]+"
)


@dataclass
class Pt2:
    """A checked .pt2 archive: its program JSON and where each weight and tensor constant lies."""

    path: Path
    root: str
    program: dict[str, Any]
    tensors: dict[str, Stored]  # fqn -> record view (weights, then tensor constants)
    params: set[str] = field(default_factory=set)
    pickled: dict[str, str] = field(default_factory=dict)  # fqn -> member (loaded only when trusted)
    torch_version: str = ""
    extra_files: list[str] = field(default_factory=list)


def dtype_of(code: Any) -> str | None:
    """The torch dtype name of a schema ScalarType code (None for an unknown one)."""
    return DTYPES.get(code) if type(code) is int else None


def sym_name(expr: str) -> str:
    """A readable name for a symbolic size (``Symbol('s77', ...)`` -> ``s77``), never evaluated."""
    m = re.fullmatch(r"\s*Symbol\('([A-Za-z_]\w*)'.*\)\s*", expr)
    return m.group(1) if m else expr


def open_pt2(p: Path, *, trusted: bool = False) -> Pt2:
    """Read and check a .pt2 archive (see the module docstring); nothing in it is executed."""
    with TorchZip.open(p) as z:
        names = set(z.names())
        _refuse_layouts(z, names)
        if not trusted:
            for name in sorted(names):
                if name.startswith("data/sample_inputs/") and name.endswith(".pt"):
                    _check_sample_inputs(z, name)
        program = _json(z, "models/model.json", names)
        _check_program(p, program, "models/model.json")
        tensors: dict[str, Stored] = {}
        params: set[str] = set()
        pickled: dict[str, str] = {}
        # every program's configs are checked, not only the one read: torch.export.load reads them all
        for model in sorted(n[len("models/") : -len(".json")] for n in names if _is_program(n)):
            if model != "model":
                _check_program(p, _json(z, f"models/{model}.json", names), f"models/{model}.json")
            for cfg, folder in (
                (f"data/weights/{model}_weights_config.json", "data/weights/"),
                (f"data/constants/{model}_constants_config.json", "data/constants/"),
            ):
                if cfg not in names:
                    continue
                conf = _json(z, cfg, names).get("config", {})
                if not isinstance(conf, dict):
                    raise _bad(p, f"{cfg} has no config object")
                for fqn, meta in conf.items():
                    st, why = _payload(z, folder, fqn, meta, cfg)
                    if why:
                        if not trusted:
                            raise UnsupportedError(
                                f"{why} ({folder}{meta.get('path_name', '?')} for {fqn!r}); "
                                "nncompress does not unpickle untrusted data",
                                path=str(p),
                                hint="Re-export it with torch.export.save from plain tensors, "
                                "or pass --trust-pickle if you trust this file",
                            )
                        if model == "model" and why.startswith("pickled tensor"):
                            pickled[fqn] = f"{folder}{meta['path_name']}"
                        continue
                    if model == "model" and st is not None:
                        z.check(st, f"tensor {fqn!r}")
                        tensors[fqn] = st
                        if meta.get("is_param"):
                            params.add(fqn)
        extra = sorted(n[len("extra/") :] for n in names if n.startswith("extra/") and len(n) > 6)
        version = program.get("torch_version", "")
        return Pt2(
            path=p,
            root=z.root,
            program=program,
            tensors=tensors,
            params=params,
            pickled=pickled,
            torch_version=version if isinstance(version, str) else "",
            extra_files=extra,
        )


def _is_program(name: str) -> bool:
    return name.startswith("models/") and name.endswith(".json") and name.count("/") == 1


def _refuse_layouts(z: TorchZip, names: set[str]) -> None:
    p = z.path
    if "models/model.json" not in names:
        raise UnsupportedError(
            "a .pt2 archive without an exported program (models/model.json)",
            path=str(p),
            hint="Save the program with torch.export.save",
        )
    fmt = z.read("archive_format", limit=64).strip() if "archive_format" in names else b"pt2"
    if fmt != b"pt2":
        raise UnsupportedError(f"a .pt2 archive of format {fmt[:20]!r}, not pt2", path=str(p))
    if any(n.startswith("data/aotinductor/") for n in names):
        raise UnsupportedError(
            "a .pt2 archive with AOTInductor-compiled code; nncompress does not load native libraries",
            path=str(p),
            hint="Save the program with torch.export.save (no AOTInductor package)",
        )
    for n in sorted(names):
        if n.startswith(("data/weights/", "data/constants/")) and n.endswith(".pt"):
            raise UnsupportedError(
                f"legacy pickled weights ({n}); nncompress does not unpickle untrusted data",
                path=str(p),
                hint="Re-export it with torch.export.save from a current torch",
            )


def _json(z: TorchZip, name: str, names: set[str]) -> dict[str, Any]:
    if name not in names:
        raise _bad(z.path, f"member {name} is missing")
    try:
        doc = loads(z.read(name, limit=_MAX_JSON))
    except JSONError as e:
        raise _bad(z.path, f"{name} is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise _bad(z.path, f"{name} is not a JSON object")
    return doc


def _payload(z: TorchZip, folder: str, fqn: Any, meta: Any, cfg: str) -> tuple[Stored | None, str | None]:
    """A config entry -> (its record view, None), or (None, why it is pickled)."""
    if not isinstance(fqn, str) or not isinstance(meta, dict) or not isinstance(meta.get("path_name"), str):
        raise _bad(z.path, f"{cfg} has a malformed entry")
    path_name = meta["path_name"]
    if meta.get("use_pickle"):
        return None, "pickled tensor"
    if path_name.startswith(("custom_obj", "opaque_obj")):
        return None, "pickled object"
    tm = meta.get("tensor_meta")
    if not isinstance(tm, dict):
        raise _bad(z.path, f"{cfg}: {fqn!r} has no tensor_meta")
    dtype = dtype_of(tm.get("dtype"))
    if dtype is None:
        raise UnsupportedError(f"tensor {fqn!r} has dtype code {tm.get('dtype')!r}", path=str(z.path))
    if tm.get("layout", _STRIDED) != _STRIDED:
        raise UnsupportedError(f"tensor {fqn!r} is not a strided (dense) tensor", path=str(z.path))
    try:
        shape = tuple(_concrete(s) for s in tm["sizes"])
        strides = tuple(_concrete(s) for s in tm["strides"])
        offset = _concrete(tm.get("storage_offset", {"as_int": 0}))
    except (KeyError, TypeError, ValueError):
        raise _bad(z.path, f"{cfg}: {fqn!r} has sizes, strides or offset that are not integers") from None
    return Stored(f"{z.root}/{folder}{path_name}", dtype, offset, shape, strides), None


def _concrete(s: Any) -> int:
    if isinstance(s, dict) and type(s.get("as_int")) is int:
        return int(s["as_int"])
    raise ValueError("not a concrete integer")


def _check_sample_inputs(z: TorchZip, name: str) -> None:
    """Sample inputs are a torch.save archive inside the archive; torch.export.load retries them with
    ``weights_only=False``. Ours are never loaded, but a file holding objects there is refused: the
    model nncompress writes back would run them when torch loads it."""
    import io
    import zipfile

    data = z.read(name)
    if not data:
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            pkl = [n for n in inner.namelist() if n.endswith("/data.pkl")]
            if len(pkl) != 1:
                raise ValueError("no data.pkl")
            u = SafeUnpickler(io.BytesIO(inner.read(pkl[0])))
            u.load()
    except Exception as e:
        raise UnsupportedError(
            f"sample inputs {name} are not a plain torch.save of tensors ({type(e).__name__})",
            path=str(z.path),
            hint="Re-export it with torch.export.save",
        ) from None
    if u.foreign:
        raise UnsupportedError(
            f"sample inputs {name} hold pickled Python objects ({', '.join(sorted(u.foreign)[:3])}); "
            "nncompress does not unpickle untrusted data",
            path=str(z.path),
            hint="Re-export it with torch.export.save from plain tensors, or pass --trust-pickle",
        )


def _check_program(p: Path, program: dict[str, Any], member: str) -> None:
    """Refuse a program whose node targets or symbolic expressions torch would evaluate as code."""
    for key, value in _walk(program):
        if key == "expr_str" and not (isinstance(value, str) and _safe_expr(value)):
            raise UnsupportedError(
                f"{member} holds a symbolic expression that is not a size formula ({str(value)[:60]!r}); "
                "torch would evaluate it as Python",
                path=str(p),
                hint="Re-export it with torch.export.save",
            )
        if key == "target" and isinstance(value, str) and not _TARGET.fullmatch(value):
            raise UnsupportedError(
                f"{member} calls {value[:60]!r}, which is not an operator torch.export writes",
                path=str(p),
                hint="Re-export it with torch.export.save",
            )
    ranges = program.get("range_constraints", {})
    if isinstance(ranges, dict) and not all(isinstance(k, str) and _safe_expr(k) for k in ranges):
        raise UnsupportedError(f"{member} has range constraints that are not size formulas", path=str(p))


def _walk(doc: Any) -> Iterator[tuple[str, Any]]:
    stack: list[Any] = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, x in v.items():
                yield k, x
                if isinstance(x, (dict, list)):
                    stack.append(x)
        elif isinstance(v, list):
            stack.extend(x for x in v if isinstance(x, (dict, list)))


def _safe_expr(expr: str) -> bool:
    pos = 0
    while pos < len(expr):
        m = _EXPR_TOKEN.match(expr, pos)
        if m is None:
            return False
        tok = m.group(0)
        if (tok[0].isalpha() or tok[0] == "_") and tok not in _EXPR_NAMES:
            return False
        pos = m.end()
    return True


def _bad(path: Path, what: str) -> InputError:
    return InputError(
        f"corrupt torch.export archive: {what}", path=str(path), hint="Re-save it with torch.export.save"
    )
