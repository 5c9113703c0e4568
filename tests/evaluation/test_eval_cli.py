"""`stale evaluate` end to end: table, JSON output, warnings, exit codes."""

from __future__ import annotations

import json

from stale.cli import main


def write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_cli_table_and_json(tmp_path, capsys):
    gt = write(tmp_path / "gt.json", {"database": {
        "video_test_1": {"subset": "Test", "annotations": [
            {"segment": [0, 10], "label": "Diving"}, {"segment": [20, 30], "label": "Diving"}]},
        "video_test_2": {"subset": "Test", "annotations": [{"segment": [5, 6], "label": "Shot"}]},
        "video_test_3": {"subset": "Test", "annotations": [{"segment": [0, 1], "label": "Shot"}]},
        "video_validation_1": {"subset": "Validation", "annotations": [
            {"segment": [0, 1], "label": "Other"}]}}})
    pred = write(tmp_path / "pred.json", {"results": {
        "video_test_1": [{"label": "Diving", "score": 0.9, "segment": [0, 10]},
                         {"label": "Diving", "score": 0.8, "segment": [0, 9]},
                         {"label": "Diving", "score": 0.7, "segment": [21, 30]},
                         {"label": "Other", "score": 0.9, "segment": [0, 1]}],
        "video_test_2": [{"label": "Shot", "score": 0.5, "segment": [5, 6]}],
        "video_test_3": [{"label": "Shot", "score": 0.5, "segment": [0, 1]}]}})
    blocked = tmp_path / "blocked.txt"
    blocked.write_text("video_test_3\n")
    out = tmp_path / "res" / "out.json"
    rc = main(["evaluate", gt, pred, "--subset", "test", "--tiou", "0.5,0.95",
               "--blocked", str(blocked), "--json-out", str(out), "--per-class"])
    cap = capsys.readouterr()
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["tiou"] == [0.5, 0.95]
    # Diving: the hand-computed case (5/6, 1/2); Shot: one perfect match (video 3 blocked)
    assert data["per_class_ap"] == {"Diving": [0.5 + 0.5 * (2 / 3), 0.5], "Shot": [1.0, 1.0]}
    assert data["mAP"] == [(0.5 + 0.5 * (2 / 3) + 1.0) / 2, 0.75]
    assert data["average_mAP"] == sum(data["mAP"]) / 2
    assert data["ignored_predictions"] == 1 and data["blocked_gt_videos"] == 1
    assert "ignored 1 predictions" in cap.err
    assert "1 ignored (label not a GT class)" in cap.out
    lines = cap.out.splitlines()
    row = {ln.split()[0]: ln.split()[1:] for ln in lines if ln.strip()}
    assert row["mAP"][1:] == ["91.67", "75.00", "83.33"]
    assert row["Diving"] == ["83.33", "50.00", "66.67"]


def test_cli_bad_input_exit_2(tmp_path, capsys):
    gt = write(tmp_path / "gt.json", {"database": {"a": {"subset": "validation",
                                                          "annotations": []}}})
    pred = write(tmp_path / "pred.json", {"results": {}})
    assert main(["evaluate", gt, pred]) == 2
    assert "no ground-truth instances in subset 'validation'" in capsys.readouterr().err
    notjson = tmp_path / "x.json"
    notjson.write_text("nope")
    assert main(["evaluate", str(notjson), pred]) == 2
    assert "x.json: not valid JSON" in capsys.readouterr().err
    assert main(["evaluate", gt, pred, "--tiou", "0.5,2"]) == 2
