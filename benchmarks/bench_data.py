"""Benchmark of streamed features (``stale.data.dataset``) and of checkpoint sizes.

Usage::

    python benchmarks/bench_data.py [--videos 200 2000] [--dim 2048] [--native 200] [--snippets 100]
                                    [--batch 16] [--cache-mb 256] [--checkpoints]

Streaming: for each ``--videos`` count it writes that many seeded random ``.npy`` feature files
(``--native`` x ``--dim`` float32, as from a 2048-d I3D/SlowFast extractor) into a temporary
folder, then in a fresh child process runs one epoch over ``VideoFeatureDataset`` +
``make_loader`` (resampling to ``--snippets``, the default 256 MiB cache) and reports its
peak RSS (``ru_maxrss``) and seconds per epoch, next to the same epoch from a preloaded
(N, T, C) tensor (``InMemoryVideos``: what holding every video in memory would cost).

Checkpoints (``--checkpoints``): the ActivityNet paper model (ViT-B/16-shaped text tower with
random weights) is built with the text tower frozen and fine-tuned; the sizes of ``best.pt``
(slim: frozen tower parameters left out, fingerprinted) and of a full state dict are printed.
Synthetic data; cost only.
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

_MARK = "BENCH_RESULT "


def write_features(root: Path, n: int, native: int, dim: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = [f"vid_{i:05d}" for i in range(n)]
    for vid in ids:
        np.save(root / f"{vid}.npy", rng.standard_normal((native, dim), dtype=np.float32))
    return ids


def child(args: dict) -> dict:
    """One epoch streamed or preloaded, in this process (RSS is this process's own)."""
    import torch

    from stale.data.annotations import Video
    from stale.data.dataset import InMemoryVideos, VideoFeatureDataset, make_loader
    from stale.data.features import FeatureStore

    torch.set_num_threads(1)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    root = Path(args["root"])
    ids = sorted(p.stem for p in root.glob("*.npy"))
    videos = [Video(v, "training", 100.0) for v in ids]
    store = FeatureStore(root, dim=args["dim"])
    t0 = time.perf_counter()
    if args["mode"] == "streamed":
        ds = VideoFeatureDataset(videos, store, args["snippets"], cache_bytes=args["cache_mb"] << 20)
    else:
        x = torch.stack([torch.from_numpy(store.load_resampled(v, args["snippets"])) for v in ids])
        ds = InMemoryVideos(x, [100.0] * len(ids), ids)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    seen = 0
    for batch in make_loader(ds, range(len(ds)), args["batch"]):
        seen += batch.features.shape[0]
        batch.features.sum()   # touch the data
    epoch_s = time.perf_counter() - t0
    assert seen == len(ids)
    return {"mode": args["mode"], "videos": len(ids), "setup_s": load_s, "epoch_s": epoch_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "import_rss_mib": base_rss}


def run_child(args: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode or not lines:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(lines[-1][len(_MARK):])


def checkpoint_sizes() -> list[dict]:
    import torch

    from stale.pipeline.assemble import build_model
    from stale.pipeline.config import load_run_config
    from stale.training.checkpoint import save_checkpoint, slim_state_dict

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for finetune in (False, True):
            cfg = load_run_config("activitynet_clip_75_25", ["text.weights=random",
                                                             f"text.finetune={'true' if finetune else 'false'}"])
            model = build_model(cfg)
            state, frozen = slim_state_dict(model)
            slim, full = Path(tmp) / "best.pt", Path(tmp) / "full.pt"
            save_checkpoint(slim, {"model": state, "frozen": frozen, "epoch": 0, "config": {}, "classes": {}})
            save_checkpoint(full, {"model": model.state_dict(), "frozen": {}, "epoch": 0, "config": {}, "classes": {}})
            rows.append({"text tower": "fine-tuned" if finetune else "frozen",
                         "best.pt (slim) MiB": slim.stat().st_size / 2**20,
                         "full state dict MiB": full.stat().st_size / 2**20})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, nargs="+", default=[200, 2000])
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--native", type=int, default=200, help="snippets per feature file")
    p.add_argument("--snippets", type=int, default=100, help="num_snippets after resampling")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--cache-mb", type=int, default=256)
    p.add_argument("--checkpoints", action="store_true", help="also measure checkpoint sizes")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(_MARK + json.dumps(child(json.loads(a.child))), flush=True)
        return 0
    load = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, 1-min load {load[0]:.2f}; "
          f"synthetic {a.native}x{a.dim} float32 files, T={a.snippets}, batch {a.batch}, cache {a.cache_mb} MiB\n")
    print("| videos | data on disk (MiB) | mode | setup (s) | epoch (s) | peak RSS (MiB) |")
    print("|---:|---:|---|---:|---:|---:|")
    for n in a.videos:
        with tempfile.TemporaryDirectory() as tmp:
            write_features(Path(tmp), n, a.native, a.dim)
            disk = sum(f.stat().st_size for f in Path(tmp).glob("*.npy")) / 2**20
            for mode in ("streamed", "preloaded"):
                r = run_child({"root": tmp, "mode": mode, "dim": a.dim, "snippets": a.snippets,
                               "batch": a.batch, "cache_mb": a.cache_mb})
                print(f"| {n} | {disk:.0f} | {mode} | {r['setup_s']:.2f} | {r['epoch_s']:.2f} | {r['peak_rss_mib']:.0f} |",
                      flush=True)
    if a.checkpoints:
        print("\n| text tower | best.pt (slim) MiB | full state dict MiB |\n|---|---:|---:|")
        for r in checkpoint_sizes():
            print(f"| {r['text tower']} | {r['best.pt (slim) MiB']:.1f} | {r['full state dict MiB']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
