"""What `nncompress methods` lists: presets, passes and storage formats with every option.

Everything here is read from the registries (``PRESETS``, ``KNOBS``, ``PASSES``, ``FORMATS``) and
from the option dataclasses (`nncompress.options`), so the list cannot drift from what the
pipeline accepts. The JSON schema is docs/methods-schema.md.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from nncompress.options import Options

SCHEMA = "nncompress.methods/1"


def methods() -> dict[str, Any]:
    """Presets, passes and storage formats, each with its options (docs/methods-schema.md)."""
    from nncompress.formats import FORMATS
    from nncompress.pipeline.budget import Budget
    from nncompress.pipeline.knobs import KNOBS
    from nncompress.pipeline.recipe import PRESETS
    from nncompress.pipeline.steps import parse_steps, structured_passes

    structured = structured_passes()
    presets = []
    for name, pipeline in PRESETS.items():
        final = parse_steps(pipeline).final
        knob = KNOBS.get(name)
        presets.append(
            {
                "name": name,
                "pipeline": pipeline,
                # the share of parameters a structured preset keeps when --budget is not given
                "parameter_budget": (
                    getattr(final.options, "budget", None) if final is not None and final.fitted else None
                ),
                "tunes": None
                if knob is None
                else {
                    "option": knob.option,
                    "values": list(knob.values),
                    "preset": knob.preset,
                    "template": knob.template,
                    "variants": list(knob.variants),
                },
            }
        )
    from nncompress.passes import PASSES

    passes = [
        {
            "name": name,
            "kind": "structured" if name in structured else "array",
            "doc": _doc(cls),
            "options": options_of(cls.Options),
        }
        for name, cls in PASSES.items()
    ]
    formats = [
        {
            "name": name,
            # a structured format is what its pass of the same name fits; its options are the pass's
            "kind": "structured" if name in structured else "storage",
            "doc": _doc(cls),
            "options": [] if name in structured else options_of(cls.Options),
        }
        for name, cls in FORMATS.items()
    ]
    budget = Budget.default()
    return {
        "schema": SCHEMA,
        "default_budget": {**budget.as_dict(), "text": budget.describe()},
        "presets": presets,
        "passes": passes,
        "formats": formats,
    }


def options_of(options_cls: type[Options]) -> list[dict[str, Any]]:
    """One record per field of a step's options: name, type, choices, nullable, range, default, doc."""
    hints = get_type_hints(options_cls)
    out = []
    for f in dataclasses.fields(options_cls):
        tp, nullable = _unwrap_optional(hints[f.name])
        choices = list(get_args(tp)) if get_origin(tp) is Literal else None
        out.append(
            {
                "name": f.name,
                "type": "choice" if choices is not None else getattr(tp, "__name__", str(tp)),
                "choices": choices,
                "nullable": nullable,
                "range": [f.metadata.get("lo"), f.metadata.get("hi")],
                "default": f.default,
                "doc": f.metadata.get("doc", ""),
            }
        )
    return out


def type_text(opt: dict[str, Any]) -> str:
    """``float [0, 1]``, ``layer|global``, ``int|none >= 1``: an option's type as a person reads it."""
    text = "|".join(map(str, opt["choices"])) if opt["type"] == "choice" else opt["type"]
    if opt["nullable"]:
        text += "|none"
    lo, hi = opt["range"]
    if lo is not None and hi is not None:
        text += f" [{value_text(lo)}, {value_text(hi)}]"
    elif lo is not None:
        text += f" >= {value_text(lo)}"
    elif hi is not None:
        text += f" <= {value_text(hi)}"
    return text


def value_text(v: Any) -> str:
    """A value as a pipeline step would write it: ``0.5``, ``16777216``, ``true``, ``none``."""
    if v is None or isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(tp, False)``."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _doc(cls: type) -> str:
    """The first paragraph of a class docstring on one line, without reST quotes or pointers into the source."""
    first = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(first.replace("``", "").replace(" (see the module docstring)", "").split())
