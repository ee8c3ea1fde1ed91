"""Build VGG16-shaped models (138 M parameters) with random weights, on demand, for size and speed work.

Nothing here is trained: only sizes and timings are measured on these files, never accuracy.
They are not committed (about 550 MB each; see .gitignore).

    python examples/make_vgg16.py --formats pt,onnx,h5 [--out examples/models] [--seed 0]

Writes vgg16.pt (TorchScript), vgg16_state_dict.pt, vgg16.onnx and vgg16.h5 (Keras 3), all with the
same weights, input 224x224x3, 1000 classes, like the network of Simonyan & Zisserman (2015).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def build_torch(seed: int):  # type: ignore[no-untyped-def]
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c = 3
    for v in CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU()]
            c = int(v)
    layers += [
        nn.Flatten(),
        nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 1000),
    ]  # fmt: skip
    model = nn.Sequential(*layers).eval()
    with torch.no_grad():  # He-style scale, so activations stay finite through 16 layers
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, float(np.sqrt(2.0 / fan_in)))
                # distinct small biases: equal ones would be merged by the ONNX exporter
                m.bias.uniform_(-0.01, 0.01)
    return model


def write_keras(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    import keras

    L = keras.layers
    seq: list[object] = [keras.Input((224, 224, 3), name="input")]
    convs = [m for m in model if m.__class__.__name__ == "Conv2d"]
    lins = [m for m in model if m.__class__.__name__ == "Linear"]
    i = 0
    for v in CFG:
        if v == "M":
            seq.append(L.MaxPooling2D(2))
        else:
            seq.append(L.Conv2D(int(v), 3, padding="same", activation="relu", name=f"conv{i}"))
            i += 1
    seq += [
        L.Flatten(),
        L.Dense(4096, activation="relu", name="fc1"),
        L.Dense(4096, activation="relu", name="fc2"),
        L.Dense(1000, name="fc3"),
    ]
    km = keras.Sequential(seq, name="vgg16")
    for j, c in enumerate(convs):
        km.get_layer(f"conv{j}").set_weights(
            [c.weight.detach().numpy().transpose(2, 3, 1, 0), c.bias.detach().numpy()]
        )
    w0 = lins[0].weight.detach().numpy().reshape(4096, 512, 7, 7).transpose(0, 2, 3, 1).reshape(4096, -1)
    km.get_layer("fc1").set_weights([w0.T, lins[0].bias.detach().numpy()])
    for name, lin in [("fc2", lins[1]), ("fc3", lins[2])]:
        km.get_layer(name).set_weights([lin.weight.detach().numpy().T, lin.bias.detach().numpy()])
    km.save(str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default="pt,onnx,h5")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import torch

    fmts = set(args.formats.split(","))
    model = build_torch(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, 224, 224)
    if "pt" in fmts:
        torch.jit.trace(model, example).save(str(args.out / "vgg16.pt"))
        torch.save(model.state_dict(), args.out / "vgg16_state_dict.pt")
    if "onnx" in fmts:
        torch.onnx.export(
            model, (example,), str(args.out / "vgg16.onnx"), input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
    if "h5" in fmts:
        write_keras(model, args.out / "vgg16.h5")
    n = sum(p.numel() for p in model.parameters())
    print(f"VGG16-shaped model: {n:,} parameters; wrote {sorted(fmts)} to {args.out}")


if __name__ == "__main__":
    main()
