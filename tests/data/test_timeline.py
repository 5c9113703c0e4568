import numpy as np
import pytest
import torch

from stale.data.timeline import (
    NativeTimeline,
    resample_features,
    seconds_to_snippet,
    snippet_index,
    snippet_to_seconds,
)


def test_native_timeline_centres_and_inverse():
    tl = NativeTimeline(stride=4, num_frames=16, fps=30.0)
    # feature 0 is centred at frame 8 -> 8/30 s; one feature per 4/30 s
    assert tl.index_to_seconds(0) == pytest.approx(8 / 30)
    assert tl.index_to_seconds(10) == pytest.approx((40 + 8) / 30)
    idx = np.arange(0, 500, 7)
    assert np.allclose(tl.seconds_to_index(tl.index_to_seconds(idx)), idx)
    # before the first centre / after the last one the nearest index is clipped
    assert tl.nearest_index(0.0, 100) == 0
    assert tl.nearest_index(1e6, 100) == 99
    assert tl.num_features(16) == 1 and tl.num_features(20) == 2 and tl.num_features(3) == 1


def test_native_timeline_rejects_bad_parameters():
    with pytest.raises(ValueError):
        NativeTimeline(stride=0, num_frames=16, fps=30.0)


def test_snippet_conversions_at_boundaries():
    d, T = 50.0, 100
    assert seconds_to_snippet(0.0, d, T) == 0
    assert seconds_to_snippet(d, d, T) == T
    assert snippet_to_seconds(T, d, T) == pytest.approx(d)
    # the end of the video belongs to the last snippet; times past it are clipped
    assert snippet_index(d, d, T) == T - 1
    assert snippet_index(-1.0, d, T) == 0
    assert snippet_index(0.4999, d, T) == 0 and snippet_index(0.5, d, T) == 1
    with pytest.raises(ValueError):
        seconds_to_snippet(1.0, 0.0, T)


def test_resample_linear_ramp_is_exact_and_types_preserved():
    # a linear ramp sampled at interval centres stays a linear ramp after resampling
    t_in, t_out = 37, 100
    centres_in = (np.arange(t_in) + 0.5) / t_in
    x = np.stack([centres_in, 2 * centres_in + 1], axis=1).astype(np.float32)
    y = resample_features(x, t_out)
    assert y.shape == (t_out, 2) and y.dtype == np.float32
    centres_out = (np.arange(t_out) + 0.5) / t_out
    inside = (centres_out >= centres_in[0]) & (centres_out <= centres_in[-1])
    assert np.allclose(y[inside, 0], centres_out[inside], atol=1e-6)
    assert np.allclose(y[inside, 1], 2 * centres_out[inside] + 1, atol=1e-6)
    # outside the first/last centre, values are held constant (edge clamping)
    assert np.allclose(y[~inside & (centres_out < 0.5), 0], centres_in[0])
    yt = resample_features(torch.from_numpy(x), t_out)
    assert isinstance(yt, torch.Tensor) and torch.allclose(yt, torch.from_numpy(y))
    with pytest.raises(ValueError):
        resample_features(np.zeros((0, 3), np.float32), 5)
