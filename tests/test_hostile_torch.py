"""Crafted PyTorch files that would run code in torch's own loaders: none of them runs anything here.

Each vector is built from a real torch.export archive plus a pickle whose ``__reduce__`` calls
``os.system("touch MARKER")``. A control shows the payload is live (torch.export.load, run in a
child process, creates the marker); nncompress's inspect, compress and decompress refuse the file in
one line with exit 5 (or 3) and the marker never appears.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from nncompress.errors import EXIT_INPUT, EXIT_UNSUPPORTED

from .conftest import run_cli


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


def _payload(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save(_Evil(marker), buf)
    return buf.getvalue()


def _good(tmp: Path) -> Path:
    torch.manual_seed(0)
    path = tmp / "good.pt2"
    torch.export.save(torch.export.export(_Net().eval(), (torch.randn(2, 6),)), str(path))
    return path


Edit = Callable[[str, bytes], bytes | None]  # member name, data -> new data (None: drop it)


def _rewrite(src: Path, dst: Path, edit: Edit, add: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def _root(p: Path) -> str:
    with zipfile.ZipFile(p) as z:
        return z.namelist()[0].split("/")[0]


def _use_pickle(tmp: Path, marker: Path) -> Path:
    """The first weight's record replaced by a pickle, its config entry marked use_pickle."""
    good = _good(tmp)

    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("data/weights/model_weights_config.json"):
            conf = json.loads(data)
            next(iter(conf["config"].values()))["use_pickle"] = True
            return json.dumps(conf).encode()
        if name.endswith("data/weights/weight_0"):
            return _payload(marker)
        return data

    return _rewrite(good, tmp / "use_pickle.pt2", edit)


def _second_program(tmp: Path, marker: Path) -> Path:
    """A second program under models/ whose only weight is a use_pickle payload."""
    good = _good(tmp)
    root = _root(good)
    with zipfile.ZipFile(good) as z:
        program = z.read(f"{root}/models/model.json")
        conf = json.loads(z.read(f"{root}/data/weights/model_weights_config.json"))
        consts = z.read(f"{root}/data/constants/model_constants_config.json")
        sample = z.read(f"{root}/data/sample_inputs/model.pt")
    for entry in conf["config"].values():
        entry["use_pickle"] = True
        entry["path_name"] = "evil_0"
    add = {
        f"{root}/models/evil.json": program,
        f"{root}/data/weights/evil_weights_config.json": json.dumps(conf).encode(),
        f"{root}/data/weights/evil_0": _payload(marker),
        f"{root}/data/constants/evil_constants_config.json": consts,
        f"{root}/data/sample_inputs/evil.pt": sample,
    }
    return _rewrite(good, tmp / "second.pt2", lambda n, d: d, add)


def _legacy_fallback(tmp: Path, marker: Path) -> Path:
    """No program under models/, and the legacy top-level members torch then falls back to."""
    good = _good(tmp)
    with zipfile.ZipFile(good) as z:
        program = z.read(f"{_root(good)}/models/model.json")

    def edit(name: str, data: bytes) -> bytes | None:
        return None if "/models/" in name else data

    add = {
        "version": ".".join(str(v) for v in json.loads(program)["schema_version"].values()).encode(),
        "serialized_exported_program.json": program,
        "serialized_state_dict.pt": _payload(marker),
        "serialized_constants.pt": _payload(marker),
        "serialized_example_inputs.pt": _payload(marker),
    }
    return _rewrite(good, tmp / "legacy.pt2", edit, add)


def _sample_inputs(tmp: Path, marker: Path) -> Path:
    good = _good(tmp)

    def edit(name: str, data: bytes) -> bytes:
        return _payload(marker) if name.endswith("data/sample_inputs/model.pt") else data

    return _rewrite(good, tmp / "sample.pt2", edit)


def _expr(tmp: Path, marker: Path) -> Path:
    """A symbolic size whose "expression" is Python: torch hands it to sympy.sympify (eval)."""
    good = _good(tmp)

    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("models/model.json"):
            prog = json.loads(data)
            tv = prog["graph_module"]["graph"]["tensor_values"]
            tv["x"]["sizes"][0] = {
                "as_expr": {"expr_str": f"__import__('os').system('touch {marker}')", "hint": {"as_int": 2}}
            }
            return json.dumps(prog).encode()
        return data

    return _rewrite(good, tmp / "expr.pt2", edit)


