"""Dataset layouts the generator imitates: where the real annotations come from, how features are
sampled in time, how feature files are named and how the annotation JSON is written back.

A layout turns the packaged real annotation file into a list of :class:`SourceVideo` (id, subset as
spelled in the file, duration, fps, segments) — the temporal skeleton of the synthetic dataset —
and writes a selection of them back in the same official layout.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stale.data.timeline import NativeTimeline
from stale.core.errors import StaleError



@dataclass(frozen=True)
class SourceSegment:
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class SourceVideo:
    """One real video's temporal skeleton; ``subset`` is spelled as in the source file."""

    id: str
    subset: str
    duration: float
    fps: float
    segments: tuple[SourceSegment, ...]
    url: str | None = None


@dataclass(frozen=True)
class LayoutSpec:
    """Feature sampling and naming of one dataset layout.

    ``clip_frames``/``stride`` follow the ActionFormer convention (feature ``i`` covers frames
    ``[i*stride, i*stride + clip_frames)``). ``feature_fps`` is the frame rate features are
    sampled at; ``None`` means "each video's own fps from the annotation" (THUMOS14).
    """

    name: str
    clip_frames: int
    stride: int
    feature_fps: float | None
    feature_prefix: str
    default_subsets: tuple[str, ...]

    def video_fps(self, video: SourceVideo) -> float:
        return float(self.feature_fps if self.feature_fps is not None else video.fps)

    def timeline(self, video: SourceVideo) -> NativeTimeline:
        return NativeTimeline(stride=self.stride, num_frames=self.clip_frames, fps=self.video_fps(video))

    def num_video_frames(self, video: SourceVideo) -> int:
        # a tiny epsilon so 33.83 s * 30 fps = 1014.9 does not become 1014 by float error alone
        return int(math.floor(video.duration * self.video_fps(video) + 1e-6))

    def num_features(self, video: SourceVideo) -> int:
        """``floor((frames - clip_frames) / stride) + 1`` (at least 1)."""
        return self.timeline(video).num_features(self.num_video_frames(video))

    def feature_centres(self, video: SourceVideo) -> np.ndarray:
        """(T,) centre time in seconds of each feature of ``video``."""
        return self.timeline(video).index_to_seconds(np.arange(self.num_features(video)))

    def feature_file(self, video_id: str) -> str:
        return f"{self.feature_prefix}{video_id}.npy"


LAYOUTS: dict[str, LayoutSpec] = {
    # ActionFormer I3D release: 16-frame clips every 4 frames at the video's fps (0.1333 s at 30 fps)
    "thumos14": LayoutSpec("thumos14", 16, 4, None, "", ("Validation", "Test")),
    # ActionFormer TSP convention: 16-frame clips, stride 16, videos resampled to 15 fps (1.0667 s)
    "activitynet": LayoutSpec("activitynet", 16, 16, 15.0, "v_",
                              ("training", "validation")),
}


def get_layout(name: str) -> LayoutSpec:
    if name not in LAYOUTS:
        raise StaleError(f"unknown layout {name!r} (choose from {', '.join(LAYOUTS)})")
    return LAYOUTS[name]


def _read_json(path: Path) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise StaleError(f"{path}: cannot read annotation JSON ({exc})") from None


