"""Per-class precision-recall curves, computed exactly as the AP is.

:func:`precision_recall` ranks and matches the predictions the way :func:`evaluate_detection`
does (same parsing and policies, the same per-class ``np.argsort(scores)[::-1]`` visiting order,
the same greedy matcher), and returns, for every class and tIoU threshold, the cumulative
precision and recall after each ranked prediction. Integrating the interpolated precision
envelope over recall (:meth:`PRCurves.average_precision`) gives the evaluator's AP bit for bit
(tested), so the pictures in a report show exactly what the mAP numbers summarise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from stale.core.errors import StaleError
from stale.evaluation.detection import interpolated_average_precision, resolve_tiou_thresholds
from stale.evaluation.inputs import parse_ground_truth, parse_predictions
from stale.evaluation.matching import greedy_match


@dataclass
class ClassCurve:
    """One class's ranked detections: ``scores`` (n,) descending (visiting order), ``tp`` (T, n)
    true-positive flags at each threshold, ``precision`` / ``recall`` (T, n) cumulative after each
    rank, ``npos`` ground-truth instances."""

    scores: np.ndarray
    tp: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    npos: int


@dataclass
class PRCurves:
    """Curves of every ground-truth class of a subset at each of ``tiou``."""

    tiou: list[float]
    classes: list[str]
    curves: dict[str, ClassCurve]

    def average_precision(self) -> np.ndarray:
        """(T, C) AP, integrated from the curves: the interpolated envelope (running maximum of the
        precision from the right) times each recall step, summed in the evaluator's order."""
        ap = np.zeros((len(self.tiou), len(self.classes)))
        for c, name in enumerate(self.classes):
            cur = self.curves[name]
            if cur.scores.size == 0:
                continue
            t = len(self.tiou)
            zeros = np.zeros((t, 1))
            mprec = np.hstack([zeros, cur.precision, zeros])
            mrec = np.hstack([zeros, cur.recall, np.ones((t, 1))])
            mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
            step = mrec[:, 1:] != mrec[:, :-1]
            terms = (mrec[:, 1:] - mrec[:, :-1]) * mprec[:, 1:]
            for i in range(t):
                ap[i, c] = np.sum(terms[i][step[i]])
        return ap

    def at(self, tiou: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{class: (recall (n,), precision (n,))}`` at the threshold closest to ``tiou``."""
        i = int(np.argmin(np.abs(np.asarray(self.tiou) - tiou)))
        return {c: (cur.recall[i], cur.precision[i]) for c, cur in self.curves.items()}


def precision_recall(ground_truth: Any, predictions: Any, subset: str = "validation",
                     tiou_thresholds: str | Sequence[float] | np.ndarray = "activitynet",
                     blocked: Iterable[str] = (), *, gt_source: str = "ground truth",
                     pred_source: str = "predictions", max_pairs: int = 2_000_000) -> PRCurves:
    """Precision-recall curves of ``predictions`` against ``ground_truth`` (arguments as
    :func:`stale.evaluation.evaluate_detection`). Predictions whose label is no GT class are
    ignored, as there; predictions in videos without GT are false positives, as there."""
    thresholds = resolve_tiou_thresholds(tiou_thresholds)
    blocked = set(blocked)
    gt = parse_ground_truth(ground_truth, subset, blocked, gt_source)
    if len(gt.classes) == 0:
        raise StaleError(f"{gt_source}: no ground-truth instances in subset {subset!r}")
    pred = parse_predictions(predictions, blocked, pred_source)
    n_cls = len(gt.classes)
    class_index = {c: i for i, c in enumerate(gt.classes)}
    p_label = np.fromiter((class_index.get(n, -1) for n in pred.label_names), dtype=np.int64,
                          count=len(pred.label_names))
    vid_index = {v: i for i, v in enumerate(gt.video_ids)}
    p_vid = np.fromiter((vid_index.setdefault(v, len(vid_index)) for v in pred.video_ids),
                        dtype=np.int64, count=len(pred.video_ids))[pred.video]
    keep = p_label >= 0
    p_label, p_vid, p_seg, p_score = p_label[keep], p_vid[keep], pred.segments[keep], pred.scores[keep]
    # the evaluator's visiting order: per class, argsort(scores)[::-1] over input order
    by_class = np.argsort(p_label, kind="stable")
    bounds = np.searchsorted(p_label[by_class], np.arange(n_cls + 1))
    proc = np.empty_like(by_class)
    for c in range(n_cls):
        idx = by_class[bounds[c]:bounds[c + 1]]
        proc[bounds[c]:bounds[c + 1]] = idx[np.argsort(p_score[idx])[::-1]]
    n_vid = len(vid_index)
    g_key = gt.label * n_vid + gt.video
    g_order = np.argsort(g_key, kind="stable")
    g_sorted = g_key[g_order]
    p_key = p_label[proc] * n_vid + p_vid[proc]
    lo = np.searchsorted(g_sorted, p_key, "left")
    hi = np.searchsorted(g_sorted, p_key, "right")
    tp_all = greedy_match(p_seg[proc], p_key, gt.segments[g_order], lo, hi - lo, thresholds,
                          max_pairs=max_pairs)                               # (N, T)
    npos = np.bincount(gt.label, minlength=n_cls)
    curves = {}
    for c, name in enumerate(gt.classes):
        tp = tp_all[bounds[c]:bounds[c + 1]].T                               # (T, n)
        tp_cum = np.cumsum(tp, axis=1).astype(np.float64)
        fp_cum = np.cumsum(~tp, axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = tp_cum / (tp_cum + fp_cum)
        curves[name] = ClassCurve(scores=p_score[proc[bounds[c]:bounds[c + 1]]], tp=tp,
                                  precision=prec, recall=tp_cum / float(npos[c]), npos=int(npos[c]))
    return PRCurves(tiou=[float(t) for t in thresholds], classes=list(gt.classes), curves=curves)


def curve_ap(curve: ClassCurve) -> np.ndarray:
    """(T,) AP of one class from its flags, with the evaluator's own routine."""
    return interpolated_average_precision(curve.tp, curve.npos)
