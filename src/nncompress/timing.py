"""Wall-clock timing and markdown tables, shared by `nncompress bench` and the scripts in benchmarks/.

One repeat rule everywhere: ``warmup`` untimed calls, then ``repeat`` timed calls, summarized by their
median and interquartile range (a median ignores the odd run slowed by the rest of the machine, and
the IQR says how noisy the run was). `time_rounds` times several callables round-robin, so that
ratios taken round by round compare runs made under the same load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

WARMUP = 3


@dataclass(frozen=True)
class Timing:
    """Median and interquartile range, in seconds, of a set of timed runs."""

    median: float
    iqr: float

    @classmethod
    def of(cls, seconds: np.ndarray) -> Timing:
        """The summary of run times (seconds)."""
        q1, med, q3 = np.percentile(seconds, [25, 50, 75])
        return cls(float(med), float(q3 - q1))


def _check(repeat: int, warmup: int) -> None:
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat must be >= 1 and warmup >= 0, got {repeat} and {warmup}")


def timeit(fn: Callable[[], Any], repeat: int, warmup: int = WARMUP) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then the median and IQR of ``repeat`` timed ones."""
    _check(repeat, warmup)
    for _ in range(warmup):
        fn()
    ts = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        ts[i] = (time.perf_counter_ns() - t0) * 1e-9
    return Timing.of(ts)


def time_rounds(
    fns: Mapping[str, Callable[[], Any]], repeat: int, warmup: int = WARMUP
) -> dict[str, np.ndarray]:
    """Run times (seconds, ``repeat`` each) of every callable, each timed once per round.

    A burst of load from elsewhere on the machine then slows the baseline and the kernel of the
    same round alike, and ratios taken round by round cancel it. Each timed call follows an untimed
    one of the same callable, so that it finds its own data in cache as a layer run back to back
    would, not the previous callable's.
    """
    _check(repeat, warmup)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    ts = {label: np.empty(repeat) for label in fns}
    for i in range(repeat):
        for label, fn in fns.items():
            fn()
            t0 = time.perf_counter_ns()
            fn()
            ts[label][i] = (time.perf_counter_ns() - t0) * 1e-9
    return ts


def markdown_table(columns: Sequence[tuple[str, str]], rows: Iterable[Mapping[str, Any]]) -> str:
    """A markdown table of ``rows``: one column per (header, cell template), the template a
    `str.format` string over the row's keys (``"{psi:.4f}"``; ``"{name}"`` gives ``str(row["name"])``)."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(t.format(**row) for _, t in columns) + " |")
    return "\n".join(lines)
