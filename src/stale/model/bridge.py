"""The feature bridge: a frozen linear map from features not aligned with text into the text space.

Not in the paper. On features from a video encoder trained without language (I3D, TSN) STALE
must learn the feature-to-text map from the seen classes, and the Transformer-plus-projection it
learns carries over to unseen classes worse than a plain ridge regression does (issue 21: the
linear probe's ridge map labels unseen snippets well, STALE drops three of five unseen classes
to AP ~0 on non-aligned data). The bridge puts that linear map in front of STALE:

    z[b, t] = (x[b, t] - mu) @ W                          (B, T, D) -> (B, T, E)

``mu`` (D,) and ``W`` (D, E) are fitted once, in closed form, before training (the linear
probe's ridge regression, :func:`stale.baselines.linear_probe.fit_linear_probe`: seen-class
foreground snippets onto their class's template-ensemble text embedding, the ridge strength
chosen on the held-out *training* videos) and stay frozen; everything after it sees features in
the text space, as with CLIP features, so the CLIP recipe's pieces apply (an identity-initialised
temporal encoder, the alignment term, the prior). The fit lives with the training pipeline
(:func:`stale.pipeline.train.fit_bridge`); this module holds the map and its settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from stale.core.errors import StaleError
from stale.text.embed import ENSEMBLE_TEMPLATES


@dataclass
class BridgeConfig:
    """The feature bridge (module docstring; docs/model.md, "Recipes by feature kind").

    kind: ``none`` (the paper: features go straight into the temporal encoder) or ``ridge``.
    l2_grid: ridge strengths tried, relative to the mean squared feature value; the best
        nearest-class accuracy on the held-out training videos is kept (the first without any).
    templates: the prompt ensemble whose class embeddings are the regression targets.
    """

    kind: Literal["none", "ridge"] = "none"
    l2_grid: list[float] = field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0])
    templates: list[str] = field(default_factory=lambda: list(ENSEMBLE_TEMPLATES))

    def validate(self) -> None:
        if self.kind not in ("none", "ridge"):
            raise StaleError(f"model.bridge.kind must be 'none' or 'ridge', got {self.kind!r}")
        if not self.l2_grid or min(self.l2_grid) <= 0:
            raise StaleError("model.bridge.l2_grid must be a non-empty list of positive numbers")
        if not self.templates or any(t.count("{}") != 1 for t in self.templates):
            raise StaleError("model.bridge.templates: each template needs exactly one '{}'")

    @property
    def enabled(self) -> bool:
        return self.kind != "none"


class FeatureBridge(nn.Module):
    """``forward(features (B, T, D)) -> (B, T, E)``: the fitted map (module docstring).

    Buffers, so the map saves and loads with the model's weights and no optimizer moves it:
    ``mu`` (D,), ``weight`` (D, E), ``l2`` () the chosen ridge strength, ``fitted`` () 0 or 1."""

    def __init__(self, input_dim: int, embed_dim: int):
        super().__init__()
        self.register_buffer("mu", torch.zeros(input_dim))
        self.register_buffer("weight", torch.zeros(input_dim, embed_dim))
        self.register_buffer("l2", torch.zeros(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))

    def set_map(self, mu: Tensor, weight: Tensor, l2: float) -> None:
        """Install a fitted map: ``mu`` (D,), ``weight`` (D, E)."""
        if tuple(mu.shape) != tuple(self.mu.shape) or tuple(weight.shape) != tuple(self.weight.shape):
            raise StaleError(f"feature bridge: a map of shapes {tuple(mu.shape)}, {tuple(weight.shape)} "
                             f"does not fit {tuple(self.mu.shape)}, {tuple(self.weight.shape)}")
        with torch.no_grad():
            self.mu.copy_(mu)
            self.weight.copy_(weight)
            self.l2.fill_(float(l2))
            self.fitted.fill_(1)

    def forward(self, features: Tensor) -> Tensor:
        if not bool(self.fitted):
            raise StaleError("model.bridge is not fitted: it is fitted on the training data when a "
                             "run starts (stale train) and loaded with a run's weights")
        dtype = self.weight.dtype
        return (features.to(dtype) - self.mu) @ self.weight
