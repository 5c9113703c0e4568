"""Shared fixtures: never touch the network or the user's cache; one small tower per session."""

import pytest
import torch

from stale.text.tower import TEST_SPEC, build_random_tower


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STALE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "stale-cache"))


@pytest.fixture(scope="session")
def tower():
    """The tiny seeded test tower (eval mode; tests must not modify it)."""
    return build_random_tower(TEST_SPEC, seed=3).eval()


@pytest.fixture
def clip_ref():
    """``(open_clip_model_with, clip_encode)`` helpers (see below)."""
    return open_clip_model_with, clip_encode


def open_clip_model_with(tower):
    """An open_clip ``CLIP`` (tiny vision tower) carrying ``tower``'s text weights: an
    independent implementation of CLIP's text encoding to compare against."""
    from open_clip.model import CLIP

    spec = tower.spec
    cfg = spec.to_model_cfg()
    clip = CLIP(embed_dim=cfg["embed_dim"], quick_gelu=cfg["quick_gelu"],
                vision_cfg={"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
                text_cfg=cfg["text_cfg"]).eval()
    missing, unexpected = clip.load_state_dict(tower.state_dict(), strict=False)
    assert not unexpected
    assert all(k.startswith("visual.") or k.startswith("logit_") for k in missing)
    return clip, cfg


def clip_encode(clip, texts):
    import open_clip

    with torch.no_grad():
        return clip.encode_text(open_clip.tokenize(texts))
