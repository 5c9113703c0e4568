"""Class codes: the text-side vectors the generator derives each class's visual prototype from.

A benchmark must not start the detector at the answer. Real CLIP image features of an action
sit *near* the text embedding of its name, never *at* the embedding of the prompt a detector
happens to start from. The legacy presets broke that rule: their codes were the embeddings of
``"a video of {}."``, the demo config's own initial prompt, so an unseen class's initial text
feature equalled its generating vector bit for bit. ``ClassCodeConfig`` builds codes that no
shipped prompt reproduces:

1. **Other prompts.** Each class name is written with the generator's own template ensemble
   (:data:`GENERATOR_TEMPLATES`, disjoint from every template the package ships) and, with
   ``paraphrase``, also as a paraphrase of the name (CamelCase split into lower-case words,
   underscores as spaces); the L2-normalised embeddings are averaged.
2. **A per-class perturbation.** ``c_k <- c_k + ρ·s·z_k``, ``z_k`` a random unit vector per class
   and ``s`` the RMS norm of the reference-centred codes: the visual class sits near, not at, its
   text.
3. **Class-free centring.** The encoder centres and scales with a fixed vocabulary of generic
   scene/object phrases (:data:`REFERENCE_VOCABULARY`), embedded the same way, instead of the mean
   of the layout's class list, which would carry information about the unseen classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from stale.core.errors import StaleError
from stale.synth.stats import unit

#: Templates of the generator only. Tested to be disjoint from every template the package ships
#: (the demo's ctx_init, the training-free detector's ensemble, ``stale text-embed``'s default).
GENERATOR_TEMPLATES = ("footage of someone doing {}.", "{} being performed.", "an example of {}.",
                       "a recording that shows {}.")

#: Generic phrases that name no action: the reference the codes are centred and scaled with.
REFERENCE_VOCABULARY = ("something", "a scene", "an object", "a person", "a room", "outdoors",
                        "a street", "a field", "food", "a car", "an animal", "music", "water",
                        "a building", "a crowd", "the sky", "a table", "a window", "trees",
                        "a screen", "a road", "a wall", "people talking", "a dog")

#: ``embed(names, template) -> (K, E)`` L2-normalised text embeddings.
TemplateEmbedFn = Callable[[Sequence[str], str], np.ndarray]


@dataclass
class ClassCodeConfig:
    """How class codes are derived (module docstring; docs/synth.md, "Class codes").

    templates: the prompt ensemble; empty = the legacy codes (the ``embed`` function given to the
        generator, called with the names alone).
    paraphrase: also embed a paraphrase of each name and average it in.
    perturbation: ρ, the per-class random offset relative to the codes' RMS norm.
    reference: ``vocabulary`` centres/scales the encoder input with REFERENCE_VOCABULARY;
        ``classes`` with the layout's whole class list (legacy).
    """

    templates: list[str] = field(default_factory=list)
    paraphrase: bool = False
    perturbation: float = 0.0
    reference: str = "classes"

    def validate(self) -> None:
        if any(not isinstance(t, str) or t.count("{}") != 1 for t in self.templates):
            raise StaleError("synth codes.templates: each template needs exactly one '{}'")
        if not (np.isfinite(self.perturbation) and self.perturbation >= 0):
            raise StaleError(f"synth codes.perturbation must be a finite number >= 0, got {self.perturbation!r}")
        if self.reference not in ("classes", "vocabulary"):
            raise StaleError(f"synth codes.reference must be 'classes' or 'vocabulary', got {self.reference!r}")

    @property
    def legacy(self) -> bool:
        return not self.templates


def paraphrase(name: str) -> str:
    """``"BaseballPitch"`` -> ``"baseball pitch"``; ``"Playing_guitar"`` -> ``"playing guitar"``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " "))
    return " ".join(spaced.lower().split())


def ensemble(names: Sequence[str], templates: Sequence[str], embed: TemplateEmbedFn,
             with_paraphrase: bool = False) -> np.ndarray:
    """(K, E) float64: the normalised mean of the normalised embeddings of every (template,
    spelling) pair of each name."""
    spellings = [list(names)] + ([[paraphrase(n) for n in names]] if with_paraphrase else [])
    rows = [unit(np.asarray(embed(s, t), dtype=np.float64)) for s in spellings for t in templates]
    return unit(np.mean(rows, axis=0))


def class_codes(names: Sequence[str], cfg: ClassCodeConfig, embed: TemplateEmbedFn,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """(K, E) codes of ``names`` and the (V, E) reference embeddings (None: legacy centring).

    ``rng`` draws the per-class perturbation (one unit vector per class, in ``names`` order).
    """
    cfg.validate()
    codes = ensemble(names, cfg.templates, embed, cfg.paraphrase)
    reference = ensemble(REFERENCE_VOCABULARY, cfg.templates, embed) if cfg.reference == "vocabulary" else None
    if cfg.perturbation > 0:
        mu = (reference if reference is not None else codes).mean(0)
        scale = float(np.sqrt(((codes - mu) ** 2).sum(1).mean()))
        z = unit(rng.standard_normal(codes.shape))
        codes = codes + cfg.perturbation * scale * z
    return codes, reference

