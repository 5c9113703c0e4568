"""A deliberately simple reference of the official ActivityNet detection AP, for tests only.

Written from the specification (docs/evaluation.md, the notes), one prediction at a time with
plain Python loops. It calls numpy only where the official algorithm's result depends on the
exact numpy call: ``np.argsort(...)[::-1]`` (unstable sort: tie order), the float64 tIoU
formula (0/0 -> NaN) and the final ``np.sum`` (pairwise summation sets the last bits).
"""

from __future__ import annotations

import numpy as np


def reference_tiou(pred_seg, gt_segs):
    """tIoU of one prediction with a list of GT segments, as the official ``segment_iou``."""
    target = np.asarray(pred_seg, dtype=np.float64)
    cand = np.asarray(gt_segs, dtype=np.float64).reshape(-1, 2)
    tt1 = np.maximum(target[0], cand[:, 0])
    tt2 = np.minimum(target[1], cand[:, 1])
    inter = (tt2 - tt1).clip(0)
    union = (cand[:, 1] - cand[:, 0]) + (target[1] - target[0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter.astype(float) / union


def reference_interpolated_ap(prec, rec):
    mprec = [0.0] + list(prec) + [0.0]
    mrec = [0.0] + list(rec) + [1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    terms = [(mrec[i] - mrec[i - 1]) * mprec[i]
             for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1]]
    return float(np.sum(np.array(terms, dtype=np.float64)))


def reference_class_ap(gts, preds, thresholds):
    """gts: [(video, start, end)] in file order; preds: [(video, start, end, score)] in order."""
    n_thr = len(thresholds)
    if not preds:
        return [0.0] * n_thr
    npos = float(len(gts))
    lock = [[-1] * len(gts) for _ in range(n_thr)]
    order = np.argsort(np.array([p[3] for p in preds], dtype=np.float64))[::-1]
    preds = [preds[i] for i in order]
    tp = [[0] * len(preds) for _ in range(n_thr)]
    fp = [[0] * len(preds) for _ in range(n_thr)]
    gt_of_video: dict[str, list[int]] = {}
    for j, g in enumerate(gts):
        gt_of_video.setdefault(g[0], []).append(j)
    for idx, p in enumerate(preds):
        if p[0] not in gt_of_video:
            for t in range(n_thr):
                fp[t][idx] = 1
            continue
        members = gt_of_video[p[0]]
        tiou = reference_tiou((p[1], p[2]), [(gts[j][1], gts[j][2]) for j in members])
        visit = tiou.argsort()[::-1]
        for t, thr in enumerate(thresholds):
            for k in visit:
                if tiou[k] < thr:
                    fp[t][idx] = 1
                    break
                if lock[t][members[k]] >= 0:
                    continue
                tp[t][idx] = 1
                lock[t][members[k]] = idx
                break
            if tp[t][idx] == 0 and fp[t][idx] == 0:
                fp[t][idx] = 1
    out = []
    for t in range(n_thr):
        tc = fc = 0.0
        prec, rec = [], []
        for i in range(len(preds)):
            tc += tp[t][i]
            fc += fp[t][i]
            rec.append(tc / npos)
            prec.append(tc / (tc + fc))
        out.append(reference_interpolated_ap(prec, rec))
    return out


def reference_evaluate(gt_data, pred_data, subset, thresholds, blocked=()):
    """Returns (class names in first-appearance order, AP as nested list [threshold][class])."""
    blocked = set(blocked)
    classes: dict[str, int] = {}
    gt_rows = []
    for vid, v in gt_data["database"].items():
        if v["subset"].lower() != subset.lower() or vid in blocked:
            continue
        for ann in v["annotations"]:
            classes.setdefault(ann["label"], len(classes))
            gt_rows.append((vid, float(ann["segment"][0]), float(ann["segment"][1]),
                            classes[ann["label"]]))
    pred_rows = []
    for vid, lst in pred_data["results"].items():
        if vid in blocked:
            continue
        for r in lst:
            if r["label"] in classes:
                pred_rows.append((vid, float(r["segment"][0]), float(r["segment"][1]),
                                  float(r["score"]), classes[r["label"]]))
    ap = [[0.0] * len(classes) for _ in thresholds]
    for c in range(len(classes)):
        gts = [g[:3] for g in gt_rows if g[3] == c]
        preds = [p[:4] for p in pred_rows if p[4] == c]
        for t, v in enumerate(reference_class_ap(gts, preds, thresholds)):
            ap[t][c] = v
    return list(classes), ap
