import json
import time

import pytest
import torch

from stale.core.errors import StaleError
from stale.text.embed import template_token_ids
from stale.text.tokens import ClipTokenizer
from stale.text.tower import OFFLINE_SPEC, TEST_SPEC, TowerSpec, build_random_tower
from stale.text.weights import (ensure_offline_tower, load_checkpoint_file, load_text_tower,
                                offline_tower_path, save_tower)

NAMES = ["long jump", "cooking", "riding a horse"]


def encode(tower, names=NAMES):
    ids, eos = template_token_ids(names, "a video of {}.", ClipTokenizer())
    with torch.no_grad():
        return tower.encode_token_ids(ids, eos)


def test_saved_tower_round_trips_through_the_checkpoint_loader(tower, tmp_path):
    path = tmp_path / "tiny.pt"
    save_tower(tower, path)
    assert json.loads(path.with_suffix(".json").read_text())["model_cfg"]["text_cfg"]["heads"] == 2
    loaded = load_text_tower("ViT-B-16", str(path))   # same entry point as a real checkpoint
    assert loaded.spec == tower.spec
    assert torch.equal(encode(loaded), encode(tower))


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_full_open_clip_checkpoint_keeps_only_the_text_tower(tower, tmp_path, clip_ref, fmt):
    open_clip_model_with, clip_encode = clip_ref
    clip, cfg = open_clip_model_with(tower)
    path = tmp_path / f"open_clip_pytorch_model.{fmt}"
    if fmt == "pt":   # DataParallel-style keys inside a {"state_dict": ...} wrapper
        torch.save({"state_dict": {f"module.{k}": v for k, v in clip.state_dict().items()}}, path)
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    loaded = load_checkpoint_file(path)
    assert not any(k.startswith("visual") for k in loaded.state_dict())
    texts = [f"a video of {n}." for n in NAMES]
    torch.testing.assert_close(encode(loaded), clip_encode(clip, texts), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_openai_jit_archive_forces_quick_gelu_and_64_wide_heads(tmp_path):
    spec = TowerSpec(width=64, layers=1, heads=1, embed_dim=16, quick_gelu=True)
    src = build_random_tower(spec, 1).eval()

    class Wrap(torch.nn.Module):   # a TorchScript archive with OpenAI's parameter names
        def __init__(self, t):
            super().__init__()
            self.token_embedding, self.positional_embedding = t.token_embedding, t.positional_embedding
            self.transformer, self.ln_final, self.text_projection = t.transformer, t.ln_final, t.text_projection

        def forward(self, ids):
            return self.token_embedding(ids) @ self.text_projection[:, :1].expand(64, 64)

    path = tmp_path / "ViT-tiny.pt"
    torch.jit.trace(Wrap(src), torch.zeros(1, 3, dtype=torch.long)).save(str(path))
    loaded = load_text_tower("ViT-B-16", str(path))   # arch says GELU; the archive wins
    assert loaded.spec == spec
    assert torch.equal(encode(loaded), encode(src))


def test_offline_tag_fails_at_once_and_names_the_cause():
    import open_clip  # noqa: F401  (exclude the one-off import cost from the timing)

    start = time.perf_counter()
    with pytest.raises(StaleError) as err:
        load_text_tower("ViT-B-16", "openai")
    assert time.perf_counter() - start < 2.0
    msg = str(err.value)
    assert "HF_HUB_OFFLINE" in msg and "ViT-B-16/openai" in msg and "stale-offline" in msg
    with pytest.raises(StaleError, match="HF_HUB_OFFLINE"):
        load_text_tower("ViT-B-16", None)   # None = the arch's OpenAI weights


def test_offline_tower_is_cached_and_deterministic(tmp_path):
    a = ensure_offline_tower(tmp_path / "a")
    assert a == offline_tower_path(tmp_path / "a") and a.with_suffix(".json").is_file()
    mtime = a.stat().st_mtime_ns
    assert ensure_offline_tower(tmp_path / "a") == a and a.stat().st_mtime_ns == mtime
    b = ensure_offline_tower(tmp_path / "b")
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    tower = load_text_tower("stale-offline", None, cache_dir=tmp_path / "a")
    assert tower.spec == OFFLINE_SPEC
    assert torch.equal(tower.token_embedding.weight, sa["token_embedding.weight"])


def test_offline_tower_uses_the_cache_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STALE_CACHE_DIR", str(tmp_path / "env"))
    assert offline_tower_path().parent == tmp_path / "env"


def test_test_tower_is_seeded_in_memory():
    a = load_text_tower("stale-test", None, seed=4)
    b = build_random_tower(TEST_SPEC, 4)
    assert torch.equal(encode(a), encode(b))


def test_bad_weights_are_clear_errors(tmp_path, tower):
    with pytest.raises(StaleError, match="file not found"):
        load_text_tower("ViT-B-16", str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(StaleError, match="junk.pt: not a readable checkpoint"):
        load_text_tower("ViT-B-16", str(junk))
    other = tmp_path / "vision_only.pt"
    torch.save({"visual.proj": torch.zeros(2, 2)}, other)
    with pytest.raises(StaleError, match="missing 'token_embedding.weight'"):
        load_text_tower("ViT-B-16", str(other))
    nocfg = tmp_path / "nocfg.pt"
    torch.save(tower.state_dict(), nocfg)   # width 32 vs ViT-B-16's 512, no sidecar
    with pytest.raises(StaleError, match="text width 32 but the model config says 512"):
        load_text_tower("ViT-B-16", str(nocfg))
    with pytest.raises(StaleError, match="unknown text encoder arch"):
        load_text_tower("ViT-Q-99", str(nocfg))
    with pytest.raises(StaleError, match="not a pretrained tag"):
        load_text_tower("ViT-B-16", "no-such-tag")


def test_random_weights_build_the_arch_shape_seeded_and_without_download():
    import open_clip

    from stale.text.prompt import PromptedTextEncoder, TextEncoderConfig, build_text_encoder

    # ViT-S-16-alt has open_clip's smallest CLIP text tower (width 256, 10 layers, 4 heads):
    # every size differs from the defaults, so the shape must come from the arch config
    arch = "ViT-S-16-alt"
    cfg = open_clip.get_model_config(arch)
    a = load_text_tower(arch, "random", seed=5)
    b = load_text_tower(arch, "random", seed=5)
    c = load_text_tower(arch, "random", seed=6)
    assert (a.spec.width, a.spec.layers, a.spec.heads, a.spec.embed_dim) == (
        cfg["text_cfg"]["width"], cfg["text_cfg"]["layers"], cfg["text_cfg"]["heads"], cfg["embed_dim"])
    assert a.spec.quick_gelu == bool(cfg.get("quick_gelu", False))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.transformer.resblocks[0].attn.in_proj_weight,
                           c.transformer.resblocks[0].attn.in_proj_weight)
    assert float(a.text_projection.detach().std()) > 0   # every parameter initialised, none left zero
    assert load_text_tower("stale-test", "random", seed=1).spec == TEST_SPEC
    enc = build_text_encoder(TextEncoderConfig(arch=arch, weights="random", context_length=4))
    assert isinstance(enc, PromptedTextEncoder) and enc.embed_dim == cfg["embed_dim"]
    with pytest.raises(StaleError, match="unknown text encoder arch"):
        load_text_tower("no-such-arch", "random")
