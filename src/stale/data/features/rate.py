"""Which feature rate a release has, from its lengths and the videos' durations.

Releases rarely say how a feature index maps to seconds. Under the ActionFormer convention
(:class:`stale.data.timeline.NativeTimeline`) a video of ``d`` seconds at ``fps`` gives
``T = (d * fps - clip_frames) // stride + 1`` features, i.e. ``T ~ a * d + b`` with slope
``a = fps / stride`` (features per second) and intercept ``b = 1 - clip_frames / stride``.
:func:`estimate_rate` fits that line over the videos and names the known conventions it
matches; a release whose videos all have the same length whatever their duration was resampled
to a fixed length (BSN/BMN's 100), which has no native rate at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from stale.core.errors import StaleError


@dataclass(frozen=True)
class Convention:
    """How a release sampled its features: clips of ``clip_frames`` every ``stride`` frames of
    a video decoded at ``fps``; ``rate`` features per second."""

    name: str
    clip_frames: int
    stride: int
    fps: float
    description: str

    @property
    def rate(self) -> float:
        return self.fps / self.stride

    @property
    def intercept(self) -> float:
        return 1.0 - self.clip_frames / self.stride


CONVENTIONS = (
    Convention("actionformer-thumos14-i3d", 16, 4, 30.0,
               "ActionFormer's THUMOS14 I3D: 16-frame clips every 4 frames at 30 fps"),
    Convention("actionformer-anet-tsp", 16, 16, 15.0,
               "TSP ActivityNet features (ActionFormer): 16-frame clips every 16 frames at 15 fps"),
    Convention("actionformer-anet-i3d", 16, 16, 25.0,
               "ActivityNet I3D (ActionFormer): 16-frame clips every 16 frames at 25 fps"),
    Convention("frames-10fps", 1, 1, 10.0,
               "one feature every 0.1 s (e.g. CLIP features of frames sampled at 10 fps)"),
    Convention("gtad-thumos14-tsn", 5, 5, 30.0,
               "G-TAD's THUMOS14 TSN: a snippet every 5 frames at 30 fps"),
    Convention("clips16-30fps", 16, 16, 30.0,
               "16-frame clips every 16 frames at 30 fps (stale extract's default on a 30 fps video)"),
)


#: ``stale extract --convention NAME``: sampling presets, each with its source and feature rate
EXTRACT_PRESETS = {c.name: c for c in (
    Convention("actionformer-thumos14", 16, 4, 30.0,
               "ActionFormer's THUMOS14 features (Zhang et al., ECCV 2022): 16-frame clips every 4 frames "
               "of the video resampled to 30 fps = 7.5 features/s (one per 0.1333 s)"),
    Convention("stale-anet-clip", 16, 16, 15.0,
               "STALE on ActivityNet (Nag et al., ECCV 2022, Sec. 3: 16-frame snippets, CLIP ViT-B/16); the "
               "paper gives no frame rate: 15 fps as ActionFormer's ActivityNet TSP release, so the two "
               "align = 0.9375 features/s"),
)}


def apply_preset(name: str | None, clip_frames: int, stride: int, fps: float | None,
                 defaults: tuple[int, int] = (16, 16)) -> tuple[int, int, float | None]:
    """``(clip_frames, stride, fps)`` of the preset ``name`` (None: the arguments unchanged). A
    value given besides the preset that differs from it (``clip_frames`` / ``stride`` other than
    their ``defaults``, any ``fps``) is a one-line error naming both."""
    if name is None:
        return clip_frames, stride, fps
    if name not in EXTRACT_PRESETS:
        raise StaleError(f"--convention {name!r}: unknown; choose one of {', '.join(EXTRACT_PRESETS)}")
    c = EXTRACT_PRESETS[name]
    given = {"--clip-frames": (clip_frames, defaults[0], c.clip_frames), "--stride": (stride, defaults[1], c.stride),
             "--fps": (fps, None, c.fps)}
    for option, (value, default, preset) in given.items():
        if value != default and value != preset:
            raise StaleError(f"--convention {name} sets {option} {preset:g}; got {option} {value:g} besides it "
                             f"(drop one)")
    return c.clip_frames, c.stride, c.fps


@dataclass
class RateEstimate:
    """What :func:`estimate_rate` found (``None`` fields: not determined)."""

    videos: int
    fixed_length: int | None = None           # every video has this length: resampled, no native rate
    per_second_median: float | None = None     # median of T / duration
    per_second_p5: float | None = None
    per_second_p95: float | None = None
    slope: float | None = None                 # least-squares T ~ slope * duration + intercept
    intercept: float | None = None
    seconds_per_feature: float | None = None
    matches: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        if self.videos == 0:
            return "feature rate: no video with both features and a duration"
        if self.fixed_length is not None:
            return (f"feature rate: none -- every video has {self.fixed_length} features whatever its duration "
                    f"(resampled to a fixed length, as BSN/BMN's 100)")
        text = (f"feature rate: {self.per_second_median:.3f} features/s median (5-95%: {self.per_second_p5:.3f}"
                f"-{self.per_second_p95:.3f})")
        if self.slope is not None:
            text += (f"; fit T = {self.slope:.3f} x duration {self.intercept:+.2f} "
                     f"({self.seconds_per_feature:.4f} s per feature)")
        if self.matches:
            text += "; matches " + "; ".join(m["description"] for m in self.matches)
        else:
            text += "; matches no known convention"
        return text


def estimate_rate(lengths: dict[str, int], durations: dict[str, float], tolerance: float = 0.03) -> RateEstimate:
    """The feature rate implied by ``lengths`` (video -> T) and ``durations`` (video -> seconds).

    A convention matches when its rate is within ``tolerance`` (relative) of the fitted slope
    (of the median rate when the durations are too alike for a fit: spread under 25 %) and, when there is a fit,
    its intercept ``1 - clip_frames / stride`` within 1.5 features of the fitted one.
    """
    ids = [v for v in lengths if v in durations and durations[v] > 0]
    if not ids:
        return RateEstimate(0)
    t = np.array([lengths[v] for v in ids], dtype=np.float64)
    d = np.array([durations[v] for v in ids], dtype=np.float64)
    spread = float(d.std() / d.mean()) if len(d) > 1 else 0.0
    if len(ids) >= 3 and np.all(t == t[0]) and spread > 0.05:
        return RateEstimate(len(ids), fixed_length=int(t[0]))
    r = t / d
    est = RateEstimate(len(ids), per_second_median=float(np.median(r)), per_second_p5=float(np.percentile(r, 5)),
                       per_second_p95=float(np.percentile(r, 95)))
    if len(ids) >= 3 and spread > 0.25:   # alike durations leave the line's intercept undetermined
        slope, intercept = np.polyfit(d, t, 1)
        est.slope, est.intercept = float(slope), float(intercept)
    rate = est.slope if est.slope is not None else est.per_second_median
    est.seconds_per_feature = 1.0 / rate if rate > 0 else None
    for c in CONVENTIONS:
        if abs(rate - c.rate) > tolerance * c.rate:
            continue
        if est.intercept is not None and abs(est.intercept - c.intercept) > 1.5:
            continue
        est.matches.append({"name": c.name, "description": c.description, "clip_frames": c.clip_frames,
                            "stride": c.stride, "fps": c.fps, "rate": c.rate})
    return est
