"""The experiment runner: a 2-split, 2-variant spec end to end through the CLI, resume,
failed cells, aggregation checked against the cells' own metrics, and the launchers."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stale.core.errors import StaleError
from stale.experiments.cells import cells_of, select_datasets
from stale.experiments.spec import list_specs, load_spec, parse_range

REPO = Path(__file__).resolve().parents[2]

SPEC = {
    "name": "mini",
    "title": "mini experiment",
    "base": "demo",
    "overrides": ["train.epochs=2", "data.num_snippets=32", "model.masking.num_queries=4",
                  "model.temporal.num_layers=1", "train.val_fraction=0.2", "inference.top_k=10"],
    "datasets": {"aligned": {"synth": {"preset": "aligned", "max_videos_per_subset": 40}}},
    "settings": {"75/25": ["protocol.setting=75"]},
    "splits": [0, 1],
    "variants": {"STALE": [], "control": {"control_of": "STALE"}},
    "paper": {"STALE": {"75/25": "TH14 23.8"}},
}


def _cli(*args, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "stale", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exp")
    spec = tmp / "mini.yaml"
    spec.write_text(yaml.safe_dump(dict(SPEC, reference="STALE")))
    out = tmp / "out"
    proc = _cli("experiment", spec, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return spec, out, proc


def test_every_cell_is_a_run_folder_with_its_evaluation(finished):
    _, out, proc = finished
    res = json.loads((out / "results.json").read_text())
    assert res["cells_expected"] == res["cells_done"] == 4 and not res["failed"]
    for rec in res["cells"]:
        folder = Path(rec["run_dir"])
        for name in ("predictions.json", "ground_truth.json", "metrics.json", "cell.json"):
            assert (folder / name).is_file(), (folder, name)
        if rec["cell"]["variant"] == "STALE":
            assert (folder / "best.pt").is_file() and (folder / "config.yaml").is_file()
            cfg = yaml.safe_load((folder / "config.yaml").read_text())
            assert cfg["protocol"]["split"] == rec["cell"]["split"] and cfg["train"]["epochs"] == 2
        else:   # the control reuses the STALE run of its cell and trains nothing
            assert not (folder / "best.pt").exists() and rec["permuted_names"]
        gt = json.loads((folder / "ground_truth.json").read_text())["database"]
        labels = {a["label"] for v in gt.values() for a in v["annotations"]}
        assert labels <= set(rec["classes"])
    assert "| STALE |" in proc.stdout and (out / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_is_the_mean_and_sample_std_of_the_cells(finished):
    _, out, _ = finished
    res = json.loads((out / "results.json").read_text())
    for variant in ("STALE", "control"):
        cells = [json.loads(Path(r["run_dir"], "metrics.json").read_text()) for r in res["cells"]
                 if r["cell"]["variant"] == variant]
        node = res["summary"][variant]["aligned"]["75/25"]
        avgs = [c["average_mAP"] for c in cells]
        assert node["n"] == 2
        assert node["average_mean"] == pytest.approx(statistics.mean(avgs))
        assert node["average_std"] == pytest.approx(statistics.stdev(avgs))
        for t in range(5):
            assert node["mean"][t] == pytest.approx(statistics.mean(c["mAP"][t] for c in cells))
    md = (out / "results.md").read_text()
    assert "## aligned, 75/25" in md and "TH14 23.8" in md and " ± " in md
    assert "Splits: **dev** (0-2)" in md          # the finished fixture runs splits 0-1


def test_curves_png_draws_the_trained_cells_training_curves(finished, monkeypatch):
    """curves.png: per (dataset, setting) and trained variant, the mean ± std over its cells of
    each epoch's metrics (the control trains nothing and has no curve)."""
    import numpy as np

    from stale.experiments import summary as summary_mod
    from stale.viz import plots

    _, out, _ = finished
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "curves.png" in (out / "results.md").read_text()
    drawn = {}
    monkeypatch.setattr(plots, "plot_curve_bands", lambda panels, keys, path, title="": drawn.update(panels) or path)
    summary_mod.summarize(out)
    assert list(drawn) == ["aligned, 75/25"] and list(drawn["aligned, 75/25"]) == ["STALE"]
    runs = drawn["aligned, 75/25"]["STALE"]
    hists = [[json.loads(line) for line in (f / "metrics.jsonl").read_text().splitlines()]
             for f in sorted((out / "cells" / "STALE").rglob("split_*"))]
    assert len(runs) == len(hists) == 2
    epochs, mean, std, n = plots.curve_band(runs, "val_total")
    vals = np.array([[r["val_total"] for r in h] for h in hists])            # (runs, epochs)
    assert epochs == [1, 2] and n == [2, 2]
    np.testing.assert_allclose(mean, vals.mean(0))
    np.testing.assert_allclose(std, vals.std(0, ddof=1))
    assert plots.curve_band([[{"epoch": 1, "x": 2.0}], [{"epoch": 1, "x": 4.0}, {"epoch": 2, "x": 1.0}]], "x") == \
        ([1, 2], [3.0, 1.0], [2 ** 0.5, 0.0], [2, 1])


