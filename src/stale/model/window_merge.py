"""Merging the detections of overlapping windows (windowed sampling, ``data.sampling: window``).

Every window yields detections in window time; shifted into video seconds they are candidates
of one Soft-NMS over the whole video -- the same Gaussian Soft-NMS as inside a window
(:func:`stale.model.decoding.soft_nms`, with its ``InferenceConfig``: ``nms_sigma``,
``nms_iou_threshold``, ``class_aware_nms``, ``min_score``), so an action that two windows both
see is kept once and its duplicate decays.

Cost: Soft-NMS only ever lowers the score of a candidate that overlaps the one selected (and,
class-aware, has its class), so candidates fall into independent groups -- connected runs of
overlapping same-class segments along the time axis -- and Soft-NMS over the video equals
Soft-NMS inside each group, merged by final score. Groups are found with one sort, and groups
of similar size go through ``soft_nms`` as one padded batch; a video's work therefore grows with
its length, not with its square, unless one class's detections overlap without a gap along it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from stale.model.decoding import Candidates, InferenceConfig, soft_nms


def overlap_groups(start: np.ndarray, end: np.ndarray, label: np.ndarray, class_aware: bool) -> np.ndarray:
    """(N,) int64 group id of each segment: segments (of one class, when ``class_aware``) that
    overlap, directly or through a chain, share a group; disjoint ones never do."""
    n = len(start)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lab = label.astype(np.int64) if class_aware else np.zeros(n, dtype=np.int64)
    t0 = float(min(start.min(), end.min()))
    span = float(max(start.max(), end.max())) - t0 + 1.0
    s, e = start - t0 + lab * span, end - t0 + lab * span   # classes on disjoint stretches of one axis
    order = np.lexsort((s, lab))
    reach = np.maximum.accumulate(e[order])
    new = np.ones(n, dtype=bool)
    new[1:] = s[order][1:] >= reach[:-1]          # no positive overlap with anything before it
    group = np.empty(n, dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    return group


def merge_detections(start, end, label, score, cfg: InferenceConfig, top_n: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Soft-NMS of one video's candidates from all its windows, all (N,) numpy: ``start``/``end``
    seconds, ``label`` class index, ``score``. Returns ``(start, end, label, score)`` of at most
    ``top_n`` results, best first (decayed scores above ``cfg.min_score``)."""
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    label = np.asarray(label, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    if len(score) == 0:
        return start, end, label, score
    group = overlap_groups(start, end, label, cfg.class_aware_nms)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    kept_idx, kept_score = [], []
    # groups of sizes in (2^(b-1), 2^b] share one padded soft_nms batch
    bucket = np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64)
    for b in np.unique(bucket):
        gids = np.flatnonzero(bucket == b)
        width = int(sizes[gids].max())
        pos = np.arange(width)
        valid = pos[None, :] < sizes[gids][:, None]                       # (G, width)
        member = np.where(valid, bounds[gids][:, None] + pos[None, :], 0)
        idx = order[member]                                               # (G, width) candidate index
        cand = Candidates(torch.from_numpy(start[idx]), torch.from_numpy(end[idx]),
                          torch.from_numpy(label[idx]), torch.from_numpy(np.where(valid, score[idx], 0.0)),
                          torch.from_numpy(valid))
        sel, sc, ok = soft_nms(cand, replace(cfg, top_n=width))
        sel, sc, ok = sel.numpy(), sc.numpy(), ok.numpy()
        rows = np.broadcast_to(np.arange(len(gids))[:, None], sel.shape)
        kept_idx.append(idx[rows[ok], sel[ok]])
        kept_score.append(sc[ok])
    keep = np.concatenate(kept_idx)
    final = np.concatenate(kept_score)
    best = np.argsort(-final, kind="stable")[:top_n]
    keep, final = keep[best], final[best]
    return start[keep], end[keep], label[keep], final
