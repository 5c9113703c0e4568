"""Learnable prompts for the CLIP text tower (paper Sec. 3.2, Eq. 2; CoOp-style context).

Prompt layouts (token positions, ``N`` = ``context_length`` learned vectors ``ctx``,
``h = N // 2``, ``name`` = the class name's BPE tokens, ``.`` = the period token):

* ``end``:    ``[SOS] ctx[0:N] name . [EOS]``
* ``middle``: ``[SOS] ctx[0:h] name ctx[h:N] . [EOS]``  (Table 8: halves around the class)

The background class (row ``K``) uses the same layout with a single learned vector ``bg`` in
place of the name tokens. The feature of a prompt is its EOS position after ``ln_final`` times
``text_projection``. A prompt longer than the tower's 77 tokens raises a StaleError naming the
class (no silent truncation): with ``N = 50`` a class name may use up to 24 BPE tokens.

Always learned: ``ctx`` and ``bg``. ``finetune=True`` also trains the transformer, positional
embedding, ``ln_final`` and ``text_projection``; CLIP's token-embedding table (the vocabulary)
is always frozen, because unseen class names are embedded with it at test time and must stay
in the space the rest of the model was trained against.

Caching: in eval mode features are computed without gradient and cached per class-name tuple;
the cache is dropped by ``train()`` (not by ``eval()``, which every prediction call runs) and
ignored after any in-place change of a parameter (``Tensor._version``), a ``to()``/device move,
or a different class list.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from stale.core.errors import StaleError
from stale.text.tokens import ClipTokenizer, check_class_names
from stale.text.tower import ClipTextTower

_CACHE_SIZE = 4  # e.g. seen classes for validation and unseen classes for testing


@dataclass
class TextEncoderConfig:
    """Configuration of the prompted text encoder (defaults: the paper's settings).

    arch: open_clip architecture of the CLIP text tower (``ViT-B-16``), or ``stale-offline``
        (seeded random tower, works without network) / ``stale-test`` (tiny, for unit tests).
    weights: local checkpoint path or open_clip pretrained tag; ``None`` = the arch's standard
        weights (tag ``openai`` for open_clip archs, the seeded weights for ``stale-*``).
        OpenAI weights use QuickGELU, handled automatically for JIT archives and tags (for an
        open_clip-format file of OpenAI weights use arch ``ViT-B-16-quickgelu``).
        ``"random"``: the arch's shape with seeded random weights, built in memory -- for
        benchmarks and tests only (no language knowledge, so no zero-shot ability).
    context_length: number N̂ of learned context vectors (50, Table 8).
    class_position: ``middle`` (the paper's best, Table 8) or ``end``.
    ctx_init: ``None`` -> N(0, ctx_init_std) vectors; or a phrase (e.g. ``"a video of a"``)
        whose token embeddings fill the context slots just before the class name.
    ctx_init_std: std of the random context initialisation (0.02, CoOp).
    finetune: also train the text transformer (the paper fine-tunes it).
    bg_init: ``"random"`` -> N(0, ctx_init_std) (the paper: "initialized randomly"); otherwise a
        word/phrase whose mean token embedding initialises the background vector.
    seed: seed of the random context/background initialisation (the stale-* towers always use
        tower seed 0: like real CLIP, one fixed "pretrained" model shared by all runs).
    cache_dir: where the offline tower is cached (None -> $STALE_CACHE_DIR or ~/.cache/stale).
    grad_checkpointing: recompute the tower's residual blocks during backward instead of keeping
        their activations (same results; ViT-B/16 with 151 prompts: tower forward + backward
        peak 6.8 GB -> 1.9 GB, ~20 % more text-tower time). Applies whenever gradients are recorded.
    truncate: a prompt longer than CLIP's 77 tokens is an ``error`` (default), or with ``name``
        the class name's last tokens are cut to fit, as CoOp does (counted in
        ``PromptedTextEncoder.truncated`` and reported in the run folder).
    share_prefix: compute the prompts' common leading positions (``[SOS]`` and the context
        before the class name) once per tower block instead of once per class (the same
        features up to float32 rounding, see :mod:`stale.text.tower`; ViT-B/16 at 50 context
        tokens: 44 % fewer token positions). The context's gradient is summed in another
        order, so a long training drifts from a ``false`` run like a change of seed.
        ``false`` runs the plain per-prompt computation (for comparisons).
    encoder: ``transformer`` (CLIP's text transformer over the prompt) or ``none`` (paper
        Table 5, "no encoder"): a class is the mean of its name's CLIP token embeddings (the
        vocabulary, frozen) through a learned linear map initialised from CLIP's
        ``text_projection``; the background is a learned vector through the same map. No
        context tokens, no transformer.
    """

    arch: str = "ViT-B-16"
    weights: str | None = None
    context_length: int = 50
    class_position: Literal["end", "middle"] = "middle"
    ctx_init: str | None = None
    ctx_init_std: float = 0.02
    finetune: bool = True
    bg_init: str = "random"
    seed: int = 0
    cache_dir: str | None = None
    grad_checkpointing: bool = True
    truncate: Literal["error", "name"] = "error"
    encoder: Literal["transformer", "none"] = "transformer"
    share_prefix: bool = True

    def validate(self) -> None:
        if self.context_length < 0:
            raise StaleError(f"text.context_length must be >= 0, got {self.context_length}")
        if self.class_position not in ("end", "middle"):
            raise StaleError(f"text.class_position must be 'end' or 'middle', got {self.class_position!r}")
        if not self.ctx_init_std > 0:
            raise StaleError(f"text.ctx_init_std must be > 0, got {self.ctx_init_std}")


class PromptedTextEncoder(nn.Module):
    """CLIP text tower + learned context + learned background: class names -> (K+1, embed_dim)."""

    def __init__(self, tower: ClipTextTower, cfg: TextEncoderConfig | None = None):
        super().__init__()
        cfg = cfg or TextEncoderConfig()
        cfg.validate()
        self.cfg = cfg
        self.tower = tower
        tower.grad_checkpointing = cfg.grad_checkpointing
        self.embed_dim: int = tower.embed_dim
        self.tokenizer = ClipTokenizer()
        n = cfg.context_length
        self.ctx = nn.Parameter(torch.zeros(n, tower.width, dtype=tower.positional_embedding.dtype))
        self.bg = nn.Parameter(torch.zeros(tower.width, dtype=tower.positional_embedding.dtype))
        self._init_prompt_params()
        for name, p in self.tower.named_parameters():
            p.requires_grad_(cfg.finetune and not name.startswith("token_embedding"))
        self.bow_proj = None
        if cfg.encoder == "none":
            self.bow_proj = nn.Linear(tower.width, tower.embed_dim, bias=False)
            with torch.no_grad():
                self.bow_proj.weight.copy_(tower.text_projection.detach().T)
            self.ctx.requires_grad_(False)   # no prompt: the context is unused
        self._layouts: OrderedDict[tuple[str, ...], tuple[Tensor, ...]] = OrderedDict()
        self._features: OrderedDict[tuple[str, ...], tuple[tuple, Tensor]] = OrderedDict()
        #: class name -> BPE tokens cut from it to fit the prompt (``truncate: name``)
        self.truncated: dict[str, int] = {}

    # ------------------------------------------------------------------ initialisation
    def _phrase_embedding(self, phrase: str) -> Tensor:
        ids = self.tokenizer.encode(phrase)
        if not ids:
            raise StaleError(f"text: initialisation phrase {phrase!r} has no tokens")
        weight = self.tower.token_embedding.weight
        return weight[torch.tensor(ids, device=weight.device)].detach()

    def _init_prompt_params(self) -> None:
        cfg = self.cfg
        gen = torch.Generator().manual_seed(int(cfg.seed))
        n, width = self.ctx.shape
        with torch.no_grad():
            self.ctx.copy_(torch.randn(n, width, generator=gen) * cfg.ctx_init_std)
            self.bg.copy_(torch.randn(width, generator=gen) * cfg.ctx_init_std)
            if cfg.ctx_init:
                emb = self._phrase_embedding(cfg.ctx_init)
                stop = n if cfg.class_position == "end" else n // 2
                if len(emb) > stop:
                    raise StaleError(f"text.ctx_init {cfg.ctx_init!r} has {len(emb)} tokens but only "
                                     f"{stop} context slots precede the class name")
                self.ctx[stop - len(emb):stop] = emb
            if cfg.bg_init != "random":
                self.bg.copy_(self._phrase_embedding(cfg.bg_init).mean(0))

    # ------------------------------------------------------------------ layout
    def prompt_layout(self, class_names: Sequence[str]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Token layout of the K+1 prompts, padded to the longest one (length L).

        Returns ``ids`` (P, L) int64 vocabulary ids (0 at context/background/padding slots),
        ``ctx_slot`` (P, L) int64 index into ``ctx`` or -1, ``is_bg`` (P, L) bool and
        ``eos_pos`` (P,) int64, with P = K + 1 and row K the background prompt.
        """
        names = check_class_names(class_names)
        hit = self._layouts.get(names)
        if hit is not None and hit[0].device == self.ctx.device:
            return hit
        tok, n = self.tokenizer, self.ctx.shape[0]
        half = n if self.cfg.class_position == "end" else n // 2
        max_len = self.tower.spec.context_length
        rows = []
        for k, name in enumerate(names + (None,)):
            body = [-2] if name is None else self.tokenizer.encode_name(name, k)   # -2 marks bg
            room = max_len - (n + len(tok.period) + 2)
            if len(body) > room and self.cfg.truncate == "name" and room >= 1 and name is not None:
                # CoOp's way out of the 77-token limit: the name's tail is cut (counted)
                self.truncated[name] = len(body) - room
                body = body[:room]
            seq = [tok.sot] + [-1] * half + body + [-1] * (n - half) + tok.period + [tok.eot]
            if len(seq) > max_len:
                raise StaleError(
                    f"class {k} {name!r}: prompt needs {len(seq)} tokens ({len(body)} for the name, "
                    f"{n} context) but CLIP allows {max_len}; shorten the name, lower text.context_length, "
                    f"or set text.truncate=name")
            rows.append(seq)
        length = max(len(r) for r in rows)
        raw = torch.zeros(len(rows), length, dtype=torch.long)
        for i, r in enumerate(rows):
            raw[i, :len(r)] = torch.tensor(r)
        ctx_mark = raw == -1
        # context slots count 0..N-1 along each row, skipping the name in the middle layout
        ctx_slot = torch.where(ctx_mark, ctx_mark.long().cumsum(1) - 1, torch.full_like(raw, -1))
        is_bg = raw == -2
        ids = raw.clamp(min=0)
        eos_pos = torch.tensor([len(r) - 1 for r in rows])
        out = tuple(t.to(self.ctx.device) for t in (ids, ctx_slot, is_bg, eos_pos))
        self._layouts[names] = out
        while len(self._layouts) > _CACHE_SIZE:
            self._layouts.popitem(last=False)
        return out

    def prompt_embeddings(self, class_names: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Input embeddings (K+1, L, width) of the prompts and their EOS positions (K+1,)."""
        ids, ctx_slot, is_bg, eos_pos = self.prompt_layout(class_names)
        x = self.tower.token_embedding(ids)
        x = torch.where((ctx_slot >= 0).unsqueeze(-1), self.ctx[ctx_slot.clamp(min=0)], x)
        x = torch.where(is_bg.unsqueeze(-1), self.bg.to(x.dtype), x)
        return x, eos_pos

    @property
    def shared_prefix(self) -> int:
        """Leading prompt positions that are the same for every class: ``[SOS]`` and the context
        vectors before the name (the tower computes them once, see :mod:`stale.text.tower`)."""
        if not self.cfg.share_prefix:
            return 0
        n = self.ctx.shape[0]
        return 1 + (n if self.cfg.class_position == "end" else n // 2)

    # ------------------------------------------------------------------ forward + cache
    def _state_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version) for p in self.parameters())

    def train(self, mode: bool = True) -> "PromptedTextEncoder":
        # entering training drops the cache; eval() keeps it: callers switch to eval before
        # every prediction call, and the parameter key already catches any weight change
        if mode:
            self._features.clear()
        return super().train(mode)

    def bag_of_words(self, names: Sequence[str]) -> Tensor:
        """``encoder: none``: (K+1, embed_dim) mean token embedding of each name (+ background)."""
        weight = self.tower.token_embedding.weight
        rows = []
        for k, name in enumerate(names):
            ids = torch.tensor(self.tokenizer.encode_name(name, k), device=weight.device)
            rows.append(weight[ids].mean(0))
        rows.append(self.bg.to(weight.dtype))
        return self.bow_proj(torch.stack(rows))

    def forward(self, class_names: Sequence[str]) -> Tensor:
        """Text features of the K named classes plus background: (K+1, embed_dim), row K = bg.

        One batched pass for all K+1 prompts. In eval mode the result is cached (no gradient).
        """
        names = check_class_names(class_names)
        if self.bow_proj is not None:
            return self.bag_of_words(names)
        if self.training:
            x, eos_pos = self.prompt_embeddings(names)
            return self.tower.encode_embeddings(x, eos_pos, self.shared_prefix)
        key = self._state_key()
        hit = self._features.get(names)
        if hit is not None and hit[0] == key:
            return hit[1].clone()
        with torch.no_grad():
            x, eos_pos = self.prompt_embeddings(names)
            feats = self.tower.encode_embeddings(x, eos_pos, self.shared_prefix)
        self._features[names] = (key, feats)
        while len(self._features) > _CACHE_SIZE:
            self._features.popitem(last=False)
        return feats.clone()


def build_text_encoder(cfg: TextEncoderConfig | None = None) -> PromptedTextEncoder:
    """Load the tower named by ``cfg`` (see :func:`stale.text.weights.load_text_tower`) and wrap it."""
    from stale.text.weights import load_text_tower

    cfg = cfg or TextEncoderConfig()
    cfg.validate()
    tower = load_text_tower(cfg.arch, cfg.weights, cache_dir=cfg.cache_dir, seed=0)
    return PromptedTextEncoder(tower, cfg)
