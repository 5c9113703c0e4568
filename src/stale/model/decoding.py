"""Model inference (paper Sec. 3.3): class + mask outputs -> scored segments in seconds.

Steps, all vectorised over the batch (loops only over the Soft-NMS selection steps):

1. **Candidate snippets.** For every (snippet t, action class c) pair the class probability
   ``P[t, c]`` (background column excluded) is a score; pairs with ``P > theta_c`` compete and
   the ``top_k`` best per video (over all pairs, not per class) are kept. Selecting pairs rather
   than one class per snippet lets a snippet propose two classes (CliffDiving and Diving).
2. **Segments.** For each kept pair and each mask threshold ``theta`` in ``mask_thresholds``,
   row ``t`` of the mask (the mask predicted *from* t) is binarised with ``> theta`` and the
   contiguous run of above-threshold snippets containing ``t`` becomes the segment
   ``[run_start, run_end + 1)`` snippets. If ``t`` itself is not above ``theta`` the candidate
   is skipped: training targets always contain their own snippet, so such a mask contradicts
   its anchor. Runs shorter than ``min_snippets`` are skipped too.
3. **Confidence** = class score x max mask probability inside the run. Candidates with the
   same (class, start, end) are merged, keeping the highest confidence (several thresholds
   often yield the same run).
4. **Soft-NMS** (Gaussian: ``score *= exp(-tIoU^2 / sigma)`` for overlaps above
   ``nms_iou_threshold``), per video and, by default, per class; a candidate whose score falls
   to ``min_score`` or below is discarded; at most ``top_n`` results per video, by score.
5. Snippet indices -> seconds through :mod:`stale.data.timeline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from stale.core.errors import StaleError


#: the fields of :class:`InferenceConfig` that make up the final Soft-NMS every detector shares
SOFT_NMS_KEYS = ("nms_sigma", "nms_iou_threshold", "class_aware_nms", "min_score", "top_n")


@dataclass
class InferenceConfig:
    """Inference settings (defaults: the paper's procedure with the released code's values).

    The Soft-NMS fields (:data:`SOFT_NMS_KEYS`: ``nms_sigma``, ``nms_iou_threshold``,
    ``class_aware_nms``, ``min_score``, ``top_n``) are the final Soft-NMS of *every* method --
    STALE and the baselines (``clip_detector``, ``linear_probe``, ``two_stage``) alike -- so a
    run's ``inference.nms_sigma`` is the one place to set it; the other fields are STALE's.

    theta_c: class-probability threshold for candidate snippets (0.1: first non-trivial value
        of the released code's grid; with softmax over K+1 classes a confident snippet is far
        above it, and ``top_k`` does the real selection).
    top_k: (snippet, class) pairs kept per video (released code: top-10 snippets; raise it for
        videos with many instances, e.g. 40 for THUMOS14 at T=256).
    mask_thresholds: the localisation thresholds Theta applied to the mask row.
    nms_sigma: Gaussian Soft-NMS width (0.5, Bodla et al.).
    nms_iou_threshold: only overlaps with tIoU above this decay scores (0: all overlaps).
    class_aware_nms: suppress only within a class (standard for TAD).
    min_score: candidates whose (decayed) score is at or below this are discarded.
    top_n: results kept per video (ActivityNet convention: 100).
    min_snippets: shortest segment, in snippets.
    mask_source: ``predicted`` (the model's own foreground mask) or ``ground_truth`` (the test
        videos' annotated foreground replaces it at prediction: Table 3's "GT masks" row).
    precision: the network's forward at prediction (:mod:`stale.core.precision`): ``auto``
        (bf16 weights and activations where the device has native bf16 matrix units --
        AVX512-BF16 / AMX CPUs, CUDA >= 8.0 -- else float32), ``float32`` (alias ``fp32``), or
        ``bf16`` (on any device). Scores move by ~1e-2 relative; docs/inference.md measures the
        mAP change. Post-processing always runs in float32.
    """

    theta_c: float = 0.1
    top_k: int = 10
    mask_thresholds: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    nms_sigma: float = 0.5
    nms_iou_threshold: float = 0.0
    class_aware_nms: bool = True
    min_score: float = 0.001
    top_n: int = 100
    min_snippets: int = 1
    mask_source: Literal["predicted", "ground_truth"] = "predicted"
    precision: Literal["auto", "float32", "fp32", "bf16"] = "auto"

    def validate(self) -> None:
        bad = []
        if not 0.0 <= self.theta_c < 1.0:
            bad.append(f"theta_c={self.theta_c} (need 0 <= theta_c < 1)")
        if self.top_k < 1 or self.top_n < 1 or self.min_snippets < 1:
            bad.append(f"top_k={self.top_k}, top_n={self.top_n}, min_snippets="
                       f"{self.min_snippets} (need >= 1)")
        if not self.mask_thresholds or not all(0.0 <= x < 1.0 for x in self.mask_thresholds):
            bad.append(f"mask_thresholds={self.mask_thresholds} (need non-empty, in [0, 1))")
        if self.precision not in ("auto", "float32", "fp32", "bf16"):
            bad.append(f"precision={self.precision!r} (need auto, float32 or bf16)")
        if not self.nms_sigma > 0:
            bad.append(f"nms_sigma={self.nms_sigma} (need > 0)")
        if not 0.0 <= self.nms_iou_threshold < 1.0:
            bad.append(f"nms_iou_threshold={self.nms_iou_threshold} (need in [0, 1))")
        if not self.min_score >= 0:
            bad.append(f"min_score={self.min_score} (need >= 0)")
        if bad:
            raise StaleError("inference config: " + "; ".join(bad))


@dataclass
class Candidates:
    """Padded candidates, all (B, N): snippet ``start`` / exclusive ``end`` (int64),
    ``label`` (int64 class index), ``score`` (float), ``valid`` (bool)."""

    start: Tensor
    end: Tensor
    label: Tensor
    score: Tensor
    valid: Tensor


@dataclass
class Detections:
    """Final results, all (B, n) with n <= top_n, sorted by score within each video; padding
    has ``valid == False``. ``start``/``end`` in snippets (device tensors), ``segments``
    (B, n, 2) float64 numpy seconds."""

    start: Tensor
    end: Tensor
    label: Tensor
    score: Tensor
    valid: Tensor
    segments: np.ndarray
    num_classes: int

    def to_lists(self, class_names: Sequence[str]) -> list[list[dict]]:
        """Per video a list of ActivityNet result items ``{"segment", "label", "score"}``."""
        if len(class_names) != self.num_classes:
            raise StaleError(f"{len(class_names)} class names for a model output with "
                             f"{self.num_classes} action classes")
        labels, scores = self.label.cpu().tolist(), self.score.cpu().tolist()
        valid, segs = self.valid.cpu().tolist(), self.segments.tolist()
        return [[{"segment": segs[b][i], "label": class_names[labels[b][i]],
                  "score": scores[b][i]} for i in range(len(valid[b])) if valid[b][i]]
                for b in range(len(valid))]

    def to_results(self, video_ids: Sequence[str], class_names: Sequence[str]) -> dict:
        """``{video_id: [items]}``, the ``"results"`` field of an ActivityNet result file."""
        if len(video_ids) != self.valid.shape[0]:
            raise StaleError(f"to_results: {len(video_ids)} video ids for "
                             f"{self.valid.shape[0]} videos")
        return dict(zip(video_ids, self.to_lists(class_names)))


def threshold_runs(rows: Tensor, anchor: Tensor, thresholds: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Runs of ``rows > theta`` that contain the anchor, for every threshold at once.

    ``rows`` (..., T) values, ``anchor`` (...) int64 in [0, T), ``thresholds`` (Θ,). Returns
    ``start``, ``end`` (exclusive), ``valid`` (``rows[anchor] > theta``) and ``peak`` (max of
    ``rows`` inside the run), each (..., Θ). Invalid entries have ``start == end == anchor``
    and ``peak == 0``.

    The snippets ``j <= anchor`` belong to the run exactly when ``min(rows[j..anchor]) >
    theta``; that suffix minimum is sorted in ``j``, so one scan per side plus a binary search
    per threshold finds both ends: O(T + Θ log T) per row instead of O(Θ T).
    """
    T = rows.shape[-1]
    pos = torch.arange(T, device=rows.device)
    a = anchor.unsqueeze(-1)
    left, right = pos <= a, pos >= a
    inf = torch.tensor(float("inf"), dtype=rows.dtype, device=rows.device)
    lmin = torch.where(left, rows, inf).flip(-1).cummin(-1).values.flip(-1)   # non-decreasing
    rmin = torch.where(right, rows, inf).cummin(-1).values.flip(-1)          # non-decreasing
    lmax = torch.where(left, rows, -inf).flip(-1).cummax(-1).values.flip(-1)
    rmax = torch.where(right, rows, -inf).cummax(-1).values
    thr = thresholds.to(rows.dtype).expand(*anchor.shape, -1).contiguous()
    start = torch.searchsorted(lmin.contiguous(), thr, right=True)
    end = T - torch.searchsorted(rmin.contiguous(), thr, right=True)
    valid = rows.gather(-1, a) > thr
    a = a.expand_as(start)
    start, end = torch.where(valid, start, a), torch.where(valid, end, a)
    peak = torch.maximum(lmax.gather(-1, start), rmax.gather(-1, (end - 1).clamp(min=0)))
    peak = torch.where(valid, peak, torch.zeros((), dtype=rows.dtype, device=rows.device))
    return start, end, valid, peak


