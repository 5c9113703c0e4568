"""Folders in the layouts `stale report` reads, made without training anything: a demo report
folder, a run folder (with and without predictions) and an experiment folder (results.json with
done, control and failed cells). Detections are noisy copies of the ground truth, so the metrics
are neither 0 nor 1; the control's labels are permuted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLASSES = ["HighJump", "PoleVault", "long jump"]


def ground_truth(n_videos: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    db = {}
    for i in range(n_videos):
        duration = float(rng.uniform(40, 90))
        anns, t = [], float(rng.uniform(0, 5))
        while True:
            length = float(rng.uniform(3, 10))
            if t + length > duration:
                break
            anns.append({"segment": [round(t, 2), round(t + length, 2)], "label": CLASSES[int(rng.integers(3))]})
            t += length + float(rng.uniform(2, 12))
        db[f"video_test_{i:04d}"] = {"subset": "test", "duration": round(duration, 2), "annotations": anns}
    return {"version": "synthetic test ground truth", "taxonomy": [], "database": db}


def predictions(gt: dict, seed: int = 1, quality: float = 0.7, permute: bool = False) -> dict:
    """Per video: each GT instance found with probability ``quality`` (jittered, a score around
    0.6-0.9), plus false alarms (score 0.05-0.5)."""
    rng = np.random.default_rng(seed)
    perm = {c: CLASSES[(i + 1) % len(CLASSES)] for i, c in enumerate(CLASSES)} if permute else {c: c for c in CLASSES}
    out = {}
    for vid, v in gt["database"].items():
        items = []
        for a in v["annotations"]:
            if rng.random() < quality:
                s, e = a["segment"]
                j = rng.normal(0, 0.08 * (e - s), 2)
                items.append({"segment": [max(0.0, s + j[0]), min(v["duration"], e + j[1])],
                              "label": perm[a["label"]], "score": float(rng.uniform(0.6, 0.95))})
        for _ in range(int(rng.integers(2, 6))):
            s = float(rng.uniform(0, v["duration"] - 5))
            items.append({"segment": [s, s + float(rng.uniform(1, 5))], "label": CLASSES[int(rng.integers(3))],
                          "score": float(rng.uniform(0.05, 0.5))})
        out[vid] = sorted(items, key=lambda d: -d["score"])
    return out


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def metrics_of(gt: dict, results: dict, tiou="thumos14") -> dict:
    from stale.evaluation import evaluate_detection

    return evaluate_detection(gt, {"results": results}, "test", tiou).to_json()


def make_demo_folder(root: Path) -> Path:
    """``root/report/`` as ``stale demo`` writes it (metrics, predictions, ground truth, curves)."""
    from stale.viz.plots import plot_timeline, plot_training_curves

    rep = root / "report"
    gt = ground_truth()
    preds = {"STALE": predictions(gt, 1, 0.8), "STALE w/o masking": predictions(gt, 2, 0.5),
             "control: permuted unseen names": predictions(gt, 1, 0.8, permute=True)}
    slugs = {"STALE": "stale", "STALE w/o masking": "stale_no_mask",
             "control: permuted unseen names": "control_permuted_names"}
    _write(rep / "ground_truth.json", gt)
    for name, res in preds.items():
        payload = {"version": "stale demo", "method": name, "results": res, "external_data": {"used": False},
                   "classes": CLASSES}
        if name.startswith("control"):
            payload["control_of"] = "STALE"
        _write(rep / f"predictions_{slugs[name]}.json", payload)
    _write(rep / "metrics.json", {
        "data": "SYNTHETIC: made by tests/report_util.py",
        "protocol": {"setting": "75/25", "split": "split_0", "seen": ["A", "B"], "unseen": CLASSES,
                     "test_videos": len(gt["database"]), "test_instances": 20},
        "methods": {n: metrics_of(gt, r) for n, r in preds.items()}, "timings_s": {"total": 1.0}})
    hist = [{"epoch": e, "train_total": 2.0 / (e + 1), "val_total": 2.2 / (e + 1)} for e in range(5)]
    plot_training_curves({"STALE": hist}, rep / "training_curve.png")
    vid = next(iter(gt["database"]))
    v = gt["database"][vid]
    plot_timeline(vid, v["duration"], v["annotations"], {"STALE": preds["STALE"][vid]}, rep / "timelines" / f"{vid}.png")
    return root


def make_run_folder(root: Path, with_predictions: bool = True, control: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text("method: stale\ndata: {dataset: thumos14}\ntext: {arch: stale-offline}\n")
    _write(root / "classes.json", {"seen": ["A", "B"], "test": CLASSES})
    (root / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train_total": 1.0 / (e + 1),
                                                             "val_total": 1.1 / (e + 1)}) + "\n" for e in range(4)))
    if with_predictions:
        gt = ground_truth(seed=3)
        _write(root / "ground_truth.json", gt)
        _write(root / "predictions.json", {"results": predictions(gt, 4, 0.7)})
        _write(root / "metrics.json", {"tiou": [0.3, 0.5, 0.7]})
        if control:
            _write(root / "predictions_control.json", {"results": predictions(gt, 4, 0.7, permute=True)})
    return root


def make_experiment_folder(root: Path) -> Path:
    """results.json with the runner's schema: two variants x two splits, a control variant that
    reuses the first, and one failed cell; cell folders hold predictions and ground truth."""
    cells = []
    for split in (0, 1):
        gt = ground_truth(seed=10 + split)
        for variant, quality, permute in (("STALE", 0.8, False), ("no masking", 0.5, False),
                                          ("control", 0.8, True)):
            folder = root / "cells" / variant.replace(" ", "_") / "synth" / "75_25" / f"split{split}_seed0"
            res = predictions(gt, 20 + split, quality, permute)
            _write(folder / "ground_truth.json", gt)
            _write(folder / "predictions.json", {"results": res, "external_data": {"used": False}})
            m = metrics_of(gt, res)
            cells.append({"cell": {"variant": variant, "dataset": "synth", "setting": "75/25", "split": split,
                                   "seed": 0}, "key": f"{variant}/synth/75_25/{split}/0", "run_dir": str(folder),
                          "status": "done", "metrics": {k: m[k] for k in ("tiou", "mAP", "average_mAP", "per_class_ap")},
                          "reuses": "STALE" if permute else None, "permuted_names": permute, "seconds": 1.5})
    cells.append({"cell": {"variant": "no masking", "dataset": "synth", "setting": "75/25", "split": 2, "seed": 0},
                  "key": "no masking/synth/75_25/2/0", "run_dir": str(root / "cells" / "x"), "status": "failed",
                  "error": "features: video_test_0001.npy: not a readable .npy array"})
    summary: dict = {}
    for c in cells:
        if c["status"] != "done":
            continue
        node = summary.setdefault(c["cell"]["variant"], {}).setdefault("synth", {}).setdefault(
            "75/25", {"tiou": c["metrics"]["tiou"], "cells": []})
        node["cells"].append({"split": c["cell"]["split"], "seed": 0, "mAP": c["metrics"]["mAP"],
                              "average_mAP": c["metrics"]["average_mAP"]})
    for v in summary.values():
        node = v["synth"]["75/25"]
        avgs = [x["average_mAP"] for x in node["cells"]]
        node.update(n=len(avgs), average_mean=float(np.mean(avgs)), average_std=float(np.std(avgs, ddof=1)),
                    mean=[float(x) for x in np.mean([x["mAP"] for x in node["cells"]], axis=0)])
    _write(root / "experiment.json", {"format": "stale-experiment/1"})
    _write(root / "results.json", {"format": "stale-experiment/1", "spec": {"name": "table_test", "title": "test"},
                                   "cells": cells, "summary": summary, "failed": [], "cells_expected": 7,
                                   "cells_done": 6, "updated": "now"})
    return root
