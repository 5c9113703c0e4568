"""``stale text-embed`` as a hostile user runs it: outputs (``OUT.npy`` and ``OUT.classes.json``)
are checked before the tower loads and never replace an input or an existing file silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bad_inputs import full_disk_after, leftover_temp, refused, run_cli, temp_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A tiny seeded text tower saved as a weights file (building the offline tower is slow)."""
    from stale.text.tower import TEST_SPEC, build_random_tower
    from stale.text.weights import save_tower

    path = tmp_path_factory.mktemp("text_embed") / "tiny_tower.pt"
    save_tower(build_random_tower(TEST_SPEC, seed=3), path)
    return path


def embed(weights, *argv) -> list:
    """``stale text-embed`` with the tiny tower unless the case names its own ``--weights``."""
    return ["text-embed", *([] if "--weights" in argv else ["--weights", weights]), *argv]


def test_out_onto_the_class_file(capsys, cache, tmp_path):
    names = tmp_path / "classes.npy"   # an odd name, but the user's file
    names.write_text("long jump\nhigh jump\n")
    refused(capsys, embed(cache, "--classes-file", names, "--out", names, "--overwrite"), "is the input",
            roots=[tmp_path])


def test_class_list_json_onto_the_class_file(capsys, cache, tmp_path):
    names = tmp_path / "e.classes.json"
    names.write_text('["long jump", "high jump"]')
    refused(capsys, embed(cache, "--classes-file", names, "--out", tmp_path / "e.npy", "--overwrite"),
            "e.classes.json", "is the input", roots=[tmp_path])


def test_existing_output_needs_overwrite(capsys, cache, tmp_path):
    np.save(tmp_path / "e.npy", np.ones(3))
    refused(capsys, embed(cache, "--classes", "a,b", "--out", tmp_path / "e.npy"), "file exists", "--overwrite",
            roots=[tmp_path])
    rc, _, err = run_cli(capsys, *embed(cache, "--classes", "a,b", "--out", tmp_path / "e.npy", "--overwrite"))
    assert rc == 0, err
    assert np.load(tmp_path / "e.npy").shape[0] == 2
    assert json.loads((tmp_path / "e.classes.json").read_text())["classes"] == ["a", "b"]


def test_existing_class_list_needs_overwrite(capsys, cache, tmp_path):
    (tmp_path / "e.classes.json").write_text("mine")
    refused(capsys, embed(cache, "--classes", "a", "--out", tmp_path / "e.npy"), "e.classes.json", "file exists",
            roots=[tmp_path])


def test_out_is_a_directory(capsys, cache, tmp_path):
    (tmp_path / "d.npy").mkdir()
    refused(capsys, embed(cache, "--classes", "a", "--out", tmp_path / "d.npy"), "is a directory", roots=[tmp_path])


def test_out_under_a_regular_file(capsys, cache, tmp_path):
    (tmp_path / "f").write_text("mine")
    refused(capsys, embed(cache, "--classes", "a", "--out", tmp_path / "f" / "e.npy"), "regular file",
            roots=[tmp_path])


def test_out_name_too_long(capsys, cache, tmp_path):
    refused(capsys, embed(cache, "--classes", "a", "--out", tmp_path / ("e" * 300 + ".npy")),
            "file name too long", roots=[tmp_path])


def test_non_utf8_class_file(capsys, cache, tmp_path):
    f = tmp_path / "classes.txt"
    f.write_bytes("caf\xe9\n".encode("latin-1"))
    refused(capsys, embed(cache, "--classes-file", f, "--out", tmp_path / "e.npy"), str(f), "not a UTF-8",
            roots=[tmp_path])


def test_duplicated_class_in_a_file_is_named(capsys, cache, tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("long jump\nhigh jump\nlong jump\n")
    refused(capsys, embed(cache, "--classes-file", f, "--out", tmp_path / "e.npy"), str(f), "'long jump'",
            "entries 1 and 3", roots=[tmp_path])


def test_malformed_json_class_file(capsys, cache, tmp_path):
    f = tmp_path / "classes.json"
    f.write_text('["long jump", ')
    refused(capsys, embed(cache, "--classes-file", f, "--out", tmp_path / "e.npy"), str(f), "not valid JSON",
            roots=[tmp_path])


@pytest.mark.parametrize("extra, needles", [
    (["--device", "foo"], ["'foo'", "not a device"]),
    (["--template", "no slot"], ["--template", "exactly once"]),
    (["--template", "{} and {}"], ["--template", "exactly once"]),
])
def test_bad_arguments(capsys, cache, tmp_path, extra, needles):
    refused(capsys, embed(cache, "--classes", "a", *extra, "--out", tmp_path / "e.npy"), *needles,
            roots=[tmp_path])


def test_out_must_be_npy(capsys, cache, tmp_path):
    refused(capsys, embed(cache, "--classes", "a", "--out", tmp_path / "e.txt"), "must end with .npy",
            roots=[tmp_path])


def test_junk_weights_without_torch_advice(capsys, cache, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk" * 50)
    refused(capsys, embed(cache, "--classes", "a", "--weights", junk, "--out", tmp_path / "e.npy"), str(junk),
            "not a readable checkpoint", absent=["weights_only"], roots=[tmp_path])


def test_full_disk_keeps_the_old_class_list(capsys, cache, tmp_path, monkeypatch):
    (tmp_path / "e.classes.json").write_text("old")
    monkeypatch.setattr(Path, "write_bytes", full_disk_after(2))
    line = refused(capsys, embed(cache, "--classes", "a", "--out", tmp_path / "e.npy", "--overwrite"),
                   "e.classes.json", "no space left", roots=[tmp_path], new_files_ok=True)
    assert ".tmp" not in line and temp_files(tmp_path) == []


def test_leftover_temp_file_is_cleaned(capsys, cache, tmp_path):
    stale = leftover_temp(tmp_path, "e.npy")
    rc, _, err = run_cli(capsys, *embed(cache, "--classes", "a", "--out", tmp_path / "e.npy"))
    assert rc == 0, err
    assert not stale.exists() and temp_files(tmp_path) == []
