"""``stale predict`` as a hostile user runs it: outputs are checked before any work, every bad
input is one line and exit 2, and no input (the model, the annotations) is ever overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import stale.pipeline.predict as predict_module
from bad_inputs import full_disk_after, interrupted, leftover_temp, refused, run_cli, temp_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def predict_args(run: Path, data: Path, *extra) -> list:
    return ["predict", run, "--annotations", data / "annotations.json", "--features", data / "features",
            "--device", "cpu", *extra]


@pytest.fixture()
def no_detection(monkeypatch):
    """Detection must not start: the refusal has to come from the checks before the work."""
    def boom(*a, **k):
        raise AssertionError("detection started before the inputs were checked")

    monkeypatch.setattr(predict_module, "detect_dataset", boom)


# ----------------------------------------------------------------------------- outputs

def test_out_onto_the_model_it_loads(capsys, tiny_run, tiny_dataset, no_detection):
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tiny_run / "best.pt", "--overwrite"),
            "best.pt", "is the input", roots=[tiny_run, tiny_dataset])


def test_gt_out_onto_the_resumable_checkpoint(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json", "--gt-out",
                                 tiny_run / "last.pt", "--overwrite"),
            "--gt-out", "last.pt", "is the input", roots=[tiny_run, tmp_path])


def test_out_and_gt_out_the_same_file(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    x = tmp_path / "x.json"
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", x, "--gt-out", x),
            "--out and --gt-out are the same path", roots=[tmp_path, tiny_run])


def test_gt_out_onto_the_annotations(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    ann = tiny_dataset / "annotations.json"
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json", "--gt-out", ann,
                                 "--overwrite"),
            "--gt-out", "is the input", roots=[tiny_dataset, tmp_path])


def test_out_inside_the_feature_folder(capsys, tiny_run, tiny_dataset, no_detection):
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tiny_dataset / "features" / "p.json"),
            "inside the input folder", roots=[tiny_dataset])


def test_existing_out_without_overwrite(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    (tmp_path / "p.json").write_text('{"mine": true}')
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json"), "file exists",
            "--overwrite", roots=[tmp_path])


def test_out_is_a_directory(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path), "is a directory", roots=[tmp_path])


def test_out_under_a_regular_file(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    (tmp_path / "f").write_text("mine")
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "f" / "p.json"),
            "regular file", roots=[tmp_path])


def test_out_name_too_long(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / ("p" * 300 + ".json")),
            "file name too long", roots=[tmp_path])


# ----------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("extra, needles", [
    (["--batch-size", "-1"], ["--batch-size", "-1"]),
    (["--batch-size", "0"], ["--batch-size", "0"]),
    (["--device", "foo"], ["'foo'", "not a device"]),
    (["--threads", "-2"], ["--threads"]),
    (["--classes", "high jump,high jump"], ["'high jump'", "listed twice"]),
    (["--classes", " , "], ["no class names"]),
    (["--set", "model.width=64"], ["--set model.width=64", "cannot change"]),
    (["--set", "inference.top_k=0"], ["--set inference.top_k=0", "top_k=0"]),
    (["--set", "inference.topk=3"], ["--set inference.topk=3", "unknown config key"]),
    (["--subset", "nope"], ["no subset 'nope'"]),
])
def test_bad_arguments(capsys, tiny_run, tiny_dataset, tmp_path, no_detection, extra, needles):
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json", *extra), *needles,
            roots=[tmp_path, tiny_run])


def test_non_utf8_class_file(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    f = tmp_path / "classes.txt"
    f.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json", "--classes", f"@{f}"),
            str(f), "not a UTF-8", roots=[tmp_path])


def test_duplicated_class_in_a_file_is_named(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    f = tmp_path / "classes.txt"
    f.write_text("high jump\nlong jump\nhigh jump\n")
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json", "--classes", f"@{f}"),
            str(f), "'high jump'", "entries 1 and 3", roots=[tmp_path])


def test_unknown_class_with_gt_out_is_an_error(capsys, tiny_run, tiny_dataset, tmp_path, no_detection):
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json", "--gt-out",
                                 tmp_path / "g.json", "--classes", "high jump,nope"),
            "'nope'", "no ground truth", roots=[tmp_path])


def test_gt_out_holds_exactly_the_requested_classes(capsys, tiny_run, tiny_dataset, tmp_path):
    rc, _, err = run_cli(capsys, *predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json", "--gt-out",
                                               tmp_path / "g.json", "--classes", "high jump,nope", "--all-videos"))
    assert rc == 0, err
    gt = json.loads((tmp_path / "g.json").read_text())
    labels = {a["label"] for v in gt["database"].values() for a in v["annotations"]}
    assert labels == {"high jump"}
    assert json.loads((tmp_path / "p.json").read_text())["classes"] == ["high jump", "nope"]


def test_junk_checkpoint_without_torch_advice(capsys, tiny_dataset, tmp_path):
    junk = tmp_path / "model.pt"
    junk.write_bytes(b"not a checkpoint" * 20)
    refused(capsys, predict_args(junk, tiny_dataset, "--out", tmp_path / "p.json"), str(junk),
            "not a readable", absent=["weights_only"], roots=[tmp_path])


def test_missing_run_folder(capsys, tiny_dataset, tmp_path):
    refused(capsys, predict_args(tmp_path / "norun", tiny_dataset, "--out", tmp_path / "p.json"),
            "norun", "not found", roots=[tmp_path])


@pytest.mark.parametrize("scores, needles", [
    ('{"vid012": {"high jump": "high"}}', ["vid012", "'high jump'", "finite number", "'high'"]),
    ('{"vid012": {"high jump": true}}', ["vid012", "finite number", "True"]),
    ('{"vid012": {"high jump": ' + "9" * 400 + "}}", ["out of float range"]),
    ('{"vid012": [0.5]}', ["vid012", "expected an object"]),
    ('{"vid012": {"high jump": 0.5', ["not valid JSON"]),
])
def test_fused_scores_are_checked_before_detection(capsys, tiny_run, tiny_dataset, tmp_path, no_detection,
                                                   scores, needles):
    f = tmp_path / "scores.json"
    f.write_text(scores)
    refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json",
                                 "--fuse-video-scores", f), str(f), *needles, roots=[tmp_path])


def test_junk_feature_file_is_named(capsys, tiny_run, tiny_dataset, tmp_path):
    data = Path(shutil.copytree(tiny_dataset, tmp_path / "data"))
    (data / "features" / "vid030.npy").write_bytes(b"junk")
    refused(capsys, predict_args(tiny_run, data, "--out", tmp_path / "p.json"), "vid030.npy",
            absent=["allow_pickle"], roots=[tmp_path])


# ----------------------------------------------------------------------------- environment

def test_full_disk_keeps_the_old_predictions(capsys, tiny_run, tiny_dataset, tmp_path, monkeypatch):
    out = tmp_path / "p.json"
    out.write_text('{"results": {}, "mine": true}')
    monkeypatch.setattr(Path, "write_bytes", full_disk_after(7))
    line = refused(capsys, predict_args(tiny_run, tiny_dataset, "--out", out, "--overwrite"),
                   str(out), "no space left", roots=[tmp_path])
    assert ".tmp" not in line and temp_files(tmp_path) == []


def test_interrupt_during_detection_writes_nothing(capsys, tiny_run, tiny_dataset, tmp_path, monkeypatch):
    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_module, "detect_dataset", ctrl_c)
    (tmp_path / "p.json").write_text("mine")
    interrupted(capsys, predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json", "--overwrite"),
                roots=[tmp_path, tiny_run])
    assert (tmp_path / "p.json").read_text() == "mine"


def test_leftover_temp_files_of_the_output_are_cleaned(capsys, tiny_run, tiny_dataset, tmp_path):
    stale = leftover_temp(tmp_path, "p.json")
    other = leftover_temp(tmp_path, "someone_elses.json")   # not ours to clean
    rc, _, err = run_cli(capsys, *predict_args(tiny_run, tiny_dataset, "--out", tmp_path / "p.json"))
    assert rc == 0, err
    assert not stale.exists() and other.exists()
    assert np.isfinite([d["score"] for v in json.loads((tmp_path / "p.json").read_text())["results"].values()
                        for d in v]).all()
