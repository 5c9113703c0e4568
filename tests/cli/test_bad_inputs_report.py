"""``stale report`` as a hostile user runs it: ``--overwrite`` replaces the command's own earlier
page, never one of its inputs; a folder that cannot be read whole still renders, with notes."""

from __future__ import annotations

import json

import pytest

from bad_inputs import refused, run_cli
from report_util import make_experiment_folder, make_run_folder


@pytest.mark.parametrize("victim", ["best.pt", "config.yaml", "metrics.jsonl"])
def test_out_onto_a_run_file_is_refused_even_with_overwrite(tmp_path, capsys, victim):
    run = make_run_folder(tmp_path / "run")
    (run / "best.pt").write_bytes(b"weights")
    refused(capsys, ["report", run, "--out", run / victim, "--overwrite"], f"--out {run / victim}",
            "one of the report's inputs", roots=[tmp_path])


def test_out_onto_an_experiment_or_detect_file_is_refused(tmp_path, capsys):
    exp = make_experiment_folder(tmp_path / "exp")
    refused(capsys, ["report", exp, "--out", exp / "experiment.json", "--overwrite"], "experiment.json",
            "inputs", roots=[tmp_path])
    cell = next((exp / "cells").rglob("predictions.json"))
    refused(capsys, ["report", exp, "--out", cell, "--overwrite"], str(cell), "inputs", roots=[tmp_path])
    det = tmp_path / "det"
    det.mkdir()
    (det / "detect.json").write_text(json.dumps({"videos": {}}))
    (det / "detections.json").write_text(json.dumps({"results": {}}))
    refused(capsys, ["report", det, "--out", det / "detections.json", "--overwrite"], "detections.json",
            "inputs", roots=[tmp_path])
    # through a symlink from outside the folder too
    (tmp_path / "link.html").symlink_to(det / "detections.json")
    refused(capsys, ["report", det, "--out", tmp_path / "link.html", "--overwrite"], "link.html", "inputs",
            roots=[det])


def test_own_page_is_still_replaced_in_place(tmp_path, capsys):
    run = make_run_folder(tmp_path / "run")
    for _ in range(2):
        rc, _, err = run_cli(capsys, "report", run)
        assert rc == 0, err
    rc, _, err = run_cli(capsys, "report", run, "--out", run / "report.html", "--overwrite")
    assert rc == 0, err


def test_non_numeric_loss_in_metrics_is_a_note_not_a_crash(tmp_path, capsys):
    run = make_run_folder(tmp_path / "run")
    (run / "metrics.jsonl").write_text(
        '{"epoch": 0, "train_total": "abc", "val_total": 1}\n{"epoch": 1, "train_total": 1.0, "val_total": "x"}\n'
        '{"epoch": 2, "train_total": 0.5, "val_total": 0.7}\n')
    rc, _, err = run_cli(capsys, "report", run, "--out", tmp_path / "r.html")
    assert rc == 0, err
    page = (tmp_path / "r.html").read_text()
    assert "1 record(s) without a numeric epoch and train_total skipped (first: line 1)" in page
    assert 'id="training"' in page


def test_a_demo_report_folder_protects_the_whole_demo(tmp_path, capsys):
    from report_util import make_demo_folder

    demo = make_demo_folder(tmp_path / "demo")
    (demo / "runs" / "stale").mkdir(parents=True)
    (demo / "runs" / "stale" / "best.pt").write_bytes(b"weights")
    for folder in (demo, demo / "report"):
        refused(capsys, ["report", folder, "--out", demo / "runs" / "stale" / "best.pt", "--overwrite"],
                "best.pt", "inputs", roots=[tmp_path])


def test_experiment_cells_recorded_relative_to_another_directory_are_found(tmp_path, capsys, monkeypatch):
    exp = make_experiment_folder(tmp_path / "exp")
    res = json.loads((exp / "results.json").read_text())
    for c in res["cells"]:   # as an old run with `--out exp` from another working directory left them
        c["run_dir"] = "exp/" + c["run_dir"].split("/exp/", 1)[1]
    (exp / "results.json").write_text(json.dumps(res))
    monkeypatch.chdir(tmp_path / "exp")    # where exp/cells/... does not exist
    rc, _, err = run_cli(capsys, "report", exp, "--out", tmp_path / "r.html")
    assert rc == 0, err
    page = (tmp_path / "r.html").read_text()
    assert 'id="per-class"' in page and "precision-recall" in page and "no predictions.json" not in page
    # a cell whose folder is gone: a note naming it, not a silent gap
    gone = next(c for c in res["cells"] if c["status"] == "done")
    for name in ("predictions.json", "ground_truth.json"):
        (tmp_path / gone["run_dir"] / name).unlink()
    rc, _, err = run_cli(capsys, "report", exp, "--out", tmp_path / "r2.html")
    assert rc == 0, err
    assert f"cell {gone['key']}: no predictions.json + ground_truth.json in its folder" in \
        (tmp_path / "r2.html").read_text()
