"""The CLIP text tower alone: token embedding, positional embedding, transformer, ln_final, projection.

Parameter names are exactly those of OpenAI CLIP and of open_clip's ``CLIP`` class
(``token_embedding.weight``, ``positional_embedding``, ``transformer.resblocks.N.*``,
``ln_final.*``, ``text_projection``), so the text part of any such checkpoint loads into it with
``load_state_dict(strict=True)`` and a state dict of this module is itself a valid text-only
CLIP checkpoint. The vision tower is never built.

Exact short computation: CLIP's text attention is causal, so the output at position ``i``
depends only on tokens ``0..i``. Running the transformer on the first ``L`` positions (the
longest prompt) therefore gives exactly the EOS features of the full 77-token computation, with
``(77 / L)^2`` less attention work.

Activation checkpointing (``grad_checkpointing = True``): while gradients are recorded, each
residual block keeps only its input and recomputes its activations during backward
(``torch.utils.checkpoint``, non-reentrant). Outputs and gradients are the same as without it
up to float32 summation order (the blocks are deterministic and have no dropout). Each block
is checkpointed per group of prompts (``_CHECKPOINT_TOKENS`` tokens; prompts never interact),
so backward holds the block inputs plus one group's recomputed activations of one block:
ViT-B/16 over 151 prompts of 59 tokens, forward + backward peak RSS 6.8 GB -> 1.9 GB, for one
extra forward of the tower (about 20-25 % more text-tower time).

Shared prefix (``shared_prefix = S``): learned prompts begin with the same ``S`` tokens for
every class (``[SOS] ctx[0:h]``: 26 of the 59 positions at 50 context tokens, class in the
middle; 51 with the class at the end). Under the causal mask those positions never see a class
name, so their hidden states are identical for all prompts: they are computed once per block
and each prompt's remaining positions attend to the prefix's keys and values (a prefix cache,
as in autoregressive decoding). Same values up to float32 summation order, same gradients (the
prefix's gradient is the sum over prompts); the tower's token work drops from ``P * L`` to
``S + P * (L - S)`` positions (ViT-B/16, 151 prompts: 8,909 -> 5,009).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from stale.core.errors import StaleError


@dataclass(frozen=True)
class TowerSpec:
    """Shape of a CLIP text tower (the ``text_cfg`` part of an open_clip model config)."""

    width: int
    layers: int
    heads: int
    embed_dim: int
    context_length: int = 77   # CLIP's maximum number of tokens, SOS and EOS included
    vocab_size: int = 49408    # CLIP BPE vocabulary
    mlp_ratio: float = 4.0
    quick_gelu: bool = False   # OpenAI-trained weights use QuickGELU

    def validate(self) -> None:
        if self.width % self.heads:
            raise StaleError(f"text tower: width {self.width} is not divisible by heads {self.heads}")

    def to_model_cfg(self) -> dict:
        """open_clip-style model config (``embed_dim``, ``quick_gelu``, ``text_cfg``)."""
        return {
            "embed_dim": self.embed_dim,
            "quick_gelu": self.quick_gelu,
            "text_cfg": {
                "context_length": self.context_length, "vocab_size": self.vocab_size,
                "width": self.width, "heads": self.heads, "layers": self.layers,
                "mlp_ratio": self.mlp_ratio,
            },
        }


# prompt tokens per checkpointed segment (ViT-B/16: 59-token prompts -> groups of 34 prompts)
_CHECKPOINT_TOKENS = 2048

# The offline stand-in for CLIP: 50 learned context tokens + names fit in 77, CPU-fast.
OFFLINE_SPEC = TowerSpec(width=128, layers=4, heads=4, embed_dim=128)
# An even smaller tower for unit tests (built in memory, never cached).
TEST_SPEC = TowerSpec(width=32, layers=2, heads=2, embed_dim=24)


class ClipTextTower(nn.Module):
    """CLIP's text encoder without the vision tower; see the module docstring."""

    def __init__(self, spec: TowerSpec):
        super().__init__()
        from open_clip.transformer import LayerNorm, QuickGELU, Transformer

        spec.validate()
        self.spec = spec
        # torch's default layer init draws from the global RNG; weights are always overwritten
        # (checkpoint or init_random_), so keep the caller's random stream untouched
        with torch.random.fork_rng(devices=[]):
            self.token_embedding = nn.Embedding(spec.vocab_size, spec.width)
            self.transformer = Transformer(
                spec.width, spec.layers, spec.heads, spec.mlp_ratio,
                act_layer=QuickGELU if spec.quick_gelu else nn.GELU, norm_layer=LayerNorm,
                batch_first=True,
            )
        self.positional_embedding = nn.Parameter(torch.zeros(spec.context_length, spec.width))
        self.ln_final = LayerNorm(spec.width)
        self.text_projection = nn.Parameter(torch.zeros(spec.width, spec.embed_dim))
        # a plain attribute, not a parameter or buffer: state dicts stay CLIP checkpoints
        self.grad_checkpointing = False

    @property
    def width(self) -> int:
        return self.spec.width

    @property
    def embed_dim(self) -> int:
        return self.spec.embed_dim

    def encode_embeddings(self, x: Tensor, eos_pos: Tensor, shared_prefix: int = 0) -> Tensor:
        """Text features from input token embeddings.

        x: (P, L, width) embeddings of P prompts padded to a common length L <= context_length
        (anything after a prompt's EOS is ignored thanks to the causal mask);
        eos_pos: (P,) int64 position of each prompt's EOS token.
        shared_prefix: S, the number of leading positions whose embeddings are the same in every
        prompt (the caller guarantees it; only row 0's are read), all EOS positions >= S. With
        S > 0 the prefix is computed once (module docstring); 0 = the plain computation.
        Returns (P, embed_dim): the EOS position after ``ln_final``, times ``text_projection``.
        """
        length = x.shape[1]
        if length > self.spec.context_length:
            raise StaleError(f"prompt of {length} tokens exceeds the text tower's context length "
                             f"{self.spec.context_length}")
        S = int(shared_prefix)
        if S > 0 and x.shape[0] > 1 and S < length and int(eos_pos.min()) >= S:
            return self._encode_shared(x, eos_pos, S)
        x = x + self.positional_embedding[:length].to(x.dtype)
        causal = torch.full((length, length), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)
        # open_clip's Transformer.forward is this loop over resblocks (batch_first=True); it is
        # written out here so that checkpointing applies only when a graph is being recorded
        save_memory = self.grad_checkpointing and torch.is_grad_enabled()
        # prompts do not interact: checkpointing each block per group of prompts bounds the
        # recomputed activations of the backward to one group's (same values, same FLOPs)
        group = max(1, _CHECKPOINT_TOKENS // length)
        for block in self.transformer.resblocks:
            if save_memory:
                x = torch.cat([checkpoint(block, part, attn_mask=causal, use_reentrant=False)
                               for part in x.split(group)])
            else:
                x = block(x, attn_mask=causal)
        x = x[torch.arange(x.shape[0], device=x.device), eos_pos]
        # ln_final is per token, so applying it after picking EOS is the same as before
        return self.ln_final(x) @ self.text_projection

    def _encode_shared(self, x: Tensor, eos_pos: Tensor, S: int) -> Tensor:
        """``encode_embeddings`` with the first ``S`` positions computed once: x (P, L, width)."""
        length = x.shape[1]
        pos = self.positional_embedding[:length].to(x.dtype)
        pre = x[:1, :S] + pos[:S]          # (1, S, width)
        suf = x[:, S:] + pos[S:]           # (P, L - S, width)
        n = length - S
        # suffix position i (absolute S + i) sees the whole prefix and suffix positions <= i
        see = torch.ones(n, length, dtype=torch.bool, device=x.device)
        see[:, S:] = torch.ones(n, n, dtype=torch.bool, device=x.device).tril_()
        save_memory = self.grad_checkpointing and torch.is_grad_enabled()
        group = max(1, _CHECKPOINT_TOKENS // n)
        heads = self.spec.heads
        for block in self.transformer.resblocks:
            if save_memory:
                outs = [checkpoint(_shared_block, block, heads, pre, part, see, use_reentrant=False)
                        for part in suf.split(group)]
                # every group recomputes the small prefix; its values are the same, keep one
                pre = outs[0][0]
                suf = torch.cat([o[1] for o in outs])
            else:
                pre, suf = _shared_block(block, heads, pre, suf, see)
        x = suf[torch.arange(suf.shape[0], device=x.device), eos_pos - S]
        return self.ln_final(x) @ self.text_projection

    def encode_token_ids(self, ids: Tensor, eos_pos: Tensor) -> Tensor:
        """Text features of token id sequences: ids (P, L) int64, eos_pos (P,) -> (P, embed_dim)."""
        return self.encode_embeddings(self.token_embedding(ids), eos_pos)


def _shared_block(block: nn.Module, heads: int, pre: Tensor, suf: Tensor, see: Tensor) -> tuple[Tensor, Tensor]:
    """One open_clip ``ResidualAttentionBlock`` (pre-LN, causal self-attention, MLP) on a shared
    prefix ``pre`` (1, S, W) and the prompts' own positions ``suf`` (P, n, W); ``see`` (n, S + n)
    bool says which positions each suffix position attends to. Returns the new (pre, suf)."""
    attn = block.attn
    P, n, W = suf.shape
    S = pre.shape[1]
    d = W // heads

    def split_heads(t: Tensor) -> Tensor:   # (B, L, W) -> (B, heads, L, d)
        return t.unflatten(-1, (heads, d)).transpose(1, 2)

    q_p, k_p, v_p = (split_heads(t) for t in F.linear(block.ln_1(pre), attn.in_proj_weight,
                                                       attn.in_proj_bias).chunk(3, dim=-1))
    q_s, k_s, v_s = (split_heads(t) for t in F.linear(block.ln_1(suf), attn.in_proj_weight,
                                                       attn.in_proj_bias).chunk(3, dim=-1))
    o_p = F.scaled_dot_product_attention(q_p, k_p, v_p, is_causal=True)
    k = torch.cat([k_p.expand(P, -1, -1, -1), k_s], dim=2)
    v = torch.cat([v_p.expand(P, -1, -1, -1), v_s], dim=2)
    o_s = F.scaled_dot_product_attention(q_s, k, v, attn_mask=see)

    def merge(o: Tensor) -> Tensor:          # (B, heads, L, d) -> (B, L, W) through out_proj
        return F.linear(o.transpose(1, 2).flatten(2), attn.out_proj.weight, attn.out_proj.bias)

    pre = pre + block.ls_1(merge(o_p))
    suf = suf + block.ls_1(merge(o_s))
    pre = pre + block.ls_2(block.mlp(block.ln_2(pre)))
    suf = suf + block.ls_2(block.mlp(block.ln_2(suf)))
    return pre, suf


def init_random_(tower: ClipTextTower, seed: int) -> ClipTextTower:
    """Fill ``tower`` in place with seeded random weights (CLIP's initialisation scales).

    Uses a private CPU generator (no global RNG state is touched) and walks the parameters in
    their fixed registration order, so the same seed always gives identical weights.
    """
    spec = tower.spec
    gen = torch.Generator().manual_seed(int(seed))
    attn_std = spec.width ** -0.5
    proj_std = attn_std * (2 * spec.layers) ** -0.5
    fc_std = (2 * spec.width) ** -0.5
    with torch.no_grad():
        for name, p in tower.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if name == "token_embedding.weight":
                std = 0.02
            elif name == "positional_embedding":
                std = 0.01
            elif name == "text_projection":
                std = attn_std
            elif ".ln_" in name or name.startswith("ln_final"):
                p.fill_(1.0 if leaf == "weight" else 0.0)
                continue
            elif leaf.endswith("bias"):
                p.zero_()
                continue
            elif "in_proj_weight" in name:
                std = attn_std
            elif "out_proj.weight" in name or "c_proj.weight" in name:
                std = proj_std
            elif "c_fc.weight" in name:
                std = fc_std
            else:  # a parameter this rule set does not know would silently stay zero
                raise RuntimeError(f"init_random_: no rule for parameter {name}")
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return tower


def build_random_tower(spec: TowerSpec, seed: int = 0) -> ClipTextTower:
    """A text tower of shape ``spec`` with seeded random weights (see :func:`init_random_`)."""
    return init_random_(ClipTextTower(spec), seed)


