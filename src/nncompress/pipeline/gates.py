"""Gates a CI job sets on a compress run: a minimum size ratio and a maximum fidelity drop."""

from __future__ import annotations

from typing import Any

from nncompress.pipeline.budget import drop_points


def failed_gates(
    ratio: float,
    fid: dict[str, Any] | None,
    max_drop: float | None,
    min_ratio: float | None,
    unmeasured: str | None = None,
    max_error: float | None = None,
) -> list[str]:
    """One line per failed gate (empty when all pass). ``max_drop`` is in accuracy points with
    labels, in points of top-1 disagreement without; ``max_error`` bounds the mean relative output
    error."""
    failed = []
    if max_error is not None and fid is None:
        failed.append(
            f"--max-error {max_error:g} cannot be checked: fidelity was not measured ({unmeasured})"
        )
    if max_error is not None and fid is not None:
        err = fid.get("rel_error_mean")
        if err is None or err > max_error:
            shown = "not finite" if err is None else f"{err:.4f}"
            failed.append(f"relative output error {shown} exceeds --max-error {max_error:g}")
    if min_ratio is not None and ratio < min_ratio:
        failed.append(f"size ratio {ratio:.2f}x is below --min-ratio {min_ratio:g}")
    if max_drop is not None and fid is None:
        failed.append(f"--max-drop {max_drop:g} cannot be checked: fidelity was not measured ({unmeasured})")
    if max_drop is not None and fid is not None:
        drop = drop_points(fid)
        what = "accuracy drop" if "accuracy_drop" in fid else "top-1 disagreement"
        if drop > max_drop:
            failed.append(f"{what} {drop:.2f} points exceeds --max-drop {max_drop:g}")
    return failed
