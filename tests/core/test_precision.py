"""The precision policy: ``auto`` follows the device's bf16 capability (simulated both ways with
``STALE_NATIVE_BF16``), explicit requests are honoured, spellings are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stale.core.errors import StaleError
from stale.core.precision import (ENV_NATIVE_BF16, _cpu_bf16_flags, native_bf16, normalise_precision,
                                  resolve_precision)


def test_spellings_and_bad_values():
    assert [normalise_precision(v) for v in ("auto", "fp32", "FLOAT32", "bf16", "bfloat16")] == \
        ["auto", "float32", "float32", "bf16", "bf16"]
    with pytest.raises(StaleError, match=r"--precision: must be one of auto, float32, bf16.*'half'"):
        normalise_precision("half")


def test_auto_falls_back_to_float32_without_bf16_units(monkeypatch):
    monkeypatch.setenv(ENV_NATIVE_BF16, "0")
    p = resolve_precision("auto", "cpu")
    assert p.dtype == torch.float32 and not p.is_bf16
    assert p.record() == {"precision": "float32", "requested": "auto", "reason": f"{ENV_NATIVE_BF16}=0"}
    # an explicit bf16 is honoured even there (emulated), float32 always
    assert resolve_precision("bf16", "cpu").dtype == torch.bfloat16
    assert resolve_precision("fp32", "cpu").record()["precision"] == "float32"


def test_auto_is_bf16_with_bf16_units(monkeypatch):
    monkeypatch.setenv(ENV_NATIVE_BF16, "1")
    p = resolve_precision("auto", torch.device("cpu"))
    assert p.dtype == torch.bfloat16 and p.name == "bf16" and p.requested == "auto"
    assert resolve_precision("float32", "cpu").dtype == torch.float32   # one flag away


def test_detection_reads_this_cpus_flags(monkeypatch):
    """Without the override, the answer is the independent reading of /proc/cpuinfo."""
    monkeypatch.delenv(ENV_NATIVE_BF16, raising=False)
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        pytest.skip("no /proc/cpuinfo")
    words = set(info.read_text().split())
    expected = bool({"amx_bf16", "avx512_bf16"} & words)
    native, why = native_bf16("cpu")
    assert native == expected
    assert ("amx_bf16" in why or "avx512_bf16" in why) if expected else "no native bf16" in why
    assert resolve_precision("auto").is_bf16 == expected
    # detected once per process: the second call is a cache hit
    _cpu_bf16_flags()
    assert _cpu_bf16_flags.cache_info().hits >= 1
