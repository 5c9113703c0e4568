"""Vectorised greedy matching of ranked detections to ground truth (ActivityNet rules), exactly.

The official evaluator walks predictions of one class in descending score order; each one visits
the ground truth (GT) of its class in its video in descending-tIoU order and takes the first GT
that is not yet taken at that threshold, stopping at the first GT with ``tiou < thr``.

That walk is sequential only inside one (class, video) *group*. Here all groups advance together:
step ``r`` handles the ``r``-th prediction of every group at once. Three facts keep it exact:

* Only pairs with ``not tiou < min(thr)`` can ever match; the others are dropped up front, and a
  prediction with no such pair is a false positive at every threshold.
* The visit order is NaN first, then descending tIoU, so at each threshold the visitable GT are a
  prefix of it and "first untaken GT in the prefix" is the official result.
* Where a prediction's candidate tIoU values tie (equal values, or several NaN), the order of the
  tied GT decides which one is taken; for those (rare) predictions the order is taken from the
  very call the official code makes, ``np.argsort(tiou_of_all_group_gt)[::-1]``.
"""

from __future__ import annotations

import numpy as np


def segment_tiou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Elementwise tIoU of pred segments (P, 2) and GT segments (P, 2) -> (P,) float64.

    Same operations in the same order as the official ``segment_iou`` (so the same bits):
    a zero union gives NaN (0/0), reversed segments are used as given.
    """
    tt1 = np.maximum(pred[:, 0], gt[:, 0])
    tt2 = np.minimum(pred[:, 1], gt[:, 1])
    inter = (tt2 - tt1).clip(0)
    union = (gt[:, 1] - gt[:, 0]) + (pred[:, 1] - pred[:, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter.astype(float) / union


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """[0..c0-1, 0..c1-1, ...] for counts (K,) -> (sum(counts),) int64."""
    ends = np.cumsum(counts)
    total = ends[-1] if len(ends) else 0
    return np.arange(total, dtype=np.int64) - np.repeat(ends - counts, counts)


def _candidate_pairs(pred_segments, gt_segments, gt_start, gt_count, thr_min, max_pairs):
    """All (prediction, GT) pairs of a group whose tIoU is not below ``thr_min``.

    Pairs are built in chunks of about ``max_pairs`` so memory stays bounded. Returns
    (pred index, GT index, tIoU), ordered by prediction then GT file order.
    """
    preds = np.flatnonzero(gt_count > 0)
    counts = gt_count[preds]
    out_p, out_g, out_t = [], [], []
    cum = np.cumsum(counts)
    lo = 0
    while lo < len(preds):
        # the first chunk boundary past max_pairs (at least one prediction per chunk)
        hi = max(lo + 1, int(np.searchsorted(cum, (cum[lo - 1] if lo else 0) + max_pairs, "right")))
        p, c = preds[lo:hi], counts[lo:hi]
        pp = np.repeat(p, c)
        gg = np.repeat(gt_start[p], c) + _ragged_arange(c)
        tiou = segment_tiou(pred_segments[pp], gt_segments[gg])
        keep = ~(tiou < thr_min)
        out_p.append(pp[keep])
        out_g.append(gg[keep])
        out_t.append(tiou[keep])
        lo = hi
    if not out_p:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64)
    return np.concatenate(out_p), np.concatenate(out_g), np.concatenate(out_t)


def greedy_match(pred_segments: np.ndarray, pred_group: np.ndarray, gt_segments: np.ndarray,
                 gt_start: np.ndarray, gt_count: np.ndarray, thresholds: np.ndarray,
                 max_pairs: int = 2_000_000) -> np.ndarray:
    """True-positive flags of every prediction at every threshold.

    Args:
        pred_segments: (N, 2) float64, predictions in processing order (within each group, the
            order in which the official code visits them: descending score as it sorts them).
        pred_group: (N,) int64 group id ((class, video) pair) of each prediction.
        gt_segments: (M, 2) float64 GT, each group's GT contiguous and in file order.
        gt_start, gt_count: (N,) int64, the slice of ``gt_segments`` holding the GT of each
            prediction's group (count 0: no GT of that class in that video).
        thresholds: (T,) float64 tIoU thresholds.
        max_pairs: chunk size (pairs) for building candidate pairs; bounds memory.

    Returns:
        (N, T) bool; a prediction that is not a true positive is a false positive.
    """
    n, n_thr = len(pred_group), len(thresholds)
    tp = np.zeros((n, n_thr), dtype=bool)
    if n == 0 or n_thr == 0:
        return tp
    thresholds = np.asarray(thresholds, dtype=np.float64)
    pp, gg, tiou = _candidate_pairs(pred_segments, gt_segments, gt_start, gt_count,
                                    thresholds.min(), max_pairs)
    if len(pp) == 0:
        return tp

    # canonical visit order: per prediction, NaN first, then descending tIoU
    key = np.where(np.isnan(tiou), -np.inf, -tiou)
    order = np.lexsort((key, pp))
    pp, gg, tiou, key = pp[order], gg[order], tiou[order], key[order]
    tie = (pp[1:] == pp[:-1]) & (key[1:] == key[:-1])
    if tie.any():
        _apply_official_order(pp, gg, tiou, np.unique(pp[1:][tie]), pred_segments,
                              gt_segments, gt_start, gt_count)

    # step r = r-th candidate-holding prediction of each group (predictions keep their order)
    seg_first = np.flatnonzero(np.concatenate(([True], pp[1:] != pp[:-1])))
    seg_pred = pp[seg_first]
    by_group = np.argsort(pred_group[seg_pred], kind="stable")
    grp_sorted = pred_group[seg_pred][by_group]
    run_first = np.flatnonzero(np.concatenate(([True], grp_sorted[1:] != grp_sorted[:-1])))
    run_len = np.diff(np.append(run_first, len(grp_sorted)))
    seg_step = np.empty(len(seg_pred), dtype=np.int64)
    seg_step[by_group] = _ragged_arange(run_len)

    seg_len = np.diff(np.append(seg_first, len(pp)))
    seg_order = np.argsort(seg_step, kind="stable")
    pair_order = (np.repeat(seg_first[seg_order], seg_len[seg_order])
                  + _ragged_arange(seg_len[seg_order]))
    gg, tiou = gg[pair_order], tiou[pair_order]
    seg_pred, seg_len, seg_step = seg_pred[seg_order], seg_len[seg_order], seg_step[seg_order]
    seg_begin = np.concatenate(([0], np.cumsum(seg_len)))
    step_bounds = np.searchsorted(seg_step, np.arange(seg_step[-1] + 2))

    locked = np.zeros((len(gt_segments), n_thr), dtype=bool)
    # eligibility mirrors the official test "tiou < thr -> stop" (NaN is never < thr)
    eligible = ~(tiou[:, None] < thresholds[None, :])
    for s0, s1 in zip(step_bounds[:-1], step_bounds[1:]):
        a, b = seg_begin[s0], seg_begin[s1]
        gi = gg[a:b]
        cand = eligible[a:b] & ~locked[gi]
        pos = np.where(cand, np.arange(b - a)[:, None], b - a)
        first = np.minimum.reduceat(pos, seg_begin[s0:s1] - a, axis=0)
        seg_i, thr_i = np.nonzero(first < b - a)
        locked[gi[first[seg_i, thr_i]], thr_i] = True
        tp[seg_pred[s0:s1][seg_i], thr_i] = True
    return tp


def _apply_official_order(pp, gg, tiou, hard, pred_segments, gt_segments, gt_start, gt_count):
    """Re-order, in place, the candidate pairs of predictions with tied tIoU values.

    For each such prediction the order is the official one: ``np.argsort(t)[::-1]`` over the
    tIoU with *all* GT of its group in file order (numpy's sort is unstable, and which tied GT
    is taken changes later matches). The candidate pairs are a prefix of that order.
    """
    starts = np.searchsorted(pp, hard, "left")
    ends = np.searchsorted(pp, hard, "right")
    for h, a, b in zip(hard.tolist(), starts.tolist(), ends.tolist()):
        g0, cnt = int(gt_start[h]), int(gt_count[h])
        full = segment_tiou(np.repeat(pred_segments[h:h + 1], cnt, axis=0),
                            gt_segments[g0:g0 + cnt])
        rank = np.empty(cnt, dtype=np.int64)
        rank[np.argsort(full)[::-1]] = np.arange(cnt)
        o = np.argsort(rank[gg[a:b] - g0])
        gg[a:b] = gg[a:b][o]
        tiou[a:b] = tiou[a:b][o]
