import math

import numpy as np
import pytest

from stale.core.errors import StaleError
from stale.synth.layouts import get_layout, load_source, select_videos


def test_thumos_feature_count_and_centres():
    lay = get_layout("thumos14")
    videos, classes, extra = load_source(lay)
    assert len(videos) == 412 and len(classes) == 20 and classes[0] == "BaseballPitch"
    for v in videos[:50]:
        frames = math.floor(v.duration * v.fps + 1e-6)
        assert lay.num_features(v) == (frames - 16) // 4 + 1
        c = lay.feature_centres(v)
        assert np.allclose(np.diff(c), 4 / v.fps) and c[0] == pytest.approx(8 / v.fps)


def test_activitynet_convention():
    lay = get_layout("activitynet")
    videos, classes, extra = load_source(lay)
    assert len(classes) == 200 and "taxonomy" in extra
    v = next(v for v in videos if v.subset == "validation")
    assert lay.num_features(v) == (math.floor(v.duration * 15 + 1e-6) - 16) // 16 + 1
    assert lay.feature_file(v.id) == f"v_{v.id}.npy"


def test_select_videos_seeded_per_subset():
    videos, _, _ = load_source(get_layout("thumos14"))
    a = select_videos(videos, ("Validation", "Test"), 5, seed=1)
    b = select_videos(videos, ("Validation", "Test"), 5, seed=1)
    c = select_videos(videos, ("Validation", "Test"), 5, seed=2)
    assert [v.id for v in a] == [v.id for v in b] != [v.id for v in c]
    assert sorted(v.subset for v in a) == ["Test"] * 5 + ["Validation"] * 5
    # one subset's draw does not depend on which others are asked for
    only_val = select_videos(videos, ("Validation",), 5, seed=1)
    assert [v.id for v in only_val] == [v.id for v in a if v.subset == "Validation"]
    with pytest.raises(StaleError, match="subset"):
        select_videos(videos, ("validation",), 5, seed=1)
    with pytest.raises(StaleError, match="layout"):
        get_layout("ava")
