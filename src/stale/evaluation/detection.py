"""Temporal-detection mAP, identical to the official ActivityNet ``eval_detection.py``.

``evaluate_detection`` reproduces the official per-class AP bit for bit (same sort calls on the
same arrays, same float64 operations in the same order; see ``docs/evaluation.md``), with these
deliberate, reported differences in *policy* (never in the numbers for inputs both accept):

* subset names are compared case-insensitively (THUMOS14 files say ``"Test"``);
* predictions whose label is not a GT class of the subset are ignored and counted
  (the official code crashes with ``KeyError``);
* malformed entries raise :class:`StaleError` instead of being coerced with ``float()``.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from stale.core.errors import StaleError
from stale.evaluation.inputs import (GroundTruth, Predictions, default_subset, load_blocked, load_json_file,
                                     parse_ground_truth, parse_predictions)
from stale.evaluation.matching import greedy_match

# presets built with numpy.linspace as in the official scripts (decimal literals differ:
# linspace(0.3, 0.7, 5)[1] is 0.39999999999999997)
TIOU_PRESETS = {
    "thumos14": (0.3, 0.7, 5),
    "activitynet": (0.5, 0.95, 10),
}


@dataclass
class DetectionEvalConfig:
    """Settings of the detection evaluator.

    Attributes:
        subset: GT subset to evaluate (case-insensitive; ActivityNet "validation", THUMOS14 "test").
        tiou: threshold preset ("activitynet" = linspace(0.5, 0.95, 10), "thumos14" =
            linspace(0.3, 0.7, 5)) or a comma-separated list such as "0.3,0.5,0.7".
        max_pairs: candidate (prediction, GT) pairs built per chunk; bounds peak memory.
    """

    subset: str = "validation"
    tiou: str = "activitynet"
    max_pairs: int = 2_000_000


def resolve_tiou_thresholds(spec: str | Sequence[float] | np.ndarray) -> np.ndarray:
    """Threshold preset name, comma-separated string or sequence -> (T,) float64 in [0, 1]."""
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name in TIOU_PRESETS:
            return np.linspace(*TIOU_PRESETS[name])
        try:
            values = [float(v) for v in spec.split(",") if v.strip()]
        except ValueError:
            raise StaleError(f"--tiou: expected {' | '.join(TIOU_PRESETS)} or a comma-separated "
                             f"list of numbers, got {spec!r}") from None
    else:
        values = [float(v) for v in np.asarray(spec, dtype=np.float64).ravel()]
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise StaleError("--tiou: no thresholds given")
    if not (np.isfinite(arr).all() and (arr >= 0).all() and (arr <= 1).all()):
        raise StaleError(f"--tiou: thresholds must lie in [0, 1], got {values}")
    return arr


@dataclass
class DetectionResult:
    """mAP per tIoU threshold (fractions in [0, 1]) plus counts of every input policy applied.

    ``ap`` is (T, C): AP of class ``classes[c]`` at ``tiou[t]``.
    """

    subset: str
    tiou: list[float]
    classes: list[str]
    ap: np.ndarray
    mAP: list[float]
    average_mAP: float
    num_gt_videos: int
    num_gt_instances: int
    num_predictions: int                # evaluated (after blocked and ignored ones)
    ignored_predictions: int            # label not among the subset's GT classes
    ignored_labels: dict[str, int] = field(default_factory=dict)
    predictions_in_unknown_videos: int = 0   # no GT video of the subset: false positives
    blocked_gt_videos: int = 0
    blocked_prediction_videos: int = 0
    reversed_segments: dict[str, int] = field(default_factory=dict)
    negative_starts: dict[str, int] = field(default_factory=dict)   # start < 0 s, used as given
    warnings: list[str] = field(default_factory=list)

    @property
    def per_class_ap(self) -> dict[str, list[float]]:
        return {c: [float(v) for v in self.ap[:, i]] for i, c in enumerate(self.classes)}

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the keys of ``stale evaluate --json-out``)."""
        return {
            "subset": self.subset,
            "tiou": list(self.tiou),
            "mAP": list(self.mAP),
            "average_mAP": self.average_mAP,
            "per_class_ap": self.per_class_ap,
            "num_classes": len(self.classes),
            "num_gt_videos": self.num_gt_videos,
            "num_gt_instances": self.num_gt_instances,
            "num_predictions": self.num_predictions,
            "ignored_predictions": self.ignored_predictions,
            "ignored_labels": dict(self.ignored_labels),
            "predictions_in_unknown_videos": self.predictions_in_unknown_videos,
            "blocked_gt_videos": self.blocked_gt_videos,
            "blocked_prediction_videos": self.blocked_prediction_videos,
            "reversed_segments": dict(self.reversed_segments),
            "negative_starts": dict(self.negative_starts),
            "warnings": list(self.warnings),
        }


