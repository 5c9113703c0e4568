"""The machine's matrix-multiply roofline and how close STALE's workloads come to it, float32
path against the ``precision: auto`` path, in one run.

Usage::

    python benchmarks/roofline.py --threads 2              # the committed table (~4-6 min on 2 cores)
    python benchmarks/roofline.py --threads 2 --json roofline.json
    python benchmarks/roofline.py --quick                   # tiny sizes: a smoke check of the script

Rows (each measured in this process unless said otherwise; ``auto`` resolves by
:func:`stale.core.precision.resolve_precision` -- the header says what it resolved to and why):

* **GEMM**: an ``n x n`` matrix product (n = 2048) in float32 and in bf16, best of ``reps``:
  the roofline each workload is compared with (float32 rows against the float32 GEMM rate,
  bf16 rows against the bf16 one);
* **image tower**: the CLIP ViT-B/16 image tower (random weights: cost only) on a batch of
  preprocessed 224x224 frames, as ``stale extract`` / ``stale detect`` run it
  (:meth:`stale.text.image_tower.ImageEncoder.embed`), float32 and auto: frames/s, and the
  embeddings' lowest cosine between the two;
* **STALE predict**: the ActivityNet paper configuration (``activitynet_clip_75_25``, random
  weights, T = 100, 50 classes, ``theta_c = 0`` so every video fills ``top_k``) on 100 videos
  per call, float32 and auto: videos/s, with the per-box profile of each
  (:func:`stale.pipeline.profile_predict.profile_prediction`: ms, GFLOP and GFLOP/s per box);
* **train step**: ``benchmarks/bench_model.py``'s paper training case (batch 100, micro-batch
  10, text tower fine-tuned with checkpointing), float32 and ``train.cpu_amp`` (bf16
  autocast), each in a fresh child process: s per step and peak RSS;
* **evaluation**: ``stale.evaluation.evaluate_detection`` on ``bench_evaluation.py``'s
  synthetic ActivityNet-sized files (4,728 videos x 100 detections): seconds (no matrix
  products: no roofline share).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 x multiply-adds); the
rate of a workload is its counted FLOPs over its wall time. Synthetic inputs, random weights:
cost, never accuracy (docs/inference.md, "Precision", has the accuracy parity).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _load(name: str):
    """A sibling benchmark script as a module (bench_model, bench_evaluation)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def _best(fn, reps: int) -> float:
    """Fastest of ``reps`` timed calls of ``fn`` after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_rates(n: int, reps: int) -> dict[str, float]:
    """GFLOP/s of an ``n x n`` matrix product in float32 and bf16 (best of ``reps``)."""
    import torch

    out = {}
    gen = torch.Generator().manual_seed(0)
    for name, dtype in (("float32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, generator=gen).to(dtype)
        b = torch.randn(n, n, generator=gen).to(dtype)
        out[name] = 2.0 * n ** 3 / _best(lambda: torch.mm(a, b), reps) / 1e9
    return out


def image_tower(frames: int, reps: int, precision) -> dict:
    """Frames/s of the ViT-B/16 image tower in float32 and in ``precision`` (the auto one)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from stale.text.image_tower import load_image_encoder

    enc = load_image_encoder("ViT-B-16", "random", seed=0)
    x = torch.randn(frames, 3, *enc.image_size, generator=torch.Generator().manual_seed(1))
    with FlopCounterMode(display=False) as counter:
        enc.embed(x[:1])
    flops_per_frame = counter.get_total_flops()
    rows, embs = {}, {}
    for name, dtype in (("float32", torch.float32), ("auto", precision.dtype)):
        enc.cast(dtype)
        seconds = _best(lambda: embs.__setitem__(name, enc.embed(x)), reps)
        rows[name] = {"precision": precision.name if name == "auto" else "float32",
                      "rate": frames / seconds, "unit": "frames/s",
                      "gflops": flops_per_frame * frames / seconds / 1e9}
    rows["auto"]["min_cosine"] = float((embs["auto"] * embs["float32"]).sum(-1).min())
    rows["gflop_per_unit"] = flops_per_frame / 1e9
    return rows


