"""Throughput of ``stale extract``: decode workers, and shards run as separate processes.

Usage::

    python benchmarks/bench_extract.py [--videos 8] [--seconds 60] [--size 320x240] [--fps 30]
        [--workers 0 1 2] [--shards 2] [--threads 2] [--arch ViT-B-16] [--weights random]
        [--device cpu] [--convention NAME] [--json OUT.json]

It writes ``--videos`` seeded H.264 clips with PyAV (``--seconds`` long, ``--size``, ``--fps``;
a textured pattern that moves, so the codec does real work), then times ``stale extract`` on
all of them, each case a fresh ``python -m stale extract`` process (wall clock, start-up and
weight loading included, as a user sees it):

* one process with ``--workers W`` for each W of ``--workers`` (W = 0: decoding in the process
  itself), ``--threads`` torch threads;
* ``--shards N``: N processes at once (``--shard I/N``, ``--threads`` divided between them,
  ``--workers 0``) filling one folder.

Every case must write, for every video, the very bytes of the first case (checked; a mismatch
is an error). Reported per case: seconds, videos/hour, decoded frames/s (every frame of the
videos) and encoded frames/s (the frames the image tower saw). ViT-B/16 with random weights
costs what the real weights cost (``--weights random``: nothing is downloaded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_clip(path: Path, seconds: float, size: tuple[int, int], fps: int, seed: int) -> int:
    """One H.264 clip (yuv420p): a seeded texture scrolling by a few pixels a frame; returns its frame count."""
    import av

    w, h = size
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, size=(h, 2 * w, 3), dtype=np.uint8)
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            x = (3 * i) % w
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, x:x + w]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return n


def extract_cmd(videos: Path, out: Path, a, threads: int, workers: int = 0, shard: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "stale", "extract", str(videos), "--out", str(out), "--weights", a.weights,
           "--arch", a.arch, "--device", a.device, "--threads", str(threads), "--workers", str(workers),
           "--batch-size", str(a.batch_size), "--no-progress", "-q"]
    if a.convention:
        cmd += ["--convention", a.convention]
    if shard:
        cmd += ["--shard", shard]
    return cmd


def run_case(cmds: list[list[str]]) -> float:
    """Start every command at once, wait for all; the wall-clock seconds (an error if one fails)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in cmds]
    outs = [p.communicate() for p in procs]
    seconds = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            raise RuntimeError(f"stale extract failed (exit {p.returncode}): {err[-2000:]}")
    return seconds


def same_bytes(a: Path, b: Path) -> bool:
    files = sorted(p.name for p in a.glob("*.npy"))
    return bool(files) and files == sorted(p.name for p in b.glob("*.npy")) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files)


def measure(a, workdir: Path) -> dict:
    from stale.data.features.extract_meta import read_index

    videos = workdir / "videos"
    videos.mkdir()
    frames = sum(write_clip(videos / f"clip{i:03d}.mp4", a.seconds, a.size, a.fps, i) for i in range(a.videos))
    # (name, commands, output folder, the folder whose bytes it must equal: same thread count --
    # a matrix kernel's summation order, and so the last bits, may depend on the thread count)
    cases = [(f"1 process, --workers {w}", [extract_cmd(videos, workdir / f"w{w}", a, a.threads, w)], workdir / f"w{w}",
              workdir / f"w{a.workers[0]}") for w in a.workers]
    if a.shards:
        out = workdir / "shards"
        per = max(1, a.threads // a.shards)
        same = workdir / f"w0_t{per}"
        if per != a.threads or 0 not in a.workers:
            cases.append((f"1 process, --workers 0, --threads {per} (the shards' reference)",
                          [extract_cmd(videos, same, a, per, 0)], same, same))
        else:
            same = workdir / "w0"
        cases.append((f"{a.shards} shards as {a.shards} processes (--threads {per} each)",
                      [extract_cmd(videos, out, a, per, 0, f"{i}/{a.shards}") for i in range(a.shards)], out, same))
    rows = []
    for name, cmds, out, ref in cases:
        seconds = run_case(cmds)
        meta = read_index(out)
        if len(meta["videos"]) != a.videos:
            raise RuntimeError(f"{name}: extracted {len(meta['videos'])} of {a.videos} videos")
        # frames the tower saw: one per sampled position of each clip (a short video's repeats aside)
        encoded = sum(v["num_features"] for v in meta["videos"].values()) * meta["frames_per_clip"]
        decoded = sum(v["num_frames"] for v in meta["videos"].values())
        rows.append({"case": name, "seconds": seconds, "videos_per_hour": a.videos / seconds * 3600,
                     "decoded_fps": decoded / seconds, "encoded_fps": encoded / seconds,
                     "decoded_frames": decoded, "encoded_frames": encoded, "identical": same_bytes(ref, out),
                     "reference": ref.name})
        if not rows[-1]["identical"]:
            raise RuntimeError(f"{name}: features differ from those of the same-thread-count reference {ref.name}")
    return {"frames": frames, "rows": rows}


def environment() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, 1-min load {load:.2f}, Python {platform.python_version()}")


def format_table(result: dict, header: str) -> str:
    out = [header, "", "| case | seconds | videos/hour | decoded frames/s | encoded frames/s | same bytes as |",
           "|---|---:|---:|---:|---:|:---:|"]
    for r in result["rows"]:
        out.append(f"| {r['case']} | {r['seconds']:.1f} | {r['videos_per_hour']:.0f} | {r['decoded_fps']:.0f} | "
                   f"{r['encoded_fps']:.1f} | {r['reference'] if r['identical'] else 'NO'} |")
    return "\n".join(out)


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--size", type=_size, default=(320, 240), help="WxH (default 320x240)")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="decode workers, one case each")
    p.add_argument("--shards", type=int, default=2, help="shards run as processes at once (0: no such case)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of one process (divided among shards)")
    p.add_argument("--arch", default="ViT-B-16")
    p.add_argument("--weights", default="random")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--convention", default=None, help="stale extract --convention (default: 16 frames every 16)")
    p.add_argument("--workdir", default=None, help="where the clips and features go (default: the temp dir)")
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args(argv)
    header = (f"{environment()}; {a.videos} clips of {a.seconds:g} s {a.size[0]}x{a.size[1]} H.264 at {a.fps} fps, "
              f"{a.arch} weights={a.weights} on {a.device}, batch {a.batch_size}, "
              f"{a.convention or 'clips of 16 frames every 16'}")
    print(header, flush=True)
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        result = measure(a, Path(tmp))
    print(format_table(result, "").lstrip("\n"))
    if a.json:
        Path(a.json).write_text(json.dumps({"header": header, **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
