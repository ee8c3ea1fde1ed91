"""Command-line interface (filled in by cli/app.py)."""

from nncompress.cli.app import main

__all__ = ["main"]
