"""The fidelity a compressed model must keep: ``--max-drop``, ``--max-error``, or the default budget.

A budget is checked on the fidelity figures compress measures (`nncompress.fidelity.figures`), in
the runtime the user deploys with, on the fidelity inputs (``--data`` or seeded random inputs).

- ``--max-drop P``: with labels, the accuracy drop is at most P points; without, top-1
  disagreement with the original is at most P % (as the gate of the same name).
- ``--max-error E``: the mean relative output error ||a - b|| / ||a|| is at most E.
- Neither given, a preset keeps the DEFAULT budget: top-1 agreement not shown below 99 % (the
  upper end of its 95 % Wilson interval is at least 99 %: on 1,000 samples about 98.3 % measured,
  on 64 random inputs two changed answers) where the compared output has several values a sample (class scores: the top-1 class is what a user reads), mean
  relative output error <= 5 % where it has one (a regression: top-1 is meaningless there). Logits
  of a classifier move by 20-50 % under compression that keeps 99 % of its decisions; holding them
  to 5 % would forbid most of the compression that does not change a single answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nncompress.errors import UsageError

DEFAULT_AGREEMENT = 0.99
DEFAULT_ERROR = 0.05


@dataclass(frozen=True)
class Budget:
    """Limits on the fidelity figures; ``source`` says where they came from ("default" or the flags)."""

    max_drop: float | None = None  # points: accuracy with labels, top-1 disagreement without
    max_error: float | None = None  # mean relative output error
    min_agreement: float | None = None  # share of samples whose top-1 class is unchanged
    source: str = "default"

    @classmethod
    def of(cls, max_drop: float | None, max_error: float | None) -> Budget | None:
        """The budget the flags set, or None when neither is given."""
        for flag, v in (("--max-drop", max_drop), ("--max-error", max_error)):
            if v is not None and not v >= 0:
                raise UsageError(f"{flag} must be >= 0, got {v}")
        if max_drop is None and max_error is None:
            return None
        given = " and ".join(
            f"{f} {v:g}" for f, v in (("--max-drop", max_drop), ("--max-error", max_error)) if v is not None
        )
        return cls(max_drop, max_error, None, given)

    @classmethod
    def default(cls) -> Budget:
        return cls(None, DEFAULT_ERROR, DEFAULT_AGREEMENT, "default")

    def _applies(self, fid: dict[str, Any]) -> tuple[bool, bool]:
        """Whether the agreement and the error limits apply to ``fid`` (the default budget reads
        agreement on class scores and error on a single value a sample)."""
        if self.source != "default":
            return True, True
        scores = int(fid.get("output_width", 2)) >= 2
        return scores, not scores

    def excess(self, fid: dict[str, Any]) -> float:
        """How far ``fid`` is over the budget, as the largest ratio figure / limit minus 1 (<= 0 holds)."""
        worst = -1.0
        for value, limit in self._pairs(fid):
            if limit <= 0:
                worst = max(worst, 0.0 if value <= 0 else float("inf"))
            else:
                worst = max(worst, value / limit - 1.0)
        return worst

    def holds(self, fid: dict[str, Any] | None) -> bool:
        return fid is not None and self.excess(fid) <= 0

    def _pairs(self, fid: dict[str, Any]) -> list[tuple[float, float]]:
        """(measured, limit) pairs, both "smaller is better"."""
        out = []
        agreement, error = self._applies(fid)
        if self.max_drop is not None:
            out.append((drop_points(fid), self.max_drop))
        if self.min_agreement is not None and agreement:
            # the default budget asks that the samples do not show agreement below the limit (the
            # upper end of its 95 % interval): 64 random inputs cannot tell 98 % from 100 %, and
            # one changed answer of 64 near-tie random inputs is not a broken model
            seen = fid["top1_agreement"]
            ci = fid.get("top1_agreement_ci95")
            if self.source == "default" and ci is not None:
                seen = float(ci[1])
            out.append((1.0 - seen, 1.0 - self.min_agreement))
        if self.max_error is not None and error:
            err = fid.get("rel_error_mean")
            out.append((float("inf") if err is None else float(err), self.max_error))
        return out

    def describe(self) -> str:
        if self.source == "default":
            return (
                f"top-1 agreement not shown below {100 * DEFAULT_AGREEMENT:g} % on class scores, relative output error "
                f"<= {DEFAULT_ERROR:g} on single values"
            )
        parts = []
        if self.max_drop is not None:
            parts.append(f"drop <= {self.max_drop:g} points")
        if self.min_agreement is not None:
            parts.append(f"top-1 agreement >= {100 * self.min_agreement:g} %")
        if self.max_error is not None:
            parts.append(f"relative output error <= {self.max_error:g}")
        return " and ".join(parts)

    def measured(self, fid: dict[str, Any]) -> str:
        """The figures the budget looks at, as text."""
        parts = []
        agreement, error = self._applies(fid)
        if self.max_drop is not None:
            what = "accuracy drop" if "accuracy_drop" in fid else "top-1 disagreement"
            parts.append(f"{what} {drop_points(fid):.2f} points")
        if self.min_agreement is not None and agreement:
            parts.append(f"top-1 agreement {100 * fid['top1_agreement']:.1f} %")
        if self.max_error is not None and error:
            err = fid.get("rel_error_mean")
            parts.append(f"relative error {err:.4f}" if err is not None else "relative error not finite")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "max_drop_points": self.max_drop,
            "max_rel_error": self.max_error,
            "min_top1_agreement": self.min_agreement,
        }


def drop_points(fid: dict[str, Any]) -> float:
    """Accuracy drop in points with labels, else top-1 disagreement in points; rounded to 1e-9 of
    a point, so that 10 samples of 1,000 are 1 point and not 1.0000000000000009 (a budget of
    --max-drop 1 refused them)."""
    if "accuracy_drop" in fid:
        return round(100.0 * float(fid["accuracy_drop"]), 9)
    return round(100.0 * (1.0 - float(fid["top1_agreement"])), 9)
