"""Text side of STALE: the CLIP text tower, learnable prompts and frozen class embeddings.

See docs/text.md. Public API:

* :class:`PromptedTextEncoder` / :class:`TextEncoderConfig` / :func:`build_text_encoder` —
  class names -> (K+1, embed_dim) features, row K = learned background;
* :func:`embed_class_names` — frozen, template-based, L2-normalised embeddings (numpy);
* :func:`load_text_tower`, :func:`load_checkpoint_file`, :func:`ensure_offline_tower`,
  :func:`save_tower` — weights;
* :class:`ClipTextTower`, :class:`TowerSpec`, :func:`build_random_tower` — the tower itself.
"""

from stale.text.embed import DEFAULT_TEMPLATE, embed_class_names
from stale.text.prompt import PromptedTextEncoder, TextEncoderConfig, build_text_encoder
from stale.text.tower import OFFLINE_SPEC, TEST_SPEC, ClipTextTower, TowerSpec, build_random_tower
from stale.text.weights import (OFFLINE_ARCH, TEST_ARCH, default_cache_dir, ensure_offline_tower,
                                is_offline, load_checkpoint_file, load_text_tower,
                                offline_tower_path, save_tower)

__all__ = [
    "DEFAULT_TEMPLATE", "OFFLINE_ARCH", "OFFLINE_SPEC", "TEST_ARCH", "TEST_SPEC", "ClipTextTower",
    "PromptedTextEncoder", "TextEncoderConfig", "TowerSpec", "build_random_tower",
    "build_text_encoder", "default_cache_dir", "embed_class_names", "ensure_offline_tower",
    "is_offline", "load_checkpoint_file", "load_text_tower", "offline_tower_path", "save_tower",
]