def _check_inputs(class_probs: Tensor, mask_probs: Tensor, durations=None) -> None:
    if class_probs.ndim != 3 or class_probs.shape[-1] < 2:
        raise StaleError(f"class_probs must be (B, T, K+1) with K >= 1, got "
                         f"{tuple(class_probs.shape)}")
    B, T, _ = class_probs.shape
    if tuple(mask_probs.shape) != (B, T, T):
        raise StaleError(f"mask_probs must be (B, T, T) = {(B, T, T)}, got "
                         f"{tuple(mask_probs.shape)}")
    # probabilities are bounded, so a sum is finite exactly when every entry is
    if not bool(torch.isfinite(class_probs.sum() + mask_probs.sum())):
        raise StaleError("class_probs / mask_probs contain NaN or infinite values")
    if durations is not None:
        d = np.asarray(durations.detach().cpu() if isinstance(durations, Tensor) else durations,
                       dtype=np.float64)
        if d.shape != (B,) or not (np.isfinite(d).all() and (d > 0).all()):
            raise StaleError(f"durations must be ({B},) positive numbers, got {d.tolist()}")


def generate_candidates(class_probs: Tensor, mask_probs: Tensor,
                        cfg: InferenceConfig) -> Candidates:
    """Candidates (B, N = min(top_k, T*K) * len(mask_thresholds)) from class probabilities
    (B, T, K+1) and row-wise mask probabilities (B, T, T); steps 1-3 of the module doc."""
    _check_inputs(class_probs, mask_probs)
    B, T, K1 = class_probs.shape
    K = K1 - 1
    k = min(cfg.top_k, T * K)
    cls_score, pair = class_probs[..., :K].reshape(B, T * K).topk(k, dim=1)   # (B, k)
    snip, label = pair // K, pair % K
    rows = mask_probs.gather(1, snip.unsqueeze(-1).expand(B, k, T))            # (B, k, T)
    thr = torch.as_tensor(cfg.mask_thresholds, dtype=rows.dtype, device=rows.device)
    n_thr = thr.numel()
    start, end, valid, mask_max = threshold_runs(rows, snip, thr)               # (B, k, Θ)
    score = cls_score.unsqueeze(-1) * mask_max
    valid = valid & (cls_score > cfg.theta_c).unsqueeze(-1) & (end - start >= cfg.min_snippets)
    label = label.unsqueeze(-1).expand(B, k, n_thr)
    flat = [x.reshape(B, k * n_thr) for x in (start, end, label, score, valid)]
    start, end, label, score, valid = flat
    valid = valid & first_of_duplicates(start, end, label, score, valid, T)
    return Candidates(start, end, label, score, valid)


