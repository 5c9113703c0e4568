"""One writer per output folder: an advisory lock two stale processes cannot both hold.

``stale extract`` (and ``stale detect``, ``stale experiment``) keep an index of what a folder
holds and rewrite it after every item; two processes writing into one folder would each write
their own index and lose the other's entries. :func:`folder_lock` takes an exclusive
``flock`` on ``FOLDER/.stale.lock`` for the duration of the work; a second process is refused at
once with one line naming the folder and the holder's process id. The kernel releases the lock
when its holder exits in any way (``kill -9`` included), so a stale lock file never blocks: the
file itself stays (hidden, empty but for the pid) and is not a foreign file to any command.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from stale.core.errors import StaleError

LOCK_NAME = ".stale.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold the lock of the existing ``folder`` while the block runs; a StaleError when another
    process holds it (``command`` names what is refused, e.g. ``"stale extract"``)."""
    try:
        import fcntl
    except ImportError:   # pragma: no cover - no flock (Windows): one writer is the user's job
        yield Path(folder) / LOCK_NAME
        return
    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise StaleError(f"{folder}: another {command} (process {holder}) is writing into this folder; "
                             f"wait for it to finish, or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)   # releases the lock
