"""Inference: loading a run, predicting, and the explicitly labelled external-score fusion."""

from __future__ import annotations

import json

import pytest
import torch

from stale.training.checkpoint import load_checkpoint, save_checkpoint
from stale.pipeline.config import load_run_config
from stale.data.annotations import load_annotations
from stale.core.errors import StaleError
from stale.pipeline.assemble import feature_store, make_dataset
from stale.pipeline.predict import detect_dataset, fuse_video_scores, load_run, run_prediction
from stale.pipeline.train import run_training

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_dir(tiny_dataset, tiny_config, tmp_path_factory):
    cfg = load_run_config(tiny_config, [f"data.annotations={tiny_dataset / 'annotations.json'}",
                                        f"data.features.root={tiny_dataset / 'features'}", "train.epochs=3"])
    out = tmp_path_factory.mktemp("inf") / "run"
    run_training(cfg, out)
    return out


def _results():
    return {"v1": [{"segment": [1.0, 2.0], "label": "x", "score": 0.8},
                   {"segment": [5.0, 9.0], "label": "y", "score": 0.5}],
            "v2": [{"segment": [0.0, 3.0], "label": "x", "score": 0.9}]}


def test_fuse_relabels_with_top_classes(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"v1": {"a": 0.1, "b": 0.7, "c": 0.4}}))
    fused, missing = fuse_video_scores(_results(), tmp_path / "s.json", top=2)
    assert missing == 1 and fused["v2"] == _results()["v2"]  # no scores: left as it was
    got = [(d["segment"], d["label"], round(d["score"], 6)) for d in fused["v1"]]
    expect = sorted([([1.0, 2.0], "b", 0.56), ([1.0, 2.0], "c", 0.32),
                     ([5.0, 9.0], "b", 0.35), ([5.0, 9.0], "c", 0.2)], key=lambda t: -t[2])
    assert got == expect
    one, _ = fuse_video_scores(_results(), tmp_path / "s.json", top=1)
    assert [d["label"] for d in one["v1"]] == ["b", "b"]


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_fuse_rejects_bad_score_files(tmp_path, content):
    (tmp_path / "s.json").write_text(content)
    with pytest.raises(StaleError, match="s.json"):
        fuse_video_scores(_results(), tmp_path / "s.json")
    with pytest.raises(StaleError, match="nope.json"):
        fuse_video_scores(_results(), tmp_path / "nope.json")


def test_prediction_output_marks_external_data(run_dir, tiny_dataset, tmp_path, caplog):
    run = load_run(run_dir, CPU)
    assert run.checkpoint.endswith("best.pt") and len(run.classes["test"]) == 6
    ann = load_annotations(tiny_dataset / "annotations.json")
    lines = caplog.messages
    plain = run_prediction(run, tmp_path / "p.json", subset="validation")
    on_disk = json.loads((tmp_path / "p.json").read_text())
    assert on_disk["external_data"] == {"used": False} and plain["external_data"] == {"used": False}
    assert on_disk["classes"] == run.classes["test"]
    # the precision that ran is recorded (auto on a CPU without bf16 units, as the tests simulate)
    assert on_disk["precision"] == {"precision": "float32", "requested": "auto", "reason": "STALE_NATIVE_BF16=0"}
    val_ids = {v.id for v in ann.subset("validation")}
    assert set(on_disk["results"]) == val_ids
    assert not any("WARNING" in ln for ln in lines)

    top = {vid: {"high jump": 0.9, "pole vault": 0.3, "discus throw": 0.1} for vid in val_ids}
    (tmp_path / "scores.json").write_text(json.dumps(top))
    caplog.clear()
    with caplog.at_level("WARNING", logger="stale"):
        run_prediction(run, tmp_path / "f.json", subset="validation", fuse_scores=str(tmp_path / "scores.json"))
    lines = caplog.messages
    fused = json.loads((tmp_path / "f.json").read_text())
    assert fused["external_data"]["used"] is True and "NOT a zero-shot" in fused["external_data"]["details"]
    assert any("WARNING" in ln for ln in lines)
    assert sum(len(d) for d in fused["results"].values()) > 0
    for vid, dets in fused["results"].items():
        assert {d["label"] for d in dets} == ({"high jump", "pole vault"} if on_disk["results"][vid] else set())
        base = sorted(d["score"] for d in on_disk["results"][vid])
        hj = sorted(d["score"] for d in dets if d["label"] == "high jump")
        assert hj == pytest.approx([0.9 * s for s in base])


def test_arbitrary_class_names_and_gt(run_dir, tiny_dataset, tmp_path):
    run = load_run(run_dir, CPU)
    names = ["juggling balls", "a cat jumping"]
    # names without ground truth: an error unless every video is asked for
    with pytest.raises(StaleError, match="'juggling balls' has no ground truth.*--all-videos"):
        run_prediction(run, tmp_path / "p.json", subset="validation", classes=names)
    assert not (tmp_path / "p.json").exists()
    out = run_prediction(run, tmp_path / "p.json", subset="validation", classes=names, all_videos=True,
                         gt_out=str(tmp_path / "g.json"))
    labels = {d["label"] for dets in out["results"].values() for d in dets}
    assert labels == set(names) and out["classes"] == names
    assert len(out["results"]) == 12  # every video of the subset
    gt = json.loads((tmp_path / "g.json").read_text())["database"]
    assert len(gt) == 12 and not any(v["annotations"] for v in gt.values())
    # classes that exist restrict the videos to those containing them (zero-shot protocol)
    out2 = run_prediction(run, tmp_path / "q.json", subset="validation", classes=["pole vault"],
                          gt_out=str(tmp_path / "g2.json"))
    gt = json.loads((tmp_path / "g2.json").read_text())["database"]
    assert set(out2["results"]) == set(gt) and gt
    assert {a["label"] for v in gt.values() for a in v["annotations"]} == {"pole vault"}
    # the ground truth holds exactly the classes asked for, never more
    out3 = run_prediction(run, tmp_path / "r.json", subset="validation", classes=["pole vault", "high jump"],
                          gt_out=str(tmp_path / "g3.json"))
    gt3 = json.loads((tmp_path / "g3.json").read_text())["database"]
    assert {a["label"] for v in gt3.values() for a in v["annotations"]} <= {"pole vault", "high jump"}
    assert out3["classes"] == ["pole vault", "high jump"]
    with pytest.raises(StaleError, match="no subset 'testing'"):
        run_prediction(run, tmp_path / "d.json", subset="testing")


