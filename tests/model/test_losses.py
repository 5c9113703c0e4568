import dataclasses
import math

import pytest
import torch

from stale.core.errors import StaleError
from stale.model.outputs import ModelOutput, Targets
from stale.model.losses import (LossConfig, STALELoss, classification_loss, completeness_loss,
                                consistency_loss, mask_loss)


def _sp(x):
    return math.log1p(math.exp(x))


def test_classification_loss_hand_computed():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    labels = torch.tensor([[0, 2]])
    l1 = -math.log(math.exp(2) / (math.exp(2) + 2))
    l2 = -math.log(1 / (math.e + 2))
    assert classification_loss(logits, labels).item() == pytest.approx((l1 + l2) / 2, rel=1e-6)
    w = torch.tensor([1.0, 1.0, 3.0])
    got = classification_loss(logits, labels, w).item()
    assert got == pytest.approx((l1 + 3 * l2) / 4, rel=1e-6)
    with pytest.raises(StaleError, match="snippet_labels"):
        classification_loss(logits, torch.tensor([[0, 3]]))
    with pytest.raises(StaleError, match="class_weights"):
        classification_loss(logits, labels, torch.ones(2))


def test_mask_loss_hand_computed():
    # one video, T=3; rows 0 and 1 are foreground, row 2 background (ignored)
    x = torch.tensor([[[1.0, -1.0, 0.0], [2.0, 0.5, -2.0], [9.0, 9.0, 9.0]]])
    g = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    fg = torch.tensor([[1.0, 1.0, 0.0]])
    fg_terms = [_sp(-1.0), _sp(-2.0), _sp(-0.5)]
    bg_terms = [_sp(-1.0), _sp(0.0), _sp(-2.0)]
    bce = sum(fg_terms) / 3 + sum(bg_terms) / 3

    def sig(v):
        return 1 / (1 + math.exp(-v))

    def dice(row_x, row_g):
        m = [sig(v) for v in row_x]
        inter = sum(a * b for a, b in zip(m, row_g))
        return 1 - 2 * inter / (sum(a * a for a in m) + sum(b * b for b in row_g))

    d = (dice([1.0, -1.0, 0.0], [1, 0, 0]) + dice([2.0, 0.5, -2.0], [1, 1, 0])) / 2
    got = mask_loss(x, g, fg, lambda_dice=0.4).item()
    assert got == pytest.approx(bce + 0.4 * d, rel=1e-5)


def test_mask_loss_is_a_mean_of_per_video_losses():
    # video 0 as in the hand-computed test; video 1 has a different fg/bg balance; video 2 none
    x = torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(0))
    g = torch.zeros(3, 3, 3)
    g[0, 0, 0] = g[0, 1, :2] = 1
    g[1, 2] = 1                     # row 2 of video 1 is all foreground: n_bg = 0 in that video
    fg = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    per_video = [mask_loss(x[i:i + 1], g[i:i + 1], fg[i:i + 1]) for i in range(2)]
    got = mask_loss(x, g, fg)
    assert got.item() == pytest.approx((per_video[0] + per_video[1]).item() / 3, rel=1e-6)
    # a batch-pooled balance would weigh video 1's 3 foreground entries against video 0's 3
    # foreground / 3 background entries together, giving a different value
    sp_bg = ((1 - g[:2]) * fg[:2, :, None] * torch.nn.functional.softplus(x[:2])).sum() / 3
    sp_fg = (g[:2] * fg[:2, :, None] * torch.nn.functional.softplus(-x[:2])).sum() / 6
    assert abs(got.item() - (sp_fg + sp_bg).item()) > 1e-3


def test_mask_loss_perfect_prediction_is_near_zero():
    g = torch.tensor([[[1.0, 1.0, 0.0, 0.0]] * 4])
    x = (g * 2 - 1) * 30
    assert mask_loss(x, g, torch.ones(1, 4)).item() < 1e-6


def test_completeness_loss_hand_computed():
    x = torch.tensor([[0.0, 3.0, -1.0]])
    g = torch.tensor([[1.0, 0.0, 0.0]])
    expect = (_sp(-0.0) + _sp(3.0) + _sp(-1.0)) / 3
    assert completeness_loss(x, g).item() == pytest.approx(expect, rel=1e-6)


