"""``stale extract --workers N``: decoding in worker processes writes the bytes one process
writes, applies the same bad-video policy (never a hang), and ``--fps`` / ``--convention``
resample videos and record the feature rate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from media_util import CLIP_SCHEDULES, extract_cfg
from stale.core.errors import StaleError
from stale.pipeline.extract import ExtractConfig, extract_videos

av = pytest.importorskip("av")
SCHEDULES = CLIP_SCHEDULES

_cfg = extract_cfg


def _strip(meta):
    return {v: {k: x for k, x in info.items() if k != "timing_s"} for v, info in meta["videos"].items()}


def test_workers_write_the_bytes_of_one_process(media, tmp_path):
    folder, weights = media
    one = extract_videos([folder], tmp_path / "one", _cfg(weights))
    two = extract_videos([folder], tmp_path / "two", _cfg(weights, workers=2))
    assert sorted(two.extracted) == sorted(one.extracted) and len(one.extracted) == len(SCHEDULES)
    for vid in one.extracted:
        a = (tmp_path / "one" / f"{vid}.npy").read_bytes()
        assert (tmp_path / "two" / f"{vid}.npy").read_bytes() == a
        assert np.load(tmp_path / "one" / f"{vid}.npy").shape[0] > 1
    metas = [json.loads((tmp_path / d / "extract_meta.json").read_text()) for d in ("one", "two")]
    assert _strip(metas[0]) == _strip(metas[1])
    assert all(set(info["timing_s"]) == {"decode", "encode"} for info in metas[1]["videos"].values())
    # more workers than videos, and resume with workers: nothing redone
    again = extract_videos([folder], tmp_path / "two", _cfg(weights, workers=3))
    assert again.extracted == [] and sorted(again.resumed) == sorted(one.extracted)


def test_a_corrupt_video_in_a_worker_is_one_line_or_counted(media, tmp_path):
    folder, weights = media
    bad_dir = tmp_path / "in"
    bad_dir.mkdir()
    for p in folder.iterdir():
        (bad_dir / p.name).write_bytes(p.read_bytes())
    good = (bad_dir / "clip1.mp4").read_bytes()
    (bad_dir / "clip1.mp4").write_bytes(good[: len(good) // 3])           # truncated mid-stream
    (bad_dir / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(StaleError) as err:
        extract_videos([bad_dir], tmp_path / "out", _cfg(weights, workers=2))
    assert "\n" not in str(err.value) and ("broken.mp4" in str(err.value) or "clip1.mp4" in str(err.value))
    summary = extract_videos([bad_dir], tmp_path / "out2", _cfg(weights, workers=2, skip_bad=True))
    assert sorted(summary.bad) == sorted([str(bad_dir / "broken.mp4"), str(bad_dir / "clip1.mp4")])
    assert "truncated" in summary.bad[str(bad_dir / "clip1.mp4")]
    assert sorted(summary.extracted) == ["clip0", "clip2", "clip3", "clip4"]
    meta = json.loads((tmp_path / "out2" / "extract_meta.json").read_text())
    assert sorted(meta["skipped"]) == sorted(summary.bad) and sorted(meta["videos"]) == sorted(summary.extracted)
    # the same policy in one process: the same counts and files
    inline = extract_videos([bad_dir], tmp_path / "out3", _cfg(weights, skip_bad=True))
    assert inline.bad == summary.bad
    for vid in summary.extracted:
        assert (tmp_path / "out3" / f"{vid}.npy").read_bytes() == (tmp_path / "out2" / f"{vid}.npy").read_bytes()


def test_fps_resamples_and_the_rate_is_recorded(media, tmp_path):
    folder, weights = media
    video = folder / "clip1.mp4"                                  # 1.5 s at 10 fps = 15 frames
    extract_videos([video], tmp_path / "native", _cfg(weights))
    extract_videos([video], tmp_path / "fast", _cfg(weights, fps=30.0, stride=6, convention=None))
    native = json.loads((tmp_path / "native" / "extract_meta.json").read_text())
    fast = json.loads((tmp_path / "fast" / "extract_meta.json").read_text())
    assert native["fps"] is None and native["features_per_second"] is None
    assert native["videos"]["clip1"]["num_frames"] == 15 and native["videos"]["clip1"]["features_per_second"] == 2.5
    info = fast["videos"]["clip1"]
    assert fast["fps"] == 30.0 and fast["features_per_second"] == 5.0
    assert info["num_frames"] == 45 and info["fps"] == 30.0 and info["native_fps"] == 10.0
    assert info["duration"] == pytest.approx(1.5) and info["num_features"] == (45 - 4) // 6 + 1
    # frames repeated 3x on the 30 fps grid: clip i's centre frame 6i+2 is source frame (6i+2)//3
    feats30, feats10 = np.load(tmp_path / "fast" / "clip1.npy"), np.load(tmp_path / "native" / "clip1.npy")
    assert feats30.shape[0] == 7
    # each source frame is shown 3x on the 30 fps grid: 30 fps clip 1 samples grid frame 6 + 2 = 8,
    # i.e. source frame 2, which is native clip 0's centre frame (0 + 2)
    np.testing.assert_allclose(feats30[1], feats10[0], atol=1e-6)
    with pytest.raises(StaleError, match="other settings.*fps"):
        extract_videos([video], tmp_path / "fast", _cfg(weights, stride=6))


def test_convention_presets_and_their_conflicts():
    from stale.data.features.rate import EXTRACT_PRESETS, apply_preset

    assert apply_preset("actionformer-thumos14", 16, 16, None) == (16, 4, 30.0)
    assert EXTRACT_PRESETS["actionformer-thumos14"].rate == 7.5
    assert apply_preset("stale-anet-clip", 16, 16, 15.0) == (16, 16, 15.0)   # agreeing values are fine
    assert apply_preset(None, 8, 2, 12.0) == (8, 2, 12.0)
    with pytest.raises(StaleError, match="--convention actionformer-thumos14 sets --stride 4; got --stride 8"):
        apply_preset("actionformer-thumos14", 16, 8, None)
    with pytest.raises(StaleError, match="sets --fps 30; got --fps 25"):
        apply_preset("actionformer-thumos14", 16, 16, 25.0)
    with pytest.raises(StaleError, match="unknown; choose one of actionformer-thumos14, stale-anet-clip"):
        apply_preset("i3d", 16, 16, None)


def test_the_declared_rate_is_read_back_by_the_source_and_inspect(media, tmp_path):
    import stale
    from stale.data.features import FeatureStore
    from stale.data.timeline import NativeTimeline
    from stale.pipeline.features import format_inspect, inspect_features, source_config

    folder, weights = media
    out = tmp_path / "thumos"
    stale.extract(folder / "clip1.mp4", out, weights=str(weights), convention="actionformer-thumos14",
                  device="cpu", progress=False)
    meta = json.loads((out / "extract_meta.json").read_text())
    assert (meta["convention"], meta["clip_frames"], meta["stride"], meta["fps"], meta["features_per_second"]) == \
        ("actionformer-thumos14", 16, 4, 30.0, 7.5)
    info = meta["videos"]["clip1"]
    assert info["num_frames"] == 45 and info["num_features"] == (45 - 16) // 4 + 1 == 8
    tl = FeatureStore(out).timeline("clip1")
    assert tl == NativeTimeline(4, 16, 30.0) and tl.index_to_seconds(2) == pytest.approx((2 * 4 + 8) / 30)
    assert FeatureStore(out).timeline("other") is None and FeatureStore(folder.parent / "w").timeline("x") is None
    report = inspect_features(source_config([out]))
    assert report["declared_rate"]["features_per_second"] == 7.5 and report["problems"]["count"] == 0
    assert report["rate"]["videos"] == 1 and report["rate"]["per_second_median"] == pytest.approx(8 / 1.5)
    text = format_inspect(report)
    assert ("feature rate declared by extract_meta.json: 7.5 features/s: 16-frame clips every 4 frames at 30 fps "
            "(actionformer-thumos14); feature i is centred at (i * 4 + 8) / 30 s") in text
    # an index that disagrees with the file is a problem named by inspect
    meta["videos"]["clip1"]["num_features"] = 9
    (out / "extract_meta.json").write_text(json.dumps(meta))
    bad = inspect_features(source_config([out]))
    assert bad["problems"]["count"] == 1 and "8 features but extract_meta.json lists 9" in bad["problems"]["examples"][0]


def test_workers_are_spawned_to_die_with_the_extracting_process(monkeypatch, tmp_path):
    """The DataLoader's workers get die_with_parent with this process's id (a real kill -9 is
    tested in tests/core), are spawned, and pin memory only for CUDA."""
    import functools
    import os

    import torch

    from stale.pipeline import extract_decode

    seen = []

    class Loader:
        def __init__(self, dataset, **kwargs):
            seen.append(kwargs)

        def __iter__(self):
            return iter(())

    monkeypatch.setattr(torch.utils.data, "DataLoader", Loader)
    s = extract_decode.Sampling(4, 4, 1, 2, None, False, (32, 32), (0.5,) * 3, (0.5,) * 3)
    for pin in (False, True):
        assert list(extract_decode.video_items([tmp_path / "a.mp4", tmp_path / "b.mp4"], s, 3, pin)) == []
    init = seen[0]["worker_init_fn"]
    assert isinstance(init, functools.partial) and init.args == (os.getpid(),)
    assert seen[0]["multiprocessing_context"] == "spawn" and seen[0]["num_workers"] == 2   # no more than videos
    assert [k["pin_memory"] for k in seen] == [False, True] and seen[0]["batch_size"] is None
    calls = []
    monkeypatch.setattr(extract_decode, "die_with_parent", lambda pid: calls.append(pid))
    threads = torch.get_num_threads()
    try:
        init(0)
        assert calls == [os.getpid()] and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
