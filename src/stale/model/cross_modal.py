"""Vision -> language cross-modal adaptation (paper Eq. 5-6).

The K+1 text features are the queries of one Transformer decoder layer (self-attention among
the classes, cross-attention to the video's foreground snippet features, feed-forward network,
each with residual + LayerNorm as in Vaswani et al.). Background snippets are excluded from the
keys/values by a key padding mask. The layer output ``E_c`` updates the text features through
a per-channel residual ``F_hat_lan = F_lan + alpha * E_c`` with ``alpha`` initialised to 1e-3,
so training starts from the language prior.

Videos without any foreground snippet: attention over an all-masked key set is undefined
(softmax of all ``-inf`` is NaN). For such videos the key mask is lifted (so the softmax is
finite) and the cross-attention output is multiplied by zero, i.e. the layer reduces to
self-attention + FFN and the text features are adapted by no video evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stale.core.errors import StaleError


@dataclass
class CrossModalConfig:
    """Cross-modal adaptation settings.

    enabled: False gives ``F_hat_lan = F_lan`` for every video (paper Table 7 ablation).
    num_heads / ffn_mult / dropout: the decoder layer (not given in the paper; 8 heads).
    alpha_init: initial value of every channel of alpha (paper: 1e-3).
    """

    enabled: bool = True
    num_heads: int = 8
    ffn_mult: int = 4
    dropout: float = 0.1
    alpha_init: float = 1e-3

    def validate(self) -> None:
        if self.num_heads < 1 or self.ffn_mult < 1:
            raise StaleError("cross_modal: num_heads and ffn_mult must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise StaleError(f"cross_modal.dropout must be in [0, 1), got {self.dropout}")


class CrossModalAdapter(nn.Module):
    """Text ``(K+1, C)`` + foreground features ``(B, T, C)`` -> per-video text ``(B, K+1, C)``."""

    def __init__(self, cfg: CrossModalConfig, width: int):
        super().__init__()
        cfg.validate()
        self.enabled = cfg.enabled
        if not cfg.enabled:
            return
        if width % cfg.num_heads:
            raise StaleError(f"model width {width} is not divisible by "
                             f"cross_modal.num_heads {cfg.num_heads}")
        self.self_attn = nn.MultiheadAttention(width, cfg.num_heads, cfg.dropout,
                                               batch_first=True)
        self.cross_attn = nn.MultiheadAttention(width, cfg.num_heads, cfg.dropout,
                                                batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(width, cfg.ffn_mult * width), nn.GELU(),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_mult * width, width))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(width) for _ in range(3))
        self.drop = nn.Dropout(cfg.dropout)
        self.alpha = nn.Parameter(torch.full((width,), cfg.alpha_init))

    def forward(self, text: Tensor, fg_features: Tensor, fg_hard: Tensor) -> Tensor:
        """``text`` (K+1, C); ``fg_features`` (B, T, C); ``fg_hard`` (B, T) bool -> (B, K+1, C)."""
        batch = fg_features.shape[0]
        f_lan = text.unsqueeze(0).expand(batch, -1, -1)
        if not self.enabled:
            return f_lan
        has_fg = fg_hard.any(dim=1)                                         # (B,)
        # lift the mask of foreground-less videos so that softmax stays finite
        key_pad = ~fg_hard & has_fg.unsqueeze(1)
        # never feed an expanded (stride-0) batch to a projection: torch then multiplies by a
        # weight materialised once per video. At inference the text self-attention does not
        # depend on the video: once per class set, then one row per video; in training each
        # video keeps its own dropout draw.
        x = (text.unsqueeze(0) if not self.training else f_lan).to(fg_features.dtype).contiguous()
        x = self.norm1(x + self.drop(self.self_attn(x, x, x, need_weights=False)[0]))
        x = x.expand(batch, -1, -1).contiguous()
        cross = self.cross_attn(x, fg_features, fg_features, key_padding_mask=key_pad,
                                need_weights=False)[0]
        x = self.norm2(x + self.drop(cross) * has_fg.to(cross.dtype)[:, None, None])
        e_c = self.norm3(x + self.drop(self.ffn(x)))                        # Eq. 5
        return f_lan + self.alpha * e_c                                     # Eq. 6