def first_of_duplicates(start, end, label, score, valid, T: int) -> Tensor:
    """(B, N) bool: True for the highest-scoring candidate of each (label, start, end) group."""
    key = (label * (T + 1) + start) * (T + 1) + end
    key = torch.where(valid, key, torch.full_like(key, -1))
    by_score = score.argsort(dim=1, descending=True, stable=True)
    by_key = key.gather(1, by_score).argsort(dim=1, stable=True)
    perm = by_score.gather(1, by_key)
    k_sorted = key.gather(1, perm)
    first = torch.ones_like(valid)
    first[:, 1:] = k_sorted[:, 1:] != k_sorted[:, :-1]
    return torch.zeros_like(valid).scatter(1, perm, first)


def segment_tiou(start: Tensor, end: Tensor, ref_start: Tensor, ref_end: Tensor) -> Tensor:
    """Temporal IoU of segments ``[start, end)`` with ``[ref_start, ref_end)`` (broadcast);
    0 where the union is empty."""
    inter = (torch.minimum(end, ref_end) - torch.maximum(start, ref_start)).clamp(min=0)
    union = (end - start) + (ref_end - ref_start) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


_PAIRWISE_LIMIT = 1 << 20   # (B, N, N) decay tables up to 1M entries are precomputed


def _decay(cand: Candidates, ref: Tensor, cfg: InferenceConfig) -> Tensor:
    """Soft-NMS factors (B, R, N) applied to every candidate when candidate ``ref`` (B, R) is
    selected: ``exp(-tIoU^2 / sigma)`` where the overlap counts, 1 elsewhere (never > 1)."""
    s, e = cand.start.to(cand.score.dtype), cand.end.to(cand.score.dtype)
    rs, re_ = s.gather(1, ref).unsqueeze(-1), e.gather(1, ref).unsqueeze(-1)
    iou = segment_tiou(s.unsqueeze(1), e.unsqueeze(1), rs, re_)
    hit = iou > cfg.nms_iou_threshold
    if cfg.class_aware_nms:
        hit = hit & (cand.label.unsqueeze(1) == cand.label.gather(1, ref).unsqueeze(-1))
    return torch.where(hit, torch.exp(-iou.square() / cfg.nms_sigma), torch.ones_like(iou))


