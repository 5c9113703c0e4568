"""``LoadedRun.detect`` (the Python API of a trained run) as a hostile user calls it: a feature
file's duration is the one ``stale extract`` recorded for exactly that file, and class names that
CLIP's tokenizer reads as one prompt are one class, refused as a duplicate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bad_inputs import refused
from stale.core.errors import StaleError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def loaded(tiny_run):
    from stale import api

    return api.load_run(tiny_run, device="cpu")


def _extract_folder(root, prefix=""):
    root.mkdir()
    db = {"clip": {"subset": "testing", "duration": 6.0, "annotations": []},
          "myclip": {"subset": "testing", "duration": 20.0, "annotations": []}}
    (root / "videos.json").write_text(json.dumps({"version": "stale-extract", "database": db}))
    (root / "extract_meta.json").write_text(json.dumps({"prefix": prefix, "videos": {}}))
    rng = np.random.default_rng(0)
    for vid in db:
        np.save(root / f"{prefix}{vid}.npy", rng.normal(size=(40, 16)).astype(np.float32))
    return root


def _durations(loaded, monkeypatch):
    seen = []
    inner = loaded.detector

    def spy(x, names, durations, targets=None):
        seen.append([float(d) for d in durations])
        return inner(x, names, durations, targets=targets)

    monkeypatch.setattr(loaded, "detector", spy)
    return seen


@pytest.mark.parametrize("prefix", ["", "v_"])
def test_duration_is_looked_up_by_the_exact_id(loaded, tmp_path, monkeypatch, prefix):
    feats = _extract_folder(tmp_path / "feats", prefix)
    seen = _durations(loaded, monkeypatch)
    items = loaded.detect(feats / f"{prefix}myclip.npy", ["high jump", "long jump"])
    loaded.detect(feats / f"{prefix}clip.npy", ["high jump", "long jump"])
    assert seen == [[20.0], [6.0]]
    assert items and max(d["segment"][1] for d in items) > 6.0


def test_a_file_the_index_does_not_list_needs_a_duration(loaded, tmp_path):
    feats = _extract_folder(tmp_path / "feats")
    np.save(feats / "otherclip.npy", np.zeros((10, 16), np.float32))
    with pytest.raises(StaleError, match="give the video's duration"):
        loaded.detect(feats / "otherclip.npy", ["high jump"])


@pytest.mark.parametrize("classes", ["High Jump,high  jump", ["high_jump", "high jump"],
                                     ["long jump", "HIGH JUMP ", "high jump"]])
def test_names_that_are_one_prompt_are_a_duplicate(loaded, tmp_path, classes):
    with pytest.raises(StaleError, match="listed twice.*one prompt to CLIP's tokenizer: 'high jump'"):
        loaded.detect(np.zeros((10, 16), np.float32), classes, duration=5.0)


def test_a_class_that_is_not_a_string_is_named(loaded):
    with pytest.raises(StaleError, match="entry 2 must be a class name"):
        loaded.detect(np.zeros((10, 16), np.float32), ["high jump", None], duration=5.0)


def test_predict_cli_refuses_one_prompt_twice(tiny_run, tiny_dataset, tmp_path, capsys):
    refused(capsys, ["predict", tiny_run, "--out", tmp_path / "p.json", "--classes", "High Jump,high  jump",
                     "--all-videos"], "--classes", "'High Jump'", "listed twice", "entries 1 and 2",
            roots=[tmp_path, tiny_run, tiny_dataset])
