"""User-facing errors, and turning environment failures into one readable line.

Every problem caused by the user's input or environment (a bad file, an unknown class, a full
disk, a truncated checkpoint) is raised as :class:`StaleError` with a message that names the
file, video, field or value. The CLI's error boundary (``stale.cli.main``) prints such errors on
one line and exits with status 2; :func:`describe_os_error` gives OS errors the same shape.
"""

from __future__ import annotations

import errno
import os


class StaleError(Exception):
    """An error in the user's input or environment, with a message meant for people."""


_ERRNO_TEXT = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
    errno.EMFILE: "too many open files",
    errno.EIO: "input/output error",
}


def describe_os_error(exc: OSError) -> str:
    """``'<file>: <problem>'`` for an OS error (both file names when there are two)."""
    problem = _ERRNO_TEXT.get(exc.errno or -1) or exc.strerror or type(exc).__name__
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    where = " -> ".join(os.fsdecode(n) if isinstance(n, (bytes, os.PathLike)) else str(n) for n in names)
    return f"{where}: {problem}" if where else problem
