"""``stale synth`` as a hostile user runs it: it never writes into a folder holding files it did
not create (``synth_meta.json`` decides) or a dataset of other settings, unless ``--overwrite``;
bad knobs are one line before anything is generated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bad_inputs import leftover_temp, refused, run_cli, snapshot, temp_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = ["--layout", "thumos14", "--max-videos-per-subset", "2", "--dim", "8"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A small synthetic dataset written by ``stale synth``."""
    from stale.cli import main

    out = tmp_path_factory.mktemp("synth") / "ds"
    assert main(["synth", *SMALL, "--out", str(out), "--quiet"]) == 0
    return out


def test_folder_holding_a_dataset_is_refused(capsys, tiny_dataset):
    refused(capsys, ["synth", *SMALL, "--out", tiny_dataset], str(tiny_dataset), "did not write", "--overwrite",
            roots=[tiny_dataset])


def test_folder_with_one_foreign_file_is_refused(capsys, tmp_path):
    (tmp_path / "annotations.json").write_text('{"mine": 1}')
    refused(capsys, ["synth", *SMALL, "--out", tmp_path], "did not write", roots=[tmp_path])


def test_dataset_of_other_settings_is_refused(capsys, made, tmp_path):
    ds = Path(shutil.copytree(made, tmp_path / "ds"))
    refused(capsys, ["synth", *SMALL, "--seed", "7", "--out", ds], "other settings", "seed", roots=[tmp_path])


def test_out_under_a_regular_file(capsys, tmp_path):
    (tmp_path / "f").write_text("mine")
    refused(capsys, ["synth", *SMALL, "--out", tmp_path / "f" / "ds"], "regular file", roots=[tmp_path])


def test_out_is_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("mine")
    refused(capsys, ["synth", *SMALL, "--out", tmp_path / "f"], "is a file", roots=[tmp_path])


def test_out_name_too_long(capsys, tmp_path):
    refused(capsys, ["synth", *SMALL, "--out", tmp_path / ("d" * 300)], "file name too long", roots=[tmp_path])


@pytest.mark.parametrize("extra, needles", [
    (["--dim", "0"], ["dim", "0"]),
    (["--noise", "-1"], ["noise", "-1"]),
    (["--noise", "nan"], ["noise", "NaN"]),
    (["--max-videos-per-subset", "0"], ["max_videos_per_subset", "0"]),
    (["--subsets", "Nope"], ["'Nope'", "not in the annotation file"]),
    (["--set", "render.noisee=1"], ["unknown config key", "noisee"]),
    (["--set", "render.noise"], ["key.sub=value"]),
    (["--template", "no slot"], ["--template", "'{}'"]),
])
def test_bad_settings(capsys, tmp_path, extra, needles):
    refused(capsys, ["synth", *SMALL, *extra, "--out", tmp_path / "ds"], *needles, roots=[tmp_path])
    assert not (tmp_path / "ds").exists()


def test_rerun_with_the_same_settings_reproduces_and_cleans_temp_files(capsys, made, tmp_path):
    ds = Path(shutil.copytree(made, tmp_path / "ds"))
    stale = leftover_temp(ds / "features", "video_validation_0000051.npy")
    before = snapshot(ds)
    del before[str(stale)]
    rc, _, err = run_cli(capsys, "synth", *SMALL, "--out", ds)
    assert rc == 0, err
    assert snapshot(ds) == before and temp_files(ds) == []


def test_overwrite_writes_into_a_foreign_folder_and_keeps_unrelated_files(capsys, tmp_path):
    (tmp_path / "README.txt").write_text("mine")
    rc, _, err = run_cli(capsys, "synth", *SMALL, "--overwrite", "--out", tmp_path)
    assert rc == 0, err
    assert (tmp_path / "README.txt").read_text() == "mine"
    assert json.loads((tmp_path / "synth_meta.json").read_text())["complete"] is True
