"""Temporal encoder T() of STALE (paper Eq. 1): snippet features -> snippet embeddings F_vis.

Three interchangeable encoders, selected by ``TemporalConfig.kind``:

* ``transformer`` (the paper's choice): linear input projection from the feature dimension to
  the model width, then a multi-head Transformer encoder **without positional encoding** (the
  paper reports positional encoding as harmful). Because nothing depends on position, the
  encoder is permutation-equivariant over snippets.
* ``cnn``: the ablation's 1-D CNN, dilation rates (1, 3, 5) with 2 layers each, every layer a
  residual ``x + ReLU(conv(x))`` so the 6-layer stack trains as easily as the Transformer.
* ``mstcn``: a multi-stage TCN (Farha & Gall, CVPR 2019): each stage is a 1x1 conv followed by
  ``L`` dilated residual layers with dilation ``2**l``; later stages refine the previous
  stage's output. Here the stages pass features (not class scores) because the output feeds
  the rest of STALE, not a classifier.

All encoders map ``(B, T, D)`` to ``(B, T, C)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from stale.core.errors import StaleError


@dataclass
class TemporalConfig:
    """Temporal encoder settings.

    kind: ``transformer`` (paper), ``cnn`` or ``mstcn`` (ablations, paper Table 6).
    num_layers / num_heads / ffn_mult / dropout: Transformer encoder depth, heads, feed-forward
        width as a multiple of the model width, dropout. The paper does not state depth or
        heads; 2 layers x 8 heads (64 channels per head at width 512) is our choice.
    cnn_dilations / cnn_layers_per_dilation / cnn_kernel: the 1-D CNN ablation, (1, 3, 5) x 2.
    mstcn_stages / mstcn_layers: MS-TCN's defaults (4 stages of 10 dilated layers).
    identity_init: start the encoder as (layer-normalised) identity: the input projection is
        initialised to the identity (needs input_dim == width) and the output layers of every
        residual branch (attention output, second FFN layer / 1x1 mix) to zero, so F_vis starts in
        the feature space itself and training learns residuals. With CLIP image features, whose
        space the CLIP text embeddings share, this keeps the vision-language alignment that
        zero-shot transfer relies on instead of starting from a random projection.
    """

    kind: Literal["transformer", "cnn", "mstcn"] = "transformer"
    num_layers: int = 2
    num_heads: int = 8
    ffn_mult: int = 4
    dropout: float = 0.1
    cnn_dilations: tuple[int, ...] = (1, 3, 5)
    cnn_layers_per_dilation: int = 2
    cnn_kernel: int = 3
    mstcn_stages: int = 4
    mstcn_layers: int = 10
    identity_init: bool = False

    def validate(self) -> None:
        if self.num_layers < 1 or self.num_heads < 1 or self.ffn_mult < 1:
            raise StaleError("temporal: num_layers, num_heads and ffn_mult must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise StaleError(f"temporal.dropout must be in [0, 1), got {self.dropout}")
        if self.cnn_kernel < 1 or self.cnn_kernel % 2 == 0:
            raise StaleError(f"temporal.cnn_kernel must be odd and >= 1, got {self.cnn_kernel}")
        if not self.cnn_dilations or min(self.cnn_dilations) < 1:
            raise StaleError("temporal.cnn_dilations must be a non-empty list of ints >= 1")
        if self.cnn_layers_per_dilation < 1 or self.mstcn_stages < 1 or self.mstcn_layers < 1:
            raise StaleError("temporal: layer and stage counts must be >= 1")


class _DilatedResidual(nn.Module):
    """``x + drop(conv1x1(ReLU(dilated_conv(x))))`` on ``(B, C, T)``; keeps the length T."""

    def __init__(self, width: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, dilation=dilation,
                              padding=dilation * (kernel // 2))
        self.mix = nn.Conv1d(width, width, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop(self.mix(torch.relu(self.conv(x))))


class TemporalEncoder(nn.Module):
    """Snippet features ``(B, T, input_dim)`` -> snippet embeddings F_vis ``(B, T, width)``."""

    def __init__(self, cfg: TemporalConfig, input_dim: int, width: int):
        super().__init__()
        cfg.validate()
        if cfg.kind == "transformer" and width % cfg.num_heads:
            raise StaleError(f"model width {width} is not divisible by "
                             f"temporal.num_heads {cfg.num_heads}")
        self.kind = cfg.kind
        self.input_proj = nn.Linear(input_dim, width)
        if cfg.identity_init:
            if input_dim != width:
                raise StaleError(f"temporal.identity_init needs the encoder's input size to equal model.width "
                                 f"(got {input_dim} and {width}: model.input_dim, or the text tower's "
                                 "embedding size behind model.bridge)")
            nn.init.eye_(self.input_proj.weight)
            nn.init.zeros_(self.input_proj.bias)
        if cfg.kind == "transformer":
            layer = nn.TransformerEncoderLayer(
                width, cfg.num_heads, dim_feedforward=cfg.ffn_mult * width,
                dropout=cfg.dropout, batch_first=True)
            self.body = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        elif cfg.kind == "cnn":
            self.body = nn.Sequential(*[
                _DilatedResidual(width, cfg.cnn_kernel, d, cfg.dropout)
                for d in cfg.cnn_dilations for _ in range(cfg.cnn_layers_per_dilation)])
        else:
            self.body = nn.Sequential(*[
                nn.Sequential(nn.Conv1d(width, width, 1), *[
                    _DilatedResidual(width, 3, 2 ** layer, cfg.dropout)
                    for layer in range(cfg.mstcn_layers)])
                for _ in range(cfg.mstcn_stages)])

        if cfg.identity_init:
            self._zero_residual_outputs()

    def _zero_residual_outputs(self) -> None:
        for mod in self.body.modules():
            if isinstance(mod, nn.TransformerEncoderLayer):
                last = [mod.self_attn.out_proj, mod.linear2]
            elif isinstance(mod, _DilatedResidual):
                last = [mod.mix]
            else:
                continue
            for lin in last:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def forward(self, features: Tensor) -> Tensor:
        """``features`` (B, T, D) -> F_vis (B, T, C)."""
        x = self.input_proj(features)
        if self.kind == "transformer":
            return self.body(x)
        return self.body(x.transpose(1, 2)).transpose(1, 2)
