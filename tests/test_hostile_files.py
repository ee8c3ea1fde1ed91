"""Files that declare more than they hold, or nest deeper than any model: each is refused in one
line (exit 3) before anything is allocated, with the process's peak memory under 1 GB.

Every bomb is built here from a real example file; none is stored in the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import onnx
import pytest
from onnx import TensorProto, helper

from nncompress.errors import EXIT_INPUT

from .conftest import MODELS, run_cli

GB = 1 << 30


# The child reads its own high-water mark at exit: getrusage's ru_maxrss of a child counts the
# pages of the (large) test process it was forked from, which exec does not reset.
_MEASURED = """
import atexit, os
def _hwm():
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(os.environ["NNC_TEST_HWM"], "w") as out:
        out.write(str(kb * 1024))
atexit.register(_hwm)
from nncompress.cli import main
main()
"""


def _run_measured(hwm: Path, *args: str) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in bytes) of ``nncompress ARGS`` in a child process."""
    res = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NNC_TEST_HWM": str(hwm)},
        timeout=600,
    )
    return res.returncode, res.stderr, int(hwm.read_text())


def _declare_size(path: Path, member: str, size: int) -> None:
    """Make the zip's headers say ``member`` inflates to ``size`` bytes (its data stays as it is):
    what a bomb's headers say, and all a reader that trusts them needs to hear."""
    blob = bytearray(path.read_bytes())
    name = member.encode()
    with zipfile.ZipFile(path) as z:
        local = z.getinfo(member).header_offset
    blob[local + 22 : local + 26] = size.to_bytes(4, "little")
    at = blob.find(b"PK\x01\x02")
    while at >= 0:
        n = int.from_bytes(blob[at + 28 : at + 30], "little")
        if blob[at + 46 : at + 46 + n] == name:
            blob[at + 24 : at + 28] = size.to_bytes(4, "little")
        at = blob.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(blob))


def _keras_config_bomb(tmp: Path) -> Path:
    dst = tmp / "bomb.keras"
    with zipfile.ZipFile(MODELS / "lenet300.keras") as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json":
                # 300 MB of spaces inside the JSON: valid, tiny compressed, large inflated
                data = data[:1] + b" " * (300 << 20) + data[1:]
                zi = zipfile.ZipInfo("config.json", date_time=info.date_time)
                zi.compress_type = zipfile.ZIP_DEFLATED
                zout.writestr(zi, data, compresslevel=9)
            else:
                zout.writestr(info, data)
    return dst


def _keras_deep_config(tmp: Path) -> Path:
    dst = tmp / "deep.keras"
    with zipfile.ZipFile(MODELS / "lenet300.keras") as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json":
                data = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            zout.writestr(info, data)
    return dst


def _h5_deep_config(tmp: Path) -> Path:
    dst = tmp / "deep.h5"
    dst.write_bytes((MODELS / "lenet300.h5").read_bytes())
    with h5py.File(dst, "r+") as f:
        f.attrs["model_config"] = "[" * 50_000 + "]" * 50_000
    return dst


def _h5_huge_dataset(tmp: Path) -> Path:
    dst = tmp / "huge.h5"
    dst.write_bytes((MODELS / "lenet300.h5").read_bytes())
    with h5py.File(dst, "r+") as f:
        names: list[str] = []
        f["model_weights"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        path = "model_weights/" + next(n for n in names if n.endswith(("kernel", "kernel:0")))
        old = f[path]
        attrs = dict(old.attrs)
        del f[path]
        # chunked, never written: the file stores nothing for it, the header says 2^40 floats
        ds = f.create_dataset(path, shape=(1 << 20, 1 << 20), dtype="f4", chunks=(64, 64))
        for k, v in attrs.items():
            ds.attrs[k] = v
    return dst


def _onnx_sparse_bomb(tmp: Path) -> Path:
    values = helper.make_tensor("w_values", TensorProto.FLOAT, [1], [1.0])
    indices = helper.make_tensor("w_indices", TensorProto.INT64, [1], [0])
    sparse = helper.make_sparse_tensor(values, indices, [1 << 20, 1 << 20])
    node = helper.make_node("MatMul", ["x", "w_values"], ["y"])
    graph = helper.make_graph(
        [node],
        "bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1 << 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1 << 20])],
        sparse_initializer=[sparse],
    )
    dst = tmp / "sparse.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(dst))
    return dst


def _onnx_declared_dims(tmp: Path) -> Path:
    m = onnx.load(str(MODELS / "lenet300.onnx"))
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    del t.dims[:]
    t.dims.extend([1 << 20, 1 << 20])
    dst = tmp / "dims.onnx"
    onnx.save(m, str(dst))
    return dst


def _artifact(tmp: Path) -> Path:
    art = tmp / "m.nnc"
    res = run_cli("compress", str(MODELS / "lenet300.onnx"), "-o", str(art), "--samples", "4", "--quiet")
    assert res.returncode == 0, res.stderr
    return art


def _nnc_edit(tmp: Path, edit: Callable[[str, bytes], bytes], name: str) -> Path:
    src, dst = _artifact(tmp), tmp / name
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, edit(info.filename, zin.read(info.filename)))
    return dst


