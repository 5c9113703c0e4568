"""STALE's parallel heads: the vision-language classifier (Eq. 7), the action mask localizer
with dynamic 1-D convolutions (Eq. 8) and the feature projections E_p / E_m of the
inter-branch consistency loss (Eq. 12).

Classifier. ``P[b, t, k] = s * cos(F_hat_lan[b, k], F_vis[b, t])`` for foreground snippets.
A background (masked-out) snippet has a zero feature in the paper's ``F_fg_vis``, for which
the cosine is undefined; we instead give it the cosine vector of a perfect background match
(1 for the background class, 0 for every action class). Using the straight-through gate ``w``
of the masking, ``cos_used = w * cos + (1 - w) * onehot(bg)``: in value, masked snippets are
classified as background with probability ~1, and the gradient of the classification loss
reaches the masking branch (it pushes ``w`` up where an action is masked out). ``s`` is a
learnable logit scale, initialised to 1/0.07 (CLIP) and clamped at 100.

Localizer. For every snippet ``t`` a controller (one linear layer on ``F_vis[t]``) generates
the weights and biases of a 3-layer 1-D conv net (kernel ``k``, ``H`` hidden channels, ReLU
between layers). Each net is applied to the same mask-feature sequence: a linear projection
of ``F_vis`` plus one channel with the relative position ``(i - t) / T``, so the net of
snippet ``t`` knows where ``t`` is. Output row ``t`` of the ``(B, T, T)`` logits is the mask
predicted from snippet ``t``. All ``B * T`` nets run at once with unfold + einsum; the first
layer never materialises the ``(B, T, C_m, T)`` per-filter input. The generated weights of a
layer are scaled by ``1 / sqrt(fan_in)`` so their activations stay O(1) at initialisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stale.core.errors import StaleError


@dataclass
class HeadsConfig:
    """Head settings.

    logit_scale_init: initial classifier scale (CLIP's 1/0.07); logit_scale_max: clamp (100).
    learnable_scale: False keeps the scale fixed at logit_scale_init.
    mask_feat_dim: channels of the shared mask-feature sequence (plus 1 position channel).
    dyn_hidden / dyn_kernel / dyn_layers: the per-snippet dynamic conv net (8 / 3 / 3 layers).
    const_dim / const_kernel: output channels and kernel of the 1-D convs E_p and E_m (Eq. 12).
    const_input: what E_p / E_m see: ``features`` (the snippet embedding E, as Eq. 12 says) or
        ``temporal`` (F_vis, the temporal encoder's output).
    const_projection: ``learned`` (two trained convs, the paper) or ``fixed`` (one frozen,
        seeded random conv shared by both branches: the loss then cannot be satisfied by the
        projections alone, only by the two branches selecting alike snippets).
    logit_scale_min: floor of the classifier scale (0: none).
    """

    logit_scale_init: float = 1.0 / 0.07
    logit_scale_max: float = 100.0
    learnable_scale: bool = True
    mask_feat_dim: int = 32
    dyn_hidden: int = 8
    dyn_kernel: int = 3
    dyn_layers: int = 3
    const_dim: int = 128
    const_kernel: int = 3
    const_input: Literal["features", "temporal"] = "temporal"
    const_projection: Literal["learned", "fixed"] = "learned"
    logit_scale_min: float = 0.0

    def validate(self) -> None:
        if not 0.0 < self.logit_scale_init <= self.logit_scale_max:
            raise StaleError("heads: need 0 < logit_scale_init <= logit_scale_max")
        if not 0.0 <= self.logit_scale_min <= self.logit_scale_init:
            raise StaleError("heads: need 0 <= logit_scale_min <= logit_scale_init")
        if min(self.mask_feat_dim, self.dyn_hidden, self.dyn_layers, self.const_dim) < 1:
            raise StaleError("heads: mask_feat_dim, dyn_hidden, dyn_layers, const_dim must be >= 1")
        for name in ("dyn_kernel", "const_kernel"):
            k = getattr(self, name)
            if k < 1 or k % 2 == 0:
                raise StaleError(f"heads.{name} must be odd and >= 1, got {k}")


class CosineClassifier(nn.Module):
    """Scaled cosine classifier over K+1 classes with background gating (see module doc)."""

    def __init__(self, cfg: HeadsConfig):
        super().__init__()
        cfg.validate()
        self.log_max = math.log(cfg.logit_scale_max)
        self.log_min = math.log(cfg.logit_scale_min) if cfg.logit_scale_min > 0 else None
        init = torch.tensor(math.log(cfg.logit_scale_init))
        if cfg.learnable_scale:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)

    def scale(self) -> Tensor:
        return self.log_scale.clamp(min=self.log_min, max=self.log_max).exp()

    def forward(self, text: Tensor, f_vis: Tensor, fg_weight: Tensor) -> Tensor:
        """``text`` (B, K+1, C), ``f_vis`` (B, T, C), ``fg_weight`` (B, T) -> logits (B, T, K+1),
        float32 whatever the inputs' precision: at a logit scale of ~100 a bf16 logit is off by
        up to 0.25, which moves the softmax by several points (a small cost: B*T*(K+1)*C)."""
        cos = torch.einsum("btc,bkc->btk", F.normalize(f_vis.float(), dim=-1),
                           F.normalize(text.float(), dim=-1))
        bg = torch.zeros_like(cos[0, 0])
        bg[-1] = 1.0
        w = fg_weight.to(cos.dtype).unsqueeze(-1)
        return self.scale().float() * (w * cos + (1 - w) * bg)


def _unfold_same(x: Tensor, kernel: int) -> Tensor:
    """Zero-padded sliding windows over the last axis: (..., T) -> (..., T, kernel)."""
    pad = kernel // 2
    return F.pad(x, (pad, pad)).unfold(-1, kernel, 1)


class DynamicMaskLocalizer(nn.Module):
    """F_vis ``(B, T, C)`` -> mask logits ``(B, T, T)``, row t predicted by snippet t (Eq. 8)."""

    def __init__(self, cfg: HeadsConfig, width: int):
        super().__init__()
        cfg.validate()
        self.kernel = cfg.dyn_kernel
        chans = [cfg.mask_feat_dim + 1] + [cfg.dyn_hidden] * (cfg.dyn_layers - 1) + [1]
        self.shapes = list(zip(chans[1:], chans[:-1]))          # (out, in) per layer
        self.num_params = sum(o * i * self.kernel + o for o, i in self.shapes)
        self.mask_proj = nn.Linear(width, cfg.mask_feat_dim)
        self.controller = nn.Linear(width, self.num_params)

    def mask_input(self, f_vis: Tensor) -> Tensor:
        """Shared mask features (B, C_m, T), without the position channel."""
        return self.mask_proj(f_vis).transpose(1, 2)

    def generate(self, f_vis: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per-snippet conv parameters: per layer (weight (B, T, out, in, k), bias (B, T, out))."""
        raw = self.controller(f_vis)
        params, start = [], 0
        for out_c, in_c in self.shapes:
            n = out_c * in_c * self.kernel
            w = raw[..., start:start + n].unflatten(-1, (out_c, in_c, self.kernel))
            b = raw[..., start + n:start + n + out_c]
            params.append((w / math.sqrt(in_c * self.kernel), b))
            start += n + out_c
        return params

    @staticmethod
    def relative_position(length: int, device, dtype) -> Tensor:
        """``rel[t, i] = (i - t) / T``, shape (T, T)."""
        idx = torch.arange(length, device=device, dtype=dtype)
        return (idx.unsqueeze(0) - idx.unsqueeze(1)) / length

    def forward(self, f_vis: Tensor) -> Tensor:
        length = f_vis.shape[1]
        feats = self.mask_input(f_vis)                                     # (B, Cm, T)
        params = self.generate(f_vis)
        rel = self.relative_position(length, f_vis.device, feats.dtype)
        w0, b0 = params[0]
        feat_win = _unfold_same(feats, self.kernel)                        # (B, Cm, T, k)
        pos_win = _unfold_same(rel, self.kernel)                           # (T, T, k)
        x = (torch.einsum("btocj,bcij->btoi", w0[..., :-1, :], feat_win)
             + torch.einsum("btoj,tij->btoi", w0[..., -1, :], pos_win)
             + b0.unsqueeze(-1))                                           # (B, T, out, T)
        batch = f_vis.shape[0]
        for w, b in params[1:]:
            # one small conv per (video, snippet): a grouped conv1d with B*T groups (2-3x the
            # speed of the unfold + batched-matmul form, which copies k windows per position)
            out_c, in_c = w.shape[2], w.shape[3]
            x = F.conv1d(torch.relu(x).reshape(1, batch * length * in_c, length),
                         w.reshape(batch * length * out_c, in_c, self.kernel), b.reshape(-1),
                         padding=self.kernel // 2, groups=batch * length)
            x = x.view(batch, length, out_c, length)
        return x.squeeze(2)


class ConsistencyProjections(nn.Module):
    """E_p and E_m of Eq. 12: 1-D convs on a sequence ``(B, T, C_in)`` -> two ``(B, T, C_p)``.

    ``learned``: two trained convs. ``fixed``: one frozen conv (seeded orthogonal weights, no
    bias) applied for both branches.
    """

    def __init__(self, cfg: HeadsConfig, width: int):
        super().__init__()
        cfg.validate()
        pad = cfg.const_kernel // 2
        self.fixed = cfg.const_projection == "fixed"
        self.clf = nn.Conv1d(width, cfg.const_dim, cfg.const_kernel, padding=pad, bias=not self.fixed)
        if self.fixed:
            gen = torch.Generator().manual_seed(0x5EED)
            w = torch.empty(cfg.const_dim, width * cfg.const_kernel)
            with torch.no_grad():
                q, _ = torch.linalg.qr(torch.randn(max(w.shape), min(w.shape), generator=gen))
                w.copy_(q.T if w.shape[0] < w.shape[1] else q[: w.shape[0]])
                self.clf.weight.copy_(w.view_as(self.clf.weight))
            self.clf.requires_grad_(False)
            self.mask = self.clf
        else:
            self.mask = nn.Conv1d(width, cfg.const_dim, cfg.const_kernel, padding=pad)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x.transpose(1, 2)
        if self.fixed:
            out = self.clf(h).transpose(1, 2)
            return out, out
        return self.clf(h).transpose(1, 2), self.mask(h).transpose(1, 2)
