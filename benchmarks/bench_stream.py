"""`stale stream` on a generated video: real-time factor, latency, and agreement with offline
`stale detect` (the same detector on the same video).

    .venv/bin/python benchmarks/bench_stream.py --threads 2                 # 10 min, 320x240, 30 fps, ViT-B/16
    .venv/bin/python benchmarks/bench_stream.py --threads 2 --no-paced      # skip the 10-minute paced run

Writes a video with PyAV (coloured shapes sliding over a textured background, 4-12 s actions
between 3-10 s of background), then, in this process:

1. **unpaced**: ``stale.stream`` reads the file as fast as it decodes (the reader waits for the
   tower, nothing is skipped): real-time factor = wall seconds / stream seconds (< 1: faster
   than real time) and the tower + detector time alone ("compute");
2. **paced** (``realtime=True``): the file played at its frame rate, as a camera would deliver
   it: latency of each detection (emission minus the action's end, wall-clock stream time),
   median and 95th percentile, and the frames skipped by backpressure;
3. **offline**: ``stale.detect`` on the same file with the same detector; for offline's ``--top``
   best detections, the streamed (unpaced) detection of the same label with the highest tIoU:
   median tIoU, the share with tIoU >= 0.5, median and 95th-percentile |score difference|.

``--weights random`` (the default) has the cost of the real CLIP ViT-B/16 and needs no download;
its detections carry no meaning, but both sides use the same ones, so the agreement is measured.
Prints one table with the date, machine, cores and the 1-minute load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

COLOURS = [(220, 40, 40), (40, 80, 230), (40, 200, 60)]
CLASSES = "red square,blue circle,green bar"


def write_video(path: Path, seconds: float, fps: int, size: tuple[int, int], seed: int = 0) -> list[tuple]:
    """Encode the benchmark video; returns the drawn actions ``(start s, end s, class index)``."""
    import av

    w, h = size
    rng = np.random.default_rng(seed)
    texture = np.clip(110 + rng.integers(-12, 12, size=(h, w, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    n = int(round(seconds * fps))
    label = np.full(n, -1)
    actions, t = [], float(rng.uniform(3, 10))
    while t < seconds - 4:
        length = float(rng.uniform(4, 12))
        k = int(rng.integers(0, 3))
        s, e = int(t * fps), min(n, int((t + length) * fps))
        label[s:e] = k
        actions.append((s / fps, e / fps, k))
        t += length + float(rng.uniform(3, 10))
    r = h // 6
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        start = 0
        for i in range(n):
            img = texture.copy()
            k = label[i]
            if k >= 0:
                start = start if i and label[i - 1] == k else i
                cx = int(10 + (w - 20) * ((i - start) % (4 * fps)) / (4 * fps))
                if k == 0:
                    mask = (abs(xx - cx) <= r) & (abs(yy - h // 2) <= r)
                elif k == 1:
                    mask = (xx - cx) ** 2 + (yy - h // 2) ** 2 <= r * r
                else:
                    mask = (abs(xx - cx) <= r // 3) & (abs(yy - h // 2) <= 2 * r)
                img[mask] = COLOURS[k]
            for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return actions


def tiou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def agreement(offline: list[dict], online: list[dict], top: int) -> dict:
    """Offline's ``top`` best detections matched to the streamed one of their label with the
    highest tIoU: median tIoU, share >= 0.5, median / p95 |score difference| (matched ones)."""
    ious, diffs = [], []
    for d in offline[:top]:
        same = [(tiou(d["segment"], (x["start"], x["end"])), x) for x in online if x["label"] == d["label"]]
        iou, best = max(same, key=lambda t: t[0]) if same else (0.0, None)
        ious.append(iou)
        if best is not None and iou >= 0.5:
            diffs.append(abs(best["score"] - d["score"]))
    return {"offline_top": len(ious), "median_tiou": float(np.median(ious)) if ious else None,
            "share_tiou_0.5": float(np.mean(np.asarray(ious) >= 0.5)) if ious else None,
            "median_dscore": float(np.median(diffs)) if diffs else None,
            "p95_dscore": float(np.quantile(diffs, 0.95)) if diffs else None}


def run_stream(video: Path, args, realtime: bool) -> tuple[list[dict], dict]:
    import stale

    st = stale.stream(video, CLASSES, weights=args.weights, arch=args.arch, clip_frames=args.clip_frames,
                      stride=args.stride, window=args.window, hop=args.hop, margin=args.margin,
                      realtime=realtime, device=args.device)
    with st:
        dets = [d.to_dict() for d in st]
    return dets, st.summary.to_dict()


def environment() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, 1-min load {load:.2f}")


def measure(args, workdir: Path) -> dict:
    """Every number of the table (module docstring)."""
    import stale

    video = workdir / "stream_bench.mp4"
    t0 = time.perf_counter()
    actions = write_video(video, args.seconds, args.fps, args.size)
    res = {"video": {"seconds": args.seconds, "fps": args.fps, "size": list(args.size), "actions": len(actions),
                     "write_s": round(time.perf_counter() - t0, 1)}}
    online, res["unpaced"] = run_stream(video, args, realtime=False)
    if args.paced:
        _, res["paced"] = run_stream(video, args, realtime=True)
    t0 = time.perf_counter()
    off = stale.detect([video], CLASSES, workdir / "offline", weights=args.weights, arch=args.arch,
                       clip_frames=args.clip_frames, stride=args.stride, device=args.device)
    res["offline_s"] = round(time.perf_counter() - t0, 1)
    res["agreement"] = agreement(off.results[video.stem], online, args.top)
    res["detections"] = {"offline": len(off.results[video.stem]), "streamed": len(online)}
    return res


def _f(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def format_table(res: dict, header: str) -> str:
    u, p, a = res["unpaced"], res.get("paced"), res["agreement"]
    rows = [header, "",
            "| run | stream (s) | wall (s) | real-time factor | compute RTF | frames read / encoded / skipped "
            "| detections | latency median (s) | latency p95 (s) |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for name, s in (("unpaced", u), ("paced (--realtime)", p)):
        if s is None:
            continue
        rows.append(f"| {name} | {s['stream_s']:.1f} | {s['wall_s']:.1f} | {_f(s['rtf'])} | {_f(s['compute_rtf'])} | "
                    f"{s['frames_read']} / {s['frames_encoded']} / {s['frames_skipped']} | {s['detections']} | "
                    f"{_f(s['latency_median_s'])} | {_f(s['latency_p95_s'])} |")
    rows += ["", f"offline stale detect: {res['offline_s']} s, {res['detections']['offline']} detections "
                 f"(streamed: {res['detections']['streamed']})",
             f"agreement, offline's {a['offline_top']} best vs streamed (unpaced): median tIoU {_f(a['median_tiou'])}, "
             f"tIoU >= 0.5 for {_f(a['share_tiou_0.5'], '.0%')}, |score difference| of those median "
             f"{_f(a['median_dscore'], '.3f')}, p95 {_f(a['p95_dscore'], '.3f')}"]
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="video length (default 600 = 10 minutes)")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--size", default="320x240", help="WxH (default %(default)s)")
    ap.add_argument("--weights", default="random", help="CLIP weights (default: random ViT-B/16 = the real cost)")
    ap.add_argument("--arch", default="ViT-B-16")
    ap.add_argument("--clip-frames", type=int, default=16)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--hop", type=float, default=2.0)
    ap.add_argument("--margin", type=float, default=4.0)
    ap.add_argument("--top", type=int, default=50, help="offline detections matched (default %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-paced", dest="paced", action="store_false", help="skip the paced (real-time) run")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    ap.add_argument("--workdir", default=None, help="folder for the video and offline outputs (default: temporary)")
    args = ap.parse_args(argv)
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    import torch

    torch.set_num_threads(args.threads)
    before = environment()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="stale-bench-stream-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        res = measure(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"{before} -> {after:.2f} after; torch threads {args.threads}; {args.arch} / {args.weights}; "
              f"{args.seconds:g} s {args.size[0]}x{args.size[1]} {args.fps} fps video, {res['video']['actions']} "
              f"actions; clip {args.clip_frames} / stride {args.stride}; window {args.window:g} s, hop {args.hop:g} s, "
              f"margin {args.margin:g} s")
    print(format_table(res, header), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, **res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
