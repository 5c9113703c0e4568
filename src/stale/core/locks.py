"""One writer per output folder: an advisory lock two stale processes cannot both hold.

``stale extract`` (and ``stale detect``, ``stale experiment``) keep an index of what a folder
holds and rewrite it after every item; two processes writing into one folder would each write
their own index and lose the other's entries. :func:`folder_lock` takes an exclusive
``flock`` on ``FOLDER/.stale.lock`` for the duration of the work; a second process is refused at
once with one line naming the folder and the holder's process id. The holder removes the file
when it is done; the kernel releases the lock when its holder exits in any other way (``kill -9``
included), so a lock file left behind never blocks, and it is not a foreign file to any command.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from stale.core.errors import StaleError

LOCK_NAME = ".stale.lock"


def lock_name(shard: tuple[int, int] | None = None) -> str:
    """The lock file of a folder's writer: one per folder, or one per shard I of N of a sharded
    ``stale extract`` (shards write their own index parts side by side)."""
    return LOCK_NAME if shard is None else f".stale.shard-{shard[0]}-of-{shard[1]}.lock"


def is_lock_file(name: str) -> bool:
    """Whether a file name is one of :func:`lock_name`'s (never a foreign file)."""
    return name == LOCK_NAME or (name.startswith(".stale.shard-") and name.endswith(".lock"))


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, command: str, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold the lock of the existing ``folder`` while the block runs; a StaleError when another
    process holds it (``command`` names what is refused, e.g. ``"stale extract"``; ``name``: the
    lock file, :func:`lock_name`)."""
    try:
        import fcntl
    except ImportError:   # pragma: no cover - no flock (Windows): one writer is the user's job
        yield Path(folder) / LOCK_NAME
        return
    path = Path(folder) / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise StaleError(f"{folder}: another {command} (process {holder}) is writing into this folder; "
                             f"wait for it to finish, or choose another output folder") from None
        except OSError as exc:   # a file system without flock (some network mounts): go on unlocked
            from stale.core.logs import get_logger

            get_logger("locks").warning("%s: cannot lock the folder (%s); make sure no other %s writes "
                                        "into it", folder, exc.strerror or exc, command)
            try:
                yield path
            finally:
                path.unlink(missing_ok=True)
            return
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:   # the holder removed the file between our open and flock: it just finished
            raise StaleError(f"{folder}: another {command} just finished writing into this folder; run "
                             f"again to continue from what it left")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)   # while still holding the lock (see the check above)
    finally:
        os.close(fd)   # releases the lock