def interpolated_average_precision(tp: np.ndarray, npos: int) -> np.ndarray:
    """All-point interpolated AP of ranked detections of one class at each threshold.

    Args:
        tp: (T, n) bool, true-positive flags in rank order (others are false positives).
        npos: number of GT instances of the class (> 0).

    Returns:
        (T,) float64, equal bit for bit to the official ``interpolated_prec_rec`` (the final
        ``np.sum`` is called on the same 1-D arrays, because its pairwise order sets the bits).
    """
    n_thr, n = tp.shape
    ap = np.zeros(n_thr)
    if n == 0:
        return ap
    tp_cum = np.cumsum(tp, axis=1).astype(np.float64)
    fp_cum = np.cumsum(~tp, axis=1).astype(np.float64)
    rec = tp_cum / float(npos)
    prec = tp_cum / (tp_cum + fp_cum)
    zeros = np.zeros((n_thr, 1))
    mprec = np.hstack([zeros, prec, zeros])
    mrec = np.hstack([zeros, rec, np.ones((n_thr, 1))])
    # precision envelope: running max from the right (max is exact, so vectorising is safe)
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    step = mrec[:, 1:] != mrec[:, :-1]
    terms = (mrec[:, 1:] - mrec[:, :-1]) * mprec[:, 1:]
    for t in range(n_thr):
        ap[t] = np.sum(terms[t][step[t]])
    return ap


def evaluate_detection(ground_truth: Any, predictions: Any, subset: str | None = None,
                       tiou_thresholds: str | Sequence[float] | np.ndarray = "activitynet",
                       blocked: Iterable[str] = (), *, gt_source: str = "ground truth",
                       pred_source: str = "predictions", max_pairs: int = 2_000_000
                       ) -> DetectionResult:
    """ActivityNet detection mAP of ``predictions`` against ``ground_truth``.

    Args:
        ground_truth: parsed GT JSON, ``{"database": {vid: {"subset", "annotations"}}}``.
        predictions: parsed results JSON, ``{"results": {vid: [{"label","score","segment"}]}}``.
        subset: GT subset to evaluate, compared case-insensitively (None: the ground truth's
            only subset when it holds one, else "validation"; see ``default_subset``).
        tiou_thresholds: preset name, comma-separated string or numbers.
        blocked: video ids removed from both GT and predictions.
        gt_source, pred_source: names (file paths) used in error messages.
        max_pairs: chunk size of the candidate-pair builder (memory bound).
    """
    thresholds = resolve_tiou_thresholds(tiou_thresholds)
    blocked = set(blocked)
    subset = default_subset(ground_truth) if subset is None else subset
    gt = parse_ground_truth(ground_truth, subset, blocked, gt_source)
    if len(gt.classes) == 0:
        seen = ", ".join(f"{k!r} ({v} videos)" for k, v in gt.subsets_seen.items()) or "none"
        raise StaleError(f"{gt_source}: no ground-truth instances in subset {subset!r} "
                         f"(subsets present: {seen})")
    pred = parse_predictions(predictions, blocked, pred_source)
    return _evaluate_arrays(gt, pred, subset, thresholds, pred_source, max_pairs)


def evaluate_files(gt_path: str | os.PathLike, pred_path: str | os.PathLike,
                   subset: str | None = None,
                   tiou_thresholds: str | Sequence[float] = "activitynet",
                   blocked_path: str | os.PathLike | None = None) -> DetectionResult:
    """``evaluate_detection`` on JSON files (errors name the files). The garbage collector is
    paused meanwhile: the parsed files are millions of acyclic objects it would re-scan."""
    from stale.core.io import paused_gc

    blocked = load_blocked(blocked_path) if blocked_path is not None else ()
    thresholds = resolve_tiou_thresholds(tiou_thresholds)
    with paused_gc():
        return evaluate_detection(load_json_file(gt_path), load_json_file(pred_path), subset,
                                  thresholds, blocked, gt_source=str(gt_path),
                                  pred_source=str(pred_path))


