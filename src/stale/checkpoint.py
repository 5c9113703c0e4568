"""Checkpoints: atomic save, validated load.

A checkpoint is one ``torch.save`` file holding a dict with a format tag, the model and optimiser
state, the full config (as a plain dict), the class lists, the epoch/step counters, the RNG states
needed for an exact resume, and the code version. Loading checks the tag and the keys, so a
truncated or foreign file gives a :class:`StaleError` naming the file rather than a torch trace.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

from stale import __version__
from stale.errors import StaleError
from stale.io import atomic_save

FORMAT = "stale-checkpoint-v1"
REQUIRED_KEYS = ("format", "model", "config", "classes", "epoch")


def code_version() -> str:
    """Package version plus the git commit of the source tree when available."""
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (must hold the required keys) atomically to ``path``."""
    missing = [k for k in REQUIRED_KEYS if k not in payload and k != "format"]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    data = {"format": FORMAT, "code_version": code_version(), **payload}
    atomic_save(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise StaleError(f"{path}: no best.pt or last.pt checkpoint in this run folder")
    if not path.is_file():
        raise StaleError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated zip, pickle garbage, wrong file type
        raise StaleError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                         f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StaleError(f"{path}: not a stale checkpoint (expected format {FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise StaleError(f"{path}: checkpoint lacks {', '.join(missing)}")
    data["path"] = str(path)
    return data
