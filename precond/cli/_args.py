"""Checks of command-line paths, run before any work starts.

The numerical arguments are checked with :mod:`precond.validation`; these turn an unusable
output directory into a ``ValueError`` that names the argument, which ``precond.cli.main``
prints as one line (exit status 2).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _why(err: OSError) -> str:
    return err.strerror or type(err).__name__


def check_out_dir(path: str | os.PathLike, name: str = "--out", *, create: bool = True) -> Path:
    """``path`` as a writable directory (created when ``create``), or a ``ValueError`` naming
    ``name``: an existing file, a path under a regular file, a read-only place.

    A probe file is created and removed in the directory, so the answer is the file system's,
    not a guess from the permission bits.

    Args:
      path: the directory the command writes to.
      name: the argument as the user typed it (``--out``, ``DIR``).
      create: create the directory (and its parents) when missing; otherwise a missing one is
        an error.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a file, not a directory")
    if not p.exists():
        if not create:
            raise ValueError(f"{name} {str(path)!r} does not exist")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"{name} {str(path)!r}: cannot create the directory "
                             f"({_why(err)})") from None
    try:
        fd, probe = tempfile.mkstemp(dir=p, prefix=".precond-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{name} {str(path)!r}: cannot write there ({_why(err)})") from None
    return p
