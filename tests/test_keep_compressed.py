"""`nncompress decompress --keep-compressed` (`nncompress.torch.export`): a TorchScript file that
loads with torch alone, takes batch 1 and 8, computes what the dense decompressed model computes
(within 1e-4 relative, on the held-out digits), and stores the compressed arrays, not dense
matrices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import nncompress
from nncompress.formats import FORMATS
from nncompress.formats.base import Format
from nncompress.formats.shaped import Shaped, matrix_shape
from nncompress.pipeline.artifacts import graph_from_artifact
from nncompress.torch import fit_format, from_format
from nncompress.torch.export import save_torchscript, slim, stored_tensor_bytes

from .conftest import DATA, MODELS, run_cli

PRUNE = "prune:sparsity=0.8:scope=global"
CASES = {  # id: (model, pipeline); vggmini from Keras (channels-last), written through the CLI
    "lenet300-sham": ("lenet300.onnx", f"{PRUNE},quantize:method=kmeans:k=32,sham"),
    "lenet300-csr": ("lenet300.onnx", f"{PRUNE},csr"),
    "lenet300-lowrank": ("lenet300.onnx", "lowrank"),
    "vggmini.h5-psm": ("vggmini.h5", "psm:iterations=3"),
}
N = 64  # digits compared
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.trace.*` is deprecated:DeprecationWarning"),
    # the slim twins traced on their own: each trace is checked at another batch below
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state"),
]

# Loads each .pt with torch alone: any import of nncompress fails, and none may have happened.
LOADER = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "nncompress":
                raise ImportError("nncompress is not installed here")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    import torch

    for pt, src, dst in json.loads(sys.argv[1]):
        m = torch.jit.load(pt)
        x = torch.from_numpy(np.load(src)["x"])
        with torch.no_grad():
            b8 = torch.cat([m(x[i : i + 8]) for i in range(0, len(x), 8)])
            b1 = torch.cat([m(x[i : i + 1]) for i in range(4)])
        np.savez(dst, b8=b8.numpy(), b1=b1.numpy())
    try:
        import nncompress
    except ImportError:
        pass
    else:
        sys.exit("nncompress imported")
    assert not [k for k in sys.modules if k.startswith("nncompress")]
    """
)


