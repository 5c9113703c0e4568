"""Pictures people would rather look at than read: training curves and detection timelines.

Matplotlib is imported lazily with the non-interactive Agg backend, so these work on headless
machines and never open windows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, out: str | Path) -> Path:
    """Write ``fig`` as PNG atomically and release it."""
    from stale.core.io import atomic_path

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a run's ``metrics.jsonl`` (one JSON object per epoch)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_training_curves(runs: Mapping[str, Sequence[dict]], out: str | Path) -> Path:
    """Total training (solid) and held-out (dashed) loss per epoch for each named run -> PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for i, (name, hist) in enumerate(runs.items()):
        color = f"C{i}"
        epochs = [r["epoch"] for r in hist]
        ax.plot(epochs, [r["train_total"] for r in hist], color=color, label=f"{name}: train")
        if hist and "val_total" in hist[0]:
            ax.plot(epochs, [r["val_total"] for r in hist], color=color, ls="--",
                    label=f"{name}: held-out training videos")
    ax.set_xlabel("epoch")
    ax.set_ylabel("total loss")
    ax.set_title("STALE training (seen classes only)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, out)


def pack_lanes(segments: Sequence[Sequence[float]]) -> list[int]:
    """Greedy interval packing: a lane index per segment so that segments in one lane do not
    overlap (in order of start time; fewest lanes for intervals)."""
    order = sorted(range(len(segments)), key=lambda i: segments[i][0])
    lane_end: list[float] = []
    lanes = [0] * len(segments)
    for i in order:
        s, e = segments[i]
        for k, end in enumerate(lane_end):
            if s >= end:
                lanes[i], lane_end[k] = k, e
                break
        else:
            lanes[i] = len(lane_end)
            lane_end.append(e)
    return lanes


def timeline_figure(video_id: str, duration: float, ground_truth: Sequence[dict],
                    predictions: Mapping[str, Sequence[dict]], top: int = 5,
                    classes: Sequence[str] | None = None):
    """The figure of :func:`plot_timeline` (not saved; the caller closes it).

    Layout rules (both once defects): score labels are placed best score first and a label that
    would overlap one already placed is left out (short neighbouring segments used to print
    "0.20.27"); the class legend sits in the figure's own bottom band below the axis label
    (constrained layout), so it cannot overlap the axis label however short the figure is.
    """
    from matplotlib.patches import Patch

    plt = pyplot()
    names = list(classes) if classes else sorted({g["label"] for g in ground_truth} |
                                                 {p["label"] for ps in predictions.values() for p in ps})
    colors = {c: plt.cm.tab10(i % 10) for i, c in enumerate(names)}
    rows = [("ground truth", [dict(g, score=None) for g in ground_truth])]
    rows += [(m, sorted(ps, key=lambda p: -p["score"])[:top]) for m, ps in predictions.items()]
    packed = [(name, items, pack_lanes([it["segment"] for it in items])) for name, items in rows]
    height = 1.6 + 0.45 * sum(max([1, *[ln + 1 for ln in lanes]]) for _, _, lanes in packed)
    fig, ax = plt.subplots(figsize=(11, height), dpi=110, layout="constrained")
    y, ticks, labels, texts = 0.0, [], [], []
    for name, items, lanes in packed:
        band = max([1, *[ln + 1 for ln in lanes]])
        ticks.append(y + band / 2 - 0.5)
        labels.append(name)
        for it, lane in zip(items, lanes):
            s, e = it["segment"]
            ax.barh(y + lane, max(e - s, duration * 0.002), left=s, height=0.8,
                    color=colors.get(it["label"], "0.5"), edgecolor="black", lw=0.5)
            if it["score"] is not None:   # items are in score order: best labels placed first
                texts.append(ax.text(s, y + lane, f" {it['score']:.2f}", va="center", ha="left",
                                     fontsize=7, clip_on=True))
        y += band + 0.6
        ax.axhline(y - 0.8, color="0.8", lw=0.8)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)")
    ax.set_title(f"{video_id} ({duration:.0f} s): ground truth and top-{top} detections "
                 "(colour = class, number = score)", fontsize=9)
    handles = [Patch(color=colors[c], label=c) for c in names if c in colors]
    if handles:
        fig.legend(handles=handles, fontsize=7, loc="outside lower center",
                   ncol=min(len(handles), 6), frameon=False)
    drop_overlapping_texts(fig, texts)
    return fig


