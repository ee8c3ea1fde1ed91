"""Help that teaches: flags shown as flags, no text lost to markup, a working example per command,
`nncompress methods` generated from the registries, shell completion."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import inspect
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.text import Text

from nncompress.cli.app import app, command
from nncompress.cli.methods import render
from nncompress.formats import FORMATS
from nncompress.methods import methods
from nncompress.passes import PASSES
from nncompress.pipeline.knobs import KNOBS
from nncompress.pipeline.recipe import PRESETS

from .conftest import ROOT

# The commands whose help carries examples, in the order a reader runs them (later examples may
# read what earlier ones wrote).
EXAMPLE_ORDER = [
    "compress",
    "decompress",
    "eval",
    "bench",
    "inspect",
    "sensitivity",
    "methods",
    "sweep",
    "finetune",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # CI may force colours (FORCE_COLOR, GITHUB_ACTIONS)


def help_of(*path: str, width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """``nncompress PATH --help`` as a terminal ``width`` columns wide shows it."""
    monkeypatch.setenv("COLUMNS", str(width))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        command().main([*path, "--help"], prog_name="nncompress", standalone_mode=False)
    return ANSI.sub("", out.getvalue())


def commands() -> dict[str, Any]:
    return dict(command().commands)  # type: ignore[attr-defined]


def examples(name: str) -> list[str]:
    """The example command lines of a command's docstring, continuation lines joined."""
    doc = inspect.getdoc(commands()[name].callback) or ""
    out: list[str] = []
    for line in doc.splitlines():
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1] + line
        elif line.startswith("nncompress "):
            out.append(line)
    return out


