"""Typed dataclass configs from YAML, with ``base:`` inheritance and ``key.sub=value`` overrides.

Nothing is read at import time; a config is an ordinary nested dataclass instance. Unknown keys
and values of the wrong type are errors that name the key, so a typo in a YAML file or an
override never passes silently.

Inheritance: a YAML config may name one or more ``base`` configs (a path relative to the file,
or the name of a config shipped with stale, see :func:`find_config`); the bases are merged
first, in order, then the file's own keys on top (mappings merge key by key, any other value --
lists included -- replaces). So a config holds only its deltas. Errors are blamed precisely:
a bad value in a file names the file, a bad value given with ``--set`` names that argument.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from stale.core.errors import StaleError

T = TypeVar("T")
BASE_KEY = "base"


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except StaleError as exc:
                errors.append(str(exc))
        raise StaleError(errors[0] if errors else f"{key}: cannot be null")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise StaleError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise StaleError(f"{key}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise StaleError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise StaleError(f"{key}: must be one of {list(args)}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise StaleError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StaleError(f"{key}: expected an integer, got {value!r}")
        if abs(value) > 2**62:
            raise StaleError(f"{key}: integer {value} is out of range")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "3e-5" (no dot) as a string; accept any numeric literal
            try:
                value = float(value)
            except ValueError:
                raise StaleError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StaleError(f"{key}: expected a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise StaleError(f"{key}: number {value} is out of range") from None
        if math.isnan(value):
            raise StaleError(f"{key}: expected a number, got NaN")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise StaleError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict; unknown keys and bad types raise StaleError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in '{prefix}'" if prefix else ""
        raise StaleError(f"unknown config key(s){where}: {', '.join(map(str, unknown))} "
                         f"(known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _convert(value, hints[name], key)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def to_dict(obj: Any) -> dict:
    """Plain nested dict of a dataclass config (tuples become lists), suitable for YAML/JSON."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(obj)


class Overrides(list):
    """A list of ``key=value`` overrides that remembers where each came from, so that an error
    names it as the user wrote it (``spec table1: variant 'A': model.x=1``) instead of as a
    ``--set`` argument. A plain list means every override is a ``--set``."""

    def __init__(self, items=()):
        super().__init__(items)
        self.origins: dict[str, str] = {}

    def add(self, items: Sequence[str], origin: str) -> None:
        for text in items:
            self.append(text)
            self.origins[text] = origin


def option_overrides(overrides: Sequence[str], **options: Any) -> Overrides:
    """``--set`` overrides plus the ones command-line options stand for (``train_threads=4`` ->
    ``train.threads=4``, blamed on ``--threads 4`` when bad); None values are left out."""
    out = Overrides()
    out.add(list(overrides), "--set")
    for key, value in options.items():
        if value is not None:
            section, name = key.split("_", 1)
            out.add([f"{section}.{name}={value}"], f"--{name.replace('_', '-')} {value}:")
    return out


