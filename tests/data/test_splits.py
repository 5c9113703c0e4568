"""Zero-shot splits: the 40 shipped lists, validation errors, user files, random splits, the CLI."""

from __future__ import annotations

import pytest

from stale.cli import main
from stale.data import resources
from stale.data.annotations import load_annotations
from stale.data.splits import (ZeroShotSplit, load_split, random_split, read_split_files,
                               validate_split, write_split)
from stale.core.errors import StaleError


@pytest.fixture(scope="module")
def classes():
    return {ds: load_annotations(resources.annotations_path(ds)).classes() for ds in ("thumos14", "activitynet")}


@pytest.mark.parametrize("dataset, k", [("thumos14", 20), ("activitynet", 200)])
@pytest.mark.parametrize("setting", [75, 50])
def test_all_shipped_splits_validate(classes, dataset, k, setting):
    names = classes[dataset]
    assert len(names) == k
    n_unseen = k // 4 if setting == 75 else k // 2
    seen_sets = set()
    for i in range(10):
        split = load_split(dataset, setting, i)
        validate_split(split, names)
        assert len(split.unseen) == n_unseen and len(split.seen) == k - n_unseen
        seen_sets.add(frozenset(split.seen))
    assert len(seen_sets) == 10  # ten different splits


def test_dataset_and_setting_spellings():
    a = load_split("THUMOS14", "75/25", 3)
    assert a == load_split("thumos", 75, 3) and a.name == "thumos14-75_25-split_3"
    assert load_split("anet", "50", 0) == load_split("ActivityNet", "train_50_test_50", 0)
    first = resources.split_path("train_75_test_25", "THUMOS14", "train", 0).read_text().split("\n")[0]
    assert load_split("thumos14", 75, 0).seen[0] == first
    with pytest.raises(StaleError, match="unknown dataset"):
        load_split("kinetics", 75, 0)
    with pytest.raises(StaleError, match="setting"):
        load_split("thumos14", 60, 0)
    with pytest.raises(StaleError, match="0..9"):
        load_split("thumos14", 75, 10)


def test_validate_split_names_offender():
    known = ["Diving", "HighJump", "LongJump", "PoleVault"]
    validate_split(ZeroShotSplit(("Diving", "HighJump"), ("LongJump", "PoleVault")), known)
    with pytest.raises(StaleError, match="'Divng' is not a known class; did you mean 'Diving'"):
        validate_split(ZeroShotSplit(("Divng", "HighJump"), ("LongJump", "PoleVault")), known)
    with pytest.raises(StaleError, match="'HighJump' is both seen and unseen"):
        validate_split(ZeroShotSplit(("Diving", "HighJump"), ("HighJump", "LongJump", "PoleVault")), known)
    with pytest.raises(StaleError, match="'PoleVault' is neither seen nor unseen"):
        validate_split(ZeroShotSplit(("Diving", "HighJump"), ("LongJump",)), known)
    with pytest.raises(StaleError, match="no unseen"):
        validate_split(ZeroShotSplit(tuple(known), ()), known)


def test_read_split_files(tmp_path):
    (tmp_path / "seen.txt").write_text("# my split\nPlaying ten pins\r\n\nDiving\n")
    (tmp_path / "unseen.txt").write_text("HighJump\n")
    split = read_split_files(tmp_path / "seen.txt", tmp_path / "unseen.txt")
    assert split.seen == ("Playing ten pins", "Diving") and split.unseen == ("HighJump",)
    (tmp_path / "dup.txt").write_text("A\nA\n")
    with pytest.raises(StaleError, match="'A' is listed more than once"):
        read_split_files(tmp_path / "dup.txt", tmp_path / "unseen.txt")
    with pytest.raises(StaleError, match="not found"):
        read_split_files(tmp_path / "missing.txt", tmp_path / "unseen.txt")


def test_random_split(tmp_path):
    names = [f"c{i:02d}" for i in range(20)]
    a = random_split(names, 0.25, seed=0)
    assert a == random_split(list(reversed(names)), 0.25, seed=0)  # order of input is irrelevant
    assert len(a.unseen) == 5 and len(a.seen) == 15
    validate_split(a, names)
    draws = {random_split(names, 0.25, seed=s).unseen for s in range(20)}
    assert len(draws) > 15
    # over many seeds every class is drawn unseen about a quarter of the time
    counts = {n: 0 for n in names}
    for s in range(400):
        for n in random_split(names, 0.25, seed=s).unseen:
            counts[n] += 1
    assert all(60 <= c <= 140 for c in counts.values())
    assert len(random_split(names, 0.01, seed=1).unseen) == 1
    assert len(random_split(names, 0.99, seed=1).seen) == 1
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(StaleError, match="fraction"):
            random_split(names, bad, seed=0)
    with pytest.raises(StaleError, match="unique"):
        random_split(["a", "a", "b"], 0.5, seed=0)
    train, test = write_split(a, tmp_path / "out")
    assert read_split_files(train, test) == ZeroShotSplit(a.seen, a.unseen, "train.list+test.list")


# ----------------------------------------------------------------------------- CLI

def test_cli_show(capsys):
    assert main(["splits", "show", "thumos14", "75", "0"]) == 0
    out = capsys.readouterr().out
    split = load_split("thumos14", 75, 0)
    assert "seen (15):" in out and "unseen (5):" in out
    assert all(f"  {n}\n" in out for n in split.classes)
    assert out.index(split.unseen[0]) > out.index("unseen (5)")


def test_cli_validate(capsys, tmp_path):
    assert main(["splits", "validate", "thumos14", "50"]) == 0
    assert capsys.readouterr().out.count("ok thumos14-50_50") == 10
    ann = resources.annotations_path("thumos14")
    assert main(["splits", "validate", "anet", "75", "2", "--annotations",
                 str(resources.annotations_path("activitynet"))]) == 0
    (tmp_path / "s.list").write_text("Diving\n")
    (tmp_path / "u.list").write_text("HighJump\n")
    assert main(["splits", "validate", "--seen", str(tmp_path / "s.list"), "--unseen",
                 str(tmp_path / "u.list"), "--annotations", str(ann)]) == 2
    assert "neither seen nor unseen" in capsys.readouterr().err
    assert main(["splits", "validate", "thumos14", "75", "x"]) == 2


def test_cli_random(capsys, tmp_path):
    ann = resources.annotations_path("thumos14")
    assert main(["splits", "random", "--annotations", str(ann), "--unseen", "0.5", "--seed", "3",
                 "--out", str(tmp_path)]) == 0
    split = read_split_files(tmp_path / "train.list", tmp_path / "test.list")
    expected = random_split(load_annotations(ann).classes(), 0.5, 3)
    assert (split.seen, split.unseen) == (expected.seen, expected.unseen)
    assert len(split.unseen) == 10
    assert main(["splits", "random", "--annotations", str(tmp_path / "none.json"), "--out", str(tmp_path)]) == 2
