"""What a torch.save file holds, found in its inert unpickled structure (see `unpickle`).

A state_dict, a single tensor, a pickled ``nn.Module`` (its parameters and persistent buffers, named
as ``module.state_dict()`` names them), or a checkpoint dict (Lightning's included) whose weights sit
under a wrapper key. Training state (optimizer moments, schedulers, step counters) is told apart from
the weights so that the artifact can leave it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nncompress.io.torch.unpickle import Opaque, TensorRef, iter_refs

__all__ = ["TRAINING_KEYS", "Found", "find_weights"]

# checkpoint keys that commonly wrap a state_dict, in the order they are tried
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "module", "ema", "weights")

# checkpoint entries that are training state, not the model: optimizer state, schedulers, step
# counters (plain torch loops and Lightning's names)
TRAINING_KEYS = frozenset(
    """optimizer optimizers optimizer_state_dict optimizer_state optimizer_states optim opt
    scheduler schedulers scheduler_state_dict lr_scheduler lr_schedulers lr_scheduler_state_dict
    scaler grad_scaler amp loops epoch epochs global_step step steps iteration iterations""".split()
)


@dataclass
class Found:
    kind: str  # "state-dict" | "checkpoint" | "module" | "tensor"
    key: str | None  # the checkpoint entry holding the weights (None: the top level)
    refs: dict[str, TensorRef]
    notes: list[str] = field(default_factory=list)
    training: dict[str, tuple[int, int]] = field(default_factory=dict)  # entry -> (tensors, bytes)
    ignored: list[str] = field(default_factory=list)  # other entries, kept as they are


def is_ref_map(v: Any) -> bool:
    return (
        isinstance(v, Mapping)
        and len(v) > 0
        and all(isinstance(k, str) for k in v)
        and all(isinstance(t, TensorRef) for t in v.values())
    )


def is_module(v: Any) -> bool:
    st = v.record.state if isinstance(v, Opaque) else None
    return isinstance(st, dict) and "_parameters" in st and "_modules" in st


def module_state(m: Opaque, prefix: str = "", depth: int = 0) -> dict[str, TensorRef]:
    """``m.state_dict()`` of a pickled module, read from its recorded ``__dict__``."""
    st = m.record.state
    out: dict[str, TensorRef] = {}
    if not isinstance(st, dict) or depth > 100:
        return out
    params, buffers, mods = st.get("_parameters"), st.get("_buffers"), st.get("_modules")
    skip = st.get("_non_persistent_buffers_set")
    skip = skip if isinstance(skip, (set, frozenset)) else set()
    for table, drop in ((params, set()), (buffers, skip)):
        if isinstance(table, Mapping):
            for k, t in table.items():
                if isinstance(t, TensorRef) and k not in drop:
                    out[f"{prefix}{k}"] = t
    if isinstance(mods, Mapping):
        for k, sub in mods.items():
            if isinstance(sub, Opaque):
                out.update(module_state(sub, f"{prefix}{k}.", depth + 1))
    return out


def _bytes(refs: list[TensorRef]) -> int:
    from nncompress.io.torch.archive import ITEMSIZE

    total = 0
    for r in refs:
        n = 1
        for d in r.shape:
            n *= d
        total += n * ITEMSIZE.get(r.dtype, 1)
    return total


def find_weights(obj: Any) -> Found | None:
    """The weights of a torch.save object, or None where it holds none nncompress can name."""
    if isinstance(obj, TensorRef):
        return Found("tensor", None, {"tensor": obj}, ["a single tensor, named 'tensor'"])
    if is_ref_map(obj):
        return Found("state-dict", None, dict(obj))
    if is_module(obj):
        assert isinstance(obj, Opaque)
        note = f"a pickled {obj.qualname} module: its tensors read without unpickling it"
        return Found("module", None, module_state(obj), [note])
    if not isinstance(obj, Mapping):
        return None
    key: str | None = None
    refs: dict[str, TensorRef] | None = None
    for k in (*WRAPPER_KEYS, *(k for k in obj if isinstance(k, str))):
        v = obj.get(k)
        if isinstance(v, Mapping) and is_ref_map(v):
            key, refs = k, dict(v)
            break
        if isinstance(v, Opaque) and is_module(v):
            key, refs = k, module_state(v)
            break
    notes: list[str] = []
    if refs is None:
        loose = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, TensorRef)}
        if not loose:
            return None
        refs = loose
    elif is_module(obj.get(key)):
        notes.append(f"{key!r} holds a pickled module: its tensors read without unpickling it")
    found = Found("checkpoint", key, refs, notes)
    for k, v in obj.items():
        if k == key or (key is None and isinstance(v, TensorRef)):
            continue
        tensors = [r for _, r in iter_refs(v)]
        if isinstance(k, str) and k in TRAINING_KEYS:
            found.training[k] = (len(tensors), _bytes(tensors))
        else:
            found.ignored.append(f"{k} ({len(tensors)} tensors)" if tensors else str(k))
    return found