def load_source(layout: LayoutSpec, path: str | Path | None = None) -> tuple[list[SourceVideo], list[str], dict]:
    """Read the real annotation file of ``layout``.

    Returns ``(videos, class_names, extra)``: videos in file order, the ordered class list of the
    whole file (THUMOS14: by ``label_id``; ActivityNet: taxonomy leaves in alphabetical order) and
    the file's top-level fields other than ``database`` (copied into the output).
    Segments are taken as they are in the file; see docs/synth.md for how quirks render.
    """
    if path is None:
        from stale.data.resources import annotations_path

        path = annotations_path(layout.name)
    path = Path(path)
    raw = _read_json(path)
    db = raw.get("database")
    if not isinstance(db, dict):
        raise StaleError(f"{path}: field 'database' missing or not a mapping")
    videos: list[SourceVideo] = []
    label_ids: dict[str, int] = {}
    for vid, entry in db.items():
        try:
            segs = []
            for i, ann in enumerate(entry.get("annotations", [])):
                s, e = (float(x) for x in ann["segment"])
                segs.append(SourceSegment(s, e, str(ann["label"])))
                if "label_id" in ann:
                    label_ids.setdefault(str(ann["label"]), int(ann["label_id"]))
            videos.append(SourceVideo(
                id=str(vid), subset=str(entry["subset"]), duration=float(entry["duration"]),
                fps=float(entry.get("fps") or layout.feature_fps or 30.0),
                segments=tuple(segs), url=entry.get("url"),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise StaleError(f"{path}: video {vid!r}: malformed entry ({exc!r})") from None
    if layout.name == "thumos14":
        classes = sorted(label_ids, key=lambda n: (label_ids[n], n))
    else:
        names = {s.label for v in videos for s in v.segments}
        tax = raw.get("taxonomy")
        if isinstance(tax, list):
            parents = {t.get("parentName") for t in tax}
            names |= {t["nodeName"] for t in tax if t.get("nodeName") not in parents}
        classes = sorted(names)
    extra = {k: v for k, v in raw.items() if k != "database"}
    return videos, classes, extra


def select_videos(videos: list[SourceVideo], subsets: tuple[str, ...], max_per_subset: int | None,
                  seed: int) -> list[SourceVideo]:
    """Videos of the given subsets; at most ``max_per_subset`` of each, drawn with ``seed``.

    The draw of one subset does not depend on the others; the result keeps file order.
    """
    known = {v.subset for v in videos}
    missing = [s for s in subsets if s not in known]
    if missing:
        raise StaleError(f"subset(s) {missing} not in the annotation file (has {sorted(known)})")
    keep: set[str] = set()
    for k, subset in enumerate(subsets):
        ids = [v.id for v in videos if v.subset == subset]
        if max_per_subset is not None and len(ids) > max_per_subset:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 7, k]))
            ids = [ids[i] for i in rng.choice(len(ids), size=max_per_subset, replace=False)]
        keep.update(ids)
    return [v for v in videos if v.id in keep]


def repeat_video(video: SourceVideo, times: int) -> SourceVideo:
    """``video``'s skeleton ``times`` times back to back: ``times`` x its duration and instances,
    each action as long as before (a longer video of the same actions)."""
    if times == 1:
        return video
    segs = tuple(SourceSegment(s.start + k * video.duration, s.end + k * video.duration, s.label)
                 for k in range(times) for s in video.segments)
    return SourceVideo(video.id, video.subset, video.duration * times, video.fps, segs, video.url)


def annotation_json(layout: LayoutSpec, videos: list[SourceVideo], classes: list[str], extra: dict) -> dict:
    """The output annotation file, in the layout's official format, for ``videos``."""
    index = {c: i for i, c in enumerate(classes)}
    db = {}
    for v in videos:
        if layout.name == "thumos14":
            anns = [{"label": s.label, "segment": [s.start, s.end],
                     "segment(frames)": [s.start * v.fps, s.end * v.fps], "label_id": index[s.label]}
                    for s in v.segments]
            db[v.id] = {"subset": v.subset, "duration": v.duration, "fps": v.fps, "annotations": anns}
        else:
            anns = [{"segment": [s.start, s.end], "label": s.label} for s in v.segments]
            db[v.id] = {"subset": v.subset, "duration": v.duration,
                        "url": v.url or f"https://www.youtube.com/watch?v={v.id}", "annotations": anns}
    out = {"version": extra.get("version", layout.name)}
    if "taxonomy" in extra:
        out["taxonomy"] = extra["taxonomy"]
    out["database"] = db
    return out
