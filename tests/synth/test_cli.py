import json

import numpy as np

from stale.cli import main


def test_cli_small_subsample(tmp_path, capsys):
    out = tmp_path / "d"
    rc = main(["synth", "--layout", "thumos14", "--out", str(out), "--seed", "2", "--dim", "24",
               "--max-videos-per-subset", "1", "--noise", "2.0", "--set", "render.bg_drift=0.3"])
    assert rc == 0 and "wrote 2 videos" in capsys.readouterr().out
    meta = json.loads((out / "synth_meta.json").read_text())
    assert meta["config"]["render"]["noise"] == 2.0 and meta["config"]["render"]["bg_drift"] == 0.3
    for vid, info in meta["videos"].items():
        assert np.load(out / "features" / f"{vid}.npy").shape == (info["num_features"], 24)


def test_cli_errors(tmp_path, capsys):
    assert main(["synth", "--layout", "thumos14", "--out", str(tmp_path), "--set", "render.nois=1"]) == 2
    assert "nois" in capsys.readouterr().err
    assert main(["synth", "--layout", "thumos14", "--out", str(tmp_path), "--subsets", "Train"]) == 2


def test_cli_honest_preset_with_stats(tmp_path, capsys):
    out = tmp_path / "h"
    rc = main(["synth", "--preset", "clip-neutral", "--out", str(out), "--max-videos-per-subset", "10", "--stats"])
    assert rc == 0
    printed = capsys.readouterr().out
    stats = json.loads(printed[printed.index("{"):])
    zs = stats["zero_shot_75_25_split_0"]
    assert set(zs) >= {"nearest_text", "bg_auc", "probe", "probe_bg_auc", "chance"}
    assert 0.0 <= zs["nearest_text"] <= 1.0 and zs["chance"] == 0.2
    meta = json.loads((out / "synth_meta.json").read_text())
    assert meta["config"]["codes"]["reference"] == "vocabulary" and meta["config"]["render"]["bg_scenes"] == 8
