"""The STALE model assembled (paper Fig. 2): temporal encoder -> representation masking ->
vision->language adaptation -> parallel classifier and mask localizer (+ E_p / E_m for L_const).

The text encoder is called exactly once per forward for all K+1 classes (background last); its
output is projected to the model width by a linear layer when ``embed_dim != width``.
``forward(..., text=encode_text(class_names))`` skips that call: the trainer encodes the classes
once per step and runs the video batch in micro-batches against the same text features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor, nn

from stale.core.errors import StaleError
from stale.model.bridge import BridgeConfig, FeatureBridge
from stale.model.cross_modal import CrossModalAdapter, CrossModalConfig
from stale.model.heads import (ConsistencyProjections, CosineClassifier, DynamicMaskLocalizer,
                               HeadsConfig)
from stale.model.losses import LossConfig
from stale.model.masking import MaskingConfig, RepresentationMasking
from stale.model.outputs import ModelOutput
from stale.model.prior import ClipPrior, PriorConfig
from stale.model.temporal import TemporalConfig, TemporalEncoder
from stale.text.embed import ENSEMBLE_TEMPLATES, CachedEnsemble


@dataclass
class ModelConfig:
    """Whole-model settings.

    input_dim: snippet feature dimension D (512 for CLIP ViT-B/16, 2048 for two-stream I3D).
    width: model width C (512, CLIP's embedding width).
    The sub-configs hold each module's settings; ``loss`` is used by :class:`STALELoss`;
    ``bridge`` (not in the paper) maps features not aligned with text into the text space first.
    """

    input_dim: int = 512
    width: int = 512
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    cross_modal: CrossModalConfig = field(default_factory=CrossModalConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)

    def validate(self) -> None:
        if self.input_dim < 1 or self.width < 1:
            raise StaleError(f"model: input_dim and width must be >= 1, "
                             f"got {self.input_dim}, {self.width}")
        for sub in (self.temporal, self.masking, self.cross_modal, self.heads, self.loss, self.prior,
                    self.bridge):
            sub.validate()


class STALE(nn.Module):
    """STALE: ``forward(features (B, T, D), class_names, gt_fg=None) -> ModelOutput``
    (:class:`stale.model.outputs.ModelOutput` documents every field and shape)."""

    def __init__(self, cfg: ModelConfig, text_encoder: nn.Module):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.text_encoder = text_encoder
        embed_dim = getattr(text_encoder, "embed_dim", None)
        if not isinstance(embed_dim, int):
            raise StaleError("text encoder has no integer attribute 'embed_dim'")
        self.text_proj = (nn.Identity() if embed_dim == cfg.width
                          else nn.Linear(embed_dim, cfg.width))
        # with a bridge, everything after it sees E-dimensional features in the text space
        self.bridge = FeatureBridge(cfg.input_dim, embed_dim) if cfg.bridge.enabled else None
        feat_dim = embed_dim if self.bridge is not None else cfg.input_dim
        self.temporal = TemporalEncoder(cfg.temporal, feat_dim, cfg.width)
        self.masking = RepresentationMasking(cfg.masking, cfg.width)
        self.cross_modal = CrossModalAdapter(cfg.cross_modal, cfg.width)
        self.classifier = CosineClassifier(cfg.heads)
        self.localizer = DynamicMaskLocalizer(cfg.heads, cfg.width)
        const_width = feat_dim if cfg.heads.const_input == "features" else cfg.width
        self.consistency = ConsistencyProjections(cfg.heads, const_width)
        self.prior = None
        if cfg.prior.enabled:
            tower = getattr(text_encoder, "tower", None)
            if tower is None:
                raise StaleError("model.prior needs a CLIP text encoder with a tower")
            self.prior = ClipPrior(cfg.prior, tower, feat_dim)
        self.anchor = None
        if cfg.loss.w_prompt > 0:
            tower = getattr(text_encoder, "tower", None)
            if tower is None:
                raise StaleError("model.loss.w_prompt needs a CLIP text encoder with a tower "
                                 "(text.encoder: transformer)")
            self.anchor = CachedEnsemble(tower, ENSEMBLE_TEMPLATES)

    def _check_features(self, features: Tensor) -> None:
        if features.dim() != 3 or features.shape[-1] != self.cfg.input_dim:
            raise StaleError(f"features have shape {tuple(features.shape)}, expected "
                             f"(batch, snippets, {self.cfg.input_dim}) (model.input_dim)")
        if features.shape[0] < 1 or features.shape[1] < 1:
            raise StaleError(f"features have shape {tuple(features.shape)}: need at least "
                             "one video and one snippet")
        if not torch.isfinite(features).all():
            raise StaleError("features contain NaN or infinite values")

    def set_epoch(self, epoch: int | None) -> None:
        """Training-schedule hook called by the trainer at the start of every epoch (0-based);
        ``None`` = a trained model (what prediction uses)."""
        self.masking.set_epoch(epoch)

    def encode_text(self, class_names: Sequence[str]) -> Tensor:
        """One text-encoder call for all classes -> (K+1, C)."""
        names = list(class_names)
        if not names:
            raise StaleError("class_names is empty: need at least one action class")
        text = self.text_encoder(names)
        if text.dim() != 2 or text.shape[0] != len(names) + 1:
            raise StaleError(f"text encoder returned shape {tuple(text.shape)}, expected "
                             f"({len(names) + 1}, embed_dim): K classes + background")
        return self.text_proj(text)

    def forward(self, features: Tensor, class_names: Sequence[str],
                gt_fg: Tensor | None = None, text: Tensor | None = None,
                force_gt_mask: bool = False) -> ModelOutput:
        """``features`` (B, T, D); ``gt_fg`` (B, T) for the ``gt`` masking ablation; ``text``:
        optional precomputed :meth:`encode_text` ``(class_names)`` output (K+1, C);
        ``force_gt_mask``: gate with ``gt_fg`` whatever ``masking.kind`` (prediction with
        ground-truth masks, paper Table 3)."""
        self._check_features(features)
        if text is None:
            text = self.encode_text(class_names)                               # (K+1, C)
        elif tuple(text.shape) != (len(class_names) + 1, self.cfg.width):
            raise StaleError(f"precomputed text features have shape {tuple(text.shape)}, expected "
                             f"({len(class_names) + 1}, {self.cfg.width}): K classes + background "
                             "at the model width (the output of encode_text)")
        if self.bridge is not None:
            features = self.bridge(features)                                   # (B, T, E)
        f_vis = self.temporal(features)                                        # Eq. 1
        mask = self.masking(f_vis, gt_fg, force_gt=force_gt_mask)             # Eq. 3-4
        text_v = self.cross_modal(text, mask.fg_features, mask.fg_hard)        # Eq. 5-6
        clf_feats, mask_feats = self.consistency(features if self.cfg.heads.const_input == "features"
                                                 else f_vis)
        class_logits = self.classifier(text_v, f_vis, mask.fg_weight)          # Eq. 7
        prior = None
        if self.prior is not None:
            prior = self.prior(features, class_names)                          # (B, T, K+1)
            class_logits = class_logits + prior.to(class_logits.dtype)
        gap = None
        if self.anchor is not None and self.training:
            K = len(class_names)
            anchor = self.text_proj(self.anchor(class_names).to(text.device, text.dtype))   # (K, C)
            gap = (1.0 - torch.nn.functional.cosine_similarity(text[:K], anchor, dim=-1)).mean()
        return ModelOutput(
            class_logits=class_logits, prior_logits=prior, prompt_gap=gap,
            mask_logits=self.localizer(f_vis),                                 # Eq. 8
            fg_logits=mask.fg_logits, fg_hard=mask.fg_hard, fg_weight=mask.fg_weight,
            fg_learned=mask.learned, text_features=text_v,
            const_clf_feats=clf_feats, const_mask_feats=mask_feats,
            logit_scale=self.classifier.scale(), query_masks=mask.query_masks)
