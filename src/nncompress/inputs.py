"""What a fidelity run feeds a model: input signatures, resolved shapes, seeded draws, ``--data``.

Every graph input (weights excluded) gets an `InputSpec`: its name, dtype, declared shape (None or
a string for a dynamic axis) and the concrete shape one run uses. Dims are resolved in this order:

1. the batch axis (axis 0 when it is dynamic, or the axis carrying the same symbol as another
   input's dynamic axis 0, as in an LSTM state ``(layers, batch, hidden)``) takes the batch size;
2. ``--input-shape NAME=1x3x224x224`` (a bare ``1x3x224x224`` for a model with one input; its
   batch entry is ignored, ``N`` or ``?`` may stand there);
3. a fixed number in the file (ONNX value info, Keras ``batch_input_shape``, a TorchScript/export
   signature: the loaders put what they know into the shape);
4. another input's dim of the same symbol, once that is known;
5. `DEFAULT_DIM` (32) otherwise, said in a note. When the model refuses those, the other
   `GUESSES` are tried in order (each on one sample): the choice depends on the model only.

Random inputs are drawn from one generator per input, seeded by (seed, input position): ids
(integers, or floats, that index a weight table through a Gather: an embedding, after any Cast,
Reshape, Squeeze, Unsqueeze or Flatten) uniform in [0, rows); other floats standard normal; integer
or boolean inputs named like a mask ones; other integers zeros (with a note); other booleans fair
coin flips.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import InputError, UnsupportedError, UsageError
from nncompress.ir import Graph

DEFAULT_DIM = 32  # an unknown non-batch dim (spatial size, sequence length): the same every run
GUESSES = (32, 28, 224, 64, 16, 8, 128, 1)  # tried in order when the model refuses DEFAULT_DIM
RANDOM_SAMPLES = 64  # seeded random inputs without --data (and without --samples) ...
# ... fewer on a model above 16 M parameters, at least RANDOM_MIN: a rule of its size, never of time
# (VGG16, 138 M: 8 samples; 64 were 25 s a run on 2 cores, and a budgeted preset runs it ~10 times)
RANDOM_WORK = RANDOM_SAMPLES * 16_000_000
RANDOM_MIN = 8


def random_samples(params: int) -> int:
    """How many seeded random inputs fidelity uses on a model of ``params`` parameters."""
    return max(RANDOM_MIN, min(RANDOM_SAMPLES, RANDOM_WORK // max(params, 1)))


DATA_CAP = 1000  # rows of --data used by default (the first ones); --samples N for more or fewer
BATCH_BYTES = 256 << 20  # a batch is sized so that its estimated activations stay near this
ACTIVATION_FACTOR = 128  # activations of a sample, estimated as this many times its input bytes
MAX_BATCH = 256

_PASS_THROUGH = ("Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity")


@dataclass
class InputSpec:
    """One graph input as a fidelity run feeds it."""

    name: str
    dtype: str
    declared: tuple[int | str | None, ...] | None
    shape: tuple[int, ...]  # one run's shape; the batch axis holds `fixed_batch` or 1
    batch_axis: int | None  # None: one array is fed whole to every run (a scalar, a fixed state)
    fixed_batch: int | None = None  # the model takes exactly this many samples a run
    guessed: dict[int, str] = field(default_factory=dict)  # axis -> symbol of a guessed dim
    fill: str = "normal"  # normal | ids | zeros | ones | bool
    high: int = 0  # ids are drawn in [0, high)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "declared_shape": None if self.declared is None else list(self.declared),
            "shape": list(self.shape),
            "batch_axis": self.batch_axis,
            "guessed_axes": sorted(self.guessed),
            "fill": self.fill if self.fill != "ids" else f"ids in [0, {self.high})",
        }


def parse_input_shapes(values: list[str] | None) -> dict[str | None, tuple[int | None, ...]]:
    """``["x=1x3x224x224", "sr=", "4x16"]`` -> {"x": (1, 3, 224, 224), "sr": (), None: (4, 16)};
    ``N`` or ``?`` stands for a dim left to the batch."""
    out: dict[str | None, tuple[int | None, ...]] = {}
    for v in values or []:
        name, eq, dims = v.rpartition("=")
        key = name.strip() if eq else None
        if eq and not key:
            raise UsageError(f"--input-shape {v!r} has no input name before '='")
        parts = [p.strip() for p in dims.strip().lower().split("x")] if dims.strip() else []
        shape: list[int | None] = []
        for p in parts:
            if p in ("n", "?"):
                shape.append(None)
            elif p.isdigit():
                shape.append(int(p))
            else:
                raise UsageError(
                    f"--input-shape {v!r}: {p!r} is not a dim",
                    hint="Write NAME=1x3x224x224 (N for the batch)",
                )
        if key in out:
            raise UsageError(f"--input-shape names {key or 'the single input'} twice")
        out[key] = tuple(shape)
    return out


def signatures(
    graph: Graph, shapes: dict[str | None, tuple[int | None, ...]] | None = None
) -> tuple[list[InputSpec], list[str]]:
    """The specs of ``graph``'s inputs with every dim resolved, and notes on what was guessed.

    Raises UnsupportedError when an input's rank is unknown and no --input-shape gives it.
    """
    shapes = dict(shapes or {})
    path = graph.meta.path or "the model"
    needed = [v for v in graph.inputs if v.name not in graph.weights]
    if None in shapes:
        if len(needed) != 1:
            raise UsageError(
                f"a bare --input-shape needs a model with one input; this one has {len(needed)}",
                hint=f"Name it: --input-shape NAME=..., NAME one of {[v.name for v in needed]}",
            )
        shapes[needed[0].name] = shapes.pop(None)
    unknown = sorted(str(k) for k in set(shapes) - {v.name for v in needed})
    if unknown:
        raise UsageError(
            f"--input-shape names {unknown}, which {path} has no input of",
            hint=f"Its inputs: {[v.name for v in needed]}",
        )
    declared: dict[str, tuple[int | str | None, ...]] = {}
    for v in needed:
        # a negative dim (-1 from some exporters) is as dynamic as a missing one
        d = None if v.shape is None else tuple(None if isinstance(x, int) and x < 0 else x for x in v.shape)
        given = shapes.get(v.name)
        if given is not None:
            if d is not None and len(d) != len(given):
                raise UsageError(
                    f"--input-shape {v.name}: {len(given)} dims, but {path} declares {len(d)} ({_fmt(d)})"
                )
            if d is None:
                d = tuple(None if g is None else f"?{v.name}:{i}" for i, g in enumerate(given))
        if d is None:
            raise UnsupportedError(
                f"the rank of input {v.name!r} is unknown, so no inputs can be made for it",
                path=graph.meta.path or None,
                hint=f"Pass --input-shape {v.name}=1x... or --data FILE.npz",
            )
        declared[v.name] = d
    # the batch: axis 0 when dynamic; or the axis carrying a symbol another input has on axis 0
    batch_syms = {d[0] for d in declared.values() if d and isinstance(d[0], str)}
    any_dynamic0 = any(d and not isinstance(d[0], int) for d in declared.values())
    axes: dict[str, int | None] = {}
    for name, d in declared.items():
        ax: int | None = None
        if d and not isinstance(d[0], int):
            ax = 0
        elif d:
            k = next((i for i, s in enumerate(d) if isinstance(s, str) and s in batch_syms), None)
            ax = k if k is not None else (0 if not any_dynamic0 else None)
        axes[name] = ax
    # symbols: what --input-shape and fixed dims say first, then guesses
    known: dict[str, int] = {}
    for name, d in declared.items():
        given = shapes.get(name)
        for i, s in enumerate(d):
            g = given[i] if given is not None else None
            if isinstance(s, int):
                if g is not None and g != s and i != axes[name]:
                    raise UsageError(f"--input-shape {name}: dim {i} is fixed at {s} in {path}, not {g}")
            elif i != axes[name] and g is not None and isinstance(s, str):
                known.setdefault(s, g)
    specs: list[InputSpec] = []
    guessed_syms: list[str] = []
    for v in needed:
        d = declared[v.name]
        given = shapes.get(v.name)
        ax = axes[v.name]
        dims: list[int] = []
        guessed: dict[int, str] = {}
        fixed = None
        for i, s in enumerate(d):
            g = given[i] if given is not None else None
            if i == ax:
                fixed = s if isinstance(s, int) else None
                dims.append(fixed if fixed is not None else 1)
            elif isinstance(s, int):
                dims.append(s)
            elif g is not None:
                dims.append(g)
            elif isinstance(s, str) and s in known:
                dims.append(known[s])
            else:
                sym = s if isinstance(s, str) else f"{v.name}[{i}]"
                guessed[i] = sym
                if sym not in guessed_syms:
                    guessed_syms.append(sym)
                dims.append(DEFAULT_DIM)
        fill, high = _fill(graph, v.name, v.dtype)
        specs.append(InputSpec(v.name, v.dtype, d, tuple(dims), ax, fixed, guessed, fill, high))
    notes = []
    for sp in specs:
        if sp.guessed:
            axes_txt = ", ".join(f"axis {i} ({sym})" for i, sym in sp.guessed.items())
            notes.append(
                f"input {sp.name}: {axes_txt} not known from the file: guessed {_fmt(sp.shape)} "
                f"(pass --input-shape {sp.name}=... to set it)"
            )
        if sp.fill == "zeros":
            notes.append(
                f"input {sp.name} ({sp.dtype}): no range known from the graph, fed zeros "
                "(pass --data to feed real values)"
            )
    return specs, notes


def with_guess(specs: list[InputSpec], value: int) -> list[InputSpec]:
    """``specs`` with every guessed dim set to ``value``."""
    out = []
    for s in specs:
        dims = list(s.shape)
        for i in s.guessed:
            dims[i] = value
        out.append(replace(s, shape=tuple(dims)))
    return out


def _fmt(shape: tuple[Any, ...]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) if shape else "scalar"


def _fill(graph: Graph, name: str, dtype: str) -> tuple[str, int]:
    """How random values of input ``name`` are drawn, and the id bound for "ids"."""
    dt = _np_dtype(dtype)
    rows = _table_rows(graph, name)
    if rows and (dt is None or dt != np.bool_):
        return "ids", rows  # float ids too: a Keras Input feeding an Embedding is float32
    if dt is not None and np.issubdtype(dt, np.floating):
        return "normal", 0
    masklike = bool(re.search(r"mask", name, re.IGNORECASE))
    if dt is not None and dt == np.bool_:
        return ("ones" if masklike else "bool"), 0
    return ("ones" if masklike else "zeros"), 0


def _table_rows(graph: Graph, name: str) -> int | None:
    """Rows of the smallest weight table that ``name`` indexes through a Gather, if any."""
    consumers = graph.consumers()
    seen, todo, rows = {name}, [name], list[int]()
    while todo:
        cur = todo.pop()
        for n in consumers.get(cur, []):
            if n.op == "Gather" and len(n.inputs) > 1 and n.inputs[1] == cur:
                w = graph.weights.get(n.inputs[0])
                if w is not None and w.shape:
                    ax = int(n.attrs.get("axis", 0))
                    if -len(w.shape) <= ax < len(w.shape) and w.shape[ax] > 0:
                        rows.append(int(w.shape[ax]))
            elif n.op in _PASS_THROUGH and n.inputs and n.inputs[0] == cur:
                for o in n.outputs:
                    if o and o not in seen:
                        seen.add(o)
                        todo.append(o)
    return min(rows) if rows else None


def _np_dtype(name: str) -> np.dtype[Any] | None:
    try:
        return np.dtype(name)
    except TypeError:
        return None


# -- the data of a run -------------------------------------------------------------------------------


@dataclass
class EvalData:
    """The arrays of a fidelity run, per input, with labels if any.

    A batched input's array holds all ``n`` samples on its spec's batch axis; an unbatched one is fed
    whole to every run. ``origin`` says where they came from.
    """

    specs: list[InputSpec]
    arrays: dict[str, np.ndarray]
    n: int
    y: np.ndarray | None
    origin: str
    notes: list[str] = field(default_factory=list)
    random: bool = False  # seeded random inputs rather than the user's data

    @property
    def step(self) -> int | None:
        """The number of samples the model takes a run when it fixes it, else None."""
        fixed = [s.fixed_batch for s in self.specs if s.batch_axis is not None and s.fixed_batch]
        return min(fixed) if fixed else None

    def chunk(self, i: int, j: int) -> dict[str, np.ndarray]:
        """The feeds of samples ``i:j``."""
        out = {}
        for s in self.specs:
            a = self.arrays[s.name]
            if s.batch_axis is not None:
                idx = [slice(None)] * a.ndim
                idx[s.batch_axis] = slice(i, j)
                a = a[tuple(idx)]
            out[s.name] = a
        return out

    def batched(self) -> bool:
        return any(s.batch_axis is not None for s in self.specs)


def random_data(specs: list[InputSpec], samples: int, seed: int, path: str | None = None) -> EvalData:
    """``samples`` seeded random inputs for ``specs`` (a multiple of a fixed batch, if any). Shapes
    are checked against the memory budget before drawing (InputError naming ``path``): a file can
    declare an input dimension of 2^64."""
    from nncompress._limits import check_alloc

    n = samples
    data = EvalData(specs, {}, n, None, f"seeded random inputs (seed {seed})", random=True)
    step = data.step
    if step and n % step:
        n = max(step, n - n % step)
        data.notes.append(f"{n} random samples, a multiple of the model's fixed batch of {step}")
    data.n = n
    for k, s in enumerate(specs):
        shape = list(s.shape)
        if s.batch_axis is not None:
            shape[s.batch_axis] = n
        item = (_np_dtype(s.dtype) or np.dtype(np.float32)).itemsize
        what = f"input {s.name!r} of shape {'x'.join(map(str, shape))} ({n} random samples)"
        if any(d >= 1 << 62 for d in shape):  # numpy refuses such a dim even where another is 0
            raise InputError(f"{what} has a dimension above 2^62", path=path)
        check_alloc(int(np.prod(shape, dtype=object)) * item, what, path or "")
        data.arrays[s.name] = draw(s, tuple(shape), np.random.default_rng([seed, k]))
    return data


def draw(spec: InputSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random values for ``spec`` (see the module's docstring for the rules)."""
    dt = _np_dtype(spec.dtype) or np.dtype(np.float32)
    if spec.fill == "normal":
        kind = np.float64 if dt == np.float64 else np.float32
        return rng.standard_normal(shape, dtype=kind).astype(dt, copy=False)
    if spec.fill == "ids":
        return rng.integers(0, spec.high, size=shape).astype(dt, copy=False)
    if spec.fill == "bool":
        return (rng.integers(0, 2, size=shape) == 1).astype(dt, copy=False)
    if spec.fill == "ones":
        return np.ones(shape, dtype=dt)
    return np.zeros(shape, dtype=dt)


