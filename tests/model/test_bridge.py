"""The feature bridge (``model.bridge``): a frozen linear map from features not aligned with text
into the text space, in front of the temporal encoder."""

import copy

import numpy as np
import pytest
import torch

from fake_text import FakeTextEncoder
from stale.core.errors import StaleError
from stale.model import STALE, ModelConfig
from stale.model.bridge import BridgeConfig, FeatureBridge
from stale.model.cross_modal import CrossModalConfig
from stale.model.heads import HeadsConfig
from stale.model.masking import MaskingConfig
from stale.model.temporal import TemporalConfig

NAMES = ["run", "jump", "swim"]


def _cfg(input_dim, width, bridge="none"):
    return ModelConfig(input_dim=input_dim, width=width,
                       temporal=TemporalConfig(num_layers=1, num_heads=2, dropout=0.0),
                       masking=MaskingConfig(num_queries=4, num_layers=1, num_heads=2, dropout=0.0),
                       cross_modal=CrossModalConfig(num_heads=2, dropout=0.0),
                       heads=HeadsConfig(mask_feat_dim=8, const_dim=8), bridge=BridgeConfig(kind=bridge))


def test_the_map_equals_an_independent_computation_and_refuses_to_run_unfitted():
    rng = np.random.default_rng(0)
    mu, w, x = rng.normal(size=20), rng.normal(size=(20, 12)), rng.normal(size=(2, 7, 20))
    bridge = FeatureBridge(20, 12)
    with pytest.raises(StaleError, match="not fitted"):
        bridge(torch.zeros(1, 3, 20))
    with pytest.raises(StaleError, match="does not fit"):
        bridge.set_map(torch.zeros(20), torch.zeros(12, 20), 0.1)
    bridge.set_map(torch.from_numpy(mu).float(), torch.from_numpy(w).float(), 0.01)
    got = bridge(torch.from_numpy(x).float())
    np.testing.assert_allclose(got.numpy(), (x - mu) @ w, rtol=1e-4, atol=1e-4)
    assert float(bridge.l2) == pytest.approx(0.01) and int(bridge.fitted) == 1
    assert not any(True for _ in bridge.parameters())          # nothing an optimizer could move


def test_stale_with_a_bridge_is_stale_on_the_bridged_features():
    """Same weights after the bridge: STALE(x) with the bridge == STALE without it on (x - mu) W."""
    torch.manual_seed(0)
    text = FakeTextEncoder(embed_dim=16)
    bridged = STALE(_cfg(40, 16, "ridge"), copy.deepcopy(text)).eval()
    plain = STALE(_cfg(16, 16), copy.deepcopy(text)).eval()
    mu, w = torch.randn(40), torch.randn(40, 16) / 6
    bridged.bridge.set_map(mu, w, 0.1)
    state = {k: v for k, v in bridged.state_dict().items() if not k.startswith("bridge.")}
    plain.load_state_dict(state)
    x = torch.randn(2, 9, 40)
    a, b = bridged(x, NAMES), plain((x - mu) @ w, NAMES)
    torch.testing.assert_close(a.class_logits, b.class_logits)
    torch.testing.assert_close(a.mask_logits, b.mask_logits)
    # the fitted map is part of the weights: a model loaded from them gives the same outputs
    again = STALE(_cfg(40, 16, "ridge"), copy.deepcopy(text)).eval()
    again.load_state_dict(bridged.state_dict())
    torch.testing.assert_close(again(x, NAMES).class_logits, a.class_logits)


def test_config_is_checked():
    with pytest.raises(StaleError, match="bridge.kind"):
        BridgeConfig(kind="mlp").validate()
    with pytest.raises(StaleError, match="l2_grid"):
        BridgeConfig(kind="ridge", l2_grid=[]).validate()
    with pytest.raises(StaleError, match="templates"):
        BridgeConfig(kind="ridge", templates=["no slot"]).validate()
