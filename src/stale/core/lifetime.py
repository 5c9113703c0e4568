"""Child processes that end with their parent, however the parent ends.

``stale experiment --jobs N`` trains cells in worker processes (and each may start torchrun).
When the experiment process is killed (``kill -9``, an OOM kill, a closed terminal), orphaned
workers would go on training into the cell folders, and a resumed experiment would share those
folders with them. :func:`die_with_parent` (run first thing in the child) makes the kernel send
the child ``SIGKILL`` when its parent exits (Linux ``PR_SET_PDEATHSIG``); elsewhere a daemon
thread polls the parent's id once a second and ends the child when it changes.
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
