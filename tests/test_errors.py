"""errors.py: each error type's exit code matches the README's table, and every message is one
readable line naming the file, what is wrong and what to do."""

from __future__ import annotations

import re

import pytest

from nncompress import errors
from nncompress.errors import GateError, InputError, NNCError, OutputError, UnsupportedError, UsageError

from .conftest import ROOT


def test_exit_codes_are_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d) \| ([^|]+) \|$", readme, flags=re.M))
    codes = {
        errors.EXIT_OK: "success",
        errors.EXIT_INTERNAL: "internal error",
        errors.EXIT_USAGE: "usage error",
        errors.EXIT_INPUT: "input file missing",
        errors.EXIT_GATE: "gate failed",
        errors.EXIT_UNSUPPORTED: "refused or unsupported",
        errors.EXIT_OUTPUT: "output problem",
    }
    assert sorted(int(k) for k in table) == sorted(codes)
    for code, words in codes.items():
        assert words in table[str(code)], (code, table[str(code)])


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (NNCError, 1),
        (UsageError, 2),
        (InputError, 3),
        (GateError, 4),
        (UnsupportedError, 5),
        (OutputError, 6),
    ],
)
def test_each_type_has_its_exit_code(cls: type[NNCError], code: int) -> None:
    assert cls("x").exit_code == code


def test_one_line_names_file_problem_and_fix() -> None:
    e = InputError("truncated zip.", path="m.keras", hint="Re-save the model")
    assert str(e) == "m.keras: truncated zip. Re-save the model"
    assert e.detail == "truncated zip." and e.path == "m.keras"
    assert str(UsageError("no path")) == "no path"


def test_hostile_bytes_become_a_short_printable_line() -> None:
    raw = "bad header \x00\x1b[31m" + "\n".join(["A" * 50] * 40) + "\udcff"
    line = str(InputError(raw, path="x\ny.h5", hint="h\tint"))
    assert "\n" not in line and "\x1b" not in line and "\x00" not in line
    assert line.isprintable()
    assert line.startswith("x y.h5: bad header ??[31m")
    assert len(line) <= 300 + 300 + 300 + 4
    assert errors.readable("a" * 400, 10) == "aaaaaaa..."
