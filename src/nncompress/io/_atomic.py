"""Safe output: write to a temp file beside the target, then rename; never clobber without force."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nncompress.errors import OutputError


def check_output(
    out: str | os.PathLike[str], *, force: bool, inputs: tuple[str | os.PathLike[str], ...] = ()
) -> Path:
    """Refuse to overwrite an input ever, or an existing output without ``force``."""
    p = Path(out)
    for i in inputs:
        if Path(i).exists() and p.exists() and os.path.samefile(i, p):
            raise OutputError(
                "refusing to overwrite the input file", path=str(p), hint="Choose another -o path"
            )
    if p.exists() and not force:
        raise OutputError("output exists", path=str(p), hint="Pass --force to overwrite it")
    if p.exists() and p.is_dir():
        raise OutputError("output is a directory", path=str(p), hint="Give a file path")
    if p.is_symlink() and not force:  # a dangling link too: writing would replace what it names
        raise OutputError("output exists (a symbolic link)", path=str(p), hint="Pass --force to replace it")
    if not p.parent.exists():
        raise OutputError("output directory does not exist", path=str(p), hint="Create it first")
    if not p.parent.is_dir():
        raise OutputError(f"{p.parent} is not a directory", path=str(p), hint="Choose another -o path")
    return p


# errno values that mean "this output cannot be written here", whatever raised them
_WRITE_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.ENOTDIR,
}


def _output_error(p: Path, e: OSError) -> OutputError:
    return OutputError(
        f"cannot write the output ({e.strerror or type(e).__name__})",
        path=str(p),
        hint="Check the folder's permissions and free space, or choose another -o path",
    )


def _sweep_beside(p: Path) -> None:
    """Remove the temp files that runs killed by SIGKILL left beside ``p`` (``.NAME.PID.xxxx.tmp``)."""
    from nncompress._tempfiles import pid_alive

    pat = re.compile(rf"\.{re.escape(p.name)}\.(\d+)\.[^/]*\.tmp{re.escape(p.suffix)}")
    try:
        stale = [
            e for e in p.parent.iterdir() if (m := pat.fullmatch(e.name)) and not pid_alive(int(m.group(1)))
        ]
    except OSError:
        return
    for e in stale:
        with contextlib.suppress(OSError):
            if e.is_file() and not e.is_symlink():
                e.unlink()


@contextlib.contextmanager
def atomic_path(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it onto ``out`` only on success."""
    from nncompress._tempfiles import signals_held

    p = Path(out)
    _sweep_beside(p)
    tmp_p = Path()
    try:
        with signals_held():  # an interrupt now would leave the file before its removal is armed
            try:
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{p.name}.{os.getpid()}.", suffix=".tmp" + p.suffix, dir=p.parent
                )
            except OSError as e:
                raise _output_error(p, e) from None
            os.close(fd)
            tmp_p = Path(tmp)
        yield tmp_p
        # mkstemp makes the file 0600; a model file should get the user's usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_p, 0o666 & ~umask)
        os.replace(tmp_p, p)
    except OSError as e:
        if tmp_p.name:
            tmp_p.unlink(missing_ok=True)
        if e.errno in _WRITE_ERRORS:
            raise _output_error(p, e) from None
        raise
    except BaseException:
        if tmp_p.name:
            tmp_p.unlink(missing_ok=True)
        raise
