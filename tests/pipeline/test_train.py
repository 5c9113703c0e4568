"""``run_training``: the run folder, model selection on held-out training videos, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import stale.pipeline.train as training
from stale.training.checkpoint import load_checkpoint
from stale.pipeline.config import load_run_config
from stale.core.errors import StaleError
from stale.pipeline.train import run_training

SEEN = ["high jump", "long jump", "pole vault", "shot put"]
UNSEEN = ["hammer throw", "discus throw"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(root, tiny_config, *extra):
    return load_run_config(tiny_config, [f"data.annotations={root / 'annotations.json'}",
                                         f"data.features.root={root / 'features'}", *extra])


@pytest.fixture(scope="module")
def zero_shot_run(tiny_dataset, tiny_config, tmp_path_factory):
    """A 4-epoch zero-shot run with a held-out share, recording every set of videos it loaded."""
    tmp = tmp_path_factory.mktemp("zs")
    (tmp / "seen.txt").write_text("\n".join(SEEN) + "\n")
    (tmp / "unseen.txt").write_text("\n".join(UNSEEN) + "\n")
    cfg = _cfg(tiny_dataset, tiny_config, "protocol.kind=zero_shot", f"protocol.seen_file={tmp / 'seen.txt'}",
               f"protocol.unseen_file={tmp / 'unseen.txt'}", "train.val_fraction=0.3", "train.epochs=4",
               "model.temporal.dropout=0.1")
    loaded = []
    real = training.make_dataset

    def recording(videos, store, cfg_, classes=None, **kw):
        loaded.append(([v.id for v in videos], list(classes or []), [v for v in videos]))
        return real(videos, store, cfg_, classes, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(training, "make_dataset", recording)
    try:
        last = run_training(cfg, tmp / "run")
    finally:
        mp.undo()
    lines = (tmp / "run" / "train.log").read_text().splitlines()
    return {"dir": tmp / "run", "loaded": loaded, "last": last, "lines": lines}


def test_run_folder_contents(zero_shot_run):
    d = zero_shot_run["dir"]
    assert sorted(p.name for p in d.iterdir()) == ["best.pt", "classes.json", "config.yaml",
                                                   "data_report.json", "inputs.json", "last.pt",
                                                   "metrics.jsonl", "selection.json", "steps.jsonl",
                                                   "train.log"]
    # the saved config is fully resolved, with absolute paths: the run works from anywhere
    assert Path(yaml.safe_load((d / "config.yaml").read_text())["data"]["annotations"]).is_absolute()
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert cfg["train"]["val_fraction"] == 0.3 and cfg["protocol"]["kind"] == "zero_shot"
    classes = json.loads((d / "classes.json").read_text())
    assert classes["train"] == SEEN and classes["test"] == UNSEEN
    assert classes["protocol"]["kind"] == "zero_shot"
    hist = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4]
    assert zero_shot_run["last"] == hist[-1]
    report = json.loads((d / "data_report.json").read_text())
    fit_ids, _, _ = zero_shot_run["loaded"][0]
    val_ids, _, _ = zero_shot_run["loaded"][1]
    assert report["videos"] == {"train": len(fit_ids), "heldout": len(val_ids), "selection": 0}
    assert report["missing_features"]["training videos"]["skipped"] == 0
    assert report["features"]["channels"] == 16 and report["features"]["nonfinite_values_replaced"] == 0
    assert report["labels"]["instances"] > 0
    assert any("4 training classes, 2 test classes" in ln for ln in zero_shot_run["lines"])


def test_model_selection_uses_only_seen_training_videos(zero_shot_run, tiny_dataset):
    raw = json.loads((tiny_dataset / "annotations.json").read_text())["database"]
    loaded = zero_shot_run["loaded"]
    assert len(loaded) == 2  # the fitting set and the held-out set; nothing else was loaded
    (fit_ids, fit_classes, _), (val_ids, val_classes, val_videos) = loaded
    assert fit_classes == val_classes == SEEN
    assert val_ids and not set(fit_ids) & set(val_ids)
    assert all(raw[v]["subset"] == "training" for v in fit_ids + val_ids)
    assert len(val_ids) == round(0.3 * (len(fit_ids) + len(val_ids)))
    # held-out videos carry only seen-class segments (unseen ones became background)
    assert {s.label for v in val_videos for s in v.segments} <= set(SEEN)
    ck = load_checkpoint(zero_shot_run["dir"] / "best.pt")
    assert ck["classes"]["train"] == SEEN and ck["classes"]["test"] == UNSEEN
    # best.pt is the epoch with the lowest held-out loss
    hist = [json.loads(ln) for ln in (zero_shot_run["dir"] / "metrics.jsonl").read_text().splitlines()]
    all_vals = [r["val_total"] for r in hist]
    assert ck["epoch"] == min(range(len(all_vals)), key=all_vals.__getitem__)
    assert ck["record"]["val_total"] == min(all_vals)


def test_existing_run_is_not_overwritten(zero_shot_run, tiny_dataset, tiny_config):
    d = zero_shot_run["dir"]
    before = (d / "last.pt").read_bytes()
    with pytest.raises(StaleError, match="already holds a run.*--resume"):
        run_training(_cfg(tiny_dataset, tiny_config), d)
    assert (d / "last.pt").read_bytes() == before


def test_resume_without_checkpoint_fails(tiny_dataset, tiny_config, tmp_path):
    with pytest.raises(StaleError, match="no checkpoint"):
        run_training(_cfg(tiny_dataset, tiny_config), tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()


def test_feature_dimension_mismatch_fails_before_training(tiny_dataset, tiny_config, tmp_path):
    cfg = _cfg(tiny_dataset, tiny_config, "model.input_dim=24", "data.features.dim=null")
    with pytest.raises(StaleError, match="has 16 channels but model.input_dim / data.features.dim is 24"):
        run_training(cfg, tmp_path / "r")
    assert not (tmp_path / "r" / "last.pt").exists()


def test_seeded_runs_repeat_exactly(tiny_dataset, tiny_config, tmp_path):
    cfg = lambda: _cfg(tiny_dataset, tiny_config, "train.epochs=2", "model.temporal.dropout=0.1")  # noqa: E731
    run_training(cfg(), tmp_path / "a")
    run_training(cfg(), tmp_path / "b")
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    c = _cfg(tiny_dataset, tiny_config, "train.epochs=2", "model.temporal.dropout=0.1", "train.seed=1")
    run_training(c, tmp_path / "c")
    other = load_checkpoint(tmp_path / "c")["model"]
    assert not all(torch.equal(a["model"][k], other[k]) for k in a["model"])


def test_pseudo_unseen_selection_never_touches_the_unseen_classes(tiny_dataset, tiny_config, tmp_path, caplog):
    (tmp_path / "seen.txt").write_text("\n".join(SEEN) + "\n")
    (tmp_path / "unseen.txt").write_text("\n".join(UNSEEN) + "\n")
    cfg = _cfg(tiny_dataset, tiny_config, "protocol.kind=zero_shot", f"protocol.seen_file={tmp_path / 'seen.txt'}",
               f"protocol.unseen_file={tmp_path / 'unseen.txt'}", "train.val_fraction=0.4", "train.epochs=5",
               "train.select=pseudo_unseen")
    with caplog.at_level("WARNING", logger="stale"):
        run_training(cfg, tmp_path / "run")
    d = tmp_path / "run"
    sel = json.loads((d / "selection.json").read_text())
    classes = json.loads((d / "classes.json").read_text())
    pseudo = sel["pseudo_unseen_classes"]
    assert pseudo and set(pseudo) < set(SEEN) and not set(pseudo) & set(UNSEEN)
    assert set(classes["train"]) == set(SEEN) - set(pseudo) and classes["test"] == UNSEEN
    hist = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
    scores = [r["sel_pseudo_unseen_mAP"] for r in hist]
    best = max(range(len(scores)), key=scores.__getitem__)
    assert sel["epoch"] == best + 1 == load_checkpoint(d / "best.pt")["epoch"] + 1
    # training never saw a pseudo-unseen segment: its videos' pseudo-unseen segments are background
    report = json.loads((d / "data_report.json").read_text())
    assert report["protocol"]["pseudo_unseen"] == pseudo and report["videos"]["selection"] > 0
    if sel["epoch"] == 1:
        assert "first fifth" in sel["warning"] and "first fifth" in caplog.text


@pytest.mark.parametrize("dataset,preset", [("activitynet", "activitynet"), ("thumos14", "thumos14"),
                                            ("mydata", "thumos14")])
def test_pseudo_unseen_selection_scores_at_the_datasets_tious(dataset, preset, tiny_dataset, tiny_config,
                                                              tmp_path, monkeypatch):
    import stale.evaluation as evaluation

    seen_tious = []
    real = evaluation.evaluate_detection

    def recording(*args, **kw):
        seen_tious.append(kw.get("tiou_thresholds"))
        return real(*args, **kw)

    monkeypatch.setattr(evaluation, "evaluate_detection", recording)
    (tmp_path / "seen.txt").write_text("\n".join(SEEN) + "\n")
    (tmp_path / "unseen.txt").write_text("\n".join(UNSEEN) + "\n")
    cfg = _cfg(tiny_dataset, tiny_config, "protocol.kind=zero_shot", f"protocol.seen_file={tmp_path / 'seen.txt'}",
               f"protocol.unseen_file={tmp_path / 'unseen.txt'}", "train.val_fraction=0.4", "train.epochs=1",
               "train.select=pseudo_unseen", f"data.dataset={dataset}")
    run_training(cfg, tmp_path / "run")
    assert seen_tious and set(seen_tious) == {preset}


def test_select_retrain_runs_on_resume_and_matches_an_uninterrupted_run(tiny_dataset, tiny_config, tmp_path,
                                                                       monkeypatch):
    (tmp_path / "seen.txt").write_text("\n".join(SEEN) + "\n")
    (tmp_path / "unseen.txt").write_text("\n".join(UNSEEN) + "\n")
    cfg = _cfg(tiny_dataset, tiny_config, "protocol.kind=zero_shot", f"protocol.seen_file={tmp_path / 'seen.txt'}",
               f"protocol.unseen_file={tmp_path / 'unseen.txt'}", "train.val_fraction=0.4", "train.epochs=2",
               "train.select=pseudo_unseen", "train.select_retrain=true")
    run_training(cfg, tmp_path / "whole")
    real = training._retrain

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_retrain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, tmp_path / "cut")
    assert not (tmp_path / "cut" / "selection.pt").exists()
    monkeypatch.setattr(training, "_retrain", real)
    run_training(cfg, tmp_path / "cut", resume=True)
    for run in ("whole", "cut"):
        assert (tmp_path / run / "selection.pt").is_file() and (tmp_path / run / "final").is_dir()
    a = load_checkpoint(tmp_path / "whole" / "best.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "best.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # resuming a finished run again retrains nothing more
    before = (tmp_path / "cut" / "best.pt").stat().st_mtime_ns
    run_training(cfg, tmp_path / "cut", resume=True)
    assert (tmp_path / "cut" / "best.pt").stat().st_mtime_ns == before


def test_select_retrain_is_refused_under_ddp_before_any_work(tiny_dataset, tiny_config, tmp_path, monkeypatch):
    from stale.training.distributed import DistInfo

    monkeypatch.setattr(training, "init_distributed", lambda device_type: DistInfo(rank=0, world_size=2))
    cfg = _cfg(tiny_dataset, tiny_config, "train.select=pseudo_unseen", "train.select_retrain=true")
    with pytest.raises(StaleError, match="select_retrain is not supported under torchrun"):
        run_training(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_feature_bridge_is_fitted_on_the_training_videos_and_travels_with_the_weights(tiny_dataset, tiny_config,
                                                                                         tmp_path):
    """``model.bridge.kind=ridge``: before training, the linear probe's ridge map is fitted on the
    training videos (held-out training videos choose its strength); it stays frozen, is saved in
    best.pt and last.pt, and a loaded run detects through it."""
    from stale.baselines.linear_probe import LinearProbeConfig, fit_linear_probe
    from stale.pipeline.assemble import assemble_training, make_dataset
    from stale.pipeline.detectors import text_tower
    from stale.pipeline.predict import load_run

    cfg = _cfg(tiny_dataset, tiny_config, "model.bridge.kind=ridge", "train.epochs=2", "train.val_fraction=0.25")
    run_training(cfg, tmp_path / "run")
    best = load_checkpoint(tmp_path / "run" / "best.pt")["model"]
    last = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    data = assemble_training(cfg, progress=False)
    probe = fit_linear_probe(make_dataset(data.fit_videos, data.store, cfg, data.classes),
                             make_dataset(data.val_videos, data.store, cfg, data.classes), data.classes,
                             text_tower(cfg), LinearProbeConfig(), cfg.train.seed)
    assert data.val_videos and int(best["bridge.fitted"]) == 1
    assert best["bridge.weight"].shape == (16, 24)                 # features (16) -> the tower's text space (24)
    torch.testing.assert_close(best["bridge.weight"], probe.weight)
    torch.testing.assert_close(best["bridge.mu"], probe.mu)
    torch.testing.assert_close(last["bridge.weight"], probe.weight)     # training never moved it
    run = load_run(tmp_path / "run", device="cpu")
    x = np.load(tiny_dataset / "features" / "vid030.npy")
    dets = run.detect(x, ["hammer throw", "discus throw"], duration=x.shape[0] * 0.5)
    assert dets and all(d["label"] in ("hammer throw", "discus throw") for d in dets)
