import json

import numpy as np
import pytest
import torch

from stale.cli import main
from stale.core.errors import StaleError
from stale.text.embed import embed_class_names
from stale.text.weights import save_tower

NAMES = ["long jump", "cooking", "Playing_guitar"]


def test_embeddings_are_normalised_deterministic_and_match_open_clip(tower, clip_ref):
    open_clip_model_with, clip_encode = clip_ref
    e = embed_class_names(NAMES, tower=tower, template="a photo of {}, a type of action.")
    assert e.shape == (3, tower.embed_dim) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-6)
    clip, _ = open_clip_model_with(tower)
    want = torch.nn.functional.normalize(clip_encode(
        clip, [f"a photo of {n.replace('_', ' ')}, a type of action." for n in NAMES]), dim=-1)
    np.testing.assert_allclose(e, want.numpy(), rtol=1e-5, atol=1e-6)


def test_default_uses_the_cached_offline_tower(tmp_path):
    a = embed_class_names(NAMES, cache_dir=tmp_path)
    b = embed_class_names(NAMES, cache_dir=tmp_path)
    assert a.shape == (3, 128) and np.array_equal(a, b)
    assert not np.allclose(a[0], a[1])
    other = embed_class_names(NAMES, cache_dir=tmp_path, template="{}")
    assert not np.allclose(a, other)


def test_bad_template_and_long_names(tower):
    with pytest.raises(StaleError, match="exactly once"):
        embed_class_names(NAMES, tower=tower, template="a video")
    with pytest.raises(StaleError, match="class 1 'cat cat"):
        embed_class_names(["ok", " ".join(["cat"] * 80)], tower=tower)
    with pytest.raises(StaleError, match="empty"):
        embed_class_names([], tower=tower)


def test_text_embed_cli_end_to_end(tmp_path, tower, capsys):
    ckpt = tmp_path / "tiny.pt"
    save_tower(tower, ckpt)
    out = tmp_path / "out" / "emb.npy"
    rc = main(["text-embed", "--classes", "long jump, cooking ,Playing_guitar", "--weights", str(ckpt),
               "--template", "a clip of {}.", "--out", str(out)])
    assert rc == 0 and "3 x 24" in capsys.readouterr().out
    emb = np.load(out)
    np.testing.assert_array_equal(emb, embed_class_names(NAMES, tower=tower, template="a clip of {}."))
    meta = json.loads((tmp_path / "out" / "emb.classes.json").read_text())
    assert meta["classes"] == NAMES and meta["template"] == "a clip of {}." and meta["embed_dim"] == 24

    listing = tmp_path / "classes.txt"
    listing.write_text("long jump\n\ncooking\nPlaying_guitar\n")
    out2 = tmp_path / "emb2.npy"
    assert main(["text-embed", "--classes-file", str(listing), "--out", str(out2),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    np.testing.assert_array_equal(np.load(out2), embed_class_names(NAMES, cache_dir=tmp_path / "cache"))
    as_json = tmp_path / "classes.json"
    as_json.write_text(json.dumps(NAMES))
    assert main(["text-embed", "--classes-file", str(as_json), "--out", str(out2), "--overwrite",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert json.loads((tmp_path / "emb2.classes.json").read_text())["arch"] == "stale-offline"


def test_text_embed_cli_errors_exit_2(tmp_path, capsys):
    assert main(["text-embed", "--classes", "a,a", "--out", str(tmp_path / "e.npy"),
                 "--cache-dir", str(tmp_path)]) == 2
    assert "--classes: class 'a' is listed twice" in capsys.readouterr().err
    assert main(["text-embed", "--classes", "a", "--out", str(tmp_path / "e.txt")]) == 2
    assert main(["text-embed", "--classes", "a", "--weights", "openai", "--out",
                 str(tmp_path / "e.npy")]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err
    assert not (tmp_path / "e.npy").exists()
