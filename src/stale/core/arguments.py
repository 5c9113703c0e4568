"""Argument checks of the Python API, the same for every function: types from the signature.

The CLI's arguments arrive as strings that argparse converts and the commands validate; the
Python API (:mod:`stale.api`) gets arbitrary objects. :func:`checked` makes each API function
check its arguments against its own annotations before any work -- ``None`` where a value is
needed, a string where a list of strings is expected (``overrides="a=1"`` would otherwise be
split into characters), a float or a bool where an integer is -- and the ranges the CLI
enforces (``jobs`` in [1, 256], ``threads`` >= 1, ... -- most by the code both run). A failure is one :class:`ArgumentError`
(a :class:`StaleError`) naming the function, the argument and the value.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Callable

from stale.core.errors import StaleError


class ArgumentError(StaleError):
    """An argument of an API function of the wrong type or out of range (names the argument)."""


#: integer arguments and their inclusive range where no command checks them further down (the
#: others -- threads, jobs, batch sizes, clip frames, ... -- are checked by the code both the CLI
#: and the API run, with the CLI's messages); None: unbounded
RANGES: dict[str, tuple[int | None, int | None]] = {
    "ddp_procs": (1, 64), "time": (1, None), "gpus_per_job": (0, None), "cpus_per_job": (1, None),
    "seed": (0, 2**63 - 1),
}
#: list arguments that must name at least one item
NON_EMPTY = {"videos", "inputs"}


def _split_union(text: str) -> list[str]:
    """``"A | B[C | D] | None"`` -> ``["A", "B[C | D]", "None"]`` (top-level ``|`` only)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def _matches(value: Any, ann: str) -> bool:
    """Whether ``value`` fits the annotation string ``ann`` (the forms the API uses)."""
    if ann in ("Any", "object", ""):
        return True
    if ann == "None":
        return value is None
    if ann == "str":
        return isinstance(value, str)
    if ann == "bool":
        return isinstance(value, bool)
    if ann == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if ann == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)   # NaN: checked further down
    if ann in ("os.PathLike", "Path"):
        return isinstance(value, os.PathLike)
    seq = next((p for p in ("Sequence[", "list[") if ann.startswith(p)), None)
    if seq and ann.endswith("]"):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            return False
        inner = _split_union(ann[len(seq):-1])
        return all(any(_matches(x, a) for a in inner) for x in value)
    return True   # a form this checker does not know: the function checks it


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def check_argument(function: str, name: str, value: Any, annotation: str | None) -> None:
    """Raise :class:`ArgumentError` when ``value`` does not fit ``annotation`` or its range."""
    if annotation:
        options = _split_union(str(annotation))
        if not any(_matches(value, a) for a in options):
            def listed(a: str) -> str | None:
                p = next((p for p in ("Sequence[", "list[") if a.startswith(p)), None)
                return a[len(p):-1] if p else None

            want = " or ".join(f"a list of {listed(a)}" if listed(a) else a for a in options)
            hint = "; wrap one string in a list" if isinstance(value, str) and any(map(listed, options)) else ""
            raise ArgumentError(f"stale.{function}: argument {name}: expected {want}, got {_describe(value)}{hint}")
    if name in RANGES and isinstance(value, int) and not isinstance(value, bool):
        lo, hi = RANGES[name]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {'2**63 - 1' if hi == 2**63 - 1 else hi}]"
            flag = name.replace("_", "-")   # the command's option of the same name
            raise ArgumentError(f"stale.{function}: argument {name} (--{flag}): must be {rng}, got {value}")
    if name in NON_EMPTY and isinstance(value, (list, tuple)) and not value:
        raise ArgumentError(f"stale.{function}: argument {name}: an empty list; give at least one")


def check_options(function: str, options: dict, fields: dict[str, str]) -> None:
    """Check the keyword ``options`` a function passes on to a dataclass (``fields``: name ->
    annotation): an unknown name or a value of the wrong type is an :class:`ArgumentError`."""
    for key, value in options.items():
        if key not in fields:
            raise ArgumentError(f"stale.{function}: unknown option {key!r} (known: {', '.join(sorted(fields))})")
        check_argument(function, key, value, fields[key])


def checked(fn: Callable) -> Callable:
    """Check every argument of ``fn`` against its annotations before calling it (module
    docstring); an unknown keyword or a missing argument is an :class:`ArgumentError` too."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"stale.{fn.__name__}: {exc}") from None
        for name, value in bound.arguments.items():
            param = sig.parameters[name]
            if param.kind is param.VAR_KEYWORD:
                for key, v in value.items():
                    check_argument(fn.__name__, key, v, None)
                continue
            if value is param.default:
                continue
            check_argument(fn.__name__, name, value, fn.__annotations__.get(name))
        return fn(*args, **kwargs)

    return wrapper
