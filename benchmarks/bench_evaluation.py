"""Benchmark of ``stale.evaluation`` on synthetic ActivityNet- and THUMOS14-sized inputs.

Usage::

    python benchmarks/bench_evaluation.py [--cases activitynet thumos14] [--repeat 3] [--seed 0] [--json OUT]

For each case it writes a seeded synthetic ground-truth and prediction file, then runs a fresh
child process that (1) times ``evaluate_files`` (JSON load + evaluation), (2) times
``evaluate_detection`` on the already loaded dicts (best of ``--repeat``), (3) measures the
tracemalloc peak of one evaluation and (4) reports its own peak RSS (``ru_maxrss``: the whole
process, loaded JSON included). It prints a Markdown table (and with ``--json OUT`` writes the
rows, seed, CPU count and numpy version to OUT). Numbers are for synthetic data.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

CASES = {
    # videos, classes, predictions per video, threshold preset, subset, GT per video, duration
    "activitynet": dict(videos=4728, classes=200, per_video=100, tiou="activitynet",
                        subset="validation", gt_mean=1.5, duration=(30.0, 240.0),
                        length=(0.02, 0.9), classes_per_video=1),
    "thumos14": dict(videos=213, classes=20, per_video=200, tiou="thumos14", subset="test",
                     gt_mean=16.0, duration=(60.0, 1200.0), length=(0.002, 0.03),
                     classes_per_video=2),
}


def make_case(name: str, seed: int) -> tuple[dict, dict]:
    """Seeded synthetic GT and predictions of the size of ``CASES[name]``.

    GT: a few instances per video (ActivityNet: mostly one class per video). Predictions: 80%
    carry one of the video's GT classes, 60% are jittered copies of a GT instance, the rest
    random; scores rounded to 4 decimals, so tied scores occur as in real result files.
    """
    c = CASES[name]
    rng = np.random.default_rng(seed)
    classes = [f"class_{i:03d}" for i in range(c["classes"])]
    database, results = {}, {}
    for v in range(c["videos"]):
        vid = f"vid_{v:05d}"
        dur = float(rng.uniform(*c["duration"]))
        vcls = rng.choice(len(classes), c["classes_per_video"], replace=False)
        n_gt = max(1, int(rng.poisson(c["gt_mean"] - 1) + (c["gt_mean"] < 4)))
        lengths = dur * np.exp(rng.uniform(np.log(c["length"][0]), np.log(c["length"][1]), n_gt))
        starts = rng.uniform(0, dur - lengths)
        gt_lab = rng.choice(vcls, n_gt)
        database[vid] = {"subset": c["subset"].capitalize() if name == "thumos14" else c["subset"],
                         "duration": round(dur, 2), "annotations": [
            {"segment": [round(float(s), 2), round(float(s + ln), 2)], "label": classes[lab]}
            for s, ln, lab in zip(starts, lengths, gt_lab)]}
        m = c["per_video"]
        pick = rng.integers(0, n_gt, m)
        jitter = rng.normal(0, 0.2, (m, 2)) * lengths[pick, None]
        seg = np.stack([starts[pick], starts[pick] + lengths[pick]], 1) + jitter
        rand = rng.random(m) >= 0.6
        rs = rng.uniform(0, dur, rand.sum())
        seg[rand] = np.stack([rs, rs + rng.uniform(1, dur / 4, rand.sum())], 1)
        seg = np.sort(np.clip(seg, 0, dur), axis=1)
        lab = np.where(rng.random(m) < 0.8, rng.choice(vcls, m), rng.integers(0, len(classes), m))
        score = np.round(rng.random(m), 4)
        results[vid] = [{"label": classes[lb], "score": float(sc),
                         "segment": [round(float(a), 2), round(float(b), 2)]}
                        for lb, sc, (a, b) in zip(lab, score, seg)]
    return ({"version": "synthetic", "database": database},
            {"version": "synthetic", "results": results, "external_data": {}})


def child(name: str, folder: str, repeat: int) -> None:
    """Measure one case in this (fresh) process and print one JSON line."""
    from stale.evaluation import evaluate_detection, evaluate_files, load_json_file

    c = CASES[name]
    gt_path, pred_path = Path(folder, f"{name}_gt.json"), Path(folder, f"{name}_pred.json")
    t0 = time.perf_counter()
    res = evaluate_files(gt_path, pred_path, c["subset"], c["tiou"])
    load_eval = time.perf_counter() - t0
    gt, pred = load_json_file(gt_path), load_json_file(pred_path)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        evaluate_detection(gt, pred, c["subset"], c["tiou"])
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    evaluate_detection(gt, pred, c["subset"], c["tiou"])
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({
        "case": name, "videos": c["videos"], "classes": c["classes"],
        "predictions": res.num_predictions, "gt": res.num_gt_instances, "thresholds": len(res.tiou),
        "eval_s": min(times), "load_eval_s": load_eval, "traced_peak_mib": traced_peak / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "average_mAP": res.average_mAP}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the raw rows to this file")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeat)
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.cases:
            gt, pred = make_case(name, args.seed)
            for suffix, obj in (("gt", gt), ("pred", pred)):
                with open(Path(folder, f"{name}_{suffix}.json"), "w") as fh:
                    json.dump(obj, fh)
            del gt, pred
            out = subprocess.run([sys.executable, __file__, "--child", name, folder,
                                  "--repeat", str(args.repeat)], check=True,
                                 capture_output=True, text=True, env=dict(os.environ))
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"synthetic inputs, seed {args.seed}, {os.cpu_count()} CPUs, numpy {np.__version__}\n")
    print("| case | videos | classes | predictions | thresholds | evaluate (s) | load+evaluate (s) "
          "| tracemalloc peak (MiB) | peak RSS (MiB) | avg mAP |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['videos']} | {r['classes']} | {r['predictions']} | "
              f"{r['thresholds']} | {r['eval_s']:.3f} | {r['load_eval_s']:.3f} | "
              f"{r['traced_peak_mib']:.0f} | {r['peak_rss_mib']:.0f} | {r['average_mAP']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"seed": args.seed, "cpus": os.cpu_count(),
                                               "numpy": np.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
