import pytest
import torch

from stale.core.config import from_dict, to_dict
from stale.core.errors import StaleError
from stale.text.prompt import PromptedTextEncoder, TextEncoderConfig, build_text_encoder
from stale.text.tokens import ClipTokenizer
from stale.text.tower import TEST_SPEC, build_random_tower

NAMES = ["long jump", "playing guitar", "x"]


def make(n_ctx=6, position="end", finetune=False, tower_seed=3, **kw):
    cfg = TextEncoderConfig(arch="stale-test", context_length=n_ctx, class_position=position,
                            finetune=finetune, **kw)
    return PromptedTextEncoder(build_random_tower(TEST_SPEC, tower_seed), cfg)


def token_rows(enc, names):
    tok = ClipTokenizer()
    return [tok.encode(n) for n in names]


@pytest.mark.parametrize("position", ["end", "middle"])
def test_layout_puts_tokens_where_documented(position):
    enc = make(n_ctx=6, position=position)
    ids, ctx_slot, is_bg, eos = enc.prompt_layout(NAMES)
    tok = ClipTokenizer()
    names_ids = token_rows(enc, NAMES) + [[None]]
    half = 6 if position == "end" else 3
    assert ids.shape[0] == len(NAMES) + 1
    for k, name_ids in enumerate(names_ids):
        m = len(name_ids)
        row_ids, row_ctx = ids[k].tolist(), ctx_slot[k].tolist()
        assert row_ids[0] == tok.sot and row_ctx[0] == -1
        assert row_ctx[1:1 + half] == list(range(half))
        name_slice = slice(1 + half, 1 + half + m)
        if k == len(NAMES):   # background: one learned vector where the name would be
            assert is_bg[k].nonzero().flatten().tolist() == [1 + half]
        else:
            assert row_ids[name_slice] == name_ids and not is_bg[k].any()
        rest = 1 + half + m
        assert row_ctx[rest:rest + 6 - half] == list(range(half, 6))
        assert row_ids[rest + 6 - half] == tok.period[0]
        assert row_ids[rest + 7 - half] == tok.eot and eos[k] == rest + 7 - half
        assert all(v == -1 for v in row_ctx[rest + 6 - half:])


@pytest.mark.parametrize("position,text", [("end", "a video of {}."), ("middle", "a video {} of today.")])
def test_prompt_with_word_context_equals_written_sentence(position, text, clip_ref):
    """Context vectors set to word embeddings reproduce open_clip's encoding of that sentence."""
    open_clip_model_with, clip_encode = clip_ref
    enc = make(n_ctx=3 if position == "end" else 4, position=position).eval()
    words = ["a", "video", "of"] if position == "end" else ["a", "video", "of", "today"]
    tok = ClipTokenizer()
    with torch.no_grad():
        enc.ctx.copy_(enc.tower.token_embedding.weight[[tok.encode(w)[0] for w in words]])
    got = enc(NAMES)
    clip, _ = open_clip_model_with(enc.tower)
    want = clip_encode(clip, [text.format(n) for n in NAMES])
    assert got.shape == (len(NAMES) + 1, enc.embed_dim) and enc.embed_dim == TEST_SPEC.embed_dim
    torch.testing.assert_close(got[:-1], want, rtol=1e-5, atol=1e-6)


def test_short_computation_equals_full_length(tower):
    enc = make(n_ctx=50, position="middle")
    x, eos = enc.prompt_embeddings(NAMES)
    assert x.shape[1] < 77
    full = torch.cat([x, enc.tower.token_embedding.weight[0].expand(x.shape[0], 77 - x.shape[1], -1)], 1)
    with torch.no_grad():
        torch.testing.assert_close(enc.tower.encode_embeddings(x, eos),
                                   enc.tower.encode_embeddings(full, eos), rtol=1e-5, atol=1e-6)


def test_prompt_longer_than_77_tokens_names_the_class():
    enc = make(n_ctx=50)
    fits = " ".join(["cat"] * 24)        # 1 + 50 + 24 + 1 + 1 = 77 tokens
    assert enc([fits]).shape[0] == 2
    with pytest.raises(StaleError, match=r"class 1 'cat cat.*78 tokens.*allows 77"):
        enc(["ok", fits + " cat"])


