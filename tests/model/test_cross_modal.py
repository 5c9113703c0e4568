import torch

from stale.model.cross_modal import CrossModalAdapter, CrossModalConfig

B, T, C, K1 = 3, 16, 16, 4


def _adapter(**kw):
    torch.manual_seed(0)
    return CrossModalAdapter(CrossModalConfig(num_heads=4, dropout=0.0, **kw), C).eval()


def test_shape_alpha_init_and_residual():
    ad = _adapter()
    assert torch.allclose(ad.alpha, torch.full((C,), 1e-3))
    text = torch.randn(K1, C)
    feats = torch.randn(B, T, C)
    hard = torch.rand(B, T) > 0.3
    out = ad(text, feats * hard[..., None], hard)
    assert out.shape == (B, K1, C)
    # residual with small alpha: the language prior is kept nearly unchanged
    diff = out - text
    assert diff.abs().max() < 1e-2 and diff.abs().max() > 0


def test_background_snippets_do_not_influence():
    ad = _adapter(alpha_init=1.0)
    text = torch.randn(K1, C)
    feats = torch.randn(B, T, C)
    hard = torch.zeros(B, T, dtype=torch.bool)
    hard[:, :5] = True
    a = ad(text, feats, hard)
    feats2 = feats.clone()
    feats2[:, 5:] = torch.randn(B, T - 5, C) * 10
    b = ad(text, feats2, hard)
    torch.testing.assert_close(a, b)
    feats3 = feats.clone()
    feats3[:, :5] += 1.0
    assert not torch.allclose(ad(text, feats3, hard), a)


def test_video_without_foreground_is_finite_and_ignores_features():
    ad = _adapter(alpha_init=1.0)
    ad.train(False)
    text = torch.randn(K1, C, requires_grad=True)
    feats = torch.randn(B, T, C, requires_grad=True)
    hard = torch.ones(B, T, dtype=torch.bool)
    hard[1] = False
    out = ad(text, feats, hard)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(feats.grad).all() and torch.isfinite(text.grad).all()
    assert feats.grad[1].abs().sum() == 0
    # the fg-less video equals the adapter run with the cross-attention removed
    other = ad(text, torch.randn(B, T, C), hard)
    torch.testing.assert_close(out[1], other[1])


def test_disabled_returns_text():
    ad = CrossModalAdapter(CrossModalConfig(enabled=False), C)
    text = torch.randn(K1, C)
    out = ad(text, torch.randn(B, T, C), torch.ones(B, T, dtype=torch.bool))
    assert out.shape == (B, K1, C)
    assert torch.equal(out[2], text)
    assert len(list(ad.parameters())) == 0


def test_inference_shares_the_text_self_attention_and_equals_the_per_video_pass():
    """Eval mode runs the text self-attention once per class set; training mode (dropout off)
    runs it per video: both give the same adapted text, video by video."""
    ad = _adapter()
    ad.alpha.data.fill_(1.0)                      # make the adaptation visible
    text = torch.randn(K1, C)
    feats = torch.randn(B, T, C)
    hard = torch.rand(B, T) > 0.3
    with torch.no_grad():
        shared = ad(text, feats * hard[..., None], hard)
        ad.train()                                # dropout is 0: the same maths per video
        per_video = ad(text, feats * hard[..., None], hard)
        ad.eval()
        single = torch.stack([ad(text, feats[b:b + 1] * hard[b:b + 1, :, None], hard[b:b + 1])[0]
                              for b in range(B)])
    torch.testing.assert_close(shared, per_video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared, single, atol=1e-5, rtol=1e-5)
    assert (shared - text).abs().max() > 0.1
