
import math

import pytest
import torch

from stale.core.errors import StaleError
from stale.model.outputs import Targets
from stale.model import STALE, STALELoss, ModelConfig
from stale.model.cross_modal import CrossModalConfig
from stale.model.heads import HeadsConfig
from stale.model.losses import LossConfig
from stale.model.masking import MaskingConfig
from stale.model.temporal import TemporalConfig

B, T, D, C, K = 2, 16, 8, 16, 3
NAMES = ["run", "jump", "swim"]


def tiny_cfg(masking="decoder", temporal="transformer", cross=True, dropout=0.1, **loss):
    return ModelConfig(
        input_dim=D, width=C,
        temporal=TemporalConfig(kind=temporal, num_heads=4, dropout=dropout,
                                mstcn_stages=2, mstcn_layers=3),
        masking=MaskingConfig(kind=masking, num_queries=5, num_heads=4, dropout=dropout),
        cross_modal=CrossModalConfig(enabled=cross, num_heads=4, dropout=dropout),
        heads=HeadsConfig(mask_feat_dim=8, const_dim=8),
        loss=LossConfig(**loss))


def make_targets(batch=B, length=T):
    """Two instances per video: classes 0 and 1/2 on fixed spans; background elsewhere."""
    labels = torch.full((batch, length), K, dtype=torch.long)
    masks = torch.zeros(batch, length, length)
    spans = [((2, 6), 0), ((9, 14), 1 + 0)]
    for b in range(batch):
        for (s, e), c in spans:
            c = c if b == 0 else (c + b) % K
            labels[b, s:e] = c
            masks[b, s:e, s:e] = 1.0
    fg = (labels < K).float()
    return Targets(labels, masks, fg)


@pytest.mark.parametrize("masking,temporal,cross", [
    ("decoder", "transformer", True), ("none", "cnn", True), ("cnn", "mstcn", False),
    ("gt", "transformer", True)])
def test_forward_shapes(fake_text_encoder, masking, temporal, cross):
    torch.manual_seed(0)
    model = STALE(tiny_cfg(masking, temporal, cross), fake_text_encoder)
    tg = make_targets()
    out = model(torch.randn(B, T, D), NAMES, gt_fg=tg.fg_mask)
    assert out.class_logits.shape == (B, T, K + 1)
    assert out.mask_logits.shape == (B, T, T)
    assert out.fg_logits.shape == (B, T)
    assert out.text_features.shape == (B, K + 1, C)
    assert fake_text_encoder.calls == 1
    terms = STALELoss(model.cfg.loss)(out, tg)
    assert all(math.isfinite(v) for v in terms.values().values())
    if masking == "gt":
        assert torch.equal(out.fg_hard, tg.fg_mask.bool())


def test_gradients_reach_every_parameter(fake_text_encoder):
    torch.manual_seed(0)
    # thresholds low enough that every branch (incl. L_const's selections) is active
    model = STALE(tiny_cfg(const_class_threshold=0.0, const_mask_threshold=0.0),
                  fake_text_encoder)
    tg = make_targets()
    out = model(torch.randn(B, T, D), NAMES)
    STALELoss(model.cfg.loss)(out, tg).total.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
               and not n.startswith("text_encoder.names")]
    assert missing == []
    # only the embeddings of the used names receive a gradient
    assert model.text_encoder.names.weight.grad[:3].abs().sum() > 0


def test_text_projection_identity_when_dims_match():
    from fake_text import FakeTextEncoder
    model = STALE(tiny_cfg(), FakeTextEncoder(embed_dim=C + 4))
    assert isinstance(model.text_proj, torch.nn.Linear)
    cfg = tiny_cfg()
    cfg.width = 16
    model = STALE(cfg, FakeTextEncoder(embed_dim=16))
    assert isinstance(model.text_proj, torch.nn.Identity)


