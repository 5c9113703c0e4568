"""STALE's learning objective (paper Sec. 3.3, Eq. 9-12), computed in float32.

Every term is a **mean over the B videos of a per-video loss**: a video where a term is
undefined (no foreground row for L_m, an empty selection for L_const) contributes 0 and still
counts in the mean. So the loss of a batch is exactly the size-weighted mean of the losses of
any split of it into micro-batches, which makes gradient accumulation over micro-batches
(``train.micro_batch``) give the full-batch gradient (no batch-pooled normalisers).

* ``classification_loss`` (L_c, Eq. 9): cross-entropy per snippet over K+1 classes, mean over
  the video's snippets (class-weighted mean ``sum w_y l / sum w_y`` within the video when class
  weights are given; 0 for a video whose snippets all have weight 0).
* ``mask_loss`` (L_m, Eq. 10) on the video's foreground rows only (``fg_mask[b, t] = 1``): a
  class-balanced BCE with ``beta_fg = N / N_fg`` and ``beta_bg = N / N_bg`` (inverse foreground
  / background proportions over the N mask entries of the video's foreground rows), i.e.
  ``mean_{g=1}(-log m) + mean_{g=0}(-log(1 - m))`` (the paper prints it without the minus), plus
  ``lambda2 * dice`` with the V-Net dice ``1 - 2 m.g / sum(m^2 + g^2)`` per row, averaged over
  the video's foreground rows. The factor 2 makes a perfect mask score 0 (without it the best
  value is 0.5).
* ``completeness_loss`` (L_comp, Eq. 11): the printed ``-(g log L + log(g) L)`` contains
  ``log 0`` for a one-hot g; we read it as the standard BCE ``-(g log L + (1-g) log(1-L))``
  between the foreground mask L_hat and the ground-truth foreground, mean over snippets.
* ``consistency_loss`` (L_const, Eq. 12): per video, ``1 - cos(F_clf, F_mask)`` where F_clf is
  the mean of E_p over the top-k snippets by action confidence (max softmax probability over
  the K action classes, only snippets above ``theta_c``) and F_mask is the mean of E_m over the
  top-k snippets by mask confidence ``sigmoid(M[t, t])`` (the mask predicted from snippet t
  claims t itself; only snippets above ``theta_m``). Selection is done on detached scores; the
  gradient trains E_p, E_m and the encoder. A video where either set is empty contributes 0.

Every term is finite for empty foreground, all-background batches and saturated logits (the
BCE terms use ``softplus`` on logits, never ``log`` of a probability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stale.core.errors import StaleError
from stale.model.outputs import LossTerms, ModelOutput, Targets


@dataclass
class LossConfig:
    """Loss weights and settings.

    w_cls / w_mask / w_comp / w_const: weights of L_c, L_m, L_comp, L_const (paper: all 1).
    lambda_dice: lambda2 of Eq. 10 (paper: 0.4).
    class_weights: optional K+1 weights for L_c (background last); None = unweighted.
    const_topk: k of the top-k selections of L_const (clamped to T).
    const_class_threshold / const_mask_threshold: theta_c and theta_m of Eq. 12.
    cls_snippets: which snippets L_c sums over: ``all`` (masked-out snippets count, with the
        background logits they get: a masked-out *action* snippet costs about the classifier
        scale s, ~14, and its only gradient lowers s) or ``kept`` (only those the binarised mask
        keeps -- a masked-out action snippet is the mask's error, which L_comp trains; the sum is
        still divided by all T snippets). ``kept`` applies in training mode only: the held-out
        loss (the loss module in eval mode) counts every snippet, so the epoch chosen by it never
        rewards a gate that drops the actions. See docs/model.md, "The mask-gate collapse".
    w_align: weight of an optional feature-to-text alignment term (not in the paper):
        ``mean(1 - cos(F_hat_lan[y], F_vis[t]))`` over the kept foreground snippets ``t`` of class
        ``y`` -- the cosine the classifier already computes (``class_logits / s``). L_c only asks
        the true class to beat the other *seen* classes, and at CLIP's scale it saturates once the
        margin is there; this term keeps pulling snippets onto their class's text embedding, the
        map unseen classes are read through (docs/model.md, "Regularising towards transfer").
    w_prompt: weight of an optional prompt anchor (KgCoOp-style, not in the paper):
        ``mean_k (1 - cos(t_k, a_k))`` over the action classes of the batch, between the learned
        prompt's text feature ``t_k`` and the frozen tower's hand-written template-ensemble
        embedding ``a_k`` of the same name (through the same text projection), so the learned
        context cannot drift the text side away from what CLIP says a class is
        (docs/model.md, "Regularising towards transfer").
    const_weighting: ``hard`` (the paper: plain means over the detached top-k selections; only
        E_p / E_m get gradient) or ``soft`` (the same selections, each snippet weighted by its
        confidence, so the gradient also reaches the classification and mask outputs).
    """

    w_cls: float = 1.0
    w_mask: float = 1.0
    w_comp: float = 1.0
    w_const: float = 1.0
    w_align: float = 0.0
    w_prompt: float = 0.0
    lambda_dice: float = 0.4
    class_weights: list[float] | None = None
    const_topk: int = 10
    const_class_threshold: float = 0.1
    const_mask_threshold: float = 0.5
    cls_snippets: Literal["all", "kept"] = "kept"
    const_weighting: Literal["hard", "soft"] = "hard"

    def validate(self) -> None:
        if min(self.w_cls, self.w_mask, self.w_comp, self.w_const, self.w_align, self.w_prompt,
               self.lambda_dice) < 0:
            raise StaleError("loss: weights and lambda_dice must be >= 0")
        if self.const_topk < 1:
            raise StaleError(f"loss.const_topk must be >= 1, got {self.const_topk}")
        if self.class_weights is not None and min(self.class_weights, default=0.0) < 0:
            raise StaleError("loss.class_weights must be non-negative")


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0``, else 0 (a per-video term with nothing to average)."""
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), num * 0.0)


