"""Merging detections across windows (stale.model.window_merge) against an independent
pure-Python Gaussian Soft-NMS over the same candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stale.model.decoding import InferenceConfig
from stale.model.window_merge import merge_detections, overlap_groups


def reference_soft_nms(s, e, lab, sc, cfg: InferenceConfig, top_n: int):
    """Textbook Gaussian Soft-NMS, one candidate at a time (written from the paper's algorithm)."""
    cur = {i: float(x) for i, x in enumerate(sc) if x > cfg.min_score}
    out = []
    while cur and len(out) < top_n:
        i = max(cur, key=lambda j: cur[j])
        out.append((i, cur.pop(i)))
        for j in list(cur):
            if cfg.class_aware_nms and lab[j] != lab[i]:
                continue
            inter = max(0.0, min(e[i], e[j]) - max(s[i], s[j]))
            union = (e[i] - s[i]) + (e[j] - s[j]) - inter
            iou = inter / union if union > 0 else 0.0
            if iou > cfg.nms_iou_threshold:
                cur[j] *= math.exp(-iou * iou / cfg.nms_sigma)
            if cur[j] <= cfg.min_score:
                del cur[j]
    return out


def random_candidates(seed: int, n: int, video: float = 300.0):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, video, n)
    e = s + rng.uniform(0.5, 20.0, n)
    lab = rng.integers(0, 3, n)
    sc = rng.uniform(0.0, 1.0, n)
    return s, e, lab, sc


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("class_aware,iou_thr", [(True, 0.0), (False, 0.0), (True, 0.3)])
def test_merge_equals_an_independent_soft_nms(seed, class_aware, iou_thr):
    s, e, lab, sc = random_candidates(seed, 120)
    cfg = InferenceConfig(class_aware_nms=class_aware, nms_iou_threshold=iou_thr, min_score=0.05)
    top_n = 70
    ms, me, ml, msc = merge_detections(s, e, lab, sc, cfg, top_n)
    ref = reference_soft_nms(s, e, lab, sc, cfg, top_n)
    assert len(msc) == len(ref) > 0
    idx = np.array([i for i, _ in ref])
    np.testing.assert_allclose(ms, s[idx])
    np.testing.assert_allclose(me, e[idx])
    assert ml.tolist() == lab[idx].tolist()
    np.testing.assert_allclose(msc, [x for _, x in ref], rtol=1e-9)


def test_groups_join_chains_of_overlaps_and_separate_classes():
    s = np.array([0.0, 4.0, 9.0, 20.0, 2.0, 10.0])
    e = np.array([5.0, 10.0, 12.0, 25.0, 3.0, 11.0])
    lab = np.array([0, 0, 0, 0, 1, 0])
    g = overlap_groups(s, e, lab, class_aware=True)
    # 0-1-2 chain (and 5 inside 2), 3 alone, 4 alone (other class)
    assert g[0] == g[1] == g[2] == g[5] and len({g[0], g[3], g[4]}) == 3
    g = overlap_groups(s, e, lab, class_aware=False)
    assert g[4] == g[0] and g[3] != g[0]
    # touching segments do not overlap
    assert len(set(overlap_groups(np.array([0.0, 5.0]), np.array([5.0, 9.0]), np.zeros(2), True))) == 2


def test_top_n_and_empty_input():
    s, e, lab, sc = random_candidates(7, 50)
    out = merge_detections(s, e, lab, sc, InferenceConfig(min_score=0.0), top_n=5)
    assert all(len(x) == 5 for x in out) and np.all(np.diff(out[3]) <= 0)
    empty = merge_detections([], [], [], [], InferenceConfig(), 10)
    assert all(len(x) == 0 for x in empty)