def override_label(text: str, overrides: Sequence[str] = ()) -> str:
    """``'<origin> <text>'`` of one override (``'--set <text>'`` unless ``overrides`` knows
    better)."""
    origins = getattr(overrides, "origins", {})
    return f"{origins.get(text, '--set')} {text}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (``1e-4``, ``true``, ``[1,2]``, ``null``)."""
    import yaml

    if not isinstance(text, str) or "=" not in text:
        raise StaleError(f"--set {text!r}: must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise StaleError(f"--set {text!r}: the key is empty or has an empty part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise StaleError(f"--set {text!r}: the value is not valid YAML ({_yaml_problem(exc)})") from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Return a copy of nested dict ``data`` with each ``key.sub=value`` override applied."""
    out = copy.deepcopy(data)
    for text in overrides:
        try:
            path, value = parse_override(text)
        except StaleError as exc:
            origin = getattr(overrides, "origins", {}).get(text)
            if origin is None:
                raise
            raise StaleError(str(exc).replace(f"--set {text!r}", f"{origin} {text!r}", 1)) from None
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                origin = getattr(overrides, "origins", {}).get(text, "--set")
                raise StaleError(f"{origin} {text!r}: '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return out


def merge(base: dict, delta: dict) -> dict:
    """Deep merge: mappings merge key by key; any other value in ``delta`` replaces."""
    out = copy.deepcopy(base)
    for k, v in delta.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _yaml_problem(exc) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(problem).split())


def packaged_config_dir() -> Path:
    """Folder of the configs shipped inside the package (``stale/configs``)."""
    return Path(__file__).resolve().parents[1] / "configs"


def list_packaged_configs() -> list[str]:
    """Names of the shipped configs (``stale config list``), sorted."""
    root = packaged_config_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def find_config(ref: str | os.PathLike, relative_to: Path | None = None) -> Path:
    """Path of a config given as a file path (relative to ``relative_to`` when given and
    relative) or as the name of a shipped config (``thumos14_clip_75_25``, ``builtin:demo``)."""
    text = os.fspath(ref)
    if text.startswith("builtin:"):
        text = text.split(":", 1)[1]
        candidates = []
    else:
        p = Path(text).expanduser()
        candidates = [p] if p.is_absolute() else ([relative_to / p] if relative_to else []) + [p]
    for c in candidates:
        if c.is_file():
            return c
    name = text[:-5] if text.endswith(".yaml") else text
    shipped = packaged_config_dir() / f"{name}.yaml"
    if shipped.is_file() and ".." not in Path(name).parts:
        # a folder that happens to share a shipped config's name (e.g. ./tiny) is not a config
        return shipped
    for c in candidates:
        if c.is_dir():
            raise StaleError(f"config {c}: is a directory, expected a YAML file")
    where = candidates[0] if candidates else text
    raise StaleError(f"config file not found: {where} (nor a shipped config of that name; "
                     f"`stale config list` shows them)")


def load_yaml(path: str | Path) -> dict:
    """Read one YAML mapping (no inheritance); errors name the file."""
    import yaml

    from stale.core.io import read_text

    path = Path(path)
    if not path.exists():
        raise StaleError(f"config file not found: {path}")
    text = read_text(path, "config file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StaleError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    except RecursionError:
        raise StaleError(f"{path}: YAML nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StaleError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_yaml_tree(path: str | Path, _stack: tuple[Path, ...] = ()) -> dict:
    """A YAML config with its ``base`` configs merged in (the ``base`` key removed)."""
    path = Path(path)
    real = path.resolve()
    if real in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, real))
        raise StaleError(f"{path}: config inheritance loops ({chain})")
    data = load_yaml(path)
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise StaleError(f"{path}: 'base' must be a config name/path or a list of them, got {bases!r}")
    merged: dict = {}
    for ref in bases:
        merged = merge(merged, load_yaml_tree(find_config(ref, path.parent), (*_stack, real)))
    return merge(merged, data)


def blame_override(exc: StaleError, overrides: Sequence[str]) -> str | None:
    """The ``--set`` argument an error message is most likely about (by key), or None."""
    msg = str(exc)

    def named(part: str) -> bool:
        return bool(part) and (f"{part}:" in msg or f"{part} " in msg or f"{part}=" in msg
                               or f"'{part}'" in msg or msg.endswith(part))

    best, score = None, 0
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            if named(".".join(parts[-n:])):
                if n >= score:
                    best, score = text, n
                break
    if best is None:
        # an unknown section: "unknown config key(s): foo" is about --set foo.bar=1
        for text in overrides:
            parts = text.split("=", 1)[0].strip().split(".")
            if any(named(f"key(s): {'.'.join(parts[:n])}") or named(f"key(s) in '{'.'.join(parts[:n - 1])}': {parts[n - 1]}")
                   for n in range(1, len(parts))):
                return text
    return best


def load_config(cls: type[T], path: str | Path | None, overrides: Sequence[str] = (),
                migrate: Callable[[dict, Sequence[str], str], tuple[dict, Sequence[str]]] | None = None) -> T:
    """Load dataclass ``cls`` from a YAML file (with its bases; defaults when ``path`` is None)
    plus ``--set`` overrides. Errors name the file or the ``--set`` argument at fault.
    ``migrate(data, overrides, where) -> (data, overrides)`` maps keys of older versions of
    ``cls`` first (``where`` names the file)."""
    overrides = overrides if isinstance(overrides, Overrides) else list(overrides)
    src = find_config(path) if path is not None else None
    data = load_yaml_tree(src) if src is not None else {}
    if migrate is not None:
        data, overrides = migrate(data, overrides, str(src) if src is not None else "--set overrides")
    if src is not None or not overrides:
        try:
            from_dict(cls, data)
        except StaleError as exc:
            # a file that is wrong on its own is blamed, unless an override fixes it
            if not overrides:
                raise StaleError(f"{src}: {exc}" if src else str(exc)) from None
            file_error: StaleError | None = exc
        else:
            file_error = None
    else:
        file_error = None
    full = apply_overrides(data, overrides)
    try:
        return from_dict(cls, full)
    except StaleError as exc:
        culprit = blame_override(exc, overrides)
        if culprit is not None:
            raise StaleError(f"{override_label(culprit, overrides)}: {exc}") from None
        if file_error is not None and str(file_error) == str(exc) and src is not None:
            raise StaleError(f"{src}: {exc}") from None
        where = f"{src} with --set overrides" if src is not None else "--set overrides"
        raise StaleError(f"{where}: {exc}") from None
