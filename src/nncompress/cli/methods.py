"""`nncompress methods`: the presets, passes and storage formats, with every option."""

from __future__ import annotations

import textwrap
from typing import Annotated, Any

import typer

from nncompress.cli._common import console, emit_json

app = typer.Typer()

WIDTH = 80  # the listing is wrapped to the terminal, at most this wide: it is read, not scanned
_NAME = 10  # column of a preset, pass or format name
_OPT = 18  # column of an option's name=default


@app.command("methods")
def methods_cmd(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout (docs/methods-schema.md).")
    ] = False,
) -> None:
    """List presets, passes and storage formats with each option's type, range, default and meaning.

    Examples (pipeline options as key=default; the JSON is docs/methods-schema.md):
    nncompress methods
    nncompress methods --json
    """
    from nncompress.methods import methods

    report = methods()
    if json_out:
        emit_json(report)
        return
    for line in render(report, min(console.width, WIDTH)):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def render(m: dict[str, Any], width: int = WIDTH) -> list[str]:
    """The listing as lines of at most ``width`` characters (names and values are never cut)."""
    from nncompress.methods import value_text

    out = ["presets: nncompress compress MODEL --method NAME"]
    out += _para(
        f"Each keeps a fidelity budget, by default {m['default_budget']['text']} (--max-drop, "
        "--max-error set another), choosing per tensor the setting it tunes.",
        width,
        "  ",
    )
    for p in m["presets"]:
        out += _item(p["name"], p["pipeline"], width)
        t = p["tunes"]
        if t is not None:
            vals = t["values"]
            text = f"tunes {t['option']} from {value_text(vals[0])} to {value_text(vals[-1])}"
            text += f" ({len(vals)} values" + (
                "" if t["preset"] is None else f", preset {value_text(t['preset'])}"
            )
            if t.get("variants"):
                # each variant as what it adds to the template (a whole spec is wider than a line)
                head, _, tail = t["template"].partition("{}")
                added = [
                    v[len(head) + 2 : len(v) - len(tail)].lstrip(":")
                    if v.startswith(head + "{}") and v.endswith(tail)
                    else v
                    for v in t["variants"]
                ]
                text += f"; with --data also searched with {'; '.join(added)}; the smallest kept"
            out += _para(text + ")", width, " " * (2 + _NAME))
    out += ["", 'passes: --pipeline "PASS:key=value:...,PASS,...,FORMAT"; options as key=default']
    for p in m["passes"]:
        out += _item(p["name"], f"{p['kind']}: {p['doc']}", width)
        out += _options(p["options"], width)
    out += ["", "formats: a storage format is the last step of --pipeline; a structured one"]
    out += ["is what the structured pass of its name fits"]
    for f in m["formats"]:
        out += _item(f["name"], f"{f['kind']}: {f['doc']}", width)
        out += _options(f["options"], width)
    return out


def _item(name: str, text: str, width: int) -> list[str]:
    """``  name      text`` with the text wrapped under itself (a long name pushes it down a line)."""
    indent = " " * (2 + _NAME)
    if len(name) >= _NAME:
        return [f"  {name}", *_para(text, width, indent)]
    lines = _para(text, width, indent)
    return [f"  {name:<{_NAME}}{lines[0][len(indent) :]}", *lines[1:]]


def _options(opts: list[dict[str, Any]], width: int) -> list[str]:
    """One entry per option: ``key=default`` then ``type: doc`` wrapped in the column after it."""
    from nncompress.methods import type_text, value_text

    lines: list[str] = []
    indent = " " * (4 + _OPT)
    for o in opts:
        head = f"{o['name']}={value_text(o['default'])}"
        body = _para(f"{type_text(o)}: {o['doc']}" if o["doc"] else type_text(o), width, indent)
        if len(head) >= _OPT:
            lines += [f"    {head}", *body]
        else:
            lines += [f"    {head:<{_OPT}}{body[0][len(indent) :]}", *body[1:]]
    return lines


def _para(text: str, width: int, indent: str) -> list[str]:
    # never break a word (a pipeline step or a number): a line over width beats a wrong value
    return textwrap.wrap(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent]
