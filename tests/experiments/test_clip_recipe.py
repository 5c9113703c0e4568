"""Issue 21's guard on the CLIP-feature recipe: on CLIP-like data, a run trained with it
(`clip_features`, the demo's base) must not detect unseen classes worse than the training-free
CLIP detector, i.e. `stale detect --run` must not be worse than `stale detect` without a run.

A tiny setting through the real CLI: the honest benchmark's `clip-neutral` preset (class codes
never equal to the detector's prompts, scenes unrelated to the classes: the world where the
training-free detector works), 60 videos per subset, zero-shot 75/25 split 0, the demo recipe as
shipped (30 epochs), against `method=clip_detector` on the same cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

SPEC = {
    "name": "clip-recipe-guard",
    "title": "the CLIP recipe against the training-free detector, tiny clip-neutral",
    "base": "demo",
    "overrides": ["train.val_fraction=0.2"],
    "datasets": {"clip-neutral": {"synth": {"preset": "clip-neutral", "max_videos_per_subset": 60}}},
    "settings": {"75/25": ["protocol.setting=75"]},
    "splits": [0],
    "variants": {"recipe": [], "training-free": ["method=clip_detector"]},
}


@pytest.mark.slow
def test_a_run_trained_with_the_clip_recipe_is_not_worse_than_no_run(tmp_path):
    spec = tmp_path / "guard.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "stale", "experiment", str(spec), "--out", str(tmp_path / "out")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "results.json").read_text())["summary"]
    trained = summary["recipe"]["clip-neutral"]["75/25"]["average_mean"]
    free = summary["training-free"]["clip-neutral"]["75/25"]["average_mean"]
    assert free > 0.05                       # the training-free detector works in this world
    assert trained >= free, (trained, free)
