"""Window mode through the command line and the API: ``stale train`` with
``data.sampling=window`` (edge cuts counted), ``stale predict`` (window runs, and ``--windows``
for a resize run), and the API giving the same results."""

from __future__ import annotations

import json

import pytest

from stale.cli import main

from bad_inputs import data_args


@pytest.fixture(scope="module")
def window_run(tiny_dataset, tiny_config, tmp_path_factory):
    import torch

    out = tmp_path_factory.mktemp("window_run") / "run"
    threads = torch.get_num_threads()
    try:
        rc = main(["train", str(tiny_config), *data_args(tiny_dataset), "--set", "data.sampling=window",
                   "--set", "train.epochs=12", "--threads", "1", "--out", str(out), "--quiet"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return out


def test_window_training_counts_its_windows_and_cuts(window_run):
    rep = json.loads((window_run / "data_report.json").read_text())["windows"]
    # 24 training videos of 40-80 native features (0.5 s), windows of 32 with overlap 0.5
    assert 24 * 2 <= rep["windows"] <= 24 * 5 and rep["videos"] == 24
    assert rep["inside"] > 0 and rep["cut_kept"] + rep["cut_dropped"] > 0
    assert rep["window"] == 32 and rep["min_inside"] == 0.5


def test_window_training_with_windows_drawn_per_epoch(tiny_dataset, tiny_config, tmp_path):
    import math

    import torch

    out = tmp_path / "drawn"
    threads = torch.get_num_threads()
    try:
        rc = main(["train", str(tiny_config), *data_args(tiny_dataset), "--set", "data.sampling=window",
                   "--set", "data.train_windows=random", "--set", "data.train_windows_per_video=2",
                   "--set", "train.epochs=2", "--set", "train.batch_size=4", "--threads", "1", "--out", str(out),
                   "--quiet"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    report = json.loads((out / "data_report.json").read_text())
    fit = report["videos"]["train"]
    drawn = report["windows"]["train_windows"]
    assert drawn["mode"] == "random" and drawn["per_video"] == 2 and drawn["per_epoch"] == 2 * fit
    first = drawn["first_epoch"]
    assert first["inside"] > 0 and set(first) == {"inside", "cut_kept", "cut_dropped"}
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    # an epoch has 2 windows per training video, in batches of 4
    for epoch in (1, 2):
        assert sum(s["epoch"] == epoch for s in steps) == math.ceil(2 * fit / 4)
    assert all(math.isfinite(s["total"]) for s in steps)


def test_predict_in_window_mode_end_to_end(window_run, tiny_dataset, tmp_path):
    import stale

    p, g, m = tmp_path / "p.json", tmp_path / "g.json", tmp_path / "m.json"
    assert main(["predict", str(window_run), "--subset", "training", "--out", str(p), "--gt-out", str(g),
                 "--threads", "1"]) == 0
    res = json.loads(p.read_text())["results"]
    ann = json.loads((tiny_dataset / "annotations.json").read_text())["database"]
    assert len(res) == 24
    for vid, items in res.items():
        assert items and all(0 <= d["segment"][0] < d["segment"][1] <= ann[vid]["duration"] + 1e-6 for d in items)
        assert [d["score"] for d in items] == sorted((d["score"] for d in items), reverse=True)
    assert main(["evaluate", str(g), str(p), "--subset", "training", "--tiou", "thumos14", "--json-out", str(m)]) == 0
    assert json.loads(m.read_text())["average_mAP"] >= 0.5       # trained windows locate their actions
    # the API: the same file
    api_out = tmp_path / "api.json"
    stale.predict(window_run, api_out, subset="training", threads=1)
    assert json.loads(api_out.read_text())["results"] == res
    # and one video through run.detect
    run = stale.load_run(window_run, "cpu")
    vid = sorted(res)[0]
    names = run.classes["test"]
    one = run.detect(tiny_dataset / "features" / f"{vid}.npy", names, duration=ann[vid]["duration"])
    assert json.loads(json.dumps(one)) == res[vid]


def test_predict_windows_for_a_resize_run(tiny_run, tiny_dataset, tmp_path):
    import stale

    p = tmp_path / "p.json"
    assert main(["predict", str(tiny_run), "--subset", "training", "--windows", "--out", str(p), "--threads", "1"]) == 0
    res = json.loads(p.read_text())["results"]
    run = stale.load_run(tiny_run, "cpu", ["data.sampling=window"])
    # the resize run's windows use its median training snippet as the time step
    ann = json.loads((tiny_dataset / "annotations.json").read_text())["database"]
    train = sorted(v["duration"] for v in ann.values() if v["subset"] == "training")
    import numpy as np

    assert run.cfg.data.time_step == pytest.approx(float(np.median(train)) / 32)
    vid = sorted(res)[0]
    one = run.detect(tiny_dataset / "features" / f"{vid}.npy", run.classes["test"], duration=ann[vid]["duration"])
    assert json.loads(json.dumps(one)) == res[vid]
    plain = stale.load_run(tiny_run, "cpu")
    assert plain.detect(tiny_dataset / "features" / f"{vid}.npy", run.classes["test"], duration=ann[vid]["duration"],
                        windows=True) == one


def test_window_settings_are_checked(tiny_dataset, tiny_config, tmp_path, capsys):
    for bad, field in (("data.sampling=tiles", "data.sampling"), ("data.window_overlap=1.5", "data.window_overlap"),
                       ("data.time_step=-1", "data.time_step"), ("data.window_edge_weight=0", "data.window_edge_weight"),
                       ("data.train_windows=all", "data.train_windows"),
                       ("data.train_windows_per_video=0", "data.train_windows_per_video")):
        rc = main(["train", str(tiny_config), *data_args(tiny_dataset), "--set", bad, "--out", str(tmp_path / "r")])
        assert rc == 2 and field in capsys.readouterr().err


@pytest.fixture(scope="module")
def clip_space_data(tiny_dataset_factory, tmp_path_factory):
    """A tiny dataset in the 24-d space of the test text tower (B-I and the CLIP detector need it)."""
    return tiny_dataset_factory(tmp_path_factory.mktemp("win24"), dim=24, n_train=8, n_val=4)


@pytest.mark.parametrize("method", ["linear_probe", "two_stage", "clip_detector"])
def test_every_baseline_predicts_in_window_mode(method, clip_space_data, tiny_config, tmp_path):
    import stale

    run = stale.train(tiny_config, tmp_path / "run", overrides=[
        *(a for a in data_args(clip_space_data) if a != "--set"), "model.input_dim=24", "data.features.dim=24",
        "data.sampling=window", f"method={method}", "train.epochs=1", "train.threads=1"])
    out = tmp_path / "p.json"
    stale.predict(run, out, subset="validation", threads=1)
    res = json.loads(out.read_text())["results"]
    ann = json.loads((clip_space_data / "annotations.json").read_text())["database"]
    assert sorted(res) == sorted(v for v, e in ann.items() if e["subset"] == "validation")
    assert sum(len(items) for items in res.values()) > 0
    for vid, items in res.items():
        assert all(0 <= d["segment"][0] < d["segment"][1] <= ann[vid]["duration"] + 1e-6 for d in items)
    loaded = stale.load_run(run, "cpu")
    vid = sorted(res)[0]
    one = loaded.detect(clip_space_data / "features" / f"{vid}.npy", loaded.classes["test"],
                        duration=ann[vid]["duration"])
    assert json.loads(json.dumps(one)) == res[vid]
