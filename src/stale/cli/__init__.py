"""Command-line entry point: ``stale <command> ...`` and ``python -m stale <command> ...``.

Each sub-command lives in its own module of this package and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import their heavy dependencies
(torch, matplotlib) inside ``run`` so that ``stale --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stale import __version__
from stale.errors import StaleError

# command name -> module in this package
COMMANDS: dict[str, str] = {
    "evaluate": "evaluate",
    "splits": "splits",
    "text-embed": "text_embed",
    "extract": "extract",
    "synth": "synth",
    "train": "train",
    "predict": "predict",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stale",
        description="Zero-shot temporal action detection (STALE, Nag et al., ECCV 2022).",
    )
    parser.add_argument("--version", action="version", version=f"stale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"stale.cli.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except StaleError as exc:
        print(f"stale {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stale {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error of ours
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
