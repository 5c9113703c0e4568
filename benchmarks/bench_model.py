"""Speed and memory of STALE training steps and of the full prediction path (synthetic inputs).

Usage::

    python benchmarks/bench_model.py                    # CPU, ActivityNet paper configuration
    python benchmarks/bench_model.py --quick            # small sizes, a smoke check (~1 min)
    python benchmarks/bench_model.py --device cuda      # GPU rows (bf16 autocast)
    python benchmarks/bench_model.py --threads 2 --steps 3
    python benchmarks/bench_model.py --micro-batch 0 --no-checkpointing   # the memory-hungry path
    python benchmarks/bench_model.py --only infer --predict-batch 1      # inference latency

Every configuration runs in a fresh child process (``--child``) so that its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own. The model is built from
the shipped ``activitynet_clip_75_25`` config with ``text.weights=random`` (the ViT-B/16 text tower's
exact shape with seeded random weights: cost without knowledge) plus the case's overrides.

* **train**: one batch of random features (B, T, 512) with realistic targets (random
  ActivityNet-like segments -> :func:`stale.model.labels.assign_labels`), trained with
  ``engine.Trainer.train_epoch`` on exactly one batch, i.e. the real code path: indexing the
  batch, forward (bf16 autocast on CUDA), STALELoss, backward, grad clipping, Adam step.
  One warm-up step, then the median of ``--steps`` steps. ``micro_batch`` videos per
  forward/backward (``train.micro_batch``, one text forward per step; 0/None = whole batch) and
  ``grad_checkpointing`` (``text.grad_checkpointing``) are part of each case.
* **infer**: ``stale.pipeline.predict.detect_dataset`` on one batch (eval mode, cached text features,
  softmax/sigmoid, ``stale.model.decoding.postprocess``, ``to_results``), with ``theta_c = 0`` so
  that every video yields the full ``top_k`` candidates as a trained (confident) model does; a
  random model's flat class probabilities would otherwise fall below 0.1 and skip the
  postprocessing work. One warm-up call (it also fills the text cache), then the median.

Class names are the 200 ActivityNet classes of the packaged annotations: the first ``K`` are
used for training, the last ``K`` for inference. Numbers come from random weights and synthetic
inputs: they measure cost, not accuracy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIG = "activitynet_clip_75_25"   # a shipped config (src/stale/configs)
_MARK = "BENCH_RESULT "


@dataclass
class Case:
    """One measured configuration.

    kind: ``train`` (ms per step) or ``infer`` (videos per second).
    classes: K named classes (train: the first K ActivityNet names, infer: the last K).
    overrides: extra ``key.sub=value`` settings applied to the paper config.
    steps: measured steps/calls after one warm-up; the median is reported.
    micro_batch: ``train.micro_batch`` (videos per forward/backward; None = the whole batch).
    grad_checkpointing: ``text.grad_checkpointing`` (recompute the text tower in backward).
    """

    name: str
    kind: str
    batch: int = 100
    snippets: int = 100
    classes: int = 150
    arch: str = "ViT-B-16"
    context_length: int = 50
    finetune: bool = True
    steps: int = 3
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    micro_batch: int | None = 10
    grad_checkpointing: bool = True
    overrides: list[str] = field(default_factory=list)
    count_flops: bool = False   # one more step/call under FlopCounterMode -> result["flops"]

    def config_overrides(self) -> list[str]:
        return [f"text.arch={self.arch}", "text.weights=random",
                f"text.context_length={self.context_length}",
                f"text.finetune={'true' if self.finetune else 'false'}",
                f"data.num_snippets={self.snippets}", f"train.batch_size={self.batch}",
                f"train.device={self.device}", "train.progress=false", f"train.seed={self.seed}",
                f"train.micro_batch={'null' if not self.micro_batch else self.micro_batch}",
                f"text.grad_checkpointing={'true' if self.grad_checkpointing else 'false'}",
                *self.overrides]


def paper_cases(device: str = "cpu", threads: int | None = None, steps: int = 3,
                quick: bool = False, arch: str | None = None, micro_batch: int | None = 10,
                grad_checkpointing: bool = True, predict_batch: int | None = None) -> list[Case]:
    """The issue's configurations: fine-tuned and frozen text tower, plus inference.

    ``quick`` shrinks everything (batch 8, T 32, 20/10 classes, the small ``stale-offline``
    tower shape) for a smoke check of the script itself. ``arch`` replaces the text tower's
    shape (e.g. ``stale-test`` to see the cost of the model without CLIP's text transformer).
    ``predict_batch`` replaces the inference case's batch (videos per call; e.g. 1 for latency).
    """
    size = (dict(batch=8, snippets=32, arch="stale-offline") if quick else {})
    if arch is not None:
        size["arch"] = arch
    n_train, n_test = (20, 10) if quick else (150, 50)
    common = dict(device=device, threads=threads, steps=steps, micro_batch=micro_batch or None,
                  grad_checkpointing=grad_checkpointing, **size)
    return [
        Case("train, text fine-tuned", "train", classes=n_train, finetune=True, **common),
        Case("train, text frozen", "train", classes=n_train, finetune=False, **common),
        Case("predict" if predict_batch is None else f"predict, batch {predict_batch}", "infer",
             classes=n_test, **{**common, "steps": max(steps, 5),
                                **({"batch": predict_batch} if predict_batch is not None else {})}),
    ]


# ----------------------------------------------------------------------------- measuring

def activitynet_class_names() -> list[str]:
    """The 200 ActivityNet v1.3 class names of the packaged annotations (sorted)."""
    from stale.data.annotations import load_annotations
    from stale.data.resources import annotations_path

    return load_annotations(annotations_path("activitynet")).classes()


def synthetic_targets(batch: int, num_classes: int, snippets: int, rng: np.random.Generator):
    """Targets of ``batch`` videos with ActivityNet-like random segments (one class per video,
    1-3 instances covering 2-90% of a 30-240 s video), through the real label assignment.
    Returns ``(Targets, durations (batch,) numpy)``."""
    from stale.model.labels import assign_labels
    from stale.model.outputs import Targets

    items, durations = [], rng.uniform(30.0, 240.0, batch)
    for b in range(batch):   # setup, not timed: the label code takes one video at a time
        n = int(rng.integers(1, 4))
        length = durations[b] * np.exp(rng.uniform(np.log(0.02), np.log(0.9), n))
        start = rng.uniform(0.0, durations[b] - length)
        cls = np.full(n, rng.integers(0, num_classes))
        items.append(assign_labels(durations[b], start, start + length, cls, num_classes,
                                   snippets, video_id=f"bench_{b}"))
    return Targets.stack(items), durations


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, steps: int) -> list[float]:
    """Seconds of ``steps`` calls of ``fn`` after one warm-up call, synchronised on CUDA."""
    fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _count_flops(fn) -> int:
    """FLOPs (2 x multiply-adds of matrix products, convolutions, attention) of one ``fn()``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def measure_case(case: Case) -> dict:
    """Build the model of ``case``, time it and return a result dict (see :func:`format_table`)."""
    import torch

    from stale.data.dataset import InMemoryVideos
    from stale.model.losses import STALELoss
    from stale.pipeline.assemble import build_model
    from stale.pipeline.config import load_run_config
    from stale.training.runtime import resolve_device, seed_everything
    from stale.training.trainer import Trainer

    import open_clip  # noqa: F401  (imported by the text tower anyway; counted in the baseline)

    # the RSS of a process that has only imported torch + open_clip (CUDA libraries included)
    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if case.threads:
        torch.set_num_threads(case.threads)
    cfg = load_run_config(PAPER_CONFIG, case.config_overrides())
    device = resolve_device(cfg.train.device)
    seed_everything(case.seed)
    names = activitynet_class_names()
    if not 1 <= case.classes <= len(names):
        raise ValueError(f"classes must be in [1, {len(names)}], got {case.classes}")
    rng = np.random.default_rng(case.seed)
    features = torch.randn(case.batch, case.snippets, cfg.model.input_dim)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_build = time.perf_counter()
    model = build_model(cfg).to(device)
    build_s = time.perf_counter() - t_build

    extra: dict = {"load_avg_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if case.kind == "train":
        classes = names[:case.classes]
        targets, durations = synthetic_targets(case.batch, len(classes), case.snippets, rng)
        data = InMemoryVideos(features, durations, targets=targets)
        with tempfile.TemporaryDirectory() as tmp:   # train_epoch writes nothing; Trainer wants a folder
            trainer = Trainer(model, STALELoss(cfg.model.loss), cfg.train, classes, Path(tmp), {},
                              device)
            epoch = iter(range(10**6))
            losses: list[float] = []
            # one train_epoch over exactly one batch == one optimiser step of the real loop
            times = _timed(lambda: losses.append(trainer.train_epoch(data, next(epoch))["total"]),
                           device, case.steps)
            if case.count_flops:
                extra["flops"] = _count_flops(lambda: trainer.train_epoch(data, next(epoch)))
        extra["loss_first_last"] = [losses[0], losses[-1]]
        value, unit = 1000.0 * statistics.median(times), "ms/step"
    elif case.kind == "infer":
        from stale.pipeline.detectors import StaleDetector
        from stale.pipeline.predict import detect_dataset

        classes = names[-case.classes:]
        cfg.inference.theta_c = 0.0
        _, durations = synthetic_targets(case.batch, 1, case.snippets, rng)
        data = InMemoryVideos(features, durations)
        detector = StaleDetector(model.eval(), cfg)
        results: list[dict] = []
        times = _timed(lambda: results.append(detect_dataset(detector, data, classes, case.batch, device)),
                       device, case.steps)
        extra["detections_per_video"] = float(np.mean([len(v) for v in results[-1].values()]))
        value, unit = case.batch / statistics.median(times), "videos/s"
    else:
        raise ValueError(f"unknown case kind {case.kind!r}")

    return {
        "case": asdict(case), "value": value, "unit": unit, "times_s": times,
        "build_s": build_s, "device": str(device),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "import_rss_mib": import_rss,
        "gpu_peak_mib": (torch.cuda.max_memory_allocated(device) / 2**20
                         if device.type == "cuda" else None),
        "threads": torch.get_num_threads(), **extra,
        "load_avg_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run_case_isolated(case: Case, timeout: float | None = None) -> dict:
    """:func:`measure_case` in a fresh Python process (so ru_maxrss is this case's own)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(asdict(case))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark case {case.name!r} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(_MARK):])


def run_cases(cases: list[Case], isolate: bool = True, say=print) -> list[dict]:
    """Measure every case (each in its own process unless ``isolate=False``)."""
    out = []
    for case in cases:
        say(f"measuring: {case.name} ({case.kind}, batch {case.batch}, T {case.snippets}, "
            f"{case.classes} classes, {case.arch}, {case.device}) ...")
        res = run_case_isolated(case) if isolate else measure_case(case)
        say(f"  {res['value']:.1f} {res['unit']}, peak RSS {res['peak_rss_mib']:.0f} MiB")
        out.append(res)
    return out


# ----------------------------------------------------------------------------- reporting

#: an ActivityNet v1.3 training epoch: ~10,000 training videos = 100 steps of batch 100
ACTIVITYNET_STEPS_PER_EPOCH = 100
ACTIVITYNET_EPOCHS = 15


def derived(result: dict) -> dict:
    """ActivityNet training times derived from a ``ms/step`` result (empty for other units):
    ``epoch_s`` = 100 x the median step, ``epochs_15_s`` = 1500 x the median step. Only
    meaningful for a batch-100 case (the paper's configuration)."""
    if result.get("unit") != "ms/step":
        return {}
    step = result["value"] / 1000.0
    return {"activitynet_epoch_s": ACTIVITYNET_STEPS_PER_EPOCH * step,
            "activitynet_15_epochs_s": ACTIVITYNET_EPOCHS * ACTIVITYNET_STEPS_PER_EPOCH * step,
            "batch": result["case"]["batch"]}


def environment() -> dict:
    """Machine facts printed under the table."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {"date": datetime.date.today().isoformat(), "torch": torch.__version__,
           "python": platform.python_version(), "cpu": cpu, "cores": os.cpu_count(),
           "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None, "gpu": None}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def format_table(results: list[dict], env: dict) -> str:
    """A Markdown table of ``results`` plus notes (date, machine, load, synthetic inputs)."""
    rows = ["| config | device | batch | micro-batch | T | classes | text tower | trainable (M) "
            "| result | steps | peak RSS (MiB) | GPU peak (MiB) | threads |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["case"]
        tower = f"{c['arch']}, ctx {c['context_length']}"
        if c["kind"] == "train" and c.get("grad_checkpointing", True):
            tower += ", ckpt"
        micro = c.get("micro_batch") if c["kind"] == "train" else None
        micro = str(min(micro, c["batch"])) if micro else ("-" if c["kind"] != "train" else "whole")
        gpu = f"{r['gpu_peak_mib']:.0f}" if r.get("gpu_peak_mib") is not None else "-"
        val = f"{r['value']:.0f}" if r["value"] >= 100 else f"{r['value']:.1f}"
        rows.append(f"| {c['name']} | {r['device']} | {c['batch']} | {micro} | {c['snippets']} | "
                    f"{c['classes']} | {tower} | {r['trainable_m']:.1f} | {val} {r['unit']} | "
                    f"{len(r['times_s'])} | {r['peak_rss_mib']:.0f} | {gpu} | {r['threads']} |")
    for r in results:   # GPU: the derived ActivityNet training times
        if r["unit"] == "ms/step" and r["device"].startswith("cuda"):
            d = derived(r)
            rows.append(f"| {r['case']['name']}: ActivityNet epoch (10,000 videos = 100 steps) "
                        f"| {r['device']} | | | | | | | {d['activitynet_epoch_s']:.1f} s; 15 epochs "
                        f"{d['activitynet_15_epochs_s'] / 60:.1f} min | derived | | | |")
    load = env.get("load_avg")
    per_case = "; ".join(f"{r['case']['name']} {r['load_avg_before'][0]:.2f} -> {r['load_avg_after'][0]:.2f}"
                         for r in results if r.get("load_avg_before") and r.get("load_avg_after"))
    notes = [
        "",
        f"Measured {env['date']} with `benchmarks/bench_model.py`; torch {env['torch']}, Python "
        f"{env['python']}, CPU {env['cpu']} ({env['cores']} cores)"
        + (f", GPU {env['gpu']}" if env.get("gpu") else "") + ".",
        "Load average at the end of the run (1/5/15 min): "
        + (" / ".join(f"{x:.2f}" for x in load) if load else "n/a") + "; 1-min load before -> "
        f"after each case: {per_case or 'n/a'}.",
        "micro-batch = videos per forward/backward inside a step (`train.micro_batch`, one text "
        "forward per step); ckpt = text tower activation checkpointing (`text.grad_checkpointing`).",
        "Synthetic inputs (random features, random ActivityNet-like segments) and RANDOM weights "
        "(text tower of the named arch's shape): cost only, not accuracy. Result = median over "
        "`steps` after one warm-up; peak RSS = ru_maxrss of the case's own process, of which "
        "importing torch + open_clip alone takes "
        + ", ".join(sorted({f"{r['import_rss_mib']:.0f}" for r in results})) + " MiB.",
    ]
    return "\n".join(rows + notes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--steps", type=int, default=3, help="measured training steps after warm-up (>= 1)")
    p.add_argument("--only", choices=["train", "infer"], default=None, help="run one kind of case")
    p.add_argument("--arch", default=None,
                   help="text tower shape instead of ViT-B-16 (any open_clip arch, stale-offline, stale-test)")
    p.add_argument("--micro-batch", type=int, default=10,
                   help="train.micro_batch of the training cases (default 10; 0 = the whole batch)")
    p.add_argument("--no-checkpointing", action="store_true",
                   help="text.grad_checkpointing=false (keep the text tower's activations)")
    p.add_argument("--predict-batch", type=int, default=None, metavar="N",
                   help="videos per inference call of the predict case (default: the training batch, "
                        "100; 8 with --quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override applied to every case (e.g. text.share_prefix=false), repeatable")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast on the CPU too: train.cpu_amp=true, inference.precision=bf16 "
                        "(on CUDA bf16 autocast is the default anyway)")
    p.add_argument("--json", default=None,
                   help="also write the raw results to this file (with the derived ActivityNet "
                        "epoch times of the training cases)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")   # random weights: nothing to download
    if args.child is not None:
        res = measure_case(Case(**json.loads(args.child)))
        print(_MARK + json.dumps(res), flush=True)
        return 0
    if args.steps < 1:
        p.error("--steps must be >= 1")
    if args.micro_batch < 0:
        p.error("--micro-batch must be >= 0")
    if args.predict_batch is not None and args.predict_batch < 1:
        p.error("--predict-batch must be >= 1")
    cases = [c for c in paper_cases(args.device, args.threads, args.steps, args.quick, args.arch,
                                    args.micro_batch, not args.no_checkpointing, args.predict_batch)
             if args.only is None or c.kind == args.only]
    for c in cases:
        c.overrides += list(args.overrides)
    if args.overrides:
        for c in cases:
            c.name += " [" + ", ".join(args.overrides) + "]"
    if args.bf16:
        for c in cases:
            c.overrides += ["train.cpu_amp=true", "inference.precision=bf16"]
            c.name += " (bf16)"
    results = run_cases(cases, isolate=True, say=lambda m: print(m, file=sys.stderr, flush=True))
    table = format_table(results, environment())
    print(table)
    if args.json:
        for r in results:
            r["derived"] = derived(r)
        Path(args.json).write_text(json.dumps({"env": environment(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
