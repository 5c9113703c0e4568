import pytest
import torch

from stale.core.errors import StaleError
from stale.model.temporal import TemporalConfig, TemporalEncoder

B, T, D, C = 2, 16, 8, 16


@pytest.mark.parametrize("kind", ["transformer", "cnn", "mstcn"])
def test_shapes_and_finite(kind):
    torch.manual_seed(0)
    enc = TemporalEncoder(TemporalConfig(kind=kind, num_heads=4, mstcn_stages=2,
                                         mstcn_layers=3), D, C)
    out = enc(torch.randn(B, T, D))
    assert out.shape == (B, T, C)
    assert torch.isfinite(out).all()


def test_transformer_has_no_positional_encoding_permutation_equivariant():
    torch.manual_seed(0)
    enc = TemporalEncoder(TemporalConfig(num_heads=4), D, C).eval()
    x = torch.randn(B, T, D)
    perm = torch.randperm(T)
    with torch.no_grad():
        a = enc(x)[:, perm]
        b = enc(x[:, perm])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_cnn_is_position_aware_not_equivariant():
    # a convolution mixes neighbours, so permuting snippets must change the result;
    # guards against a silently-degenerate CNN (e.g. kernel 1)
    torch.manual_seed(0)
    enc = TemporalEncoder(TemporalConfig(kind="cnn", dropout=0.0), D, C).eval()
    x = torch.randn(1, T, D)
    perm = torch.randperm(T)
    with torch.no_grad():
        assert not torch.allclose(enc(x)[:, perm], enc(x[:, perm]), atol=1e-4)


def test_cnn_uses_configured_dilations():
    enc = TemporalEncoder(TemporalConfig(kind="cnn"), D, C)
    dil = [blk.conv.dilation[0] for blk in enc.body]
    assert dil == [1, 1, 3, 3, 5, 5]


def test_bad_config():
    with pytest.raises(StaleError):
        TemporalEncoder(TemporalConfig(num_heads=5), D, C)
    with pytest.raises(StaleError):
        TemporalEncoder(TemporalConfig(kind="cnn", cnn_kernel=2), D, C)