def _manifest_bomb(tmp: Path) -> Path:
    def edit(name: str, data: bytes) -> bytes:
        return data[:1] + b" " * (400 << 20) + data[1:] if name == "manifest.json" else data

    return _nnc_edit(tmp, edit, "manifest_bomb.nnc")


def _manifest_nan(tmp: Path) -> Path:
    def edit(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        out = data.replace(b'"seed":0', b'"seed":NaN')  # the manifest's compact JSON
        assert out != data
        return out

    return _nnc_edit(tmp, edit, "nan.nnc")


def _manifest_huge_shape(tmp: Path) -> Path:
    def edit(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        m = json.loads(data)
        m["tensors"][0]["shape"] = [1 << 23, 1 << 23]
        return json.dumps(m).encode()

    return _nnc_edit(tmp, edit, "shape.nnc")


def _skeleton_bomb(tmp: Path) -> Path:
    """The skeleton member declared 3.75 GB (bzip2 packs that many zeros in a few kilobytes)."""
    dst = _nnc_edit(tmp, lambda n, d: d, "skeleton_bomb.nnc")
    with zipfile.ZipFile(dst) as z:
        member = next(n for n in z.namelist() if n.startswith("skeleton/"))
    _declare_size(dst, member, 0xF0000000)
    return dst


def _arrays_bomb(tmp: Path) -> Path:
    dst = _nnc_edit(tmp, lambda n, d: d, "arrays_bomb.nnc")
    _declare_size(dst, "arrays.bin", 0xF0000000)
    return dst


BOMBS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "keras_config_bomb": (_keras_config_bomb, "inspect"),
    "keras_deep_config": (_keras_deep_config, "inspect"),
    "h5_deep_config": (_h5_deep_config, "inspect"),
    "h5_huge_dataset": (_h5_huge_dataset, "inspect"),
    "onnx_sparse_bomb": (_onnx_sparse_bomb, "inspect"),
    "onnx_declared_dims": (_onnx_declared_dims, "inspect"),
    "nnc_manifest_bomb": (_manifest_bomb, "decompress"),
    "nnc_manifest_nan": (_manifest_nan, "decompress"),
    "nnc_huge_shape": (_manifest_huge_shape, "decompress"),
    "nnc_skeleton_bomb": (_skeleton_bomb, "decompress"),
    "nnc_arrays_bomb": (_arrays_bomb, "decompress"),
}


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_bombs_are_refused_before_allocating(case: str, tmp_path: Path) -> None:
    make, cmd = BOMBS[case]
    path = make(tmp_path)
    args = [cmd, str(path)] + (["-o", str(tmp_path / "out.onnx")] if cmd == "decompress" else [])
    code, err, peak = _run_measured(tmp_path / "hwm", *args, "--max-memory", "2G")
    assert code == EXIT_INPUT, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nncompress: error:") and len(lines[0]) < 1000, err
    assert peak < GB, f"peak RSS {peak / GB:.2f} GB"
    assert not (tmp_path / "out.onnx").exists()


def _zip_version(src: Path, dst: Path) -> Path:
    """Every central-directory entry claims zip version 12.7 (zipfile raises NotImplementedError)."""
    blob = bytearray(src.read_bytes())
    at = blob.find(b"PK\x01\x02")
    while at >= 0:
        blob[at + 6] = 0x7F
        at = blob.find(b"PK\x01\x02", at + 4)
    dst.write_bytes(bytes(blob))
    return dst


@pytest.mark.parametrize("kind", ["nnc", "pt"])
def test_unsupported_zip_version_is_one_line(kind: str, tmp_path: Path) -> None:
    src = _artifact(tmp_path) if kind == "nnc" else MODELS / "lenet300.pt"
    bad = _zip_version(src, tmp_path / f"version.{kind}")
    res = run_cli("inspect", str(bad))
    assert res.returncode == EXIT_INPUT and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_nan_weight_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "nan.h5"
    bad.write_bytes((MODELS / "lenet300.h5").read_bytes())
    with h5py.File(bad, "r+") as f:
        f["model_weights/fc1/lenet300/fc1/kernel"][0, 0] = float("nan")
    res = run_cli("compress", str(bad), "--method", "sham", "-o", str(tmp_path / "o.nnc"), "--samples", "4")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 5 and len(lines) == 1 and str(bad) in lines[0] and "NaN" in lines[0], res.stderr


@pytest.mark.parametrize(
    "old,new",
    [
        (b"input", b"\xffnput"),  # a graph input and the node input reading it
        (b"0.weight", b"\xff.weight"),  # an initializer
        (b"/0/Gemm", b"/0/G\xffmm"),  # a node name and its output names
        (b"pytorch", b"pyt\xe9rch"),  # producer_name, latin-1 rather than UTF-8
    ],
)
def test_non_utf8_onnx_text_is_one_line(old: bytes, new: bytes, tmp_path: Path) -> None:
    from nncompress.errors import InputError
    from nncompress.io import load

    bad = tmp_path / "text.onnx"
    bad.write_bytes((MODELS / "lenet300.onnx").read_bytes().replace(old, new))
    with pytest.raises(InputError) as e:
        load(bad)
    assert "not valid UTF-8" in e.value.one_line() and str(bad) in e.value.one_line()


def test_non_utf8_onnx_compress_exits_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "text.onnx"
    bad.write_bytes((MODELS / "lenet300.onnx").read_bytes().replace(b"input", b"\xffnput"))
    res = run_cli("compress", str(bad), "-o", str(tmp_path / "o.nnc"), "--samples", "4")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == EXIT_INPUT and len(lines) == 1 and "UTF-8" in lines[0], res.stderr
    assert not (tmp_path / "o.nnc").exists()


def test_keras_archive_with_a_duplicate_member_is_refused(tmp_path: Path) -> None:
    """Found by benchmarks/fuzz.py (seed 41, case 67): a second model.weights.h5 holding other
    bytes; inspect read the first, compress's skeleton the last (an internal error). Refused, exit 3."""
    src = MODELS / "lenet300.keras"
    bad = tmp_path / "dup.keras"
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(bad, "w") as out:
        for info in z.infolist():
            out.writestr(info, z.read(info))
        with pytest.warns(UserWarning):  # zipfile warns about the duplicate name it writes
            out.writestr("model.weights.h5", z.read("metadata.json"))
    for args in (["inspect", str(bad)], ["compress", str(bad), "-o", str(tmp_path / "o.nnc")]):
        r = run_cli(*args)
        assert r.returncode == 3, r.stderr
        assert r.stderr.strip().count("\n") == 0 and "two members named 'model.weights.h5'" in r.stderr


def test_h5_damaged_where_the_loader_does_not_read_is_one_line(tmp_path: Path) -> None:
    """Found by benchmarks/fuzz.py (seed 43, vggmini.h5 case 39: "write 00000080 at 518519"): a link
    the loader never follows, which the skeleton's copy of every group walks into (an h5py
    RuntimeError, reported as an internal error). Then exit 3 from compress with one line naming the
    file; since the loader walks every link first (refusing data in other files), inspect refuses
    it the same way, before the skeleton's copy is reached."""
    blob = bytearray((MODELS / "vggmini.h5").read_bytes())
    blob[518519:518523] = bytes.fromhex("00000080")
    bad = tmp_path / "linked.h5"
    bad.write_bytes(bytes(blob))
    out = tmp_path / "o.nnc"
    for args in (
        ["inspect", str(bad)],
        ["compress", str(bad), "--pipeline", "prune:sparsity=0.8,sham", "-o", str(out), "--samples", "4"],
    ):
        r = run_cli(*args)
        line = r.stderr.strip()
        assert r.returncode == EXIT_INPUT and "\n" not in line and str(bad) in line, r.stderr
        assert "Link visitation failed" in line
    assert not out.exists()


def test_h5_dangling_link_is_one_line(tmp_path: Path) -> None:
    """Found by benchmarks/fuzz.py (seed 45, vggmini.h5 case 74): a link that resolves to nothing,
    which h5py lists with the value None; the skeleton's copy took it for a dataset (an internal
    AttributeError). Now exit 3 with one line naming the file and the link."""
    bad = tmp_path / "dangling.h5"
    bad.write_bytes((MODELS / "vggmini.h5").read_bytes())
    with h5py.File(bad, "r+") as f:
        f["model_weights"]["lost"] = h5py.SoftLink("/nowhere")
    out = tmp_path / "o.nnc"
    r = run_cli(
        "compress", str(bad), "--pipeline", "prune:sparsity=0.8,sham", "-o", str(out), "--samples", "4"
    )
    line = r.stderr.strip()
    assert r.returncode == EXIT_INPUT and "\n" not in line and str(bad) in line, r.stderr
    assert "/model_weights/lost links to nothing" in line and not out.exists()


def _foreign_h5(f: h5py.File, kind: str, secret: Path) -> None:
    """Point the first weight dataset of ``f`` at ``secret``, a file the model does not hold."""
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    name = names[0]
    shape, dtype = f[name].shape, f[name].dtype
    del f[name]
    if kind == "external storage":
        f.create_dataset(name, shape=shape, dtype=dtype, external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
    elif kind == "virtual dataset":
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(str(secret), "/w", shape=shape)
        f.create_virtual_dataset(name, layout)
    else:
        f[name] = h5py.ExternalLink(str(secret), "/w")


@pytest.mark.parametrize("kind", ["external storage", "virtual dataset", "external link"])
@pytest.mark.parametrize("container", ["h5", "keras"])
def test_h5_data_in_other_files_is_refused(kind: str, container: str, tmp_path: Path) -> None:
    """A dataset whose bytes come from another file (external raw storage, a virtual dataset, an
    external link) would copy that file into the artifact: any file the user can read, /etc/passwd
    or /dev/zero. Refused (exit 5) before any data is read, naming the dataset; the secret's bytes
    never reach an output."""
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as s:
        s["w"] = [7.0] * 1_000_000
    bad = tmp_path / f"m.{container}"
    if container == "h5":
        bad.write_bytes((MODELS / "lenet300.h5").read_bytes())
        with h5py.File(bad, "r+") as f:
            _foreign_h5(f["model_weights"], kind, secret)
    else:
        weights = tmp_path / "model.weights.h5"
        with zipfile.ZipFile(MODELS / "lenet300.keras") as zin, zipfile.ZipFile(bad, "w") as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if info.filename == "model.weights.h5":
                    weights.write_bytes(data)
                    with h5py.File(weights, "r+") as f:
                        _foreign_h5(f, kind, secret)
                    data = weights.read_bytes()
                zout.writestr(info, data)
    out = tmp_path / "o.nnc"
    for args in (["inspect", str(bad)], ["compress", str(bad), "-o", str(out), "--samples", "4"]):
        r = run_cli(*args)
        line = r.stderr.strip()
        assert r.returncode == 5 and "\n" not in line and str(bad) in line, r.stderr
        said = {"external storage": "in an external file"}.get(kind, kind)
        assert said in line and "must hold its own weights" in line
    assert not out.exists()


def test_nested_unnamed_subgraphs_keep_short_names(tmp_path: Path) -> None:
    """Unnamed If nodes nested in each other's then-branches: each level's names were prefixed with
    the whole parent label twice, doubling it per level (30 levels, a 5 KB file: inspect never
    finished, found crafting files). Names now grow by one segment a level."""
    from nncompress.io import load

    def leaf() -> onnx.GraphProto:
        c = helper.make_node(
            "Constant", [], ["o"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0])
        )
        return helper.make_graph(
            [c], "leaf", [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1])]
        )

    g = leaf()
    for d in range(16):
        b = helper.make_tensor("b", TensorProto.BOOL, [], [True])
        nodes = [
            helper.make_node("Constant", [], ["b"], value=b),
            helper.make_node("If", ["b"], ["o"], then_branch=g, else_branch=leaf()),
        ]
        g = helper.make_graph(
            nodes, f"g{d}", [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1])]
        )
    path = tmp_path / "nested.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    graph = load(path)
    names, todo = [], [graph]
    while todo:
        sub = todo.pop()
        for n in sub.nodes:
            names.append(n.name)
            todo.extend(n.subgraphs())
    assert len(names) == 16 and max(map(len, names)) < 300
    assert max(map(len, graph.weights)) < 300
    assert max(len(w.source) for w in graph.weights.values() if isinstance(w.source, str)) < 600