def test_batching_does_not_change_predictions(run_dir, tiny_dataset):
    run = load_run(run_dir, CPU)
    ann = load_annotations(tiny_dataset / "annotations.json")
    videos = list(ann.subset("validation"))
    ds = make_dataset(videos, feature_store(run.cfg, str(tiny_dataset / "features")), run.cfg)
    names = run.classes["test"]
    a = detect_dataset(run.detector, ds, names, 32, CPU)
    b = detect_dataset(run.detector, ds, names, 5, CPU)
    assert a.keys() == b.keys() == {v.id for v in videos}
    for vid in a:
        assert [d["label"] for d in a[vid]] == [d["label"] for d in b[vid]]
        assert [d["score"] for d in a[vid]] == pytest.approx([d["score"] for d in b[vid]], rel=1e-4)
        for d in a[vid]:
            assert 0 <= d["segment"][0] <= d["segment"][1] <= ann.videos[vid].duration + 1e-6


def test_overrides_and_mismatched_weights(run_dir, tmp_path):
    run = load_run(run_dir, CPU, ["inference.top_k=3"])
    assert run.cfg.inference.top_k == 3
    ck = load_checkpoint(run_dir / "last.pt")
    ck["config"]["model"]["width"] = 48
    ck.pop("path")
    save_checkpoint(tmp_path / "bad.pt", ck)
    with pytest.raises(StaleError, match="bad.pt: weights do not fit"):
        load_run(tmp_path / "bad.pt", CPU)


def test_ground_truth_mask_runs_predict(tiny_dataset, tiny_config, tmp_path, run_dir):
    """The GT-mask ablation (trained with GT masks) and GT masks at prediction for a run trained
    with its own masks both predict (the ground-truth foreground is passed to the model)."""
    cfg = load_run_config(tiny_config, [f"data.annotations={tiny_dataset / 'annotations.json'}",
                                        f"data.features.root={tiny_dataset / 'features'}", "train.epochs=2",
                                        "model.masking.kind=gt"])
    run_training(cfg, tmp_path / "gt")
    run = load_run(tmp_path / "gt", CPU)
    assert run.detector.needs_targets
    out = run_prediction(run, tmp_path / "p.json", subset="validation")
    assert sum(len(v) for v in out["results"].values()) > 0
    forced = load_run(run_dir, CPU, ["inference.mask_source=ground_truth"])
    assert forced.detector.needs_targets and not load_run(run_dir, CPU).detector.needs_targets
    out = run_prediction(forced, tmp_path / "q.json", subset="validation")
    assert sum(len(v) for v in out["results"].values()) > 0


def test_bf16_precision_runs_a_bf16_twin_and_stays_close_to_fp32(run_dir, tiny_dataset, monkeypatch):
    """``inference.precision=bf16`` runs the network's bf16 twin (bf16 weights and activations,
    no autocast: slower than float32 on the CPU) and gives nearly the fp32 detections (scores
    within bf16's ~1e-2); ``fp32`` never builds the twin."""
    ann = load_annotations(tiny_dataset / "annotations.json")
    videos = list(ann.subset("validation"))
    seen = []
    real = torch.autocast

    def spy(*a, **k):
        seen.append(bool(k.get("enabled", True)))
        return real(*a, **k)

    runs = {}
    for precision in ("fp32", "bf16"):
        run = load_run(run_dir, CPU, overrides=[f"inference.precision={precision}"])
        ds = make_dataset(videos, feature_store(run.cfg, str(tiny_dataset / "features")), run.cfg)
        seen.clear()
        monkeypatch.setattr(torch, "autocast", spy)
        runs[precision] = detect_dataset(run.detector, ds, run.classes["test"], 32, CPU)
        monkeypatch.setattr(torch, "autocast", real)
        assert not any(seen)
        assert (run.detector._twin is not None) == (precision == "bf16")
        assert run.detector.precision(CPU).name == ("bf16" if precision == "bf16" else "float32")
    a, b = runs["fp32"], runs["bf16"]
    assert a.keys() == b.keys()
    # a candidate right at theta_c may appear in one precision only: compare where both detect
    both = [v for v in a if a[v] and b[v]]
    assert len(both) >= 0.8 * max(sum(bool(a[v]) for v in a), 1) and both
    top_a = [a[v][0]["score"] for v in both]
    top_b = [b[v][0]["score"] for v in both]
    assert top_b == pytest.approx(top_a, rel=5e-2, abs=1e-2)
    assert top_a != top_b   # it really ran in another precision