def test_the_paired_column_is_each_cells_difference_from_the_reference(finished):
    _, out, _ = finished
    res = json.loads((out / "results.json").read_text())
    avg = {(r["cell"]["variant"], r["cell"]["split"]):
           json.loads(Path(r["run_dir"], "metrics.json").read_text())["average_mAP"] for r in res["cells"]}
    diffs = [avg[("control", s)] - avg[("STALE", s)] for s in (0, 1)]
    node = res["summary"]["control"]["aligned"]["75/25"]
    p = node["paired"]
    assert p["reference"] == "STALE" and p["n"] == 2
    assert [c["diff"] for c in p["cells"]] == pytest.approx(diffs)
    assert p["mean"] == pytest.approx(statistics.mean(diffs)) and p["std"] == pytest.approx(statistics.stdev(diffs))
    assert p["up"] == sum(d > 0 for d in diffs) and p["down"] == sum(d < 0 for d in diffs)
    assert "paired" not in res["summary"]["STALE"]["aligned"]["75/25"]
    row = next(line for line in (out / "results.md").read_text().splitlines() if line.startswith("| control |"))
    assert f"{100 * statistics.mean(diffs):+.1f} ± {100 * statistics.stdev(diffs):.1f} ({p['up']}/2 up)" in row


def test_rerun_skips_finished_cells_and_summarize_rebuilds(finished):
    spec, out, _ = finished
    before = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("best.pt")}
    proc = _cli("experiment", spec, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 cells, 0 to run" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("best.pt")} == before
    (out / "results.md").unlink()
    proc = _cli("experiment", "summarize", out)
    assert proc.returncode == 0 and (out / "results.md").is_file() and "| control |" in proc.stdout


def test_a_failed_cell_is_reported_and_the_others_finish(tmp_path):
    spec = dict(SPEC, splits=[0], variants={
        "STALE": [],
        # pseudo-unseen selection with no held-out video: this cell fails at training time
        "broken": ["train.select=pseudo_unseen", "train.val_fraction=0.0"]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = _cli("experiment", path, "--out", tmp_path / "out")
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("stale experiment: error:")]
    assert len(errors) == 1 and "1 of 2 cells failed" in errors[0] and "broken" in errors[0]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["cells_done"] == 1 and res["failed"][0]["key"].startswith("broken")
    assert "## Failed cells" in (tmp_path / "out" / "results.md").read_text()


def test_submitit_local_launcher_runs_cells(tmp_path):
    pytest.importorskip("submitit")
    spec = dict(SPEC, splits=[0], variants={"linear probe": ["method=linear_probe"]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = _cli("experiment", path, "--out", tmp_path / "out", "--launcher", "submitit-local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["cells_done"] == 1 and math.isfinite(res["cells"][0]["metrics"]["average_mAP"])
    assert list((tmp_path / "out" / "submitit").glob("*_log.out"))


def test_dev_and_test_split_names_and_roles():
    from stale.experiments.spec import split_role
    from stale.experiments.summary import ROLE_NOTE

    assert parse_range("dev") == [0, 1, 2] and parse_range(" Test ") == list(range(3, 10))
    assert load_spec(dict(SPEC, splits="test")).splits == list(range(3, 10))
    with pytest.raises(StaleError, match="expected numbers"):
        parse_range("dev", "--seeds")                 # names are for splits only
    assert split_role([0, 2]) == "dev" and split_role(range(3, 10)) == "held-out"
    assert split_role([2, 3]) == "mixed" and set(ROLE_NOTE) == {"dev", "held-out", "mixed"}


def test_spec_validation_and_ranges(tmp_path):
    assert parse_range("0-2,5") == [0, 1, 2, 5] and parse_range(3) == [3]
    with pytest.raises(StaleError, match="backwards"):
        parse_range("5-1")
    with pytest.raises(StaleError, match="not another trained variant"):
        load_spec(dict(SPEC, variants={"a": [], "c": {"control_of": "nope"}}))
    with pytest.raises(StaleError, match="unknown key"):
        load_spec(dict(SPEC, bogus=1))
    with pytest.raises(StaleError, match="reference 'STALEE' is not a variant"):
        load_spec(dict(SPEC, reference="STALEE"))
    assert load_spec(SPEC).reference is None
    with pytest.raises(StaleError, match="inference"):
        load_spec(dict(SPEC, variants={"a": [], "b": {"reuse": "a", "predict": ["model.width=8"]}}))
    spec = load_spec("table1")
    select_datasets(spec, None)
    assert {d.name for d in spec.datasets} == {"aligned", "nonaligned"}
    # CLIP training-free and B-I run on the CLIP-feature dataset only (2 x 20 cells fewer)
    assert len(cells_of(spec)) == 6 * 2 * 2 * 10 - 2 * 2 * 10
    # a typo in an override fails before any cell runs or anything is written
    bad = dict(SPEC, variants={"STALE": ["model.masking.kindd=none"]})
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    proc = _cli("experiment", p, "--out", tmp_path / "o")
    assert proc.returncode == 2 and "kindd" in proc.stderr and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cells_can_train_with_ddp_through_torchrun(tmp_path):
    spec = dict(SPEC, splits=[0], variants={"STALE": []}, overrides=SPEC["overrides"] + ["train.epochs=1"])
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = _cli("experiment", path, "--out", tmp_path / "out", "--ddp-procs", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cell = next((tmp_path / "out" / "cells").rglob("cell.json")).parent
    assert (cell / "cell_config.yaml").is_file() and (cell / "best.pt").is_file()
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["cells_done"] == 1


def test_names_holding_commas_are_matched_whole():
    from stale.experiments.spec import split_names

    known = ["STALE", "STALE, 15 epochs", "control (STALE, permuted names)", "linear probe"]
    assert split_names("STALE, 15 epochs,control (STALE, permuted names),STALE", known) == [
        "STALE, 15 epochs", "control (STALE, permuted names)", "STALE"]
    assert split_names("STALE,linear probe", known) == ["STALE", "linear probe"]
    assert split_names("STALE,nope", known) == ["STALE", "nope"]   # unknown names are kept, then refused
    assert split_names(["a", " b "], known) == ["a", "b"]


def test_settings_and_variants_subsets_choose_the_cells(tmp_path):
    """--settings / --variants keep only the named cells (names with commas included); an
    unknown setting is one clear error before anything runs."""
    from stale.experiments.runner import run_experiment

    spec = dict(SPEC, splits=[0], settings={"75/25": ["protocol.setting=75"], "50/50": ["protocol.setting=50"]},
                variants={"STALE": [], "STALE, tiny": ["model.width=32"], "control (STALE, permuted)": {"control_of": "STALE"}})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(StaleError, match="--settings: no setting '25/75'"):
        run_experiment(path, tmp_path / "bad", settings="25/75")
    assert not (tmp_path / "bad").exists()
    import stale.experiments.runner as ex

    ran = []
    real = ex.launch
    ex.launch = lambda spec_map, root, cells, *a, **k: ran.extend(cells)
    try:
        run_experiment(path, tmp_path / "out", settings="50/50", variants="STALE, tiny,control (STALE, permuted)")
    finally:
        ex.launch = real
    # the control needs the STALE cells it reuses; 75/25 is left out
    assert sorted((c.variant, c.setting) for c in ran) == [
        ("STALE", "50/50"), ("STALE, tiny", "50/50"), ("control (STALE, permuted)", "50/50")]


def test_a_second_invocation_adds_to_the_folder_spec(tmp_path):
    """Two subsets run into one folder: its experiment.json spec is the union, so summarize
    tabulates both."""
    from stale.experiments.runner import run_experiment
    import stale.experiments.runner as ex

    spec = dict(SPEC, splits=[0, 1], variants={"A": [], "B": ["model.width=32"]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    real = ex.launch
    ex.launch = lambda *a, **k: None
    try:
        run_experiment(path, tmp_path / "out", variants="A", splits=[0])
        run_experiment(path, tmp_path / "out", variants="B", splits=[1])
    finally:
        ex.launch = real
    meta = json.loads((tmp_path / "out" / "experiment.json").read_text())
    assert list(meta["spec"]["variants"]) == ["A", "B"] and meta["spec"]["splits"] == [0, 1]


def test_a_variant_may_apply_to_some_datasets_only(tmp_path):
    spec = dict(SPEC, datasets={"a": {"synth": {"preset": "aligned"}}, "b": {"synth": {"preset": "nonaligned"}}},
                variants={"STALE": [], "clip": {"overrides": ["method=clip_detector"], "datasets": ["a"]},
                          "control": {"control_of": "clip"}})
    s = load_spec(spec)
    got = sorted((c.variant, c.dataset) for c in cells_of(s, None) if c.split == 0)
    assert got == [("STALE", "a"), ("STALE", "b"), ("clip", "a"), ("control", "a")]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(dict(spec, variants={"clip": {"overrides": [], "datasets": ["c"]}})))
    with pytest.raises(StaleError, match="variants.clip.datasets: no dataset 'c'"):
        load_spec(bad)
    # narrowed by --datasets, the restricted variant's mapping still loads (it travels to workers)
    from stale.experiments.cells import select_datasets
    from stale.experiments.spec import spec_mapping as _spec_mapping

    s2 = load_spec(spec)
    select_datasets(s2, ["b"])
    assert [c.variant for c in cells_of(load_spec(_spec_mapping(s2))) if c.split == 0] == ["STALE"]
    for name in ("transfer", "table1", "table2", "table3"):   # CLIP-space methods never on other features
        assert not [c for c in cells_of(load_spec(name)) if c.dataset == "nonaligned"
                    and (c.variant.startswith(("B-I ", "B-I,")) or c.variant == "CLIP training-free")]


def test_every_shipped_spec_loads_and_compares_with_the_papers_full_model():
    names = list_specs()
    assert {f"table{i}" for i in range(1, 9)} | {"transfer"} <= set(names)
    for name in names:
        spec = load_spec(name)
        variants = {v.name for v in spec.variants}
        assert spec.reference in variants, name
        assert set(spec.paper) <= variants, (name, set(spec.paper) - variants)
        select_datasets(spec, None)
        assert cells_of(spec), name
