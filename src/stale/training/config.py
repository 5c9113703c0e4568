"""Optimisation settings of a training run (a plain dataclass: loading a config never imports
the trainer)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from stale.core.errors import StaleError

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str, what: str = "device") -> str:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``; anything else is a StaleError."""
    if not isinstance(name, str) or not _DEVICE_RE.match(name.strip()):
        raise StaleError(f"{what}: {name!r} is not a device (use auto, cpu, cuda or cuda:N)")
    return name.strip()


def check_positive(value: float, what: str, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise StaleError(f"{what} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass
class TrainConfig:
    """Optimisation settings (paper, Sec. 4: Adam, 15 epochs, lr 1e-4 ActivityNet / 1e-5 THUMOS14).

    micro_batch: videos per forward/backward pass inside a step (gradient accumulation; the same
        update as the whole batch with less memory); None = the whole batch at once.
    text_lr: learning rate of the text tower (None: same as ``lr``).
    grad_clip: max global gradient norm; 0 disables clipping.
    val_fraction: held-out share of the *training* videos, for model selection.
    select: how ``best.pt`` is chosen: ``val_loss`` (lowest loss on the held-out training
        videos), ``pseudo_unseen`` (zero-shot runs: highest mAP on *pseudo-unseen* classes --
        a share ``pseudo_unseen_fraction`` of the seen classes held out of training, detected in
        the held-out videos; never the real unseen classes), or ``last`` (the last epoch).
    select_retrain: with ``pseudo_unseen``: after choosing the epoch, train again on all seen
        classes for that many epochs (the final model then knows every seen class).
    amp: bf16 autocast on CUDA (on the CPU only with ``cpu_amp``).
    cpu_amp: bf16 autocast on the CPU: ``auto`` (default) where the CPU multiplies bf16
        natively (AVX512-BF16 / AMX; :func:`stale.core.precision.native_bf16`, which
        ``STALE_NATIVE_BF16=0/1`` overrides), ``true`` always, ``false`` never (float32, bit-exact
        with runs before 2026-12-05). Master weights, optimiser, losses and post-processing stay
        float32. Chosen on the honest benchmark's dev splits (docs/model.md, "Numerics"): mAP
        within the split noise of float32 training, 1.67x faster steps at the paper's size.
    device: auto | cpu | cuda | cuda:N.
    threads: torch intra-op threads (None: torch's default, or OMP_NUM_THREADS).
    progress: progress bars (drawn only on a terminal in any case).
    """

    epochs: int = 15
    batch_size: int = 16
    micro_batch: int | None = None
    lr: float = 1e-4
    text_lr: float | None = None
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    val_fraction: float = 0.1
    select: Literal["val_loss", "pseudo_unseen", "last"] = "val_loss"
    pseudo_unseen_fraction: float = 0.25
    select_retrain: bool = False
    amp: bool = True
    cpu_amp: bool | Literal["auto"] = "auto"
    device: str = "auto"
    threads: int | None = None
    progress: bool = True

    def validate(self) -> None:
        if not 1 <= self.epochs <= 100_000:
            raise StaleError(f"train.epochs must be in [1, 100000], got {self.epochs}")
        if not 1 <= self.batch_size <= 1_000_000:
            raise StaleError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise StaleError(f"train.micro_batch must be >= 1 or null, got {self.micro_batch}")
        check_positive(self.lr, "train.lr")
        if self.text_lr is not None:
            check_positive(self.text_lr, "train.text_lr")
        check_positive(self.weight_decay, "train.weight_decay", allow_zero=True)
        check_positive(self.grad_clip, "train.grad_clip", allow_zero=True)
        if not 0.0 <= self.val_fraction < 1.0:
            raise StaleError(f"train.val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 < self.pseudo_unseen_fraction < 1.0:
            raise StaleError(f"train.pseudo_unseen_fraction must be in (0, 1), got {self.pseudo_unseen_fraction}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise StaleError(f"train.threads must be >= 1 or null, got {self.threads}")
        if not 0 <= self.seed < 2**63:
            raise StaleError(f"train.seed must be in [0, 2^63), got {self.seed}")
        check_device_name(self.device, "train.device")