def stale_predict(videos: int, snippets: int, classes: int, reps: int, quick: bool) -> dict:
    """Videos/s of STALE prediction in float32 and auto, with the per-box profiles."""
    import numpy as np
    import torch

    bench = sys.modules["bench_model"]
    from stale.pipeline.assemble import build_model
    from stale.pipeline.config import load_run_config
    from stale.pipeline.detectors import StaleDetector
    from stale.pipeline.profile_predict import profile_prediction

    names = bench.activitynet_class_names()[-classes:]
    over = ["text.weights=random", "inference.theta_c=0", f"data.num_snippets={snippets}"]
    if quick:
        over += ["text.arch=stale-test", "text.context_length=4"]
    cfg = load_run_config(bench.PAPER_CONFIG, over)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    features = torch.randn(videos, snippets, cfg.model.input_dim, generator=torch.Generator().manual_seed(2))
    _, durations = bench.synthetic_targets(videos, 1, snippets, np.random.default_rng(0))
    out = {}
    for name in ("float32", "auto"):
        cfg.inference.precision = name
        prof = profile_prediction(StaleDetector(model, cfg), features, names, durations, reps=reps)
        out[name] = {"precision": prof.precision, "rate": prof.videos_per_s, "unit": "videos/s",
                     "gflops": prof.gflop / (prof.call_ms / 1e3), "profile": prof}
    out["gflop_per_unit"] = out["float32"]["profile"].gflop / videos
    return out


def train_step(threads: int | None, quick: bool) -> dict:
    """bench_model's paper training case, float32 and cpu_amp, in child processes."""
    bench = sys.modules["bench_model"]
    size = dict(batch=8, snippets=32, arch="stale-offline", classes=20) if quick else {}
    out = {}
    for name, extra in (("float32", []), ("cpu_amp", ["train.cpu_amp=true"])):
        case = bench.Case(name=f"train {name}", kind="train", steps=1, threads=threads, overrides=extra,
                          count_flops=True, **size)
        res = bench.run_case_isolated(case)
        seconds = res["value"] / 1e3
        out[name] = {"precision": "float32" if name == "float32" else "bf16 autocast", "rate": seconds,
                     "unit": "s/step", "gflops": res["flops"] / seconds / 1e9,
                     "peak_rss_mib": res["peak_rss_mib"]}
    out["gflop_per_unit"] = res["flops"] / 1e9
    return out


def evaluation(quick: bool) -> dict:
    """Seconds of one ActivityNet-sized (quick: THUMOS14-sized) evaluation."""
    from stale.evaluation import evaluate_detection

    ev = sys.modules["bench_evaluation"]
    name = "thumos14" if quick else "activitynet"
    gt, pred = ev.make_case(name, 0)
    c = ev.CASES[name]
    seconds = _best(lambda: evaluate_detection(gt, pred, c["subset"], c["tiou"]), 1)
    return {"case": name, "seconds": seconds}


