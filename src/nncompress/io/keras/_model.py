"""Walking a Keras model config: Sequential and Functional models, nested ones inlined, each layer
call handed to its converter; and the Graph made of what the converters emitted.

Keras 2 and Keras 3 configs differ in how a layer's inputs are written (lists of [layer, node, tensor]
or serialised keras tensors) and in how node indices count nested models; both are read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nncompress.errors import InputError, UnsupportedError
from nncompress.io.keras._builder import Builder, Layer, Val
from nncompress.io.keras._converters import CONVERTERS
from nncompress.io.keras._store import KerasSource, snake
from nncompress.ir import Graph, ModelMeta, ValueInfo
from nncompress.ir.names import Counter

NESTED = ("Functional", "Model", "Sequential")


def _config_dtype(d: Any) -> str:
    """An input's dtype as its config gives it (a name, a mixed policy name or a DTypePolicy dict),
    float32 where absent. Not ir.names.dtype_name: that one resolves names through numpy, so a
    hand-written alias ("float", "f4", "<f4") would come out as numpy spells it, where this loader has
    always kept the config's spelling."""
    if isinstance(d, dict):  # Keras 3 DTypePolicy
        d = d.get("config", {}).get("name", "float32")
    d = str(d or "float32")
    return "float32" if d.startswith("mixed") else d


@dataclass
class _Ref:
    layer: str
    node: int
    tensor: int
    shape: tuple[int | None, ...] | None = None


def _tensor_refs(obj: Any, out: list[_Ref]) -> None:
    """Keras 3 node args: keras tensors (dicts with keras_history) anywhere inside lists and dicts."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            c = obj.get("config", {})
            h = c["keras_history"]
            shape = c.get("shape")
            out.append(_Ref(h[0], int(h[1]), int(h[2]), None if shape is None else tuple(shape)))
            return
        for v in obj.values():
            _tensor_refs(v, out)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _tensor_refs(v, out)


def _inbound(nodes: list[Any]) -> list[list[_Ref]]:
    """Each call of a layer as its input tensors, from Keras 2 (lists) or Keras 3 (dicts) inbound_nodes."""
    calls = []
    for node in nodes:
        refs: list[_Ref] = []
        if isinstance(node, dict):
            _tensor_refs(node.get("args", []), refs)
        else:
            refs = [_Ref(str(e[0]), int(e[1]), int(e[2])) for e in node]
        calls.append(refs)
    return calls


def _io_refs(v: Any) -> list[_Ref]:
    """A model's input_layers or output_layers: [name, node, tensor] triples."""
    if not v:
        return []
    if isinstance(v, dict):  # Keras 3 models with named (dict) inputs or outputs
        v = list(v.values())
    if isinstance(v[0], str):  # Keras 3 writes a single input/output unwrapped
        v = [v]
    return [_Ref(str(e[0]), int(e[1]), int(e[2])) for e in v]


