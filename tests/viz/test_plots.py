"""Timeline layout defects (colliding score labels, legend over the axis label) and the
evaluation pictures: measured on the drawn figure with matplotlib's renderer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stale.viz.plots import (drop_overlapping_texts, plot_class_ap, plot_pr_curves, plot_timeline,
                             timeline_figure)

PNG = b"\x89PNG\r\n\x1a\n"


def _texts(fig):
    ax = fig.axes[0]
    return [t for t in ax.texts if t.get_text().strip()]


def test_score_labels_of_short_neighbouring_segments_do_not_collide():
    # five 0.4 s segments 0.1 s apart in a 300 s video: their labels would overlap
    preds = [{"segment": [100 + 0.5 * i, 100.4 + 0.5 * i], "label": "a", "score": 0.9 - 0.1 * i}
             for i in range(5)]
    fig = timeline_figure("v", 300.0, [], {"m": preds}, top=5)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = _texts(fig)
    boxes = [t.get_window_extent(r) for t in texts]
    assert 1 <= len(texts) < 5                          # some labels had to go ...
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    assert texts[0].get_text().strip() == "0.90"       # ... and the best score is kept
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_labels_of_separate_segments_are_all_kept():
    preds = [{"segment": [10 + 50 * i, 30 + 50 * i], "label": "a", "score": 0.5} for i in range(4)]
    fig = timeline_figure("v", 300.0, [], {"m": preds}, top=5)
    assert len(_texts(fig)) == 4
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("n_classes", [1, 3, 9])
def test_legend_never_overlaps_the_axis_label_on_short_figures(n_classes):
    names = [f"class {i}" for i in range(n_classes)]
    gt = [{"segment": [5.0 * i, 5.0 * i + 3], "label": c} for i, c in enumerate(names)]
    fig = timeline_figure("short", 60.0, gt, {}, top=3, classes=names)   # a one-row figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = fig.legends[0].get_window_extent(r)
    xlabel = ax.xaxis.label.get_window_extent(r)
    ticks = ax.xaxis.get_tightbbox(r)
    assert not legend.overlaps(xlabel) and legend.y1 <= ticks.y0 + 1
    assert legend.y0 >= 0 and legend.x0 >= 0 and legend.x1 <= fig.bbox.width + 1
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_drop_overlapping_texts_keeps_order_priority():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    a = ax.text(0.5, 0.5, "first")
    b = ax.text(0.5, 0.5, "second")
    c = ax.text(0.1, 0.1, "third")
    assert drop_overlapping_texts(fig, [a, b, c]) == 1
    assert [t.get_text() for t in ax.texts] == ["first", "third"]
    plt.close(fig)


def test_pictures_are_pngs(tmp_path):
    out = plot_timeline("v", 40.0, [{"segment": [1, 5], "label": "a"}],
                        {"m": [{"segment": [1, 4], "label": "a", "score": 0.7}]}, tmp_path / "t.png")
    assert out.read_bytes()[:8] == PNG
    ap = plot_class_ap({"m1": {"a": 0.5, "b": 0.1}, "m2": {"a": 0.2}}, tmp_path / "ap.png")
    assert ap.read_bytes()[:8] == PNG
    rec, prec = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 0.67])
    pr = plot_pr_curves({"m1": {"a": (rec, prec), "b": (rec, prec)}}, tmp_path / "pr.png", 0.5)
    assert pr.read_bytes()[:8] == PNG
