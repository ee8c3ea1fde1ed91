"""Runtimes that compute a model's outputs for fidelity: onnxruntime for ONNX sources, else the
numpy reference executor; and the batching loop that feeds them.

ONNX sources run in onnxruntime, the runtime they are deployed with: the original from its file, the
compressed model from the file the ONNX writer makes of it (what `decompress` would write). The
reference executor runs everything else, and any ONNX graph onnxruntime cannot load. A runtime that
fails says why in one line (`RuntimeFailure`); compress then reports fidelity as not measured.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import NNCError
from nncompress.inputs import EvalData
from nncompress.ir import Graph

Feeds = dict[str, np.ndarray]
RunFn = Callable[[Feeds], np.ndarray]  # the compared output of one run

EXECUTOR = "reference executor"
SPILL_BYTES = 512 << 20  # outputs above this are kept in a temp file, not in memory


class RuntimeFailure(Exception):
    """A runtime could not compute outputs; the message says why in one line."""


@dataclass
class Runtime:
    """A named way to compute the first output of a model on a batch of feeds."""

    name: str
    fn: RunFn
    cleanup: Callable[[], None] | None = None
    output: str = ""  # the output compared: the first floating-point tensor output, else the first
    path: str = ""  # the model file a run that never ends is blamed on (`_stall.running`)

    def close(self) -> None:
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None


def _why(e: BaseException) -> str:
    msg = e.detail if isinstance(e, NNCError) else str(e)
    msg = " ".join(msg.split())
    if len(msg) > 300:
        msg = msg[:297] + "..."
    return f"{type(e).__name__}: {msg}" if not isinstance(e, NNCError) else msg


def _first_float(types: list[str]) -> int:
    """Index of the first floating-point output (a classifier's scores rather than its label)."""
    return next((i for i, t in enumerate(types) if "float" in t or t in ("double", "tensor(double)")), 0)


def executor(graph: Graph) -> Runtime:
    """The numpy reference executor on ``graph`` (its first floating-point output)."""
    from nncompress.ir.interpreter import run

    k = _first_float([v.dtype for v in graph.outputs])
    name = graph.outputs[k].name if graph.outputs else ""

    def fn(feeds: Feeds) -> np.ndarray:
        return np.asarray(run(graph, feeds, batch_size=None)[k])

    return Runtime(EXECUTOR, fn, output=name, path=graph.meta.path)


def onnx_applies(graph: Graph) -> bool:
    """Whether ``graph`` came from an ONNX file and onnxruntime is installed."""
    import importlib.util

    return (
        graph.meta.format == "onnx"
        and graph.has_graph
        and importlib.util.find_spec("onnxruntime") is not None
    )


def onnxruntime_file(
    path: str | os.PathLike[str], *, cleanup: Callable[[], None] | None = None, shown: str = ""
) -> Runtime:
    """onnxruntime on the ONNX file ``path`` (external data next to it); RuntimeFailure if it will not
    load. ``shown``: the model file to name for a temp ``path`` written from it."""
    shown = shown or str(path)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.use_deterministic_compute = True
    from nncompress import _stall

    try:
        with _stall.running(f"onnxruntime {ort.__version__}", shown, 0):
            sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
        if cleanup is not None:
            cleanup()
        raise RuntimeFailure(f"onnxruntime cannot load it ({_why(e)})") from None
    outs = sess.get_outputs()
    first = outs[_first_float([o.type for o in outs])].name
    # initializers also declared as graph inputs can be fed (`onnxruntime_overridable`)
    names = {i.name for i in sess.get_inputs()} | {i.name for i in sess.get_overridable_initializers()}

    def fn(feeds: Feeds) -> np.ndarray:
        return np.asarray(sess.run([first], {k: v for k, v in feeds.items() if k in names})[0])

    return Runtime(f"onnxruntime {ort.__version__}", fn, cleanup, first, shown)


def _written(
    graph: Graph, kind: str, suffix: str, save: Callable[[Graph, Path], Path]
) -> tuple[Path, Callable[[], None]]:
    """``graph`` written by ``save`` into a temp folder of its own (removed by the returned cleanup)."""
    from nncompress._tempfiles import temp_dir

    d = temp_dir(kind)  # removed at exit too, should an interrupt come before cleanup runs
    name = Path(graph.meta.path).stem or "model"

    def cleanup() -> None:
        shutil.rmtree(d, ignore_errors=True)

    try:
        return save(graph, d / f"{name}{suffix}"), cleanup
    except Exception as e:
        cleanup()
        raise RuntimeFailure(f"cannot write it as {suffix[1:]} ({_why(e)})") from None


def onnxruntime_graph(graph: Graph) -> Runtime:
    """onnxruntime on the file the ONNX writer makes of ``graph`` (in a temp dir, removed on close)."""
    from nncompress.io.onnx import save_onnx

    p, cleanup = _written(graph, "ort", ".onnx", save_onnx)
    return onnxruntime_file(p, cleanup=cleanup, shown=graph.meta.path)


def onnxruntime_overridable(graph: Graph, names: list[str]) -> tuple[Runtime, Callable[[Feeds], None]] | None:
    """onnxruntime on ``graph`` written once with the initializers of weights ``names`` declared as
    graph inputs too, so a run can feed other values for them: the sensitivity scan changes one
    weight per run, and writing the file and building a session each time was most of its time
    (VGG16: 550 MB written and loaded per run). Returns the runtime and a function that sets the
    weights fed from then on ({weight name: array in the IR layout}; an empty dict: the graph's
    own), or None where a weight is not a top-level initializer of an ONNX source (a subgraph's, a
    sparse one, a Constant's) or the file will not load so. The runtime's numbers may differ from
    the deployed file's in the last bits (onnxruntime does not pre-pack a weight that can be fed).
    """
    from nncompress.io.onnx.source import Source

    src = graph.source
    if not onnx_applies(graph) or not isinstance(src, Source):
        return None
    inputs: dict[str, str] = {}
    for n in names:
        scope, kind, _, key = src.locators.get(graph.weights[n].source, ((None,), "", 0, ""))
        if scope or kind != "init":
            return None
        inputs[n] = key  # the initializer's name
    from nncompress.io.onnx import save_onnx

    try:
        path, cleanup = _written(graph, "ort", ".onnx", save_onnx)
    except RuntimeFailure:
        return None
    try:
        import onnx
        from onnx import helper

        model = onnx.load(str(path), load_external_data=False)  # external data stays beside it
        by_name = {t.name: t for t in model.graph.initializer}
        declared = {i.name for i in model.graph.input}
        for source in inputs.values():
            t = by_name.get(source)
            if t is None:
                raise KeyError(source)
            if source not in declared:
                model.graph.input.append(helper.make_tensor_value_info(source, t.data_type, list(t.dims)))
        onnx.save_model(model, str(path))
        rt = onnxruntime_file(path, cleanup=cleanup, shown=graph.meta.path)
    except Exception:  # RuntimeFailure, or a file the onnx package cannot re-save: write per run
        cleanup()
        return None
    fed: Feeds = {}
    base = rt.fn

    def fn(feeds: Feeds) -> np.ndarray:
        return base({**feeds, **fed})

    def set_weights(arrays: Feeds) -> None:
        fed.clear()
        for n, a in arrays.items():
            fed[inputs[n]] = np.ascontiguousarray(graph.weights[n].to_source(a))

    return Runtime(rt.name, fn, rt.cleanup, rt.output, graph.meta.path), set_weights


def torch_applies(graph: Graph) -> bool:
    """Whether ``graph`` came from a TorchScript archive and torch is installed."""
    import importlib.util

    return (
        graph.meta.format == "torchscript"
        and graph.has_graph
        and importlib.util.find_spec("torch") is not None
    )


def torchscript_file(
    path: str | os.PathLike[str], inputs: list[str], *, cleanup: Callable[[], None] | None = None
) -> Runtime:
    """torch on the TorchScript archive ``path``: the module is called with the graph's inputs in
    order, and its first floating-point tensor output is compared."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 2.10+ deprecates TorchScript
            module = torch.jit.load(str(path), map_location="cpu")
        module.eval()
    except Exception as e:
        if cleanup is not None:
            cleanup()
        raise RuntimeFailure(f"torch cannot load it ({_why(e)})") from None

    def fn(feeds: Feeds) -> np.ndarray:
        with torch.no_grad():
            out = module(*[torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in inputs])
        flat = out if isinstance(out, (tuple, list)) else [out]
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        if not tensors:
            raise RuntimeFailure("the TorchScript module returns no tensor")
        first = next((t for t in tensors if t.is_floating_point()), tensors[0])
        return first.detach().float().numpy() if first.dtype == torch.bfloat16 else first.detach().numpy()

    return Runtime(f"torch {torch.__version__}", fn, cleanup, "output", str(path))


def torchscript_graph(graph: Graph) -> Runtime:
    """torch on the archive the torch writer makes of ``graph`` (in a temp dir, removed on close)."""
    from nncompress.io.torch import save_torch

    p, cleanup = _written(graph, "ts", ".pt", save_torch)
    rt = torchscript_file(p, [v.name for v in graph.inputs], cleanup=cleanup)
    return dataclasses.replace(rt, path=graph.meta.path)


def outputs(rt: Runtime, data: EvalData, batch: int) -> np.ndarray:
    """The compared output of every sample of ``data`` as rows (n, -1) (float32, or float64 for a
    float64 output), ``batch`` at a time.

    When the first batch fails and the model does not fix its batch, it is run again one sample at a
    time (an export may hard-code batch 1 in a Reshape). An output that does not follow the samples
    (no batch axis) comes from one run on all of them, and is one row. RuntimeFailure when the
    runtime cannot compute it.
    """
    n = data.n
    steps = [max(1, min(batch, n))]
    if data.step is None and steps[0] > 1:
        steps.append(1)
    err: BaseException | None = None
    for step in steps:
        try:
            return _outputs(rt, data, step)
        except RuntimeFailure:
            raise
        except Exception as e:  # the executor's NNCErrors, onnxruntime's own types, numpy's errors
            if os.environ.get("NNCOMPRESS_DEBUG") and not isinstance(e, NNCError):
                raise
            err = e
    assert err is not None
    raise RuntimeFailure(f"{rt.name} cannot run it ({_why(err)})")


def _run(rt: Runtime, data: EvalData, i: int, j: int) -> np.ndarray:
    """One run on samples [i, j), ended with one line by the CLI's watchdog should it never return."""
    from nncompress import _stall

    with _stall.running(rt.name, rt.path or None, j - i):
        return rt.fn(data.chunk(i, j))


def _outputs(rt: Runtime, data: EvalData, step: int) -> np.ndarray:
    n = data.n
    if not data.batched():
        return _rows(_run(rt, data, 0, n), 1)
    store: np.ndarray | None = None
    for i in range(0, n, step):
        j = min(n, i + step)
        out = _run(rt, data, i, j)
        if out.ndim == 0 or out.shape[0] != j - i:
            if i == 0 and step >= n:
                return _rows(out, 1)  # not per sample: one row for the whole run
            if i == 0:
                return _rows(_run(rt, data, 0, n), 1)
            raise RuntimeFailure(f"{rt.name}: the output's first axis does not follow the batch")
        rows = out.reshape(j - i, -1)
        if store is None:
            store = _store(n, rows.shape[1], np.float64 if rows.dtype == np.float64 else np.float32)
        store[i:j] = rows
    assert store is not None
    return store


def _store(n: int, k: int, dtype: type[np.floating[Any]]) -> np.ndarray:
    """Room for ``n`` output rows of ``k`` numbers: in memory, or above SPILL_BYTES in an unlinked
    temp file (1,000 samples of a segmentation map or a detector's boxes run to gigabytes)."""
    if n * k * np.dtype(dtype).itemsize <= SPILL_BYTES:
        return np.empty((n, k), dtype=dtype)
    return np.memmap(tempfile.TemporaryFile(prefix="nnc-out-"), dtype=dtype, mode="w+", shape=(n, k))


def _rows(out: np.ndarray, k: int) -> np.ndarray:
    a = np.asarray(out)
    return a.astype(np.float64 if a.dtype == np.float64 else np.float32).reshape(k, -1)
