"""Prediction time and peak memory against video length: resize vs windowed sampling.

Usage::

    python benchmarks/bench_windows.py [--minutes 1 10 60 240] [--rate 7.5] [--dim 128]
                                       [--config demo] [--time-step SECONDS] [--modes resize window]

For each length it writes one seeded random ``.npy`` of ``minutes * 60 * rate`` features (default
7.5 per second: THUMOS14's I3D stride of 4 frames at 30 fps) and, in a fresh child process per
(length, mode), builds the config's STALE network (random weights: cost only, no accuracy) and
runs ``LoadedRun.detect`` on the file once: ``resize`` (the whole video resampled to
``data.num_snippets``) or ``window`` (windows of ``num_snippets`` snippets at ``--time-step``
seconds, default the features' own rate, read from the memory-mapped file a window at a time
and merged). It reports the wall time of the call, the child's peak RSS during the call (VmHWM
reset just before it; Linux), that peak minus the RSS before the call (what detection added),
windows and detections. The target
of issue 19: window time linear in the length, its added memory flat.
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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feature_sources import environment  # noqa: E402  (the header every benchmark prints)

_MARK = "BENCH_RESULT "


def rss_mib() -> float:
    """Current resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def reset_peak() -> bool:
    """Reset this process's peak RSS (Linux: ``5`` into /proc/self/clear_refs), so the peak
    read after the call is the call's own; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """Peak RSS since the last :func:`reset_peak` (VmHWM), else the process's lifetime peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_video(path: Path, minutes: float, rate: float, dim: int, seed: int = 0) -> tuple[int, float]:
    """A seeded (n, dim) float32 feature file written in chunks (memory stays a chunk's)."""
    n = max(1, int(round(minutes * 60 * rate)))
    rng = np.random.default_rng(seed)
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 65536):
        arr[s:s + 65536] = rng.standard_normal((min(65536, n - s), dim), dtype=np.float32)
    arr.flush()
    del arr
    return n, n / rate


def child(args: dict) -> dict:
    """One measurement in this process: build the detector, detect once, report."""
    import torch

    from stale.data.windows import num_steps, num_windows
    from stale.pipeline.assemble import build_model
    from stale.pipeline.config import load_run_config
    from stale.pipeline.detectors import StaleDetector
    from stale.pipeline.predict import LoadedRun

    torch.manual_seed(0)
    torch.set_num_threads(int(args["threads"]))
    overrides = [f"model.input_dim={args['dim']}", f"data.features.dim={args['dim']}"]
    if args["time_step"] is not None:
        overrides.append(f"data.time_step={args['time_step']}")
    cfg = load_run_config(args["config"], overrides)
    cfg.data.sampling = "window" if args["mode"] == "window" else "resize"
    run = LoadedRun(cfg, StaleDetector(build_model(cfg), cfg), {"test": args["classes"]}, "random", Path("."),
                    torch.device("cpu"))
    run._scale = {"snippet_s": None, "action_s": None}   # no annotations: no warning, native-rate windows
    before = rss_mib()
    reset_peak()
    t0 = time.perf_counter()
    items = run.detect(args["path"], args["classes"], args["duration"], windows=args["mode"] == "window",
                       batch_size=int(args["batch"]))
    seconds = time.perf_counter() - t0
    peak = peak_mib()
    T = cfg.data.num_snippets
    windows = (num_windows(num_steps(args["duration"], args["n"], cfg.data.time_step), T, cfg.data.window_overlap)
               if args["mode"] == "window" else 1)
    return {"seconds": seconds, "peak_rss_mib": peak, "added_mib": max(0.0, peak - before), "windows": windows,
            "detections": len(items)}


def run_child(args: dict, isolate: bool = True) -> dict:
    if not isolate:
        return child(args)
    env = dict(os.environ, OMP_NUM_THREADS=str(args["threads"]), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True,
                          env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({args['mode']}, {args['minutes']} min):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(_MARK):])


def measure(minutes, modes, rate: float = 7.5, dim: int = 128, config: str = "demo", time_step: float | None = None,
            batch: int = 16, threads: int = 1, isolate: bool = True, workdir: str | None = None) -> list[dict]:
    """One row per (length, mode)."""
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for m in minutes:
            path = Path(tmp) / f"video_{m}min.npy"
            n, duration = write_video(path, m, rate, dim)
            for mode in modes:
                args = {"path": str(path), "n": n, "duration": duration, "mode": mode, "minutes": m, "dim": dim,
                        "config": config, "time_step": time_step, "batch": batch, "threads": threads,
                        "classes": ["high jump", "long jump", "pole vault", "diving", "shot put"]}
                rows.append({"minutes": m, "features": n, "mode": mode, **run_child(args, isolate)})
            path.unlink()
    return rows


def format_table(rows: list[dict], header: str) -> str:
    out = [header, "", "| minutes | features | mode | windows | detections | time (s) | s per hour of video | "
           "peak RSS (MiB) | added by detection (MiB) |", "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        per_hour = r["seconds"] / (r["minutes"] / 60)
        out.append(f"| {r['minutes']:g} | {r['features']} | {r['mode']} | {r['windows']} | {r['detections']} | "
                   f"{r['seconds']:.2f} | {per_hour:.2f} | {r['peak_rss_mib']:.0f} | {r['added_mib']:.0f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60, 240])
    p.add_argument("--modes", nargs="+", default=["resize", "window"], choices=["resize", "window"])
    p.add_argument("--rate", type=float, default=7.5, help="features per second (default: THUMOS14 I3D)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--config", default="demo", help="run config whose network is measured (default: demo)")
    p.add_argument("--time-step", type=float, default=None, help="window mode: seconds per snippet (default: native)")
    p.add_argument("--batch", type=int, default=16, help="windows per forward pass")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default=None, help="where the feature files go (default: the temp dir)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child is not None:
        print(_MARK + json.dumps(child(json.loads(a.child))))
        return 0
    header = (f"bench_windows: {environment()}; config {a.config}, {a.rate:g} features/s, dim {a.dim}, "
              f"time step {a.time_step or 'native'}, batch {a.batch}, {a.threads} thread(s)")
    rows = measure(a.minutes, a.modes, a.rate, a.dim, a.config, a.time_step, a.batch, a.threads, True, a.workdir)
    print(format_table(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