def classification_loss(logits: Tensor, labels: Tensor, class_weights: Tensor | None = None,
                        snippet_mask: Tensor | None = None) -> Tensor:
    """L_c: ``logits`` (B, T, K+1), ``labels`` (B, T) int in [0, K] -> scalar (mean over videos).

    ``snippet_mask`` (B, T) bool: only those snippets contribute (the others count 0), still
    divided by all T snippets (or their class weights), so the term keeps its scale whatever
    share of snippets a mask keeps."""
    num_classes = logits.shape[-1]
    if class_weights is not None and class_weights.numel() != num_classes:
        raise StaleError(f"loss.class_weights has {class_weights.numel()} entries, expected "
                         f"{num_classes} (K action classes + background)")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise StaleError(f"targets.snippet_labels must lie in [0, {num_classes - 1}], got "
                         f"range [{int(labels.min())}, {int(labels.max())}]")
    labels = labels.long()
    ce = F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none")   # (B, T)
    if class_weights is None and snippet_mask is None:
        return ce.mean(1).mean()
    w = (class_weights.to(logits.device, torch.float32)[labels] if class_weights is not None
         else torch.ones_like(ce))
    used = w * snippet_mask.to(w.dtype) if snippet_mask is not None else w
    return _safe_ratio((used * ce).sum(1), w.sum(1)).mean()


def mask_loss(mask_logits: Tensor, instance_masks: Tensor, fg_mask: Tensor,
              lambda_dice: float = 0.4, eps: float = 1e-6) -> Tensor:
    """L_m: ``mask_logits``, ``instance_masks`` (B, T, T) row-wise, ``fg_mask`` (B, T) -> scalar.

    Per video over its foreground rows, then the mean over all B videos (see the module doc).
    """
    x = mask_logits.float()
    g = instance_masks.float()
    rows = (fg_mask >= 0.5).float()                                         # (B, T)
    r = rows.unsqueeze(-1)
    n_fg = (r * g).sum((1, 2))                                              # (B,)
    n_bg = (r * (1 - g)).sum((1, 2))
    bce = (_safe_ratio((r * g * F.softplus(-x)).sum((1, 2)), n_fg)
           + _safe_ratio((r * (1 - g) * F.softplus(x)).sum((1, 2)), n_bg))
    m = torch.sigmoid(x)
    dice = 1 - 2 * (m * g).sum(-1) / ((m * m).sum(-1) + (g * g).sum(-1) + eps)   # (B, T)
    dice = _safe_ratio((rows * dice).sum(1), rows.sum(1))
    return (bce + lambda_dice * dice).mean()


def completeness_loss(fg_logits: Tensor, fg_mask: Tensor) -> Tensor:
    """L_comp: BCE of ``fg_logits`` (B, T, pre-sigmoid L_hat) against ``fg_mask`` (B, T)."""
    return F.binary_cross_entropy_with_logits(fg_logits.float(), fg_mask.float())


