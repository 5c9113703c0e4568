"""Frozen class embeddings from a hand-written template (no learned context).

``embed_class_names`` is the plain CLIP zero-shot recipe: ``[SOS] template(name) [EOS]`` through
the text tower, EOS feature, L2-normalised. The synthetic-data generator uses it as its source of
class semantics, and ``stale text-embed`` writes it to disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from stale.core.errors import StaleError
from stale.text.tokens import ClipTokenizer, check_class_names, check_listed_names
from stale.text.tower import ClipTextTower

DEFAULT_TEMPLATE = "a video of {}."
#: the hand-written prompt ensemble of the training-free detector and of STALE's CLIP prior
ENSEMBLE_TEMPLATES = ("a video of {}.", "a photo of a person {}.", "a video of a person doing {}.",
                      "a clip of {}.")


def template_token_ids(names: Sequence[str], template: str, tokenizer: ClipTokenizer,
                       max_len: int = 77) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (K, L) of ``[SOS] template(name) [EOS]``, zero-padded, and EOS positions (K,).

    Underscores in names are read as spaces. A prompt over ``max_len`` tokens is a StaleError
    naming the class.
    """
    if not isinstance(template, str) or template.count("{}") != 1:
        raise StaleError(f"template {template!r} must contain '{{}}' exactly once (the class name)")
    rows = []
    for k, name in enumerate(names):
        tokenizer.encode_name(name, k)  # rejects names with no tokens
        seq = [tokenizer.sot] + tokenizer.encode(template.replace("{}", name.replace("_", " "))) \
            + [tokenizer.eot]
        if len(seq) > max_len:
            raise StaleError(f"class {k} {name!r}: templated prompt needs {len(seq)} tokens but "
                             f"CLIP allows {max_len}")
        rows.append(seq)
    length = max((len(r) for r in rows), default=2)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    return ids, torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)


def embed_class_names(names: Sequence[str], weights: str | os.PathLike | None = None,
                      template: str = DEFAULT_TEMPLATE, *, arch: str | None = None,
                      tower: ClipTextTower | None = None, cache_dir: str | os.PathLike | None = None,
                      device: str | torch.device | None = None) -> np.ndarray:
    """L2-normalised float32 text embeddings (K, E) of ``template`` filled with each class name.

    ``weights=None`` uses the offline seeded tower (cached on first use); a path or tag is loaded
    with :func:`stale.text.weights.load_text_tower` (``arch`` defaults to ``ViT-B-16`` then).
    ``tower`` passes an already built tower instead. Deterministic for given weights.
    """
    from stale.text.weights import OFFLINE_ARCH, load_text_tower

    names = check_class_names(names)
    if not names:
        raise StaleError("embed_class_names: the class list is empty")
    if tower is None:
        if weights is None:
            tower = load_text_tower(arch or OFFLINE_ARCH, None, cache_dir=cache_dir)
        else:
            tower = load_text_tower(arch or "ViT-B-16", weights, cache_dir=cache_dir)
    if device is not None:
        tower = tower.to(device)
    ids, eos = template_token_ids(names, template, ClipTokenizer(), tower.spec.context_length)
    dev = tower.positional_embedding.device
    with torch.no_grad():
        feats = tower.encode_token_ids(ids.to(dev), eos.to(dev)).float()
    feats = torch.nn.functional.normalize(feats, dim=-1)
    return feats.cpu().numpy().astype(np.float32)


def ensemble_embeddings(names: Sequence[str], templates: Sequence[str], tower: ClipTextTower) -> torch.Tensor:
    """(K, E) L2-normalised mean of the L2-normalised template embeddings of each name (float32,
    CPU; Radford et al.'s prompt ensembling)."""
    embs = torch.stack([torch.from_numpy(embed_class_names(list(names), template=t, tower=tower))
                        for t in templates])                              # (P, K, E)
    return torch.nn.functional.normalize(embs.mean(0), dim=-1)


class CachedEnsemble:
    """``(names) -> (K, E)`` :func:`ensemble_embeddings` of a tower, computed without gradient
    and cached per class list while the tower has no trainable parameter (a fine-tuned tower is
    re-embedded on every call: its embeddings move). A plain object, not a module: the tower
    belongs to whoever built it, and nothing here enters a checkpoint."""

    def __init__(self, tower: ClipTextTower, templates: Sequence[str]):
        self.tower = tower
        self.templates = list(templates)
        self._cache: tuple[tuple[str, ...], torch.Tensor] | None = None

    def __call__(self, names: Sequence[str]) -> torch.Tensor:
        key = tuple(names)
        frozen = not any(p.requires_grad for p in self.tower.parameters())
        if frozen and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        with torch.no_grad():
            emb = ensemble_embeddings(key, self.templates, self.tower)
        if frozen:
            self._cache = (key, emb)
        return emb


def read_class_list(classes: str | None, classes_file: str | None) -> list[str]:
    """Class names from ``--classes`` or ``--classes-file`` (blank lines ignored, names stripped);
    a file that is not UTF-8, an empty list and a name listed twice are errors naming the source."""
    from stale.core.io import parse_json_bytes, read_text

    if classes is not None:
        names = [c.strip() for c in classes.split(",")]
        where = "--classes"
    else:
        path = Path(classes_file).expanduser()
        text = read_text(path, "class file")
        where = str(path)
        if path.suffix == ".json":
            data = parse_json_bytes(text.encode("utf-8"), str(path))
            if not isinstance(data, list) or not all(isinstance(c, str) for c in data):
                raise StaleError(f"{path}: expected a JSON list of class names")
            names = [c.strip() for c in data]
        else:
            names = [line.strip() for line in text.splitlines()]
    if any(not n for n in names) and classes is not None:
        raise StaleError(f"{where}: empty class name in {classes!r}")
    return check_listed_names(names, where)
