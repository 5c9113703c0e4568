"""The weights pre-flight: a tag that cannot be downloaded fails at once, before torch and
open_clip are imported; anything that might work is left to the exact loaders."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from stale.core import hub
from stale.core.errors import StaleError


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "STALE_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    return tmp_path / "hub"


def test_cache_location_follows_the_hub_rules(monkeypatch, tmp_path):
    for v in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub.hf_hub_cache() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert hub.hf_hub_cache() == tmp_path / "x" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "h"))
    assert hub.hf_hub_cache() == tmp_path / "h" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub.hf_hub_cache() == tmp_path / "c"


def test_what_counts_as_a_tag(tmp_path):
    f = tmp_path / "w.pt"
    f.write_bytes(b"x")
    assert hub.is_tag("ViT-B-16", None) and hub.is_tag("ViT-B-16", "openai")
    assert not hub.is_tag("stale-offline", None) and not hub.is_tag("stale-test", None)
    assert not hub.is_tag("ViT-B-16", "random") and not hub.is_tag("ViT-B-16", str(f))
    assert not hub.is_tag("ViT-B-16", str(tmp_path / "missing.pt"))   # a missing file, not a tag


def test_offline_and_unreachable_fail_at_once(empty_cache, monkeypatch):
    calls = []
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: calls.append(1) or False)
    with pytest.raises(StaleError, match="cannot be reached.*local CLIP checkpoint"):
        hub.preflight_weights("ViT-B-16", None)
    assert calls == [1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StaleError, match="downloads are off.*no cached copy") as exc:
        hub.preflight_weights("ViT-B-16", "openai", "CLIP image weights")
    assert "ViT-B-16/openai" in str(exc.value) and str(empty_cache) in str(exc.value)
    assert calls == [1]                                  # offline: not even a probe
    hub.preflight_weights("stale-offline", None)         # local towers and files pass
    hub.preflight_weights("ViT-B-16", "random")


def test_a_cached_weight_file_defers_to_the_exact_loader(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snap = empty_cache / "models--timm--some_clip" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "open_clip_model.safetensors").write_bytes(b"x")
    assert hub.cached_weight_files() == [snap / "open_clip_model.safetensors"]
    hub.preflight_weights("ViT-B-16", None)              # no error: the loader decides


def test_reachable_hub_passes(empty_cache, monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: True)
    hub.preflight_weights("ViT-B-16", None)


@pytest.mark.parametrize("argv", [
    ["extract", "VIDEO", "--out", "OUT"],
    ["train", "tiny", "--set", "text.arch=ViT-B-16", "--out", "OUT"],
    ["detect", "VIDEO", "--classes", "a,b", "--out", "OUT"],
])
def test_cli_fails_within_five_seconds_with_one_line(tmp_path, argv):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not read before the weights are checked")
    argv = [str(video) if a == "VIDEO" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "stale", *argv], capture_output=True, text=True, env=env,
                          timeout=60)
    took = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "downloads are off" in lines[0] and "--weights" in lines[0], proc.stderr
    assert took < 5.0, f"took {took:.1f} s"
    assert not (tmp_path / "out").exists()


def test_train_preflight_default_arch_is_the_config_default():
    from stale.cli.train import DEFAULT_TEXT_ARCH
    from stale.text import TextEncoderConfig

    assert DEFAULT_TEXT_ARCH == TextEncoderConfig().arch
