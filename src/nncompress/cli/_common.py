"""What every command shares: the stderr console, JSON output, number formatting."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from nncompress._text import human_bytes as human_bytes  # the library writes sizes too

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


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
