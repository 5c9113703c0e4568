"""The CLIP prior (stale.model.prior): the frozen feature-to-text similarity added to STALE's
classification logits."""

import copy

import pytest
import torch
import torch.nn.functional as F

from stale.core.errors import StaleError
from stale.model import STALE, ModelConfig
from stale.model.cross_modal import CrossModalConfig
from stale.model.heads import HeadsConfig
from stale.model.masking import MaskingConfig
from stale.model.prior import ClipPrior, PriorConfig
from stale.model.temporal import TemporalConfig

NAMES = ["high jump", "pole vault", "diving"]


@pytest.fixture(scope="module")
def encoder():
    from stale.text import build_text_encoder
    from stale.text.prompt import TextEncoderConfig

    return build_text_encoder(TextEncoderConfig(arch="stale-offline", context_length=3, ctx_init="a video of",
                                                class_position="end", finetune=False))


def _cfg(dim, **prior):
    return ModelConfig(input_dim=dim, width=dim,
                       temporal=TemporalConfig(num_layers=1, num_heads=4, dropout=0.0),
                       masking=MaskingConfig(num_queries=4, num_layers=1, num_heads=4, dropout=0.0),
                       cross_modal=CrossModalConfig(num_heads=4, dropout=0.0),
                       heads=HeadsConfig(mask_feat_dim=8, const_dim=8), prior=PriorConfig(**prior))


def test_prior_equals_an_independent_computation(encoder):
    from stale.text import embed_class_names
    from stale.text.embed import ENSEMBLE_TEMPLATES

    tower = encoder.tower
    torch.manual_seed(0)
    x = torch.randn(2, 20, tower.embed_dim)
    prior = ClipPrior(PriorConfig(weight=0.7, temperature=0.02, baseline_quantile=0.25), tower, tower.embed_dim)
    got = prior(x, NAMES)
    e = torch.stack([torch.from_numpy(embed_class_names(NAMES, template=t, tower=tower)) for t in ENSEMBLE_TEMPLATES])
    e = F.normalize(F.normalize(e, dim=-1).mean(0), dim=-1)                   # (K, E)
    s = F.normalize(x, dim=-1) @ e.T                                         # (B, T, K)
    for b in range(2):
        for k in range(len(NAMES)):
            level = torch.quantile(s[b, :, k], 0.25)
            torch.testing.assert_close(got[b, :, k], 0.7 * (s[b, :, k] - level) / 0.02, rtol=1e-5, atol=1e-4)
    assert got.shape == (2, 20, len(NAMES) + 1) and not got[..., -1].any()


def test_model_logits_are_the_learned_ones_plus_the_prior(encoder):
    dim = encoder.tower.embed_dim
    torch.manual_seed(1)
    plain = STALE(_cfg(dim), copy.deepcopy(encoder)).eval()
    torch.manual_seed(1)
    with_prior = STALE(_cfg(dim, weight=0.5), copy.deepcopy(encoder)).eval()
    x = torch.randn(2, 24, dim)
    a, b = plain(x, NAMES), with_prior(x, NAMES)
    assert a.prior_logits is None and b.prior_logits is not None
    torch.testing.assert_close(b.class_logits - b.prior_logits, a.class_logits, rtol=1e-5, atol=1e-5)
    # a snippet the masking drops is background for the learned part, but the prior still speaks
    dropped = ~b.fg_hard
    if dropped.any():
        assert (b.class_logits[dropped][:, :-1] != a.class_logits[dropped][:, :-1]).any()


def test_learned_weight_gets_a_gradient_and_fixed_does_not(encoder):
    tower = encoder.tower
    x = torch.randn(1, 10, tower.embed_dim)
    learned = ClipPrior(PriorConfig(weight=1.0, learn_weight=True), tower, tower.embed_dim)
    learned(x, NAMES).sum().backward()
    assert learned.weight.grad is not None and learned.weight.grad.abs() > 0
    fixed = ClipPrior(PriorConfig(weight=1.0), tower, tower.embed_dim)
    assert not any(p.requires_grad for p in fixed.parameters())


def test_prior_refuses_features_outside_the_text_space(encoder):
    with pytest.raises(StaleError, match="model.prior needs features in the CLIP text space"):
        STALE(_cfg(encoder.tower.embed_dim * 2, weight=1.0), encoder)


@pytest.mark.parametrize("bad", [dict(weight=-1.0), dict(temperature=0.0), dict(baseline_quantile=1.0),
                                 dict(templates=["no slot"])])
def test_prior_config_validation(bad):
    with pytest.raises(StaleError):
        PriorConfig(**bad).validate()