def _payload(art: Path) -> int:
    """The bytes of the artifact's arrays: each format's stored arrays, each plain weight."""
    total = 0
    for w in graph_from_artifact(art).weights.values():
        if w.is_compressed:
            fmt = w.value.fmt if isinstance(w.value, Shaped) else w.value
            total += sum(np.asarray(a).nbytes for a in fmt.arrays().values())
        else:
            total += np.asarray(w.value).nbytes
    return total


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Per case: the artifact, its keep-compressed .pt, the dense decompressed .onnx, the digits
    fed and the outputs the torch-only subprocess computed."""
    tmp = tmp_path_factory.mktemp("keep")
    with np.load(DATA / "mnist_test.npz") as d:
        digits = d["x"][:N].astype(np.float32)
    out: dict[str, dict[str, Path]] = {}
    for case, (model, pipeline) in CASES.items():
        art, pt, dense = tmp / f"{case}.nnc", tmp / f"{case}.pt", tmp / f"{case}.onnx"
        nncompress.save(nncompress.compress(MODELS / model, pipeline=pipeline, samples=16), art)
        if model.startswith("vggmini"):
            r = run_cli("decompress", str(art), "-o", str(pt), "--keep-compressed", "-q")
            assert r.returncode == 0, r.stderr
        else:
            nncompress.decompress(art, pt, keep_compressed=True)
        nncompress.decompress(art, dense)
        shape = graph_from_artifact(art).inputs[0].shape
        x = tmp / f"{case}_x.npz"
        np.savez(x, x=digits.reshape(N, *shape[1:]))
        out[case] = {"art": art, "pt": pt, "dense": dense, "x": x, "y": tmp / f"{case}_y.npz"}
    jobs = [[str(c[k]) for k in ("pt", "x", "y")] for c in out.values()]
    r = subprocess.run(
        [sys.executable, "-I", "-c", LOADER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("case", CASES)
def test_loads_without_nncompress_and_matches_the_dense_model(
    case: str, built: dict[str, dict[str, Path]]
) -> None:
    c = built[case]
    x = np.load(c["x"])["x"]
    sess = ort.InferenceSession(str(c["dense"]), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    y = np.load(c["y"])
    assert y["b8"].shape == ref.shape and y["b1"].shape == ref[:4].shape
    assert _rel(y["b8"], ref) < 1e-4
    assert _rel(y["b1"], ref[:4]) < 1e-4


@pytest.mark.parametrize("case", CASES)
def test_file_holds_the_compressed_arrays(case: str, built: dict[str, dict[str, Path]]) -> None:
    c = built[case]
    stored, payload = stored_tensor_bytes(c["pt"]), _payload(c["art"])
    g = graph_from_artifact(c["art"])
    dense = sum(int(np.prod(w.shape)) * 4 for w in g.weights.values())
    if case.endswith(("csr", "lowrank")):  # the stored arrays themselves (CSR columns as int16)
        assert payload <= stored <= 1.05 * payload
    # sham keeps one code byte per nonzero cell where the artifact Huffman-codes it; all far from dense
    assert stored < 0.35 * dense
    # no tensor in the file is a compressed weight's dense matrix or kernel
    shapes = {tuple(w.shape) for w in g.weights.values() if w.is_compressed}
    shapes |= {matrix_shape(s) for s in shapes}
    tensors = torch.jit.load(str(c["pt"])).state_dict().values()
    assert not [t.shape for t in tensors if tuple(t.shape) in shapes]


def test_same_tensors_each_time(built: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    c = built["lenet300-sham"]
    again = save_torchscript(graph_from_artifact(c["art"]), tmp_path / "again.pt")
    a = torch.jit.load(str(c["pt"])).state_dict()
    b = torch.jit.load(str(again)).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_only_pt(built: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    art = built["lenet300-csr"]["art"]
    r = run_cli("decompress", str(art), "-o", str(tmp_path / "m.onnx"), "--keep-compressed")
    assert r.returncode == 2, r.stderr
    assert "--keep-compressed writes TorchScript, not '.onnx'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def _formats() -> dict[str, Format]:
    """Every registered format, the codebook ones both below and above half density (the CSR and
    the every-cell forms), cser with an implicit value, each transform kernel, sss with states."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(12, 20)).astype(np.float32)
    levels = rng.integers(-3, 4, size=w.shape).astype(np.float32) / 8

    def kept(share: float) -> np.ndarray:
        return levels * (rng.random(w.shape) < share)

    sparse, full = kept(0.3), np.where(levels == 0, np.float32(0.5), levels)
    implicit = np.where(rng.random(w.shape) < 0.6, np.float32(0.5), sparse)
    out = {
        f"{n}-sparse": FORMATS[n].encode(sparse) for n in ("csr", "csc", "coo", "im", "ham", "sham", "cser")
    }
    out |= {f"{n}-full": FORMATS[n].encode(full) for n in ("im", "ham")}
    out |= {
        "dense": FORMATS["dense"].encode(w),
        "cser-implicit": FORMATS["cser"].encode(implicit),
        "cabac-grid-sparse": FORMATS["cabac"].encode(sparse),
        "cabac-grid-full": FORMATS["cabac"].encode(full),
        "cabac-codebook": FORMATS["cabac"].encode(
            np.array([-0.7, 0.2, 1.3], np.float32)[rng.integers(0, 3, w.shape)]
        ),
        "lowrank": fit_format(w, "lowrank", budget=0.4),
        "sss": fit_format(w, "sss", budget=0.6, blocks=3, state=2),
        "psm": fit_format(w, "psm", budget=0.6, factors=3, iterations=5),
    }
    out |= {k: fit_format(w, "dct", budget=0.3, kernel=k) for k in ("dct", "dst", "dft")}
    return out


def test_every_format_has_a_slim_twin_that_traces() -> None:
    fmts = _formats()
    assert {(f.fmt if isinstance(f, Shaped) else f).name for f in fmts.values()} == set(FORMATS)
    x2, x5 = torch.randn(2, 20), torch.randn(5, 20)
    for name, fmt in fmts.items():
        w = from_format(fmt)
        s = slim(w)
        assert s.shape == w.shape, name
        with torch.no_grad():
            want, dense = w.matmul(x5), w.dense()
            traced = torch.jit.trace(s, (x2,))
            got = traced(x5)
        assert torch.allclose(s.matmul(x5), want, rtol=1e-5, atol=1e-5), name
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), name
        assert torch.allclose(s.dense(), dense, rtol=1e-5, atol=1e-5), name
        # nothing but the compressed data (the codebooks' full form: one small code per cell)
        held = sum(b.numel() * b.element_size() for b in s.buffers())
        assert held <= 4 * w.matrix_shape[0] * w.matrix_shape[1] or name in ("dense", "sss", "psm"), name
