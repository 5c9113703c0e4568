"""Child processes that end with their parent, however the parent ends.

``stale experiment --jobs N`` trains cells in worker processes (and each may start torchrun).
When the experiment process is killed (``kill -9``, an OOM kill, a closed terminal), orphaned
workers would go on training into the cell folders, and a resumed experiment would share those
folders with them. :func:`die_with_parent` (run first thing in the child) makes the kernel send
the child ``SIGKILL`` when its parent exits (Linux ``PR_SET_PDEATHSIG``); elsewhere a daemon
thread polls the parent's id once a second and ends the child when it changes.
:func:`end_without_teardown` makes a spawned child end as a forked one does, without the
interpreter's teardown (where a native library aborted a decoding worker now and then).
"""

from __future__ import annotations

import os
import sys
import threading
import time

#: ``prctl`` option of Linux: the signal the kernel sends when the parent exits
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """End this process when the process ``parent`` (default: the current parent) exits."""
    import signal

    parent = os.getppid() if parent is None else int(parent)
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            armed = ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL)) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:   # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="stale-parent-watch", daemon=True).start()


def end_without_teardown() -> None:
    """In a child started with ``spawn``: end the process right after Python's own exit work
    (``atexit``), skipping the interpreter's teardown and native static destructors -- as a
    ``fork`` child ends (``os._exit`` after its target returns).

    A spawned DataLoader worker that decoded with PyAV and ran torch ops now and then aborts in
    that teardown ("terminate called without an active exception", no Python frame: a native
    library's static thread): 3 of 225 two-worker extractions stopped mid-video by a bad file,
    in a loop on the 2-core VM (0 of 450 with this hook); the parent then reports a worker
    killed by SIGABRT, an "Exception ignored" traceback after its one-line error. By then the
    worker's results have gone through its queue (multiprocessing's own exit work, run in the
    child's bootstrap, flushes it), so nothing is left to tear down. ``atexit`` hooks registered
    after this call run before it; those registered before it (at import time: logging's
    shutdown, whose stream handlers flush every record anyway) do not run. The hook flushes the
    standard streams and ends with status 0 (a worker's errors travel through its queue, not its
    status; the parent notices a worker that ended early by its being gone)."""
    import atexit

    def _end() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(0)

    atexit.register(_end)
