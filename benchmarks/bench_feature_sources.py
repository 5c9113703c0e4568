"""Reading speed of every feature-source kind against the ``.npy`` folder, on the same data.

Usage::

    python benchmarks/bench_feature_sources.py [--videos 412 2000] [--dim 400] [--native 100]
                                               [--snippets 100] [--batch 16] [--kinds npy csv ...]

For each ``--videos`` count it generates that many seeded random (``--native`` x ``--dim``)
float32 videos (default: BSN/BMN's ActivityNet CSV size, 100 x 400; 412 = the demo's video
count) and writes them in each layout ``stale.data.features`` reads: a ``.npy`` folder, the same
channel-first, a CSV folder (header row, as BSN/BMN), one HDF5 file, one pickle, and two ``.npy``
streams of half the channels each. Then, in a fresh child process per layout, it runs one epoch
of ``VideoFeatureDataset`` + ``make_loader`` with the cache off (every video read and resampled
to ``--snippets``), and reports seconds per epoch, the ratio to the ``.npy`` folder and the
child's peak RSS (``ru_maxrss``). Every layout must give the very same batches as the ``.npy``
folder (checked by a checksum). Synthetic data; cost only. The page cache is warm (files were
just written): the numbers are parsing and copying, not disk reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_MARK = "BENCH_RESULT "
KINDS = ("npy", "npy (C, T)", "csv", "hdf5", "pickle", "2 streams")


def generate(n: int, native: int, dim: int, seed: int = 0):
    """``n`` seeded (native, dim) float32 videos, one at a time (memory stays one video's)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield f"vid_{i:05d}", rng.standard_normal((native, dim), dtype=np.float32)


def write_layout(kind: str, root: Path, n: int, native: int, dim: int) -> dict:
    """Write the videos in layout ``kind`` under ``root``; returns the ``data.features`` config."""
    if kind in ("npy", "npy (C, T)", "csv"):
        folder = root / kind.split()[0]
        folder.mkdir(parents=True)
        for vid, x in generate(n, native, dim):
            if kind == "csv":
                np.savetxt(folder / f"{vid}.csv", x, delimiter=",", fmt="%.9g",
                           header=",".join(f"f{j}" for j in range(dim)), comments="")
            else:
                np.save(folder / f"{vid}.npy", x.T if kind == "npy (C, T)" else x)
        return {"root": str(folder), "dim": dim}
    if kind == "hdf5":
        import h5py

        with h5py.File(root / "features.h5", "w") as f:
            for vid, x in generate(n, native, dim):
                f.create_dataset(vid, data=x)
        return {"root": str(root / "features.h5"), "dim": dim}
    if kind == "pickle":
        data = dict(generate(n, native, dim))
        (root / "features.pkl").write_bytes(pickle.dumps(data, protocol=4))
        return {"root": str(root / "features.pkl"), "dim": dim}
    if kind == "2 streams":
        half = dim // 2
        for name in ("rgb", "flow"):
            (root / name).mkdir(parents=True)
        for vid, x in generate(n, native, dim):
            np.save(root / "rgb" / f"{vid}.npy", np.ascontiguousarray(x[:, :half]))
            np.save(root / "flow" / f"{vid}.npy", np.ascontiguousarray(x[:, half:]))
        return {"dim": dim, "streams": [{"root": str(root / "rgb"), "dim": half},
                                        {"root": str(root / "flow"), "dim": dim - half}]}
    raise ValueError(f"unknown kind {kind!r}")


def child(args: dict) -> dict:
    """One epoch over the layout, in this process (RSS is this process's own)."""
    import torch

    from stale.core.config import from_dict
    from stale.data.annotations import Video
    from stale.data.dataset import VideoFeatureDataset, make_loader
    from stale.data.features import FeatureConfig, open_features

    torch.set_num_threads(1)
    reader = open_features(from_dict(FeatureConfig, args["features"]))
    ids = reader.ids()
    ds = VideoFeatureDataset([Video(v, "training", 100.0) for v in ids], reader, args["snippets"], cache_bytes=0)
    digest = hashlib.sha256()
    t0 = time.perf_counter()
    seen = 0
    for batch in make_loader(ds, range(len(ds)), args["batch"]):
        seen += batch.features.shape[0]
        digest.update(batch.features.numpy().tobytes())
    epoch_s = time.perf_counter() - t0
    return {"videos": seen, "epoch_s": epoch_s, "checksum": digest.hexdigest(),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(args: dict, isolate: bool = True) -> dict:
    if not isolate:
        return child(args)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True,
                          env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode or not lines:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(lines[-1][len(_MARK):])


def measure(counts, kinds, native: int, dim: int, snippets: int, batch: int, isolate: bool = True,
            workdir: str | None = None) -> list[dict]:
    """Rows of the table: one per (video count, kind); each layout is deleted after its epoch."""
    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            ref = None
            for kind in kinds:
                root = Path(tmp) / f"k{len(rows)}"
                root.mkdir()
                features = write_layout(kind, root, n, native, dim)
                disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
                r = run_child({"features": features, "snippets": snippets, "batch": batch}, isolate)
                if r["videos"] != n:
                    raise RuntimeError(f"{kind}: read {r['videos']} of {n} videos")
                if ref is None:
                    ref = r
                if r["checksum"] != ref["checksum"]:
                    raise RuntimeError(f"{kind}: batches differ from those of {kinds[0]}")
                rows.append({"videos": n, "kind": kind, "disk_mib": disk, "epoch_s": r["epoch_s"],
                             "ratio": r["epoch_s"] / ref["epoch_s"] if ref["epoch_s"] > 0 else float("nan"),
                             "peak_rss_mib": r["peak_rss_mib"]})
                if kind != kinds[0]:
                    shutil.rmtree(root)
    return rows


def environment() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, 1-min load {load:.2f}, Python {platform.python_version()}")


#: the issue's targets: an epoch within this factor of the .npy folder's ...
MAX_RATIO = 1.5
#: ... and peak memory flat in the number of videos: at most this growth from the smallest count
MAX_RSS_GROWTH = 0.10


def memory_growth(rows: list[dict]) -> dict[str, float]:
    """Per layout, the relative growth of peak RSS from the smallest video count to the largest
    (absent with one count): "memory flat" means it stays under :data:`MAX_RSS_GROWTH`."""
    out = {}
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = sorted((r["videos"], r["peak_rss_mib"]) for r in rows if r["kind"] == kind)
        if len(mine) > 1 and mine[0][1] > 0:
            out[kind] = mine[-1][1] / mine[0][1] - 1.0
    return out


def format_table(rows: list[dict], header: str) -> str:
    out = [header, "", f"| videos | layout | on disk (MiB) | epoch (s) | vs .npy | within {MAX_RATIO:g}x | "
                       f"peak RSS (MiB) |", "|---:|---|---:|---:|---:|:---:|---:|"]
    for r in rows:
        out.append(f"| {r['videos']} | {r['kind']} | {r['disk_mib']:.0f} | {r['epoch_s']:.2f} | "
                   f"{r['ratio']:.2f}x | {'yes' if r['ratio'] <= MAX_RATIO else 'NO'} | {r['peak_rss_mib']:.0f} |")
    growth = memory_growth(rows)
    if growth:
        counts = sorted({r["videos"] for r in rows})
        out += ["", f"Peak RSS from {counts[0]} to {counts[-1]} videos (flat: under "
                    f"+{MAX_RSS_GROWTH:.0%}): " + "; ".join(
                        f"{k} {g:+.0%} ({'flat' if g <= MAX_RSS_GROWTH else 'GROWS'})" for k, g in growth.items())]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, nargs="+", default=[412, 2000])
    p.add_argument("--dim", type=int, default=400)
    p.add_argument("--native", type=int, default=100, help="features per video file")
    p.add_argument("--snippets", type=int, default=100, help="num_snippets after resampling")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS,
                   help="layouts to measure; the first is the reference (default: all, npy first)")
    p.add_argument("--workdir", default=None, help="where the generated layouts go (default: the temp dir)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(_MARK + json.dumps(child(json.loads(a.child))), flush=True)
        return 0
    header = (f"{environment()}; synthetic {a.native}x{a.dim} float32 videos, T={a.snippets}, batch {a.batch}, "
              f"cache off, 1 torch thread, page cache warm")
    print(header, flush=True)
    rows = measure(a.videos, a.kinds, a.native, a.dim, a.snippets, a.batch, workdir=a.workdir)
    print(format_table(rows, "").lstrip("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