def test_no_foreground_anywhere_is_finite(fake_text_encoder):
    torch.manual_seed(0)
    model = STALE(tiny_cfg("gt"), fake_text_encoder)
    tg = make_targets()
    empty = torch.zeros(B, T)
    out = model(torch.randn(B, T, D), NAMES, gt_fg=empty)
    assert out.fg_hard.sum() == 0
    tg = Targets(torch.full((B, T), K), torch.zeros(B, T, T), empty)
    terms = STALELoss(model.cfg.loss)(out, tg)
    terms.total.backward()
    assert all(math.isfinite(v) for v in terms.values().values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bad_inputs(fake_text_encoder):
    model = STALE(tiny_cfg(), fake_text_encoder)
    with pytest.raises(StaleError, match="input_dim"):
        model(torch.randn(B, T, D + 1), NAMES)
    with pytest.raises(StaleError, match="NaN"):
        x = torch.randn(B, T, D)
        x[0, 0, 0] = float("nan")
        model(x, NAMES)
    with pytest.raises(StaleError, match="class_names"):
        model(torch.randn(B, T, D), [])

    class Bad(torch.nn.Module):
        embed_dim = C

        def forward(self, names):
            return torch.zeros(len(names), C)          # background row forgotten
    with pytest.raises(StaleError, match="background"):
        STALE(tiny_cfg(), Bad())(torch.randn(B, T, D), NAMES)


def test_runs_under_bfloat16_autocast(fake_text_encoder):
    torch.manual_seed(0)
    model = STALE(tiny_cfg(), fake_text_encoder)
    tg = make_targets()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(B, T, D), NAMES)
        terms = STALELoss(model.cfg.loss)(out, tg)
    terms.total.backward()
    assert torch.isfinite(terms.total) and terms.total.dtype == torch.float32


def test_tiny_model_overfits_one_batch(fake_text_encoder):
    torch.manual_seed(0)
    model = STALE(tiny_cfg(dropout=0.0), fake_text_encoder)
    loss_fn = STALELoss(model.cfg.loss)
    feats = torch.randn(B, T, D)
    tg = make_targets()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(200):
        total = loss_fn(model(feats, NAMES), tg).total
        first = total.item() if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    final = loss_fn(model(feats, NAMES), tg)
    assert final.total.item() < first / 5, (first, final.values())
    out = model(feats, NAMES)
    acc = (out.class_logits.argmax(-1) == tg.snippet_labels).float().mean()
    assert acc == 1.0
    # the learned representation mask separates action from background snippets
    assert torch.equal(out.fg_hard, tg.fg_mask.bool())


def test_config_from_yaml_dict():
    from stale.core.config import from_dict, to_dict
    cfg = from_dict(ModelConfig, {"temporal": {"kind": "cnn", "cnn_dilations": [1, 2]},
                                  "loss": {"class_weights": [1, 2, 3, 4]}})
    assert cfg.temporal.cnn_dilations == (1, 2) and cfg.masking.num_queries == 20
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    with pytest.raises(StaleError):
        from_dict(ModelConfig, {"masking": {"theta_bin": 2.0}})


def test_precomputed_text_gives_the_same_output_and_skips_the_encoder():
    torch.manual_seed(0)
    from fake_text import FakeTextEncoder

    wide = FakeTextEncoder(embed_dim=C + 4)   # embed_dim != width: encode_text includes text_proj
    model = STALE(tiny_cfg(dropout=0.0), wide).eval()
    x = torch.randn(B, T, D)
    ref = model(x, NAMES)
    text = model.encode_text(NAMES)
    calls = wide.calls
    out = model(x, NAMES, text=text)
    assert wide.calls == calls      # no second text-encoder call
    for k in ("class_logits", "mask_logits", "fg_logits", "text_features"):
        torch.testing.assert_close(getattr(out, k), getattr(ref, k), rtol=0, atol=0)
    # micro-batches of videos against the same text == the whole batch (no batch coupling)
    halves = [model(x[i:i + 1], NAMES, text=text) for i in range(B)]
    for k in ("class_logits", "mask_logits", "fg_logits"):
        torch.testing.assert_close(torch.cat([getattr(h, k) for h in halves]), getattr(ref, k),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(StaleError, match="precomputed text"):
        model(x, NAMES, text=text[:-1])
    with pytest.raises(StaleError, match="precomputed text"):
        model(x, NAMES, text=model.text_encoder(NAMES))   # not projected to the model width