def test_background_row_follows_its_embedding():
    enc = make().eval()
    before = enc(NAMES)
    with torch.no_grad():
        enc.bg.add_(torch.randn(enc.bg.shape, generator=torch.Generator().manual_seed(0)))
    after = enc(NAMES)
    torch.testing.assert_close(after[:-1], before[:-1])
    assert (after[-1] - before[-1]).abs().max() > 1e-3


@pytest.mark.parametrize("finetune", [False, True])
def test_gradients_reach_context_background_and_tower_only_if_finetuned(finetune):
    enc = make(finetune=finetune).train()
    enc(NAMES).pow(2).sum().backward()
    assert enc.ctx.grad is not None and enc.ctx.grad.abs().sum() > 0
    assert enc.bg.grad is not None and enc.bg.grad.abs().sum() > 0
    assert enc.tower.token_embedding.weight.grad is None   # vocabulary always frozen
    tower_grads = [p.grad for n, p in enc.tower.named_parameters() if not n.startswith("token_")]
    if finetune:
        assert all(g is not None and g.abs().sum() > 0 for g in tower_grads)
    else:
        assert all(g is None for g in tower_grads)


def test_eval_cache_hits_and_invalidates():
    enc = make()
    calls = []
    inner = enc.tower.encode_embeddings
    enc.tower.encode_embeddings = lambda x, e, *a: calls.append(1) or inner(x, e, *a)
    enc.eval()
    a = enc(NAMES)
    b = enc(list(NAMES))
    assert len(calls) == 1 and torch.equal(a, b) and not a.requires_grad
    a.zero_()                                     # callers cannot corrupt the cache
    assert torch.equal(enc(NAMES), b) and len(calls) == 1
    enc(NAMES[:2])                                 # another class list: computed, both cached
    enc(NAMES)
    assert len(calls) == 2
    enc.eval()                                     # eval() again (each prediction call): kept
    enc(NAMES)
    assert len(calls) == 2
    enc.train().eval()                             # train() drops the cache
    enc(NAMES)
    assert len(calls) == 3
    with torch.no_grad():                          # an in-place update (optimizer step) too
        enc.ctx.mul_(2)
    c = enc(NAMES)
    assert len(calls) == 4 and not torch.equal(c, b)
    enc.train()
    enc(NAMES), enc(NAMES)                         # training: every call recomputes
    assert len(calls) == 6


def test_ctx_and_bg_initialisation_from_words():
    enc = make(n_ctx=6, position="end", ctx_init="a video of a", bg_init="background scene")
    emb = enc.tower.token_embedding.weight
    tok = ClipTokenizer()
    torch.testing.assert_close(enc.ctx[2:].detach(), emb[tok.encode("a video of a")])
    assert enc.ctx[:2].std() > 0 and not torch.equal(enc.ctx[0], emb[tok.encode("a")[0]])
    torch.testing.assert_close(enc.bg.detach(), emb[tok.encode("background scene")].mean(0))
    mid = make(n_ctx=6, position="middle", ctx_init="a video")
    torch.testing.assert_close(mid.ctx[1:3].detach(), emb[tok.encode("a video")])
    with pytest.raises(StaleError, match="context slots"):
        make(n_ctx=4, position="middle", ctx_init="a video of a")
    same = make(n_ctx=6, seed=1), make(n_ctx=6, seed=1), make(n_ctx=6, seed=2)
    assert torch.equal(same[0].ctx, same[1].ctx) and not torch.equal(same[0].ctx, same[2].ctx)


def test_bad_class_lists_are_errors():
    enc = make()
    with pytest.raises(StaleError, match="appears twice"):
        enc(["a", "b", "a"])
    with pytest.raises(StaleError, match="not a single string"):
        enc("long jump")
    with pytest.raises(StaleError, match="empty after tokenisation"):
        enc(["ok", "  "])
    assert enc([]).shape == (1, enc.embed_dim)   # background only


