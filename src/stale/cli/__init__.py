"""Command-line entry point: ``stale <command> ...`` and ``python -m stale <command> ...``.

Each sub-command lives in its own module of this package and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import their heavy dependencies
(torch, matplotlib) inside ``run`` so that ``stale --help`` stays fast.

The error boundary (:func:`main`): any failure caused by the user's input or environment
becomes exactly one line ``stale CMD: error: <what>: <problem>`` and exit status 2; Ctrl-C exits
with 130; an internal bug says so in one line (exit 1) and asks to be reported. ``--debug`` (or
``STALE_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from stale.core.version import __version__
from stale.core.errors import StaleError, describe_os_error

# command name -> module in this package
COMMANDS: dict[str, str] = {
    "evaluate": "evaluate",
    "splits": "splits",
    "text-embed": "text_embed",
    "extract": "extract",
    "features": "features",
    "synth": "synth",
    "train": "train",
    "predict": "predict",
    "detect": "detect",
    "stream": "stream",
    "report": "report",
    "experiment": "experiment",
    "demo": "demo",
    "config": "config",
}
ISSUES = "https://github.com/stale-tad/stale/issues"


class _Parser(argparse.ArgumentParser):
    """argparse with the error boundary's shape: a usage error (an unknown option, ``--jobs abc``,
    a missing argument) is one line ``stale CMD: error: <problem>`` and exit status 2, like every
    other bad input; ``stale CMD --help`` shows the usage."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        # the command's name as every other error line has it ("stale splits", not "stale splits random")
        name = " ".join(self.prog.split()[:2])
        self.exit(2, f"{name}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _common() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    g = common.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    g.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    g.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stale",
        description="Zero-shot temporal action detection (STALE, Nag et al., ECCV 2022).",
    )
    parser.add_argument("--version", action="version", version=f"stale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common()
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"stale.cli.{module_name}")
        except ModuleNotFoundError as exc:  # a command not built yet in this checkout
            if exc.name == f"stale.cli.{module_name}":
                continue
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as exc:   # --help, --version (0) or a usage error (2, its one line printed)
        return exc.code if isinstance(exc.code, int) else 2
    if unknown:   # blamed on the command, as its other errors are
        cmd = f"stale {args.command}" if getattr(args, "command", None) else "stale"
        print(f"{cmd}: error: unrecognized arguments: {' '.join(unknown)} (see '{cmd} --help')", file=sys.stderr)
        return 2
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    from stale.core.logs import setup_logging

    debug = bool(getattr(args, "debug", False) or os.environ.get("STALE_DEBUG"))
    setup_logging(-1 if getattr(args, "quiet", False) else (1 if getattr(args, "verbose", False) else 0))
    cmd = args.command

    def fail(message: str, code: int = 2) -> int:
        print(f"stale {cmd}: error: {_one_line(message)}", file=sys.stderr)
        return code

    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"stale {cmd}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the one boundary
        if debug:
            raise
        return _classify(exc, fail)


def _classify(exc: BaseException, fail) -> int:
    """Map an exception to the one-line message and exit status of the error boundary."""
    if isinstance(exc, StaleError):
        return fail(str(exc))
    if isinstance(exc, OSError):
        return fail(describe_os_error(exc))
    if isinstance(exc, MemoryError):
        return fail("out of memory; lower the batch size (train.batch_size / --batch-size) or use "
                    "train.micro_batch")
    if isinstance(exc, RecursionError):
        return fail("an input is nested too deeply to read")
    if isinstance(exc, UnicodeError):
        return fail(f"text that is not valid UTF-8 ({exc})")
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return fail("out of GPU memory; lower train.batch_size or set train.micro_batch "
                    "(prediction: --batch-size)")
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
    return fail(f"internal error ({name}: {_one_line(exc)}{where}); this is a bug in stale -- please "
                f"report it at {ISSUES} with the command line (rerun with --debug for the traceback)", 1)
