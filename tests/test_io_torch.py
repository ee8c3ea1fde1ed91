"""The PyTorch loader and writer: state_dicts, checkpoints, TorchScript and torch.export files.

Every fixture is built here from small seeded models; outputs of the IR (run by the reference
executor) are compared with the outputs of torch itself.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nncompress.errors import InputError, OutputError, UnsupportedError
from nncompress.io import load
from nncompress.io.torch import load_torch, save_torch
from nncompress.ir import Graph, ValueInfo, Weight
from nncompress.ir.interpreter import run

RTOL, ATOL = 1e-4, 1e-5

# torch 2.13 deprecates TorchScript, which these tests still write on purpose
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.bn = nn.BatchNorm1d(16)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc2(self.drop(self.act(self.bn(self.fc1(x))))), dim=-1)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(x.view(x.size(0), -1))


class EmbNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.fc = nn.Linear(6, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(F.gelu(self.embed(ids).mean(dim=1)))


class CumNet(nn.Module):
    """Uses an op (cumsum) the IR has no counterpart for."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.fc(x), dim=1)


def _build(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed({"mlp": 1, "cnn": 2, "emb": 3}[name])
    model: nn.Module = {"mlp": MLP, "cnn": CNN, "emb": EmbNet}[name]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.num_batches_tracked.fill_(17)
    model.eval()
    x = {
        "mlp": lambda: torch.randn(4, 8),
        "cnn": lambda: torch.randn(2, 3, 8, 8),
        "emb": lambda: torch.randint(0, 10, (2, 5)),
    }[name]()
    return model, x


def _write(kind: str, model: nn.Module, x: torch.Tensor, path: Path) -> Path:
    if kind == "script":
        torch.jit.save(torch.jit.script(model), str(path))
    elif kind == "trace":
        torch.jit.save(torch.jit.trace(model, x), str(path))
    elif kind == "export":
        torch.export.save(torch.export.export(model, (x,)), str(path))
    elif kind == "state":
        torch.save(model.state_dict(), str(path))
    elif kind == "legacy":
        torch.save(model.state_dict(), str(path), _use_new_zipfile_serialization=False)
    else:
        raise AssertionError(kind)
    return path


def _reload_module(kind: str, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    if kind == "export":
        return torch.export.load(str(path)).module()
    return torch.jit.load(str(path))


def _scale(g: Graph, factor: float) -> Graph:
    g2 = g.copy()
    for w in g2.weights.values():
        if w.role != "const" and np.issubdtype(w.dtype, np.floating):
            w.value = (w.array * factor).astype(w.dtype)
    return g2


def _one_line(e: pytest.ExceptionInfo[BaseException], path: Path) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


# -- state_dicts and checkpoints ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["state", "legacy"])
def test_state_dict_is_weights_only_with_roles_and_round_trips(kind: str, tmp_path: Path) -> None:
    model, _ = _build("cnn")
    emb, _ = _build("emb")
    sd = {**model.state_dict(), **{f"head.{k}": v for k, v in emb.state_dict().items()}}
    path = tmp_path / "w.pt"
    if kind == "legacy":
        torch.save(sd, str(path), _use_new_zipfile_serialization=False)
    else:
        torch.save(sd, str(path))
    g = load_torch(path)
    assert not g.has_graph and not g.nodes
    assert g.meta.format == "torch-state-dict" and g.meta.producer == "pytorch"
    assert g.meta.notes[0] == "weights only: a state_dict has no graph; fidelity is measured on weights"
    assert list(g.weights) == list(sd)
    for k, t in sd.items():
        np.testing.assert_array_equal(g.weights[k].array, t.numpy())
        assert g.weights[k].dtype == t.numpy().dtype
    roles = {k: (w.role, w.op, w.layer) for k, w in g.weights.items()}
    assert roles["conv.weight"] == ("kernel", "Conv", "conv")
    assert roles["conv.bias"] == ("bias", "Conv", "conv")
    assert roles["bn.weight"][:2] == ("bn_gamma", "BatchNormalization")
    assert roles["bn.bias"][:2] == ("bn_beta", "BatchNormalization")
    assert roles["bn.running_mean"][:2] == ("bn_mean", "BatchNormalization")
    assert roles["bn.running_var"][:2] == ("bn_var", "BatchNormalization")
    assert roles["bn.num_batches_tracked"][0] == "buffer"
    assert g.weights["bn.num_batches_tracked"].dtype == np.int64
    assert roles["fc.weight"] == ("kernel", "Dense", "fc")
    assert roles["head.embed.weight"][:2] == ("embedding", "Embedding")
    assert [w.name for w in g.select()] == ["conv.weight", "fc.weight", "head.fc.weight"]

    out = save_torch(_scale(g, 0.5), tmp_path / "out.pt")
    assert zipfile.is_zipfile(out) == (kind == "state")  # a legacy file stays legacy
    back = torch.load(str(out), weights_only=True)
    assert list(back) == list(sd)
    for k, t in sd.items():
        assert back[k].dtype == t.dtype
        want = t * 0.5 if t.is_floating_point() else t
        torch.testing.assert_close(back[k], want, rtol=0, atol=0)
    # and reloads to the same IR weights
    g2 = load_torch(out)
    for k in sd:
        np.testing.assert_array_equal(g2.weights[k].array, _scale(g, 0.5).weights[k].array)


def test_checkpoint_training_state_left_out_unless_kept(tmp_path: Path) -> None:
    model, x = _build("mlp")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(x).sum().backward()
    opt.step()
    model.eval()
    ckpt = {
        "epoch": 7,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": opt.state_dict(),
        "classes": ["a", "b"],
    }
    path = tmp_path / "ckpt.pth"
    torch.save(ckpt, str(path))
    n_opt = sum(len(s) for s in opt.state_dict()["state"].values())
    g = load_torch(path)
    assert g.meta.format == "torch-checkpoint" and not g.has_graph
    note = next(n for n in g.meta.notes if n.startswith("training state left out"))
    assert f"epoch, optimizer_state_dict ({n_opt} tensors, " in note and "--keep-training-state" in note
    assert "kept unchanged: classes" in g.meta.notes
    assert g.meta.extra["training_state"]["optimizer_state_dict"]["tensors"] == n_opt
    assert list(g.weights) == list(model.state_dict())
    assert g.weights["bn.num_batches_tracked"].dtype == np.int64
    assert int(g.weights["bn.num_batches_tracked"].array) == 18  # 17 + the training step

    out = save_torch(_scale(g, 0.5), tmp_path / "out.pth")
    back = torch.load(str(out), weights_only=True)
    assert list(back) == ["model_state_dict", "classes"] and back["classes"] == ["a", "b"]
    assert out.stat().st_size < path.stat().st_size
    for k, t in ckpt["model_state_dict"].items():
        want = t * 0.5 if t.is_floating_point() else t
        torch.testing.assert_close(back["model_state_dict"][k], want, rtol=0, atol=0)

    kept = _scale(g, 0.5)
    kept.meta.extra["keep_training_state"] = True
    back = torch.load(str(save_torch(kept, tmp_path / "kept.pth")), weights_only=True)
    assert list(back) == list(ckpt) and back["epoch"] == 7
    torch.testing.assert_close(back["optimizer_state_dict"], ckpt["optimizer_state_dict"], rtol=0, atol=0)


def test_checkpoint_wrapper_key_and_dataparallel_prefix(tmp_path: Path) -> None:
    model, _ = _build("mlp")
    sd = nn.DataParallel(model).state_dict()
    path = tmp_path / "ck.ckpt"
    torch.save({"state_dict": sd, "hparams": {"lr": 0.1}}, str(path))
    g = load_torch(path)
    assert list(g.weights) == list(sd) and all(k.startswith("module.") for k in g.weights)
    assert g.weights["module.fc1.weight"].role == "kernel"
    assert any("module." in n for n in g.meta.notes)
    assert "kept unchanged: hparams" in g.meta.notes


# -- graphs: TorchScript and torch.export ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn", "emb"])
@pytest.mark.parametrize("kind", ["script", "trace", "export"])
def test_graph_file_runs_like_torch(kind: str, name: str, tmp_path: Path) -> None:
    model, x = _build(name)
    path = _write(kind, model, x, tmp_path / ("m.pt2" if kind == "export" else "m.pt"))
    with torch.no_grad():
        want = model(x).numpy()
    g = load(path)  # through the dispatcher
    assert g.has_graph, g.meta.notes
    assert g.meta.format == ("torch-export" if kind == "export" else "torchscript")
    assert not any(n.domain for n in g.nodes), [n.op for n in g.nodes]
    (got,) = run(g, x.numpy())
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # weights keep their state_dict names, with roles from the graph
    assert set(model.state_dict()) <= set(g.weights)
    kernels = {w.name: w.op for w in g.select()}
    expected = {
        "mlp": {"fc1.weight": "Dense", "fc2.weight": "Dense"},
        "cnn": {"conv.weight": "Conv", "fc.weight": "Dense"},
        "emb": {"fc.weight": "Dense"},
    }[name]
    assert kernels == expected
    if name == "emb":
        assert g.weights["embed.weight"].role == "embedding"
        assert g.inputs[0].dtype == "int64"
    if kind == "export":
        assert g.meta.producer_version == torch.__version__
    if kind == "export":
        assert g.inputs[0].shape == tuple(x.shape)
    if kind == "trace":  # the example's batch size is no constraint: the batch axis stays dynamic
        assert g.inputs[0].shape == ("batch", *x.shape[1:])
        assert g.meta.extra["input_shapes"] == {g.inputs[0].name: list(g.inputs[0].shape)}


@pytest.mark.parametrize("kind", ["state", "legacy", "script", "trace", "export"])
def test_round_trip_is_identical(kind: str, tmp_path: Path) -> None:
    model, x = _build("cnn")
    src = _write(kind, model, x, tmp_path / ("m.pt2" if kind == "export" else "m.pt"))
    g = load_torch(src)
    out = save_torch(g, tmp_path / ("o.pt2" if kind == "export" else "o.pt"))
    g2 = load_torch(out)
    assert g2.meta.format == g.meta.format and list(g2.weights) == list(g.weights)
    for k, w in g.weights.items():
        np.testing.assert_array_equal(g2.weights[k].array, w.array)
        assert g2.weights[k].dtype == w.dtype
    if kind in ("script", "trace", "export"):
        with torch.no_grad():
            np.testing.assert_array_equal(_reload_module(kind, out)(x).numpy(), model(x).numpy())


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("kind", ["script", "trace", "export"])
def test_modified_weights_written_match_executor(kind: str, name: str, tmp_path: Path) -> None:
    model, x = _build(name)
    src = _write(kind, model, x, tmp_path / ("m.pt2" if kind == "export" else "m.pt"))
    g = _scale(load_torch(src), 0.5)
    out = save_torch(g, tmp_path / ("half.pt2" if kind == "export" else "half.pt"))
    with torch.no_grad():
        framework = _reload_module(kind, out)(x).numpy()
        original = model(x).numpy()
    (ours,) = run(g, x.numpy())
    np.testing.assert_allclose(framework, ours, rtol=RTOL, atol=ATOL)
    assert not np.allclose(framework, original, rtol=1e-3, atol=1e-4)  # the new weights took effect


def test_unknown_aten_op_is_carried_and_weights_still_written(tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = CumNet().eval()
    x = torch.randn(3, 4)
    path = _write("script", model, x, tmp_path / "cum.pt")
    g = load_torch(path)
    assert g.has_graph
    carried = [n for n in g.nodes if n.domain == "torch"]
    assert [n.op for n in carried] == ["aten::cumsum"] and carried[0].attrs["dim"] == 1
    assert any("aten::cumsum" in n for n in g.meta.notes)
    with pytest.raises(UnsupportedError, match="aten::cumsum"):
        run(g, x.numpy())
    out = save_torch(_scale(g, 2.0), tmp_path / "cum2.pt")
    with torch.no_grad():
        np.testing.assert_allclose(torch.jit.load(str(out))(x).numpy(), 2 * model(x).numpy(), rtol=1e-5)


def test_export_archive_found_by_content_and_pickled_entries_refused(tmp_path: Path) -> None:
    model, x = _build("mlp")
    good = _write("export", model, x, tmp_path / "prog.pt")  # a .pt2 archive under a .pt name
    g = load_torch(good)
    assert g.meta.format == "torch-export" and g.has_graph

    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("model_weights_config.json"):
                conf = json.loads(data)
                next(iter(conf["config"].values()))["use_pickle"] = True
                data = json.dumps(conf).encode()
            zout.writestr(info, data)
    with pytest.raises(UnsupportedError) as e:
        load_torch(bad)
    assert "does not unpickle" in _one_line(e, bad)


# -- refusals and bad input -----------------------------------------------------------------------------


def test_pickled_module_read_without_unpickling_it(tmp_path: Path) -> None:
    model, _ = _build("mlp")
    path = tmp_path / "whole.pt"
    torch.save(model, str(path))
    g = load_torch(path)  # no --trust-pickle: the module's class is never looked up or called
    assert list(g.weights) == list(model.state_dict())
    for k, t in model.state_dict().items():
        np.testing.assert_array_equal(g.weights[k].array, t.numpy())
    assert any("MLP module: its tensors read without unpickling it" in n for n in g.meta.notes)
    out = save_torch(_scale(g, 0.5), tmp_path / "whole_half.pt")
    back = torch.load(str(out), weights_only=False)  # where the original loaded, the copy loads
    assert isinstance(back, MLP)
    torch.testing.assert_close(back.fc1.weight, model.fc1.weight * 0.5, rtol=0, atol=0)
    torch.testing.assert_close(back.bn.running_var, model.bn.running_var * 0.5, rtol=0, atol=0)

    g = load_torch(path, trust_pickle=True)  # the old path stays for those who ask for it
    assert any("unpickled by request" in n for n in g.meta.notes)


class _Config:
    """Stands for omegaconf's DictConfig in a Lightning checkpoint: a class the reader never imports."""

    def __init__(self) -> None:
        self.lr = 0.01
        self.layers = [8, 16]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_lightning_style_checkpoint_with_objects_runs_nothing(legacy: bool, tmp_path: Path) -> None:
    model, _ = _build("cnn")
    marker = tmp_path / "pwned"
    ckpt = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {"cfg": _Config(), "hook": _Evil(marker)},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.01}]}],
        "lr_schedulers": [],
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, str(path), _use_new_zipfile_serialization=not legacy)
    with pytest.raises(Exception):  # noqa: B017 - the control: torch's safe loader refuses it
        torch.load(str(path), weights_only=True)
    g = load_torch(path)
    assert not marker.exists()
    assert list(g.weights) == list(ckpt["state_dict"])
    assert any("posix.system" in n or "nt.system" in n for n in g.meta.notes)
    assert set(g.meta.extra["training_state"]) == {
        "epoch",
        "global_step",
        "optimizer_states",
        "lr_schedulers",
    }
    out = save_torch(_scale(g, 2.0), tmp_path / "out.ckpt")
    assert not marker.exists()
    # only the trusting loader of the user runs the file's objects, and the copy holds the same ones
    back = torch.load(str(out), weights_only=False)
    assert marker.exists()
    assert list(back) == ["pytorch-lightning_version", "state_dict", "hyper_parameters"]
    assert isinstance(back["hyper_parameters"]["cfg"], _Config)
    for k, t in ckpt["state_dict"].items():
        want = t * 2.0 if t.is_floating_point() else t
        torch.testing.assert_close(back["state_dict"][k], want, rtol=0, atol=0)


