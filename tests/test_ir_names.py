"""The shared name and dtype helpers: each suffix style loaders rely on, and dtype spellings."""

from __future__ import annotations

import numpy as np
import pytest

from nncompress.ir.names import Counter, Names, dtype_name


def test_fresh_keeps_a_free_name_and_numbers_a_taken_one() -> None:
    n = Names(["relu"])
    assert [n.fresh("relu"), n.fresh("relu"), n.fresh("conv")] == ["relu_1", "relu_2", "conv"]
    assert "relu_2" in n


def test_fresh_skips_names_in_also_and_styles() -> None:
    assert Names(sep="#").fresh("d", also={"d", "d#1"}) == "d#2"
    always = Names(["w__1"], sep="__", always=True)
    assert [always.fresh("w"), always.fresh("v")] == ["w__2", "v__1"]
    rep = Names(repeat=True)
    assert [rep.fresh("n"), rep.fresh("n"), rep.fresh("n")] == ["n", "n_", "n__"]


def test_counter_numbers_like_keras() -> None:
    c = Counter()
    assert [c("dense"), c("dense"), c("conv2d"), c("dense")] == ["dense", "dense_1", "conv2d", "dense_2"]


@pytest.mark.parametrize(
    ("given", "want"),
    [
        (np.float32, "float32"),
        (np.dtype("<i8"), "int64"),
        ("torch.float16", "float16"),
        ("<f4", "float32"),
        ("bfloat16", "bfloat16"),
        ({"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}, "float32"),
        ("mixed_bfloat16", "float32"),
        (None, None),
        ("qint8", None),
    ],
)
def test_dtype_name(given: object, want: str | None) -> None:
    assert dtype_name(given) == want