@pytest.mark.parametrize("path", [(), *[(c,) for c in EXAMPLE_ORDER]], ids=lambda p: p[0] if p else "root")
def test_flags_show_as_flags(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_of(*path, width=200, monkeypatch=monkeypatch)
    assert "<bool>" not in text
    cmd = commands()[path[0]] if path else command()
    flags = [p for p in cmd.params if getattr(p, "is_bool_flag", False)]
    assert flags
    for p in flags:
        assert re.search(rf"{re.escape(p.opts[0])}\s", text), p.opts
        if not p.default:  # no --no-X twin restating the default
            assert f"--no-{p.opts[0].lstrip('-')}" not in text, p.opts
    assert "--help" in text


@pytest.mark.parametrize("path", [(), *[(c,) for c in EXAMPLE_ORDER]], ids=lambda p: p[0] if p else "root")
def test_help_cuts_nothing_at_80_columns(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    # rich ends a word longer than its column with "…": a pipeline written without spaces was cut
    assert "…" not in help_of(*path, width=80, monkeypatch=monkeypatch)


def test_a_flag_still_parses_as_a_flag() -> None:
    ctx = commands()["compress"].make_context("compress", ["m.onnx", "--json", "--force", "-q"])
    assert ctx.params["json_out"] is True and ctx.params["force"] is True and ctx.params["quiet"] is True
    ctx = commands()["compress"].make_context("compress", ["m.onnx"])
    assert ctx.params["force"] is False


def test_no_help_text_is_lost_to_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = typer.main.get_command(app)  # the help as written, before command() escaped it
    checked = 0
    for name, raw in plain.commands.items():  # type: ignore[attr-defined]
        shown = commands()[name]
        texts = [(raw.help, shown.help)]
        texts += [(a.help, b.help) for a, b in zip(raw.params, shown.params, strict=True) if a.help]  # type: ignore[attr-defined]
        for written, escaped in texts:
            assert Text.from_markup(escaped or "").plain == (written or ""), written
            checked += 1
    assert checked > 50
    assert "[[rule]] tables" in help_of("compress", width=200, monkeypatch=monkeypatch)


@pytest.mark.parametrize("name", EXAMPLE_ORDER)
def test_every_command_shows_an_example_whole_at_80_columns(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = inspect.getdoc(commands()[name].callback) or ""
    lines = [ln for ln in doc.splitlines() if ln.startswith(("nncompress ", "  --"))]
    assert lines, f"no example in the help of {name}"
    shown = help_of(name, width=80, monkeypatch=monkeypatch)
    for line in lines:
        assert len(line) <= 78, line  # the help's padding takes the other two columns
        assert any(ln.rstrip() == f" {line}" for ln in shown.splitlines()), line


def test_every_command_has_its_example_checked() -> None:
    assert sorted(EXAMPLE_ORDER) == sorted(commands())


def test_examples_are_real_command_lines() -> None:
    """Each example parses, reads files that exist in examples/ or that an earlier example wrote,
    and writes where git ignores it (the repository root's /*.nnc, /*_small.onnx...)."""
    ignored = [
        ln[1:] for ln in (ROOT / ".gitignore").read_text().splitlines() if ln.startswith("/") and "*" in ln
    ]
    written: set[str] = set()
    for name in EXAMPLE_ORDER:
        for line in examples(name):
            args = shlex.split(line)
            assert args[:2] == ["nncompress", name], line
            ctx = commands()[name].make_context(name, args[2:])  # a UsageError fails the test
            out = ctx.params.pop("out", None)
            for key, value in ctx.params.items():
                if isinstance(value, Path):
                    assert (ROOT / value).is_file() or str(value) in written, f"{key}={value} in {line!r}"
            if out is not None:
                folders = [
                    ln[1:] for ln in (ROOT / ".gitignore").read_text().splitlines() if ln.endswith("/")
                ]
                ok = ("/" not in str(out) and any(fnmatch.fnmatch(str(out), p) for p in ignored)) or (
                    f"{out}/" in folders  # a folder of outputs (sweep -o sweep/)
                )
                assert ok, line
                written.add(str(out))


def run_nnc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from nncompress.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_methods_json_is_the_registries() -> None:
    res = run_nnc("methods", "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)
    assert m == json.loads(json.dumps(methods()))
    assert m["schema"] == "nncompress.methods/1"
    assert [p["name"] for p in m["presets"]] == list(PRESETS)
    for p in m["presets"]:
        assert p["pipeline"] == PRESETS[p["name"]]
        knob = KNOBS[p["name"]]
        assert p["tunes"] == {
            "option": knob.option,
            "values": list(knob.values),
            "preset": knob.preset,
            "template": knob.template,
            "variants": list(knob.variants),
        }
    assert m["default_budget"]["min_top1_agreement"] == 0.99
    assert [p["name"] for p in m["passes"]] == list(PASSES)
    assert [f["name"] for f in m["formats"]] == list(FORMATS)
    steps = [(p, PASSES[p["name"]]) for p in m["passes"]]
    steps += [(f, FORMATS[f["name"]]) for f in m["formats"] if f["kind"] == "storage"]
    for entry, cls in steps:
        fields = dataclasses.fields(cls.Options)
        assert [o["name"] for o in entry["options"]] == [f.name for f in fields]
        for o, f in zip(entry["options"], fields, strict=True):
            assert set(o) == {"name", "type", "choices", "nullable", "range", "default", "doc"}
            assert o["default"] == f.default and o["doc"] == f.metadata["doc"], (entry["name"], o)
            assert o["range"] == [f.metadata["lo"], f.metadata["hi"]]
    structured = {p["name"] for p in m["passes"] if p["kind"] == "structured"}
    assert structured == {"lowrank", "sss", "dct", "psm"}
    assert {f["name"] for f in m["formats"] if f["kind"] == "structured"} == structured


def test_methods_for_a_person_fits_80_columns() -> None:
    m = methods()
    lines = render(m, 80)
    assert max(map(len, lines)) <= 80
    text = "\n".join(lines)
    for p in m["presets"]:
        assert f"  {p['name']:<10}{p['pipeline']}" in text
    for step in [*m["passes"], *m["formats"]]:
        assert re.search(rf"^  {step['name']} ", text, re.M), step["name"]
        for o in step["options"]:
            assert re.search(rf"^    {o['name']}=\S+ ", text, re.M), (step["name"], o["name"])


def test_methods_imports_no_framework() -> None:
    code = (
        "import sys; from nncompress.cli import main\n"
        "try:\n    main(['methods'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'onnxruntime', 'onnx', 'h5py') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_show_completion_prints_a_script() -> None:
    # typer reads the shell from the process tree unless told not to: then --show-completion takes
    # the shell's name, the same whichever shell runs the tests
    res = run_nnc("--show-completion", "bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert res.returncode == 0, res.stderr
    assert "_nncompress_completion()" in res.stdout and "complete " in res.stdout
    assert "_NNCOMPRESS_COMPLETE" in res.stdout


def test_the_completion_script_completes() -> None:
    # what the script's shell function asks: the words so far and the one being completed
    res = run_nnc(_NNCOMPRESS_COMPLETE="complete_bash", COMP_WORDS="nncompress met", COMP_CWORD="1")
    assert res.returncode == 0 and res.stdout.split() == ["methods"], (res.stdout, res.stderr)
    res = run_nnc(_NNCOMPRESS_COMPLETE="complete_bash", COMP_WORDS="nncompress compress --js", COMP_CWORD="2")
    assert res.stdout.split() == ["--json"], (res.stdout, res.stderr)


def test_root_help_lists_methods_and_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_of(width=200, monkeypatch=monkeypatch)
    assert re.search(r"\bmethods +List presets", text)
    assert "--install-completion" in text and "--show-completion" in text
