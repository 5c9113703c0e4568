"""Sliding-window detection (stale.pipeline.windowed) in video seconds, with a transparent
detector: channel k of a snippet above 0.5 means class k, each run of such snippets is one
detection scored by its mean value. Long videos with planted actions check where the windows put
them, that an action across a window edge is found once, and that resizing a long video loses
a short action that windows find (and warns)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from stale.core.errors import StaleError
from stale.data.window_dataset import WindowedVideos, WindowSettings
from stale.model.decoding import Candidates, InferenceConfig, select_detections
from stale.pipeline.config import StaleConfig
from stale.pipeline.predict import LoadedRun
from stale.pipeline.windowed import detect_windowed

STEP = 0.5   # seconds per native feature


class ChannelDetector:
    """``detector(features (B, T, K), names, durations)`` -> Detections: runs of ``x[:, :, k] > 0.5``."""

    def __call__(self, features, class_names, durations, targets=None):
        x = features.numpy()
        B, T, K = x.shape
        rows = []
        for b in range(B):
            cands = []
            for k in range(K):
                on = np.concatenate([[False], x[b, :, k] > 0.5, [False]])
                edges = np.flatnonzero(np.diff(on.astype(int)))
                for s, e in zip(edges[::2], edges[1::2]):
                    cands.append((s, e, k, float(x[b, s:e, k].mean())))
            rows.append(cands)
        n = max(1, max(len(c) for c in rows))
        t = {f: torch.zeros(B, n, dtype=torch.long) for f in ("start", "end", "label")}
        score, valid = torch.zeros(B, n, dtype=torch.float64), torch.zeros(B, n, dtype=torch.bool)
        for b, cands in enumerate(rows):
            for i, (s, e, k, sc) in enumerate(cands):
                t["start"][b, i], t["end"][b, i], t["label"][b, i] = int(s), int(e), k
                score[b, i], valid[b, i] = sc, True
        cand = Candidates(t["start"], t["end"], t["label"], score, valid)
        return select_detections(cand, durations, T, K, InferenceConfig(top_n=50))


def planted(minutes: float, actions, dim: int = 2) -> tuple[np.ndarray, float]:
    """Features of a ``minutes``-long video at ``STEP`` s per feature, zeros but for
    ``actions`` [(start s, end s, class)] (value 1 on the class's channel)."""
    n = int(minutes * 60 / STEP)
    x = np.zeros((n, dim), dtype=np.float32)
    centres = (np.arange(n) + 0.5) * STEP
    for s, e, k in actions:
        x[(centres >= s) & (centres < e), k] = 1.0
    return x, n * STEP


def loaded_run(num_snippets: int = 128, sampling: str = "resize") -> LoadedRun:
    cfg = StaleConfig()
    cfg.data.num_snippets, cfg.data.sampling, cfg.model.input_dim = num_snippets, sampling, 2
    run = LoadedRun(cfg, ChannelDetector(), {"test": ["a", "b"]}, "ckpt", None, torch.device("cpu"))
    run._scale = {"snippet_s": None, "action_s": 4.0}   # what the annotations would say
    return run


def test_windows_find_short_actions_in_an_hour_that_resizing_loses(caplog):
    acts = [(1800.0, 1803.0, 0), (3000.0, 3004.5, 1), (10.0, 14.0, 0)]
    x, dur = planted(60, acts)
    run = loaded_run(128)
    with caplog.at_level(logging.WARNING):
        resized = run.detect(x, ["a", "b"], dur, windows=False, name="hour")
    lines = [r.getMessage() for r in caplog.records if "resized to 128 snippets" in r.getMessage()]
    assert len(lines) == 1 and "hour: 3600 s" in lines[0] and "28.1 s each" in lines[0] and "4.0 s" in lines[0]
    assert resized == []                       # 28 s snippets average a 3 s action away
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        found = run.detect(x, ["a", "b"], dur, windows=True, name="hour")
    assert not [r for r in caplog.records if "resized" in r.getMessage()]
    best = sorted((d for d in found if d["score"] > 0.9), key=lambda d: d["segment"][0])   # (cut views decay)
    assert [(d["label"], round(d["segment"][0], 3), round(d["segment"][1], 3)) for d in best] == [
        ("a", 10.0, 14.0), ("a", 1800.0, 1803.0), ("b", 3000.0, 3004.5)]
    # a short video: no warning
    caplog.clear()
    xs, ds = planted(1, [(10.0, 14.0, 0)])
    with caplog.at_level(logging.WARNING):
        assert run.detect(xs, ["a", "b"], ds, windows=False)
    assert not caplog.records


def test_an_action_across_a_window_edge_is_found_once():
    # T = 100 snippets of 0.5 s, overlap 0.5: windows start every 25 s; 48-53 s crosses the
    # edge of the window [0, 50) and lies inside [25, 75)
    x, dur = planted(5, [(48.0, 53.0, 1), (140.0, 142.0, 0)])
    settings = WindowSettings(window=100, overlap=0.5, time_step=None)
    videos = WindowedVideos(["v"], [dur], [len(x)], lambda _: x, settings)
    assert 25.0 in videos.plans[0].offsets() and 0.0 in videos.plans[0].offsets()
    res = detect_windowed(ChannelDetector(), videos, ["a", "b"], InferenceConfig(), 3, torch.device("cpu"))["v"]
    strong = [d for d in res if d["score"] > 0.9]
    assert [(d["label"], d["segment"]) for d in strong] == [("b", [48.0, 53.0]), ("a", [140.0, 142.0])] or \
        [(d["label"], d["segment"]) for d in strong] == [("a", [140.0, 142.0]), ("b", [48.0, 53.0])]
    # the cut views, weighted by data.window_edge_weight and decayed by the complete one
    weak = sorted((d for d in res if d["score"] <= 0.9 and d["label"] == "b"), key=lambda d: d["segment"])
    assert [d["segment"] for d in weak] == [[48.0, 50.0], [50.0, 53.0]]   # windows [0, 50) and [50, 100)
    assert [d["score"] for d in weak] == pytest.approx([0.5 * np.exp(-0.4 ** 2 / 0.5), 0.5 * np.exp(-0.6 ** 2 / 0.5)])


def test_batching_across_videos_gives_the_same_results():
    a, da = planted(3, [(20.0, 24.0, 0), (100.0, 103.0, 1)])
    b, db = planted(2, [(60.0, 61.5, 1)])
    c, dc = planted(0.5, [(5.0, 8.0, 0)])                 # shorter than one window: padded
    feats = {"a": a, "b": b, "c": c}
    settings = WindowSettings(window=64, overlap=0.25, time_step=None)
    videos = WindowedVideos(list(feats), [da, db, dc], [len(v) for v in feats.values()], feats.__getitem__, settings)
    together = detect_windowed(ChannelDetector(), videos, ["a", "b"], InferenceConfig(), 7, torch.device("cpu"))
    for vid in feats:
        one = WindowedVideos([vid], [videos.durations[list(feats).index(vid)]], [len(feats[vid])],
                             feats.__getitem__, settings)
        alone = detect_windowed(ChannelDetector(), one, ["a", "b"], InferenceConfig(), 1, torch.device("cpu"))
        assert together[vid] == alone[vid]
    assert [d["segment"] for d in together["c"]] == [[5.0, 8.0]]
    assert all(d["segment"][1] <= dc for d in together["c"])


def test_ground_truth_mask_detectors_are_refused():
    det = ChannelDetector()
    det.needs_targets = True
    x, dur = planted(1, [])
    videos = WindowedVideos(["v"], [dur], [len(x)], lambda _: x, WindowSettings(window=32))
    with pytest.raises(StaleError, match="ground-truth masks"):
        detect_windowed(det, videos, ["a", "b"], InferenceConfig(), 4, torch.device("cpu"))
