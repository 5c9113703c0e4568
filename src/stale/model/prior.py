"""The CLIP prior: what the frozen CLIP already knows about a class, kept beside what STALE learns.

Not in the paper. On features in CLIP's joint space the raw snippet-to-text similarity already
detects unseen classes (the training-free detector, :mod:`stale.baselines.clip_detector`);
training a Transformer on 15 seen classes can lose that (issue 21: 5.7 avg mAP for STALE
against 24.1 for the training-free detector on held-out CLIP-like data). The prior adds the
frozen similarity to STALE's classification logits as a residual:

    prior[b, t, k] = β · (cos(x[b, t], e_k) - q_k[b]) / τ         for action classes k < K
    prior[b, t, K] = 0                                             (background)
    logits = STALE's logits (Eq. 7) + prior

``x`` are the *input* snippet features (before the temporal encoder, so training cannot move
them), ``e_k`` the frozen tower's hand-written template-ensemble embedding of class ``k``
(``prior.templates``), ``q_k[b]`` the ``baseline_quantile`` of ``cos(x[b, :], e_k)`` over the
video's snippets (CLIP's similarities sit on a class-dependent level; what counts is how much
more a snippet looks like ``k`` than the video usually does), ``τ`` CLIP's temperature. The
prior is added *outside* the masking gate: a snippet the masking drops is classified as
background by the learned part, but the prior can still name a class it is sure of. ``β``
(``prior.weight``) is fixed, or learnable from that initial value (``prior.learn_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stale.core.errors import StaleError
from stale.text.embed import ENSEMBLE_TEMPLATES, CachedEnsemble


@dataclass
class PriorConfig:
    """The CLIP prior (module docstring; docs/model.md, "Keeping what CLIP knows").

    weight: β; 0 turns the prior off (the paper's STALE).
    learn_weight: train β (from ``weight``) with the rest of the model.
    temperature: τ (CLIP's logit scale 100 -> 0.01).
    baseline_quantile: the per-video level subtracted; null keeps raw cosines.
    templates: the hand-written prompt ensemble that embeds the class names.
    """

    weight: float = 0.0
    learn_weight: bool = False
    temperature: float = 0.01
    baseline_quantile: float | None = 0.3
    templates: list[str] = field(default_factory=lambda: list(ENSEMBLE_TEMPLATES))

    def validate(self) -> None:
        if not self.weight >= 0:
            raise StaleError(f"model.prior.weight must be >= 0, got {self.weight}")
        if not self.temperature > 0:
            raise StaleError(f"model.prior.temperature must be > 0, got {self.temperature}")
        if self.baseline_quantile is not None and not 0.0 <= self.baseline_quantile < 1.0:
            raise StaleError(f"model.prior.baseline_quantile must be in [0, 1) or null, got {self.baseline_quantile}")
        if not self.templates or any(t.count("{}") != 1 for t in self.templates):
            raise StaleError("model.prior.templates: each template needs exactly one '{}'")

    @property
    def enabled(self) -> bool:
        return self.weight > 0 or self.learn_weight


class ClipPrior(nn.Module):
    """``forward(features (B, T, E), class_names) -> prior logits (B, T, K+1)`` (module doc).

    ``tower`` is the CLIP text tower of the model's text encoder; the class embeddings are
    computed without gradient and cached per class list while the tower is frozen.
    """

    def __init__(self, cfg: PriorConfig, tower: nn.Module, input_dim: int):
        super().__init__()
        cfg.validate()
        embed_dim = int(getattr(tower, "embed_dim", -1))
        if input_dim != embed_dim:
            raise StaleError(f"model.prior needs features in the CLIP text space: model.input_dim "
                             f"{input_dim} differs from the text tower's embedding size {embed_dim}; "
                             "set model.prior.weight=0 for features not aligned with text")
        self.cfg = cfg
        self.embed = CachedEnsemble(tower, cfg.templates)
        init = torch.tensor(float(cfg.weight))
        if cfg.learn_weight:
            self.weight = nn.Parameter(init)
        else:
            self.register_buffer("weight", init)

    @property
    def tower(self) -> nn.Module:
        """The text encoder's CLIP tower the class names are embedded with (not a submodule)."""
        return self.embed.tower

    def class_embeddings(self, class_names: Sequence[str]) -> Tensor:
        """(K, E) frozen, L2-normalised template-ensemble embeddings of the class names."""
        return self.embed(class_names)

    def forward(self, features: Tensor, class_names: Sequence[str]) -> Tensor:
        text = self.class_embeddings(class_names).to(features.device)
        s = torch.einsum("bte,ke->btk", F.normalize(features.float(), dim=-1), text)    # (B, T, K)
        if self.cfg.baseline_quantile is not None:
            s = s - torch.quantile(s, self.cfg.baseline_quantile, dim=1, keepdim=True)
        prior = self.weight.float() * s / self.cfg.temperature
        return F.pad(prior, (0, 1))                                          # background: 0
