"""The watchdog on libhdf5 reads (nncompress._stall, native/watchdog.c): a read that never returns
ends the CLI with one error line naming the file and exit 3; nothing is armed in library use."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from nncompress import _stall
from nncompress.native._call import loaded

from .conftest import MODELS

pytestmark = pytest.mark.skipif(not loaded(), reason="the native kernels are not built")


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_armed_watchdog_ends_the_process_and_disarm_cancels() -> None:
    fire = (
        "import time; from nncompress.native import watchdog; "
        "watchdog.arm('nncompress: error: stuck\\n', 0.3, 3); time.sleep(30); print('not reached')"
    )
    t0 = time.monotonic()
    done = _run(fire)
    assert done.returncode == 3 and done.stderr == "nncompress: error: stuck\n" and not done.stdout
    assert time.monotonic() - t0 < 20
    cancel = (
        "import time; from nncompress.native import watchdog; "
        "watchdog.arm('x\\n', 0.3, 3); watchdog.disarm(); time.sleep(1); "
        "watchdog.arm('y\\n', 5, 3); watchdog.arm('z\\n', 0.2, 4); time.sleep(2); print('late')"
    )
    done = _run(cancel)
    assert done.returncode == 4 and done.stderr == "z\n"  # the last arm's deadline and message


def test_a_read_that_never_returns_is_one_line_and_exit_3() -> None:
    """libhdf5 looping on a corrupt attribute, stood in for by an attribute read that never returns
    (a busy loop: the GIL is released now and then, but nothing else would end it)."""
    stuck = (
        "import sys, h5py._hl.attrs as a\n"
        "def never(self, name):\n    while True: pass\n"
        "a.AttributeManager.__getitem__ = never\n"
        "from nncompress.cli import main; sys.argv = ['nncompress', 'inspect', sys.argv[1]]; main()"
    )
    path = MODELS / "lenet300.h5"
    done = _run(stuck, str(path), env={"NNCOMPRESS_STALL_SECONDS": "2"})
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nncompress: error: ")
    assert str(path) in lines[0] and "did not finish in 2 s" in lines[0]


def test_library_use_arms_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from nncompress.native import watchdog

    called = []
    monkeypatch.setattr(watchdog, "arm", lambda *a: called.append(a) or True)
    monkeypatch.setattr(_stall, "_enabled", False)
    with _stall.guard("reading", "f.h5", 10):
        pass
    assert not called
    monkeypatch.setattr(_stall, "_enabled", True)
    with _stall.guard("reading", "f.h5", 10), _stall.guard("inner", "f.h5", 10):
        pass
    assert len(called) == 1 and called[0][1] == _stall.STALL_SECONDS + 10 / _stall.BYTES_PER_SECOND


def test_a_looping_skeleton_names_the_artifact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Fuzz seed 45, case 363: 64 KiB of a .nnc's HDF5 skeleton copied into its superblock's
    neighbourhood; libhdf5 looped on it during decompress until the watchdog ended it. The line
    names the .nnc the user gave, not the temp file its skeleton was streamed to."""
    import zipfile

    from .conftest import run_cli

    art, bad = tmp_path / "v.nnc", tmp_path / "bad.nnc"
    res = run_cli(
        "compress", str(MODELS / "vggmini.h5"), "--method", "sham", "-o", str(art), "--samples", "4"
    )
    assert res.returncode == 0, res.stderr
    with zipfile.ZipFile(art) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.startswith("skeleton/"):
                data = data[:5376] + data[22361 : 22361 + 65536] + data[5376:]
            zout.writestr(info, data)
    done = _run(
        "import sys; from nncompress.cli import main; sys.argv[0] = 'nncompress'; main()",
        "decompress",
        str(bad),
        "-o",
        str(tmp_path / "out.h5"),
        env={"NNCOMPRESS_STALL_SECONDS": "2"},
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3 and len(lines) == 1, done.stderr
    # since the check for data in other files walks every link first, this one is refused there
    # (a checksum error) before libhdf5 can loop; either way the line names the .nnc
    assert f"{bad} (its skeleton)" in lines[0]


def test_address_space_cap_spares_a_threaded_library_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """RLIMIT_AS is the whole process's: a library caller with another thread running (which the cap
    would make fail its allocations) reads attributes uncapped; a lone thread or the CLI caps."""
    import threading

    from nncompress.io.keras._store import _address_space_cap

    monkeypatch.setattr(_stall, "_enabled", False)
    assert _address_space_cap(10) is not None
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _address_space_cap(10) is None
        monkeypatch.setattr(_stall, "_enabled", True)
        assert _address_space_cap(10) is not None
    finally:
        stop.set()
        other.join()


def test_a_model_that_never_finishes_is_one_line_and_exit_5(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An ONNX Loop with a trip count of 2^62 and a condition that stays true: a valid model whose
    forward pass never ends (found crafting files: compress ran forever measuring fidelity).
    onnxruntime cannot be stopped from Python; the CLI's watchdog ends the run with one line."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", f32, [1, 4]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", f32, [1, 4]),
        ],
        [helper.make_tensor("one", f32, [1, 4], np.ones(4, np.float32))],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["A"]),
            helper.make_node("Loop", ["M", "C", "A"], ["Y"], body=body),
        ],
        "forever",
        [helper.make_tensor_value_info("X", f32, [1, 4])],
        [helper.make_tensor_value_info("Y", f32, [1, 4])],
        [
            helper.make_tensor("W", f32, [4, 4], np.ones(16, np.float32)),
            helper.make_tensor("M", TensorProto.INT64, [], [2**62]),
            helper.make_tensor("C", TensorProto.BOOL, [], [True]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path, out = tmp_path / "forever.onnx", tmp_path / "f.nnc"
    onnx.save(model, str(path))
    code = "import sys; from nncompress.cli import main; sys.argv[0] = 'nncompress'; main()"
    args = ("compress", str(path), "-o", str(out), "--samples", "4")
    done = _run(code, *args, env={"NNCOMPRESS_RUN_SECONDS": "2"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 5 and len(lines) == 1, done.stderr
    assert str(path) in lines[0] and "did not finish in 2 s" in lines[0] and not out.exists()
