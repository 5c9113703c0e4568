"""``stale evaluate`` as a hostile user runs it: numbers must be finite and in float range, every
bad value is named, and ``--json-out`` never replaces an input or an existing file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bad_inputs import full_disk_after, leftover_temp, refused, run_cli, temp_files

GT = {"database": {
    "v1": {"subset": "validation", "annotations": [{"segment": [1.0, 4.0], "label": "jump"},
                                                   {"segment": [6.0, 9.0], "label": "run"}]},
    "v2": {"subset": "validation", "annotations": [{"segment": [2.0, 5.0], "label": "jump"}]}}}
PRED = {"results": {"v1": [{"segment": [1.0, 4.2], "label": "jump", "score": 0.9},
                           {"segment": [6.1, 9.0], "label": "run", "score": 0.7}],
                    "v2": [{"segment": [2.0, 5.0], "label": "jump", "score": 0.8}]}}


@pytest.fixture()
def files(tmp_path) -> tuple[Path, Path]:
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(GT))
    pred.write_text(json.dumps(PRED))
    return gt, pred


def pred_with(tmp_path, text: str) -> Path:
    """A results file whose first detection's score (or segment) is the raw JSON ``text``."""
    p = tmp_path / "bad.json"
    p.write_text('{"results": {"v1": [{"segment": [1.0, 4.0], "label": "jump", "score": %s}]}}' % text)
    return p


def test_json_out_onto_the_predictions(capsys, files, tmp_path):
    gt, pred = files
    refused(capsys, ["evaluate", gt, pred, "--json-out", pred, "--overwrite"], "--json-out", "is the input",
            roots=[tmp_path])


def test_json_out_onto_the_ground_truth(capsys, files, tmp_path):
    gt, pred = files
    refused(capsys, ["evaluate", gt, pred, "--json-out", gt], "--json-out", "is the input", roots=[tmp_path])


def test_json_out_through_a_symlink_to_an_input(capsys, files, tmp_path):
    gt, pred = files
    (tmp_path / "link.json").symlink_to(pred)
    refused(capsys, ["evaluate", gt, pred, "--json-out", tmp_path / "link.json", "--overwrite"], "is the input",
            roots=[tmp_path])


def test_existing_json_out_needs_overwrite(capsys, files, tmp_path):
    gt, pred = files
    (tmp_path / "m.json").write_text("my metrics")
    refused(capsys, ["evaluate", gt, pred, "--json-out", tmp_path / "m.json"], "file exists", "--overwrite",
            roots=[tmp_path])
    rc, _, err = run_cli(capsys, "evaluate", gt, pred, "--json-out", tmp_path / "m.json", "--overwrite")
    assert rc == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["average_mAP"] > 0.5


def test_json_out_under_a_regular_file(capsys, files, tmp_path):
    gt, pred = files
    refused(capsys, ["evaluate", gt, pred, "--json-out", pred / "m.json"], "regular file", roots=[tmp_path])


def test_json_out_is_a_directory(capsys, files, tmp_path):
    gt, pred = files
    refused(capsys, ["evaluate", gt, pred, "--json-out", tmp_path], "is a directory", roots=[tmp_path])


def test_json_out_onto_a_pipe_or_device(capsys, files, tmp_path):
    """An atomic write would replace the device node (e.g. /dev/null, as root) by a file."""
    import os

    gt, pred = files
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused(capsys, ["evaluate", gt, pred, "--json-out", fifo, "--overwrite"], "not a regular file",
            roots=[gt, pred])
    assert fifo.is_fifo()


def test_json_out_name_too_long(capsys, files, tmp_path):
    gt, pred = files
    refused(capsys, ["evaluate", gt, pred, "--json-out", tmp_path / ("m" * 300)], "file name too long",
            roots=[tmp_path])


def test_json_out_name_at_the_file_system_limit_is_written(capsys, files, tmp_path):
    """A 250-byte name fits; its temporary file (name + pid + random) must fit too."""
    gt, pred = files
    out = tmp_path / ("m" * 245 + ".json")
    rc, _, err = run_cli(capsys, "evaluate", gt, pred, "--json-out", out)
    assert rc == 0, err
    assert json.loads(out.read_text())["num_gt_instances"] == 3 and temp_files(tmp_path) == []


@pytest.mark.parametrize("raw, needles", [
    ("9" * 400, ["score", "out of float range", "400 digits"]),
    ("1e400", ["score", "finite number in float range", "inf"]),
    ("NaN", ["score", "finite", "nan"]),
    ("-Infinity", ["score", "finite"]),
    ('"0.5"', ["score", "expected a number", "'0.5'"]),
    ("true", ["score", "expected a number", "True"]),
    ("null", ["score", "expected a number", "None"]),
    ("[0.5]", ["score", "expected a number"]),
    ("9" * 5000, ["unreadable number"]),
])
def test_bad_scores_are_named(capsys, files, tmp_path, raw, needles):
    gt, _ = files
    bad = pred_with(tmp_path, raw)
    refused(capsys, ["evaluate", gt, bad], str(bad), *needles, roots=[tmp_path])


