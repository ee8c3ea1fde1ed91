"""What every command shares: the stderr console, JSON output, number formatting."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from nncompress._text import human_bytes as human_bytes  # the library writes sizes too
from nncompress.progress import SILENT, Progress

if TYPE_CHECKING:
    import rich.progress

# Human output goes to stderr so that stdout carries only --json, for pipelines.
console = Console(stderr=True, highlight=False)
if not console.is_terminal:  # logs and pipes: do not squeeze tables into 80 columns
    console.width = 160


MAX_MEMORY_HELP = (
    "Memory a file may make nncompress allocate (e.g. 2G); sizes a file declares above it are "
    "refused before allocation. Default: half the available memory."
)


def set_max_memory(value: str | None) -> None:
    """``--max-memory``: the budget every declared size is checked against (nncompress._limits)."""
    if value is not None:
        import os

        from nncompress._limits import parse_size

        os.environ["NNCOMPRESS_MAX_MEMORY"] = str(parse_size(value))


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=None, separators=(",", ":"), allow_nan=False) + "\n")
    sys.stdout.flush()


def human_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 10_000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def shape_str(shape: list[Any] | tuple[Any, ...] | None) -> str:
    if shape is None:
        return "?"
    return "x".join("?" if d is None else str(d) for d in shape) if shape else "scalar"


@dataclass(frozen=True)
class Col:
    """One column of a human table (`print_table`)."""

    header: str  # a "\n" puts a header on two short lines, so a column is as wide as its numbers
    right: bool = False  # numbers: right-aligned, never wrapped, never cut
    name: bool = False  # a name: folded onto more lines when the width is short
    key: bool = False  # says which row it is: repeated in every table a split makes


# A row that is SECTION draws a rule across the table (before totals, between groups).
SECTION = None
# A name column folds to no fewer characters than this (or its header's width) before a table splits.
NAME_MIN = 12


def print_table(
    cols: Sequence[Col], rows: Sequence[Sequence[str] | None], out: Console | None = None
) -> None:
    """Print ``rows`` under ``cols`` within ``out``'s width, without cutting a number.

    Numbers and shapes are never wrapped (no_wrap, min_width of their widest cell); names take the
    room left and wrap after a ".", "/", "_", ":" or "-" (overflow="fold" within a part). When the
    columns do not fit even with names wrapped, the non-key columns are spread over as many tables
    as needed, in order, each repeating the key columns.
    """
    out = out or console
    widths = [_natural_width(i, c, rows) for i, c in enumerate(cols)]
    least = [
        min(w, max(_cell_width(c.header), NAME_MIN)) if c.name else w
        for c, w in zip(cols, widths, strict=True)
    ]
    keys = [i for i, c in enumerate(cols) if c.key]
    parts: list[list[int]] = []
    part = list(keys)
    for i in (i for i, c in enumerate(cols) if not c.key):
        if len(part) > len(keys) and _table_width([least[j] for j in [*part, i]]) > out.width:
            parts.append(part)
            part = list(keys)
        part.append(i)
    parts.append(part)
    for part in parts:
        part.sort()  # the columns in their given order, keys included
        fit = dict(zip(part, (least[i] for i in part), strict=True))
        spare = out.width - _table_width(list(fit.values()))
        for i in (i for i in part if cols[i].name):  # names take the room the numbers leave
            fit[i] += max(0, min(spare, widths[i] - fit[i]))
            spare -= fit[i] - least[i]
        t = Table(header_style="bold")
        for i in part:
            c = cols[i]
            t.add_column(
                c.header,
                justify="right" if c.right else "left",
                no_wrap=not c.name,
                overflow="fold" if c.name else "ellipsis",
                width=fit[i] if c.name else None,
                min_width=None if c.name else widths[i],
            )
        rule = False
        for row in rows:
            if row is SECTION:
                rule = bool(t.rows)  # drawn only between rows this table shows
                continue
            shown = [row[i] for i in part if not cols[i].key]
            if shown and not any(shown):
                continue  # nothing of this row in this part (a total of other columns)
            if rule:
                t.add_section()
                rule = False
            t.add_row(*(_wrap_name(row[i], fit[i]) if cols[i].name else row[i] for i in part))
        out.print(t)


def _wrap_name(name: str, width: int) -> str:
    """``name`` on lines of at most ``width`` broken after its separators ("features.3." then
    "conv.weight"), where it has them; rich folds what is still too long."""
    lines = [""]
    for piece in re.split(r"(?<=[./_:\-])", name):
        if lines[-1] and cell_len(lines[-1] + piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(lines)


def _cell_width(text: str) -> int:
    return max(cell_len(line) for line in text.split("\n"))


def _natural_width(i: int, col: Col, rows: Sequence[Sequence[str] | None]) -> int:
    return max([_cell_width(col.header)] + [_cell_width(r[i]) for r in rows if r is not None])


def _table_width(widths: Sequence[int]) -> int:
    # rich's default box: one space of padding on each side of a cell and a rule between and around cells
    return sum(w + 3 for w in widths) + 1


def fidelity_line(fid: dict[str, Any]) -> str:
    """One line of fidelity figures for a person."""
    lo, hi = fid["top1_agreement_ci95"]
    line = (
        f"fidelity in {fid['runtime']} on {fid['data']} ({fid['samples']} samples): top-1 agreement "
        f"{fid['top1_agreement']:.1%} (95 % {lo:.1%}-{hi:.1%}), relative output error mean "
        f"{_num(fid['rel_error_mean'])} max {_num(fid['rel_error_max'])}"
    )
    if "accuracy_before" in fid:
        lo, hi = fid["accuracy_drop_ci95"]
        line += (
            f", accuracy {fid['accuracy_before']:.1%} -> {fid['accuracy_after']:.1%} "
            f"(drop {100 * fid['accuracy_drop']:.2f} points, 95 % {100 * lo:.2f} to {100 * hi:.2f})"
        )
    return line


def finetune_line(ft: dict[str, Any]) -> str:
    """One line on a fine-tuning run: what it trained on, how long, what it changed."""
    line = (
        f"fine-tuned {ft['epochs']} epoch(s) on {ft['data']} ({ft['samples']} samples, "
        f"{ft['loss']}) in {ft['seconds']:.1f} s on {ft['device']}"
    )
    if ft.get("pruned_first"):
        line += f" (pruned weights first: {ft['pruned_first']['seconds']:.1f} s)"
    before = ft.get("before")
    if before and "accuracy_after" in before:
        line += f"; accuracy before fine-tuning {before['accuracy_after']:.1%}"
    elif before:
        line += f"; top-1 agreement before fine-tuning {before['top1_agreement']:.1%}"
    return line


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


QUIET_HELP = "No progress, table or notes on stderr (errors still print)."


class _Bar:
    """`nncompress.progress.Progress` drawn by rich: one line for the current stage."""

    def __init__(self, prog: rich.progress.Progress) -> None:
        self._prog = prog
        self._task: rich.progress.TaskID | None = None

    def stage(self, name: str, total: float | None = None) -> None:
        if self._task is not None:
            self._prog.remove_task(self._task)  # a new task: its elapsed time is the stage's
        self._task = self._prog.add_task(name, total=total)
        self._prog.refresh()  # drawn now, not at the next tick: a short stage is still seen

    def advance(self, amount: float = 1) -> None:
        if self._task is not None:
            self._prog.advance(self._task, amount)


@contextlib.contextmanager
def progress(*, quiet: bool) -> Iterator[Progress]:
    """A progress display on stderr for the library to report to: only on a terminal and without
    ``quiet`` (which commands set for --quiet and --json), else silent. It disappears when done.

    Stages with a total show a bar and a percentage, the others a pulsing bar; each shows its
    elapsed time, and a spinner moves as long as the process does.
    """
    if quiet or not console.is_terminal:
        yield SILENT
        return
    from rich.progress import (
        BarColumn,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    cols = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    # stdout is left alone (it carries --json); what libraries write to stderr is printed above
    with RichProgress(*cols, console=console, transient=True, redirect_stdout=False) as prog:
        yield _Bar(prog)
