"""Timings of `stale detect` on a 1-minute 320x240 30 fps H.264 video (moving coloured shapes).

    .venv/bin/python scripts/bench_detect.py [--threads N] [--weights random] [--arch ViT-B-16] [--out DIR]

Writes the video (PyAV) and runs the detection pipeline in this process, then prints decode,
feature and detection times and the 1-minute load before and after (speed numbers from a
shared machine mean little without it). ``--weights random`` (the default) has the cost of the
real CLIP ViT-B/16 and needs no download; pass a checkpoint for real detections.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def write_minute(path: Path, seconds: int = 60, fps: int = 30, size=(320, 240)) -> Path:
    import av

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    texture = np.random.default_rng(0).integers(-12, 12, size=(h, w, 3))
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        for i in range(seconds * fps):
            img = np.clip(110 + texture, 0, 255).astype(np.uint8)
            cx = int(20 + (w - 40) * ((i % (10 * fps)) / (10 * fps)))
            if (i // (10 * fps)) % 2 == 0:
                img[(abs(xx - cx) <= 20) & (abs(yy - h // 2) <= 20)] = (220, 40, 40)
            else:
                img[(xx - cx) ** 2 + (yy - h // 2) ** 2 <= 400] = (40, 80, 230)
            for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--weights", default="random")
    ap.add_argument("--arch", default="ViT-B-16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one, deleted)")
    args = ap.parse_args()
    import torch

    import stale

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="stale-bench-"))
    try:
        video = write_minute(tmp / "minute.mp4")
        out = Path(args.out) if args.out else tmp / "out"
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = stale.detect(video, "a red square,a blue circle", out, weights=args.weights, arch=args.arch,
                           device=args.device, overwrite=True)
        total = time.perf_counter() - t0
        t = res.timings["minute"]
        print(f"1-minute 320x240 30 fps video, {args.arch} ({args.weights}), {torch.get_num_threads()} threads, "
              f"{os.cpu_count()} cores")
        print(f"decode {t['decode']:.2f} s, features {t['features']:.2f} s, detection {t['detection']:.3f} s, "
              f"total with model loading and outputs {total:.1f} s")
        print(f"1-minute load average: {load0:.2f} before, {os.getloadavg()[0]:.2f} after")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
