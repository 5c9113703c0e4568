"""Checkpoints: round trip, validation of foreign/truncated files, and atomic saves."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from stale import __version__
from stale.training.checkpoint import FORMAT, load_checkpoint, load_weights, save_checkpoint, slim_state_dict
from stale.core.errors import StaleError


def _payload(epoch=0, scale=1.0):
    g = torch.Generator().manual_seed(epoch)
    return {"model": {"w": scale * torch.randn(64, 64, generator=g), "b": torch.arange(5)},
            "config": {"train": {"lr": 1e-4}}, "classes": {"train": ["a", "b"], "test": ["c"]},
            "epoch": epoch}


def _stray(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def test_round_trip_keeps_tensors_and_adds_format(tmp_path):
    p = _payload(3)
    save_checkpoint(tmp_path / "last.pt", p)
    got = load_checkpoint(tmp_path / "last.pt")
    assert got["format"] == FORMAT and got["epoch"] == 3 and got["classes"] == p["classes"]
    assert torch.equal(got["model"]["w"], p["model"]["w"]) and torch.equal(got["model"]["b"], p["model"]["b"])
    assert got["path"] == str(tmp_path / "last.pt")
    assert got["code_version"].startswith(__version__)
    assert _stray(tmp_path) == []


def test_payload_without_required_keys_is_refused(tmp_path):
    p = _payload()
    del p["classes"]
    with pytest.raises(ValueError, match="classes"):
        save_checkpoint(tmp_path / "x.pt", p)
    assert not (tmp_path / "x.pt").exists()


def test_run_folder_prefers_best_then_last(tmp_path):
    save_checkpoint(tmp_path / "last.pt", _payload(5))
    assert load_checkpoint(tmp_path)["epoch"] == 5
    save_checkpoint(tmp_path / "best.pt", _payload(2))
    assert load_checkpoint(tmp_path)["epoch"] == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StaleError, match="no best.pt or last.pt"):
        load_checkpoint(empty)
    with pytest.raises(StaleError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.0])
def test_truncated_checkpoint_is_a_stale_error(tmp_path, cut):
    save_checkpoint(tmp_path / "last.pt", _payload())
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(StaleError, match=r"last\.pt.*not a readable stale checkpoint"):
        load_checkpoint(tmp_path / "last.pt")


def test_foreign_files_are_stale_errors(tmp_path):
    torch.save({"model": {}, "epoch": 1}, tmp_path / "other.pt")  # a plain torch file
    with pytest.raises(StaleError, match="not a stale checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": FORMAT, "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(StaleError, match="lacks config, classes, epoch"):
        load_checkpoint(tmp_path / "partial.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(StaleError, match="text.pt"):
        load_checkpoint(tmp_path / "text.pt")


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch, exc):
    target = tmp_path / "last.pt"
    save_checkpoint(target, _payload(1))
    before = target.read_bytes()
    real_save = torch.save
    written = {}

    def half_then_crash(obj, f, *a, **kw):
        buf = io.BytesIO()
        real_save(obj, buf, *a, **kw)
        data = buf.getvalue()[: len(buf.getvalue()) // 2]   # a half-written file, then the crash
        if hasattr(f, "write"):   # saved through a file handle
            f.write(data)
            f.flush()
        else:
            Path(f).write_bytes(data)
        written["tmp"] = Path(getattr(f, "name", f))
        raise exc

    monkeypatch.setattr(torch, "save", half_then_crash)
    with pytest.raises(type(exc)):
        save_checkpoint(target, _payload(2, scale=3.0))
    monkeypatch.setattr(torch, "save", real_save)
    # the crash happened on a temporary file next to the target, which is gone now
    assert str(written["tmp"]) != str(target) and written["tmp"].parent == tmp_path
    assert not written["tmp"].exists()
    assert target.read_bytes() == before
    assert load_checkpoint(target)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


class _Tower(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.token_embedding = torch.nn.Embedding(50, 4)
        self.proj = torch.nn.Linear(4, 4)
        with torch.no_grad():
            self.token_embedding.weight.copy_(torch.randn(50, 4, generator=g))
        self.token_embedding.requires_grad_(False)


class _Model(torch.nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        self.text_encoder = torch.nn.Module()
        self.text_encoder.tower = _Tower(seed)
        self.head = torch.nn.Linear(4, 2)


def test_frozen_text_tower_parameters_are_left_out_and_checked(tmp_path):
    a = _Model(0)
    state, frozen = slim_state_dict(a)
    assert frozen["names"] == ["text_encoder.tower.token_embedding.weight"]
    assert "text_encoder.tower.token_embedding.weight" not in state
    assert "text_encoder.tower.proj.weight" in state and "head.weight" in state   # trainable: kept
    save_checkpoint(tmp_path / "w.pt", {**_payload(), "model": state, "frozen": frozen})
    ck = load_checkpoint(tmp_path / "w.pt")
    b = _Model(0)                                   # the same frozen weights rebuilt
    torch.nn.init.zeros_(b.head.weight)
    load_weights(b, ck)
    assert torch.equal(b.head.weight, a.head.weight)
    with pytest.raises(StaleError, match="not the ones this model was trained with"):
        load_weights(_Model(1), ck)                 # other frozen weights: refused
