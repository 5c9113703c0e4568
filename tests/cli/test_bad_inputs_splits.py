"""``stale splits`` as a hostile user runs it: class files are UTF-8 with no name twice (named),
and ``splits random`` never replaces a list without ``--overwrite``."""

from __future__ import annotations

import pytest

from bad_inputs import leftover_temp, refused, run_cli, temp_files


@pytest.fixture()
def lists(tmp_path):
    seen, unseen = tmp_path / "seen.txt", tmp_path / "unseen.txt"
    seen.write_text("high jump\nlong jump\npole vault\nshot put\n")
    unseen.write_text("hammer throw\ndiscus throw\n")
    return seen, unseen


def validate(tiny_dataset, seen, unseen) -> list:
    return ["splits", "validate", "--seen", seen, "--unseen", unseen,
            "--annotations", tiny_dataset / "annotations.json"]


def test_valid_user_split_passes(capsys, tiny_dataset, lists):
    rc, out, err = run_cli(capsys, *validate(tiny_dataset, *lists))
    assert rc == 0, err
    assert "4 seen + 2 unseen = 6 classes" in out


def test_non_utf8_class_file(capsys, tiny_dataset, lists, tmp_path):
    seen, _ = lists
    seen.write_bytes("high jump\ncaf\xe9\n".encode("latin-1"))
    refused(capsys, validate(tiny_dataset, *lists), str(seen), "not a UTF-8", roots=[tmp_path])


def test_duplicated_class_is_named(capsys, tiny_dataset, lists, tmp_path):
    seen, _ = lists
    seen.write_text("high jump\nlong jump\nhigh jump\n")
    refused(capsys, validate(tiny_dataset, *lists), str(seen), "'high jump'", "more than once", roots=[tmp_path])


def test_class_in_both_lists(capsys, tiny_dataset, lists, tmp_path):
    seen, unseen = lists
    unseen.write_text("hammer throw\ndiscus throw\nshot put\n")
    refused(capsys, validate(tiny_dataset, *lists), "shot put", roots=[tmp_path])


def test_unknown_class(capsys, tiny_dataset, lists, tmp_path):
    _, unseen = lists
    unseen.write_text("hammer throw\ndiscuss throw\n")
    refused(capsys, validate(tiny_dataset, *lists), "discuss throw", roots=[tmp_path])


def test_seen_without_unseen(capsys, tiny_dataset, lists, tmp_path):
    seen, _ = lists
    refused(capsys, ["splits", "validate", "--seen", seen], "--seen and --unseen", roots=[tmp_path])


@pytest.mark.parametrize("argv, needles", [
    (["show", "thumos14", "75", "12"], ["0..9", "12"]),
    (["show", "ucf", "75", "0"], ["unknown dataset 'ucf'"]),
    (["show", "thumos14", "60", "0"], ["60"]),
    (["validate", "thumos14", "75", "x"], ["'x'"]),
])
def test_bad_standard_split(capsys, argv, needles):
    refused(capsys, ["splits", *argv], *needles)


def test_random_does_not_replace_lists(capsys, tiny_dataset, tmp_path):
    (tmp_path / "train.list").write_text("my seen classes\n")
    refused(capsys, ["splits", "random", "--annotations", tiny_dataset / "annotations.json", "--out", tmp_path],
            "train.list", "file exists", "--overwrite", roots=[tmp_path])


def test_random_overwrite_replaces_and_cleans_temp_files(capsys, tiny_dataset, tmp_path):
    (tmp_path / "train.list").write_text("my seen classes\n")
    stale = leftover_temp(tmp_path, "test.list")
    rc, _, err = run_cli(capsys, "splits", "random", "--annotations", tiny_dataset / "annotations.json",
                         "--unseen", "0.5", "--out", tmp_path, "--overwrite")
    assert rc == 0, err
    seen = (tmp_path / "train.list").read_text().split("\n")[:-1]
    unseen = (tmp_path / "test.list").read_text().split("\n")[:-1]
    assert len(seen) == len(unseen) == 3 and not set(seen) & set(unseen)
    assert not stale.exists() and temp_files(tmp_path) == []


def test_random_out_under_a_regular_file(capsys, tiny_dataset, tmp_path):
    (tmp_path / "f").write_text("mine")
    refused(capsys, ["splits", "random", "--annotations", tiny_dataset / "annotations.json",
                     "--out", tmp_path / "f" / "s"], "regular file", roots=[tmp_path])


def test_random_out_is_a_file(capsys, tiny_dataset, tmp_path):
    (tmp_path / "f").write_text("mine")
    refused(capsys, ["splits", "random", "--annotations", tiny_dataset / "annotations.json",
                     "--out", tmp_path / "f"], "is a file", roots=[tmp_path])


@pytest.mark.parametrize("fraction", ["1.5", "0", "nan", "-0.2"])
def test_random_bad_fraction(capsys, tiny_dataset, tmp_path, fraction):
    refused(capsys, ["splits", "random", "--annotations", tiny_dataset / "annotations.json",
                     "--unseen", fraction, "--out", tmp_path / "s"], "unseen fraction", roots=[tmp_path])


def test_random_missing_annotations(capsys, tmp_path):
    refused(capsys, ["splits", "random", "--annotations", tmp_path / "none.json", "--out", tmp_path / "s"],
            "none.json", roots=[tmp_path])
