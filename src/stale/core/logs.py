"""One logging setup for every command: messages, progress and per-run log files.

* Messages go through :mod:`logging` (logger ``"stale"``) to stderr; results that a command
  prints for the user (tables, paths written) go to stdout. ``warnings.warn`` is routed into
  the same handler. ``--quiet`` shows warnings and errors only, ``--verbose`` adds debug lines.
* Under DDP only rank 0 logs below WARNING, so every summary appears once.
* :func:`progress` draws a tqdm bar only when stderr is a terminal; otherwise (a log file, a
  pipe, CI) it stays silent and long loops log plain lines instead (e.g. one per epoch).
* :func:`file_log` adds a timestamped log file (``train.log`` in a run folder) for a block.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
LOGGER = "stale"
_CONSOLE_MARK = "_stale_console"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (pytest's capture and
    redirections replace it after the handler was made)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``stale`` logger or one of its children (``stale.train``...)."""
    return logging.getLogger(LOGGER if not name else f"{LOGGER}.{name.removeprefix('stale.')}")


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def setup_logging(verbosity: int = 0) -> logging.Logger:
    """Console logging on stderr: ``verbosity`` -1 quiet (warnings), 0 info, 1 debug.

    Idempotent: a second call only changes the level. Non-zero DDP ranks log warnings only.
    """
    logger = logging.getLogger(LOGGER)
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    if _rank() != 0:
        level = max(level, logging.WARNING)
    logger.setLevel(level if verbosity <= 0 else logging.DEBUG)
    if not any(getattr(h, _CONSOLE_MARK, False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        setattr(handler, _CONSOLE_MARK, True)
        logger.addHandler(handler)
        logger.propagate = False
    for h in logger.handlers:
        if getattr(h, _CONSOLE_MARK, False):
            h.setLevel(level)
    logging.captureWarnings(True)
    warn_logger = logging.getLogger("py.warnings")
    if not any(getattr(h, _CONSOLE_MARK, False) for h in warn_logger.handlers):
        for h in logger.handlers:
            if getattr(h, _CONSOLE_MARK, False):
                warn_logger.addHandler(h)
        warn_logger.propagate = False
    return logger


def is_quiet() -> bool:
    return not logging.getLogger(LOGGER).isEnabledFor(logging.INFO)


def interactive() -> bool:
    """True when progress bars make sense: stderr is a terminal and info messages are shown."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not is_quiet() and _rank() == 0 and not os.environ.get("STALE_NO_PROGRESS")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, unit: str = "it",
             enabled: bool = True, leave: bool = False) -> Iterable[T]:
    """``iterable`` wrapped in a tqdm bar on a terminal; the plain iterable otherwise."""
    if not (enabled and interactive()):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True)


def progress_bar(desc: str = "", total: int | None = None, unit: str = "it", enabled: bool = True,
                 leave: bool = False):
    """A bar advanced by hand (``.n``, ``.total``, ``.refresh()``, ``.close()``) for work that is not
    one loop over an iterable; like :func:`progress`, drawn only on a terminal."""
    from tqdm import tqdm

    return tqdm(desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True,
                disable=not (enabled and interactive()))


class RunLog:
    """A timestamped log file for one run (``train.log``) that can start before its folder exists.

    Records logged after :meth:`start` are buffered until :meth:`attach` names the file (the run
    folder is created only after every check passed); they are then written, and later records
    go straight to the file. :meth:`close` detaches it. Use as a context manager.
    """

    def __init__(self, level: int = logging.DEBUG):
        self.level = level
        self._buffer: list[logging.LogRecord] = []
        self._handler: logging.Handler | None = None
        self._collector: logging.Handler | None = None
        self._old_level = logging.NOTSET

    def start(self) -> "RunLog":
        buf = self._buffer

        class _Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                buf.append(record)

        self._collector = _Collect(self.level)
        logger = logging.getLogger(LOGGER)
        self._old_level = logger.level
        logger.addHandler(self._collector)
        logger.setLevel(min(self._old_level or logging.INFO, self.level))
        return self

    def attach(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setLevel(self.level)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
        for record in self._buffer:
            handler.handle(record)
        self._buffer.clear()
        logger = logging.getLogger(LOGGER)
        if self._collector is not None:
            logger.removeHandler(self._collector)
            self._collector = None
        logger.addHandler(handler)
        self._handler = handler

    def close(self) -> None:
        logger = logging.getLogger(LOGGER)
        for h in (self._collector, self._handler):
            if h is not None:
                logger.removeHandler(h)
                h.close()
        self._collector = self._handler = None
        logger.setLevel(self._old_level)

    def __enter__(self) -> "RunLog":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def file_log(path: str | os.PathLike, level: int = logging.DEBUG) -> Iterator[Path]:
    """Append everything logged inside the block to ``path``, with timestamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger(LOGGER)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(old_level or logging.INFO, level))
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()