def test_consistency_loss_hand_computed():
    T = 4
    # video 0: action confidence high at snippets 0, 1; mask diagonal confident at 2, 3
    cls = torch.full((2, T, 3), -10.0)
    cls[0, 0, 0] = cls[0, 1, 1] = 10.0
    cls[0, 2:, 2] = 10.0                       # background
    cls[1, :, 2] = 10.0                        # video 1: all background -> skipped
    m = torch.full((2, T, T), -10.0)
    m[0, 2, 2] = m[0, 3, 3] = 10.0
    m[1] = 10.0
    fc = torch.randn(2, T, 5)
    fm = torch.randn(2, T, 5)
    got = consistency_loss(cls, m, fc, fm, topk=10, class_threshold=0.1, mask_threshold=0.5)
    a = fc[0, :2].mean(0)
    b = fm[0, 2:].mean(0)
    # mean over both videos; the skipped video 1 contributes 0
    expect = (1 - torch.dot(a, b) / (a.norm() * b.norm())) / 2
    assert got.item() == pytest.approx(expect.item(), rel=1e-5)
    # top-k keeps only the most confident snippet
    cls[0, 0, 0] = 5.0
    got1 = consistency_loss(cls, m, fc, fm, topk=1)
    b1 = fm[0, 2] if m[0, 2, 2] >= m[0, 3, 3] else fm[0, 3]
    a1 = fc[0, 1]
    expect1 = (1 - torch.dot(a1, b1) / (a1.norm() * b1.norm())) / 2
    assert got1.item() == pytest.approx(expect1.item(), rel=1e-5)


def _out_targets(B=2, T=6, K=3, fg_rows=None, requires_grad=True):
    torch.manual_seed(0)
    fg_logits = torch.randn(B, T, requires_grad=requires_grad)
    out = ModelOutput(
        class_logits=torch.randn(B, T, K + 1, requires_grad=requires_grad),
        mask_logits=torch.randn(B, T, T, requires_grad=requires_grad),
        fg_logits=fg_logits, fg_hard=fg_logits.detach() > 0, fg_weight=(fg_logits.detach() > 0).float(),
        fg_learned=True, text_features=torch.zeros(B, K + 1, 4),
        const_clf_feats=torch.randn(B, T, 4, requires_grad=requires_grad),
        const_mask_feats=torch.randn(B, T, 4, requires_grad=requires_grad),
        logit_scale=torch.tensor(10.0))
    fg = torch.zeros(B, T)
    if fg_rows is not None:
        fg[:, fg_rows] = 1
    masks = fg[:, :, None] * fg[:, None, :]
    labels = torch.where(fg > 0, torch.zeros_like(fg), torch.full_like(fg, K)).long()
    return out, Targets(labels, masks, fg)


def test_total_is_weighted_sum():
    out, tg = _out_targets(fg_rows=[1, 2])
    cfg = LossConfig(w_cls=0.5, w_mask=2.0, w_comp=3.0, w_const=0.25)
    terms = STALELoss(cfg)(out, tg)
    expect = (0.5 * terms.cls + 2 * terms.mask + 3 * terms.comp
              + 0.25 * terms.const)
    torch.testing.assert_close(terms.total, expect)
    assert set(terms.values()) == {"total", "cls", "mask", "comp", "const", "align", "prompt"}


@pytest.mark.parametrize("fg_rows", [None, [0, 1, 2, 3, 4, 5]])
def test_no_nan_empty_or_full_foreground(fg_rows):
    out, tg = _out_targets(fg_rows=fg_rows)
    with torch.no_grad():
        out.mask_logits.mul_(1e4)               # saturated sigmoids: log(0) territory
        out.fg_logits.mul_(1e4)
    terms = STALELoss()(out, tg)
    for v in terms.values().values():
        assert math.isfinite(v)
    terms.total.backward()
    for key in ("class_logits", "mask_logits", "fg_logits", "const_clf_feats"):
        assert torch.isfinite(getattr(out, key).grad).all()


def test_comp_skipped_without_learned_mask_and_shape_errors():
    out, tg = _out_targets(fg_rows=[1])
    out.fg_learned = False
    assert STALELoss()(out, tg).comp.item() == 0.0
    tg.fg_mask = tg.fg_mask[:, :3]
    with pytest.raises(StaleError, match="fg_mask"):
        STALELoss()(out, tg)


