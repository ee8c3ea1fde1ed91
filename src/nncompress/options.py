"""The one typed option schema of every step: passes (prune, quantize, lowrank...) and storage formats.

A step is written ``name:key=value:key=value`` (``prune:sparsity=0.9``, ``sham:gap_coder=golomb``);
its options are a frozen dataclass deriving from `Options` whose fields are int, float, str, bool, a
Literal of choices, or one of those or None. Types, defaults, choices and ranges live in the fields,
so parsing, checking, error messages and help text (`describe_options`) all come from one place.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Union, get_args, get_origin, get_type_hints

import numpy as np

from nncompress.errors import UsageError


class Step(Protocol):
    """Anything a step name resolves to: it has a CLI word and an options class."""

    name: str
    Options: type[Options]


def option(default: Any, *, lo: float | None = None, hi: float | None = None, doc: str = "") -> Any:
    """A field of an ``Options`` dataclass, with its allowed range and a one-line help."""
    return dataclasses.field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc})


def _optional(tp: Any) -> Any:
    """``T`` of ``T | None`` (None where ``tp`` is not optional)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def _kind(tp: Any) -> str:
    inner = _optional(tp)
    if inner is not None:
        return f"{_kind(inner)}|none"
    if get_origin(tp) is Literal:
        return "|".join(str(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def describe_field(f: dataclasses.Field[Any], tp: Any) -> str:
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    rng = f" in [{lo}, {hi}]" if lo is not None and hi is not None else ""
    rng = rng or (f" >= {lo}" if lo is not None else f" <= {hi}" if hi is not None else "")
    return f"{f.name}={_kind(tp)}{rng} (default {f.default})"


def describe_options(options_cls: type[Options]) -> str:
    """One line listing the options, their types or choices, ranges and defaults ("none" if empty)."""
    hints = get_type_hints(options_cls)
    return ", ".join(describe_field(f, hints[f.name]) for f in dataclasses.fields(options_cls)) or "none"


def check_value(f: dataclasses.Field[Any], tp: Any, value: Any) -> str | None:
    """Why ``value`` is not valid for the field, or None."""
    inner = _optional(tp)
    if inner is not None:
        return None if value is None else check_value(f, inner, value)
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"
    if tp is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if tp is int and (isinstance(value, bool) or not isinstance(value, int | np.integer)):
        return "must be an integer"
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            return "must be a number"
        if not np.isfinite(value):
            return "must be finite"
    if tp is str and not isinstance(value, str):
        return "must be a string"
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"must be{f' >= {lo}' if lo is not None else ''}{' and' if lo is not None and hi is not None else ''}{f' <= {hi}' if hi is not None else ''}"
    return None


@dataclass(frozen=True)
class Options:
    """Base of every step's ``Options``: typed fields, checked on creation (UsageError)."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            tp = _optional(hints[f.name]) or hints[f.name]
            if tp is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            why = check_value(f, hints[f.name], value)
            if why:
                raise UsageError(
                    f"option {f.name}={value!r} of {type(self).__qualname__} {why}",
                    hint=f"Options: {describe_options(type(self))}",
                )

    def given(self) -> dict[str, Any]:
        """The options that differ from their defaults, in field order."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _convert(tp: Any, raw: str) -> Any:
    """The typed value of ``raw`` for a field of type ``tp`` (raises ValueError)."""
    inner = _optional(tp)
    if inner is not None:
        return None if raw.lower() == "none" else _convert(inner, raw)
    if get_origin(tp) is Literal:
        for choice in get_args(tp):
            if str(choice) == raw:
                return choice
        raise ValueError
    if tp is bool:
        if raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ValueError
    if tp is int:
        return int(raw)
    if tp is float:
        return float(raw)
    return raw


EXAMPLE = "'prune:sparsity=0.9,quantize:method=kmeans:k=32,sham'"


def parse_step(
    step: str, registry: Mapping[str, Step], *, where: str = "pipeline", what: str = "pass"
) -> tuple[str, Options]:
    """``"quantize:method=kmeans:k=32"`` -> ("quantize", its Options); a one-line UsageError naming
    the token and the valid choices for any unknown step, unknown option or bad value."""
    step = step.strip()
    name, *tokens = [t.strip() for t in step.split(":")]
    if not name:
        raise UsageError(f"empty step in {where}", hint=f"Separate steps with one comma, e.g. {EXAMPLE}")
    cls = registry.get(name)
    if cls is None:
        raise UsageError(
            f"unknown {what} {name!r} in {where} step {step!r}", hint=f"Valid {what}s: {', '.join(registry)}"
        )
    hints = get_type_hints(cls.Options)
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    help_ = f"Options of {name}: {describe_options(cls.Options)}"
    kw: dict[str, Any] = {}
    for tok in tokens:
        key, eq, raw = (s.strip() for s in tok.partition("="))
        if not eq or not key or not raw:
            raise UsageError(f"bad option {tok!r} in {where} step {step!r}: expected key=value", hint=help_)
        if key not in fields:
            raise UsageError(f"unknown option {key!r} for {what} {name!r} in step {step!r}", hint=help_)
        if key in kw:
            raise UsageError(f"option {key!r} given twice in {where} step {step!r}", hint=help_)
        try:
            value = _convert(hints[key], raw)
        except ValueError:
            why_raw = check_value(fields[key], hints[key], raw) or f"must be {_kind(hints[key])}"
            raise UsageError(
                f"bad value in {tok!r} ({where} step {step!r}): {key} {why_raw}",
                hint=f"Expected {describe_field(fields[key], hints[key])}",
            ) from None
        why = check_value(fields[key], hints[key], value)
        if why:
            raise UsageError(
                f"bad value in {tok!r} ({where} step {step!r}): {key} {why}",
                hint=f"Expected {describe_field(fields[key], hints[key])}",
            )
        kw[key] = value
    return name, cls.Options(**kw)