def _evaluate_arrays(gt: GroundTruth, pred: Predictions, subset: str, thresholds: np.ndarray,
                     pred_source: str, max_pairs: int) -> DetectionResult:
    n_cls, warnings = len(gt.classes), []
    class_index = {c: i for i, c in enumerate(gt.classes)}
    # labels are strings (checked by the parser), so every lookup is a plain dict hit or miss
    p_label = np.fromiter(map(class_index.get, pred.label_names, itertools.repeat(-1)),
                          dtype=np.int64, count=len(pred.label_names))
    ignored = Counter(pred.label_names[i] for i in np.flatnonzero(p_label < 0).tolist())
    n_ignored = sum(ignored.values())
    if n_ignored:
        top = ", ".join(f"{k!r} x{v}" for k, v in ignored.most_common(5))
        warnings.append(f"ignored {n_ignored} predictions whose label is not a ground-truth class "
                        f"of subset {subset!r} ({top}{', ...' if len(ignored) > 5 else ''})")

    # common video table: GT videos first, then prediction-only videos (false positives)
    vid_index = {v: i for i, v in enumerate(gt.video_ids)}
    n_gt_vid = len(gt.video_ids)
    p_vid = np.fromiter((vid_index.setdefault(v, len(vid_index)) for v in pred.video_ids),
                        dtype=np.int64, count=len(pred.video_ids))[pred.video]
    keep = p_label >= 0
    p_label, p_vid = p_label[keep], p_vid[keep]
    p_seg, p_score = pred.segments[keep], pred.scores[keep]
    unknown = int((p_vid >= n_gt_vid).sum())
    _warn_v_prefix(gt.video_ids, pred.video_ids, pred.video[keep], p_vid >= n_gt_vid, warnings)
    reversed_counts = {"ground_truth": int((gt.segments[:, 1] < gt.segments[:, 0]).sum()),
                       "predictions": int((p_seg[:, 1] < p_seg[:, 0]).sum())}
    if any(reversed_counts.values()):
        warnings.append(f"segments with end < start (used as given, as the official code does): "
                        f"{reversed_counts['ground_truth']} ground truth, "
                        f"{reversed_counts['predictions']} predictions")
    negative = {"ground_truth": int((gt.segments[:, 0] < 0).sum()), "predictions": int((p_seg[:, 0] < 0).sum())}
    if any(negative.values()):
        warnings.append(f"segments starting before 0 s (used as given, as the official code does; a video "
                        f"starts at 0): {negative['ground_truth']} ground truth, {negative['predictions']} "
                        f"predictions")

    # processing order: per class, np.argsort(scores)[::-1] over that class's predictions in
    # input order -- the very call of the official code, so tied scores resolve identically
    by_class = np.argsort(p_label, kind="stable")
    cls_bounds = np.searchsorted(p_label[by_class], np.arange(n_cls + 1))
    proc = np.empty_like(by_class)
    for c in range(n_cls):
        idx = by_class[cls_bounds[c]:cls_bounds[c + 1]]
        proc[cls_bounds[c]:cls_bounds[c + 1]] = idx[np.argsort(p_score[idx])[::-1]]

    n_vid = len(vid_index)
    g_key = gt.label * n_vid + gt.video
    g_order = np.argsort(g_key, kind="stable")           # groups contiguous, file order inside
    g_sorted_key = g_key[g_order]
    p_key = p_label[proc] * n_vid + p_vid[proc]
    lo = np.searchsorted(g_sorted_key, p_key, "left")
    hi = np.searchsorted(g_sorted_key, p_key, "right")
    tp = greedy_match(p_seg[proc], p_key, gt.segments[g_order], lo, hi - lo, thresholds,
                      max_pairs=max_pairs)

    npos = np.bincount(gt.label, minlength=n_cls)
    ap = np.zeros((len(thresholds), n_cls))
    for c in range(n_cls):
        ap[:, c] = interpolated_average_precision(tp[cls_bounds[c]:cls_bounds[c + 1]].T, npos[c])
    m_ap = ap.mean(axis=1)
    return DetectionResult(
        subset=subset, tiou=[float(t) for t in thresholds], classes=list(gt.classes), ap=ap,
        mAP=[float(v) for v in m_ap], average_mAP=float(m_ap.mean()),
        num_gt_videos=n_gt_vid, num_gt_instances=len(gt.label), num_predictions=len(p_label),
        ignored_predictions=n_ignored, ignored_labels=dict(ignored),
        predictions_in_unknown_videos=unknown, blocked_gt_videos=gt.blocked_videos_removed,
        blocked_prediction_videos=pred.blocked_videos_removed,
        reversed_segments=reversed_counts, negative_starts=negative, warnings=warnings)


def _warn_v_prefix(gt_videos: list[str], pred_videos: list[str], p_video: np.ndarray,
                   unknown: np.ndarray, warnings: list[str]) -> None:
    """Warn (never fix) when unmatched prediction ids would match GT with/without ``v_``."""
    if not unknown.any():
        return
    gt_set = set(gt_videos)
    unknown_vids = np.unique(p_video[unknown])
    near = [i for i in unknown_vids.tolist()
            if (pred_videos[i][2:] if pred_videos[i].startswith("v_") else "v_" + pred_videos[i])
            in gt_set]
    if near:
        n_pred = int(np.isin(p_video[unknown], near).sum())
        near = [pred_videos[i] for i in near]
        warnings.append(f"{len(near)} prediction video ids ({n_pred} predictions, e.g. "
                        f"{near[0]!r}) match no ground-truth video but would after adding or "
                        f"removing a 'v_' prefix; they were scored as false positives -- "
                        f"fix the ids if that is not intended")
