"""The IR: layout conversion both ways, validation, selection, copies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nncompress.ir import Graph, IRError, Node, ValueInfo, Weight, apply_layout, invert_layout


@given(st.permutations([0, 1, 2, 3]), st.lists(st.integers(1, 4), min_size=4, max_size=4))
def test_layout_inverts_any_transpose_and_reshape(perm: list[int], shape: list[int]) -> None:
    src = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t = tuple(shape[i] for i in perm)
    ops = [("transpose", tuple(perm)), ("reshape", (t[0] * t[1], t[2], t[3]))]
    ir = apply_layout(src, ops)
    np.testing.assert_array_equal(invert_layout(ir, ops, src.shape), src)


def test_weight_to_source_uses_layout() -> None:
    k = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)  # Keras (in, out)
    w = Weight(
        "k", apply_layout(k, [("transpose", (1, 0))]), layout=[("transpose", (1, 0))], source_shape=k.shape
    )
    assert w.shape == (5, 3)
    np.testing.assert_array_equal(w.to_source(), k)


def _mlp() -> Graph:
    rng = np.random.default_rng(0)
    ws = {
        "w": Weight("w", rng.normal(size=(4, 3)).astype(np.float32), layer="fc", role="kernel", op="Dense"),
        "b": Weight("b", np.zeros(4, np.float32), layer="fc", role="bias", op="Dense"),
    }
    nodes = [Node("fc", "Dense", ["x", "w", "b"], ["h"]), Node("act", "Relu", ["h"], ["y"])]
    return Graph(nodes=nodes, inputs=[ValueInfo("x", (None, 3))], outputs=[ValueInfo("y")], weights=ws)


def test_validate_accepts_a_good_graph() -> None:
    _mlp().validate()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda g: g.nodes[1].inputs.__setitem__(0, "nope"), "dangling"),
        (lambda g: g.nodes.reverse(), "before it is computed"),
        (lambda g: g.nodes[1].outputs.__setitem__(0, "h"), "produced twice"),
        (lambda g: setattr(g.weights["b"], "value", np.zeros(5, np.float32)), "bias"),
        (lambda g: setattr(g.weights["w"], "value", np.zeros(4, np.float32)), "2-D"),
        (lambda g: g.outputs.append(ValueInfo("z")), "never produced"),
    ],
)
def test_validate_catches(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    g = _mlp()
    mutate(g)
    with pytest.raises(IRError, match=message):
        g.validate()


def test_select_and_layers() -> None:
    g = _mlp()
    assert [w.name for w in g.select()] == ["w"]
    assert [w.name for w in g.select(roles=("kernel", "bias"), ops=("Conv",))] == []
    assert list(g.layers()) == ["fc"]


def test_copy_does_not_share_weight_slots() -> None:
    g = _mlp()
    c = g.copy()
    c.weights["w"].value = np.ones((4, 3), np.float32)
    assert not np.array_equal(g.weights["w"].array, c.weights["w"].array)


class _Halves:
    """A stand-in compressed tensor: stores float16 and decodes to float32."""

    def __init__(self, a: np.ndarray) -> None:
        self.h = a.astype(np.float16)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.h.shape

    @property
    def dtype(self) -> np.dtype:  # type: ignore[type-arg]
        return np.dtype(np.float32)

    def to_dense(self) -> np.ndarray:
        return self.h.astype(np.float32)


def test_slot_holds_a_compressed_tensor() -> None:
    g = _mlp()
    g.weights["w"].value = _Halves(g.weights["w"].array)
    assert g.weights["w"].is_compressed
    assert g.weights["w"].array.dtype == np.float32
    g.validate()
