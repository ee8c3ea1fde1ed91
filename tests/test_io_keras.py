"""Keras loader and writer: real Keras 2 (tf_keras) and Keras 3 files, executor vs Keras, round trips.

Every fixture is a tiny model with seeded random weights, built once per module (TensorFlow is slow to
import) and saved in the formats Keras writes: full .h5, .keras zips and weights-only .h5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from nncompress.errors import InputError, OutputError, UnsupportedError
from nncompress.io import load
from nncompress.io.keras import WEIGHTS_ONLY_NOTE, load_keras, save_keras
from nncompress.ir import Graph, Weight

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RTOL, ATOL = 1e-4, 1e-5


@dataclass
class Case:
    model: Any  # the in-memory Keras model the files were saved from
    xs: list[np.ndarray]  # one batch per model input
    k2: bool  # written by tf_keras (Keras 2)
    files: dict[str, Path]  # "h5", "keras", "weights" -> path


def _randomize(model: Any, rng: np.random.Generator) -> None:
    """Seeded random weights, so that no layer is an identity by accident (variances stay positive)."""
    new = []
    for w in model.weights:
        shape = tuple(w.shape)
        if "moving_variance" in w.name:
            new.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        else:
            new.append((rng.normal(size=shape) * 0.5).astype(np.float32))
    model.set_weights(new)


def _build_k3(d: Path, rng: np.random.Generator) -> dict[str, Case]:
    import keras
    from keras import layers as kl

    keras.utils.set_random_seed(0)
    cases: dict[str, Any] = {}

    m = keras.Sequential(
        [
            keras.Input((6,)),
            kl.Dense(8, activation="relu"),
            kl.Dropout(0.5),
            kl.Dense(4, activation="softmax"),
        ]
    )
    cases["k3_mlp"] = (m, [rng.normal(size=(5, 6)).astype(np.float32)])

    x = inp = keras.Input((9, 9, 3), name="img")
    x = kl.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = kl.BatchNormalization()(x)
    x = kl.MaxPooling2D(2, padding="same")(x)
    x = kl.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = kl.SeparableConv2D(5, 3, padding="same", activation="tanh")(x)
    a, b = kl.GlobalAveragePooling2D()(x), kl.Flatten()(x)
    out = kl.Dense(3, activation="softmax")(kl.Concatenate()([a, b]))
    cases["k3_cnn"] = (keras.Model(inp, out), [rng.normal(size=(4, 9, 9, 3)).astype(np.float32)])

    # Two inputs, a layer shared by both, a nested Sequential and Functional, merges and two outputs.
    ia, ib = keras.Input((5,), name="a"), keras.Input((5,), name="b")
    shared = kl.Dense(4, name="shared")
    inner = keras.Sequential(
        [keras.Input((4,)), kl.Dense(4, activation="tanh"), kl.BatchNormalization()], name="inner"
    )
    fi = keras.Input((4,))
    innerf = keras.Model(fi, kl.Dense(4, name="fd")(fi), name="innerf")
    sa, sb = shared(ia), shared(ib)
    s = kl.Add()([inner(sa), innerf(sb), sa])
    c = kl.Concatenate()([s, kl.Subtract()([sa, sb]), kl.Multiply()([sa, sb])])
    c = kl.Concatenate()([c, kl.Average()([sa, sb]), kl.Maximum()([sa, sb])])
    o1 = kl.Dense(3, name="head")(c)
    o2 = kl.Softmax(name="probs")(kl.Dense(2)(s))
    cases["k3_func"] = (
        keras.Model([ia, ib], [o1, o2]),
        [rng.normal(size=(3, 5)).astype(np.float32) for _ in range(2)],
    )

    m = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            kl.Embedding(11, 4),
            kl.TimeDistributed(kl.Dense(3, activation="tanh")),
            kl.Dense(2),
        ]
    )
    cases["k3_emb"] = (m, [rng.integers(0, 11, (3, 7)).astype(np.int32)])

    x = inp = keras.Input((16, 3))
    x = kl.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu")(x)
    x = kl.Cropping1D((1, 0))(kl.ZeroPadding1D((1, 2))(x))
    x = kl.Conv1D(6, 3, strides=2, padding="same")(x)
    x = kl.MaxPooling1D(2)(x)
    x = kl.AveragePooling1D(3, strides=1, padding="same")(x)
    x = kl.Softmax(axis=1)(x)
    y = kl.Conv1D(3, 2, padding="valid", groups=3)(x)
    y = kl.GlobalAveragePooling1D()(y)
    z = kl.Flatten()(kl.Permute((2, 1))(kl.Reshape((6, 4))(x)))
    out = kl.Dense(2)(kl.Concatenate()([y, z]))
    cases["k3_conv1d"] = (keras.Model(inp, out), [rng.normal(size=(3, 16, 3)).astype(np.float32)])

    x = inp = keras.Input((4, 4, 2))
    x = kl.Conv2D(3, 1)(x)
    x = kl.Cropping2D(((0, 1), (1, 1)))(kl.ZeroPadding2D(((1, 0), (2, 1)))(x))
    x = kl.PReLU(shared_axes=[1, 2])(x)
    x = kl.PReLU()(x)
    x = kl.LeakyReLU(negative_slope=0.1)(x)
    x = kl.ReLU(max_value=1.5, negative_slope=0.1)(x)
    x = kl.ELU(alpha=0.7)(x)
    # Each activation on its own branch, all returned: a chain would saturate and hide a wrong constant.
    acts = ("hard_sigmoid", "gelu", "swish", "softplus", "softsign", "selu", "relu6", "leaky_relu", "mish")
    y = kl.Concatenate()([kl.Activation(a)(kl.Conv2D(3, 1, name=f"pre_{a}")(x)) for a in acts])
    out = kl.Dense(2, activation="elu")(kl.Flatten()(kl.GlobalMaxPooling2D(keepdims=True)(y)))
    cases["k3_act"] = (keras.Model(inp, [y, out]), [rng.normal(size=(3, 4, 4, 2)).astype(np.float32) * 3])

    x = inp = keras.Input((4,))
    x = kl.Dense(3)(x)
    x = kl.Lambda(lambda t: t * 2.0, name="double")(x)
    cases["k3_lambda"] = (keras.Model(inp, kl.Dense(2)(x)), [rng.normal(size=(3, 4)).astype(np.float32)])

    out: dict[str, Case] = {}
    for name, (model, xs) in cases.items():
        _randomize(model, rng)
        files = {"h5": d / f"{name}.h5", "keras": d / f"{name}.keras"}
        model.save(files["h5"])
        model.save(files["keras"])
        if name in ("k3_cnn", "k3_mlp"):
            files["weights"] = d / f"{name}.weights.h5"
            model.save_weights(files["weights"])
        out[name] = Case(model, xs, False, files)
    return out


def _build_k2(d: Path, rng: np.random.Generator) -> dict[str, Case]:
    import tf_keras as keras
    from tf_keras import layers as kl

    keras.utils.set_random_seed(0)
    cases: dict[str, Any] = {}
    x = inp = keras.Input((8, 8, 3))
    x = kl.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = kl.BatchNormalization()(x)
    x = kl.MaxPooling2D()(x)
    x = kl.DepthwiseConv2D(3, padding="same")(x)
    x = kl.SeparableConv2D(5, 3, padding="same")(x)
    x = kl.AveragePooling2D(3, strides=1, padding="same")(x)
    out = kl.Dense(3, activation="softmax")(kl.Flatten()(x))
    m = keras.Model(inp, out)
    _randomize(m, rng)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(rng.normal(size=(4, 8, 8, 3)), np.array([0, 1, 2, 1]), epochs=1, verbose=0)
    cases["k2_cnn"] = (m, [rng.normal(size=(3, 8, 8, 3)).astype(np.float32)])

    inner = keras.Sequential([kl.Dense(4, activation="relu", input_shape=(5,)), kl.Dense(4)], name="inner")
    i = keras.Input((5,))
    s = kl.Add()([inner(i), kl.Dense(4)(i)])
    out = kl.Dense(2)(kl.Concatenate()([s, kl.LeakyReLU(alpha=0.2)(s)]))
    cases["k2_func"] = (keras.Model(i, out), [rng.normal(size=(3, 5)).astype(np.float32)])

    m = keras.Sequential(
        [
            kl.Embedding(10, 4, input_length=6),
            kl.TimeDistributed(kl.Dense(3)),
            kl.BatchNormalization(center=False),
            kl.Activation("hard_sigmoid"),  # Keras 2: clip(0.2 x + 0.5, 0, 1)
            kl.PReLU(),
            kl.ReLU(max_value=0.8),
        ]
    )
    m.build((None, 6))
    cases["k2_emb"] = (m, [rng.integers(0, 10, (3, 6)).astype(np.float32)])

    out_cases: dict[str, Case] = {}
    for name, (model, xs) in cases.items():
        if name != "k2_cnn":  # randomized before its training step
            _randomize(model, rng)
        files = {"h5": d / f"{name}.h5"}
        model.save(files["h5"])
        if name == "k2_cnn":
            files["weights"] = d / f"{name}_weights.h5"
            model.save_weights(files["weights"])
        out_cases[name] = Case(model, xs, True, files)
    return out_cases


@pytest.fixture(scope="module")
def kx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    d = tmp_path_factory.mktemp("keras")
    rng = np.random.default_rng(0)
    return {**_build_k3(d, rng), **_build_k2(d, rng)}


def _layer(model: Any, cls: str) -> Any:
    """The first layer of class ``cls`` (Keras numbers default names per session)."""
    return next(lay for lay in model.layers if type(lay).__name__ == cls)


def _predict(model: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
    out = model(xs if len(xs) > 1 else xs[0], training=False)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def _execute(g: Graph, xs: list[np.ndarray]) -> list[np.ndarray]:
    from nncompress.ir.interpreter import run

    return run(g, {vi.name: x for vi, x in zip(g.inputs, xs, strict=True)})


def _load_model(path: Path, k2: bool) -> Any:
    if k2:
        import tf_keras

        return tf_keras.models.load_model(path, compile=False)
    import keras

    return keras.models.load_model(path, compile=False, safe_mode=False)  # our own Lambda fixture


def _assert_close(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


RUNNABLE = [
    ("k3_mlp", "h5"),
    ("k3_mlp", "keras"),
    ("k3_cnn", "h5"),
    ("k3_cnn", "keras"),
    ("k3_func", "h5"),
    ("k3_func", "keras"),
    ("k3_emb", "h5"),
    ("k3_emb", "keras"),
    ("k3_conv1d", "keras"),
    ("k3_act", "h5"),
    ("k3_act", "keras"),
    ("k2_cnn", "h5"),
    ("k2_func", "h5"),
    ("k2_emb", "h5"),
]


@pytest.mark.parametrize(("case", "fmt"), RUNNABLE)
def test_executor_matches_keras(kx: dict[str, Case], case: str, fmt: str) -> None:
    c = kx[case]
    g = load_keras(c.files[fmt])
    assert g.has_graph
    _assert_close(_execute(g, c.xs), _predict(c.model, c.xs))


def test_cnn_layout_and_meta(kx: dict[str, Case]) -> None:
    c = kx["k3_cnn"]
    g = load_keras(c.files["keras"])
    conv_name, dw_name, dense_name = (_layer(c.model, t).name for t in ("Conv2D", "DepthwiseConv2D", "Dense"))
    assert (g.meta.format, g.meta.producer) == ("keras", "keras")
    assert g.meta.producer_version.startswith("3.")
    assert g.inputs[0].name == "img" and g.inputs[0].shape == (None, 9, 9, 3)
    w = g.weights[f"{conv_name}/kernel"]
    assert (w.shape, w.role, w.op, w.source) == ((4, 3, 3, 3), "kernel", "Conv", "layers/conv2d/vars/0")
    np.testing.assert_array_equal(w.to_source(), c.model.get_layer(conv_name).get_weights()[0])
    assert g.weights[f"{dw_name}/kernel"].shape == (8, 1, 3, 3)
    conv, dw = (
        next(n for n in g.nodes if n.layer == name and n.op == "Conv") for name in (conv_name, dw_name)
    )
    assert conv.attrs["auto_pad"] == "SAME_UPPER" and conv.attrs["strides"] == [2, 2]
    assert dw.attrs["group"] == 4
    assert g.outputs[0].name == dense_name  # the layer's output after its activation
    assert g.weights[f"{dense_name}/kernel"].shape == (3, 5 + 3 * 3 * 5)

    h = load(c.files["h5"])  # through the dispatcher
    assert h.meta.format == "keras-h5" and h.meta.extra["backend"] == "tensorflow"
    assert h.weights[f"{conv_name}/kernel"].source == f"model_weights/{conv_name}/{conv_name}/kernel"
    assert sorted(h.weights) == sorted(g.weights)


def test_keras2_optimizer_note_and_names(kx: dict[str, Case]) -> None:
    c = kx["k2_cnn"]
    g = load_keras(c.files["h5"])
    assert g.meta.producer_version.startswith("2.")
    note = "training state left out of the artifact: optimizer_weights ("
    assert any(n.startswith(note) and "--keep-training-state" in n for n in g.meta.notes)
    assert g.meta.extra["training_state"]["optimizer_weights"]["tensors"] > 0
    dense, sep = _layer(c.model, "Dense").name, _layer(c.model, "SeparableConv2D").name
    assert g.weights[f"{dense}/kernel"].source == f"model_weights/{dense}/{dense}/kernel:0"
    assert g.weights[f"{sep}/depthwise_kernel"].shape == (4, 1, 3, 3)


@pytest.mark.parametrize(
    ("case", "fmt"),
    [("k3_cnn", "h5"), ("k3_cnn", "keras"), ("k3_func", "keras"), ("k2_cnn", "h5"), ("k2_emb", "h5")],
)
def test_round_trip_and_modified_weights(kx: dict[str, Case], tmp_path: Path, case: str, fmt: str) -> None:
    c = kx[case]
    src = c.files[fmt]
    g = load_keras(src)
    same = save_keras(g, tmp_path / f"same{src.suffix}")
    for a, b in zip(_predict(_load_model(same, c.k2), c.xs), _predict(c.model, c.xs), strict=True):
        np.testing.assert_array_equal(a, b)

    half = g.copy()
    for w in half.select(roles=("kernel",)):
        w.value = (w.array * 0.5).astype(w.dtype)
    out = save_keras(half, tmp_path / f"half{src.suffix}")
    keras_half = _predict(_load_model(out, c.k2), c.xs)
    _assert_close(_execute(half, c.xs), keras_half)
    assert not np.allclose(keras_half[0], _predict(c.model, c.xs)[0], atol=1e-6)


@pytest.mark.parametrize("case", ["k3_cnn", "k3_lambda"])
def test_keras_zip_written_as_legacy_h5(kx: dict[str, Case], tmp_path: Path, case: str) -> None:
    c = kx[case]
    g = load_keras(c.files["keras"])
    for w in g.select(roles=("kernel",)):
        w.value = (w.array * 0.5).astype(w.dtype)
    out = save_keras(g, tmp_path / "half.h5")
    again = load_keras(out)
    assert again.meta.format == "keras-h5" and sorted(again.weights) == sorted(g.weights)
    for name, w in g.weights.items():
        np.testing.assert_array_equal(again.weights[name].array, w.array)
    if case == "k3_cnn":
        _assert_close(_execute(g, c.xs), _predict(_load_model(out, False), c.xs))


def test_writer_drops_optimizer_state_unless_kept(kx: dict[str, Case], tmp_path: Path) -> None:
    src = kx["k2_cnn"].files["h5"]
    g = load_keras(src)
    for w in g.select(roles=("kernel",)):
        w.value = np.zeros(w.shape, w.dtype)
    out = save_keras(g, tmp_path / "dropped.h5")
    assert out.stat().st_size < src.stat().st_size
    with h5py.File(src, "r") as a, h5py.File(out, "r") as b:
        assert "optimizer_weights" not in b and dict(a.attrs) == dict(b.attrs)
        assert not b["model_weights/dense/dense/kernel:0"][()].any()
    _predict(_load_model(out, True), kx["k2_cnn"].xs)  # still loads in Keras 2

    g.meta.extra["keep_training_state"] = True
    out = save_keras(g, tmp_path / "z.h5")
    with h5py.File(src, "r") as a, h5py.File(out, "r") as b:
        assert dict(a.attrs) == dict(b.attrs)
        names: list[str] = []
        a["optimizer_weights"].visititems(
            lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None
        )
        assert names
        for n in names:
            np.testing.assert_array_equal(a["optimizer_weights"][n][()], b["optimizer_weights"][n][()])
        assert not b["model_weights/dense/dense/kernel:0"][()].any()
        np.testing.assert_array_equal(
            a["model_weights/dense/dense/bias:0"][()], b["model_weights/dense/dense/bias:0"][()]
        )


def test_keras_zip_members_copied_byte_for_byte(kx: dict[str, Case], tmp_path: Path) -> None:
    src = kx["k3_mlp"].files["keras"]
    out = save_keras(load_keras(src), tmp_path / "m.keras")
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()
        for n in a.namelist():
            if n != "model.weights.h5":
                assert a.read(n) == b.read(n)


def test_weights_only_files(kx: dict[str, Case], tmp_path: Path) -> None:
    for case in ("k3_cnn", "k2_cnn"):
        c = kx[case]
        g = load_keras(c.files["weights"])
        assert not g.has_graph and not g.nodes
        assert WEIGHTS_ONLY_NOTE in g.meta.notes
        assert g.meta.format == "keras-h5"
        dense, conv2d = _layer(c.model, "Dense"), _layer(c.model, "Conv2D")
        w = next(w for w in g.weights.values() if w.layer == dense.name and w.role == "kernel")
        assert w.op == "Dense"
        np.testing.assert_array_equal(w.array, dense.get_weights()[0].T)
        conv = next(w for w in g.weights.values() if w.layer == conv2d.name and w.role == "kernel")
        assert conv.op == "Conv" and conv.shape == (4, 3, 3, 3)
        dw = _layer(c.model, "DepthwiseConv2D")
        dwk = next(w for w in g.weights.values() if w.layer == dw.name and w.role == "kernel")
        kh, kw, cin, mult = dw.get_weights()[0].shape
        assert (dwk.op, dwk.shape) == ("Conv", (cin * mult, 1, kh, kw))
        np.testing.assert_array_equal(dwk.to_source(), dw.get_weights()[0])
        roles = {w.role for w in g.weights.values()}
        assert {"kernel", "bias", "bn_gamma", "bn_beta", "bn_mean", "bn_var"} <= roles
        from nncompress.ir.interpreter import run

        with pytest.raises(UnsupportedError, match="weights-only"):
            run(g, c.xs[0])

    # A patched Keras 3 weights file loads back into the model.
    c = kx["k3_mlp"]
    g = load_keras(c.files["weights"])
    for w in g.select(roles=("kernel",)):
        w.value = w.array * 0.5
    out = save_keras(g, tmp_path / "half.weights.h5")
    import keras

    m = keras.models.clone_model(c.model)
    m.load_weights(out)
    np.testing.assert_allclose(m.layers[0].get_weights()[0], c.model.layers[0].get_weights()[0] * 0.5)


def test_lambda_is_kept_never_run(kx: dict[str, Case], tmp_path: Path) -> None:
    c = kx["k3_lambda"]
    for fmt in ("keras", "h5"):
        g = load_keras(c.files[fmt])
        lam = next(n for n in g.nodes if n.layer == "double")
        assert (lam.op, lam.domain) == ("Lambda", "keras")
        assert any("double" in n and "opaque" in n for n in g.meta.notes)
        with pytest.raises(UnsupportedError, match="Lambda"):
            _execute(g, c.xs)
    g = load_keras(c.files["keras"])
    out = save_keras(g, tmp_path / "lam.keras")
    for a, b in zip(_predict(_load_model(out, False), c.xs), _predict(c.model, c.xs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_loading_never_imports_tensorflow(kx: dict[str, Case]) -> None:
    paths = [
        str(kx["k3_cnn"].files["keras"]),
        str(kx["k2_cnn"].files["h5"]),
        str(kx["k3_lambda"].files["h5"]),
    ]
    code = (
        "import sys\nfrom nncompress.io.keras import load_keras\n"
        f"for p in {paths!r}: load_keras(p)\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def _one_line_input_error(p: Path) -> str:
    with pytest.raises(InputError) as e:
        load_keras(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    return msg


def test_bad_inputs(kx: dict[str, Case], tmp_path: Path) -> None:
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    assert "empty" in _one_line_input_error(empty)

    data = kx["k3_cnn"].files["h5"].read_bytes()
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(data[: len(data) // 2])
    _one_line_input_error(trunc)

    text = tmp_path / "text.h5"
    text.write_text("this is not a model\n")
    assert "HDF5" in _one_line_input_error(text)

    noconf = tmp_path / "noconf.keras"
    with zipfile.ZipFile(noconf, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    assert "config.json" in _one_line_input_error(noconf)

    badjson = tmp_path / "badjson.keras"
    with zipfile.ZipFile(badjson, "w") as z:
        z.writestr("config.json", "{not json")
        z.writestr("model.weights.h5", b"")
    assert "JSON" in _one_line_input_error(badjson)

    notzip = tmp_path / "notzip.keras"
    notzip.write_bytes(b"PK\x03\x04 broken")
    _one_line_input_error(notzip)

    nothing = tmp_path / "nothing.h5"
    with h5py.File(nothing, "w") as f:
        f["x"] = np.zeros(3)
    assert "neither" in _one_line_input_error(nothing)

    for p in (empty, trunc, text, noconf):  # the same through the dispatcher
        with pytest.raises(InputError):
            load(p)


def test_writer_refusals(kx: dict[str, Case], tmp_path: Path) -> None:
    src = kx["k3_mlp"].files["keras"]
    g = load_keras(src)
    with pytest.raises(OutputError, match="input"):
        save_keras(g, src, force=True)
    out = save_keras(g, tmp_path / "a.keras")
    with pytest.raises(OutputError, match="exists"):
        save_keras(g, out)
    save_keras(g, out, force=True)
    with pytest.raises(OutputError, match="flat") as e:
        save_keras(load_keras(kx["k3_func"].files["keras"]), tmp_path / "nested.h5")
    assert "\n" not in str(e.value)
    with pytest.raises(OutputError, match="h5"):
        save_keras(load_keras(kx["k3_mlp"].files["h5"]), tmp_path / "m.keras")
    plain = Graph(weights={"w": Weight("w", np.zeros((2, 2), np.float32))})
    with pytest.raises(OutputError, match="onnx"):
        save_keras(plain, tmp_path / "b.h5")


def test_transposed_kernels_read_in_slabs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Dense kernels are read slab by slab into the IR layout; slabs of a few rows give what one read
    # does, and every weight still equals the file's dataset in the IR layout.
    path = Path(__file__).resolve().parents[1] / "examples" / "models" / "lenet300.h5"
    whole = load_keras(path)
    import nncompress.io.keras._store as keras_store

    monkeypatch.setattr(keras_store, "_SLAB_BYTES", 3 * 300 * 4 + 5)  # 3 rows of the 784x300 kernel
    slabs = load_keras(path)
    assert whole.weights.keys() == slabs.weights.keys()
    assert sum(w.layout == [("transpose", (1, 0))] for w in slabs.weights.values()) == 3
    with h5py.File(path, "r") as f:
        for name, w in slabs.weights.items():
            np.testing.assert_array_equal(w.array, whole.weights[name].array)
            assert w.array.flags.c_contiguous
            if w.layout == [("transpose", (1, 0))]:
                np.testing.assert_array_equal(w.array, f[w.source][()].T)