def test_config_round_trip_and_build():
    cfg = from_dict(TextEncoderConfig, {"arch": "stale-test", "context_length": 8,
                                        "class_position": "end"})
    assert from_dict(TextEncoderConfig, to_dict(cfg)) == cfg
    with pytest.raises(StaleError, match="class_position"):
        from_dict(TextEncoderConfig, {"class_position": "start"})
    with pytest.raises(StaleError, match="context_length"):
        from_dict(TextEncoderConfig, {"context_length": -1})
    enc = build_text_encoder(cfg)
    assert enc(NAMES).shape == (4, TEST_SPEC.embed_dim)
    assert TextEncoderConfig().context_length == 50 and TextEncoderConfig().class_position == "middle"


def test_truncate_name_cuts_long_names_and_counts_them():
    tower = build_random_tower(TEST_SPEC, 0)
    long = "a very long class name " * 8
    enc = PromptedTextEncoder(tower, TextEncoderConfig(arch="stale-test", context_length=60, truncate="name"))
    ids, ctx_slot, is_bg, eos = enc.prompt_layout([long.strip(), "jump"])
    assert ids.shape[1] == 77 and long.strip() in enc.truncated and "jump" not in enc.truncated
    assert enc(["jump", long.strip()]).shape == (3, TEST_SPEC.embed_dim)
    with pytest.raises(StaleError, match="text.truncate=name"):
        PromptedTextEncoder(build_random_tower(TEST_SPEC, 0),
                            TextEncoderConfig(arch="stale-test", context_length=60)).prompt_layout([long])


def test_no_text_encoder_is_a_bag_of_token_embeddings():
    tower = build_random_tower(TEST_SPEC, 0)
    enc = PromptedTextEncoder(tower, TextEncoderConfig(arch="stale-test", encoder="none", finetune=False))
    enc.train()
    out = enc(["high jump", "long jump", "swim"])
    assert out.shape == (4, TEST_SPEC.embed_dim)
    tok = ClipTokenizer()
    emb = tower.token_embedding.weight
    want = emb[torch.tensor(tok.encode("high jump"))].mean(0) @ tower.text_projection
    torch.testing.assert_close(out[0], want, rtol=1e-5, atol=1e-6)   # initialised as CLIP's projection
    out.sum().backward()
    assert enc.bow_proj.weight.grad.abs().sum() > 0 and enc.bg.grad.abs().sum() > 0
    assert all(p.grad is None for p in tower.parameters())   # the vocabulary stays frozen


@pytest.mark.parametrize("position", ["end", "middle"])
def test_prompts_share_their_prefix_and_match_the_plain_tower_pass(position):
    """Every prompt's first ``shared_prefix`` embeddings are identical (what makes the tower's
    prefix cache exact), and the encoder's features and context gradient equal the plain pass."""
    from stale.text.tower import TEST_SPEC, build_random_tower

    enc = PromptedTextEncoder(build_random_tower(TEST_SPEC, seed=2),
                              TextEncoderConfig(context_length=6, class_position=position)).train()
    names = ["long jump", "a", "playing the guitar well"]
    x, eos = enc.prompt_embeddings(names)
    S = enc.shared_prefix
    assert S == (7 if position == "end" else 4)
    assert torch.equal(x[:, :S], x[:1, :S].expand_as(x[:, :S])) and not torch.equal(x[:, S], x[:1, S].expand_as(x[:, S]))
    feats = enc(names)
    feats.square().sum().backward()
    g_shared = enc.ctx.grad.clone()
    enc.zero_grad(set_to_none=True)
    x, eos = enc.prompt_embeddings(names)
    plain = enc.tower.encode_embeddings(x, eos, shared_prefix=0)
    plain.square().sum().backward()
    torch.testing.assert_close(feats.detach(), plain.detach(), rtol=1e-5, atol=1e-6)
    # float32 summation order differs (the prefix's gradient is one sum over prompts)
    torch.testing.assert_close(g_shared, enc.ctx.grad, rtol=1e-4, atol=1e-5 * float(g_shared.abs().max()))
    off = PromptedTextEncoder(build_random_tower(TEST_SPEC, seed=2),
                              TextEncoderConfig(context_length=6, class_position=position, share_prefix=False))
    assert off.shared_prefix == 0
