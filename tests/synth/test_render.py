import numpy as np

from stale.synth.render import RenderConfig, box_smooth, trapezoid_weights
from stale.synth.stats import _unit


def test_trapezoid_weights():
    c = np.array([0.0, 9.0, 10.0, 12.5, 15.0, 20.0, 21.0, 30.0])
    w = trapezoid_weights(c, np.array([10.0, 5.0]), np.array([20.0, 5.0]), softness=0.2)
    assert w.shape == (8, 2)
    assert np.allclose(w[:, 0], [0, 0, 0.5, 1, 1, 0.5, 0, 0])  # ramp 2 s, half-weight at boundaries
    assert (w[:, 1] == 0).all()  # zero-length segment renders nothing
    hard = trapezoid_weights(c, np.array([10.0]), np.array([20.0]), softness=0.0)
    assert np.array_equal(hard[:, 0] > 0.5, (c > 10) & (c < 20))


def test_box_smooth_matches_convolution():
    x = np.random.default_rng(0).standard_normal((50, 3))
    for w in (1, 4, 5):
        left = (w - 1) // 2
        padded = np.concatenate([np.repeat(x[:1], left, 0), x, np.repeat(x[-1:], w - 1 - left, 0)])
        ref = np.stack([np.convolve(padded[:, j], np.ones(w) / w, mode="valid") for j in range(3)], 1)
        assert np.allclose(box_smooth(x, w), ref)


def test_rendered_video_alignment_and_distractors(small_thumos):
    ds = small_thumos
    v = max(ds.videos, key=lambda v: len(v.segments))
    r = ds.render(v)
    T = ds.layout.num_features(v)
    assert r.features.shape == (T, ds.cfg.dim) and r.features.dtype == np.float32
    centres = ds.layout.feature_centres(v)
    protos = _unit(ds.parts.prototypes)
    sims = _unit(r.features) @ protos.T
    for label in {s.label for s in v.segments}:
        k = ds.class_index[label]
        inside = np.zeros(T, bool)
        for s in v.segments:
            if s.label == label:
                inside |= (centres > s.start) & (centres < s.end)
        anywhere = np.zeros(T, bool)
        for s in v.segments:
            anywhere |= (centres > s.start - 1) & (centres < s.end + 1)
        assert sims[inside, k].mean() > sims[~anywhere, k].mean() + 0.05
    # distractors avoid annotated segments and look like their pseudo-class there
    for s, e, p in r.distractors:
        assert all(e <= g.start or s >= g.end for g in v.segments)
        mid = (centres > s + 0.3 * (e - s)) & (centres < e - 0.3 * (e - s))
        if mid.any():
            pp = _unit(ds.parts.pseudo[p])
            assert (_unit(r.features[mid]) @ pp).mean() > (_unit(r.features[r.fg_weight == 0]) @ pp).mean()
    assert ((r.label >= 0) == (r.fg_weight >= 0.5)).all()


def test_render_config_validation():
    import pytest

    from stale.core.errors import StaleError
    with pytest.raises(StaleError, match="noise"):
        RenderConfig(noise=-1.0).validate()