def _topk_mean(feats: Tensor, score: Tensor, valid: Tensor, k: int,
               weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean of ``feats`` (B, T, C) over the top-k valid snippets by ``score`` (B, T), each
    weighted by ``weight`` (B, T) when given (the selection itself is not differentiated).

    Returns (means (B, C), count (B,)); a video with no valid snippet gets a zero mean.
    """
    k = min(k, score.shape[1])
    idx = score.detach().masked_fill(~valid, float("-inf")).topk(k, dim=1).indices
    sel = torch.zeros_like(score).scatter(1, idx, valid.gather(1, idx).to(score.dtype)).detach()
    count = sel.sum(1)
    w = sel if weight is None else sel * weight
    mean = (w.unsqueeze(-1) * feats.float()).sum(1) / w.sum(1).clamp_min(1e-6).unsqueeze(-1)
    return mean, count


def consistency_loss(class_logits: Tensor, mask_logits: Tensor, clf_feats: Tensor,
                     mask_feats: Tensor, topk: int = 10, class_threshold: float = 0.1,
                     mask_threshold: float = 0.5, weighting: str = "hard") -> Tensor:
    """L_const: ``class_logits`` (B, T, K+1), ``mask_logits`` (B, T, T), E_p and E_m features
    ``clf_feats`` / ``mask_feats`` (B, T, C_p) -> scalar (mean over all B videos; a video
    without both sets contributes 0). ``weighting``: see :class:`LossConfig`."""
    conf_c = class_logits.float().softmax(-1)[..., :-1].amax(-1)            # (B, T)
    conf_m = torch.sigmoid(mask_logits.float().diagonal(dim1=1, dim2=2))
    soft = weighting == "soft"
    f_clf, n_c = _topk_mean(clf_feats, conf_c, conf_c.detach() > class_threshold, topk,
                            conf_c if soft else None)
    f_mask, n_m = _topk_mean(mask_feats, conf_m, conf_m.detach() > mask_threshold, topk,
                             conf_m if soft else None)
    ok = ((n_c > 0) & (n_m > 0)).float()
    cos = F.cosine_similarity(f_clf, f_mask, dim=-1, eps=1e-6)
    return ((1 - cos) * ok).mean()


def alignment_loss(class_logits: Tensor, scale: Tensor, labels: Tensor, kept: Tensor) -> Tensor:
    """Mean over videos of ``mean_t (1 - cos_t)`` on kept foreground snippets, where ``cos_t =
    class_logits[t, y_t] / s`` is the snippet's cosine with its class's text feature (Eq. 7);
    0 for a video without such snippets. ``class_logits`` (B, T, K+1), ``labels`` (B, T),
    ``kept`` (B, T) bool."""
    K = class_logits.shape[-1] - 1
    fg = (labels < K) & kept
    cos = class_logits.float().gather(-1, labels.clamp(max=K).unsqueeze(-1)).squeeze(-1) / scale.float()
    w = fg.float()
    return _safe_ratio(((1 - cos) * w).sum(1), w.sum(1)).mean()


class STALELoss(nn.Module):
    """Total objective ``w_c L_c + w_m L_m + w_comp L_comp + w_const L_const``.

    ``forward(out: ModelOutput, targets: Targets) -> LossTerms``. L_comp is 0 when the masking
    has no learned predictor (``none`` / ``gt`` ablations).
    """

    def __init__(self, cfg: LossConfig | None = None):
        super().__init__()
        self.cfg = cfg or LossConfig()
        self.cfg.validate()
        cw = self.cfg.class_weights
        self.register_buffer("class_weights",
                             None if cw is None else torch.tensor(cw, dtype=torch.float32),
                             persistent=False)

    def forward(self, out: ModelOutput, targets: Targets) -> LossTerms:
        cfg = self.cfg
        b, t = out.class_logits.shape[:2]
        for key, shape in (("snippet_labels", (b, t)), ("instance_masks", (b, t, t)),
                           ("fg_mask", (b, t))):
            value = getattr(targets, key)
            if tuple(value.shape) != shape:
                raise StaleError(f"targets.{key} has shape {tuple(value.shape)}, "
                                 f"expected {shape} to match the model output")
        fg = targets.fg_mask
        # in eval mode (held-out videos, model selection) a masked-out action snippet counts as
        # the error it is when detecting: otherwise a gate that drops every snippet scores L_c = 0
        # and the selection picks a model that detects nothing
        kept = out.fg_hard if cfg.cls_snippets == "kept" and self.training else None
        cls = classification_loss(out.class_logits, targets.snippet_labels, self.class_weights, kept)
        mask = mask_loss(out.mask_logits, targets.instance_masks, fg, cfg.lambda_dice)
        comp = (completeness_loss(out.fg_logits, fg) if out.fg_learned
                else out.fg_logits.float().sum() * 0.0)
        const = consistency_loss(out.class_logits, out.mask_logits, out.const_clf_feats,
                                 out.const_mask_feats, cfg.const_topk, cfg.const_class_threshold,
                                 cfg.const_mask_threshold, cfg.const_weighting)
        learned = out.class_logits if out.prior_logits is None else out.class_logits - out.prior_logits
        align = (alignment_loss(learned, out.logit_scale, targets.snippet_labels, out.fg_hard)
                 if cfg.w_align > 0 else cls * 0.0)
        prompt = out.prompt_gap.float() if out.prompt_gap is not None else cls * 0.0
        total = (cfg.w_cls * cls + cfg.w_mask * mask + cfg.w_comp * comp + cfg.w_const * const
                 + cfg.w_align * align + cfg.w_prompt * prompt)
        return LossTerms(total=total, cls=cls, mask=mask, comp=comp, const=const, align=align,
                         prompt=prompt)
