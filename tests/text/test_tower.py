import open_clip
import pytest
import torch

from stale.text.embed import template_token_ids
from stale.text.tokens import ClipTokenizer
from stale.text.tower import TEST_SPEC, ClipTextTower, TowerSpec, build_random_tower


TEXTS = ["a video of long jump.", "a video of playing guitar.", "a video of x."]
NAMES = ["long jump", "playing_guitar", "x"]


def test_random_init_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build_random_tower(TEST_SPEC, 5), build_random_tower(TEST_SPEC, 5)
    c = build_random_tower(TEST_SPEC, 6)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (ka, va), (kb, vb), (_, vc) in zip(a.state_dict().items(), b.state_dict().items(),
                                         c.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.token_embedding.weight, c.token_embedding.weight)
    # every parameter got a value (LayerNorm weights 1, matrices random)
    assert torch.all(a.ln_final.weight == 1)
    assert a.text_projection.std() > 0


def test_template_ids_match_open_clip_tokenize():
    ids, eos = template_token_ids(NAMES, "a video of {}.", ClipTokenizer())
    ref = open_clip.tokenize(TEXTS)
    assert torch.equal(ids, ref[:, :ids.shape[1]])
    assert torch.all(ref[:, ids.shape[1]:] == 0)
    assert torch.equal(eos, ref.argmax(-1))


def test_short_computation_equals_full_77_and_open_clip(tower, clip_ref):
    open_clip_model_with, clip_encode = clip_ref
    ids, eos = template_token_ids(NAMES, "a video of {}.", ClipTokenizer())
    assert ids.shape[1] < 77
    full = torch.zeros(len(NAMES), 77, dtype=torch.long)
    full[:, :ids.shape[1]] = ids
    with torch.no_grad():
        short = tower.encode_token_ids(ids, eos)
        long = tower.encode_token_ids(full, eos)
    assert short.shape == (3, TEST_SPEC.embed_dim)
    torch.testing.assert_close(short, long, rtol=1e-5, atol=1e-6)
    clip, _ = open_clip_model_with(tower)
    torch.testing.assert_close(short, clip_encode(clip, TEXTS), rtol=1e-5, atol=1e-6)


def test_quick_gelu_changes_the_activation(tower, clip_ref):
    open_clip_model_with, clip_encode = clip_ref
    quick = ClipTextTower(TowerSpec(**{**TEST_SPEC.__dict__, "quick_gelu": True})).eval()
    quick.load_state_dict(tower.state_dict())
    ids, eos = template_token_ids(NAMES, "{}", ClipTokenizer())
    with torch.no_grad():
        assert not torch.allclose(quick.encode_token_ids(ids, eos), tower.encode_token_ids(ids, eos))
    clip, _ = open_clip_model_with(quick)
    with torch.no_grad():
        torch.testing.assert_close(quick.encode_token_ids(ids, eos),
                                   clip_encode(clip, [n.replace("_", " ") for n in NAMES]))


def test_too_long_input_is_a_stale_error(tower):
    from stale.errors import StaleError

    with pytest.raises(StaleError, match="context length"):
        tower.encode_embeddings(torch.zeros(1, 78, TEST_SPEC.width), torch.tensor([77]))
