"""Typed errors and the exit codes the CLI maps them to (documented in README.md, "Exit codes").

Every error a user can cause is one of these; its message is one line that names the file, what is
wrong and what to do. Anything else reaching the CLI is a bug (exit 1).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug in nncompress
EXIT_USAGE = 2  # wrong flag or option value (typer/click use 2 as well)
EXIT_INPUT = 3  # input file missing, empty, truncated, corrupt, or of an unsupported format
EXIT_GATE = 4  # a fidelity or size gate (--max-drop, --min-ratio) failed
EXIT_UNSUPPORTED = 5  # the file is readable but holds something we refuse or cannot handle
EXIT_OUTPUT = 6  # the output exists (no --force) or cannot be written


class NNCError(Exception):
    """Base of all user-facing errors."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        self.path = path
        self.hint = hint
        self.detail = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        detail = readable(self.detail, MAX_DETAIL)
        path = _shown.get(self.path, self.path) if self.path else None
        s = f"{readable(path, 300)}: {detail}" if path else detail
        if self.hint:
            s = f"{s.rstrip('.')}. {readable(self.hint, 300)}"
        return s


_shown: dict[str, str] = {}


def show_as(real: str, shown: str) -> None:
    """Name ``shown`` in errors about ``real``: a file nncompress made for the user's input (the
    skeleton of a `.nnc`, streamed to a temp file) is not a name the user knows."""
    _shown[real] = shown


MAX_DETAIL = 300  # a message quoting a file's bytes stays a line a person can read


def readable(text: object, limit: int) -> str:
    """``text`` as one printable line of at most ``limit`` characters: control characters and raw
    bytes from a hostile file become '?', whitespace runs one space."""
    s = "".join(c if c.isprintable() else " " if c.isspace() else "?" for c in str(text))
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


class UsageError(NNCError):
    exit_code = EXIT_USAGE


class InputError(NNCError):
    """Missing, empty, truncated or corrupt input, or a format we do not read."""

    exit_code = EXIT_INPUT


class UnsupportedError(NNCError):
    """A readable file holding something we refuse (pickled module, Lambda) or cannot run (op)."""

    exit_code = EXIT_UNSUPPORTED


class GateError(NNCError):
    exit_code = EXIT_GATE


class OutputError(NNCError):
    exit_code = EXIT_OUTPUT
