"""``stale demo`` as a hostile user runs it: every config is validated before the benchmark is
written, and it never writes into a folder it did not make."""

from __future__ import annotations

import json

import pytest

from bad_inputs import refused


@pytest.mark.parametrize("extra, needles", [
    (["--set", "train.epochz=1"], ["--set train.epochz=1", "unknown config key", "epochz"]),
    (["--set", "train.lr=-1"], ["--set train.lr=-1", "> 0"]),
    (["--set", "model.masking.kind=magic"], ["--set model.masking.kind=magic", "'magic'"]),
    (["--max-videos-per-subset", "0"], ["--max-videos-per-subset", "0"]),
    (["--threads", "0"], ["--threads", "0"]),
])
def test_bad_settings_fail_before_anything_is_written(capsys, tmp_path, extra, needles):
    refused(capsys, ["demo", "--out", tmp_path / "demo", *extra], *needles, roots=[tmp_path])
    assert not (tmp_path / "demo").exists()


def test_foreign_folder_is_refused(capsys, tiny_dataset):
    refused(capsys, ["demo", "--out", tiny_dataset], str(tiny_dataset), "did not write", roots=[tiny_dataset])


def test_out_under_a_regular_file(capsys, tmp_path):
    (tmp_path / "f").write_text("mine")
    refused(capsys, ["demo", "--out", tmp_path / "f" / "demo"], "regular file", roots=[tmp_path])


def test_out_is_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("mine")
    refused(capsys, ["demo", "--out", tmp_path / "f"], "is a file", roots=[tmp_path])


def test_benchmark_of_other_settings_is_refused(capsys, tmp_path):
    data = tmp_path / "demo" / "data"
    data.mkdir(parents=True)
    (data / "synth_meta.json").write_text(json.dumps(
        {"generator": "stale.synth", "complete": True, "seed": 5, "config": {"max_videos_per_subset": None}}))
    refused(capsys, ["demo", "--out", tmp_path / "demo"], "other settings", roots=[tmp_path])


def test_a_benchmark_too_small_for_the_evaluation_fails_before_training(capsys, tmp_path, monkeypatch):
    import stale.pipeline.demo as demo

    def no_training(*a, **k):
        raise AssertionError("trained although the evaluation cannot run")

    monkeypatch.setattr(demo, "_train", no_training)
    refused(capsys, ["demo", "--out", tmp_path / "demo", "--max-videos-per-subset", "4", "--threads", "1"],
            "--max-videos-per-subset 4", "1 unseen class(es)", "at least 2", roots=[tmp_path], new_files_ok=True)
    assert not (tmp_path / "demo" / "runs").exists()