@pytest.mark.parametrize("class_weights", [None, [1.0, 0.5, 2.0, 0.25]])
def test_losses_decompose_over_micro_batches(class_weights):
    """Batch loss == size-weighted mean of the chunk losses, values and gradients: gradient
    accumulation over micro-batches is then exact."""
    out, tg = _out_targets(B=6, T=6, K=3, fg_rows=[1, 2, 3])
    tg.fg_mask[4] = 0                       # a video without foreground
    tg.instance_masks[4] = 0
    tg.snippet_labels[4] = 3
    tg.fg_mask[1, 0] = 1                    # and uneven foreground between videos
    with torch.no_grad():
        out.class_logits[0, :, 0] += 8.0    # confident actions: L_const is active somewhere
        out.mask_logits[0] += 4.0
    loss = STALELoss(LossConfig(class_weights=class_weights))
    full = loss(out, tg)
    full.total.backward()
    keys = ("class_logits", "mask_logits", "fg_logits", "const_clf_feats", "const_mask_feats")
    grads = {k: getattr(out, k).grad.clone() for k in keys}
    assert full.const.item() > 0
    for k in keys:
        getattr(out, k).grad = None
    chunks = [(0, 2), (2, 5), (5, 6)]
    terms = ("total", "cls", "mask", "comp", "const", "align")
    acc = {k: 0.0 for k in terms}
    for a, b in chunks:
        part = loss(dataclasses.replace(out, **{k: getattr(out, k)[a:b] for k in
                                                (*keys, "fg_hard", "fg_weight", "text_features")}),
                    tg.slice(a, b))
        (part.total * (b - a) / 6).backward()
        for k in acc:
            acc[k] = acc[k] + getattr(part, k).detach() * (b - a) / 6
    for k in terms:
        torch.testing.assert_close(acc[k], getattr(full, k).detach(), rtol=1e-5, atol=1e-7)
    for k, g in grads.items():
        torch.testing.assert_close(getattr(out, k).grad, g, rtol=1e-5, atol=1e-8)


# -- the options decided by measurement (docs/model.md) -------------------------------------------

def test_kept_snippets_drop_masked_out_snippets_but_keep_the_denominator():
    torch.manual_seed(1)
    s = 14.0
    # snippet 1 is an action snippet the mask dropped: logits s * onehot(background)
    logits = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 0.0, s], [0.0, 0.0, 5.0]]])
    labels = torch.tensor([[0, 1, 2]])
    kept = torch.tensor([[True, False, True]])
    ce = torch.nn.functional.cross_entropy(logits[0], labels[0], reduction="none")
    assert ce[1] == pytest.approx(s, abs=1e-3)           # what a dropped action snippet costs
    got = classification_loss(logits, labels, snippet_mask=kept)
    assert got.item() == pytest.approx(((ce[0] + ce[2]) / 3).item(), rel=1e-6)
    assert classification_loss(logits, labels).item() == pytest.approx(ce.mean().item(), rel=1e-6)
    # the dropped snippet's only gradient was on the scale: with kept it has none
    scale = torch.tensor(s, requires_grad=True)
    scaled = torch.cat([logits[:, :1], (scale * torch.tensor([0.0, 0.0, 1.0])).view(1, 1, 3), logits[:, 2:]], 1)
    classification_loss(scaled, labels, snippet_mask=kept).backward()
    assert scale.grad.item() == 0.0


def test_hard_consistency_passes_no_gradient_to_the_scores_and_soft_does():
    torch.manual_seed(2)
    B, T, K, C = 2, 8, 3, 5
    cls = torch.randn(B, T, K + 1, requires_grad=True)
    mask = torch.randn(B, T, T, requires_grad=True)
    fc, fm = torch.randn(B, T, C, requires_grad=True), torch.randn(B, T, C)
    consistency_loss(cls, mask, fc, fm, topk=4, class_threshold=0.0, mask_threshold=0.0,
                     weighting="hard").backward()
    assert fc.grad.abs().sum() > 0
    assert cls.grad is None and mask.grad is None
    consistency_loss(cls, mask, fc, fm, topk=4, class_threshold=0.0, mask_threshold=0.0,
                     weighting="soft").backward()
    assert cls.grad.abs().sum() > 0 and mask.grad.abs().sum() > 0


def test_learned_projections_can_zero_the_consistency_loss_on_noise_but_fixed_cannot():
    """The read of the model (issue): with learned E_p / E_m, L_const can be driven to ~0 on pure
    noise by the projections alone; with the fixed shared projection it measures agreement."""
    from stale.model.heads import ConsistencyProjections, HeadsConfig

    torch.manual_seed(3)
    B, T, K, C = 4, 16, 3, 8
    x = torch.randn(B, T, C)
    cls, mask = torch.randn(B, T, K + 1), torch.randn(B, T, T)
    results = {}
    for kind in ("learned", "fixed"):
        proj = ConsistencyProjections(HeadsConfig(const_dim=6, const_projection=kind), C)
        params = [p for p in proj.parameters() if p.requires_grad]
        start = consistency_loss(cls, mask, *proj(x), topk=4, class_threshold=0.0, mask_threshold=0.0).item()
        if params:
            opt = torch.optim.Adam(params, lr=0.05)
            for _ in range(200):
                opt.zero_grad()
                consistency_loss(cls, mask, *proj(x), topk=4, class_threshold=0.0, mask_threshold=0.0).backward()
                opt.step()
        results[kind] = (start, consistency_loss(cls, mask, *proj(x), topk=4, class_threshold=0.0,
                                                 mask_threshold=0.0).item(), len(params))
    assert results["learned"][1] < 0.02 < results["learned"][0]   # satisfied by the projections alone
    assert results["fixed"][2] == 0                               # nothing to train
    assert results["fixed"][1] == pytest.approx(results["fixed"][0]) and results["fixed"][1] > 0.02
    a, b = ConsistencyProjections(HeadsConfig(const_projection="fixed"), C)(x)
    assert torch.equal(a, b)   # one shared projection: identical selections agree exactly


