"""nncompress sweep: points, Pareto front, files, determinism, resume, --jobs, errors.

Two methods at two settings each on lenet300.onnx with 200 labelled digits: five points (the
original too), a few seconds each.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nncompress.cli.app import app
from nncompress.errors import OutputError, UsageError
from nncompress.pipeline.knobs import KNOBS
from nncompress.pipeline.steps import parse_steps
from nncompress.sweep import DEFAULT_VALUES, pareto, pipeline_at, settings, sweep, value_text

from .conftest import DATA, MODELS

MODEL = MODELS / "lenet300.onnx"
OPTS: dict[str, Any] = {
    "data": DATA / "mnist_test.npz",
    "methods": ["sham", "smallest"],
    "values": {"sham": [0.8, 0.95], "smallest": [0.25, 1.0]},
    "samples": 200,
}
IDS = ["original", "sham-0.8", "sham-0.95", "smallest-0.25", "smallest-1.0"]


def _run(out: Path, **kw: Any) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    seen: list[tuple[str, bool]] = []
    rep = sweep(MODEL, out, **OPTS, on_point=lambda p, reused, total: seen.append((p["id"], reused)), **kw)
    return rep, seen


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("sweep") / "a"
    rep, seen = _run(out)
    assert sorted(seen) == sorted((i, False) for i in IDS)
    return out, rep


def test_points_files_and_front(first: tuple[Path, dict[str, Any]]) -> None:
    out, rep = first
    assert rep["schema"] == "nncompress.sweep/1" and rep["measure"] == "accuracy"
    assert [p["id"] for p in rep["points"]] == IDS
    orig = rep["points"][0]
    assert orig["file_bytes"] == MODEL.stat().st_size and orig["ratio"] == 1.0
    assert orig["fidelity"]["top1_agreement"] == 1.0 and orig["fidelity"]["accuracy_drop"] == 0.0
    for p in rep["points"][1:]:
        art = out / p["artifact"]
        assert art.stat().st_size == p["file_bytes"] and p["ratio"] == pytest.approx(
            orig["file_bytes"] / p["file_bytes"]
        )
        assert 0 <= p["fidelity"]["accuracy"] <= 1 and p["fidelity"]["rel_error_mean"] > 0
    # the knob moves the point: a harder setting gives a smaller file
    by = {p["id"]: p for p in rep["points"]}
    assert by["sham-0.95"]["file_bytes"] < by["sham-0.8"]["file_bytes"]
    assert by["smallest-1.0"]["file_bytes"] < by["smallest-0.25"]["file_bytes"]
    # the front: nothing on it is beaten, everything off it is
    acc = {p["id"]: (p["file_bytes"], p["fidelity"]["accuracy"]) for p in rep["points"]}
    beaten = {
        i
        for i, (x, y) in acc.items()
        if any(x2 <= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in acc.values())
    }
    assert {p["id"] for p in rep["points"] if p["pareto"]} == set(acc) - beaten == set(rep["pareto"])
    assert [acc[i][0] for i in rep["pareto"]] == sorted(acc[i][0] for i in rep["pareto"])
    assert json.loads((out / "sweep.json").read_text()) == rep
    md = (out / "sweep.md").read_text()
    assert md.count("\n| sham |") == 2 and "| original |" in md and "Pareto front" in md
    assert sorted(f.name for f in (out / "points").iterdir()) == sorted(f"{i}.json" for i in IDS)
    if importlib.util.find_spec("matplotlib"):
        assert rep["plots"] == ["sweep.png", "sweep.svg"]
        assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG" and b"<svg" in (
            out / "sweep.svg"
        ).read_bytes()
    else:
        assert rep["plots"] == [] and any("matplotlib" in n for n in rep["notes"])


def test_resume_reuses_points_whose_options_match(first: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    src, rep = first
    out = tmp_path / "b"
    shutil.copytree(src, out)
    (out / "sweep.json").unlink()
    (out / "points" / "sham-0.95.json").unlink()  # interrupted before this point finished
    doc = json.loads((out / "points" / "smallest-0.25.json").read_text())
    doc["key"]["seed"] = 1  # made under other options: made again
    (out / "points" / "smallest-0.25.json").write_text(json.dumps(doc))
    rep2, seen = _run(out)
    assert sorted(i for i, reused in seen if not reused) == ["sham-0.95", "smallest-0.25"]
    assert {**rep2, "output": None} == {**rep, "output": None}
    assert (out / "sweep.md").read_bytes() == (src / "sweep.md").read_bytes()
    for i in ("sham-0.95", "smallest-0.25"):  # remade byte for byte
        assert (out / "artifacts" / f"{i}.nnc").read_bytes() == (src / "artifacts" / f"{i}.nnc").read_bytes()


def test_jobs_2_equals_jobs_1(first: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    src, rep = first
    rep2, seen = _run(tmp_path / "c", jobs=2)
    assert not any(reused for _, reused in seen)
    assert {**rep2, "output": None} == {**rep, "output": None}
    assert (tmp_path / "c" / "sweep.md").read_bytes() == (src / "sweep.md").read_bytes()
    for p in rep["points"][1:]:
        assert (tmp_path / "c" / p["artifact"]).read_bytes() == (src / p["artifact"]).read_bytes()


def test_cli_json_is_the_report(first: tuple[Path, dict[str, Any]]) -> None:
    out, rep = first
    args = ["sweep", str(MODEL), "--data", str(OPTS["data"]), "--methods", "sham,smallest"]
    args += ["--values", "sham=0.8,0.95", "--values", "smallest=0.25,1.0", "--samples", "200"]
    res = CliRunner().invoke(app, [*args, "-o", str(out), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == rep  # every point reused: same folder, same options


def test_pipelines_set_the_knob_of_each_preset() -> None:
    for m, knob in KNOBS.items():
        v = DEFAULT_VALUES[knob.option][-1]
        text = pipeline_at(m, v)
        parse_steps(text)
        assert f"{knob.option}={value_text(v)}" in text.replace(",", ":").split(":"), text
    assert pipeline_at("sham", 0.9) == "prune:sparsity=0.9:scope=global,quantize:method=kmeans:k=32,sham"
    assert pipeline_at("lowrank", 0.3) == "lowrank:budget=0.3"


def test_settings_choose_values() -> None:
    s = settings(["ham", "lowrank", "dct"], {"dct": [0.4]}, [0.25, 0.05])
    assert [(x.method, x.value) for x in s] == [("ham", k) for k in DEFAULT_VALUES["k"]] + [
        ("lowrank", 0.25),
        ("lowrank", 0.05),
        ("dct", 0.4),
    ]


@pytest.mark.parametrize(
    ("methods", "values", "budgets", "needle"),
    [
        (["sham", "nope"], None, None, "unknown method 'nope'"),
        (["sham"], {"ham": [8]}, None, "not among the methods"),
        (["sham"], None, [0.1], "--budgets applies"),
        (["sham"], {"sham": [1.5]}, None, "sparsity"),
        (["lowrank"], None, [0.0], "budget"),
    ],
)
def test_bad_options_fail_before_any_work(
    methods: list[str], values: dict[str, list[float]] | None, budgets: list[float] | None, needle: str
) -> None:
    with pytest.raises(UsageError) as e:
        settings(methods, values, budgets)
    assert needle in str(e.value)


def test_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a sweep's"):
        sweep(MODEL, tmp_path, methods=["sham"], values={"sham": [0.8]})
    assert sorted(f.name for f in tmp_path.iterdir()) == ["notes.txt"]


def test_front_of_ties_and_dominance() -> None:
    pts = [
        {"id": "a", "file_bytes": 10, "fidelity": {"accuracy": 0.5}},
        {"id": "b", "file_bytes": 20, "fidelity": {"accuracy": 0.9}},
        {"id": "c", "file_bytes": 20, "fidelity": {"accuracy": 0.8}},  # as big as b, worse
        {"id": "d", "file_bytes": 30, "fidelity": {"accuracy": 0.9}},  # bigger than b, no better
        {"id": "e", "file_bytes": 40, "error": "failed"},
    ]
    assert pareto(pts, "accuracy") == {"a", "b"}
