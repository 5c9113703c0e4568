"""``stale config show`` as a hostile user runs it: a broken YAML file is one line with its line
and column, a bad ``--set`` is blamed on the argument, not on the file."""

from __future__ import annotations

import os

import pytest

from bad_inputs import refused, run_cli


def test_invalid_yaml_gives_line_and_column(capsys, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  lr: [0.1,\n epochs: 3\n")
    refused(capsys, ["config", "show", cfg], str(cfg), "not valid YAML", "line 4, column 1", roots=[tmp_path])


def test_tab_indented_yaml(capsys, tmp_path):
    cfg = tmp_path / "tabs.yaml"
    cfg.write_text("train:\n\tlr: 0.1\n")
    refused(capsys, ["config", "show", cfg], str(cfg), "not valid YAML", "line 2", roots=[tmp_path])


def test_missing_config(capsys, tmp_path):
    refused(capsys, ["config", "show", tmp_path / "nope.yaml"], "nope.yaml", "not found", "stale config list")


def test_non_utf8_config(capsys, tmp_path):
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("data:\n  dataset: caf\xe9\n".encode("latin-1"))
    refused(capsys, ["config", "show", cfg], str(cfg), "not a UTF-8", roots=[tmp_path])


def test_top_level_not_a_mapping(capsys, tmp_path):
    cfg = tmp_path / "list.yaml"
    cfg.write_text("- 1\n- 2\n")
    refused(capsys, ["config", "show", cfg], str(cfg), "mapping", roots=[tmp_path])


def test_inheritance_loop(capsys, tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("base: b.yaml\n")
    b.write_text("base: a.yaml\n")
    refused(capsys, ["config", "show", a], "inheritance loops", roots=[tmp_path])


def test_missing_base(capsys, tmp_path):
    cfg = tmp_path / "child.yaml"
    cfg.write_text("base: no_such_base\n")
    refused(capsys, ["config", "show", cfg], "no_such_base", "not found", roots=[tmp_path])


def test_deeply_nested_yaml(capsys, tmp_path):
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("train: " + "[" * 600 + "]" * 600 + "\n")
    refused(capsys, ["config", "show", cfg], str(cfg), "nested too deeply", roots=[tmp_path])


def test_wrong_type_in_the_file_is_blamed_on_the_file(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("base: tiny\ntrain:\n  epochs: many\n")
    refused(capsys, ["config", "show", cfg], str(cfg), "train.epochs", "'many'", roots=[tmp_path])


@pytest.mark.parametrize("override, needles", [
    ("train.lrr=1", ["--set train.lrr=1", "unknown config key", "lrr"]),
    ("train.lr", ["--set 'train.lr'", "key.sub=value"]),
    ("train.lr=-0.1", ["--set train.lr=-0.1", "> 0"]),
    ("train.lr=.inf", ["--set train.lr=.inf", "finite"]),
    ("train.device=foo", ["--set train.device=foo", "not a device"]),
    ("train.batch_size=0", ["--set train.batch_size=0", ">= 1"]),
    ("train.epochs=1.5", ["--set train.epochs=1.5", "integer"]),
])
def test_bad_set_is_blamed_on_the_argument(capsys, override, needles):
    line = refused(capsys, ["config", "show", "tiny", "--set", override], *needles)
    assert "tiny.yaml" not in line


def test_a_folder_named_like_a_shipped_config_is_not_taken_for_it(capsys, tmp_path, monkeypatch):
    (tmp_path / "tiny").mkdir()   # e.g. a dataset folder called tiny next to the user
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, "config", "show", "tiny")
    assert rc == 0, err
    assert "stale-test" in out and os.getcwd() == str(tmp_path)


def test_a_folder_that_is_no_shipped_config(capsys, tmp_path):
    (tmp_path / "mine").mkdir()
    refused(capsys, ["config", "show", tmp_path / "mine"], "is a directory", roots=[tmp_path])


@pytest.mark.parametrize("setting, culprit", [("foo.bar=1", "--set foo.bar=1"), ("model.foo.x=1", "--set model.foo.x=1")])
def test_an_unknown_section_is_blamed_on_its_set(capsys, tmp_path, setting, culprit):
    refused(capsys, ["config", "show", "tiny", "--set", setting], culprit, "unknown config key", roots=[tmp_path])
