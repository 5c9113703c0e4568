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
    from stale.core.errors import StaleError

    with pytest.raises(StaleError, match="context length"):
        tower.encode_embeddings(torch.zeros(1, 78, TEST_SPEC.width), torch.tensor([77]))


def _tower_grads(tower, x, eos):
    tower.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = tower.encode_embeddings(x, eos)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in tower.named_parameters()
                                  if p.grad is not None}


def test_grad_checkpointing_gives_the_same_outputs_and_gradients(monkeypatch):
    import stale.text.tower as tower_mod

    monkeypatch.setattr(tower_mod, "_CHECKPOINT_TOKENS", 18)   # 9-token prompts: 3 groups of 2, 2, 1
    tower = build_random_tower(TEST_SPEC, seed=4).train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 9, TEST_SPEC.width, generator=gen)
    eos = torch.tensor([8, 3, 5, 8, 1])
    tower.grad_checkpointing = False
    out0, gx0, gp0 = _tower_grads(tower, x, eos)
    tower.grad_checkpointing = True
    calls = []
    for blk in tower.transformer.resblocks:   # counts calls, recomputation included
        blk.forward = (lambda f: lambda *a, **k: (calls.append(1), f(*a, **k))[1])(blk.forward)
    out1, gx1, gp1 = _tower_grads(tower, x, eos)
    # each block ran twice per prompt group: forward, then recomputed in backward (weight
    # gradients are summed over the groups: float32 rounding differs, hence rtol 1e-5)
    assert len(calls) == 2 * 3 * TEST_SPEC.layers
    torch.testing.assert_close(out1, out0, rtol=0, atol=0)
    torch.testing.assert_close(gx1, gx0, rtol=1e-5, atol=1e-6)
    assert gp0.keys() == gp1.keys() and any(k.startswith("transformer.") for k in gp0)
    for k in gp0:
        torch.testing.assert_close(gp1[k], gp0[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    # no graph recorded (inference): no recomputation, same values
    calls.clear()
    with torch.no_grad():
        torch.testing.assert_close(tower.encode_embeddings(x, eos), out0, rtol=0, atol=0)
    assert len(calls) == TEST_SPEC.layers
    assert tower.state_dict().keys() == build_random_tower(TEST_SPEC).state_dict().keys()


def test_text_config_switches_checkpointing():
    from stale.text.prompt import PromptedTextEncoder, TextEncoderConfig

    assert TextEncoderConfig().grad_checkpointing  # on by default
    on = PromptedTextEncoder(build_random_tower(TEST_SPEC), TextEncoderConfig(context_length=2))
    off = PromptedTextEncoder(build_random_tower(TEST_SPEC),
                              TextEncoderConfig(context_length=2, grad_checkpointing=False))
    assert on.tower.grad_checkpointing and not off.tower.grad_checkpointing
    torch.testing.assert_close(on(["a", "b"]), off(["a", "b"]), rtol=0, atol=0)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_shared_prefix_equals_the_plain_computation(monkeypatch, checkpointing):
    """The prefix cache gives the plain path's features and the same gradients for everything
    that produces the inputs (a shared prefix parameter, per-prompt rows, the tower)."""
    import stale.text.tower as tower_mod

    monkeypatch.setattr(tower_mod, "_CHECKPOINT_TOKENS", 10)   # 5 suffix positions: groups of 2
    tower = build_random_tower(TEST_SPEC, seed=7).train()
    tower.grad_checkpointing = checkpointing
    gen = torch.Generator().manual_seed(1)
    S, P, L = 4, 5, 9
    prefix = torch.randn(S, TEST_SPEC.width, generator=gen).requires_grad_()
    rows = torch.randn(P, L - S, TEST_SPEC.width, generator=gen).requires_grad_()
    eos = torch.tensor([8, 4, 6, 8, 5])

    def run(shared: int):
        tower.zero_grad(set_to_none=True)
        prefix.grad = rows.grad = None
        x = torch.cat([prefix.expand(P, -1, -1), rows], dim=1)
        out = tower.encode_embeddings(x, eos, shared_prefix=shared)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = {k: p.grad.clone() for k, p in tower.named_parameters() if p.grad is not None}
        return out.detach(), prefix.grad.clone(), rows.grad.clone(), grads

    out0, gp0, gr0, g0 = run(0)
    out1, gp1, gr1, g1 = run(S)
    torch.testing.assert_close(out1, out0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gp1, gp0, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gr1, gr0, rtol=1e-4, atol=1e-6)
    assert g0.keys() == g1.keys() and len(g0) > 4
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    # a prefix that reaches an EOS (here: position 4 of prompt 1) is not shared: plain path
    torch.testing.assert_close(tower.encode_embeddings(torch.cat([prefix.expand(P, -1, -1), rows], 1), eos,
                                                       shared_prefix=S + 1).detach(), out0, rtol=1e-5, atol=1e-6)


def test_shared_prefix_does_less_token_work():
    """The MLP of each block sees S + P * (L - S) positions instead of P * L."""
    tower = build_random_tower(TEST_SPEC, seed=7).eval()
    seen = []
    blk = tower.transformer.resblocks[0]
    handle = blk.mlp.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[:-1].numel()))
    x = torch.randn(5, 9, TEST_SPEC.width)
    x[:, :4] = x[:1, :4]
    eos = torch.full((5,), 8)
    with torch.no_grad():
        tower.encode_embeddings(x, eos, shared_prefix=0)
        tower.encode_embeddings(x, eos, shared_prefix=4)
    handle.remove()
    assert seen[0] == 5 * 9 and sum(seen[1:]) == 4 + 5 * 5
