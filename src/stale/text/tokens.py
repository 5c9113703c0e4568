"""CLIP BPE tokenisation of class names and templates (the tokenizer ships inside open_clip).

Policy: underscores in class names are read as spaces (``Playing_guitar`` -> ``playing guitar``),
because some annotation files use them as word separators and CLIP's vocabulary has no such
words. The tokenizer itself lower-cases and normalises whitespace, as CLIP does.
"""

from __future__ import annotations

from typing import Sequence

from stale.core.errors import StaleError


class ClipTokenizer:
    """Thin wrapper around open_clip's ``SimpleTokenizer`` (ids identical to OpenAI CLIP)."""

    def __init__(self):
        from open_clip.tokenizer import SimpleTokenizer

        self._tok = SimpleTokenizer()
        self.sot: int = self._tok.sot_token_id
        self.eot: int = self._tok.eot_token_id
        self.period: list[int] = self._tok.encode(".")

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` without SOS/EOS."""
        return self._tok.encode(text)

    def encode_name(self, name: str, index: int | None = None) -> list[int]:
        """BPE ids of a class name (underscores read as spaces); an empty result is an error."""
        if not isinstance(name, str):
            raise StaleError(f"class {index}: name must be a string, got {type(name).__name__}")
        ids = self.encode(name.replace("_", " "))
        if not ids:
            where = f"class {index} " if index is not None else "class "
            raise StaleError(f"{where}{name!r}: name is empty after tokenisation")
        return ids


def prompt_text(name: str) -> str:
    """A class name as CLIP's tokenizer reads it: underscores as spaces (the policy above), then
    the tokenizer's own cleaning (ftfy, HTML entities, whitespace runs, lower case). Two names
    with the same ``prompt_text`` are one prompt, so one class."""
    from open_clip.tokenizer import basic_clean, whitespace_clean

    return whitespace_clean(basic_clean(name.replace("_", " "))).lower()


def _same_prompt(a: str, b: str) -> str:
    return "" if a == b else f" ({a!r} and {b!r} are one prompt to CLIP's tokenizer: {prompt_text(b)!r})"


def check_class_names(names: Sequence[str]) -> tuple[str, ...]:
    """Validate an ordered class list (strings, no duplicates) and return it as a tuple."""
    if isinstance(names, str):
        raise StaleError("class_names must be a sequence of names, not a single string "
                         f"({names!r}); wrap it in a list")
    names = tuple(names)
    for i, n in enumerate(names):
        if not isinstance(n, str):
            raise StaleError(f"class {i}: name must be a string, got {n!r}")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        key = prompt_text(n)
        if key in seen:
            first = names[seen[key]]
            raise StaleError(f"class {n!r} appears twice in the class list (positions {seen[key]} and {i})"
                             f"{_same_prompt(first, n)}")
        seen[key] = i
    return names


def check_listed_names(names: list[str], where: str) -> list[str]:
    """Class names read from ``where`` (an option or a file), blanks dropped: at least one, none
    listed twice (the error names both entries, counted from 1)."""
    for i, n in enumerate(names):
        if not isinstance(n, str):
            raise StaleError(f"{where}: entry {i + 1} must be a class name (a string), got {n!r}")
    names = [n for n in names if n]
    if not names:
        raise StaleError(f"{where}: no class names given")
    first: dict[str, int] = {}
    for i, n in enumerate(names):
        key = prompt_text(n)
        if key in first:
            raise StaleError(f"{where}: class {n!r} is listed twice (entries {first[key] + 1} and {i + 1})"
                             f"{_same_prompt(names[first[key]], n)}")
        first[key] = i
    return names
