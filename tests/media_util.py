"""Real media for tests: H.264 videos of moving coloured shapes (encoded with PyAV) and a tiny
but complete CLIP checkpoint (image and text towers, open_clip layout + sidecar config)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# a tiny CLIP: 32-d joint space; the text side has CLIP's real vocabulary and context length so
# any class name and prompt template fits
TINY_CLIP_CFG = {"embed_dim": 32, "quick_gelu": False,
                 "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}

SHAPES = {  # name -> (colour, shape)
    "red square": ((220, 40, 40), "square"),
    "blue circle": ((40, 80, 230), "circle"),
    "green bar": ((40, 200, 60), "bar"),
}


def write_shapes_video(path, schedule, fps=10, size=(160, 120), codec="libx264"):
    """Encode a video: ``schedule`` = [(seconds, shape name or None), ...] played in order; each
    shape moves left to right across a textured grey background during its span. Returns path."""
    import av

    w, h = size
    rng = np.random.default_rng(0)
    texture = rng.integers(-12, 12, size=(h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for seconds, name in schedule:
            n = int(round(seconds * fps))
            for i in range(n):
                img = np.clip(110 + texture, 0, 255).astype(np.uint8)
                if name is not None:
                    colour, shape = SHAPES[name]
                    cx, cy, r = int(10 + (w - 20) * i / max(n - 1, 1)), h // 2, h // 6
                    if shape == "square":
                        mask = (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
                    elif shape == "circle":
                        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
                    else:
                        mask = (abs(xx - cx) <= r // 3) & (abs(yy - cy) <= 2 * r)
                    img[mask] = colour
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def tiny_clip(folder, seed: int = 0, with_text: bool = True) -> Path:
    """A seeded random tiny CLIP saved as an open_clip state dict + ``<stem>.json`` sidecar."""
    import torch
    from open_clip.model import CLIP

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = CLIP(TINY_CLIP_CFG["embed_dim"], TINY_CLIP_CFG["vision_cfg"], TINY_CLIP_CFG["text_cfg"])
    state = model.state_dict()
    if not with_text:
        state = {k: v for k, v in state.items() if k.startswith("visual.")}
    name = "tiny_clip" if with_text else "tiny_clip_vision_only"
    path = folder / f"{name}.pt"
    torch.save(state, path)
    (folder / f"{name}.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG}))
    return path


#: five short clips of shapes (1.5-2 s at 10 fps) for the extraction tests of many videos
CLIP_SCHEDULES = [[(1.0, "red square"), (1.0, None)], [(1.5, "blue circle")], [(1.0, "green bar"), (0.5, None)],
                  [(0.5, None), (1.0, "red square")], [(2.0, "blue circle")]]


def clips_and_tower(root) -> tuple[Path, Path]:
    """``root/videos/clip<i>.mp4`` (64x48, :data:`CLIP_SCHEDULES`) and a tiny vision-only CLIP."""
    folder = Path(root) / "videos"
    folder.mkdir(parents=True)
    for i, sched in enumerate(CLIP_SCHEDULES):
        write_shapes_video(folder / f"clip{i}.mp4", sched, fps=10, size=(64, 48))
    return folder, tiny_clip(Path(root) / "w", with_text=False)


def extract_cfg(weights, **kw):
    """The ``ExtractConfig`` of the many-video extraction tests: 4-frame clips, batches of 3."""
    from stale.pipeline.extract import ExtractConfig

    return ExtractConfig(**{**dict(weights=str(weights), clip_frames=4, stride=4, batch_size=3, progress=False), **kw})
