"""Typed contracts between the model's parts, its losses, the trainer and inference.

Shapes: ``B`` videos, ``T`` snippets, ``C`` model width, ``K`` action classes (the background
class is index ``K``, always last), ``Nz`` mask queries, ``C_p`` consistency-projection width.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def _map_tensors(obj, fn):
    """A copy of dataclass ``obj`` with ``fn`` applied to every tensor field."""
    return replace(obj, **{f.name: fn(getattr(obj, f.name)) for f in fields(obj)
                           if isinstance(getattr(obj, f.name), Tensor)})


@dataclass
class MaskingResult:
    """Output of class-agnostic representation masking (paper Eq. 3-4).

    fg_logits (B, T): pre-sigmoid foreground mask L_hat. fg_hard (B, T) bool: binarised mask.
    fg_weight (B, T): the gate applied to the features (equal to ``fg_hard`` in value; carries
    the straight-through / soft-gate gradient when configured). fg_features (B, T, C): F_vis
    times the gate. learned: whether ``fg_logits`` come from a trained predictor (False for the
    ``none`` / ``gt`` ablations). query_masks (B, Nz, T): per-query masks L_q (decoder only).
    """

    fg_logits: Tensor
    fg_hard: Tensor
    fg_weight: Tensor
    fg_features: Tensor
    learned: bool
    query_masks: Tensor | None = None


@dataclass
class ModelOutput:
    """Output of :class:`stale.model.network.STALE`.

    class_logits (B, T, K+1): per-snippet classification logits (Eq. 7).
    mask_logits (B, T, T): row t = pre-sigmoid mask predicted from snippet t (Eq. 8).
    fg_logits (B, T), fg_hard (B, T) bool, fg_weight (B, T), fg_learned: from the masking.
    text_features (B, K+1, C): class features adapted per video (Eq. 6).
    const_clf_feats / const_mask_feats (B, T, C_p): E_p / E_m inputs of L_const (Eq. 12).
    query_masks (B, Nz, T) or None. logit_scale: the classifier scale s (scalar tensor).
    prior_logits (B, T, K+1) or None: the CLIP prior's share of ``class_logits``
    (:mod:`stale.model.prior`), already added to them.
    prompt_gap (scalar) or None: mean ``1 - cos`` between the learned prompts' text features and
    their frozen hand-written anchors (only in training mode with ``loss.w_prompt`` > 0).
    """

    class_logits: Tensor
    mask_logits: Tensor
    fg_logits: Tensor
    fg_hard: Tensor
    fg_weight: Tensor
    fg_learned: bool
    text_features: Tensor
    const_clf_feats: Tensor
    const_mask_feats: Tensor
    logit_scale: Tensor
    query_masks: Tensor | None = None
    prior_logits: Tensor | None = None
    prompt_gap: Tensor | None = None

    def float(self) -> "ModelOutput":
        """Floating-point tensors cast to float32 (losses run in float32 under autocast)."""
        return _map_tensors(self, lambda t: t.float() if t.is_floating_point() else t)

    def class_probs(self) -> Tensor:
        """(B, T, K+1) softmax over classes, float32."""
        return self.class_logits.float().softmax(-1)

    def mask_probs(self) -> Tensor:
        """(B, T, T) sigmoid of the mask logits, float32."""
        return self.mask_logits.float().sigmoid()


@dataclass
class Targets:
    """Training targets of a batch (paper Sec. 3.3, :mod:`stale.model.labels`).

    snippet_labels (B, T) int64 in [0, K] (K = background); instance_masks (B, T, T) float,
    row t = mask of the instance owning snippet t (zero rows for background); fg_mask (B, T)
    float in {0, 1}.
    """

    snippet_labels: Tensor
    instance_masks: Tensor
    fg_mask: Tensor

    def __len__(self) -> int:
        return int(self.snippet_labels.shape[0])

    def to(self, device, non_blocking: bool = False) -> "Targets":
        return Targets(self.snippet_labels.to(device, non_blocking=non_blocking),
                       self.instance_masks.to(device, non_blocking=non_blocking).float(),
                       self.fg_mask.to(device, non_blocking=non_blocking).float())

    def slice(self, start: int, stop: int) -> "Targets":
        return _map_tensors(self, lambda t: t[start:stop])

    @staticmethod
    def stack(items: Sequence) -> "Targets":
        """Stack per-video numpy targets (``labels.VideoTargets``) into one batch; masks are
        kept as uint8 until :meth:`to` (binary values, a quarter of the memory)."""
        from stale.core.errors import StaleError

        if not items:
            raise StaleError("Targets.stack: empty batch")
        lengths = {it.snippet_labels.shape[0] for it in items}
        if len(lengths) != 1:
            raise StaleError(f"Targets.stack: videos have different snippet counts {sorted(lengths)}")
        return Targets(torch.from_numpy(np.stack([it.snippet_labels for it in items])),
                       torch.from_numpy(np.stack([it.instance_masks for it in items]).astype(np.uint8)),
                       torch.from_numpy(np.stack([it.fg_mask for it in items])))


@dataclass
class LossTerms:
    """The learning objective's terms (scalars): ``total`` and L_c, L_m, L_comp, L_const, and the
    optional feature-to-text alignment term (0 unless ``loss.w_align`` > 0) and prompt anchor (0 unless
    ``loss.w_prompt`` > 0)."""

    total: Tensor
    cls: Tensor
    mask: Tensor
    comp: Tensor
    const: Tensor
    align: Tensor
    prompt: Tensor

    def values(self) -> dict[str, float]:
        """Detached Python floats, keyed by term name (for logs and metrics)."""
        return {f.name: float(getattr(self, f.name).detach()) for f in fields(self)}
