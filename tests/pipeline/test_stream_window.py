"""The finalisation rule of ``stale stream`` on synthetic score sequences: the real segment code
of the training-free detector (thresholds, runs, Soft-NMS) runs on each causal window, and
the window decides what is final. A planted action must come out once, with its bounds, never
before it is final, with the latency the rule implies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stale.baselines.segments import SegmentConfig, scores_to_detections
from stale.model.decoding import InferenceConfig
from stale.core.errors import StaleError
from stale.pipeline.stream_window import CausalWindow, WindowConfig

SPS = 0.5        # seconds per snippet
NAMES = ["jump", "run"]


def segment_detector(smooth: int = 1):
    """detect(features (T, K) = class scores, duration) with the training-free detector's
    segment stage (features ARE the scores here)."""
    cfg = SegmentConfig(smooth=smooth)

    def detect(feats: np.ndarray, duration: float) -> list[dict]:
        return scores_to_detections(torch.from_numpy(feats)[None], [duration], cfg, InferenceConfig()).to_lists(NAMES)[0]
    return detect


def planted(T: int, actions: list[tuple[int, int, int]], seed: int = 0) -> np.ndarray:
    """(T, 2) scores: background noise in [0.01, 0.04] (below the 0.05 floor of the thresholds),
    0.9 inside each (start, end, class)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.01, 0.04, size=(T, 2)).astype(np.float32)
    for s, e, k in actions:
        x[s:e, k] = 0.9
    return x


def stream(scores: np.ndarray, cfg: WindowConfig, detect=None, finish: bool = True):
    """Push the rows one by one; returns [(push count at emission, clock, Emitted)]."""
    win = CausalWindow(cfg, detect or segment_detector(), SPS)
    out = []
    for i, row in enumerate(scores):
        clock = (i + 1) * SPS
        out += [(i + 1, clock, d) for d in win.push(row, clock)]
    if finish:
        out += [(len(scores), len(scores) * SPS, d) for d in win.finish(len(scores) * SPS)]
    return out, win


def strong(emitted, label="jump", min_score=0.5):
    return [e for e in emitted if e[2].label == label and e[2].score >= min_score]


def test_a_planted_action_is_emitted_once_with_its_bounds_after_it_is_final():
    cfg = WindowConfig(window=40, hop=3, margin=6)
    scores = planted(120, [(50, 62, 0)])
    emitted, win = stream(scores, cfg)
    jumps = strong(emitted)
    assert len(jumps) == 1, [(e[2].start, e[2].end, e[2].score) for e in emitted]
    count, clock, d = jumps[0]
    assert (d.start, d.end) == (50 * SPS, 62 * SPS)
    assert d.score == pytest.approx(0.9, abs=1e-6)
    # never before it is final: the detector had seen `margin` snippets after its end
    assert count >= 62 + cfg.margin
    # and as soon as it is: the first run at or after end + margin
    assert count < 62 + cfg.margin + cfg.hop
    assert d.latency == pytest.approx(clock - 62 * SPS)
    assert cfg.margin * SPS <= d.latency < (cfg.margin + cfg.hop) * SPS
    # the action stayed in the window for many runs: each one saw it again
    assert win.runs > (cfg.window - cfg.margin) // cfg.hop


def test_no_emission_is_ever_premature_and_latencies_are_bounded():
    cfg = WindowConfig(window=30, hop=2, margin=4)
    scores = planted(200, [(20, 28, 0), (40, 52, 1), (90, 95, 0), (96, 110, 1), (150, 152, 0)], seed=3)
    emitted, _ = stream(scores, cfg, finish=False)
    assert emitted
    for count, clock, d in emitted:
        assert d.end <= (count - cfg.margin) * SPS + 1e-9, (count, d)
        assert d.latency == pytest.approx(clock - d.end)
        assert cfg.margin * SPS - 1e-9 <= d.latency <= (2 * cfg.margin + cfg.hop) * SPS + 1e-9
    bounds = {(e[2].start, e[2].end, e[2].label) for e in strong(emitted, "jump") + strong(emitted, "run")}
    assert bounds == {(10.0, 14.0, "jump"), (20.0, 26.0, "run"), (45.0, 47.5, "jump"), (48.0, 55.0, "run"),
                      (75.0, 76.0, "jump")}


def test_every_emission_is_new():
    """No two emitted detections of one label overlap by the repeat IoU or more."""
    cfg = WindowConfig(window=30, hop=1, margin=3, repeat_iou=0.5)
    emitted, _ = stream(planted(150, [(30, 45, 0), (60, 64, 1), (100, 120, 0)], seed=1), cfg,
                        detect=segment_detector(smooth=3))
    det = [e[2] for e in emitted]
    for i, a in enumerate(det):
        for b in det[i + 1:]:
            if a.label != b.label:
                continue
            inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
            union = (a.end - a.start) + (b.end - b.start) - inter
            assert inter / union < 0.5, (a, b)


def test_an_action_running_at_the_end_is_emitted_by_finish():
    cfg = WindowConfig(window=40, hop=3, margin=6)
    emitted, _ = stream(planted(80, [(70, 80, 0)]), cfg)
    jumps = strong(emitted)
    assert [(e[2].start, e[2].end) for e in jumps] == [(35.0, 40.0)]
    assert jumps[0][0] == 80 and jumps[0][2].latency == pytest.approx(0.0)
    cut, _ = stream(planted(80, [(70, 80, 0)]), cfg, finish=False)
    assert strong(cut) == []   # not final while it may still be going on


def test_a_clipped_tail_at_the_window_start_is_not_emitted():
    """An action longer than window - margin is never final; its tail, cut by the window's left
    edge, is not reported as a new action either."""
    cfg = WindowConfig(window=20, hop=2, margin=4)
    emitted, _ = stream(planted(100, [(10, 60, 0)]), cfg, finish=False)
    assert strong(emitted, min_score=0.3) == []


def test_window_settings_are_checked():
    with pytest.raises(StaleError, match="must be shorter than --window"):
        CausalWindow(WindowConfig(window=10, hop=1, margin=10), segment_detector(), SPS)
    with pytest.raises(StaleError, match="window >= 2"):
        CausalWindow(WindowConfig(window=1, hop=1, margin=0), segment_detector(), SPS)