def _target(tmp: Path, marker: Path) -> Path:
    """A node whose target walks from the torch module to os.system."""
    good = _good(tmp)

    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("models/model.json"):
            prog = json.loads(data)
            prog["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
            return json.dumps(prog).encode()
        return data

    return _rewrite(good, tmp / "target.pt2", edit)


VECTORS = {
    "use_pickle": _use_pickle,
    "second_program": _second_program,
    "legacy_fallback": _legacy_fallback,
    "sample_inputs": _sample_inputs,
    "expr_str": _expr,
    "target": _target,
}


def _torch_loads(path: Path) -> None:
    code = "import sys, torch; torch.export.load(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=300)


@pytest.mark.parametrize("vector", ["use_pickle", "second_program", "legacy_fallback"])
def test_control_the_payloads_are_live_in_torch(vector: str, tmp_path: Path) -> None:
    """Without this, the refusals below could be refusing a harmless file."""
    marker = tmp_path / "pwned"
    path = VECTORS[vector](tmp_path, marker)
    _torch_loads(path)
    assert marker.exists(), "torch.export.load did not run the payload: the fixture is not an attack"


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_crafted_export_archives_run_nothing(vector: str, suffix: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = VECTORS[vector](tmp_path, marker)
    path = path.rename(path.with_suffix(suffix))
    for cmd in (
        ["inspect", str(path)],
        ["compress", str(path), "-o", str(tmp_path / "o.nnc"), "--method", "sham"],
    ):
        res = run_cli(*cmd)
        assert res.returncode in (EXIT_UNSUPPORTED, EXIT_INPUT), (cmd, res.returncode, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in res.stderr, res.stderr
        assert not marker.exists(), f"{vector}: the payload ran during {cmd[0]}"
    assert not (tmp_path / "o.nnc").exists()


def test_pickled_payload_names_the_member(tmp_path: Path) -> None:
    path = _use_pickle(tmp_path, tmp_path / "pwned")
    res = run_cli("inspect", str(path))
    assert res.returncode == EXIT_UNSUPPORTED
    assert "data/weights/weight_0" in res.stderr and "--trust-pickle" in res.stderr


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_artifact_whose_skeleton_is_hostile_runs_nothing(vector: str, tmp_path: Path) -> None:
    """A .nnc is as untrusted as any input: its skeleton is swapped for a crafted archive."""
    good = _good(tmp_path)
    art = tmp_path / "good.nnc"
    res = run_cli("compress", str(good), "-o", str(art), "--method", "sham", "--samples", "8")
    assert res.returncode == 0, res.stderr
    marker = tmp_path / "pwned"
    evil = VECTORS[vector](tmp_path, marker).read_bytes()
    bad = tmp_path / "bad.nnc"
    with zipfile.ZipFile(art) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info, evil if info.filename.startswith("skeleton/") else data)
    for cmd in (["decompress", str(bad), "-o", str(tmp_path / "out.pt2")], ["inspect", str(bad)]):
        res = run_cli(*cmd)
        assert not marker.exists(), f"{vector}: the payload ran during {cmd[0]}"
        if cmd[0] == "decompress":
            assert res.returncode in (EXIT_UNSUPPORTED, EXIT_INPUT), res.stderr
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "out.pt2").exists()


def test_clean_archive_still_round_trips_without_torch_export_load(tmp_path: Path) -> None:
    """The reader that refuses all of the above still reads, converts and writes real archives."""
    good = _good(tmp_path)
    art = tmp_path / "m.nnc"
    assert (
        run_cli("compress", str(good), "-o", str(art), "--method", "sham", "--samples", "8").returncode == 0
    )
    out = tmp_path / "back.pt2"
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    m = torch.export.load(str(out)).module()
    x = torch.randn(2, 6)  # exported with a static batch of 2
    assert m(x).shape == (2, 4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_record_shorter_than_its_tensor_is_refused(tmp_path: Path) -> None:
    """torch.jit.load trusts the size a pickle declares: a short record was read past its end."""
    torch.manual_seed(0)
    good = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.trace(_Net().eval(), torch.randn(2, 6)), str(good))
    with zipfile.ZipFile(good) as z:
        biggest = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    bad = _rewrite(good, tmp_path / "short.pt", lambda n, d: d[:8] if n == biggest.filename else d)
    for cmd in (["inspect", str(bad)], ["compress", str(bad), "-o", str(tmp_path / "o.nnc")]):
        res = run_cli(*cmd)
        assert res.returncode == EXIT_INPUT, (cmd, res.returncode, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "holds 8 bytes" in res.stderr, res.stderr
