"""rdoq's compensation (GPTQ): the layers' input second moments (nncompress.hessian) and what the
pass does with them (less output error at the same step; columns no sample feeds are zero; the
streaming and whole-tensor forms agree; a note with or without data)."""

from __future__ import annotations

import numpy as np
import pytest

from nncompress import hessian
from nncompress.api import load
from nncompress.inputs import load_data, signatures
from nncompress.ir import Node
from nncompress.ir.interpreter import run
from nncompress.ir.ops import OPS
from nncompress.passes._infra import pipeline_blocks, pipeline_per_weight, source_chunks
from nncompress.passes.rdoq import HESSIAN
from nncompress.pipeline.run import compress

from .conftest import DATA, MODELS


def _data(graph: object, samples: int) -> object:
    specs, _ = signatures(graph, {})  # type: ignore[arg-type]
    return load_data(DATA / "mnist_test.npz", specs, samples=samples)


def test_dense_moments_are_the_mean_outer_product_of_the_inputs() -> None:
    g = load(MODELS / "lenet300.onnx")
    data = _data(g, 64)
    kernels = [n for n, w in g.weights.items() if w.role == "kernel"]
    got = hessian.input_moments(g, data, kernels, samples=40)  # type: ignore[arg-type]
    assert got is not None
    hs, n = got
    assert n == 40 and set(hs) == set(kernels)
    first = next(k for k in kernels if g.weights[k].shape[1] == 784)
    x = np.asarray(data.arrays[data.specs[0].name][:40], np.float64).reshape(40, -1)  # type: ignore[attr-defined]
    assert hs[first].shape == (1, 784, 784)
    np.testing.assert_allclose(hs[first][0], x.T @ x / 40, rtol=1e-9, atol=1e-12)
    for k in kernels:
        h = hs[k][0]
        assert np.allclose(h, h.T) and np.linalg.eigvalsh(h).min() > -1e-9


def test_conv_moments_give_the_output_error_of_any_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a Conv, E||conv(x, D)||^2 over samples and positions is sum_r D_r H D_r^T: H is the
    im2col patches' second moments, in the kernel's (channel, tap) column order."""
    monkeypatch.setattr(hessian, "ROWS_PER_SAMPLE", 1 << 30)  # every position
    g = load(MODELS / "vggmini.onnx")
    data = _data(g, 8)
    convs = [nd for nd in g.nodes if nd.op == "Conv"]
    assert len(convs) >= 2
    names = [nd.inputs[1] for nd in convs]
    hs, _ = hessian.input_moments(g, data, names, samples=3)  # type: ignore[arg-type, misc]
    fed: dict[str, np.ndarray] = {}

    def observe(node: Node, ins: list) -> None:
        if node.op == "Conv":
            fed[node.inputs[1]] = np.asarray(ins[0], np.float64)

    run(g, data.chunk(0, 3), batch_size=None, observe=observe)  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    for nd in convs[:2]:
        name = nd.inputs[1]
        w = g.weights[name]
        d = rng.standard_normal(w.shape)
        y = OPS["Conv"]([fed[name], d], nd.attrs)
        lhs = float(np.square(y).sum() / (y.shape[0] * np.prod(y.shape[2:])))
        d2 = d.reshape(w.shape[0], -1)
        rhs = float(np.einsum("ri,ij,rj->", d2, hs[name][0], d2))
        assert hs[name].shape == (1, d2.shape[1], d2.shape[1])
        assert lhs == pytest.approx(rhs, rel=1e-9)


def test_compensation_lowers_output_error_and_zeroes_unfed_columns() -> None:
    """lenet300 at step 1.41: compensated, less output error than plain rdoq on the same data; the
    first layer's weights on pixels no calibration sample lights are exactly 0."""
    data = DATA / "mnist_test.npz"
    spec = "rdoq:step=1.41{},cabac"
    plain = compress(MODELS / "lenet300.onnx", pipeline=spec.format(""), data=data, samples=300)
    comp = compress(
        MODELS / "lenet300.onnx", pipeline=spec.format(":compensate=true"), data=data, samples=300
    )
    assert any("input second moments of 3 kernels on the first 256 samples" in n for n in comp.notes)
    e_plain = plain.report["fidelity"]["rel_error_mean"]
    e_comp = comp.report["fidelity"]["rel_error_mean"]
    assert e_comp < 0.6 * e_plain
    assert comp.report["fidelity"]["accuracy_after"] > 0.9
    g = load(MODELS / "lenet300.onnx")
    specs, _ = signatures(g, {})
    x = np.asarray(load_data(data, specs, samples=256).arrays[specs[0].name]).reshape(256, -1)
    dead = (x == 0).all(axis=0)
    first = next(w for w in comp.graph.weights.values() if w.role == "kernel" and 784 in w.shape)
    a = np.asarray(first.array)
    a = a if a.shape[1] == 784 else a.T
    assert (a[:, dead] == 0).all() and (a[:, ~dead] != 0).any()


def test_streamed_and_whole_compensation_agree() -> None:
    """compress streams a tensor through `per_block`; the search quantizes it whole (`per_weight`):
    both give the same array."""
    g = load(MODELS / "lenet300.onnx")
    data = _data(g, 64)
    kernels = [n for n, w in g.weights.items() if w.role == "kernel"]
    g.meta.extra[HESSIAN] = hessian.input_moments(g, data, kernels, samples=32)[0]  # type: ignore[arg-type, index]
    spec = "rdoq:step=1:compensate=true"
    one = pipeline_per_weight(g, spec)
    blocks = pipeline_blocks(g, spec)
    assert one is not None and blocks is not None
    for name in kernels:
        w = g.weights[name]
        whole = one(w)
        src = blocks(w)
        streamed = np.concatenate([c.reshape(-1) for c in source_chunks(src, w.size)])
        np.testing.assert_array_equal(whole.reshape(-1), streamed)
        assert not np.array_equal(whole, w.array)


def test_without_data_compensation_is_plain_rdoq_with_a_note() -> None:
    blind = compress(MODELS / "lenet300.onnx", pipeline="rdoq:step=1:compensate=true,cabac", samples=8)
    plain = compress(MODELS / "lenet300.onnx", pipeline="rdoq:step=1,cabac", samples=8)
    assert any("rdoq compensation: not applied (no --data)" in n for n in blind.notes)
    assert blind.report["totals"]["payload_bytes"] == plain.report["totals"]["payload_bytes"]
