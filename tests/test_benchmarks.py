"""benchmarks/bench_sham_floor.py: its C floor builds against native/sham.c and visits every row.

The floor links sham.c and calls its internals (sham_prepare and lane_build, declared in nnc_sham.h), so a
change there can break it without any package test noticing; this builds it and runs it on a small sham
matrix.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from nncompress.formats import FORMATS
from nncompress.native import available

pytestmark = pytest.mark.skipif(not available(), reason="the native extension is not built")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench_module() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # bench_sham_floor imports bench_kernels beside it
    try:
        spec = importlib.util.spec_from_file_location("bench_sham_floor", BENCH / "bench_sham_floor.py")
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def test_floor_builds_and_visits_every_row_once(tmp_path: Path) -> None:
    bench = _bench_module()
    floor = bench.build_floor(tmp_path)
    w = bench.make_matrix(37, 3000, 0.1, 32, 0)  # 37 rows: lanes of 4 and 8 both end part-filled
    fmt = FORMATS["sham"].encode(w)
    assert fmt.gap["gap_coder"] == "huffman"
    x = np.ones(3000, np.float32)
    four, eight = bench.floor_call(floor, fmt, x, 4)(), bench.floor_call(floor, fmt, x, 8)()
    # the sum over rows of each row's entries does not depend on which lane decoded the row
    assert four == eight > 0
    # one row fewer is another sum: the rows are all in it
    fewer = FORMATS["sham"].encode(w[:-1])
    assert bench.floor_call(floor, fewer, x, 4)() != four


def test_bench_case_rows(tmp_path: Path) -> None:
    bench = _bench_module()
    rows = bench.bench_case(bench.build_floor(tmp_path), 64, 2048, 0.1, 2, 0)
    assert [r["kernel"] for r in rows] == ["scipy-csr", "native-sham", "floor-4-lanes", "floor-8-lanes"]
    assert all(r["median_ms"] > 0 and r["nnz"] == round(0.1 * 64 * 2048) for r in rows)
    assert rows[1]["native_sham_max_abs_err"] < 1e-4
    assert "| floor-8-lanes |" in bench.table(rows)