def drop_overlapping_texts(fig, texts: Sequence) -> int:
    """Remove every text (in order) whose drawn box overlaps a text kept before it; returns how
    many were removed. Boxes are measured with the figure's renderer after its layout ran."""
    if not texts:
        return 0
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    kept, removed = [], 0
    for t in texts:
        box = t.get_window_extent(renderer)
        if any(box.overlaps(k) for k in kept):
            t.remove()
            removed += 1
        else:
            kept.append(box)
    return removed


def plot_timeline(video_id: str, duration: float, ground_truth: Sequence[dict],
                  predictions: Mapping[str, Sequence[dict]], out: str | Path, top: int = 5,
                  classes: Sequence[str] | None = None) -> Path:
    """One video: ground-truth segments and the ``top`` best predictions of each named method,
    as coloured bars on a time axis with class names and scores -> PNG.

    ``ground_truth``: ``[{"segment": [s, e], "label": name}]`` (may be empty: no annotations);
    ``predictions``: method name -> ActivityNet result items ``[{"segment", "label", "score"}]``.
    """
    fig = timeline_figure(video_id, duration, ground_truth, predictions, top, classes)
    return save_figure(pyplot(), fig, out)


def plot_class_ap(per_method: Mapping[str, Mapping[str, float]], out: str | Path,
                  title: str = "average precision per class") -> Path:
    """Grouped horizontal bars: for each class (rows) the AP (fraction) of each method -> PNG.

    ``per_method``: method -> {class: AP in [0, 1]} (classes missing for a method are drawn as 0).
    """
    import numpy as np

    plt = pyplot()
    methods = list(per_method)
    classes = sorted({c for m in per_method.values() for c in m})
    n_m = max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.22 * n_m * max(len(classes), 1) + 0.3), dpi=110,
                           layout="constrained")
    ys = np.arange(len(classes))
    h = 0.8 / n_m
    for i, m in enumerate(methods):
        vals = [100.0 * float(per_method[m].get(c, 0.0)) for c in classes]
        ax.barh(ys + (i - (n_m - 1) / 2) * h, vals, height=h, color=f"C{i}", label=m)
    ax.set_yticks(ys)
    ax.set_yticklabels(classes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("AP (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    if methods:
        fig.legend(loc="outside lower center", ncol=min(n_m, 3), fontsize=7, frameon=False)
    return save_figure(plt, fig, out)


def plot_pr_curves(curves: Mapping[str, Mapping[str, tuple]], out: str | Path, tiou: float) -> Path:
    """Precision-recall curves at one tIoU: one panel per class, one line per method -> PNG.

    ``curves``: method -> {class: (recall (n,), precision (n,))} in rank order (see
    :func:`stale.evaluation.curves.precision_recall`); the step line is the interpolated
    precision envelope whose area is the AP.
    """
    import math

    import numpy as np

    plt = pyplot()
    methods = list(curves)
    classes = sorted({c for m in curves.values() for c in m})
    cols = min(4, max(len(classes), 1))
    nrows = max(1, math.ceil(len(classes) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.3 * nrows + 0.5), dpi=100,
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    for ax in axes.ravel()[len(classes):]:
        ax.set_visible(False)
    for ax, c in zip(axes.ravel(), classes):
        for i, m in enumerate(methods):
            if c not in curves[m]:
                continue
            rec, prec = (np.asarray(a, dtype=float) for a in curves[m][c])
            env = np.maximum.accumulate(prec[::-1])[::-1] if prec.size else prec
            ax.step(np.r_[0.0, rec], np.r_[env[:1] if env.size else [0.0], env], where="pre",
                    color=f"C{i}", lw=1.2, label=m)
        ax.set_title(c, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for k, ax in enumerate(axes.ravel()[:len(classes)]):
        if k % cols == 0:
            ax.set_ylabel("precision", fontsize=8)
        if k + cols >= len(classes):   # nothing below it: label the axis
            ax.set_xlabel("recall", fontsize=8)
            ax.tick_params(labelbottom=True)
    fig.suptitle(f"precision-recall at tIoU {tiou:.2f} (interpolated envelope; area = AP)", fontsize=9)
    if methods:
        handles = [plt.Line2D([], [], color=f"C{i}", label=m) for i, m in enumerate(methods)]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(methods), 3),
                   fontsize=7, frameon=False)
    return save_figure(plt, fig, out)


def plot_metric_curves(groups: Mapping[str, Sequence[Sequence[dict]]], keys: Sequence[str], out: str | Path,
                       title: str = "") -> Path:
    """Per-epoch curves of ``keys`` (e.g. ``train_cls``, ``train_gate_coverage``) -> PNG, one panel
    per key; ``groups`` maps a label to the metrics records of each of its runs (one line per run,
    one colour per label), so seed-to-seed spread and jumps are visible at a glance."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), dpi=110, squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, (label, runs) in enumerate(groups.items()):
            for j, hist in enumerate(runs):
                pts = [(r["epoch"], r[key]) for r in hist if key in r]
                if pts:
                    ax.plot(*zip(*pts), color=f"C{i}", lw=1.0, alpha=0.85,
                            label=label if j == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key.replace("train_", "").replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(plt, fig, out)


def curve_band(runs: Sequence[Sequence[dict]], key: str) -> tuple[list[int], list[float], list[float], list[int]]:
    """Per-epoch mean and sample std of ``key`` over ``runs`` (each a run's metrics records):
    ``(epochs, mean, std, n)``, every epoch at least one run recorded; std 0 where n is 1."""
    by_epoch: dict[int, list[float]] = {}
    for hist in runs:
        for r in hist:
            if key in r and "epoch" in r and r[key] is not None:
                by_epoch.setdefault(int(r["epoch"]), []).append(float(r[key]))
    epochs = sorted(by_epoch)
    mean, std, n = [], [], []
    for e in epochs:
        v = by_epoch[e]
        m = sum(v) / len(v)
        mean.append(m)
        std.append((sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0)
        n.append(len(v))
    return epochs, mean, std, n


def plot_curve_bands(panels: Mapping[str, Mapping[str, Sequence[Sequence[dict]]]], keys: Sequence[str],
                     out: str | Path, title: str = "") -> Path:
    """Training curves of many runs at a glance -> PNG: one row per panel (e.g. a dataset), one
    column per metric key; in each, one colour per label (e.g. a method) drawn as its mean over
    the label's runs with a ±1 std band (:func:`curve_band`)."""
    plt = pyplot()
    labels = list(dict.fromkeys(label for groups in panels.values() for label in groups))
    fig, axes = plt.subplots(len(panels), len(keys), figsize=(4.0 * len(keys), 2.9 * len(panels)), dpi=100,
                             squeeze=False)
    for row, (panel, groups) in zip(axes, panels.items()):
        for ax, key in zip(row, keys):
            for label, runs in groups.items():
                epochs, mean, std, n = curve_band(runs, key)
                if not epochs:
                    continue
                color = f"C{labels.index(label) % 10}"
                ax.plot(epochs, mean, color=color, lw=1.2, label=f"{label} (n={max(n)})")
                ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                                color=color, alpha=0.15, lw=0)
            ax.set_title(f"{panel}: {key}", fontsize=8)
            ax.set_xlabel("epoch", fontsize=8)
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(plt, fig, out)
