from dataclasses import dataclass

import numpy as np
import pytest
import torch

from stale.core.errors import StaleError
from stale.model.labels import (
    LabelConfig,
    LabelStats,
    assign_labels,
    targets_for_video,
)


def cover_of(t):
    """Snippets of each fg row, as sets, keyed by row."""
    return {r: set(np.flatnonzero(t.instance_masks[r])) for r in range(len(t.snippet_labels))}


def test_boundaries_on_snippet_edges():
    t = assign_labels(10.0, [2.0], [5.0], [1], num_classes=3, num_snippets=10)
    assert t.snippet_labels.tolist() == [3, 3, 1, 1, 1, 3, 3, 3, 3, 3]
    assert t.fg_mask.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    expected_row = np.zeros(10, dtype=np.float32)
    expected_row[2:5] = 1
    for r in range(10):
        assert np.array_equal(t.instance_masks[r], expected_row if 2 <= r < 5 else np.zeros(10))
    assert t.instance_masks.dtype == np.float32 and t.snippet_labels.dtype == np.int64
    assert t.stats == LabelStats(instances=1)


def test_half_snippet_overlap_rule():
    # [2.5, 5) overlaps snippet 2 by exactly half a snippet -> covered; [2.6, 5) does not
    a = assign_labels(10.0, [2.5], [5.0], [0], 1, 10)
    b = assign_labels(10.0, [2.6], [5.0], [0], 1, 10)
    assert np.flatnonzero(a.fg_mask).tolist() == [2, 3, 4]
    assert np.flatnonzero(b.fg_mask).tolist() == [3, 4]
    # a stricter rule: whole snippets only
    c = assign_labels(10.0, [2.5], [5.0], [0], 1, 10, LabelConfig(min_overlap=1.0))
    assert np.flatnonzero(c.fg_mask).tolist() == [3, 4]


def test_instance_shorter_than_a_snippet_covers_its_centre_snippet():
    t = assign_labels(10.0, [4.2, 1.7], [4.4, 2.4], [0, 1], 2, 10)
    # [1.7, 2.4] straddles a boundary (0.3 + 0.4 of a snippet) -> centre 2.05 -> snippet 2
    assert t.snippet_labels.tolist() == [2, 2, 1, 2, 0, 2, 2, 2, 2, 2]
    assert t.stats.short == 2
    assert t.instance_masks[4].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    # a zero-length segment inside the video is kept the same way
    z = assign_labels(10.0, [7.5], [7.5], [0], 1, 10)
    assert np.flatnonzero(z.fg_mask).tolist() == [7] and z.stats.outside == 0


def test_overlapping_instances_shorter_wins():
    t = assign_labels(10.0, [0.0, 3.0], [8.0, 5.0], [0, 1], 2, 10)
    assert t.snippet_labels.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 2, 2]
    assert t.stats.contested == 2 and t.stats.unowned == 0
    long_row = np.r_[np.ones(8), np.zeros(2)]
    short_row = np.zeros(10)
    short_row[3:5] = 1
    for r in (0, 1, 2, 5, 6, 7):
        assert np.array_equal(t.instance_masks[r], long_row)
    for r in (3, 4):
        assert np.array_equal(t.instance_masks[r], short_row)
    # input order does not matter
    u = assign_labels(10.0, [3.0, 0.0], [5.0, 8.0], [1, 0], 2, 10)
    assert np.array_equal(u.snippet_labels, t.snippet_labels)
    assert np.array_equal(u.instance_masks, t.instance_masks)


def test_instance_touching_end_and_clipping():
    t = assign_labels(10.0, [7.0], [10.0], [0], 1, 10)
    assert np.flatnonzero(t.fg_mask).tolist() == [7, 8, 9] and t.stats.clipped == 0
    c = assign_labels(10.0, [-3.0, 8.0], [1.0, 12.5], [0, 0], 1, 10)
    assert np.flatnonzero(c.fg_mask).tolist() == [0, 8, 9] and c.stats.clipped == 2
    assert c.instance_masks[9].tolist() == [0] * 8 + [1, 1]


def test_segments_outside_the_video_are_dropped_and_counted():
    t = assign_labels(10.0, [11.0, 10.0, -2.0, 3.0], [12.0, 10.5, 0.0, 4.0], [0, 0, 0, 0], 1, 10)
    assert t.stats.outside == 3 and t.stats.instances == 1
    assert np.flatnonzero(t.fg_mask).tolist() == [3]


def test_video_without_instances():
    t = assign_labels(5.0, [], [], np.array([], dtype=np.int64), 4, 8)
    assert t.snippet_labels.tolist() == [4] * 8
    assert not t.instance_masks.any() and not t.fg_mask.any()
    assert t.instance_masks.shape == (8, 8)


def test_same_segment_two_labels_lower_class_index_wins_and_is_counted():
    # THUMOS14: CliffDiving (index 5) is also annotated Diving (index 2)
    t = assign_labels(20.0, [4.0, 4.0, 12.0], [8.0, 8.0, 14.0], [5, 2, 5], 7, 20)
    assert set(t.snippet_labels[4:8].tolist()) == {2}
    assert set(t.snippet_labels[12:14].tolist()) == {5}
    assert t.stats.same_extent == 1 and t.stats.unowned == 1 and t.stats.contested == 4


def test_every_instance_is_used():
    # the released code kept only the last annotation of each video
    starts = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    t = assign_labels(50.0, starts, starts + 5, [0, 1, 2, 3, 4], 5, 50)
    for i, s in enumerate(starts.astype(int)):
        assert (t.snippet_labels[s:s + 5] == i).all()
    assert t.fg_mask.sum() == 25