def _row(workload: str, r: dict, roof: dict, base: dict | None, gflop: float) -> str:
    key = "bf16" if r["precision"].startswith("bf16") else "float32"
    share = 100.0 * r["gflops"] / roof[key]
    vs = ""
    if base is not None:
        ratio = (base["rate"] / r["rate"]) if r["unit"].startswith("s/") else (r["rate"] / base["rate"])
        vs = f"{ratio:.2f}x"
    rate = f"{r['rate']:.2f}" if r["rate"] < 100 else f"{r['rate']:.0f}"
    return (f"| {workload} | {r['precision']} | {rate} {r['unit']} | {gflop:.3g} | {r['gflops']:.0f} | "
            f"{share:.1f}% of {key} | {vs or '-'} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke check, seconds)")
    p.add_argument("--skip", action="append", default=[], choices=["tower", "predict", "train", "evaluation"],
                   help="leave a workload out (repeatable)")
    p.add_argument("--json", default=None, help="also write the raw numbers to this file")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")   # random weights: nothing to download

    import torch

    from stale.core.precision import resolve_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    bench = _load("bench_model")
    _load("bench_evaluation")
    env = bench.environment()
    load_before = env["load_avg"]
    auto = resolve_precision("auto", "cpu")
    q = args.quick
    t_start = time.perf_counter()
    roof = gemm_rates(256 if q else 2048, 2 if q else 5)
    results: dict = {"gemm": roof}
    rows = [f"| GEMM {256 if q else 2048}^3 | float32 | | | {roof['float32']:.0f} | roofline | - |",
            f"| GEMM {256 if q else 2048}^3 | bf16 | | | {roof['bf16']:.0f} | roofline | "
            f"{roof['bf16'] / roof['float32']:.2f}x |"]
    if "tower" not in args.skip:
        tw = results["image_tower"] = image_tower(2 if q else 16, 1 if q else 2, auto)
        label = f"image tower (ViT-B/16, {2 if q else 16} frames per call)"
        rows += [_row(label, tw["float32"], roof, None, tw["gflop_per_unit"]),
                 _row(label, tw["auto"], roof, tw["float32"], tw["gflop_per_unit"])]
    if "predict" not in args.skip:
        n = 4 if q else 100
        pr = results["predict"] = stale_predict(n, 16 if q else 100, 5 if q else 50, 1 if q else 3, q)
        rows += [_row(f"STALE predict ({n} videos per call)", pr["float32"], roof, None, pr["gflop_per_unit"]),
                 _row(f"STALE predict ({n} videos per call)", pr["auto"], roof, pr["float32"], pr["gflop_per_unit"])]
    if "train" not in args.skip:
        tr = results["train"] = train_step(args.threads, q)
        label = f"train step (batch {8 if q else 100})"
        rows += [_row(label, tr["float32"], roof, None, tr["gflop_per_unit"]),
                 _row(label, tr["cpu_amp"], roof, tr["float32"], tr["gflop_per_unit"])]
    if "evaluation" not in args.skip:
        ev = results["evaluation"] = evaluation(q)
        rows.append(f"| evaluation ({ev['case']}-sized) | float64 | {ev['seconds']:.2f} s | - | - | - | - |")
    total = time.perf_counter() - t_start
    load_after = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    fmt = lambda load: " / ".join(f"{x:.2f}" for x in load) if load else "n/a"   # noqa: E731
    print(f"# Roofline: {env['date']}, {env['cpu']} ({env['cores']} cores), torch {env['torch']}, "
          f"{torch.get_num_threads()} threads{' (--quick: tiny sizes)' if q else ''}")
    print(f"load average (1/5/15 min) before {fmt(load_before)}, after {fmt(load_after)}; run took {total:.0f} s")
    print(f"precision auto -> {auto.name} ({auto.reason})\n")
    print("| workload | precision | rate | GFLOP per unit | achieved GFLOP/s | share of roofline | vs float32 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if "train" not in args.skip:
        tr = results["train"]
        print(f"\ntrain peak RSS: float32 {tr['float32']['peak_rss_mib']:.0f} MiB, cpu_amp "
              f"{tr['cpu_amp']['peak_rss_mib']:.0f} MiB")
    if "tower" not in args.skip:
        print(f"image tower embeddings, auto vs float32: lowest cosine {results['image_tower']['auto']['min_cosine']:.5f}")
    if "predict" not in args.skip:
        for name in ("float32", "auto"):
            r = results["predict"][name]
            print()
            print(r["profile"].to_markdown(roof["bf16" if r["precision"] == "bf16" else "float32"]), end="")
    if args.json:
        def plain(o):
            return o.__dict__ if hasattr(o, "__dict__") else str(o)

        Path(args.json).write_text(json.dumps({"env": env, "load_after": load_after, "auto": auto.record(),
                                               "seconds": total, **results}, default=plain, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
