"""Window geometry (stale.data.windows) and the training windows (stale.data.window_dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from stale.data.annotations import Segment, Video
from stale.data.features.npy import FeatureStore
from stale.data.timeline import resample_features
from stale.data.window_dataset import WindowedVideos, WindowSettings, training_windows
from stale.data.windows import (cut_segments, grown_top_n, num_steps, num_windows, plan_windows, window_features,
                                window_starts, window_stride)


@pytest.mark.parametrize("length,window,overlap", [(1000, 128, 0.5), (129, 128, 0.5), (300, 64, 0.25),
                                                   (64, 64, 0.5), (1001, 100, 0.0), (777, 32, 0.9)])
def test_windows_cover_every_snippet_overlap_and_end_at_the_video_end(length, window, overlap):
    starts = window_starts(length, window, overlap)
    assert starts[0] == 0 and starts[-1] == length - window          # the last window ends at the end
    assert np.all(np.diff(starts) > 0)
    stride = window_stride(window, overlap)
    assert np.all(np.diff(starts)[:-1] == stride)                    # regular, only the last one aligned
    assert len(starts) == 1 or np.diff(starts)[-1] <= stride
    covered = np.zeros(length, dtype=int)
    for s in starts:
        covered[s:s + window] += 1
    assert covered.min() >= 1                                        # every snippet is in a window
    if overlap > 0 and len(starts) > 1:                              # neighbours share window - stride snippets
        assert np.all(starts[1:] - starts[:-1] <= window - round(window * overlap) + 1)
    assert num_windows(length, window, overlap) == len(starts)


def test_a_video_shorter_than_a_window_gets_one_padded_window():
    assert window_starts(40, 128, 0.5).tolist() == [0]
    rows = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    out = window_features(rows, 40, 0, 128)
    # padding repeats the last snippet (a zero row is degenerate for the cosine head)
    assert out.shape == (128, 3) and np.array_equal(out[:40], rows) and (out[40:] == rows[-1]).all()
    resampled = window_features(rows, 25, 0, 128)          # resampled, then padded the same way
    np.testing.assert_allclose(resampled[:25], resample_features(rows, 25), atol=2e-4)
    assert (resampled[25:] == resampled[24]).all()


def test_training_offset_shifts_inner_windows_only():
    a, b = window_starts(1000, 100, 0.5), window_starts(1000, 100, 0.5, offset=17)
    assert a[0] == b[0] == 0 and a[-1] == b[-1] == 900
    assert b[1] == 17 and b[2] == 67


@pytest.mark.parametrize("n,length,start", [(500, 123, 0), (500, 123, 60), (97, 300, 250), (300, 300, 17)])
def test_window_features_equal_a_slice_of_the_resampled_video(n, length, start):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n, 5)).astype(np.float32)
    want = resample_features(feats, length)[start:start + 64]
    got = window_features(feats, length, start, 64)
    np.testing.assert_allclose(got[:len(want)], want, atol=2e-4)  # torch: float32 scale
    assert (got[len(want):] == got[len(want) - 1]).all()


def test_plan_maps_window_snippets_to_video_seconds():
    plan = plan_windows(600.0, 4500, 128, 0.5, time_step=0.5)       # 1200 snippets of 0.5 s
    assert plan.length == 1200 and plan.step == pytest.approx(0.5)
    assert plan.window_seconds == pytest.approx(64.0)
    k = 3
    assert plan.seconds(k, 0) == pytest.approx(plan.starts[k] * 0.5)
    assert plan.seconds(k, 128) == pytest.approx(plan.starts[k] * 0.5 + 64.0)
    assert num_steps(600.0, 4500, None) == 4500 and num_steps(1.0, 3, 10.0) == 1
    assert grown_top_n(100, 1200, 128) == 1000 and grown_top_n(100, 50, 128) == 100


def test_cut_policy_keeps_instances_mostly_inside_and_counts_every_decision():
    # window [10, 20): inside, 70 % inside, 30 % inside, outside, exactly half inside, spanning it (a third inside)
    s = np.array([12.0, 7.0, 17.0, 30.0, 18.0, 0.0])
    e = np.array([15.0, 17.0, 27.0, 35.0, 22.0, 30.0])
    cut = cut_segments(s, e, 10.0, 20.0, min_inside=0.5)
    assert cut.index.tolist() == [0, 1, 4]
    np.testing.assert_allclose(cut.start, [2.0, 0.0, 8.0])
    np.testing.assert_allclose(cut.end, [5.0, 7.0, 10.0])
    assert cut.counts.to_dict() == {"inside": 1, "cut_kept": 2, "cut_dropped": 2}
    strict = cut_segments(s, e, 10.0, 20.0, min_inside=1.0)
    assert strict.index.tolist() == [0] and strict.counts.cut_dropped == 4
    assert cut_segments(s, e, 10.0, 20.0, min_inside=0.0).counts.cut_kept == 4


def _video_store(tmp_path, n=400, dim=4):
    rng = np.random.default_rng(1)
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "v.npy", rng.normal(size=(n, dim)).astype(np.float32))
    video = Video("v", "training", 200.0, [Segment(10.0, 14.0, "a"), Segment(31.0, 34.5, "b"),
                                           Segment(60.0, 80.0, "b"), Segment(100.0, 190.0, "a")])
    return video, FeatureStore(tmp_path / "f")


def test_training_windows_are_deterministic_per_seed_and_count_the_cuts(tmp_path):
    video, store = _video_store(tmp_path)
    settings = WindowSettings(window=64, overlap=0.5, time_step=None, min_inside=0.5)   # 0.5 s snippets
    w0, c0 = training_windows([video], store, settings, seed=0)
    again, _ = training_windows([video], store, settings, seed=0)
    w1, _ = training_windows([video], store, settings, seed=3)
    starts = lambda ws: [int(w.plan.starts[w.k]) for w in ws]   # noqa: E731
    assert starts(w0) == starts(again) and starts(w0) != starts(w1)
    assert all(w.window_video.duration == pytest.approx(32.0) for w in w0)
    # every kept instance lies inside its window, in window seconds
    for w in w0:
        assert all(0.0 <= s.start < s.end <= 32.0 + 1e-9 for s in w.window_video.segments)
    # an independent count of the policy over the same windows
    want = {"inside": 0, "cut_kept": 0, "cut_dropped": 0}
    for w in w0:
        a = w.plan.starts[w.k] * w.plan.step
        b = a + w.plan.window_seconds
        for seg in video.segments:
            inter = max(0.0, min(seg.end, b) - max(seg.start, a))
            if inter <= 0:
                continue
            if seg.start >= a and seg.end <= b:
                want["inside"] += 1
            elif inter / (seg.end - seg.start) >= 0.5:
                want["cut_kept"] += 1
            else:
                want["cut_dropped"] += 1
    assert c0.to_dict() == want and want["cut_kept"] > 0 and want["cut_dropped"] > 0


def test_windowed_videos_stream_the_windows_of_a_stored_video(tmp_path):
    video, store = _video_store(tmp_path)
    wv = WindowedVideos.from_store([video], store, WindowSettings(window=100, overlap=0.5, time_step=1.0))
    items = list(wv.iter_windows())
    plan = wv.plans[0]
    assert plan.length == 200 and len(items) == len(plan.starts) == wv.num_windows()
    assert [it.last for it in items] == [False] * (len(items) - 1) + [True]
    full = resample_features(store.load("v"), 200)
    for it in items:
        s = int(plan.starts[it.k])
        np.testing.assert_allclose(it.features, full[s:s + 100], atol=2e-4)


def _rss_file_kib() -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def test_windows_read_from_a_memory_map_give_their_pages_back(tmp_path):
    """Reading a long memory-mapped video window by window keeps resident memory flat: the pages
    of rows no later window needs are released (``release_rows``), and the values read are
    those of the file whatever was released."""
    from stale.data.windows import release_rows

    if _rss_file_kib() is None:
        pytest.skip("no /proc/self/status RssFile on this system")
    n, c = 40_000, 256                                  # 39 MiB of float32
    path = tmp_path / "long.npy"
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, c))
    data[:] = np.arange(n, dtype=np.float32)[:, None]
    del data
    arr = np.load(path, mmap_mode="r")
    assert release_rows(np.asarray(arr), n) == 0        # nothing to release in an array's copy of it
    before = _rss_file_kib()
    assert float(arr.sum(dtype=np.float64)) == float(c) * n * (n - 1) / 2   # every page touched
    touched = _rss_file_kib() - before
    assert touched > 30_000                              # KiB: the file's pages are resident now
    released = release_rows(arr, n)
    assert released > 38 * 2 ** 20
    assert _rss_file_kib() - before < touched - 30_000
    np.testing.assert_array_equal(arr[n - 3:, 0], [n - 3, n - 2, n - 1])   # re-read from the page cache
    # through the windowed reader: same windows as without release, resident memory stays low
    settings = WindowSettings(window=128, overlap=0.5, time_step=None, min_inside=0.5, edge_weight=0.5)
    videos = WindowedVideos(["v"], [n / 7.5], [n], lambda _: arr, settings)
    start_rss = _rss_file_kib()
    peak, got = 0, []
    for item in videos.iter_windows():
        peak = max(peak, _rss_file_kib() - start_rss)
        got.append(item.features[0, 0])
    assert peak < 4_000                                  # KiB: a few windows' pages, not the 39 MiB file
    np.testing.assert_array_equal(got, videos.plans[0].starts.astype(np.float32))