def reference_targets(duration, starts, ends, classes, K, T, min_overlap=0.5):
    """Loop implementation of the documented rules, written independently."""
    inst = []
    for s, e, c in zip(starts, ends, classes):
        if e < 0 or s > duration or (e > s and (e <= 0 or s >= duration)):
            continue
        s, e = min(max(s, 0.0), duration), min(max(e, 0.0), duration)
        a, b = s * T / duration, e * T / duration
        cov = [t for t in range(T) if min(t + 1, b) - max(t, a) >= min_overlap - 1e-9]
        if not cov:
            cov = [min(int(np.floor((a + b) / 2)), T - 1)]
        inst.append((e - s, c, len(inst), set(cov)))
    labels = [K] * T
    masks = np.zeros((T, T))
    for t in range(T):
        owners = sorted(x for x in inst if t in x[3])
        if owners:
            labels[t] = owners[0][1]
            masks[t, sorted(owners[0][3])] = 1
    return labels, masks


@pytest.mark.parametrize("seed", range(25))
def test_random_videos_match_reference_and_invariants(seed):
    rng = np.random.default_rng(seed)
    T, K = int(rng.integers(5, 40)), int(rng.integers(1, 6))
    D = float(rng.uniform(5, 200))
    M = int(rng.integers(0, 8))
    s = rng.uniform(-0.1 * D, 1.05 * D, M)
    e = s + rng.exponential(0.2 * D, M) * (rng.random(M) > 0.1)
    c = rng.integers(0, K, M)
    t = assign_labels(D, s, e, c, K, T)
    ref_labels, ref_masks = reference_targets(D, s, e, c, K, T)
    assert t.snippet_labels.tolist() == ref_labels
    assert np.array_equal(t.instance_masks, ref_masks)
    fg = t.snippet_labels < K
    assert np.array_equal(t.fg_mask.astype(bool), fg)
    rows = np.arange(T)
    assert (t.instance_masks[rows[fg], rows[fg]] == 1).all()      # row contains its snippet
    assert not t.instance_masks[~fg].any()
    for r in rows[fg]:
        on = np.flatnonzero(t.instance_masks[r])
        assert on[-1] - on[0] + 1 == on.size                        # one contiguous run


@pytest.mark.parametrize("seed", range(10))
def test_rows_of_one_instance_are_identical(seed):
    rng = np.random.default_rng(100 + seed)
    T, D = 64, 32.0
    cuts = np.sort(rng.choice(np.arange(1, T), size=8, replace=False)) * D / T
    s, e = cuts[0::2], cuts[1::2]          # 4 disjoint instances on snippet edges
    t = assign_labels(D, s, e, rng.integers(0, 3, 4), 3, T)
    for a, b in zip(s * T / D, e * T / D):
        a, b = int(round(a)), int(round(b))
        block = t.instance_masks[a:b]
        expected = np.zeros(T)
        expected[a:b] = 1
        assert (block == expected).all()


def test_input_errors():
    with pytest.raises(StaleError, match="vid1.*ends before"):
        assign_labels(10.0, [5.0], [4.0], [0], 1, 10, video_id="vid1")
    with pytest.raises(StaleError, match="non-finite"):
        assign_labels(10.0, [np.nan], [4.0], [0], 1, 10)
    with pytest.raises(StaleError, match="label"):
        assign_labels(10.0, [1.0], [4.0], [3], 3, 10)
    with pytest.raises(StaleError, match="duration"):
        assign_labels(0.0, [1.0], [4.0], [0], 1, 10)
    with pytest.raises(StaleError, match="length"):
        assign_labels(10.0, [1.0, 2.0], [4.0], [0], 1, 10)
    with pytest.raises(StaleError, match="min_overlap"):
        assign_labels(10.0, [1.0], [4.0], [0], 1, 10, LabelConfig(min_overlap=0.0))


@dataclass
class _Seg:
    start: float
    end: float
    label: str


@dataclass
class _Video:
    id: str
    duration: float
    segments: list


def test_targets_for_video_and_unknown_label_policy():
    v = _Video("v_x", 10.0, [_Seg(1.0, 3.0, "Diving"), _Seg(5.0, 6.0, "Unseen")])
    with pytest.raises(StaleError, match="v_x.*Unseen"):
        targets_for_video(v, ["Run", "Diving"], 10)
    t = targets_for_video(v, ["Run", "Diving"], 10, LabelConfig(unknown_labels="drop"))
    assert t.snippet_labels.tolist() == [2, 1, 1, 2, 2, 2, 2, 2, 2, 2]
    assert t.stats.unknown == 1
    total = t.stats + t.stats
    assert total.unknown == 2 and total.instances == 2


def test_targets_stack():
    from stale.model.outputs import Targets

    a = assign_labels(10.0, [2.0], [5.0], [0], 2, 10)
    b = assign_labels(20.0, [], [], np.array([], dtype=np.int64), 2, 10)
    out = Targets.stack([a, b])
    assert out.snippet_labels.shape == (2, 10) and out.snippet_labels.dtype == torch.int64
    assert out.instance_masks.shape == (2, 10, 10) and out.instance_masks.dtype == torch.uint8
    assert out.fg_mask.shape == (2, 10) and out.fg_mask.dtype == torch.float32
    moved = out.to("cpu")
    assert moved.instance_masks.dtype == torch.float32
    assert torch.equal(moved.instance_masks[0], torch.from_numpy(a.instance_masks))
    assert (out.snippet_labels[1] == 2).all() and len(out) == 2
    assert torch.equal(out.slice(1, 2).snippet_labels, out.snippet_labels[1:])
    with pytest.raises(StaleError, match="snippet counts"):
        Targets.stack([a, assign_labels(10.0, [2.0], [5.0], [0], 2, 12)])
    with pytest.raises(StaleError, match="empty"):
        Targets.stack([])