def soft_nms(cand: Candidates, cfg: InferenceConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Gaussian Soft-NMS on padded candidates (B, N), vectorised over videos; the Python loop
    runs over the selection steps only.

    Returns ``index`` (B, n) into the candidates, decayed ``score`` (B, n) and ``valid``
    (B, n), n = min(N, top_n), in selection order (scores non-increasing).
    """
    B, N = cand.score.shape
    n = min(N, cfg.top_n)
    dev = cand.score.device
    neg_inf = torch.tensor(float("-inf"), dtype=cand.score.dtype, device=dev)
    cur = torch.where(cand.valid & (cand.score > cfg.min_score), cand.score, neg_inf)
    table = None
    if B * N * N <= _PAIRWISE_LIMIT:      # few big ops beat many small ones per step
        table = _decay(cand, torch.arange(N, device=dev).expand(B, N), cfg)
    out_idx = torch.zeros(B, n, dtype=torch.long, device=dev)
    out_score = torch.zeros(B, n, dtype=cand.score.dtype, device=dev)
    out_valid = torch.zeros(B, n, dtype=torch.bool, device=dev)
    rows = torch.arange(B, device=dev)
    for step in range(n):
        best_score, best = cur.max(dim=1)
        alive = best_score > neg_inf
        if not bool(alive.any()):
            break
        out_idx[:, step], out_score[:, step], out_valid[:, step] = best, best_score, alive
        decay = table[rows, best] if table is not None else _decay(cand, best[:, None], cfg)[:, 0]
        cur = cur * decay
        cur[rows, best] = neg_inf
        cur = torch.where(cur > cfg.min_score, cur, neg_inf)
    return out_idx, torch.where(out_valid, out_score, 0.0), out_valid


def postprocess(class_probs: Tensor, mask_probs: Tensor, durations,
                cfg: InferenceConfig | None = None) -> Detections:
    """Detections for a batch: ``class_probs`` (B, T, K+1) after softmax, ``mask_probs``
    (B, T, T) after sigmoid (row t = mask from snippet t), ``durations`` (B,) seconds."""
    cfg = cfg or InferenceConfig()
    cfg.validate()
    _check_inputs(class_probs, mask_probs, durations)
    with torch.no_grad():
        cand = generate_candidates(class_probs, mask_probs, cfg)
    return select_detections(cand, durations, class_probs.shape[1], class_probs.shape[-1] - 1, cfg)


def select_detections(cand: Candidates, durations, num_snippets: int, num_classes: int,
                      cfg: InferenceConfig) -> Detections:
    """Soft-NMS over candidates (B, N) in snippet units, then seconds: the last steps of every
    detector (STALE's inference and the baselines share them)."""
    with torch.no_grad():
        idx, score, valid = soft_nms(cand, cfg)
        start, end, label = (x.gather(1, idx) for x in (cand.start, cand.end, cand.label))
    dur = np.asarray(durations.detach().cpu() if isinstance(durations, Tensor) else durations,
                     dtype=np.float64)
    bounds = torch.stack([start, end], dim=-1).cpu().numpy().astype(np.float64)
    # snippet -> seconds for the whole batch at once (the timeline's formula, vectorised)
    segments = bounds * (dur / num_snippets)[:, None, None]
    return Detections(start, end, label, score, valid, segments, num_classes)
