"""segment_tiou bits and greedy_match invariants."""

from __future__ import annotations

import numpy as np

from map_reference import reference_tiou
from stale.evaluation import greedy_match, segment_tiou


def test_segment_tiou_bitwise_equal_to_official_formula():
    rng = np.random.default_rng(0)
    pred = np.round(rng.uniform(-5, 50, (4000, 2)), 2)     # unsorted ends -> reversed segments too
    gt = np.round(rng.uniform(-5, 50, (4000, 2)), 2)
    pred[:50] = pred[:50, :1]                               # zero-length
    gt[:25] = gt[:25, :1]
    ours = segment_tiou(pred, gt)
    ref = np.array([reference_tiou(p, g[None])[0] for p, g in zip(pred, gt)])
    assert np.array_equal(ours.view(np.int64), ref.view(np.int64))   # same bits, NaN included
    assert np.isnan(ours[:25]).all()


def test_greedy_match_chunking_is_invisible_and_locks_each_gt_once():
    rng = np.random.default_rng(1)
    n_groups, n = 30, 600
    gt_count_g = rng.integers(0, 6, n_groups)
    gt_start_g = np.concatenate(([0], np.cumsum(gt_count_g)[:-1]))
    gt = np.sort(np.round(rng.uniform(0, 20, (gt_count_g.sum(), 2)), 1), axis=1)
    group = np.sort(rng.integers(0, n_groups, n))
    rng.shuffle(group)
    pred = np.sort(np.round(rng.uniform(0, 20, (n, 2)), 1), axis=1)
    thr = np.linspace(0.3, 0.7, 5)
    args = (pred, group, gt, gt_start_g[group], gt_count_g[group], thr)
    tp = greedy_match(*args)
    assert np.array_equal(tp, greedy_match(*args, max_pairs=1))
    assert np.array_equal(tp, greedy_match(*args, max_pairs=37))
    # at most one TP per GT per threshold -> per group, TP count <= GT count
    for g in range(n_groups):
        assert (tp[group == g].sum(axis=0) <= gt_count_g[g]).all()
    # raising the threshold can only remove matches overall; no GT -> never TP
    assert (tp[gt_count_g[group] == 0] == 0).all()
    assert tp[:, 0].sum() >= tp[:, -1].sum()


def test_greedy_match_empty_inputs():
    e2 = np.zeros((0, 2))
    e = np.zeros(0, dtype=np.int64)
    assert greedy_match(e2, e, e2, e, e, np.array([0.5])).shape == (0, 1)
    tp = greedy_match(np.array([[0.0, 1.0]]), np.array([0]), e2, np.array([0]), np.array([0]),
                      np.array([0.5, 0.7]))
    assert tp.tolist() == [[False, False]]
