import hashlib

import numpy as np
import pytest

from stale.synth import SynthConfig, SynthDataset


def _fallback_embed(names):
    """Deterministic embeddings with a large shared component, like a CLIP text tower's."""
    shared = np.random.default_rng(0).standard_normal(64)
    rows = []
    for n in names:
        seed = int.from_bytes(hashlib.sha256(n.encode()).digest()[:8], "little")
        rows.append(2.0 * shared + np.random.default_rng(seed).standard_normal(64))
    e = np.stack(rows)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _embed_fn():
    try:
        from stale.text import OFFLINE_ARCH, embed_class_names, load_text_tower
    except ImportError:
        return _fallback_embed
    tower = load_text_tower(OFFLINE_ARCH, None)  # built once: the same tower `stale synth` uses
    return lambda names: np.asarray(embed_class_names(list(names), tower=tower))


@pytest.fixture(scope="session")
def embed():
    return _embed_fn()


@pytest.fixture(scope="session")
def small_thumos(embed):
    return SynthDataset(SynthConfig(layout="thumos14", dim=128, max_videos_per_subset=6, seed=3), embed)
