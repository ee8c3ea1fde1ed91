"""What to do to which weight: presets, recipes (``--method``, ``--pipeline``, ``--recipe FILE``)
and the plan that picks each weight's recipe.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nncompress.errors import InputError, UsageError
from nncompress.formats.base import NoOptions
from nncompress.ir import Weight
from nncompress.passes import default_select
from nncompress.passes._infra import MIN_ELEMENTS
from nncompress.pipeline.steps import Final, parse_steps, structured_passes

# Preset -> pipeline. The sHAM preset is Marinò et al.'s: prune, share, code. Pruning is global
# (one magnitude threshold): with no retraining, a per-layer 80 % cut ruins small first
# convolutions (vggmini.onnx: 96.5 % -> 19 % accuracy) where a global one costs < 1 point.
_PRUNE = "prune:sparsity=0.8:scope=global"
_SHARE = "quantize:method=kmeans:k=32"
PRESETS: dict[str, str] = {
    "prune": f"{_PRUNE},csr",
    "csr": f"{_PRUNE},csr",
    "quantize": f"{_SHARE},im",
    "im": f"{_SHARE},im",
    "ham": f"{_SHARE},ham",
    "sham": f"{_PRUNE},{_SHARE},sham",
    "cser": f"{_PRUNE},{_SHARE},cser",
    # structured approximations at a parameter budget (--budget; default 0.1, psm 0.2)
    "lowrank": "lowrank",
    "sss": "sss",
    "dct": "dct",
    "psm": "psm",
    # uniform quantization with rate-distortion-optimized levels, arithmetic-coded; the step of
    # each tensor is searched under the fidelity budget (pipeline.knobs, pipeline.search)
    # (step 0.25 of the RMS, about 4 bits a weight, where no fidelity can be measured to search)
    "smallest": "rdoq:step=0.25,cabac",
}
# Integer weights (an already-quantized graph's int8 kernels) are stored losslessly whatever the
# recipe, in `engine.LOSSLESS_INT`: pruning and k-means are for floats.
INT_DTYPES = frozenset(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32))


@dataclass
class Recipe:
    """What to do: the array passes (spec text), the final step, and where they came from."""

    passes: str
    final: Final
    origin: dict[str, Any] = field(default_factory=dict)
    given: dict[str, Any] = field(default_factory=dict)  # options written on the final step

    @property
    def format(self) -> str:
        return self.final.name

    def as_dict(self) -> dict[str, Any]:
        """The record the artifact keeps (schema of docs/format.md: passes, format, format_params)."""
        d = {"passes": self.passes, "format": self.format, **self.origin}
        if self.given:
            d["format_params"] = self.given
        return d


def recipe_from(method: str | None, pipeline: str | None, budget: float | None = None) -> Recipe:
    """A recipe from ``--method PRESET`` or ``--pipeline "prune:...,quantize:...,sham"``.

    ``budget`` (share of the original parameters) goes to a structured pass (lowrank, sss, dct,
    psm) unless its step sets one.
    """
    if method and pipeline:
        raise UsageError("give --method or --pipeline, not both")
    if pipeline is None:
        name = method or "sham"
        if name not in PRESETS:
            raise UsageError(f"unknown method {name!r}", hint=f"Valid methods: {', '.join(PRESETS)}")
        steps, origin = parse_steps(PRESETS[name]), {"method": name}
    else:
        steps, origin = parse_steps(pipeline), {"pipeline": pipeline}
    r = Recipe(steps.passes, steps.final or Final("dense", NoOptions()), origin, steps.given)
    if budget is not None:
        if not 0 < budget <= 1:
            raise UsageError(f"--budget must be in (0, 1], got {budget}")
        if not r.final.fitted:
            raise UsageError(
                f"--budget applies to the structured passes ({', '.join(structured_passes())}), not {r.format!r}",
                hint="Use sparsity= or k= options of the passes instead",
            )
        if "budget" not in r.given:
            r.given["budget"] = float(budget)
            r.final = Final(r.format, dataclasses.replace(r.final.options, **{"budget": float(budget)}))
    return r


@dataclass
class Rule:
    """Weights a recipe applies to: a glob and/or regex on the weight or layer name, an op type,
    or one weight by its exact name (the budget search's per-tensor rules)."""

    recipe: Recipe | None  # None with exclude
    match: str | None = None
    regex: str | None = None
    op: str | None = None
    exclude: bool = False
    name: str | None = None

    def matches(self, w: Weight) -> bool:
        if self.name is not None and w.name != self.name:
            return False
        names = (w.name, w.layer)
        if self.match is not None and not any(fnmatch.fnmatchcase(n, self.match) for n in names):
            return False
        if self.regex is not None and not any(re.search(self.regex, n) for n in names):
            return False
        return self.op is None or w.op == self.op


@dataclass
class Plan:
    """Ordered rules; for each weight the last matching rule wins."""

    rules: list[Rule]
    origin: dict[str, Any]

    def lossless_for(self, w: Weight) -> bool:
        """Whether ``w`` is an integer weight to store losslessly coded (see `engine.LOSSLESS_INT`).

        Integer tensors of at least MIN_ELEMENTS entries (int8/16/32 and unsigned; never int64
        shapes and indices, nor bool) that a rule covers; an ``exclude`` rule keeps them raw.
        """
        if w.dtype not in INT_DTYPES or w.size < MIN_ELEMENTS:
            return False
        chosen = False
        for r in self.rules:
            if r.matches(w):
                chosen = not r.exclude
        return chosen

    def recipe_for(self, w: Weight) -> Recipe | None:
        if not default_select(w):
            return None  # biases, BatchNorm statistics, constants and int tensors stay as they are
        chosen: Recipe | None = None
        for r in self.rules:
            if r.matches(w):
                chosen = None if r.exclude else r.recipe
        return chosen


def plan_from(
    method: str | None,
    pipeline: str | None,
    recipe_file: str | os.PathLike[str] | None,
    budget: float | None = None,
) -> Plan:
    """The plan of ``--method``, ``--pipeline`` or ``--recipe FILE.toml`` (one of them)."""
    if recipe_file is not None:
        if method or pipeline or budget is not None:
            raise UsageError("give --recipe alone, without --method, --pipeline or --budget")
        return plan_from_toml(recipe_file)
    r = recipe_from(method, pipeline, budget)
    return Plan([Rule(r)], r.as_dict())


_RULE_KEYS = {"match", "regex", "op", "method", "pipeline", "budget", "exclude"}


def plan_from_toml(path: str | os.PathLike[str]) -> Plan:
    """Read a recipe file: ``[[rule]]`` tables with match/regex/op and method/pipeline or exclude."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("no such recipe file", path=str(p)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"not a readable TOML recipe ({e})", path=str(p)) from None
    raw = doc.get("rule")
    if not isinstance(raw, list) or not raw:
        raise InputError(
            "a recipe needs at least one [[rule]] table", path=str(p), hint="See docs/recipes.md"
        )
    rules = []
    for i, t in enumerate(raw, 1):
        bad = set(t) - _RULE_KEYS
        if bad:
            raise InputError(
                f"rule {i} has unknown keys {sorted(bad)}",
                path=str(p),
                hint=f"Keys: {', '.join(sorted(_RULE_KEYS))}",
            )
        if "regex" in t:
            try:
                re.compile(t["regex"])
            except re.error as e:
                raise InputError(f"rule {i}: bad regex {t['regex']!r} ({e})", path=str(p)) from None
        exclude = bool(t.get("exclude", False))
        try:
            recipe = None if exclude else recipe_from(t.get("method"), t.get("pipeline"), t.get("budget"))
        except UsageError as e:
            raise InputError(f"rule {i}: {e.detail}", path=str(p), hint=e.hint) from None
        rules.append(Rule(recipe, t.get("match"), t.get("regex"), t.get("op"), exclude))
    return Plan(rules, {"recipe_file": p.name, "rule": raw})
