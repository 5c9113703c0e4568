import numpy as np

from stale.synth import RenderConfig, SynthConfig, SynthDataset, difficulty_stats
from stale.synth.stats import ridge_probe


def test_ridge_probe_against_known_cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 5))
    y = x[:, 0] + 0.1 * x[:, 1] > 0.3
    assert ridge_probe(x[:200], y[:200], x[200:], y[200:], l2=1e-4) > 0.9
    noise_labels = rng.random(400) > 0.5  # unrelated to x: chance level
    assert abs(ridge_probe(x[:200], noise_labels[:200], x[200:], noise_labels[200:]) - 0.5) < 0.12


def test_default_difficulty_band_and_noise_monotonic(embed):
    """The docs' claim: useful but far from perfect (THUMOS14 layout, default knobs)."""
    base = dict(layout="thumos14", max_videos_per_subset=8, seed=0)
    st = difficulty_stats(SynthDataset(SynthConfig(**base), embed))
    assert 0.55 < st["nearest_prototype_acc"] < 0.92 and st["chance_acc"] == 0.05
    assert 0.75 < st["fg_bg_probe_balanced_acc"] < 0.95
    assert st["sim_inside"] > st["sim_outside"] + 0.04
    hard = difficulty_stats(SynthDataset(SynthConfig(**base, render=RenderConfig(noise=6.0)), embed))
    assert hard["nearest_prototype_acc"] < st["nearest_prototype_acc"] - 0.1
