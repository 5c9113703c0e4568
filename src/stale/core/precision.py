"""Which floating-point precision the heavy forward passes run in (image tower, STALE inference).

``auto`` picks bf16 -- weights *and* activations in bfloat16, not autocast -- where the device
multiplies bf16 matrices natively, float32 elsewhere:

* CPU: native when the CPU has AVX512-BF16 or AMX-BF16 (``avx512_bf16`` / ``amx_bf16`` in
  ``/proc/cpuinfo``; oneDNN's own check where there is no ``/proc/cpuinfo``). There a bf16
  matrix product runs ~4x faster than a float32 one, while bf16 *autocast* is slower than
  float32 (every op casts its inputs again);
* CUDA: compute capability >= 8.0 (Ampere and later).

``float32`` (alias ``fp32``) is always honoured; ``bf16`` is honoured even where it is emulated
(slow, but the user asked for it). The capability is detected by a function, once per process
(the CPU flags are read on first use, never at import). ``STALE_NATIVE_BF16=0`` (or ``1``)
overrides the detection -- to simulate a CPU without bf16 units in tests, or to opt out
machine-wide -- and the resolved :class:`Precision` says why it was chosen (:meth:`record`, which
every command writes into its outputs).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from stale.core.errors import StaleError

#: what users may ask for (``--precision``); ``fp32`` is an alias of ``float32``
PRECISIONS = ("auto", "float32", "bf16")
_ALIASES = {"fp32": "float32", "float": "float32", "bfloat16": "bf16"}
#: environment override of the capability check: "0" = no native bf16, "1" = native bf16
ENV_NATIVE_BF16 = "STALE_NATIVE_BF16"
_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``dtype`` for weights and activations, what was ``requested``, and
    ``reason`` (one line: the capability found, or "requested")."""

    dtype: torch.dtype
    requested: str
    reason: str

    @property
    def name(self) -> str:
        return "bf16" if self.dtype == torch.bfloat16 else "float32"

    @property
    def is_bf16(self) -> bool:
        return self.dtype == torch.bfloat16

    def record(self) -> dict:
        """What outputs record: ``{"precision", "requested", "reason"}``."""
        return {"precision": self.name, "requested": self.requested, "reason": self.reason}


def normalise_precision(value: str, where: str = "--precision") -> str:
    """``auto`` / ``float32`` / ``bf16`` from a user's spelling (``fp32``, ``bfloat16``
    accepted); anything else is a one-line :class:`StaleError` naming ``where``."""
    text = str(value).strip().lower()
    text = _ALIASES.get(text, text)
    if text not in PRECISIONS:
        raise StaleError(f"{where}: must be one of {', '.join(PRECISIONS)} (or fp32), got {value!r}")
    return text


@functools.lru_cache(maxsize=1)
def _cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 matrix-unit flags of this CPU (read once per process); ``("onednn",)`` when
    there is no ``/proc/cpuinfo`` but oneDNN reports bf16 support."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = None
    if text is not None:
        flags: set[str] = set()
        for line in text.splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[-1].split())
        return tuple(f for f in _CPU_FLAGS if f in flags)
    try:
        return ("onednn",) if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ()
    except (AttributeError, RuntimeError):
        return ()


def native_bf16(device: torch.device | str = "cpu") -> tuple[bool, str]:
    """``(True, why)`` when ``device`` multiplies bf16 matrices natively, else ``(False, why)``;
    ``STALE_NATIVE_BF16`` overrides the check."""
    forced = os.environ.get(ENV_NATIVE_BF16, "").strip()
    if forced in ("0", "1"):
        return forced == "1", f"{ENV_NATIVE_BF16}={forced}"
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return major >= 8, f"CUDA compute capability {major}.{minor}"
    if device.type != "cpu":
        return False, f"device {device.type}: float32 unless bf16 is asked for"
    flags = _cpu_bf16_flags()
    if flags:
        return True, "CPU has " + " and ".join(flags)
    return False, "CPU has no native bf16 matrix units (avx512_bf16 / amx_bf16)"


def resolve_precision(requested: str, device: torch.device | str = "cpu") -> Precision:
    """The :class:`Precision` of ``requested`` (``auto`` / ``float32`` / ``bf16``) on ``device``."""
    requested = normalise_precision(requested)
    if requested == "float32":
        return Precision(torch.float32, requested, "requested")
    if requested == "bf16":
        return Precision(torch.bfloat16, requested, "requested")
    native, why = native_bf16(device)
    return Precision(torch.bfloat16 if native else torch.float32, requested, why)
