"""``SynthConfig.length_factor``: videos k times longer with the same actions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stale.core.errors import StaleError
from stale.synth.generate import SynthDataset
from stale.synth.presets import PRESETS


def dataset(k: int) -> SynthDataset:
    cfg = replace(PRESETS["aligned"], dim=8, max_videos_per_subset=1, length_factor=k)
    emb = np.random.default_rng(0).normal(size=(20, 8))
    return SynthDataset(cfg, emb)


def test_three_times_longer_videos_keep_their_action_lengths():
    one, three = dataset(1), dataset(3)
    assert [v.id for v in one.videos] == [v.id for v in three.videos]
    for a, b in zip(one.videos, three.videos):
        assert b.duration == pytest.approx(3 * a.duration)
        assert len(b.segments) == 3 * len(a.segments)
        lengths = sorted(round(s.end - s.start, 6) for s in b.segments)
        assert lengths == sorted(round(s.end - s.start, 6) for s in a.segments for _ in range(3))
        assert b.segments[len(a.segments)].start == pytest.approx(a.segments[0].start + a.duration)
    v1, v3 = one.videos[0], three.videos[0]
    n1, n3 = one.layout.num_features(v1), three.layout.num_features(v3)   # clips lost at each end: ~3 per video
    assert abs(n3 - 3 * n1) <= 8 and three.render(v3).features.shape[0] == n3


def test_length_factor_is_checked():
    with pytest.raises(StaleError, match="length_factor"):
        dataset(0)
