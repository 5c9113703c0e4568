"""Semi-synthetic zero-shot TAD benchmark: real temporal structure (THUMOS14 / ActivityNet
annotations), class semantics derived from the text encoder, features in the real on-disk formats.
See docs/synth.md for the generative model and its knobs."""

from stale.synth.encoder import RandomVisualEncoder, VisualEncoderConfig
from stale.synth.generate import GENERATOR_VERSION, SynthConfig, SynthDataset, default_embed_fn
from stale.synth.layouts import LAYOUTS, LayoutSpec, get_layout
from stale.synth.leakage import permute_unseen_names
from stale.synth.render import RenderConfig
from stale.synth.stats import difficulty_stats, nearest_prototype_accuracy

__all__ = [
    "GENERATOR_VERSION", "LAYOUTS", "LayoutSpec", "RandomVisualEncoder", "RenderConfig", "SynthConfig",
    "SynthDataset", "VisualEncoderConfig", "default_embed_fn", "difficulty_stats", "get_layout",
    "nearest_prototype_accuracy", "permute_unseen_names",
]
