"""Class-agnostic representation masking (paper Sec. 3.2, Eq. 3-4).

``decoder`` (the paper's method): ``Nz`` learned mask queries attend to the snippet embeddings
through a Transformer decoder; a mask-projection MLP turns each decoded query into a mask
embedding ``B_q`` and the per-query masks are ``L_q = sigmoid(B_q . F_vis / sqrt(C))`` (Eq. 3).
A learned weight vector ``W_q`` (a linear layer over the queries) merges them per location into
``L_hat = sigmoid(W_q . logit(L_q) + b_q)`` (Eq. 4, applied to the queries' log-odds — see the
comment in ``forward`` and docs/model.md for why not to the probabilities). The ``1/sqrt(C)`` is a
fixed rescaling of Eq. 3's dot product (as in attention): without it a 512-d dot product
saturates the sigmoid at initialisation and Eq. 3 passes no gradient.

Binarisation at ``theta_bin`` gives the hard foreground gate. By default the gate is a constant
for the downstream branches and the mask is trained by ``L_comp`` (stable: a gate hovering at the
threshold otherwise flips whole videos between all-foreground and all-background). With
``straight_through=True`` the backward pass treats it as ``L_hat`` (``hard + p - p.detach()``), so
the classification loss also trains the masking branch.

Ablations (paper Table 4): ``none`` (every snippet is foreground), ``cnn`` (a small 1-D CNN
predicts ``L_hat`` from ``F_vis``), ``gt`` (the ground-truth foreground mask, passed as ``gt_fg``).
For ``none``/``gt`` there is no learned predictor, ``fg_logits`` are the constant
``+-FIXED_LOGIT`` of the used mask and ``fg_learned`` is False (the completeness loss is skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from stale.core.errors import StaleError
from stale.model.outputs import MaskingResult

#: logit standing for "certainly foreground/background" where the mask is not predicted
FIXED_LOGIT = 20.0


@dataclass
class MaskingConfig:
    """Representation-masking settings.

    kind: ``decoder`` (paper), ``none``, ``cnn`` or ``gt`` (ablations).
    num_queries: Nz mask queries (paper: 20).
    num_layers / num_heads / ffn_mult / dropout: the query decoder; not given in the paper,
        2 layers x 8 heads is our choice.
    mlp_layers: depth of the mask-projection MLP (3, as MaskFormer's mask embedding).
    theta_bin: binarisation threshold of L_hat (paper: 0.5).
    straight_through: let the classification loss train the mask through the binarisation
        (straight-through estimator); off by default (see the module docstring).
    cnn_kernel: kernel of the ``cnn`` ablation's two convolutions.
    warmup_epochs: the gate stays open (every snippet kept) for this many first epochs while
        L_comp trains the mask predictor; the binarised gate applies afterwards. The predictor's
        first epochs overshoot (measured on the built-in benchmark: coverage 1.0 -> 0.11 -> 0.29,
        foreground recall down to 0.31 in epoch 3), and a gate following it then drops most action
        snippets at once (docs/model.md, "The mask-gate collapse").
    """

    kind: Literal["decoder", "none", "cnn", "gt"] = "decoder"
    num_queries: int = 20
    num_layers: int = 2
    num_heads: int = 8
    ffn_mult: int = 4
    dropout: float = 0.1
    mlp_layers: int = 3
    theta_bin: float = 0.5
    straight_through: bool = False
    cnn_kernel: int = 3
    warmup_epochs: int = 3

    def validate(self) -> None:
        if self.num_queries < 1 or self.num_layers < 1 or self.num_heads < 1:
            raise StaleError("masking: num_queries, num_layers and num_heads must be >= 1")
        if self.mlp_layers < 1 or self.ffn_mult < 1:
            raise StaleError("masking: mlp_layers and ffn_mult must be >= 1")
        if not 0.0 < self.theta_bin < 1.0:
            raise StaleError(f"masking.theta_bin must be in (0, 1), got {self.theta_bin}")
        if not 0.0 <= self.dropout < 1.0:
            raise StaleError(f"masking.dropout must be in [0, 1), got {self.dropout}")
        if self.warmup_epochs < 0:
            raise StaleError(f"masking.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.cnn_kernel < 1 or self.cnn_kernel % 2 == 0:
            raise StaleError(f"masking.cnn_kernel must be odd, got {self.cnn_kernel}")


def straight_through_binarize(prob: Tensor, threshold: float) -> Tensor:
    """Hard ``1[prob >= threshold]`` in the forward pass with the gradient of ``prob``."""
    hard = (prob >= threshold).to(prob.dtype)
    return hard + prob - prob.detach()


def _mlp(width: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(width, width))
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class RepresentationMasking(nn.Module):
    """F_vis ``(B, T, C)`` -> foreground mask and foreground features, a
    :class:`~stale.model.outputs.MaskingResult` (``fg_features`` = F_vis * gate: background
    rows are zero; ``query_masks`` = L_q for ``decoder``)."""

    def __init__(self, cfg: MaskingConfig, width: int):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.width = width
        #: set by :meth:`set_epoch` during the warm-up epochs (always False after training)
        self.open_gate = False
        if cfg.kind == "decoder":
            if width % cfg.num_heads:
                raise StaleError(f"model width {width} is not divisible by "
                                 f"masking.num_heads {cfg.num_heads}")
            self.queries = nn.Parameter(torch.randn(cfg.num_queries, width) * 0.02)
            layer = nn.TransformerDecoderLayer(width, cfg.num_heads, cfg.ffn_mult * width,
                                               cfg.dropout, batch_first=True)
            self.decoder = nn.TransformerDecoder(layer, cfg.num_layers)
            self.mask_proj = _mlp(width, cfg.mlp_layers)
            self.query_weight = nn.Linear(cfg.num_queries, 1)  # W_q, b_q of Eq. 4
            # start as the mean of the query logits (~0) plus a bias of 1 -> L_hat ~ 0.73:
            # training begins with (nearly) every snippet foreground, so all branches get
            # gradient from the first step; L_comp then learns to drop background
            nn.init.constant_(self.query_weight.weight, 1.0 / cfg.num_queries)
            nn.init.constant_(self.query_weight.bias, 1.0)
        elif cfg.kind == "cnn":
            pad = cfg.cnn_kernel // 2
            self.cnn = nn.Sequential(
                nn.Conv1d(width, width, cfg.cnn_kernel, padding=pad), nn.ReLU(),
                nn.Conv1d(width, width, cfg.cnn_kernel, padding=pad), nn.ReLU(),
                nn.Conv1d(width, 1, 1))

    def set_epoch(self, epoch: int | None) -> None:
        """Open the gate during the first ``warmup_epochs`` epochs (0-based ``epoch``; None =
        trained model, gate applied)."""
        learned = self.cfg.kind in ("decoder", "cnn")
        self.open_gate = bool(learned and epoch is not None and epoch < self.cfg.warmup_epochs)

    def forward(self, f_vis: Tensor, gt_fg: Tensor | None = None, force_gt: bool = False) -> MaskingResult:
        """``f_vis`` (B, T, C); ``gt_fg`` (B, T) in {0, 1}, required for kind ``gt`` or
        ``force_gt`` (the ground truth replaces the learned mask, e.g. at prediction)."""
        kind = "gt" if force_gt else self.cfg.kind
        query_masks = None
        if kind == "decoder":
            # contiguous: an expanded (stride-0) batch makes each projection materialise its
            # weight once per video
            q = self.queries.unsqueeze(0).expand(f_vis.shape[0], -1, -1).contiguous()
            b_q = self.mask_proj(self.decoder(q, f_vis))                 # (B, Nz, C)
            q_logits = torch.einsum("bqc,btc->bqt", b_q, f_vis) / math.sqrt(self.width)
            l_q = torch.sigmoid(q_logits)                                   # Eq. 3
            # Eq. 4 weighs the queries in log-odds space: W_q applied to the probabilities
            # L_q in (0, 1) caps the fg/bg logit gap at sum(W_q) and, measured on the demo
            # benchmark, never left the all-background prior; on the logits it learns at once
            fg_logits = self.query_weight(q_logits.transpose(1, 2)).squeeze(-1)  # pre-sigmoid
            query_masks = l_q
        elif kind == "cnn":
            fg_logits = self.cnn(f_vis.transpose(1, 2)).squeeze(1)
        else:
            if kind == "gt":
                if gt_fg is None:
                    raise StaleError("masking.kind is 'gt' but no gt_fg (B, T) foreground mask "
                                     "was passed to the model")
                if tuple(gt_fg.shape) != tuple(f_vis.shape[:2]):
                    raise StaleError(f"gt_fg has shape {tuple(gt_fg.shape)}, expected "
                                     f"{tuple(f_vis.shape[:2])} (batch, snippets)")
                sign = (gt_fg.to(f_vis.device) >= 0.5).to(f_vis.dtype) * 2 - 1
            else:
                sign = f_vis.new_ones(f_vis.shape[:2])
            fg_logits = sign * FIXED_LOGIT
        prob = torch.sigmoid(fg_logits)
        if self.open_gate:   # warm-up: the predictor learns, the gate keeps everything
            keep = torch.ones_like(prob, dtype=torch.bool)
            return MaskingResult(fg_logits=fg_logits, fg_hard=keep, fg_weight=torch.ones_like(prob),
                                 fg_features=f_vis, learned=kind in ("decoder", "cnn"),
                                 query_masks=query_masks)
        if self.cfg.straight_through:
            weight = straight_through_binarize(prob, self.cfg.theta_bin)
        else:
            weight = (prob >= self.cfg.theta_bin).to(prob.dtype)
        return MaskingResult(fg_logits=fg_logits, fg_hard=prob >= self.cfg.theta_bin, fg_weight=weight,
                             fg_features=f_vis * weight.unsqueeze(-1).to(f_vis.dtype),
                             learned=kind in ("decoder", "cnn"), query_masks=query_masks)
