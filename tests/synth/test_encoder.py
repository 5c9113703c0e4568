import numpy as np
import pytest

from stale.core.errors import StaleError
from stale.synth.encoder import RandomVisualEncoder


def _emb(k=12, e=32, seed=0):
    rng = np.random.default_rng(seed)
    x = 3.0 * rng.standard_normal(e) + rng.standard_normal((k, e))  # large shared component
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_shape_norm_determinism():
    emb = _emb()
    a = RandomVisualEncoder(emb, 40, np.random.default_rng(1))
    b = RandomVisualEncoder(emb, 40, np.random.default_rng(1))
    pa = a(emb)
    assert pa.shape == (12, 40)
    assert np.allclose(np.linalg.norm(pa, axis=1), 1.0)
    assert np.array_equal(pa, b(emb))
    assert not np.allclose(pa, RandomVisualEncoder(emb, 40, np.random.default_rng(2))(emb))


def test_centring_spreads_prototypes_and_map_is_smooth_and_nonlinear():
    emb = _emb()
    enc = RandomVisualEncoder(emb, 64, np.random.default_rng(0))
    p = enc(emb)
    off = ~np.eye(12, dtype=bool)
    assert (emb @ emb.T)[off].mean() > 0.8  # inputs nearly collinear
    assert (p @ p.T)[off].mean() < 0.4  # prototypes spread out
    # smooth: a small text perturbation moves the prototype a little
    near = emb + 0.002 * np.random.default_rng(5).standard_normal(emb.shape)
    assert (np.sum(enc(near) * p, 1) > 0.99).all()
    # non-linear: the pre-normalisation output is not affine in the input
    h = lambda x: np.tanh(enc.normalised_text(x) @ enc.w1.T + enc.b1) @ enc.w2.T
    mid = 0.5 * (emb[0] + emb[1])
    assert not np.allclose(h(mid[None])[0], 0.5 * (h(emb[:1])[0] + h(emb[1:2])[0]), atol=1e-3)


def test_bad_input():
    with pytest.raises(StaleError):
        RandomVisualEncoder(np.ones((5, 8)), 16, np.random.default_rng(0))
    enc = RandomVisualEncoder(_emb(), 16, np.random.default_rng(0))
    with pytest.raises(StaleError):
        enc(np.ones((2, 7)))
