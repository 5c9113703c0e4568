"""Device, threads, seeds and RNG state: what a run needs from the process it runs in."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from stale.core.errors import StaleError
from stale.training.config import check_device_name


def resolve_device(name: str = "auto", what: str = "--device") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA device without CUDA is a StaleError
    (``what``: the option or key the name came from, for messages)."""
    name = check_device_name(name, what)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise StaleError(f"{what} {name}: CUDA is not available on this machine")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise StaleError(f"{what} {name}: only {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise StaleError(f"{what} mps: not available on this machine")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (None: leave the default); returns the count in use."""
    if threads is not None:
        if not 1 <= int(threads) <= 1024:
            raise StaleError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
