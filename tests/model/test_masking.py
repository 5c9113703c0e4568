import math

import pytest
import torch

from stale.core.errors import StaleError
from stale.model.masking import (MaskingConfig, RepresentationMasking,
                                 straight_through_binarize)

B, T, C = 2, 16, 16


def _mask(kind="decoder", **kw):
    torch.manual_seed(0)
    return RepresentationMasking(MaskingConfig(kind=kind, num_heads=4, dropout=0.0, **kw), C)


def test_straight_through_forward_hard_backward_soft():
    p = torch.tensor([0.2, 0.5, 0.7, 0.49], requires_grad=True)
    w = straight_through_binarize(p, 0.5)
    assert w.tolist() == [0.0, 1.0, 1.0, 0.0]
    (w * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert p.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_decoder_shapes_and_eq4():
    m = _mask(num_queries=5)
    f = torch.randn(B, T, C)
    out = m(f)
    assert out.query_masks.shape == (B, 5, T)
    assert out.fg_logits.shape == (B, T)
    lq = out.query_masks
    assert ((lq > 0) & (lq < 1)).all()
    # Eq. 4 recomputed independently from L_q (weighted in log-odds space)
    w = m.query_weight.weight[0]
    expect = (torch.logit(lq.double()).float() * w[None, :, None]).sum(1) + m.query_weight.bias
    torch.testing.assert_close(out.fg_logits, expect)
    # Eq. 3 recomputed from the decoded mask embeddings
    b_q = m.mask_proj(m.decoder(m.queries.expand(B, -1, -1), f))
    torch.testing.assert_close(lq, torch.sigmoid(b_q @ f.transpose(1, 2) / math.sqrt(C)))
    hard = torch.sigmoid(out.fg_logits) >= 0.5
    assert torch.equal(out.fg_hard, hard)
    torch.testing.assert_close(out.fg_features, f * hard[..., None].float())


def test_gradient_reaches_mask_through_features_only_with_straight_through():
    m = _mask()
    m.cfg.straight_through = True
    f = torch.randn(B, T, C)
    out = m(f)
    out.fg_features.sum().backward()
    assert m.query_weight.weight.grad is not None
    assert m.query_weight.weight.grad.abs().sum() > 0
    assert m.queries.grad.abs().sum() > 0
    # default: the hard gate is a constant for the downstream branches (L_comp trains the mask)
    m = _mask()
    out = m(f.clone().requires_grad_())
    out.fg_features.sum().backward()
    assert m.query_weight.weight.grad is None or m.query_weight.weight.grad.abs().sum() == 0


def test_none_and_gt_and_cnn():
    f = torch.randn(B, T, C)
    out = _mask("none")(f)
    assert out.fg_hard.all() and not out.learned
    torch.testing.assert_close(out.fg_features, f)
    gt = (torch.rand(B, T) > 0.5).float()
    out = _mask("gt")(f, gt)
    assert torch.equal(out.fg_hard, gt.bool())
    assert not out.learned
    with pytest.raises(StaleError, match="gt_fg"):
        _mask("gt")(f)
    with pytest.raises(StaleError, match="shape"):
        _mask("gt")(f, gt[:, :3])
    out = _mask("cnn")(f)
    assert out.fg_logits.shape == (B, T) and out.learned


def test_bad_threshold():
    with pytest.raises(StaleError):
        MaskingConfig(theta_bin=1.0).validate()


def test_warmup_keeps_every_snippet_then_applies_the_gate():
    m = _mask(warmup_epochs=2)
    with torch.no_grad():
        m.query_weight.bias.fill_(-5.0)   # a predictor that drops everything
    f = torch.randn(B, T, C)
    m.set_epoch(1)
    out = m(f)
    assert out.fg_hard.all() and torch.equal(out.fg_features, f) and out.learned
    assert torch.sigmoid(out.fg_logits).max() < 0.5    # L_comp still sees the predictor
    m.set_epoch(2)
    assert not m(f).fg_hard.any()
    m.set_epoch(None)                                   # a trained model: gate applied
    assert not m(f).fg_hard.any()


def test_ground_truth_can_replace_the_learned_mask():
    m = _mask()
    f = torch.randn(B, T, C)
    gt = (torch.rand(B, T) > 0.5).float()
    out = m(f, gt, force_gt=True)
    assert torch.equal(out.fg_hard, gt.bool()) and not out.learned
    with pytest.raises(StaleError, match="gt_fg"):
        m(f, None, force_gt=True)