class _Walker:
    """Walks a Keras model config and hands each layer call to its converter, which emits into ``b``."""

    def __init__(self, b: Builder) -> None:
        self.b = b

    def graph_input(self, lc: dict[str, Any], prefix: str) -> Val:
        b = self.b
        cfg = lc.get("config", {})
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        name = prefix + (cfg.get("name") or lc.get("name") or "input")
        if shape is None:
            raise UnsupportedError(
                f"input {name!r} has no shape in the config", path=b.path, hint="Build the model first"
            )
        dtype = _config_dtype(cfg.get("dtype"))
        b.inputs.append(ValueInfo(b.fresh(name), tuple(shape), dtype))
        return b.val(b.inputs[-1].name, shape, "kl", dtype)

    def model(
        self,
        lc: dict[str, Any],
        prefix: str,
        names: tuple[str, ...],
        keys: tuple[str, ...],
        xs: list[Val] | None,
    ) -> list[Val]:
        """Inline a Sequential or Functional model (the top one, or one nested as a layer)."""
        if lc.get("class_name") == "Sequential":
            return self.sequential(lc["config"], prefix, names, keys, xs)
        return self.functional(lc["config"], prefix, names, keys, xs)

    def sequential(
        self,
        cfg: dict[str, Any],
        prefix: str,
        names: tuple[str, ...],
        keys: tuple[str, ...],
        xs: list[Val] | None,
    ) -> list[Val]:
        layers = list(cfg.get("layers", []))
        first = layers[0] if layers else {}
        if first.get("class_name") == "InputLayer":
            layers = layers[1:]
        if xs is not None:
            x = xs[0]
        elif first.get("class_name") == "InputLayer":
            x = self.graph_input(first, prefix)
        else:
            c = first.get("config", {})
            shape = c.get("batch_input_shape") or c.get("batch_shape") or cfg.get("build_input_shape")
            x = self.graph_input(
                {"config": {"batch_shape": shape, "dtype": c.get("dtype"), "name": "input"}}, prefix
            )
        key_of = Counter()
        for lc in layers:
            key = key_of(snake(lc["class_name"]))
            x = self.apply(lc, prefix, names, (*keys, key), [x])[0]
        return [x]

    def _offset(self, lc: dict[str, Any], io: bool) -> int:
        """Where a layer's node indices start in the config (nested models own a node of their own)."""
        cls = lc.get("class_name")
        if self.b.major < 3:  # tf_keras functional.py _should_skip_first_node
            if cls in ("Functional", "Model"):
                return 1
            if cls == "Sequential":
                first = (lc.get("config", {}).get("layers") or [{}])[0]
                c = first.get("config", {})
                return int(first.get("class_name") == "InputLayer" or "batch_input_shape" in c)
            return 0
        return int(io and cls == "Functional")  # Keras 3 reindexes only input/output_layers this way

    def functional(
        self,
        cfg: dict[str, Any],
        prefix: str,
        names: tuple[str, ...],
        keys: tuple[str, ...],
        xs: list[Val] | None,
    ) -> list[Val]:
        """Layers run once their inputs exist, each of a layer's calls (inbound nodes) separately."""
        layers = cfg.get("layers", [])
        by_name = {lc.get("name") or lc["config"]["name"]: lc for lc in layers}
        counter = Counter()
        key_of = {n: counter(snake(lc["class_name"])) for n, lc in by_name.items()}
        calls: dict[str, list[list[_Ref]]] = {
            n: _inbound(lc.get("inbound_nodes") or []) for n, lc in by_name.items()
        }
        in_refs, out_refs = _io_refs(cfg.get("input_layers")), _io_refs(cfg.get("output_layers"))
        n_out: dict[tuple[str, int], int] = {}
        tensors: dict[tuple[str, int, int], Val] = {}
        shapes: dict[tuple[str, int, int], Any] = {}

        def locate(r: _Ref, io: bool) -> tuple[str, int, int]:
            lname, ni, ti = r.layer, r.node, r.tensor
            n = max(1, len(calls.get(lname, [])))
            idx = ni - self._offset(by_name.get(lname, {}), io)
            if not 0 <= idx < n:
                idx = ni if 0 <= ni < n else n - 1
            return lname, idx, ti

        for cs in calls.values():
            for refs in cs:
                for r in refs:
                    k = locate(r, False)
                    n_out[k[:2]] = max(n_out.get(k[:2], 1), k[2] + 1)
                    if r.shape is not None:
                        shapes.setdefault(k, r.shape)
        for r in out_refs:
            k = locate(r, True)
            n_out[k[:2]] = max(n_out.get(k[:2], 1), k[2] + 1)
        for j, r in enumerate(in_refs):
            lc = by_name[r.layer]
            tensors[(r.layer, 0, 0)] = xs[j] if xs is not None else self.graph_input(lc, prefix)

        def fetch(r: _Ref, io: bool) -> Val | None:
            k = locate(r, io)
            v = tensors.get(k)
            if v is not None and v.shape is None and k in shapes:
                v.shape = tuple(shapes[k])
            return v

        pending = [
            (n, i, refs)
            for n, cs in calls.items()
            for i, refs in enumerate(cs)
            if by_name[n].get("class_name") != "InputLayer"
        ]
        while pending:
            rest = []
            for lname, i, refs in pending:
                ins = [v for r in refs if (v := fetch(r, False)) is not None]
                if len(ins) < len(refs):
                    rest.append((lname, i, refs))
                    continue
                outs = self.apply(
                    by_name[lname], prefix, names, (*keys, key_of[lname]), ins, n_out.get((lname, i), 1)
                )
                for t, v in enumerate(outs):
                    tensors[(lname, i, t)] = v
            if len(rest) == len(pending):
                missing = sorted({r.layer for _, _, refs in rest for r in refs} - set(by_name))
                raise InputError(
                    "model config has a cycle or refers to unknown layers"
                    + (f" ({', '.join(missing)})" if missing else ""),
                    path=self.b.path,
                )
            pending = rest
        outs = [v for r in out_refs if (v := fetch(r, True)) is not None]
        if len(outs) < len(out_refs):
            raise InputError("model config names an output that no layer produces", path=self.b.path)
        return outs

    def apply(
        self,
        lc: dict[str, Any],
        prefix: str,
        names: tuple[str, ...],
        keys: tuple[str, ...],
        xs: list[Val],
        n_out: int = 1,
    ) -> list[Val]:
        cls = lc.get("class_name", "")
        cfg = lc.get("config", {}) if isinstance(lc.get("config"), dict) else {}
        lname = cfg.get("name") or lc.get("name") or snake(cls)
        L = Layer(cls, cfg, prefix + lname, (*names, lname), keys, n_out)
        if cls in NESTED and isinstance(cfg.get("layers"), list):
            return self.model(lc, f"{L.name}/", L.names, L.keys, xs)
        conv = CONVERTERS.get(cls)
        return conv(self.b, L, xs) if conv is not None else self.b.opaque_op(L, xs)


def is_model_config(cfg: Any) -> bool:
    """Whether ``cfg`` is a Sequential or Functional config this module can walk."""
    return (
        isinstance(cfg, dict)
        and cfg.get("class_name") in NESTED
        and isinstance(cfg.get("config", {}).get("layers"), list)
    )


def build(cfg: dict[str, Any], store: Any, major: int, path: str) -> Graph:
    """The IR graph of model config ``cfg``, its weights read from ``store``."""
    b = Builder(store, major, path)
    outs = _Walker(b).model(cfg, "", (), (), None)
    outputs = [ValueInfo(b.get(v, "kl"), None if v.shape is None else tuple(v.shape), v.dtype) for v in outs]
    return Graph(
        nodes=b.nodes,
        inputs=b.inputs,
        outputs=outputs,
        weights=b.weights,
        name=str(cfg.get("config", {}).get("name") or "model"),
        source=KerasSource(path, "", b.datasets),
        meta=ModelMeta(
            notes=[f"layer {o} is kept as an opaque op: the executor cannot run it" for o in b.opaque]
        ),
    )