@pytest.mark.parametrize("case", ["empty", "truncated_zip", "truncated_legacy", "text", "zip_not_torch"])
def test_bad_files_are_one_line_input_errors(case: str, tmp_path: Path) -> None:
    model, _ = _build("mlp")
    path = tmp_path / f"{case}.pt"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a model\n")
    elif case == "zip_not_torch":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "hello")
    else:
        full = tmp_path / "full.pt"
        torch.save(model.state_dict(), str(full), _use_new_zipfile_serialization=case == "truncated_zip")
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        load_torch(path)
    _one_line(e, path)


def test_writer_refusals(tmp_path: Path) -> None:
    model, x = _build("mlp")
    src = _write("state", model, x, tmp_path / "m.pt")
    g = load_torch(src)
    with pytest.raises(OutputError, match="overwrite the input"):
        save_torch(g, src, force=True)
    out = save_torch(g, tmp_path / "o.pt")
    with pytest.raises(OutputError, match="--force"):
        save_torch(g, out)
    save_torch(g, out, force=True)

    foreign = Graph(
        inputs=[ValueInfo("x", (None, 2))],
        outputs=[ValueInfo("y")],
        weights={"w": Weight("w", np.ones((2, 2), np.float32), role="kernel", op="Dense")},
    )
    foreign.meta.format = "onnx"
    with pytest.raises(OutputError) as e:
        save_torch(foreign, tmp_path / "f.pt")
    assert "write .onnx instead" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "f.pt").exists()

    g_bad = g.copy()
    g_bad.weights["fc1.weight"].value = np.zeros((3, 3), np.float32)
    with pytest.raises(OutputError, match=r"fc1\.weight"):
        save_torch(g_bad, tmp_path / "shape.pt")
    assert not (tmp_path / "shape.pt").exists()
