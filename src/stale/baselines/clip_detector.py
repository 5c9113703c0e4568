"""The training-free CLIP detector: snippet-text similarity, background handling, smoothing,
thresholds into segments, Soft-NMS. No training at all.

For snippet features ``x_t`` in CLIP's joint space (CLIP image features of frames, as written by
``stale extract``) and class names:

1. **Text side, a prompt ensemble**: each name is embedded with every template (``a video of
   {}.``, ...) by the CLIP text tower; the L2-normalised embeddings are averaged and normalised
   again (Radford et al.'s ensembling). ``e_k`` (K, E).
2. **Similarity** ``s[t, k] = cos(x_t, e_k)``.
3. **Background handling**: CLIP's image and text embeddings are separated by a modality gap, so
   raw cosines are offset per class; each class's similarity is measured against its own level
   in the video, ``s'[t, k] = s[t, k] - quantile_t(s[:, k], baseline_quantile)``, i.e. "how much
   more like class k than the video usually is". A background column with logit
   ``background_logit`` then competes in a softmax over classes at CLIP's temperature:
   ``p[t, k] = exp(s'[t,k]/tau) / (exp(b/tau) + sum_j exp(s'[t,j]/tau))`` -- a snippet that
   looks like no class more than usual is background.
4. **Segments** from ``p`` (:mod:`stale.baselines.segments`: smoothing, quantile thresholds,
   runs), then the run's final Soft-NMS (its ``inference`` section, as for every method).

The same detector is ``method: clip_detector`` of a run config (a reference row of the
experiments) and what ``stale detect`` uses when no trained run is given.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from stale.baselines.segments import SegmentConfig, scores_to_detections
from stale.core.errors import StaleError
from stale.model.decoding import Detections, InferenceConfig
from stale.text.embed import ENSEMBLE_TEMPLATES, ensemble_embeddings

DEFAULT_TEMPLATES = ENSEMBLE_TEMPLATES


@dataclass
class ClipDetectorConfig:
    """Settings of the training-free detector (module docstring; docs/baselines.md).

    templates: the prompt ensemble (each with one ``{}`` for the class name).
    temperature: softmax temperature tau (CLIP's logit scale 100 -> 0.01).
    baseline_quantile: the per-video, per-class similarity level subtracted (step 3); null keeps
        raw cosines.
    background_logit: similarity margin above the class's level a snippet needs to beat
        background (in cosine units).
    segments: candidate generation (the final Soft-NMS is the run's ``inference`` section).
    """

    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    temperature: float = 0.01
    baseline_quantile: float | None = 0.3
    background_logit: float = 0.02
    segments: SegmentConfig = field(default_factory=SegmentConfig)

    def validate(self) -> None:
        if not self.templates or any(t.count("{}") != 1 for t in self.templates):
            raise StaleError("clip_detector.templates: each template needs exactly one '{}'")
        if not self.temperature > 0:
            raise StaleError(f"clip_detector.temperature must be > 0, got {self.temperature}")
        if self.baseline_quantile is not None and not 0.0 <= self.baseline_quantile < 1.0:
            raise StaleError(f"clip_detector.baseline_quantile must be in [0, 1) or null, got {self.baseline_quantile}")
        self.segments.validate()


def class_probabilities(features: Tensor, text: Tensor, cfg: ClipDetectorConfig) -> Tensor:
    """Step 2-3: features (B, T, E) and class embeddings (K, E) -> probabilities (B, T, K)."""
    s = torch.einsum("bte,ke->btk", F.normalize(features.float(), dim=-1), text.to(features.device))
    if cfg.baseline_quantile is not None:
        level = torch.quantile(s, cfg.baseline_quantile, dim=1, keepdim=True)   # (B, 1, K)
        s = s - level
    bg = torch.full_like(s[..., :1], cfg.background_logit)
    logits = torch.cat([s, bg], dim=-1) / cfg.temperature
    return logits.softmax(-1)[..., :-1]


class ClipDetector:
    """``detector(features (B, T, E), class_names, durations (B,)) -> Detections``; ``nms``: the
    run's inference settings, whose Soft-NMS fields select the final detections."""

    needs_targets = False

    def __init__(self, cfg: ClipDetectorConfig, tower, device: torch.device | str = "cpu",
                 nms: InferenceConfig | None = None):
        cfg.validate()
        self.cfg = cfg
        self.nms = nms or InferenceConfig()
        self.nms.validate()
        self.tower = tower
        self.device = torch.device(device)
        self._cache: OrderedDict[tuple[str, ...], Tensor] = OrderedDict()

    @property
    def embed_dim(self) -> int:
        return int(self.tower.embed_dim)

    def text_embeddings(self, class_names: Sequence[str]) -> Tensor:
        key = tuple(class_names)
        hit = self._cache.get(key)
        if hit is None:
            hit = ensemble_embeddings(key, self.cfg.templates, self.tower)
            self._cache[key] = hit
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return hit

    def snippet_scores(self, features: Tensor, class_names: Sequence[str]) -> Tensor:
        """(B, T, K) class probabilities of every snippet."""
        if features.ndim != 3 or features.shape[-1] != self.embed_dim:
            raise StaleError(f"the training-free CLIP detector needs features in the CLIP embedding space "
                             f"({self.embed_dim}-d, e.g. from stale extract with the same CLIP); got shape "
                             f"{tuple(features.shape)}. Train STALE or the linear probe for other features")
        return class_probabilities(features, self.text_embeddings(class_names), self.cfg)

    @torch.no_grad()
    def __call__(self, features: Tensor, class_names: Sequence[str], durations,
                 targets=None) -> Detections:
        return scores_to_detections(self.snippet_scores(features, class_names), durations, self.cfg.segments,
                                    self.nms)
