"""The linear-probe detector: the floor a trained zero-shot detector must beat.

Two linear maps fitted in closed form on the *seen* classes' training snippets, then the same
segment generation as the training-free detector:

* a ridge regression ``W`` from centred snippet features (D) to the text space (E), fitted on
  foreground snippets with target ``e_y`` = the prompt-ensemble embedding of the snippet's class
  (:func:`stale.baselines.clip_detector.ensemble_embeddings`); the ridge strength is chosen on the
  held-out training videos (accuracy of nearest-class labelling of their foreground snippets among
  the seen classes), never on test data;
* an actionness map: L2-regularised logistic regression (a few Newton steps) from the features
  to foreground vs background, classes balanced.

Detection of any class names: ``z_t = normalise(W^T (x_t - mu))``, class probabilities
``softmax_k(cos(z_t, e_k) / tau)``, times the actionness probability -> (B, T, K) scores ->
:mod:`stale.baselines.segments`. The fit streams over the training set once (sufficient
statistics ``X^T X``, ``X^T Y``), so memory does not grow with the number of videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stale.baselines.clip_detector import DEFAULT_TEMPLATES, ensemble_embeddings
from stale.baselines.segments import SegmentConfig, scores_to_detections
from stale.core.errors import StaleError
from stale.core.logs import get_logger
from stale.model.decoding import Detections, InferenceConfig

log = get_logger("baselines.probe")


@dataclass
class LinearProbeConfig:
    """Settings of the linear-probe detector (module docstring; docs/baselines.md).

    l2_grid: ridge strengths tried (relative to the mean squared feature norm); the best on the
        held-out training videos is kept (the first when there are none).
    actionness_l2: L2 strength of the logistic actionness map.
    templates: prompt ensemble of the class embeddings.
    temperature: softmax temperature over the classes.
    max_snippets_per_video: background snippets subsampled per video for the actionness fit.
    segments: candidate generation (the final Soft-NMS is the run's ``inference`` section).
    """

    l2_grid: list[float] = field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0])
    actionness_l2: float = 1e-2
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    temperature: float = 0.01
    max_snippets_per_video: int = 64
    segments: SegmentConfig = field(default_factory=SegmentConfig)

    def validate(self) -> None:
        if not self.l2_grid or min(self.l2_grid) <= 0:
            raise StaleError("linear_probe.l2_grid must be a non-empty list of positive numbers")
        if not self.temperature > 0 or not self.actionness_l2 > 0:
            raise StaleError("linear_probe.temperature and actionness_l2 must be > 0")
        if self.max_snippets_per_video < 1:
            raise StaleError("linear_probe.max_snippets_per_video must be >= 1")
        self.segments.validate()


class LinearProbe(nn.Module):
    """The fitted maps as buffers (so they save and load like any model's weights):
    ``mu`` (D,), ``weight`` (D, E), ``act_weight`` (D,), ``act_bias`` ()."""

    def __init__(self, input_dim: int, embed_dim: int):
        super().__init__()
        self.register_buffer("mu", torch.zeros(input_dim))
        self.register_buffer("weight", torch.zeros(input_dim, embed_dim))
        self.register_buffer("act_weight", torch.zeros(input_dim))
        self.register_buffer("act_bias", torch.zeros(()))
        self.register_buffer("l2", torch.zeros(()))

    def project(self, features: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, E) unit vectors in the text space."""
        return F.normalize((features.float() - self.mu) @ self.weight, dim=-1)

    def actionness(self, features: Tensor) -> Tensor:
        """(B, T, D) -> (B, T) foreground probability."""
        return torch.sigmoid((features.float() - self.mu) @ self.act_weight + self.act_bias)


def _snippet_sets(dataset, num_classes: int, max_bg: int, seed: int):
    """Yield per video (features (T, D) float64, labels (T,)) with background subsampled."""
    rng = np.random.default_rng(seed)
    for i in range(len(dataset)):
        _, x, tg = dataset[i]
        labels = np.asarray(tg.snippet_labels)
        bg = np.flatnonzero(labels == num_classes)
        if len(bg) > max_bg:
            bg = rng.choice(bg, max_bg, replace=False)
        keep = np.sort(np.concatenate([np.flatnonzero(labels < num_classes), bg]))
        yield np.asarray(x, dtype=np.float64)[keep], labels[keep]


def _logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 25) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression by Newton's method: x (N, D), y (N,) bool."""
    n, d = x.shape
    w_pos = 0.5 / max(y.mean(), 1e-9)
    w_neg = 0.5 / max(1 - y.mean(), 1e-9)
    sw = np.where(y, w_pos, w_neg)
    xa = np.concatenate([x, np.ones((n, 1))], 1)
    beta = np.zeros(d + 1)
    reg = l2 * np.eye(d + 1)
    reg[-1, -1] = 0.0
    t = y.astype(np.float64)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ beta, -30, 30)))
        g = xa.T @ (sw * (p - t)) / n + reg @ beta
        h = (xa * (sw * p * (1 - p))[:, None]).T @ xa / n + reg
        step = np.linalg.solve(h, g)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def fit_linear_probe(train_set, val_set, classes: Sequence[str], tower, cfg: LinearProbeConfig,
                     seed: int = 0) -> LinearProbe:
    """Fit the probe on ``train_set`` (datasets with targets over ``classes``); choose the ridge
    strength on ``val_set`` (or take the first of the grid when it is empty)."""
    cfg.validate()
    K = len(classes)
    text = ensemble_embeddings(classes, cfg.templates, tower).double().numpy()        # (K, E)
    # pass 1: means; pass 2: centred sufficient statistics (two passes keep it exact and streamed)
    n, sx = 0, None
    for x, _ in _snippet_sets(train_set, K, cfg.max_snippets_per_video, seed):
        sx = x.sum(0) if sx is None else sx + x.sum(0)
        n += len(x)
    if n == 0:
        raise StaleError("linear probe: no training snippets")
    mu = sx / n
    D, E = mu.shape[0], text.shape[1]
    xtx, xty, n_fg = np.zeros((D, D)), np.zeros((D, E)), 0
    act_x, act_y = [], []
    for x, lab in _snippet_sets(train_set, K, cfg.max_snippets_per_video, seed):
        xc = x - mu
        fg = lab < K
        xtx += xc[fg].T @ xc[fg]
        xty += xc[fg].T @ text[lab[fg]]
        n_fg += int(fg.sum())
        act_x.append(xc)
        act_y.append(fg)
    if n_fg == 0:
        raise StaleError("linear probe: no foreground snippets in the training videos")
    scale = np.trace(xtx) / n_fg / D            # mean squared feature value: the grid is relative
    val = list(_snippet_sets(val_set, K, cfg.max_snippets_per_video, seed)) if val_set is not None else []
    best, best_acc = None, -1.0
    for l2 in cfg.l2_grid:
        w = np.linalg.solve(xtx + l2 * scale * n_fg * np.eye(D), xty)
        if not val:
            best = (l2, w)
            break
        hits = tot = 0
        for x, lab in val:
            fg = lab < K
            if not fg.any():
                continue
            z = (x[fg] - mu) @ w
            pred = (z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)) @ text.T
            hits += int((pred.argmax(1) == lab[fg]).sum())
            tot += int(fg.sum())
        acc = hits / max(tot, 1)
        log.debug("linear probe: l2 %g -> held-out snippet accuracy %.3f", l2, acc)
        if acc > best_acc:
            best, best_acc = (l2, w), acc
    l2, w = best
    aw, ab = _logistic(np.concatenate(act_x), np.concatenate(act_y), cfg.actionness_l2)
    probe = LinearProbe(D, E)
    probe.mu.copy_(torch.from_numpy(mu).float())
    probe.weight.copy_(torch.from_numpy(w).float())
    probe.act_weight.copy_(torch.from_numpy(aw).float())
    probe.act_bias.fill_(ab)
    probe.l2.fill_(l2)
    log.info("linear probe fitted on %d snippets (%d foreground), ridge l2 %g%s", n, n_fg, l2,
             f", held-out accuracy {best_acc:.3f}" if val else "")
    return probe


