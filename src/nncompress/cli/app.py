"""The `nncompress` command: one Typer app per command file, joined here.

Errors a user can cause end as one line on stderr and the exit code of their type
(nncompress.errors); anything else is a bug and says so. Nothing heavy is imported here, so that
`nncompress --help` starts fast: commands import frameworks inside their bodies.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

import typer

try:  # recent typer vendors click as typer._click; older releases depend on click itself
    import click
    from click import exceptions as click_exc
except ImportError:  # pragma: no cover - depends on the installed typer
    from typer import _click as click  # type: ignore[no-redef]
    from typer._click import exceptions as click_exc  # type: ignore[no-redef]

from nncompress import __version__
from nncompress.cli import bench, compress, decompress, finetune, inspect, methods, sensitivity, sweep
from nncompress.cli import eval as eval_cmd
from nncompress.errors import EXIT_INTERNAL, EXIT_USAGE, NNCError, readable

app = typer.Typer(
    name="nncompress",
    help="Compress trained neural-network files into truly smaller ones, with honest size, fidelity and speed figures.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(inspect.app)
app.add_typer(compress.app)
app.add_typer(decompress.app)
app.add_typer(eval_cmd.app)
app.add_typer(bench.app)
app.add_typer(sensitivity.app)
app.add_typer(methods.app)
app.add_typer(sweep.app)
app.add_typer(finetune.app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nncompress {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Compress trained neural-network files into truly smaller ones."""


@functools.cache
def command() -> click.Command:
    """The click command tree of `app`, with its help made for people (built once per process)."""
    cmd = typer.main.get_command(app)
    _for_people(cmd, click.Context(cmd, info_name="nncompress", **cmd.context_settings))
    return cmd


def _for_people(cmd: click.Command, ctx: click.Context) -> None:
    """Fix what typer's rich help gets wrong, for every command and option (built-ins included).

    - A boolean flag takes no value, yet typer prints ``<bool>`` as if it did, and gives each
      ``bool = False`` option a ``--no-X`` twin that only restates the default: flags show as
      ``--json``, ``--force``. A flag that defaults to True keeps its ``--no-X`` (it is the way out).
    - An argument shows as the docstrings name it (MODEL, not {model}'s lowercase).
    - Help is read as rich markup: ``[[rule]]`` in a sentence became "[]" and ``[i]`` vanished.
      Help texts here are plain text, so every one is escaped.
    """
    from rich.markup import escape

    rich = getattr(cmd, "rich_markup_mode", None) == "rich"
    if rich:
        for attr in ("help", "short_help", "epilog"):
            text = getattr(cmd, attr, None)
            if text:
                setattr(cmd, attr, escape(text))
    # get_params(ctx) also makes (and caches on cmd) the help option this command shows
    for param in cmd.get_params(ctx):
        if param.param_type_name == "argument" and param.metavar is None and param.name:
            param.metavar = param.name.upper()  # as the docstrings name it: "Compress MODEL into..."
        if getattr(param, "is_bool_flag", False):
            param.metavar = ""
            if not param.default:
                param.secondary_opts = []
        text = getattr(param, "help", None)
        if rich and text:
            param.help = escape(text)  # type: ignore[attr-defined]
    for name, sub in getattr(cmd, "commands", {}).items():
        _for_people(sub, click.Context(sub, info_name=name, parent=ctx))


def _fail(msg: str, code: int) -> int:
    sys.stderr.write(f"nncompress: error: {msg}\n")
    return code


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that temp files and folders are removed on the way out


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning every known error into one line and an exit code."""
    import signal

    from nncompress import _stall
    from nncompress._tempfiles import sweep

    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, _terminate)
    if not os.environ.get("NNCOMPRESS_DEBUG"):
        # numpy's RuntimeWarnings (NaN in a matmul...) and libraries' deprecation chatter are not
        # for the user: what matters reaches them as a note or as the one error line
        import warnings

        warnings.simplefilter("ignore")
    sweep()  # what runs killed with SIGKILL left in the temp directory
    _stall.enable()  # a read libhdf5 never returns from ends the process with one line
    cmd = command()
    try:
        rv = cmd.main(args=argv, prog_name="nncompress", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except NNCError as e:
        code = _fail(e.one_line(), e.exit_code)
    except click_exc.NoArgsIsHelpError as e:
        sys.stderr.write(e.ctx.get_help() + "\n")
        code = EXIT_USAGE
    except click_exc.UsageError as e:
        where = (
            f" (see 'nncompress {e.ctx.info_name} --help')"
            if e.ctx and e.ctx.info_name != "nncompress"
            else ""
        )
        code = _fail(f"{e.format_message().rstrip('.')}{where}", EXIT_USAGE)
    except typer.Abort:
        code = _fail("aborted", 130)
    except KeyboardInterrupt:
        code = _fail("interrupted", 130)
    except MemoryError as e:  # a resource limit, not a bug: say what to turn down
        code = _fail(
            f"out of memory ({e}); for compress/eval use fewer --samples or a smaller --data file",
            EXIT_INTERNAL,
        )
    except Exception as e:  # a bug: say so in one line; the traceback only on request
        if os.environ.get("NNCOMPRESS_DEBUG"):
            raise
        code = _fail(
            f"internal error: {type(e).__name__}: {readable(e, 300)}. Please report it; set "
            "NNCOMPRESS_DEBUG=1 for the traceback",
            EXIT_INTERNAL,
        )
    sys.exit(code)
