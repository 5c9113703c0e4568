"""Metric-curve pictures: one line per run, one panel per metric, a real PNG."""

import numpy as np

from stale.viz.plots import plot_metric_curves


def test_metric_curves_png(tmp_path):
    runs = [[{"epoch": e, "train_cls": 1.0 / e + s, "train_gate_coverage": 0.3} for e in range(1, 6)]
            for s in (0.0, 0.1)]
    out = plot_metric_curves({"a": runs, "b": runs[:1]}, ["train_cls", "train_gate_coverage"],
                             tmp_path / "c.png", title="t")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[1] > 2 * img.shape[0] and np.std(img) > 0.05   # two panels side by side, not blank
