"""Input validation: every malformed entry is a StaleError naming file, video and field."""

from __future__ import annotations

import json

import pytest

from stale.core.errors import StaleError
from stale.evaluation import evaluate_detection, evaluate_files, load_blocked, load_json_file
from stale.evaluation.inputs import parse_predictions

GT = {"database": {"a": {"subset": "validation",
                         "annotations": [{"segment": [0, 10], "label": "x"}]}}}


def det(**kw):
    d = {"label": "x", "score": 0.5, "segment": [0, 10]}
    d.update(kw)
    return d


@pytest.mark.parametrize("bad, field", [
    (det(segment=["1.5", 10]), r"detection \[1\]\.segment\[0\]: expected a number"),
    (det(segment=[0, 1, 2]), r"detection \[1\]\.segment: expected \[start, end\]"),
    (det(segment=5), r"detection \[1\]\.segment: expected \[start, end\]"),
    (det(score=float("nan")), r"detection \[1\]\.score: must be a finite number"),
    (det(score=True), r"detection \[1\]\.score: expected a number"),
    (det(score="0.9"), r"detection \[1\]\.score: expected a number"),
    (det(segment=[0, True]), r"detection \[1\]\.segment\[1\]: expected a number"),
    ({"label": "x", "segment": [0, 1]}, r"detection \[1\]: field 'score' missing"),
    (det(label=3), r"detection \[1\]\.label: expected a class-name string"),
    ("oops", r"detection \[1\]: expected an object"),
])
def test_bad_prediction_entry_names_file_video_field(bad, field):
    pred = {"results": {"a": [det()], "vid7": [det(), bad]}}
    with pytest.raises(StaleError, match=rf"preds\.json: video 'vid7': {field}"):
        evaluate_detection(GT, pred, "validation", "0.5", pred_source="preds.json")


def test_unhashable_or_non_string_label_on_fast_path():
    # well-typed scores/segments take the fast path; the label check must still fire
    for label in (["x"], 7, None):
        pred = {"results": {"a": [det(), det(label=label)]}}
        with pytest.raises(StaleError,
                           match=r"p\.json: video 'a': detection \[1\]\.label: expected a class"):
            evaluate_detection(GT, pred, "validation", "0.5", pred_source="p.json")


@pytest.mark.parametrize("gt, msg", [
    ({"db": {}}, r"g\.json: expected a JSON object with a 'database'"),
    ({"database": {"a": {"annotations": []}}}, r"g\.json: video 'a': field 'subset'"),
    ({"database": {"a": {"subset": "validation"}}}, r"g\.json: video 'a': field 'annotations'"),
    ({"database": {"a": {"subset": "validation", "annotations": [{"segment": [0, "x"],
                                                                "label": "x"}]}}},
     r"g\.json: video 'a': annotations\[0\]\.segment\[1\]: expected a number"),
    ({"database": {"a": {"subset": "validation", "annotations": [{"segment": [0, 1]}]}}},
     r"g\.json: video 'a': annotations\[0\]\.label"),
])
def test_bad_ground_truth(gt, msg):
    with pytest.raises(StaleError, match=msg):
        evaluate_detection(gt, {"results": {}}, "validation", "0.5", gt_source="g.json")


def test_bad_results_container():
    with pytest.raises(StaleError, match=r"p: expected a JSON object with a 'results'"):
        evaluate_detection(GT, [], "validation", "0.5", pred_source="p")
    with pytest.raises(StaleError, match=r"p: video 'a': expected a list of detections"):
        evaluate_detection(GT, {"results": {"a": {}}}, "validation", "0.5", pred_source="p")


def test_fast_and_slow_parsers_agree():
    import numpy as np
    dets = [det(score=float(i) / 7, segment=[i, i + 2.5]) for i in range(20)]
    fast = parse_predictions({"results": {"a": dets[:12], "b": dets[12:]}})
    # a numpy float forces the per-entry parser; values must be identical
    slow = parse_predictions({"results": {"a": dets[:12], "b": dets[12:-1] + [
        det(score=np.float64(19 / 7), segment=(19, 21.5))]}})
    assert np.array_equal(fast.scores, slow.scores) and np.array_equal(fast.segments, slow.segments)
    assert fast.video.tolist() == slow.video.tolist() == [0] * 12 + [1] * 8


def test_load_json_and_blocked_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StaleError, match=r"bad\.json: not valid JSON \(line 1"):
        load_json_file(bad)
    with pytest.raises(StaleError, match="missing.json: file not found"):
        load_json_file(tmp_path / "missing.json")
    (tmp_path / "b.json").write_text(json.dumps(["a", "b"]))
    (tmp_path / "b2.json").write_text(json.dumps({"validation": ["a"], "training": ["c"]}))
    (tmp_path / "b.txt").write_text("a\n\n# comment\n b \n")
    assert load_blocked(tmp_path / "b.json") == ["a", "b"]
    assert load_blocked(tmp_path / "b2.json") == ["a", "c"]
    assert load_blocked(tmp_path / "b.txt") == ["a", "b"]
    (tmp_path / "b3.json").write_text(json.dumps({"validation": [1]}))
    with pytest.raises(StaleError, match="b3.json: entry 'validation' must be a list"):
        load_blocked(tmp_path / "b3.json")


def test_evaluate_files_names_the_file(tmp_path):
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(GT))
    p.write_text(json.dumps({"results": {"a": [det(score=None)]}}))
    with pytest.raises(StaleError, match=r"pred\.json: video 'a': detection \[0\]\.score"):
        evaluate_files(g, p, "validation", "0.5")


def test_fast_json_path_reads_the_same_values_as_the_standard_library(tmp_path):
    """orjson (the fast path) and json give identical objects, floats bit for bit."""
    import numpy as np

    rng = np.random.default_rng(0)
    res = {f"v{i}": [{"label": f"c{j}", "score": float(rng.random()), "segment": [float(a), float(a + b)]}
                     for j, (a, b) in enumerate(rng.random((20, 2)) * 100)] for i in range(30)}
    res["v0"][0]["score"] = 1e-320          # subnormal
    res["v0"][1]["segment"] = [0, 7]       # integers stay integers
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"results": res}, separators=(",", ":")))
    assert load_json_file(path) == json.loads(path.read_text())
