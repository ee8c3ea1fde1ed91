"""The human tables of the commands at 80 and 120 columns: every number of a real report in full,
names wrapped but whole, no line wider than the terminal, and `bench` saying what it left out."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from nncompress._text import human_bytes
from nncompress.cli import bench as bench_cli
from nncompress.cli import compress as compress_cli
from nncompress.cli import inspect as inspect_cli
from nncompress.cli import sensitivity as sensitivity_cli
from nncompress.cli._common import shape_str

from .conftest import MODELS

WIDTHS = (80, 120)
PIPELINE = "prune:sparsity=0.8,quantize:method=kmeans:k=32,sham"
Render = Callable[..., None]


def _render(render: Render, report: dict[str, Any], width: int) -> str:
    out = Console(width=width, record=True, file=io.StringIO(), highlight=False, color_system=None)
    render(report, out)
    return out.export_text()


def _tables(text: str) -> list[list[list[str]]]:
    """The body rows of each table in ``text``, as stripped cell texts."""
    tables: list[list[list[str]]] = []
    for line in text.splitlines():
        if line.startswith("┏"):
            tables.append([])
        elif line.startswith("│"):
            tables[-1].append([c.strip() for c in line.split("│")[1:-1]])
    return tables


def _check(text: str, width: int, numbers: list[str], names: list[str], *, prose: Sequence[str] = ()) -> None:
    """No line wider than ``width``, nothing cut; each of ``numbers`` a whole table cell; the first
    column of every table, read down, spells ``names`` (folded names are whole); ``prose`` (figures
    of the lines under the tables) present, perhaps wrapped at a space."""
    assert max(cell_len(line) for line in text.splitlines()) <= width, text
    assert "…" not in text, text
    tables = _tables(text)
    assert tables, text
    cells = {c for table in tables for row in table for c in row}
    missing = [n for n in numbers if n not in cells]
    assert not missing, (missing, text)
    want = "".join(names)
    for table in tables:
        got = "".join(row[0] for row in table)
        # a split table leaves out a total row with nothing in its columns
        assert got.removesuffix("total") == want.removesuffix("total"), (got, text)
    flat = " ".join(text.split())
    for p in prose:
        assert p in flat, (p, text)


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """vggmini.onnx compressed by a fixed pipeline (no budget search: quick), and its report."""
    from nncompress.api import compress, save

    art = tmp_path_factory.mktemp("tables") / "vggmini.nnc"
    result = compress(MODELS / "vggmini.onnx", pipeline=PIPELINE, samples=8)
    save(result, art)
    yield art, result.report


def _compress_numbers(report: dict[str, Any]) -> list[str]:
    return [
        n
        for r in report["layers"]
        for n in (
            shape_str(r["shape"]),
            human_bytes(r["bytes_before"]),
            human_bytes(r["bytes_after"]),
            f"{r['ratio']:.1f}x",
            f"{r['bits_per_weight']:.2f}",
            f"{r['sparsity']:.1%}",
            f"{r['rel_error']:.3f}",
        )
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_compress_table(compressed: tuple[Path, dict[str, Any]], width: int) -> None:
    report = compressed[1]
    text = _render(compress_cli.render, report, width)
    tot = report["totals"]
    prose = [human_bytes(tot["input_bytes"]), human_bytes(tot["output_bytes"]), f"{tot['ratio']:.2f}x"]
    names = [r["layer"] for r in report["layers"]]
    _check(text, width, _compress_numbers(report), names, prose=prose)
    # 80 columns split the columns over two tables; 120 show them all in one
    assert len(_tables(text)) == (2 if width == 80 else 1)


def test_long_layer_names_wrap_whole(compressed: tuple[Path, dict[str, Any]]) -> None:
    """Names longer than the room left wrap after a separator: every character kept, numbers whole."""
    report = dict(compressed[1])
    names = [f"features.block{i}.conv_with_a_long_name" for i in range(len(report["layers"]))]
    report["layers"] = [dict(r, layer=n) for r, n in zip(report["layers"], names, strict=True)]
    for width in WIDTHS:
        text = _render(compress_cli.render, report, width)
        _check(text, width, _compress_numbers(report), names)
        pieces = [row[0] for row in _tables(text)[0]]
        assert len(pieces) > len(names)  # wrapped in the first table
        assert all(p.endswith(("name", ".", "_")) for p in pieces), pieces


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect_tables(compressed: tuple[Path, dict[str, Any]], width: int) -> None:
    from nncompress.api import inspect

    r = inspect(MODELS / "vggmini.onnx")
    text = _render(inspect_cli.render, r, width)
    numbers = [
        n
        for row in r["layers"]
        for n in (
            shape_str(row["shape"]),
            human_bytes(row["bytes"]),
            f"{row['sparsity']:.1%}",
            f"{row['entropy_bits']:.2f}",
        )
    ]
    numbers += [str(row["params"]) for row in r["layers"] if row["params"] < 10_000]  # else "100.4 k"
    numbers += [human_bytes(r["totals"]["bytes"])]
    _check(text, width, numbers, [row["name"] for row in r["layers"]] + ["total"])

    a = inspect(compressed[0])
    text = _render(inspect_cli.render_artifact, a, width)
    numbers = [
        n
        for row in a["tensors"]
        for n in (shape_str(row["shape"]), human_bytes(row["bytes"]), f"{row['bits_per_weight']:.2f}")
    ]
    _check(text, width, numbers, [row["name"] for row in a["tensors"]] + ["total"])


@pytest.fixture(scope="module")
def bench_report() -> dict[str, Any]:
    from nncompress.bench import bench

    return bench(MODELS / "lenet300.onnx", [1, 8], repeat=1, formats=["csr", "sham"])


@pytest.mark.parametrize("width", WIDTHS)
def test_bench_table(bench_report: dict[str, Any], width: int) -> None:
    r = bench_report
    text = _render(bench_cli._render, r, width)
    numbers = [
        n
        for row in r["rows"]
        for n in (
            str(row["batch"]),
            shape_str(row["shape"]),
            human_bytes(row["bytes"]),
            f"{row['psi']:.3f}",
            f"{row['time_s'] * 1e3:.3f}",
            f"{row['iqr_s'] * 1e3:.3f}",
            f"{row['dense_s'] * 1e3:.3f}",
            f"{row['csr_s'] * 1e3:.3f}",
            f"{row['vs_dense']:.2f}x",
            f"{row['vs_csr']:.2f}x",
            f"{row['max_abs_err']:.1e}",
        )
    ]
    _check(text, width, numbers, [row["layer"] for row in r["rows"]])
    # every table repeats what says which row it is: layer, format, batch
    for table in _tables(text):
        assert [row[:3] for row in table] == [[x["layer"], x["format"], str(x["batch"])] for x in r["rows"]]
    # one kernel for every row: said once under the table
    assert f"{r['rows'][0]['kernel']} kernels" in " ".join(text.split())


def test_bench_kernels_of_two_kinds_get_a_column(bench_report: dict[str, Any]) -> None:
    """Without a native kernel for one format, each row says which kernel it timed."""
    r = dict(bench_report)
    r["rows"] = [dict(row, kernel="numpy-ref") if row["format"] == "csr" else row for row in r["rows"]]
    for width in WIDTHS:
        text = _render(bench_cli._render, r, width)
        _check(text, width, [f"{row['vs_dense']:.2f}x" for row in r["rows"]], [x["layer"] for x in r["rows"]])
        kernels = [row[4] for row in _tables(text)[0]]
        assert kernels == [row["kernel"] for row in r["rows"]]
        assert " kernels;" not in " ".join(text.split())


def test_bench_says_what_it_left_out(bench_report: dict[str, Any]) -> None:
    r = bench_report
    timed = {row["layer"] for row in r["rows"]}
    assert timed == {"0.weight", "2.weight"}
    assert r["skipped"] == [
        {"layer": "0.bias", "shape": [300], "reason": "not a matrix (bias)"},
        {"layer": "2.bias", "shape": [100], "reason": "not a matrix (bias)"},
        {"layer": "4.weight", "shape": [10, 100], "reason": "under --min-size 4096"},
        {"layer": "4.bias", "shape": [10], "reason": "not a matrix (bias)"},
    ]
    for width in WIDTHS:
        note = " ".join(_render(bench_cli._render, r, width).split())
        assert (
            "note: left out 0.bias, 2.bias, 4.bias: not a matrix (bias); 4.weight: under --min-size 4096"
            in note
        )


def test_bench_min_size_moves_layers_between_rows_and_skipped() -> None:
    from nncompress.bench import bench

    r = bench(MODELS / "lenet300.onnx", [1], repeat=1, min_size=1000)
    assert {row["layer"] for row in r["rows"]} == {"0.weight", "2.weight", "4.weight"}
    assert {s["layer"] for s in r["skipped"]} == {"0.bias", "2.bias", "4.bias"}
    r = bench(MODELS / "lenet300.onnx", [1], repeat=1, min_size=10**6)
    assert r["rows"] == [] and len(r["skipped"]) == 6
    assert [s["reason"] for s in r["skipped"] if s["layer"].endswith("weight")] == [
        "under --min-size 1000000"
    ] * 3


@pytest.fixture(scope="module")
def sensitivity_report() -> dict[str, Any]:
    from nncompress.sensitivity import sensitivity

    return sensitivity(MODELS / "lenet300.onnx", method="prune", samples=4)


@pytest.mark.parametrize("width", WIDTHS)
def test_sensitivity_table(sensitivity_report: dict[str, Any], width: int) -> None:
    r = sensitivity_report
    text = _render(sensitivity_cli._print, r, width)
    numbers = []
    for ten in r["tensors"]:
        numbers.append(shape_str(ten["shape"]))
        for s in ten["settings"]:
            numbers += [human_bytes(s["bytes"]), f"{s['weight_error']:.3f}"]
            numbers.append(f"{s['error']:.3f}" + ("" if s["measured"] else "~"))
            numbers += [] if s["value"] is None else [f"{s['value']:g}"]
            numbers += [] if s["disagreement"] is None else [f"{s['disagreement']:.1%}"]
    _check(text, width, numbers, [t["name"] for t in r["tensors"]])


def test_a_narrow_terminal_still_keeps_every_number(compressed: tuple[Path, dict[str, Any]]) -> None:
    """At 50 columns the columns spread over more tables; each still repeats the layer."""
    report = compressed[1]
    text = _render(compress_cli.render, report, 50)
    _check(text, 50, _compress_numbers(report), [r["layer"] for r in report["layers"]])
    assert len(_tables(text)) >= 3
