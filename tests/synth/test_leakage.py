import numpy as np
import pytest

from stale.core.errors import StaleError
from stale.synth import SynthConfig, SynthDataset, permute_unseen_names
from stale.synth.stats import nearest_prototype_accuracy


def test_derangement_properties():
    names = [f"c{i}" for i in range(10)]
    unseen = ["c1", "c4", "c7", "c9"]
    for seed in range(20):
        out = permute_unseen_names(names, unseen, seed)
        assert sorted(out) == sorted(names)
        for i, n in enumerate(names):
            if n in unseen:
                assert out[i] != n and out[i] in unseen
            else:
                assert out[i] == n
    assert permute_unseen_names(names, unseen, 3) == permute_unseen_names(names, unseen, 3)
    assert len({tuple(permute_unseen_names(names, unseen, s)) for s in range(20)}) > 1
    assert permute_unseen_names(names, ["c2", "c3"], 0)[2:4] == ["c3", "c2"]


def test_derangement_errors():
    with pytest.raises(StaleError, match="at least 2"):
        permute_unseen_names(["a", "b"], ["a"], 0)
    with pytest.raises(StaleError, match="not in"):
        permute_unseen_names(["a", "b"], ["a", "z"], 0)


def test_generator_leakage_property(embed):
    """Text-derived prototypes recognise unseen instances; with deranged names they cannot."""
    unseen = ["BaseballPitch", "HammerThrow", "PoleVault", "SoccerPenalty", "ThrowDiscus"]  # split_0
    ds = SynthDataset(SynthConfig(layout="thumos14", dim=128, max_videos_per_subset=15, seed=1), embed)
    feats, labels = [], []
    for v in ds.videos:
        if not any(s.label in unseen for s in v.segments):
            continue
        r = ds.render(v)
        centres = ds.layout.feature_centres(v)
        for s in v.segments:
            inside = (centres > s.start) & (centres < s.end) & (r.label == ds.class_index[s.label])
            if s.label in unseen and inside.any():
                feats.append(r.features[inside].mean(0))
                labels.append(unseen.index(s.label))
    feats, labels = np.stack(feats), np.array(labels)
    assert len(set(labels)) >= 4 and len(labels) >= 30
    true_protos = ds.encoder(np.asarray(embed(unseen)))
    scrambled = permute_unseen_names(ds.classes, unseen, seed=0)
    permuted = [scrambled[ds.class_index[u]] for u in unseen]
    perm_protos = ds.encoder(np.asarray(embed(permuted)))
    chance = 1 / len(unseen)
    assert nearest_prototype_accuracy(feats, labels, true_protos) > 3 * chance
    assert nearest_prototype_accuracy(feats, labels, perm_protos) <= chance