@pytest.mark.parametrize("dim", [2**40, 2**62])
def test_huge_declared_input_is_refused_before_drawing(dim: int, tmp_path: Path) -> None:
    """An input whose declared (fixed) batch is 2^40 or 2^62: compress's seeded random fidelity
    samples were drawn at that shape (numpy's "Maximum allowed dimension exceeded", an internal
    error; found by fuzz seed 48, a .pt2 whose program declared 2^64). Refused in one line, exit 3."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 4], [1.0] * 16)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [dim, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [dim, 4])],
        [w],
    )
    path = tmp_path / "huge_input.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    out = tmp_path / "o.nnc"
    r = run_cli("compress", str(path), "-o", str(out), "--samples", "4")
    line = r.stderr.strip()
    assert r.returncode == EXIT_INPUT and "\n" not in line and str(path) in line, r.stderr
    assert "input 'X' of shape" in line and not out.exists()


@pytest.mark.parametrize("kind", ["recursive", "exponential"])
def test_onnx_functions_that_never_finish_inlining_are_refused(kind: str, tmp_path: Path) -> None:
    """Model-local functions that call themselves, or 40 that each call the one below twice (2^40
    nodes in 3 KB): onnxruntime's session inlines them and never finished building (found crafting
    files: compress ran for over an hour). Refused at load, exit 5, one line."""
    f32 = TensorProto.FLOAT
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]
    if kind == "recursive":
        funcs = [
            helper.make_function(
                "local", "F", ["x"], ["y"], [helper.make_node("F", ["x"], ["y"], domain="local")], opsets
            )
        ]
    else:
        funcs = [
            helper.make_function(
                "local", "F0", ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"])], opsets
            )
        ]
        for i in range(1, 40):
            body = [
                helper.make_node(f"F{i - 1}", ["x"], ["t"], domain="local"),
                helper.make_node(f"F{i - 1}", ["t"], ["y"], domain="local"),
            ]
            funcs.append(helper.make_function("local", f"F{i}", ["x"], ["y"], body, opsets))
    g = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["A"]),
            helper.make_node(funcs[-1].name, ["A"], ["Y"], domain="local"),
        ],
        "g",
        [helper.make_tensor_value_info("X", f32, [1, 4])],
        [helper.make_tensor_value_info("Y", f32, [1, 4])],
        [helper.make_tensor("W", f32, [4, 4], [1.0] * 16)],
    )
    path = tmp_path / f"{kind}.onnx"
    onnx.save(helper.make_model(g, opset_imports=opsets, functions=funcs), str(path))
    for args in (
        ["inspect", str(path)],
        ["compress", str(path), "-o", str(tmp_path / "o.nnc"), "--samples", "4"],
    ):
        r = run_cli(*args)
        line = r.stderr.strip()
        assert r.returncode == 5 and "\n" not in line and str(path) in line, r.stderr
        assert "model-local function" in line
