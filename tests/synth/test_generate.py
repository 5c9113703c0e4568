import hashlib
import json

import numpy as np
import pytest

from stale.data.annotations import load_annotations
from stale.core.errors import StaleError
from stale.synth import SynthConfig, SynthDataset


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory, embed):
    out = tmp_path_factory.mktemp("thumos")
    ds = SynthDataset(SynthConfig(layout="thumos14", dim=32, max_videos_per_subset=2, seed=5), embed)
    return ds, ds.write(out), out


def test_thumos_files_parse_with_real_reader(written):
    ds, meta, out = written
    raw = json.loads((out / "annotations.json").read_text())
    assert set(raw) == {"version", "database"} and len(raw["database"]) == 4
    for vid, e in raw["database"].items():
        assert e["subset"] in ("Validation", "Test") and e["fps"] > 0
        for a in e["annotations"]:
            assert set(a) == {"label", "segment", "segment(frames)", "label_id"}
            assert ds.classes[a["label_id"]] == a["label"]
    anns = load_annotations(out / "annotations.json")
    assert sorted(v.id for v in anns) == sorted(raw["database"])
    assert set(anns.subsets) == {"validation", "test"}
    for v in anns:
        x = np.load(out / "features" / f"{v.id}.npy")
        assert x.dtype == np.float32 and x.shape == (meta["videos"][v.id]["num_features"], 32)
        assert x.shape[0] == (int(np.floor(v.duration * raw["database"][v.id]["fps"] + 1e-6)) - 16) // 4 + 1
    assert meta["feature_dim"] == 32 and meta["stride"] == 4 and meta["clip_frames"] == 16
    assert meta["classes"] == ds.classes and meta["seed"] == 5 and meta["generator_version"]
    assert json.loads((out / "synth_meta.json").read_text()) == meta


def test_activitynet_layout(tmp_path, embed):
    ds = SynthDataset(SynthConfig(layout="activitynet", dim=16, max_videos_per_subset=2), embed)
    ds.write(tmp_path)
    raw = json.loads((tmp_path / "annotations.json").read_text())
    assert {"version", "taxonomy", "database"} <= set(raw)
    anns = load_annotations(tmp_path / "annotations.json")
    assert set(anns.subsets) == {"training", "validation"} and len(anns) == 4
    for v in anns:
        x = np.load(tmp_path / "features" / f"v_{v.id}.npy")
        assert x.shape == (ds.layout.num_features(ds.videos[[u.id for u in ds.videos].index(v.id)]), 16)


def test_deterministic_bytes_and_seed_dependence(tmp_path, embed, written):
    _, _, out = written
    SynthDataset(SynthConfig(layout="thumos14", dim=32, max_videos_per_subset=2, seed=5), embed).write(tmp_path / "a")
    assert _digest(tmp_path / "a") == _digest(out)
    other = SynthDataset(SynthConfig(layout="thumos14", dim=32, max_videos_per_subset=2, seed=6), embed)
    v = other.videos[0]
    same_video = SynthDataset(SynthConfig(layout="thumos14", dim=32, seed=5), embed)
    assert not np.allclose(other.render(v).features, same_video.render(v).features)


def test_video_features_independent_of_subsample(embed, written):
    ds, _, out = written
    full = SynthDataset(SynthConfig(layout="thumos14", dim=32, seed=5, max_videos_per_subset=50), embed)
    v = ds.videos[0]
    assert np.array_equal(full.render(v).features, np.load(out / "features" / f"{v.id}.npy"))


def test_bad_config(embed):
    with pytest.raises(StaleError, match="dim"):
        SynthDataset(SynthConfig(dim=1), embed)
    with pytest.raises(StaleError, match="class embeddings"):
        SynthDataset(SynthConfig(), np.ones((3, 8)))
