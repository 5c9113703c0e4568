"""Zero-shot difficulty of a generated dataset for one split: what a detector that knows the
unseen classes only by name can get from the features (the numbers docs/synth.md quotes per
preset).

* ``nearest_text``: unseen-class foreground snippets (``a(t) >= 0.5``) labelled with the closest
  of the unseen names' text embeddings (cosine) -- the training-free CLIP ceiling per snippet.
  Only where features live in the text space (same dimension).
* ``probe``: a ridge map from features to text embeddings, fitted on the *seen* classes'
  foreground snippets (target: their class's text embedding), then the same nearest-text rule
  on the mapped unseen snippets -- whether the name information can be carried over linearly.
* ``bg_auc`` / ``probe_bg_auc``: per video holding an unseen class, the AUC with which the true
  class's similarity (raw / mapped features) separates that class's snippets from the video's
  background snippets (``a = 0``, no distractor), averaged over videos: about 0.5 when
  backgrounds carry the class context, near 1 when text similarity alone localises.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stale.synth.stats import collect, unit



def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half): Mann-Whitney U."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    ranks[order] = np.arange(1, len(allv) + 1)
    # average ranks of ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def ridge_map(x: np.ndarray, y: np.ndarray, l2: float = 1e-1) -> np.ndarray:
    """(D+1, E) least-squares map with bias from ``x`` (N, D) to ``y`` (N, E), ridge ``l2·N``."""
    xa = np.concatenate([x, np.ones((len(x), 1))], 1)
    lhs = xa.T @ xa + l2 * len(xa) * np.eye(xa.shape[1])
    return np.linalg.solve(lhs, xa.T @ y)


def zero_shot_difficulty(dataset, seen: Sequence[str], unseen: Sequence[str], text: np.ndarray,
                         max_bg_per_video: int = 400, seed: int = 0) -> dict:
    """The statistics above for a :class:`stale.synth.generate.SynthDataset`.

    ``text`` (K, E): the text embeddings a detector would use for ``dataset.classes`` (in that
    order), e.g. the training-free detector's template ensemble.
    """
    idx = {c: i for i, c in enumerate(dataset.classes)}
    seen_i = np.array([idx[c] for c in seen])
    unseen_i = np.array([idx[c] for c in unseen])
    text = unit(text)
    data = collect(dataset, max_bg_per_video, seed)
    x, y, v = data["features"].astype(np.float64), data["labels"], data["video"]
    on_unseen = np.isin(y, unseen_i)
    on_seen = np.isin(y, seen_i)

    fit = ridge_map(x[on_seen], text[y[on_seen]])
    mapped = unit(np.concatenate([x, np.ones((len(x), 1))], 1) @ fit)
    out = {"unseen_snippets": int(on_unseen.sum()), "chance": 1.0 / len(unseen_i)}
    spaces = {"probe": mapped}
    if x.shape[1] == text.shape[1]:
        spaces = {"nearest_text": unit(x), **spaces}
    for name, z in spaces.items():
        sims = z @ text.T                                                    # (N, K)
        pred = unseen_i[sims[on_unseen][:, unseen_i].argmax(1)]
        out[name] = float((pred == y[on_unseen]).mean()) if on_unseen.any() else float("nan")
        aucs = []
        for video in np.unique(v[on_unseen]):
            rows = v == video
            neg = sims[rows & (y < 0)]
            for k in np.unique(y[rows & on_unseen]):
                aucs.append(auc(sims[rows & (y == k), k], neg[:, k]))
        key = "bg_auc" if name == "nearest_text" else "probe_bg_auc"
        out[key] = float(np.nanmean(aucs)) if aucs else float("nan")
    return out