class LinearProbeDetector:
    """``detector(features (B, T, D), class_names, durations) -> Detections`` of a fitted probe;
    ``nms``: the run's inference settings, whose Soft-NMS fields select the final detections."""

    needs_targets = False

    def __init__(self, probe: LinearProbe, tower, cfg: LinearProbeConfig, device: torch.device | str = "cpu",
                 nms: InferenceConfig | None = None):
        self.model = probe.to(device).eval()
        self.tower = tower
        self.cfg = cfg
        self.nms = nms or InferenceConfig()
        self.nms.validate()
        self._cache: dict[tuple[str, ...], Tensor] = {}

    def snippet_scores(self, features: Tensor, class_names: Sequence[str]) -> Tensor:
        key = tuple(class_names)
        if key not in self._cache:
            self._cache = {key: ensemble_embeddings(key, self.cfg.templates, self.tower)}
        text = self._cache[key].to(features.device)
        if features.shape[-1] != self.model.mu.shape[0]:
            raise StaleError(f"features have {features.shape[-1]} channels; the probe was fitted on "
                             f"{self.model.mu.shape[0]}")
        z = self.model.project(features)
        cls = (z @ text.T / self.cfg.temperature).softmax(-1)
        return cls * self.model.actionness(features).unsqueeze(-1)

    @torch.no_grad()
    def __call__(self, features: Tensor, class_names: Sequence[str], durations, targets=None) -> Detections:
        return scores_to_detections(self.snippet_scores(features, class_names), durations, self.cfg.segments,
                                    self.nms)
