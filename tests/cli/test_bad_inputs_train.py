"""``stale train`` as a hostile user runs it: every bad input is one line and exit 2, nothing
the user had is touched, every data policy applied is counted in data_report.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bad_inputs import data_args, interrupted, leftover_temp, refused, run_cli, snapshot, temp_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def data_copy(tiny_dataset, tmp_path) -> Path:
    """A private copy of the tiny dataset, free to be damaged."""
    return Path(shutil.copytree(tiny_dataset, tmp_path / "data"))


def train_args(config, data: Path, out: Path, *extra) -> list:
    return ["train", config, *data_args(data), "--set", "train.epochs=1", "--threads", "1", *extra,
            "--out", out]


# ----------------------------------------------------------------------------- the run folder

def test_finished_run_without_last_pt_is_refused(capsys, tiny_config, tiny_dataset, tiny_run, tmp_path):
    run = tmp_path / "kept"
    run.mkdir()
    for name in ("best.pt", "metrics.jsonl", "config.yaml"):   # a finished run, last.pt deleted
        shutil.copy(tiny_run / name, run / name)
    refused(capsys, train_args(tiny_config, tiny_dataset, run), str(run), "already holds a run",
            "best.pt", "--overwrite", roots=[tmp_path, tiny_dataset])


def test_overwrite_moves_the_old_run_aside(capsys, tiny_config, tiny_dataset, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    rc, _, err = run_cli(capsys, *train_args(tiny_config, tiny_dataset, run, "--overwrite"))
    assert rc == 0, err
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1
    assert {p.relative_to(aside[0]): p.read_bytes() for p in aside[0].rglob("*") if p.is_file()} == before
    assert (run / "best.pt").is_file()


def test_resume_without_last_pt(capsys, tiny_config, tiny_dataset, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    refused(capsys, train_args(tiny_config, tiny_dataset, run, "--resume"), "--resume", "last.pt",
            roots=[tmp_path])


def test_resume_and_overwrite_contradict(capsys, tiny_config, tiny_dataset, tiny_run, tmp_path):
    refused(capsys, train_args(tiny_config, tiny_dataset, tiny_run, "--resume", "--overwrite"),
            "--resume and --overwrite", roots=[tiny_run])


def test_out_is_the_annotation_file(capsys, tiny_config, tiny_dataset):
    ann = tiny_dataset / "annotations.json"
    refused(capsys, train_args(tiny_config, tiny_dataset, ann), str(ann), "expected a folder",
            roots=[tiny_dataset])


def test_out_inside_the_feature_folder(capsys, tiny_config, tiny_dataset):
    out = tiny_dataset / "features" / "run"
    refused(capsys, train_args(tiny_config, tiny_dataset, out), str(out), "inside the input folder",
            roots=[tiny_dataset])


def test_out_under_a_regular_file(capsys, tiny_config, tiny_dataset, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "run"
    refused(capsys, train_args(tiny_config, tiny_dataset, out), str(out), "regular file",
            roots=[tmp_path])


def test_out_name_too_long(capsys, tiny_config, tiny_dataset, tmp_path):
    refused(capsys, train_args(tiny_config, tiny_dataset, tmp_path / ("r" * 300)), "file name too long",
            roots=[tmp_path])


def test_out_symlink_to_the_feature_folder(capsys, tiny_config, tiny_dataset, tmp_path):
    link = tmp_path / "run"
    link.symlink_to(tiny_dataset / "features", target_is_directory=True)
    refused(capsys, train_args(tiny_config, tiny_dataset, link), "inside the input folder",
            roots=[tiny_dataset])


# ----------------------------------------------------------------------------- values

@pytest.mark.parametrize("extra, needles", [
    (["--device", "foo"], ["--device foo:", "train.device", "'foo'", "not a device"]),
    (["--set", "train.lr=.inf"], ["--set train.lr=.inf", "finite"]),
    (["--set", "train.lr=-1"], ["--set train.lr=-1", "> 0"]),
    (["--set", "train.batch_size=0"], ["--set train.batch_size=0", ">= 1"]),
    (["--set", "train.batch_size=-1"], ["--set train.batch_size=-1"]),
    (["--set", "train.epochs=abc"], ["--set train.epochs=abc", "expected an integer"]),
    (["--set", "train.epochs"], ["--set 'train.epochs'", "key.sub=value"]),
    (["--set", "train.lrr=1"], ["--set train.lrr=1", "unknown config key", "lrr"]),
    (["--threads", "0"], ["--threads 0:", "train.threads=0", ">= 1"]),
])
def test_bad_values_are_blamed_on_the_argument(capsys, tiny_config, tiny_dataset, tmp_path, extra, needles):
    refused(capsys, train_args(tiny_config, tiny_dataset, tmp_path / "run", *extra), *needles,
            roots=[tmp_path, tiny_dataset])


def test_prompt_too_long_fails_before_anything_is_written(capsys, tiny_config, tiny_dataset, tmp_path):
    refused(capsys, train_args(tiny_config, tiny_dataset, tmp_path / "run", "--set", "text.context_length=200"),
            "tokens", "text.context_length", roots=[tmp_path, tiny_dataset])
    assert not (tmp_path / "run").exists()


def test_invalid_yaml_is_one_line_with_line_and_column(capsys, tiny_dataset, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("data:\n  dataset: custom\n  features: [1,\n train: 2\n")
    refused(capsys, train_args(cfg, tiny_dataset, tmp_path / "run"), str(cfg), "not valid YAML", "line ",
            "column", roots=[tmp_path])


def test_non_utf8_config(capsys, tiny_dataset, tmp_path):
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("data:\n  dataset: caf\xe9\n".encode("latin-1"))
    refused(capsys, train_args(cfg, tiny_dataset, tmp_path / "run"), str(cfg), "not a UTF-8",
            roots=[tmp_path])


def test_missing_annotation_file(capsys, tiny_config, tiny_dataset, tmp_path):
    args = ["train", tiny_config, "--set", f"data.annotations={tmp_path / 'none.json'}",
            "--set", f"data.features.root={tiny_dataset / 'features'}", "--out", tmp_path / "run"]
    refused(capsys, args, "none.json", "not found", roots=[tmp_path])


# ----------------------------------------------------------------------------- features

def test_odd_dimension_feature_file_is_named(capsys, tiny_config, data_copy, tmp_path):
    np.save(data_copy / "features" / "vid003.npy", np.zeros((40, 7), np.float32))
    refused(capsys, train_args(tiny_config, data_copy, tmp_path / "run"), "vid003.npy", "7 channels",
            roots=[tmp_path])


def test_junk_feature_file_is_named_without_pickle_advice(capsys, tiny_config, data_copy, tmp_path):
    (data_copy / "features" / "vid004.npy").write_bytes(b"garbage bytes")
    refused(capsys, train_args(tiny_config, data_copy, tmp_path / "run"), "vid004.npy", "not a readable",
            absent=["allow_pickle"], roots=[tmp_path])


def test_nonfinite_features_are_an_error_naming_the_file(capsys, tiny_config, data_copy, tmp_path):
    path = data_copy / "features" / "vid002.npy"
    x = np.load(path)
    x[3, 1] = np.nan
    np.save(path, x)
    refused(capsys, train_args(tiny_config, data_copy, tmp_path / "run"), "vid002.npy", "non-finite",
            roots=[tmp_path])


def test_every_data_policy_is_counted_in_data_report(capsys, tiny_config, data_copy, tmp_path):
    """missing_features=skip, nonfinite=zero and a negative segment start, in one run."""
    ann_path = data_copy / "annotations.json"
    ann = json.loads(ann_path.read_text())
    seg = ann["database"]["vid000"]["annotations"][0]["segment"]
    seg[0] = -2.5
    ann_path.write_text(json.dumps(ann))
    (data_copy / "features" / "vid001.npy").unlink()
    x = np.load(data_copy / "features" / "vid002.npy")
    x[0, :2] = [np.inf, np.nan]
    np.save(data_copy / "features" / "vid002.npy", x)
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, *train_args(tiny_config, data_copy, out, "--set", "data.missing_features=skip",
                                             "--set", "data.features.nonfinite=zero"))
    assert rc == 0, err
    report = json.loads((out / "data_report.json").read_text())
    assert report["annotations"]["negative_starts_clipped"] == 1
    assert report["missing_features"]["training videos"]["skipped"] == 1
    assert report["missing_features"]["training videos"]["examples"] == ["vid001"]
    assert report["features"]["nonfinite_videos"] == 1
    assert report["features"]["nonfinite_values_replaced"] == 2
    assert report["features"]["nonfinite_policy"] == "zero"


def test_divergence_on_huge_features_names_the_file_and_saves_no_model(capsys, tiny_config, data_copy, tmp_path):
    path = data_copy / "features" / "vid005.npy"
    np.save(path, (np.load(path) * 1e37).astype(np.float32))
    out = tmp_path / "run"
    refused(capsys, train_args(tiny_config, data_copy, out), "diverged", "vid005.npy",
            roots=[data_copy], new_files_ok=True)
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()
    assert json.loads((out / "data_report.json").read_text())["features"]["max_abs_file"].endswith("vid005.npy")


# ----------------------------------------------------------------------------- environment

def test_full_disk_while_saving_a_checkpoint(capsys, tiny_config, tiny_dataset, tmp_path, monkeypatch):
    def full(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    line = refused(capsys, train_args(tiny_config, tiny_dataset, out), "no space left on the device",
                   str(out), roots=[tiny_dataset], new_files_ok=True)
    assert ".tmp" not in line
    assert temp_files(tmp_path) == []
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_interrupt_during_resume_keeps_the_checkpoint(capsys, tiny_config, tiny_dataset, tiny_run, tmp_path,
                                                      monkeypatch):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    stale = leftover_temp(run, "last.pt")   # from a `kill -9` during an earlier write

    def ctrl_c(obj, f, *a, **k):
        f.write(b"PK")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", ctrl_c)
    before = snapshot(run)
    del before[str(stale)]
    interrupted(capsys, ["train", tiny_config, *data_args(tiny_dataset), "--set", "train.epochs=2",
                         "--threads", "1", "--resume", "--out", run], roots=[tiny_dataset])
    after = snapshot(run)
    assert after[str(run / "last.pt")] == before[str(run / "last.pt")]
    assert after[str(run / "best.pt")] == before[str(run / "best.pt")]
    assert temp_files(run) == []   # the dead writer's file was cleaned, ours removed


def test_a_second_train_into_one_folder_is_refused(capsys, tiny_config, tiny_dataset, tmp_path):
    """A second process that passed its checks while the first got ready finds the folder locked
    (or, once the first is done, its run files): it writes nothing."""
    import os

    from stale.core.locks import folder_lock

    out = tmp_path / "run"
    out.mkdir()
    with folder_lock(out, "stale train"):
        refused(capsys, train_args(tiny_config, tiny_dataset, out), f"another stale train (process {os.getpid()})",
                roots=[tmp_path, tiny_dataset])


def test_annotation_classes_that_are_one_prompt_fail_before_anything_is_written(capsys, tiny_config, tiny_dataset,
                                                                                tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    ann = json.loads((data / "annotations.json").read_text())
    first = next(v for v in ann["database"].values() if v["subset"] == "training" and v["annotations"])
    label = first["annotations"][0]["label"]
    first["annotations"][0]["label"] = label.title()            # "high jump" -> "High Jump"
    (data / "annotations.json").write_text(json.dumps(ann))
    refused(capsys, train_args(tiny_config, data, tmp_path / "run"), str(data / "annotations.json"),
            "one prompt to CLIP's tokenizer", repr(label),
            roots=[tmp_path])
    assert not (tmp_path / "run").exists()
