"""``stale train`` -> ``stale predict`` -> ``stale evaluate`` through the real command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stale.cli import main

REPO = Path(__file__).resolve().parents[2]
SEEN = ["high jump", "long jump", "pole vault", "shot put"]
UNSEEN = ["hammer throw", "discus throw"]


def stale(*args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "stale", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"stale {args[0]} failed:\n{proc.stderr[-3000:]}"
    return proc


def data_args(root: Path) -> list[str]:
    return ["--set", f"data.annotations={root / 'annotations.json'}", "--set", f"data.features.root={root / 'features'}"]


@pytest.fixture(scope="module")
def closed_run(tiny_dataset, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "run"
    stale("train", tiny_config, *data_args(tiny_dataset), "--out", out)
    return out


@pytest.fixture(scope="module")
def zero_shot_run(tiny_dataset, tiny_config, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e_zs")
    (tmp / "seen.txt").write_text("\n".join(SEEN) + "\n")
    (tmp / "unseen.txt").write_text("\n".join(UNSEEN) + "\n")
    out = tmp / "run"
    stale("train", tiny_config, *data_args(tiny_dataset), "--set", "protocol.kind=zero_shot",
          "--set", f"protocol.seen_file={tmp / 'seen.txt'}", "--set", f"protocol.unseen_file={tmp / 'unseen.txt'}",
          "--set", "train.epochs=5", "--out", out)
    return out


def test_closed_set_train_predict_evaluate(closed_run, tiny_dataset, tmp_path):
    assert sorted(p.name for p in closed_run.iterdir()) == ["best.pt", "classes.json", "config.yaml",
                                                           "data_report.json", "inputs.json", "last.pt",
                                                           "metrics.jsonl", "selection.json", "steps.jsonl",
                                                           "train.log"]
    hist = [json.loads(ln) for ln in (closed_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in hist] == list(range(1, 31))
    assert hist[-1]["train_total"] < 0.5 * hist[0]["train_total"]
    p, g, m = tmp_path / "p.json", tmp_path / "g.json", tmp_path / "m.json"
    stale("predict", closed_run, "--annotations", tiny_dataset / "annotations.json", "--subset", "training",
          "--features", tiny_dataset / "features", "--out", p, "--gt-out", g)
    pred = json.loads(p.read_text())
    assert pred["external_data"] == {"used": False} and len(pred["results"]) == 24
    stale("evaluate", g, p, "--subset", "training", "--tiou", "thumos14", "--json-out", m)
    metrics = json.loads(m.read_text())
    assert metrics["average_mAP"] >= 0.9, metrics["average_mAP"]
    assert len(metrics["mAP"]) == 5


def test_zero_shot_trains_on_seen_and_predicts_unseen(zero_shot_run, tiny_dataset, tmp_path):
    classes = json.loads((zero_shot_run / "classes.json").read_text())
    assert classes["train"] == SEEN and classes["test"] == UNSEEN
    assert len((zero_shot_run / "metrics.jsonl").read_text().splitlines()) == 5
    p, g = tmp_path / "p.json", tmp_path / "g.json"
    stale("predict", zero_shot_run, "--annotations", tiny_dataset / "annotations.json", "--subset", "validation",
          "--features", tiny_dataset / "features", "--out", p, "--gt-out", g)
    pred = json.loads(p.read_text())
    labels = {d["label"] for dets in pred["results"].values() for d in dets}
    assert labels == set(UNSEEN) and pred["classes"] == UNSEEN
    # only videos that contain an unseen class are scored, with only their unseen-class segments
    raw = json.loads((tiny_dataset / "annotations.json").read_text())["database"]
    expect = {k for k, v in raw.items() if v["subset"] == "validation"
              and any(a["label"] in UNSEEN for a in v["annotations"])}
    gt = json.loads(g.read_text())["database"]
    assert set(pred["results"]) == set(gt) == expect
    assert {a["label"] for v in gt.values() for a in v["annotations"]} <= set(UNSEEN)


def test_predict_with_arbitrary_class_names(zero_shot_run, tiny_dataset, tmp_path):
    p = tmp_path / "p.json"
    stale("predict", zero_shot_run, "--annotations", tiny_dataset / "annotations.json", "--subset", "validation",
          "--features", tiny_dataset / "features", "--classes", "a, b", "--all-videos", "--out", p)
    pred = json.loads(p.read_text())
    assert pred["classes"] == ["a", "b"]
    assert {d["label"] for dets in pred["results"].values() for d in dets} == {"a", "b"}
    assert len(pred["results"]) == 12


# -- user errors: exit code 2 and one line ----------------------------------------------------------

def test_missing_config_via_subprocess(tmp_path):
    proc = stale("train", tmp_path / "nope.yaml", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stale train: error: config file not found: {tmp_path / 'nope.yaml'}")
    assert not (tmp_path / "r").exists()


def _fails(capsys, argv, *fragments):
    """Run the CLI in-process (same dispatcher as the `stale` binary); expect exit 2, one error line."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith(f"stale {argv[0]}: error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in errors[0], errors[0]


@pytest.fixture
def broken_data(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    return root


def test_train_input_errors(capsys, tiny_config, tiny_dataset, broken_data, tmp_path, closed_run):
    _fails(capsys, ["train", tiny_config, *data_args(tiny_dataset), "--set", "train.nosuch=1", "--out", tmp_path / "a"],
           "unknown config key", "nosuch")
    (broken_data / "features" / "vid005.npy").unlink()
    _fails(capsys, ["train", tiny_config, *data_args(broken_data), "--out", tmp_path / "b"],
           "no feature file", "vid005.npy")
    shutil.copytree(tiny_dataset / "features", broken_data / "features", dirs_exist_ok=True)
    x = np.load(broken_data / "features" / "vid007.npy")
    x[3, 1] = np.nan
    np.save(broken_data / "features" / "vid007.npy", x)
    _fails(capsys, ["train", tiny_config, *data_args(broken_data), "--out", tmp_path / "c"],
           "vid007.npy", "non-finite")
    before = (closed_run / "last.pt").read_bytes()
    _fails(capsys, ["train", tiny_config, *data_args(tiny_dataset), "--out", closed_run],
           "already holds a run", "--resume")
    assert (closed_run / "last.pt").read_bytes() == before
    for name in "abc":
        assert not (tmp_path / name / "last.pt").exists()


def test_truncated_checkpoint_errors(capsys, tiny_config, tiny_dataset, closed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(closed_run, run)
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])
    _fails(capsys, ["predict", run / "last.pt", "--annotations", tiny_dataset / "annotations.json",
                    "--features", tiny_dataset / "features", "--out", tmp_path / "p.json"],
           "last.pt", "truncated, corrupt")
    assert not (tmp_path / "p.json").exists()
    _fails(capsys, ["train", tiny_config, *data_args(tiny_dataset), "--out", run, "--resume"],
           "last.pt", "truncated, corrupt")


def test_predict_input_errors(capsys, tiny_dataset, closed_run, tmp_path):
    common = ["--annotations", tiny_dataset / "annotations.json", "--features", tiny_dataset / "features"]
    _fails(capsys, ["predict", closed_run, *common, "--subset", "testing", "--out", tmp_path / "p.json"],
           "no subset 'testing'", "training, validation")
    _fails(capsys, ["predict", tmp_path / "nothing", *common, "--out", tmp_path / "p.json"], "nothing")
    _fails(capsys, ["predict", closed_run, *common, "--classes", " , ", "--out", tmp_path / "p.json"],
           "--classes: no class names given")
    assert not (tmp_path / "p.json").exists()
