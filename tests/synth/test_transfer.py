"""Zero-shot difficulty statistics and the honest presets' two worlds."""

import itertools

import numpy as np
import pytest

from stale.synth.transfer import auc, ridge_map


def test_auc_equals_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, 30).astype(float)
    neg = rng.integers(0, 5, 40).astype(float)
    pairs = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]
    assert auc(pos, neg) == pytest.approx(np.mean(pairs))
    assert np.isnan(auc(pos, neg[:0]))


def test_ridge_map_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6))
    w = rng.standard_normal((6, 3))
    fit = ridge_map(x, x @ w + 0.5, l2=1e-6)
    np.testing.assert_allclose(fit[:6], w, atol=1e-3)
    np.testing.assert_allclose(fit[6], 0.5, atol=1e-3)


@pytest.fixture(scope="module")
def worlds(embed):
    from stale.data.splits import load_split
    from stale.synth import SynthDataset
    from stale.synth.presets import preset
    from stale.synth.transfer import zero_shot_difficulty
    from stale.text import embed_class_names
    from stale.text.embed import ENSEMBLE_TEMPLATES

    def embed_t(names, template="a video of {}."):
        return embed_class_names(list(names), template=template)

    split = load_split("thumos14", 75, 0)
    out = {}
    for name in ("clip-neutral", "clip-context", "nonaligned-clean"):
        ds = SynthDataset(preset(name, max_videos_per_subset=30), embed_t)
        text = np.mean([embed_t(ds.classes, t) for t in ENSEMBLE_TEMPLATES], 0)
        out[name] = zero_shot_difficulty(ds, split.seen, split.unseen, text)
        if name == "clip-neutral":
            from stale.synth.leakage import permute_unseen_names

            wrong = permute_unseen_names(ds.classes, split.unseen, 0)
            text_w = np.mean([embed_t(wrong, t) for t in ENSEMBLE_TEMPLATES], 0)
            out["permuted"] = zero_shot_difficulty(ds, split.seen, split.unseen, text_w)
    return out


def test_clip_like_settings_carry_the_name_and_the_backgrounds_differ(worlds):
    neutral, context = worlds["clip-neutral"], worlds["clip-context"]
    assert neutral["nearest_text"] > neutral["chance"] + 0.2
    assert worlds["permuted"]["nearest_text"] < neutral["chance"] + 0.1   # names carry it, nothing else
    # the two worlds: text similarity localises against neutral backgrounds, not against context
    assert neutral["bg_auc"] > 0.8 and context["bg_auc"] < neutral["bg_auc"] - 0.15


def test_nonaligned_needs_the_learned_map(worlds):
    st = worlds["nonaligned-clean"]
    assert "nearest_text" not in st                                       # another space
    assert st["probe"] > st["chance"] + 0.2
