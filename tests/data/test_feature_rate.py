"""The feature rate implied by lengths and durations, and the conventions it matches."""

from __future__ import annotations

import numpy as np
import pytest

from stale.data.features.rate import CONVENTIONS, estimate_rate
from stale.data.timeline import NativeTimeline


def _release(clip, stride, fps, n=40, seed=0, lo=20.0, hi=300.0):
    """Lengths exactly as an extractor following NativeTimeline gives them."""
    rng = np.random.default_rng(seed)
    durations = {f"v{i}": float(rng.uniform(lo, hi)) for i in range(n)}
    tl = NativeTimeline(stride, clip, fps)
    return {v: tl.num_features(int(d * fps)) for v, d in durations.items()}, durations


@pytest.mark.parametrize("conv", CONVENTIONS, ids=lambda c: c.name)
def test_each_convention_is_recognised_from_its_own_lengths(conv):
    lengths, durations = _release(conv.clip_frames, conv.stride, conv.fps)
    est = estimate_rate(lengths, durations)
    assert est.slope == pytest.approx(conv.fps / conv.stride, rel=0.01)
    # the intercept is 1 - clip/stride, less the 0.5 the floor takes on average
    assert est.intercept == pytest.approx(1 - conv.clip_frames / conv.stride - 0.5, abs=0.6)
    names = [m["name"] for m in est.matches]
    assert conv.name in names
    # conventions of another rate never match
    assert all(abs(c.rate - conv.rate) <= 0.03 * c.rate for c in CONVENTIONS if c.name in names)
    assert est.seconds_per_feature == pytest.approx(conv.stride / conv.fps, rel=0.01)


def test_same_rate_different_clip_is_told_apart_by_the_intercept():
    # 16-frame clips every 16 frames at 30 fps vs a hypothetical 1-frame one at 1.875 fps: same rate
    lengths, durations = _release(16, 16, 30.0)
    est = estimate_rate(lengths, durations)
    assert [m["name"] for m in est.matches] == ["clips16-30fps"]
    lengths, durations = _release(64, 16, 30.0)     # intercept 1 - 4 = -3: not the 16-frame convention
    assert "clips16-30fps" not in [m["name"] for m in estimate_rate(lengths, durations).matches]


def test_fixed_length_unknown_rate_and_no_overlap():
    rng = np.random.default_rng(1)
    durations = {f"v{i}": float(rng.uniform(10, 200)) for i in range(20)}
    est = estimate_rate({v: 100 for v in durations}, durations)
    assert est.fixed_length == 100 and est.matches == [] and "resampled" in est.line()
    odd = estimate_rate({v: int(3.3 * d) for v, d in durations.items()}, durations)
    assert odd.matches == [] and odd.slope == pytest.approx(3.3, rel=0.01) and "no known convention" in odd.line()
    assert estimate_rate({"a": 5}, {"b": 10.0}).videos == 0
    # durations too alike for a fit: the median rate decides
    alike = {f"v{i}": 30.0 + i * 0.1 for i in range(5)}
    est = estimate_rate({v: int(10 * d) for v, d in alike.items()}, alike)
    assert est.slope is None and est.per_second_median == pytest.approx(10, rel=0.01)
    assert [m["name"] for m in est.matches] == ["frames-10fps"]
