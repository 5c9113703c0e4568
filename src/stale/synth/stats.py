"""Difficulty statistics of a generated dataset (the numbers docs/synth.md quotes).

* nearest-prototype snippet accuracy: each foreground snippet (``a(t) >= 0.5``) is assigned the
  class whose visual prototype has the highest cosine similarity — an oracle that knows the
  visual encoder; a detector must learn it from the seen classes.
* foreground/background separability: a ridge-regression linear probe on snippet features,
  trained on half of the videos and tested (balanced accuracy) on the other half.
* in/out similarity: mean cosine similarity to the annotated class prototype on that class's
  snippets vs. on background snippets of the same videos.
"""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` L2-normalised, in float64 (an all-zero row stays zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


_unit = unit


def nearest_prototype_accuracy(features: np.ndarray, labels: np.ndarray, prototypes: np.ndarray) -> float:
    """(N, D) features, (N,) labels in [0, K), (K, D) prototypes -> fraction classified correctly."""
    if len(labels) == 0:
        return float("nan")
    pred = (_unit(features) @ _unit(prototypes).T).argmax(1)
    return float((pred == labels).mean())


def ridge_probe(x_train, y_train, x_test, y_test, l2: float = 1e-2) -> float:
    """Balanced test accuracy of a ridge linear classifier on binary labels (bool arrays)."""
    def design(x):
        return np.concatenate([np.asarray(x, np.float64), np.ones((len(x), 1))], 1)
    xa = design(x_train)
    target = np.where(y_train, 1.0, -1.0)
    # weight classes equally so the probe cannot win by predicting the majority class
    w = np.where(y_train, 0.5 / max(y_train.mean(), 1e-9), 0.5 / max(1 - y_train.mean(), 1e-9))
    lhs = xa.T @ (xa * w[:, None]) + l2 * len(xa) * np.eye(xa.shape[1])
    beta = np.linalg.solve(lhs, xa.T @ (w * target))
    pred = design(x_test) @ beta > 0
    return float(0.5 * ((pred[y_test]).mean() + (~pred[~y_test]).mean()))


def collect(dataset, max_bg_per_video: int = 400, seed: int = 0) -> dict:
    """Render ``dataset``'s videos and gather labelled snippets: fg (label >= 0), bg (a = 0 and
    no distractor), plus the video index of each snippet; bg is subsampled per video."""
    rng = np.random.default_rng(seed)
    feats, labels, vids = [], [], []
    for i, (_, r) in enumerate(dataset.iter_rendered()):
        fg = np.flatnonzero(r.label >= 0)
        bg = np.flatnonzero((r.fg_weight == 0) & (r.distractor_weight == 0))
        if len(bg) > max_bg_per_video:
            bg = rng.choice(bg, max_bg_per_video, replace=False)
        idx = np.concatenate([fg, bg])
        feats.append(r.features[idx])
        labels.append(r.label[idx])
        vids.append(np.full(len(idx), i))
    return {"features": np.concatenate(feats), "labels": np.concatenate(labels), "video": np.concatenate(vids)}


def difficulty_stats(dataset) -> dict:
    """The statistics above for a :class:`stale.synth.generate.SynthDataset`."""
    data = collect(dataset)
    x, y, v = data["features"], data["labels"], data["video"]
    protos = dataset.parts.prototypes
    fg = y >= 0
    sims = _unit(x) @ _unit(protos).T
    # each bg snippet is compared with the classes annotated in its own video
    inside = sims[fg, y[fg]].mean() if fg.any() else float("nan")
    member = np.zeros((int(v.max()) + 1, len(protos)), dtype=bool)
    member[v[fg], y[fg]] = True
    bg_rows = np.flatnonzero(~fg & member[v].any(1))
    m = member[v[bg_rows]]
    outside = ((sims[bg_rows] * m).sum(1) / m.sum(1)).mean() if len(bg_rows) else float("nan")
    train = v % 2 == 0
    return {
        "snippets_fg": int(fg.sum()), "snippets_bg": int((~fg).sum()),
        "nearest_prototype_acc": nearest_prototype_accuracy(x[fg], y[fg], protos),
        "chance_acc": 1.0 / len(protos),
        "fg_bg_probe_balanced_acc": ridge_probe(x[train], fg[train], x[~train], fg[~train]),
        "sim_inside": float(inside), "sim_outside": float(outside),
    }