def test_alignment_loss_hand_computed_and_decomposes():
    from stale.model.losses import alignment_loss

    s = torch.tensor(10.0)
    cos = torch.tensor([[[0.5, 0.1, 0.0], [0.2, 0.9, 0.0], [0.3, 0.3, 0.0]],
                        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[0, 1, 2], [2, 2, 2]])           # video 2: background only
    kept = torch.tensor([[True, True, True], [True, True, True]])
    got = alignment_loss(cos * s, s, labels, kept)
    assert got.item() == pytest.approx(((1 - 0.5) + (1 - 0.9)) / 2 / 2)   # video 2 contributes 0
    kept[0, 1] = False
    assert alignment_loss(cos * s, s, labels, kept).item() == pytest.approx(0.5 / 2)
    parts = [alignment_loss(cos[i:i + 1] * s, s, labels[i:i + 1], kept[i:i + 1]) for i in range(2)]
    assert alignment_loss(cos * s, s, labels, kept).item() == pytest.approx(sum(p.item() for p in parts) / 2)


def test_consistency_loss_hard_is_inert_on_the_outputs_soft_is_not():
    """With the paper's hard selection, L_const sends no gradient to the classification or mask
    outputs (P, M): it trains only E_p / E_m and what feeds them (docs/model.md, "L_const")."""
    torch.manual_seed(0)
    cls = torch.randn(2, 12, 4, requires_grad=True)
    m = torch.randn(2, 12, 12, requires_grad=True)
    fc, fm = torch.randn(2, 12, 6, requires_grad=True), torch.randn(2, 12, 6, requires_grad=True)
    hard = consistency_loss(cls, m, fc, fm, topk=4, class_threshold=0.0, mask_threshold=0.0)
    g_cls, g_m = torch.autograd.grad(hard, (cls, m), allow_unused=True)
    assert hard.item() > 0.05
    assert (g_cls is None or not g_cls.any()) and (g_m is None or not g_m.any())
    soft = consistency_loss(cls, m, fc, fm, topk=4, class_threshold=0.0, mask_threshold=0.0, weighting="soft")
    g_cls, g_m = torch.autograd.grad(soft, (cls, m))
    assert g_cls.abs().sum() > 1e-4 and g_m.abs().sum() > 1e-4


def test_learned_projections_satisfy_consistency_on_their_own_fixed_cannot():
    """Learned E_p / E_m drive L_const to ~0 whatever snippets the two branches select (the
    selections here disagree completely); one shared fixed projection cannot."""
    from stale.model.heads import ConsistencyProjections, HeadsConfig

    torch.manual_seed(0)
    T, C = 16, 8
    x = torch.randn(1, T, C)
    cls = torch.full((1, T, 3), -10.0)
    cls[0, :4, 0] = 10.0                      # the classifier is confident on snippets 0-3
    m = torch.full((1, T, T), -10.0)
    idx = torch.arange(8, 12)
    m[0, idx, idx] = 10.0                     # the mask on snippets 8-11: no overlap
    for kind, expect_low in (("learned", True), ("fixed", False)):
        proj = ConsistencyProjections(HeadsConfig(const_dim=4, const_projection=kind), C)
        params = [p for p in proj.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=0.05) if params else None
        for _ in range(300 if opt else 1):
            fc, fm = proj(x)
            loss = consistency_loss(cls, m, fc, fm, topk=4)
            if opt:
                opt.zero_grad()
                loss.backward()
                opt.step()
        fc, fm = proj(x)
        final = consistency_loss(cls, m, fc, fm, topk=4).item()
        assert (final < 1e-3) == expect_low, (kind, final)


def test_the_held_out_loss_counts_the_action_snippets_a_closed_gate_drops():
    """Training mode sums L_c over kept snippets; eval mode (held-out videos, model selection)
    over all, so a gate that drops everything cannot score L_c = 0 on held-out videos."""
    out, tg = _out_targets(fg_rows=[1, 2], requires_grad=False)
    closed = ModelOutput(**{**out.__dict__, "fg_hard": torch.zeros_like(out.fg_hard),
                            "fg_weight": torch.zeros_like(out.fg_weight)})
    loss = STALELoss(LossConfig())
    assert loss(closed, tg).cls.item() == 0.0                       # training: nothing kept, nothing counted
    loss.eval()
    want = classification_loss(closed.class_logits, tg.snippet_labels)
    torch.testing.assert_close(loss(closed, tg).cls, want)
    assert want.item() > 0.1
    loss.train()
    assert loss(closed, tg).cls.item() == 0.0
