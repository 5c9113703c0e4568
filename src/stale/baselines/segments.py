"""From per-snippet class scores to detections: smoothing, thresholds, runs, Soft-NMS.

Shared by the detectors that score snippets without a mask head (the training-free CLIP
detector, the linear probe). For scores ``(B, T, K)`` in [0, 1]:

1. **Smoothing.** A centred moving average over ``smooth`` snippets (edges replicated), so a
   single noisy snippet neither starts nor breaks a segment.
2. **Thresholds.** For every video and class, the thresholds are quantiles ``quantiles`` of that
   class's smoothed score over the video, floored at ``min_threshold`` (absolute); a class whose
   score never exceeds the floor gives no candidate in that video.
3. **Runs.** Each maximal run of snippets above a threshold is a candidate ``[start, end)``
   (at least ``min_snippets`` long). Its score is the mean *unsmoothed* score inside the run.
   Identical (class, start, end) candidates from several thresholds are merged (best kept).
4. **Selection.** The ``max_candidates`` best candidates per video go through the run's final
   Soft-NMS -- the Soft-NMS fields of its ``inference`` section, the same for every method
   (:func:`stale.model.decoding.select_detections`).

Everything runs on padded ``(B, ...)`` tensors; the runs of all videos, classes and thresholds
are found with one ``diff`` and one ``nonzero``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from stale.core.errors import StaleError
from stale.model.decoding import Candidates, Detections, InferenceConfig, first_of_duplicates, select_detections


@dataclass
class SegmentConfig:
    """Candidate generation from snippet scores (defaults documented in docs/baselines.md).

    smooth: moving-average width in snippets (1 = none).
    quantiles: per-video, per-class score quantiles used as thresholds.
    min_threshold: absolute floor of every threshold (scores are probabilities).
    min_snippets: shortest candidate.
    max_candidates: candidates per video kept for Soft-NMS.

    The final Soft-NMS (sigma, top_n, min_score, class-aware or not) is not set here: it is the
    run's ``inference`` section (:data:`stale.model.decoding.SOFT_NMS_KEYS`), shared by every method.
    """

    smooth: int = 5
    quantiles: tuple[float, ...] = (0.5, 0.7, 0.85, 0.95)
    min_threshold: float = 0.05
    min_snippets: int = 1
    max_candidates: int = 400

    def validate(self) -> None:
        if self.smooth < 1 or self.min_snippets < 1 or self.max_candidates < 1:
            raise StaleError("segments: smooth, min_snippets and max_candidates must be >= 1")
        if not self.quantiles or not all(0.0 <= q < 1.0 for q in self.quantiles):
            raise StaleError(f"segments.quantiles must be non-empty, in [0, 1), got {self.quantiles}")
        if not 0.0 <= self.min_threshold < 1.0:
            raise StaleError(f"segments.min_threshold must be in [0, 1), got {self.min_threshold}")


def smooth_scores(scores: Tensor, width: int) -> Tensor:
    """Centred moving average over T of ``scores`` (B, T, K), edges replicated."""
    if width <= 1:
        return scores
    B, T, K = scores.shape
    x = scores.transpose(1, 2).reshape(B * K, 1, T)
    left = (width - 1) // 2
    x = F.pad(x, (left, width - 1 - left), mode="replicate")
    x = F.avg_pool1d(x, width, stride=1)
    return x.reshape(B, K, T).transpose(1, 2)


def run_candidates(scores: Tensor, cfg: SegmentConfig) -> Candidates:
    """Candidates (B, N) from scores (B, T, K) in [0, 1]; steps 1-3 of the module doc."""
    if scores.ndim != 3:
        raise StaleError(f"scores must be (B, T, K), got {tuple(scores.shape)}")
    B, T, K = scores.shape
    dev = scores.device
    sm = smooth_scores(scores.float(), cfg.smooth).transpose(1, 2)               # (B, K, T)
    q = torch.tensor(cfg.quantiles, dtype=sm.dtype, device=dev)
    thr = torch.quantile(sm, q, dim=-1).permute(1, 2, 0).clamp(min=cfg.min_threshold)  # (B, K, Θ)
    above = sm.unsqueeze(2) > thr.unsqueeze(-1)                                  # (B, K, Θ, T)
    pad = F.pad(above.to(torch.int8), (1, 1))
    edge = pad[..., 1:] - pad[..., :-1]                                          # (B, K, Θ, T+1)
    starts = (edge == 1).nonzero()                                               # rows (b, k, θ, t)
    ends = (edge == -1).nonzero()
    b, k, s, e = starts[:, 0], starts[:, 1], starts[:, 3], ends[:, 3]
    # mean of the raw score inside each run, from prefix sums
    raw = scores.float().transpose(1, 2)                                         # (B, K, T)
    csum = F.pad(raw.cumsum(-1), (1, 0))
    run_score = (csum[b, k, e] - csum[b, k, s]) / (e - s).clamp(min=1).to(raw.dtype)
    keep = (e - s) >= cfg.min_snippets
    b, k, s, e, run_score = b[keep], k[keep], s[keep], e[keep], run_score[keep]
    # pad into (B, N): position of each candidate within its video
    counts = torch.bincount(b, minlength=B)
    n = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.argsort(b, stable=True)
    b, k, s, e, run_score = b[order], k[order], s[order], e[order], run_score[order]
    first = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(b), device=dev) - first[b]
    shape = (B, n)
    start = torch.zeros(shape, dtype=torch.long, device=dev)
    end = torch.zeros(shape, dtype=torch.long, device=dev)
    label = torch.zeros(shape, dtype=torch.long, device=dev)
    score = torch.zeros(shape, dtype=raw.dtype, device=dev)
    valid = torch.zeros(shape, dtype=torch.bool, device=dev)
    start[b, pos], end[b, pos], label[b, pos], score[b, pos], valid[b, pos] = s, e, k, run_score, True
    valid = valid & first_of_duplicates(start, end, label, score, valid, T)
    if n > cfg.max_candidates:
        top = torch.where(valid, score, torch.full_like(score, -1.0)).topk(cfg.max_candidates, dim=1).indices
        start, end, label, score, valid = (x.gather(1, top) for x in (start, end, label, score, valid))
    return Candidates(start, end, label, score, valid)


def scores_to_detections(scores: Tensor, durations, cfg: SegmentConfig, nms: InferenceConfig) -> Detections:
    """Detections of snippet class scores (B, T, K) in [0, 1] for videos of ``durations`` (B,);
    ``nms``: the run's inference settings, whose Soft-NMS fields select the final detections."""
    cfg.validate()
    nms.validate()
    if not bool(torch.isfinite(scores).all()):
        raise StaleError("snippet scores contain NaN or infinite values")
    with torch.no_grad():
        cand = run_candidates(scores, cfg)
    return select_detections(cand, durations, scores.shape[1], scores.shape[2], nms)
