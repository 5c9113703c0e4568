"""Checkpoints: atomic save, validated load, and weights without what can be rebuilt.

A checkpoint is one ``torch.save`` file holding a dict with a format tag, the model weights,
the full resolved config (as a plain dict), the class lists, the epoch and the code version.
``last.pt`` adds the whole training state (optimiser, RNG states, history) for an exact resume;
``best.pt`` holds weights and config only.

Weights leave out the *frozen* parameters of the CLIP text tower (the token-embedding table
always, the whole tower when it is not fine-tuned): they are rebuilt from ``text.weights`` when
the run is loaded, and a fingerprint stored in the checkpoint checks that the rebuilt tensors are
the ones the model was trained with. With ViT-B/16 that is 25-63 M parameters (100-250 MB) a file.

Loading checks the tag and the keys, so a truncated or foreign file gives a :class:`StaleError`
naming the file rather than a torch trace.
"""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stale.core.version import __version__
from stale.core.errors import StaleError
from stale.core.io import atomic_torch_save

FORMAT = "stale-checkpoint-v2"
READABLE_FORMATS = ("stale-checkpoint-v1", FORMAT)
REQUIRED_KEYS = ("format", "model", "config", "classes", "epoch")
#: parameters under this prefix may be left out of a checkpoint when frozen
FROZEN_PREFIX = "text_encoder.tower."


def code_version() -> str:
    """Package version plus the git commit of the source tree when available."""
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """A short hash of named tensors' values (float64 sums and sums of squares, in key order)."""
    h = hashlib.sha1()
    for name in sorted(tensors):
        t = tensors[name].detach().double()
        h.update(name.encode())
        h.update(f"{tuple(t.shape)}:{float(t.sum()):.9e}:{float((t * t).sum()):.9e}".encode())
    return h.hexdigest()[:16]


def slim_state_dict(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state, frozen)``: the state dict without frozen text-tower parameters, and a record of
    what was left out (names and fingerprint) for :func:`load_weights`."""
    state = model.state_dict()
    frozen_names = [n for n, p in model.named_parameters() if n.startswith(FROZEN_PREFIX)
                    and not p.requires_grad]
    frozen = {n: state[n] for n in frozen_names if n in state}
    out = {k: v for k, v in state.items() if k not in frozen}
    return out, {"names": sorted(frozen), "fingerprint": fingerprint(frozen) if frozen else ""}


def load_weights(model: nn.Module, ckpt: dict[str, Any]) -> None:
    """Load a checkpoint's weights into ``model`` (built from the checkpoint's config); frozen
    tensors left out at save time must already be in the model, with the same fingerprint."""
    where = ckpt.get("path", "checkpoint")
    frozen = ckpt.get("frozen") or {"names": [], "fingerprint": ""}
    try:
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    except RuntimeError as exc:
        raise StaleError(f"{where}: weights do not fit the model of its config "
                         f"({_first_line(exc)})") from None
    left_out = set(frozen.get("names", []))
    bad_missing = [k for k in missing if k not in left_out]
    if bad_missing or unexpected:
        what = (f"missing {bad_missing[:3]}" if bad_missing else f"unexpected {list(unexpected)[:3]}")
        raise StaleError(f"{where}: weights do not fit the model of its config ({what}); was the "
                         f"model config changed with --set?")
    if left_out:
        state = model.state_dict()
        got = fingerprint({n: state[n] for n in left_out if n in state})
        if got != frozen.get("fingerprint"):
            raise StaleError(f"{where}: the CLIP text weights found now (text.weights) are not the ones "
                             f"this model was trained with (fingerprint {got} vs {frozen.get('fingerprint')}); "
                             f"pass the original weights with --set text.weights=PATH")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (must hold the required keys) atomically to ``path``."""
    missing = [k for k in REQUIRED_KEYS if k not in payload and k != "format"]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    data = {"format": FORMAT, "code_version": code_version(), **payload}
    atomic_torch_save(path, data)   # through a file handle: a full disk is one clear OSError


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint file of a run folder (``best.pt``, else ``last.pt``) or the file itself."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise StaleError(f"{path}: no best.pt or last.pt checkpoint in this run folder")
    if not path.exists():
        raise StaleError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise StaleError(f"{path}: not a checkpoint file")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint` (a run folder or a file)."""
    path = find_checkpoint(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            AttributeError, ImportError, IndexError, KeyError, TypeError, UnicodeDecodeError):
        raise StaleError(f"{path}: not a readable stale checkpoint (truncated, corrupt, or another "
                         f"kind of file)") from None
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        raise StaleError(f"{path}: not a stale checkpoint (expected format {FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise StaleError(f"{path}: checkpoint lacks {', '.join(missing)}")
    data["path"] = str(path)
    return data