def test_huge_integer_in_a_ground_truth_segment(capsys, files, tmp_path):
    _, pred = files
    gt = tmp_path / "gt_big.json"
    gt.write_text('{"database": {"v1": {"subset": "validation", "annotations": '
                  '[{"segment": [%s, 2], "label": "jump"}]}}}' % ("1" * 400))
    refused(capsys, ["evaluate", gt, pred], str(gt), "video 'v1'", "segment[0]", "out of float range",
            roots=[tmp_path])


def test_bad_segment_is_named(capsys, files, tmp_path):
    gt, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": {"v2": [{"segment": [1.0], "label": "jump", "score": 0.5}]}}')
    refused(capsys, ["evaluate", gt, bad], "video 'v2'", "segment", "[start, end]", roots=[tmp_path])


def test_deep_nesting(capsys, files, tmp_path):
    gt, _ = files
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    refused(capsys, ["evaluate", gt, deep], str(deep), "nested too deeply", roots=[tmp_path])


def test_non_utf8_ground_truth(capsys, files, tmp_path):
    _, pred = files
    gt = tmp_path / "gt_latin1.json"
    gt.write_bytes('{"database": {"caf\xe9": {}}}'.encode("latin-1"))
    refused(capsys, ["evaluate", gt, pred], str(gt), "not a UTF-8", roots=[tmp_path])


def test_malformed_json_gives_line_and_column(capsys, files, tmp_path):
    gt, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": {\n  "v1": [,]\n}}')
    refused(capsys, ["evaluate", gt, bad], str(bad), "not valid JSON", "line 2", roots=[tmp_path])


def test_missing_predictions(capsys, files, tmp_path):
    gt, _ = files
    refused(capsys, ["evaluate", gt, tmp_path / "none.json"], "none.json", "not found", roots=[tmp_path])


def test_predictions_not_in_results_layout(capsys, files, tmp_path):
    gt, _ = files
    refused(capsys, ["evaluate", gt, gt], "'results' mapping", roots=[tmp_path])


def test_bad_tiou(capsys, files, tmp_path):
    gt, pred = files
    refused(capsys, ["evaluate", gt, pred, "--tiou", "0.5,1.5"], "--tiou", "[0, 1]", roots=[tmp_path])


def test_non_utf8_blocked_file(capsys, files, tmp_path):
    gt, pred = files
    blocked = tmp_path / "blocked.txt"
    blocked.write_bytes(b"\xff\xfev1\n")
    refused(capsys, ["evaluate", gt, pred, "--blocked", blocked], str(blocked), roots=[tmp_path])


def test_subset_without_ground_truth(capsys, files, tmp_path):
    gt, pred = files
    refused(capsys, ["evaluate", gt, pred, "--subset", "testing"], "no ground-truth instances", "'testing'",
            roots=[tmp_path])


def test_full_disk_keeps_the_old_metrics(capsys, files, tmp_path, monkeypatch):
    gt, pred = files
    (tmp_path / "m.json").write_text("old metrics")
    monkeypatch.setattr(Path, "write_bytes", full_disk_after(3))
    line = refused(capsys, ["evaluate", gt, pred, "--json-out", tmp_path / "m.json", "--overwrite"],
                   "m.json", "no space left", roots=[tmp_path])
    assert ".tmp" not in line and temp_files(tmp_path) == []


def test_leftover_temp_file_of_the_json_out_is_cleaned(capsys, files, tmp_path):
    gt, pred = files
    stale = leftover_temp(tmp_path, "m.json")
    rc, _, err = run_cli(capsys, "evaluate", gt, pred, "--json-out", tmp_path / "m.json")
    assert rc == 0, err
    assert not stale.exists() and temp_files(tmp_path) == []


def test_negative_prediction_starts_are_counted(capsys, files, tmp_path):
    gt, _ = files
    pred = tmp_path / "neg.json"
    res = json.loads(json.dumps(PRED))
    res["results"]["v1"][0]["segment"] = [-2.0, 4.2]
    res["results"]["v2"].append({"segment": [-0.5, 1.0], "label": "jump", "score": 0.1})
    pred.write_text(json.dumps(res))
    rc, out, err = run_cli(capsys, "evaluate", gt, pred, "--json-out", tmp_path / "m.json")
    assert rc == 0, err
    assert "4 predictions evaluated" in out and "2 starting before 0 s" in out
    assert "segments starting before 0 s" in err and "0 ground truth, 2 predictions" in err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["negative_starts"] == {"ground_truth": 0, "predictions": 2}
    # used as given: [-2, 4.2] vs [1, 4]: tIoU 3 / 6.2 < 0.5, so v1's jump is missed at 0.5
    want = {"ground_truth": 0, "predictions": 0}
    rc, out, _ = run_cli(capsys, "evaluate", gt, files[1], "--json-out", tmp_path / "m2.json")
    assert json.loads((tmp_path / "m2.json").read_text())["negative_starts"] == want
    assert metrics["per_class_ap"]["jump"][2] < 1.0 == json.loads((tmp_path / "m2.json").read_text())[
        "per_class_ap"]["jump"][2]
