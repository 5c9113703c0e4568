"""Report sections of evaluated detections: mAP at each tIoU, per-class AP bars,
precision-recall curves and the leakage-control comparison (:func:`evaluation_sections`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from stale.reporting.page import Block, Section, image, paragraph, table


def percent(x: Any) -> str:
    """A fraction as a percentage with one decimal ("" for missing / non-finite)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    return f"{100 * v:.1f}" if math.isfinite(v) else ""


def metrics_table(methods: Mapping[str, Mapping[str, Any]]) -> Block:
    """mAP (%) at each tIoU and the average, one row per method (``stale evaluate --json-out``
    dicts: ``tiou``, ``mAP``, ``average_mAP``)."""
    tious: list[float] = []
    for m in methods.values():
        for t in m.get("tiou") or []:
            if t not in tious:
                tious.append(t)
    headers = ["method", *[f"mAP@{float(t):.2f}" for t in tious], "average mAP"]
    rows = []
    for name, m in methods.items():
        by_t = dict(zip(m.get("tiou") or [], m.get("mAP") or []))
        rows.append([name, *[percent(by_t.get(t)) for t in tious], percent(m.get("average_mAP"))])
    return table(headers, rows, "mean average precision (%) at each temporal IoU threshold")


def class_ap_means(methods: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """method -> {class: AP averaged over the tIoU thresholds} from ``per_class_ap`` lists."""
    out = {}
    for name, m in methods.items():
        per = m.get("per_class_ap") or {}
        vals = {}
        for c, aps in per.items():
            nums = [float(a) for a in (aps if isinstance(aps, list) else [aps])
                    if isinstance(a, (int, float)) and math.isfinite(float(a))]
            if nums:
                vals[c] = sum(nums) / len(nums)
        if vals:
            out[name] = vals
    return out


def control_rows(methods: Mapping[str, Mapping[str, Any]], controls: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Rows (method, control, method avg mAP, control avg mAP, ratio) of the leakage comparison."""
    rows = []
    for method, control in controls:
        a = methods.get(method, {}).get("average_mAP")
        b = methods.get(control, {}).get("average_mAP")
        ratio = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0:
            ratio = f"{b / a:.2f}"
        rows.append([method, control, percent(a), percent(b), ratio])
    return rows


def evaluation_sections(methods: Mapping[str, Mapping[str, Any]], controls: Sequence[tuple[str, str]] = (),
                        curves: Mapping[str, Any] | None = None, pr_tiou: float = 0.5,
                        workdir: str | os.PathLike | None = None) -> list[Section]:
    """Sections for evaluated detections: the mAP table, per-class AP bars, precision-recall
    curves (``curves``: method -> :class:`stale.evaluation.curves.PRCurves`) and the leakage
    control (``controls``: (method, its control) pairs). Pictures are drawn to ``workdir``
    (a temporary folder when None) and inlined."""
    import tempfile

    from stale.viz.plots import plot_class_ap, plot_pr_curves

    sections = [Section("Detection mAP", [metrics_table(methods)], id="metrics")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        means = class_ap_means(methods)
        if means:
            png = plot_class_ap(means, folder / "class_ap.png",
                                "AP per class, averaged over the tIoU thresholds")
            sections.append(Section("Per-class AP", [image(png, "AP (%) of each class, per method")], id="class-ap"))
        if curves:
            first = next(iter(curves.values()))
            tiou = min(first.tiou, key=lambda t: abs(t - pr_tiou))
            pr = {name: c.at(tiou) for name, c in curves.items()}
            png = plot_pr_curves(pr, folder / "pr.png", tiou)
            sections.append(Section("Precision-recall", [
                image(png, f"precision against recall of the ranked detections at tIoU {tiou:.2f}; "
                           f"the area under each step line is the class's AP")], id="pr"))
    if controls:
        sections.append(Section("Leakage control", [
            paragraph("The control asks the same trained model for the unseen classes under permuted names "
              "(each class is asked for under another unseen class's name) and scores the answers "
              "as the true classes. A model that recognises an unseen class through its name must "
              "score near zero there; a control close to the method itself would mean the "
              "detections do not depend on the class names."),
            table(["method", "control", "method avg mAP (%)", "control avg mAP (%)", "control / method"],
                  control_rows(methods, controls))], id="control"))
    return sections


