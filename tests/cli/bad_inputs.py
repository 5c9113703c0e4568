"""Helpers of the bad-input tests (tests/cli/test_bad_inputs_*.py).

Every case runs the real command line in-process (``stale.cli.main``) and checks the contract
of the error boundary: the exit status, exactly one ``stale CMD: error: ...`` line on stderr
naming the culprit, no traceback, and every file the user already had byte-identical afterwards.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterable

from stale.cli import main

#: a process id no process has (beyond Linux's pid_max): its temporary files are "stale"
DEAD_PID = 99_999_999


def data_args(root: Path) -> list[str]:
    """``--set`` arguments pointing the tiny config at a dataset folder."""
    return ["--set", f"data.annotations={root / 'annotations.json'}",
            "--set", f"data.features.root={root / 'features'}"]


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Contents of every file under ``roots`` (files are small in these tests), by path."""
    files: dict[str, bytes] = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            files[str(root)] = root.read_bytes()
            continue
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                p = Path(dirpath) / name
                if p.is_file():
                    files[str(p)] = p.read_bytes()
    return files


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``stale ARGV`` in-process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def error_line(err: str, cmd: str) -> str:
    """The one ``stale CMD: error:`` line of ``err`` (asserting there is exactly one, that it is
    not an internal error and that no traceback was printed)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"stale {cmd}: error: ")]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert "internal error" not in lines[0], lines[0]
    assert "error:" not in err.replace(lines[0], ""), f"a second error message:\n{err}"
    return lines[0]


def refused(capsys, argv: Iterable, *needles: str, roots: Iterable[Path] = (), code: int = 2,
            new_files_ok: bool = False, absent: Iterable[str] = ()) -> str:
    """Run ``stale ARGV``; assert exit ``code``, one error line containing every needle (and none
    of ``absent``), and that the files under ``roots`` are unchanged (no file changed or removed;
    no file added unless ``new_files_ok``). Returns the error line."""
    argv = [str(a) for a in argv]
    roots = [Path(r) for r in roots]
    before = snapshot(*roots)
    rc, _out, err = run_cli(capsys, *argv)
    after = snapshot(*roots)
    assert rc == code, f"exit {rc}, expected {code}; stderr:\n{err}"
    line = error_line(err, argv[0])
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    for word in absent:
        assert word not in line, f"{word!r} in {line!r}"
    changed = [p for p in before if after.get(p) != before[p]]
    assert not changed, f"files changed or removed: {changed}"
    if not new_files_ok:
        added = sorted(set(after) - set(before))
        assert not added, f"files written although the command was refused: {added}"
    return line


def interrupted(capsys, argv: Iterable, roots: Iterable[Path] = ()) -> str:
    """Run ``stale ARGV`` expecting Ctrl-C (exit 130, one ``interrupted`` line), user files kept."""
    argv = [str(a) for a in argv]
    roots = [Path(r) for r in roots]
    before = snapshot(*roots)
    rc, _out, err = run_cli(capsys, *argv)
    after = snapshot(*roots)
    assert rc == 130, f"exit {rc}; stderr:\n{err}"
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith(f"stale {argv[0]}: ")][-1] == \
        f"stale {argv[0]}: interrupted"
    assert all(after.get(p) == b for p, b in before.items()), "a user file changed"
    return err


def temp_files(root: Path) -> list[str]:
    """Temporary files of atomic writes under ``root``."""
    return sorted(str(p) for p in Path(root).rglob(".*.tmp"))


def leftover_temp(folder: Path, name: str) -> Path:
    """A temporary file as a writer killed by ``kill -9`` leaves it (its process is gone)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f".{name}.{DEAD_PID}.abc123xy.tmp"
    p.write_bytes(b"half a file")
    return p


def enospc(path=None) -> OSError:
    """The error a write on a full disk raises (through a file handle it names no file)."""
    if path is None:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def full_disk_after(nbytes: int = 7):
    """A replacement for ``Path.write_bytes``/file writes: writes ``nbytes`` then fails like a
    full disk."""

    def write_bytes(self, data):
        with open(self, "wb") as fh:
            fh.write(bytes(data)[:nbytes])
        raise enospc(self)

    return write_bytes
