"""The prompt anchor (``loss.w_prompt``, KgCoOp-style): the learned prompts' text features are
pulled towards the frozen tower's hand-written template-ensemble embeddings of the same names."""

import copy

import pytest
import torch
import torch.nn.functional as F

from stale.core.errors import StaleError
from stale.model import STALE, ModelConfig
from stale.model.cross_modal import CrossModalConfig
from stale.model.heads import HeadsConfig
from stale.model.losses import LossConfig, STALELoss
from stale.model.masking import MaskingConfig
from stale.model.outputs import Targets
from stale.model.temporal import TemporalConfig

NAMES = ["high jump", "pole vault", "diving"]


@pytest.fixture(scope="module")
def encoder():
    from stale.text import build_text_encoder
    from stale.text.prompt import TextEncoderConfig

    return build_text_encoder(TextEncoderConfig(arch="stale-offline", context_length=3, ctx_init=None,
                                                class_position="end", finetune=False))


def _cfg(dim, width=None, **loss):
    return ModelConfig(input_dim=dim, width=width or dim,
                       temporal=TemporalConfig(num_layers=1, num_heads=4, dropout=0.0),
                       masking=MaskingConfig(num_queries=4, num_layers=1, num_heads=4, dropout=0.0),
                       cross_modal=CrossModalConfig(num_heads=4, dropout=0.0),
                       heads=HeadsConfig(mask_feat_dim=8, const_dim=8), loss=LossConfig(**loss))


def _independent_anchor(tower):
    from stale.text import embed_class_names
    from stale.text.embed import ENSEMBLE_TEMPLATES

    e = torch.stack([torch.from_numpy(embed_class_names(NAMES, template=t, tower=tower)) for t in ENSEMBLE_TEMPLATES])
    return F.normalize(F.normalize(e, dim=-1).mean(0), dim=-1)                  # (K, E)


def test_gap_equals_an_independent_computation(encoder):
    dim = encoder.tower.embed_dim
    torch.manual_seed(0)
    model = STALE(_cfg(dim, w_prompt=0.5), copy.deepcopy(encoder)).train()
    out = model(torch.randn(2, 16, dim), NAMES)
    text = model.text_encoder(NAMES)[: len(NAMES)]                              # identity projection
    want = (1 - F.cosine_similarity(text, _independent_anchor(encoder.tower), dim=-1)).mean()
    torch.testing.assert_close(out.prompt_gap, want, rtol=1e-5, atol=1e-6)
    assert float(out.prompt_gap.detach()) > 0.01          # random context: the prompts start away from the anchor
    model.eval()
    assert model(torch.randn(1, 16, dim), NAMES).prompt_gap is None


def test_the_term_enters_the_total_and_trains_the_context_towards_the_anchor(encoder):
    dim = encoder.tower.embed_dim
    torch.manual_seed(1)
    model = STALE(_cfg(dim, w_prompt=1.0), copy.deepcopy(encoder)).train()
    x = torch.randn(2, 16, dim)
    labels = torch.full((2, 16), len(NAMES), dtype=torch.long)
    targets = Targets(labels, torch.zeros(2, 16, 16), torch.zeros(2, 16))
    with_term = STALELoss(model.cfg.loss)
    without = STALELoss(LossConfig(w_prompt=0.0))
    out = model(x, NAMES)
    a, b = with_term(out, targets), without(out, targets)
    torch.testing.assert_close(a.total - b.total, out.prompt_gap)
    torch.testing.assert_close(a.prompt, out.prompt_gap)
    # descending the anchor term alone closes the gap: its gradient reaches the learned context
    ctx = [p for n, p in model.text_encoder.named_parameters() if p.requires_grad]
    assert ctx, "the prompt learner has trainable context"
    opt = torch.optim.Adam(ctx, lr=0.05)
    first = float(out.prompt_gap.detach())
    for _ in range(30):
        opt.zero_grad()
        model(x, NAMES).prompt_gap.backward()
        opt.step()
    assert float(model(x, NAMES).prompt_gap.detach()) < 0.5 * first


def test_projection_is_applied_to_the_anchor_and_off_means_none(encoder):
    dim = encoder.tower.embed_dim
    torch.manual_seed(2)
    model = STALE(_cfg(dim, width=32, w_prompt=1.0), copy.deepcopy(encoder)).train()
    out = model(torch.randn(1, 8, dim), NAMES)
    text = model.encode_text(NAMES)[: len(NAMES)]
    anchor = model.text_proj(_independent_anchor(encoder.tower))
    torch.testing.assert_close(out.prompt_gap, (1 - F.cosine_similarity(text, anchor, dim=-1)).mean(),
                               rtol=1e-5, atol=1e-6)
    off = STALE(_cfg(dim), copy.deepcopy(encoder)).train()
    assert off.anchor is None and off(torch.randn(1, 8, dim), NAMES).prompt_gap is None
    # the anchor's embeddings are neither parameters nor buffers: checkpoints are unchanged by it
    same_width = STALE(_cfg(dim), copy.deepcopy(encoder))
    with_anchor = STALE(_cfg(dim, w_prompt=1.0), copy.deepcopy(encoder))
    assert set(with_anchor.state_dict()) == set(same_width.state_dict())


def test_needs_a_tower():
    from fake_text import FakeTextEncoder

    with pytest.raises(StaleError, match="w_prompt needs a CLIP text encoder"):
        STALE(_cfg(16, w_prompt=1.0), FakeTextEncoder(embed_dim=16))
