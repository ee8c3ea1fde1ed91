"""inputs: signatures with symbolic dims, --input-shape, seeded draws, --data keyed by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nncompress.errors import InputError, UnsupportedError, UsageError
from nncompress.inputs import (
    DATA_CAP,
    DEFAULT_DIM,
    batch_size,
    load_data,
    parse_input_shapes,
    random_data,
    signatures,
)
from nncompress.io import load
from nncompress.ir import Graph, Node, ValueInfo, Weight

from .conftest import DATA, MODELS


def _graph(
    inputs: list[ValueInfo], nodes: list[Node] | None = None, weights: list[Weight] | None = None
) -> Graph:
    return Graph(nodes=nodes or [], inputs=inputs, outputs=[], weights={w.name: w for w in weights or []})


def test_parse_input_shapes() -> None:
    assert parse_input_shapes(["x=1x3x224x224", "sr=", "Nx16"]) == {
        "x": (1, 3, 224, 224),
        "sr": (),
        None: (None, 16),
    }
    for bad in (["x=1xAx2"], ["=1x2"], ["x=1", "x=2"]):
        with pytest.raises(UsageError):
            parse_input_shapes(bad)


def test_symbolic_batch_and_spatial_dims_are_resolved_and_said() -> None:
    g = _graph([ValueInfo("img", ("N", 3, "H", "W"))])
    (s,), notes = signatures(g)
    assert s.batch_axis == 0 and s.shape == (1, 3, DEFAULT_DIM, DEFAULT_DIM)
    assert set(s.guessed.values()) == {"H", "W"}
    assert len(notes) == 1 and "H" in notes[0] and "--input-shape img=" in notes[0]
    (s,), notes = signatures(g, parse_input_shapes(["img=8x3x64x48"]))
    assert s.shape == (1, 3, 64, 48) and not s.guessed and not notes
    (s,), _ = signatures(g, parse_input_shapes(["1x3x64x48"]))  # bare: the single input
    assert s.shape == (1, 3, 64, 48)
    with pytest.raises(UsageError, match="dims"):
        signatures(g, parse_input_shapes(["img=3x64x48"]))
    with pytest.raises(UsageError, match="fixed at 3"):
        signatures(g, parse_input_shapes(["img=1x4x64x48"]))
    with pytest.raises(UsageError, match="no input of"):
        signatures(g, parse_input_shapes(["other=1x2"]))


def test_a_symbol_shared_by_two_inputs_gets_one_value() -> None:
    g = _graph([ValueInfo("a", ("B", "T", 8)), ValueInfo("b", ("B", "T"), "int64")])
    sa, sb = signatures(g, parse_input_shapes(["a=1x10x8"]))[0]
    assert sa.shape == (1, 10, 8) and sb.shape == (1, 10)


def test_a_state_input_is_batched_on_the_axis_of_the_batch_symbol() -> None:
    g = _graph([ValueInfo("x", ("batch", 5, 8)), ValueInfo("h0", (2, "batch", 16)), ValueInfo("sr", ())])
    sx, sh, ss = signatures(g)[0]
    assert (sx.batch_axis, sh.batch_axis, ss.batch_axis) == (0, 1, None)
    d = random_data([sx, sh, ss], 6, 0)
    assert (
        d.arrays["x"].shape == (6, 5, 8) and d.arrays["h0"].shape == (2, 6, 16) and d.arrays["sr"].shape == ()
    )
    ch = d.chunk(2, 5)
    assert ch["x"].shape == (3, 5, 8) and ch["h0"].shape == (2, 3, 16)
    np.testing.assert_array_equal(ch["h0"], d.arrays["h0"][:, 2:5])


def test_a_fixed_batch_is_kept() -> None:
    g = _graph([ValueInfo("x", (1, 3, 8, 8))])
    (s,), _ = signatures(g)
    assert s.fixed_batch == 1 and s.shape == (1, 3, 8, 8)
    d = random_data([s], 5, 0)
    assert d.arrays["x"].shape == (5, 3, 8, 8) and batch_size(d) == 1


def test_unknown_rank_needs_a_shape() -> None:
    g = _graph([ValueInfo("x", None)])
    with pytest.raises(UnsupportedError, match="--input-shape x="):
        signatures(g)
    (s,), _ = signatures(g, parse_input_shapes(["x=Nx4"]))
    assert s.shape == (1, 4) and s.batch_axis == 0


def test_integer_inputs_draw_ids_of_the_table_they_index() -> None:
    table = Weight("table", np.zeros((37, 4), np.float32), role="embedding")
    nodes = [
        Node("c", "Cast", ["ids"], ["ids32"], {"to": 6}),
        Node("g", "Gather", ["table", "ids32"], ["e"], {"axis": 0}),
    ]
    g = _graph(
        [
            ValueInfo("ids", ("B", 50), "int64"),
            ValueInfo("attention_mask", ("B", 50), "int64"),
            ValueInfo("count", (), "int32"),
            ValueInfo("flags", ("B", 3), "bool"),
        ],
        nodes,
        [table],
    )
    specs, notes = signatures(g)
    assert [s.fill for s in specs] == ["ids", "ones", "zeros", "bool"]
    assert specs[0].high == 37
    assert any("count" in n and "zeros" in n for n in notes)
    d = random_data(specs, 200, 1)
    ids = d.arrays["ids"]
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() == 36
    assert d.arrays["attention_mask"].all() and d.arrays["count"].dtype == np.int32
    assert d.arrays["flags"].dtype == np.bool_ and 0 < d.arrays["flags"].mean() < 1


def test_random_inputs_are_seeded() -> None:
    g = load(MODELS / "lenet300.onnx")
    specs, _ = signatures(g)
    a, b, c = random_data(specs, 8, 3), random_data(specs, 8, 3), random_data(specs, 8, 4)
    np.testing.assert_array_equal(a.arrays["input"], b.arrays["input"])
    assert not np.array_equal(a.arrays["input"], c.arrays["input"])
    # the budget's note on random inputs reads this flag, not the origin text
    assert a.random and not load_data(DATA / "mnist_test.npz", specs, samples=4).random


def test_data_keyed_by_name_and_x_for_one_input(tmp_path: Path) -> None:
    g = load(MODELS / "vggmini.onnx")
    specs, _ = signatures(g)
    d = load_data(DATA / "mnist_test.npz", specs)  # flat x rows for a (N, 1, 28, 28) input
    assert d.n == 1000 == DATA_CAP and d.arrays["input"].shape == (1000, 1, 28, 28) and d.y is not None
    d = load_data(DATA / "mnist_test.npz", specs, samples=10)
    assert d.n == 10 and len(d.y) == 10  # type: ignore[arg-type]
    p = tmp_path / "named.npz"
    np.savez(p, input=np.zeros((4, 1, 28, 28), np.float64), y=np.arange(4))
    d = load_data(p, specs)
    assert d.arrays["input"].dtype == np.float32 and d.n == 4
    np.savez(p, other=np.zeros((4, 784)))
    with pytest.raises(InputError, match="no array for input input"):
        load_data(p, specs)
    np.savez(p, x=np.zeros((4, 784)), y=np.arange(3))
    with pytest.raises(InputError, match="y has 3"):
        load_data(p, specs)


def test_data_over_the_cap_says_so(tmp_path: Path) -> None:
    g = load(MODELS / "lenet300.onnx")
    specs, _ = signatures(g)
    p = tmp_path / "big.npz"
    np.savez(p, x=np.zeros((DATA_CAP + 5, 784), np.float32))
    d = load_data(p, specs)
    assert d.n == DATA_CAP and any(f"--samples {DATA_CAP + 5}" in n for n in d.notes)
    assert load_data(p, specs, samples=DATA_CAP + 5).n == DATA_CAP + 5


def test_batch_size_depends_on_shapes_only() -> None:
    small = random_data(signatures(_graph([ValueInfo("x", ("N", 784))]))[0], 4, 0)
    big = random_data(signatures(_graph([ValueInfo("x", ("N", 3, 224, 224))]))[0], 4, 0)
    assert batch_size(small) == 256 and 1 <= batch_size(big) < 16


def test_float_ids_into_an_embedding_are_ids() -> None:
    """A Keras Input is float32 even when it feeds an Embedding."""
    table = Weight("t", np.zeros((12, 4), np.float32), role="embedding")
    nodes = [
        Node("c", "Cast", ["tokens"], ["i"], {"to": 7}),
        Node("g", "Gather", ["t", "i"], ["e"], {"axis": 0}),
    ]
    (s,), _ = signatures(_graph([ValueInfo("tokens", (None, 9))], nodes, [table]))
    assert s.fill == "ids" and s.high == 12
    a = random_data([s], 50, 0).arrays["tokens"]
    assert a.dtype == np.float32 and set(np.unique(a)) <= set(range(12))


def test_data_of_the_wrong_shape_is_an_input_error(tmp_path: Path) -> None:
    g = _graph([ValueInfo("a", ("B", 3, 8)), ValueInfo("h", (2, "B", 4))])
    specs, _ = signatures(g)
    p = tmp_path / "d.npz"
    np.savez(p, a=np.zeros((5, 3, 8)), h=np.ones((5, 2, 4)))  # h: samples on axis 0, moved to axis 1
    d = load_data(p, specs)
    assert d.arrays["h"].shape == (2, 5, 4) and d.n == 5
    for bad in ({"a": np.zeros((5, 4, 8))}, {"a": np.zeros(())}, {"a": np.zeros((5, 7))}):
        np.savez(p, **{"h": np.ones((5, 2, 4)), **bad})
        with pytest.raises(InputError, match="array 'a'"):
            load_data(p, specs)


def test_negative_dims_are_dynamic() -> None:
    (s,), notes = signatures(_graph([ValueInfo("x", (-1, 3, -1))]))
    assert s.batch_axis == 0 and s.shape == (1, 3, DEFAULT_DIM) and notes