def load_data(
    path: str | os.PathLike[str], specs: list[InputSpec], *, samples: int | None = None
) -> EvalData:
    """The arrays of ``--data FILE.npz``: one per input, keyed by its name (``x`` for a model with one
    input), samples on axis 0; ``y`` the labels. The first ``samples`` rows (default: up to DATA_CAP)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as d:
            files = list(d.files)
            arrays = {k: d[k] for k in files}
    except FileNotFoundError:
        raise InputError("no such file", path=str(p), hint="Check the --data path") from None
    except (OSError, ValueError, EOFError) as e:
        raise InputError(
            f"not a readable .npz ({e})", path=str(p), hint="Write it with numpy.savez"
        ) from None
    names = [s.name for s in specs]
    by_input: dict[str, np.ndarray] = {}
    for s in specs:
        if s.name in arrays:
            by_input[s.name] = arrays[s.name]
        elif len(specs) == 1 and "x" in arrays:
            by_input[s.name] = arrays["x"]
    missing = [n for n in names if n not in by_input]
    if missing:
        want = "x (or the input's name)" if len(specs) == 1 else ", ".join(names)
        raise InputError(
            f"has no array for input {', '.join(missing)} (found: {', '.join(files) or 'none'})",
            path=str(p),
            hint=f"Save one array per input with numpy.savez: {want}; labels as y",
        )
    y = arrays.get("y") if "y" not in names else None
    lens = {len(by_input[s.name]) for s in specs if s.batch_axis is not None and by_input[s.name].ndim}
    if len(lens) > 1:
        raise InputError(
            f"the inputs' arrays hold different numbers of samples ({sorted(lens)})", path=str(p)
        )
    total = lens.pop() if lens else (len(y) if y is not None else 1)
    if y is not None and len(y) != total:
        raise InputError(f"the inputs hold {total} samples but y has {len(y)}", path=str(p))
    n = min(total, samples if samples is not None else DATA_CAP)
    data = EvalData(specs, {}, n, None, str(p))
    if samples is None and total > DATA_CAP:
        data.notes.append(f"fidelity on the first {DATA_CAP} of {total} samples (--samples {total} for all)")
    step = data.step
    if step and n % step:
        n = max(step, n - n % step)
        data.notes.append(f"fidelity on {n} samples, a multiple of the model's fixed batch of {step}")
    data.n = n
    fitted = []
    for s in specs:
        a = by_input[s.name]
        if s.batch_axis is not None:
            a = _fit(np.asarray(a[:n] if np.ndim(a) else a), s, str(p))
            fitted.append(replace(s, shape=_run_shape(a.shape, s)))
        else:
            a = np.asarray(a)
            fitted.append(replace(s, shape=tuple(a.shape)))
        dt = _np_dtype(s.dtype)
        if dt is not None and a.dtype != dt:
            try:
                a = a.astype(dt)
            except (TypeError, ValueError) as e:
                raise InputError(f"array {s.name!r} cannot be cast to {s.dtype}: {e}", path=str(p)) from None
        data.arrays[s.name] = np.ascontiguousarray(a)
    data.specs = fitted
    data.y = None if y is None else np.asarray(y[:n])
    return data


def _run_shape(shape: tuple[int, ...], s: InputSpec) -> tuple[int, ...]:
    dims = list(shape)
    assert s.batch_axis is not None
    dims[s.batch_axis] = s.fixed_batch or 1
    return tuple(dims)


def _fit(a: np.ndarray, s: InputSpec, path: str) -> np.ndarray:
    """A --data array (samples on axis 0) in the model's layout: reshaped when a sample holds as many
    numbers as the declared shape (flat MNIST rows for a (N, 1, 28, 28) input), the samples moved to
    the batch axis."""
    assert s.batch_axis is not None and s.declared is not None
    rank = len(s.declared)
    per = [d for i, d in enumerate(s.declared) if i != s.batch_axis]
    if a.ndim == 0:
        raise InputError(
            f"array {s.name!r} is a scalar, the model expects {_fmt(s.declared)} (samples on axis 0)",
            path=path,
        )
    if a.ndim != rank:
        if all(isinstance(d, int) for d in per) and int(np.prod(a.shape[1:])) == int(
            np.prod(per)  # type: ignore[arg-type]
        ):
            a = a.reshape((a.shape[0], *per))  # type: ignore[arg-type]
        else:
            raise InputError(
                f"array {s.name!r} has shape {a.shape}, the model expects {_fmt(s.declared)} "
                f"(samples on axis 0)",
                path=path,
                hint="reshape the data to the model's input shape",
            )
    a = np.moveaxis(a, 0, s.batch_axis) if s.batch_axis else a
    bad = [
        i for i, d in enumerate(s.declared) if i != s.batch_axis and isinstance(d, int) and a.shape[i] != d
    ]
    if bad:
        raise InputError(
            f"array {s.name!r} has sample shape {_fmt(a.shape)} (batch axis {s.batch_axis}), the model "
            f"expects {_fmt(s.declared)}",
            path=path,
            hint="reshape the data to the model's input shape",
        )
    return a


def batch_size(data: EvalData) -> int:
    """Samples a run takes: the model's fixed batch, else what keeps the estimated activations of a
    batch near BATCH_BYTES (ACTIVATION_FACTOR times its input bytes), at most MAX_BATCH. It depends
    on shapes only, never on timing."""
    if data.step:
        return data.step
    per = 0
    for s in data.specs:
        if s.batch_axis is not None:
            dt = _np_dtype(s.dtype)
            per += (
                int(np.prod(s.shape, dtype=np.int64))
                // max(1, s.fixed_batch or 1)
                * (dt.itemsize if dt is not None else 4)
            )
    return int(min(MAX_BATCH, max(1, BATCH_BYTES // max(1, per * ACTIVATION_FACTOR))))
