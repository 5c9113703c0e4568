"""Output paths are checked before any work, so no command destroys what the user has.

Every command lists the files and folders it will write (:class:`Output`) and the inputs it
reads, and calls :func:`check_outputs` first. A problem is one :class:`StaleError` line naming
the paths involved:

* an output equal to an input, or inside an input folder the command reads (a feature folder, a
  video folder), or two outputs that are the same path (symlinks resolved);
* an output whose nearest existing ancestor is a regular file, or a folder it cannot write into;
* a file output that is an existing directory or another non-regular file (a device such as
  ``/dev/null``, a pipe), or a folder output that is an existing file;
* a name component longer than the file system allows;
* an existing file output without ``overwrite`` (nothing is replaced without an explicit flag).

Run folders have their own rule (:func:`prepare_run_folder`): a folder holding *any* run
artefact is refused unless the run is resumed, or ``overwrite`` moves the old folder aside
(``RUN.old-<timestamp>``) -- it is never deleted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

from stale.core.errors import StaleError

#: files whose presence makes a folder a run folder
RUN_ARTEFACTS = ("last.pt", "best.pt", "metrics.jsonl", "config.yaml", "classes.json",
                 "data_report.json", "train.log", "selection.json", "model.pt", "steps.jsonl",
                 "inputs.json", "selection.pt")
#: the record that makes a folder a ``stale detect`` folder, and its results file
DETECT_MARKER = "detect.json"
DETECT_RESULTS = "detections.json"


@dataclass(frozen=True)
class Output:
    """One output of a command: ``path``, whether it is a ``file`` or a ``dir``, the option
    that named it (for messages) and whether an existing one may be replaced/extended."""

    path: Path | str
    kind: Literal["file", "dir"] = "file"
    option: str = "--out"
    exists_ok: bool = False


def resolved_path(p: Path | str) -> Path:
    """``p`` made absolute with ``~`` expanded and symlinks resolved (how paths are compared)."""
    return Path(os.path.abspath(Path(p).expanduser())).resolve()



def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_target(out: Output) -> Path:
    """Checks of one output that need no other path; returns its resolved path."""
    path = Path(out.path).expanduser()
    if str(out.path) == "":
        raise StaleError(f"{out.option}: empty path")
    resolved = resolved_path(path)
    anc = _nearest_existing(resolved.parent)
    if not anc.is_dir():
        raise StaleError(f"{out.option} {path}: cannot be created, {anc} is a regular file, not a folder")
    limit = _name_max(anc)
    for part in resolved.parts:
        if len(os.fsencode(part)) > limit:
            raise StaleError(f"{out.option} {path}: file name too long ({len(os.fsencode(part))} "
                             f"bytes; the file system allows {limit})")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise StaleError(f"{out.option} {path}: folder {anc} is not writable")
    if resolved.exists():
        if out.kind == "file" and resolved.is_dir():
            raise StaleError(f"{out.option} {path}: is a directory, expected a file path")
        if out.kind == "file" and not resolved.is_file():
            # a device or a pipe (e.g. /dev/null, /dev/stdout): an atomic write would replace it
            raise StaleError(f"{out.option} {path}: is not a regular file (a device or a pipe); "
                             f"give the path of a file to write")
        if out.kind == "dir" and not resolved.is_dir():
            raise StaleError(f"{out.option} {path}: is a file, expected a folder")
        if out.kind == "dir" and not os.access(resolved, os.W_OK | os.X_OK):
            raise StaleError(f"{out.option} {path}: folder is not writable")
    return resolved


def check_outputs(outputs: Sequence[Output], inputs: Iterable[Path | str | None] = (),
                  input_dirs: Iterable[Path | str | None] = (), overwrite: bool = False) -> list[Path]:
    """Check every output against the rules of the module docstring; returns resolved paths.

    ``inputs``: files the command reads; ``input_dirs``: folders whose contents it reads (an
    output inside one is refused). ``None`` entries are ignored.
    """
    resolved = [check_writable_target(o) for o in outputs]
    in_files = [(p, resolved_path(p)) for p in inputs if p is not None]
    in_dirs = [(p, resolved_path(p)) for p in input_dirs if p is not None]
    for out, r in zip(outputs, resolved):
        for given, inp in in_files:
            if r == inp:
                raise StaleError(f"{out.option} {out.path}: is the input {given}; choose another output path")
            if out.kind == "dir" and _is_within(inp, r) and not out.exists_ok:
                raise StaleError(f"{out.option} {out.path}: contains the input {given}; choose another folder")
        for given, inp in in_dirs:
            if _is_within(r, inp):
                raise StaleError(f"{out.option} {out.path}: lies inside the input folder {given}; "
                                 f"choose another output path")
        if out.kind == "file" and r.is_file() and not (overwrite or out.exists_ok):
            raise StaleError(f"{out.option} {out.path}: file exists; pass --overwrite to replace it")
    for i in range(len(outputs)):
        for j in range(i + 1, len(outputs)):
            if resolved[i] == resolved[j]:
                raise StaleError(f"{outputs[i].option} and {outputs[j].option} are the same path: "
                                 f"{outputs[i].path}")
    return resolved


def run_artefacts(folder: Path) -> list[str]:
    """Names of the run artefacts present in ``folder`` (empty when it is not a run folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [n for n in RUN_ARTEFACTS if (folder / n).exists()]


def move_aside(folder: Path) -> Path:
    """Rename ``folder`` to ``<folder>.old-<YYYYmmdd-HHMMSS>[-n]`` and return the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder.with_name(f"{folder.name}.old-{stamp}")
    n = 1
    while target.exists():
        target = folder.with_name(f"{folder.name}.old-{stamp}-{n}")
        n += 1
    os.replace(folder, target)
    return target


def prepare_run_folder(out: Path | str, resume: bool = False, overwrite: bool = False,
                       option: str = "--out", inputs: Iterable[Path | str | None] = (),
                       input_dirs: Iterable[Path | str | None] = ()) -> tuple[Path, Path | None]:
    """Check a run folder before training. Returns ``(folder, moved_aside_to or None)``.

    * no artefacts: fine (created later);
    * artefacts and ``resume``: fine when ``last.pt`` is there, else an error;
    * artefacts and ``overwrite``: the old folder is moved aside (never deleted);
    * artefacts otherwise: an error naming what is there.
    Nothing is moved until every check passed.
    """
    if resume and overwrite:
        raise StaleError("--resume and --overwrite contradict each other; choose one")
    folder = Path(out)
    check_outputs([Output(folder, "dir", option, exists_ok=True)], inputs, input_dirs)
    present = run_artefacts(folder)
    if resume:
        if not (folder / "last.pt").is_file():
            raise StaleError(f"--resume: no checkpoint {folder / 'last.pt'} to resume from")
        return folder, None
    if present:
        if not overwrite:
            raise StaleError(f"{option} {folder}: already holds a run ({', '.join(present)}); use "
                             f"--resume to continue it, --overwrite to move it aside, or another folder")
        return folder, move_aside(folder)
    return folder, None
