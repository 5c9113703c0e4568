"""``stale experiment`` as a hostile user runs it: a cell folder is only ever taken as the cell of
the same resolved configuration (its hash is in ``cell.json``); distinct variant names get
distinct folders; errors blame what the user wrote (the spec's variant, ``--splits``), and are
found before any data is generated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bad_inputs import refused, run_cli
from stale.experiments.cells import Cell, cell_identity, cell_state
from stale.experiments.spec import load_spec, spec_mapping

SPEC = {
    "name": "mini",
    "base": "demo",
    "overrides": ["train.epochs=1", "data.num_snippets=32", "model.masking.num_queries=4",
                  "model.temporal.num_layers=1", "train.val_fraction=0.2"],
    "datasets": {"aligned": {"synth": {"preset": "aligned", "max_videos_per_subset": 12}}},
    "settings": {"75/25": ["protocol.setting=75"]},
    "splits": [0],
    "variants": {"A": [], "B": ["model.masking.kind=none"], "control": {"control_of": "A"}},
    "reference": "A",
}


def _spec_file(tmp_path: Path, name="mini.yaml", **changes) -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump({**SPEC, **changes}))
    return p


def _finished_folder(tmp_path: Path, spec: dict, splits=(0,), extra=()) -> Path:
    """An experiment folder whose cells of ``spec`` are recorded as done (no training: only what
    the runner reads to decide whether a cell is finished)."""
    root = tmp_path / "exp"
    s = load_spec(spec)
    (root).mkdir()
    (root / "experiment.json").write_text(json.dumps({"format": "stale-experiment/1", "spec": spec_mapping(s),
                                                      "overrides": list(extra)}))
    for v in s.variants:
        for split in splits:
            cell = Cell(v.name, "aligned", "75/25", split, 0)
            folder = cell.folder(root)
            folder.mkdir(parents=True)
            (folder / "cell.json").write_text(json.dumps({
                "cell": cell.__dict__, "key": cell.key, "run_dir": str(folder), "status": "done",
                "config_hash": cell_identity(s, cell, list(extra)),
                "metrics": {"tiou": [0.5], "mAP": [0.1], "average_mAP": 0.1, "per_class_ap": {}}}))
    return root


def test_identity_decides_whether_a_cell_is_finished(tmp_path):
    root = _finished_folder(tmp_path, SPEC)
    s = load_spec(SPEC)
    a = Cell("A", "aligned", "75/25", 0, 0)
    assert cell_state(a.folder(root), cell_identity(s, a, [])) == "done"
    assert cell_state(a.folder(root), cell_identity(s, a, ["train.lr=0.001"])) == "other"
    assert cell_identity(s, a, ["train.device=cpu", "train.threads=1"]) == cell_identity(s, a, [])
    changed = load_spec({**SPEC, "variants": {**SPEC["variants"], "A": ["model.masking.num_layers=2"]}})
    assert cell_state(a.folder(root), cell_identity(changed, a, [])) == "other"
    assert cell_state(root / "nowhere", "x") == "new"


def test_a_changed_variant_definition_is_refused_before_any_work(tmp_path, capsys):
    root = _finished_folder(tmp_path, SPEC)
    spec = _spec_file(tmp_path, variants={**SPEC["variants"], "B": ["model.masking.kind=cnn"]})
    refused(capsys, ["experiment", spec, "--out", root], f"{root / 'cells' / 'B'}", "another configuration",
            roots=[root])
    assert not (root / "data").exists()


def test_a_changed_set_is_refused_before_any_work(tmp_path, capsys):
    root = _finished_folder(tmp_path, SPEC)
    refused(capsys, ["experiment", _spec_file(tmp_path), "--out", root, "--set", "train.lr=0.001"],
            "another configuration", roots=[root])


def test_other_splits_of_a_changed_variant_are_not_mixed_in(tmp_path, capsys):
    root = _finished_folder(tmp_path, SPEC, splits=(0,))
    spec = _spec_file(tmp_path, variants={**SPEC["variants"], "A": ["model.masking.num_layers=2"]})
    refused(capsys, ["experiment", spec, "--out", root, "--splits", "1", "--variants", "A"],
            "split_0_seed_0", "another configuration", roots=[root])


def test_variant_names_sharing_a_folder_are_refused(tmp_path, capsys):
    spec = _spec_file(tmp_path, variants={"A B": [], "A_B": ["model.masking.kind=none"]}, reference=None)
    refused(capsys, ["experiment", spec, "--out", tmp_path / "o"], "'A B' and 'A_B'", "cell folder 'A_B'",
            roots=[tmp_path])
    assert not (tmp_path / "o").exists()


def test_a_cell_folder_of_another_variant_name_is_not_reused(tmp_path, capsys):
    root = _finished_folder(tmp_path, {**SPEC, "variants": {"A B": []}, "reference": None})
    spec = _spec_file(tmp_path, variants={"A_B": []}, reference=None)
    refused(capsys, ["experiment", spec, "--out", root], "A_B", "another configuration", roots=[root])


def test_errors_blame_what_the_user_wrote(tmp_path, capsys):
    spec = _spec_file(tmp_path, variants={"A": [], "B": ["model.masking.kindd=none"]})
    refused(capsys, ["experiment", spec, "--out", tmp_path / "o"], "spec mini: variant 'B': model.masking.kindd=none",
            "kindd", roots=[tmp_path], absent=["--set"])
    refused(capsys, ["experiment", _spec_file(tmp_path), "--out", tmp_path / "o", "--splits", "0-99"],
            "--splits (split 10)", "protocol.split", roots=[tmp_path], absent=["--set"])
    refused(capsys, ["experiment", _spec_file(tmp_path), "--out", tmp_path / "o", "--variants", "NOPE"],
            "--variants: no variant 'NOPE'", "(has: A, B, control)", roots=[tmp_path])
    refused(capsys, ["experiment", _spec_file(tmp_path), "--out", tmp_path / "o", "--set", "model.x=1"],
            "--set model.x=1", roots=[tmp_path])
    assert not (tmp_path / "o").exists()


def test_variants_without_the_reference_pass_the_checks(tmp_path, monkeypatch):
    """--variants B of a spec whose reference is A: the specs the workers and summarize load are
    valid (checked before the data is generated), and the folder keeps A as its reference."""
    import stale.experiments.runner as runner

    calls = []
    monkeypatch.setattr(runner, "prepare_data", lambda spec, d: calls.append("data"))
    monkeypatch.setattr(runner, "launch", lambda *a, **k: calls.append("launch"))
    monkeypatch.setattr(runner, "summarize", lambda root: load_spec(json.loads(
        (Path(root) / "experiment.json").read_text())["spec"]))
    spec = runner.run_experiment(_spec_file(tmp_path), tmp_path / "o", variants="B")
    assert calls == ["data", "launch"] and spec.reference is None
    spec = runner.run_experiment(_spec_file(tmp_path), tmp_path / "o", variants="A")
    spec = runner.run_experiment(_spec_file(tmp_path), tmp_path / "o", variants="B")
    assert spec.reference == "A" and {v.name for v in spec.variants} == {"A", "B"}


def test_a_relative_out_records_absolute_cell_folders(tmp_path, monkeypatch):
    import stale.experiments.runner as runner

    seen = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "prepare_data", lambda spec, d: None)
    monkeypatch.setattr(runner, "launch", lambda spec_map, root, *a, **k: seen.append(root))
    monkeypatch.setattr(runner, "summarize", lambda root: root)
    assert runner.run_experiment(_spec_file(tmp_path), "rel/o", variants="A") == tmp_path / "rel" / "o"
    assert seen == [tmp_path / "rel" / "o"]


def test_summarize_names_a_done_cell_without_metrics(tmp_path, capsys):
    root = _finished_folder(tmp_path, SPEC)
    bad = Cell("B", "aligned", "75/25", 0, 0).folder(root) / "cell.json"
    rec = json.loads(bad.read_text())
    del rec["metrics"]
    bad.write_text(json.dumps(rec))
    rc, out, err = run_cli(capsys, "experiment", "summarize", root)
    assert rc == 0, err
    res = json.loads((root / "results.json").read_text())
    assert res["cells_done"] == 2 and [f["error"] for f in res["failed"]] == [
        f"{bad}: marked done but without numeric metrics (tiou, mAP, average_mAP)"]
    (root / "experiment.json").write_text(json.dumps({"format": "stale-experiment/1"}))
    refused(capsys, ["experiment", "summarize", root], "experiment.json", "no 'spec'", roots=[root])


def test_a_huge_seed_range_is_refused_at_once(tmp_path, capsys):
    refused(capsys, ["experiment", _spec_file(tmp_path), "--out", tmp_path / "o", "--seeds", "0-100000000"],
            "--seeds", "100000001 values", "at most 10000", roots=[tmp_path])


def test_list_takes_no_folder(tmp_path, capsys):
    refused(capsys, ["experiment", "list", tmp_path], "list: takes no folder", roots=[tmp_path])


def test_local_workers_are_started_to_die_with_the_experiment(tmp_path, monkeypatch):
    """`--jobs N` workers get die_with_parent (tested with a real kill -9 in
    tests/core/test_lifetime_and_locks.py) and this process's id."""
    import concurrent.futures
    import os

    from stale.core.lifetime import die_with_parent
    from stale.experiments import launch

    seen = {}

    class Pool:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, *a):
            raise AssertionError("no cell should run")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Pool)
    launch.launch({}, tmp_path, [], [], 2, "local", {})
    assert seen["initializer"] is die_with_parent and seen["initargs"] == (os.getpid(),)


def test_every_shipped_spec_maps_its_names_to_distinct_folders():
    from stale.experiments.cells import check_folder_names
    from stale.experiments.spec import list_specs

    for name in list_specs():
        check_folder_names(load_spec(name))


def test_a_benchmark_made_with_other_settings_is_not_reused(tmp_path, capsys):
    from stale.core.config import to_dict
    from stale.synth.presets import preset

    root = _finished_folder(tmp_path, SPEC)
    data = root / "data" / "aligned"
    data.mkdir(parents=True)
    (data / "synth_meta.json").write_text(json.dumps({"complete": True,
                                                      "config": to_dict(preset("aligned", 0, 40))}))
    refused(capsys, ["experiment", _spec_file(tmp_path), "--out", root], str(data), "other settings",
            "max_videos_per_subset", roots=[root])
    (data / "synth_meta.json").write_text(json.dumps({"complete": True,
                                                      "config": to_dict(preset("aligned", 0, 12))}))
    from stale.experiments.cells import check_data

    check_data(load_spec(SPEC), root / "data")   # the same settings: reused
