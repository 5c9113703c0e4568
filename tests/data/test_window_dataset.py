"""Training windows drawn per epoch (``data.train_windows: random``,
:class:`stale.data.window_dataset.DrawnWindowDataset`): where they start, what they hold, and how
the epoch travels in the item index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stale.data.annotations import Segment, Video
from stale.data.features.npy import FeatureStore
from stale.data.timeline import resample_features
from stale.data.window_dataset import DrawnWindowDataset, WindowSettings, drawn_start


def _store(tmp_path, lengths=(400, 30), dim=4):
    rng = np.random.default_rng(2)
    (tmp_path / "f").mkdir()
    videos = []
    for i, n in enumerate(lengths):
        np.save(tmp_path / "f" / f"v{i}.npy", rng.normal(size=(n, dim)).astype(np.float32))
    videos.append(Video("v0", "training", 200.0, [Segment(10.0, 14.0, "a"), Segment(31.0, 34.5, "b"),
                                                  Segment(60.0, 80.0, "b"), Segment(100.0, 190.0, "a")]))
    videos.append(Video("v1", "training", 15.0, [Segment(2.0, 6.0, "a")]))       # shorter than a window
    return videos, FeatureStore(tmp_path / "f")


SETTINGS = WindowSettings(window=64, overlap=0.5, time_step=1.0, min_inside=0.5)   # v0: 200 snippets


def test_starts_are_uniform_in_range_fixed_per_epoch_and_redrawn_between_epochs(tmp_path):
    videos, store = _store(tmp_path)
    ds = DrawnWindowDataset(videos, store, SETTINGS, seed=0, per_video=3)
    assert len(ds) == 6
    again = DrawnWindowDataset(videos, store, SETTINGS, seed=0, per_video=3)
    other = DrawnWindowDataset(videos, store, SETTINGS, seed=1, per_video=3)
    n = len(ds)
    starts = lambda d, e: [d.window_of(e * n + s)[2] for s in range(3)]   # noqa: E731  (v0's slots)
    assert starts(ds, 0) == starts(again, 0) and starts(ds, 0) != starts(other, 0)
    assert starts(ds, 0) != starts(ds, 1)
    # a plain index is epoch 0: what a one-pass reader (the linear probe) sees
    assert [ds.window_of(i) for i in range(n)] == [ds.window_of(0 * n + i) for i in range(n)]
    many = np.array([drawn_start(0, e, "v0", j, 136) for e in range(300) for j in range(3)])
    assert many.min() == 0 and many.max() == 136 and abs(many.mean() - 68) < 6        # uniform in [0, M - T]
    # the short video always gives its one window at 0
    assert {ds.window_of(e * n + 3 + j)[2] for e in range(5) for j in range(3)} == {0}


def test_items_hold_the_window_features_and_the_edge_cut_instances(tmp_path):
    videos, store = _store(tmp_path)
    ds = DrawnWindowDataset(videos, store, SETTINGS, seed=4, per_video=2)
    full = resample_features(store.load("v0"), 200)                                 # 1 s snippets
    seen = 0
    for idx in [e * len(ds) + j for e in range(12) for j in (0, 1)]:
        i, feats, target, wv = ds[idx]
        _, _, s = ds.window_of(idx)
        assert i == idx and feats.shape == (64, 4)
        np.testing.assert_allclose(feats, full[s:s + 64], atol=2e-4)
        assert wv.id == f"v0@{s}" and wv.duration == pytest.approx(64.0) and target is None
        # an independent edge-cut decision over v0's instances, in window seconds
        want = []
        for seg in videos[0].segments:
            a, b = max(seg.start, s), min(seg.end, s + 64.0)
            if b > a and (b - a) / (seg.end - seg.start) >= 0.5:
                want.append((a - s, b - s, seg.label))
        assert [x.label for x in wv.segments] == [w[2] for w in want]
        got = np.array([(x.start, x.end) for x in wv.segments]).reshape(-1, 2)
        np.testing.assert_allclose(got, np.array([w[:2] for w in want]).reshape(-1, 2), atol=1e-9)
        seen += len(want)
    assert seen > 0
    # the short video: 15 snippets, then its last snippet repeated
    _, feats, _, wv = ds[2]
    short = resample_features(store.load("v1"), 15)
    np.testing.assert_allclose(feats[:15], short, atol=2e-4)
    assert (feats[15:] == feats[14]).all() and [(x.start, x.end) for x in wv.segments] == [(2.0, 6.0)]


def test_epoch_items_and_batches_carry_the_windows(tmp_path):
    videos, store = _store(tmp_path)
    ds = DrawnWindowDataset(videos, store, SETTINGS, seed=0, per_video=1)
    order = torch.tensor([1, 0])
    assert ds.epoch_items(order, 3).tolist() == [7, 6]
    batch = ds.collate([ds[i] for i in ds.epoch_items(order, 3).tolist()])
    s = ds.window_of(6)[2]
    assert batch.index.tolist() == [7, 6] and batch.video_ids == ["v1@0", f"v0@{s}"]
    assert batch.durations.tolist() == pytest.approx([64 * 15.0 / 15, 64.0])
    assert batch.features.shape == (2, 64, 4)
    # the cache holds whole videos at the window step; cached and uncached reads agree
    cached = DrawnWindowDataset(videos, store, SETTINGS, seed=0, per_video=1, cache_bytes=10**6)
    np.testing.assert_array_equal(cached.features(6), ds.features(6))
    np.testing.assert_array_equal(cached.features(6), cached.features(6))
    assert set(cached._cache) == {0}


def test_the_first_epochs_counts_match_its_draws(tmp_path):
    videos, store = _store(tmp_path)
    ds = DrawnWindowDataset(videos, store, SETTINGS, seed=0, per_video=4)
    total = ds.epoch_counts(2)
    kept = sum(len(ds.window(2 * len(ds) + i)[0].segments) for i in range(len(ds)))
    assert total.inside + total.cut_kept == kept and kept > 0
