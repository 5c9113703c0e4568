import math

import pytest
import torch
import torch.nn.functional as F

from stale.core.errors import StaleError
from stale.model.heads import (ConsistencyProjections, CosineClassifier, DynamicMaskLocalizer,
                               HeadsConfig)

B, T, C, K1 = 2, 16, 16, 4


def test_classifier_matches_hand_computation():
    torch.manual_seed(0)
    clf = CosineClassifier(HeadsConfig())
    text = torch.randn(B, K1, C)
    f = torch.randn(B, T, C)
    w = torch.ones(B, T)
    w[0, 3] = 0.0
    logits = clf(text, f, w)
    assert logits.shape == (B, T, K1)
    b, t, k = 1, 7, 2
    cos = (text[b, k] @ f[b, t]) / (text[b, k].norm() * f[b, t].norm())
    torch.testing.assert_close(logits[b, t, k], cos / 0.07, rtol=1e-5, atol=1e-5)
    # a masked snippet is classified as background, regardless of its feature
    torch.testing.assert_close(logits[0, 3], torch.tensor([0.0, 0.0, 0.0, 1 / 0.07]))


def test_classifier_zero_feature_and_scale_clamp():
    clf = CosineClassifier(HeadsConfig())
    with torch.no_grad():
        clf.log_scale.fill_(math.log(1000.0))
    assert clf.scale().item() == pytest.approx(100.0)
    out = clf(torch.randn(1, K1, C), torch.zeros(1, T, C), torch.ones(1, T))
    assert torch.isfinite(out).all()


def test_classifier_gradient_reaches_gate():
    clf = CosineClassifier(HeadsConfig())
    w = torch.full((1, T), 1.0, requires_grad=True)
    out = clf(torch.randn(1, K1, C), torch.randn(1, T, C), w)
    F.cross_entropy(out[0], torch.zeros(T, dtype=torch.long)).backward()
    assert w.grad.abs().sum() > 0


def _naive_localizer(loc, f_vis):
    """Per-(video, snippet) loop with F.conv1d: the reference for the vectorised version."""
    feats = loc.mask_input(f_vis)
    params = loc.generate(f_vis)
    rel = loc.relative_position(T, f_vis.device, f_vis.dtype)
    out = torch.empty(f_vis.shape[0], T, T)
    for b in range(f_vis.shape[0]):
        for t in range(T):
            x = torch.cat([feats[b], rel[t][None]], dim=0)[None]            # (1, Cm+1, T)
            for layer, (w, bias) in enumerate(params):
                if layer:
                    x = torch.relu(x)
                x = F.conv1d(x, w[b, t], bias[b, t], padding=loc.kernel // 2)
            out[b, t] = x[0, 0]
    return out


@pytest.mark.parametrize("kernel,hidden,layers", [(3, 8, 3), (5, 4, 2), (1, 3, 3)])
def test_dynamic_conv_equals_naive_loop(kernel, hidden, layers):
    torch.manual_seed(0)
    loc = DynamicMaskLocalizer(HeadsConfig(mask_feat_dim=6, dyn_hidden=hidden,
                                           dyn_kernel=kernel, dyn_layers=layers), C)
    f = torch.randn(B, T, C)
    fast = loc(f)
    assert fast.shape == (B, T, T)
    torch.testing.assert_close(fast, _naive_localizer(loc, f), atol=1e-5, rtol=1e-4)


def test_dynamic_conv_rows_depend_on_their_snippet():
    """Row t of the mask is the 1-D convolution stack whose weights the controller generated
    from snippet t (Eq. 8), over the shared mask features plus row t's relative position --
    checked against F.conv1d run row by row; a convolution shared by all rows fails this."""
    torch.manual_seed(0)
    loc = DynamicMaskLocalizer(HeadsConfig(mask_feat_dim=6), C)
    f = torch.randn(2, T, C, dtype=torch.float64)
    loc = loc.double()
    got = loc(f)                                                       # (2, T, T)
    feats = loc.mask_input(f)                                          # (2, Cm, T)
    params = loc.generate(f)
    rel = loc.relative_position(T, f.device, f.dtype)                  # (T, T)
    pad = loc.kernel // 2

    def row(b: int, t: int, source: int) -> torch.Tensor:
        """Row t computed with the conv parameters generated from snippet ``source``."""
        h = torch.cat([feats[b], rel[t].unsqueeze(0)]).unsqueeze(0)   # (1, Cm + 1, T)
        for layer, (w, bias) in enumerate(params):
            if layer:
                h = torch.relu(h)
            h = F.conv1d(h, w[b, source], bias[b, source], padding=pad)
        return h[0, 0]

    for b in range(2):
        for t in range(T):
            torch.testing.assert_close(got[b, t], row(b, t, t))
    # the parameters differ from snippet to snippet, so another snippet's convs give another row
    assert all((got[0, t] - row(0, t, (t + 1) % T)).abs().max() > 1e-6 for t in range(T))


def test_consistency_projections_and_config():
    proj = ConsistencyProjections(HeadsConfig(const_dim=5), C)
    a, b = proj(torch.randn(B, T, C))
    assert a.shape == (B, T, 5) and b.shape == (B, T, 5)
    with pytest.raises(StaleError):
        HeadsConfig(dyn_kernel=4).validate()


def test_logit_scale_floor():
    clf = CosineClassifier(HeadsConfig(logit_scale_init=10.0, logit_scale_min=5.0))
    with torch.no_grad():
        clf.log_scale.fill_(math.log(0.5))
    assert clf.scale().item() == pytest.approx(5.0)
    with pytest.raises(StaleError, match="logit_scale_min"):
        HeadsConfig(logit_scale_init=1.0, logit_scale_min=2.0).validate()
