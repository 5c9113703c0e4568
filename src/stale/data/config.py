"""Configs of the data side of a run: where annotations and features are, and the protocol.

Relative paths are resolved against the current directory when a run is assembled; the run
folder then records the absolute paths (and paths relative to itself, so a moved folder that
carries its data still works: see ``stale.pipeline.assemble``). ``builtin:thumos14`` /
``builtin:activitynet`` name an annotation file shipped with stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stale.core.errors import StaleError
from stale.data.features import FeatureConfig


@dataclass
class DataConfig:
    """Where the annotations and features are, and how features are turned into snippets.

    dataset: ``thumos14`` | ``activitynet`` select the standard class splits; any other name is
        allowed for user data (then give the split as files, or use closed-set).
    num_snippets: T, every video is resampled to this many snippets (paper: 256 / 100); with
        ``sampling: window`` the length of one window instead.
    sampling: ``resize`` (the paper: every video resampled to ``num_snippets``, whatever its
        length) or ``window`` (snippets at a fixed time step; training on windows of
        ``num_snippets`` cut from the videos, inference on overlapping windows whose detections
        are merged; :mod:`stale.data.windows`, docs/windows.md).
    time_step: window mode: seconds per snippet; ``null`` = the features' own rate (one
        snippet per feature).
    window_overlap: window mode: share of a window that overlaps the next, in [0, 0.95].
    window_min_inside: window mode, training: an instance cut by a window edge is kept (clipped)
        when at least this share of it lies inside the window, else left out of that window
        (counted in ``data_report.json`` under ``windows``).
    window_edge_weight: window mode, detection: a detection that touches an inner window edge
        (a cut view of an action that may continue in the next window) has its score multiplied
        by this before the windows are merged, so the complete view from a window holding the
        whole action wins the merge's Soft-NMS; 1 treats both alike.
    train_windows: window mode, training items: ``random`` (default: each epoch draws
        ``train_windows_per_video`` windows per video at uniformly random starts, re-drawn every
        epoch from ``(train.seed, epoch, video)``: with 1 an epoch costs what a resize epoch
        does) or ``tile`` (every window of a per-video shifted tiling, each epoch: an epoch grows
        with the videos' length). Chosen on dev splits (docs/windows.md): tiling scored far lower
        at 7x the steps. The held-out windows that select ``best.pt`` are always tiled.
    train_windows_per_video: windows drawn per video and epoch with ``train_windows: random``.
    missing_features: videos without a feature file: ``error`` or ``skip`` (counted in
        ``data_report.json``).
    blocked: ``api``, ``missing_features`` or files of video ids to remove.
    exclude_videos: further video ids to remove.
    cache_mb: resampled features kept in memory across epochs, at most this many MiB (the
        rest is read from disk every epoch; 0 streams everything).
    num_workers: DataLoader worker processes; ``null`` = 0 on the CPU, 2 on CUDA.
    """

    dataset: str = "thumos14"
    annotations: str = "builtin:thumos14"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    num_snippets: int = 256
    sampling: Literal["resize", "window"] = "resize"
    time_step: float | None = None
    window_overlap: float = 0.5
    window_min_inside: float = 0.5
    window_edge_weight: float = 0.5
    train_windows: Literal["tile", "random"] = "random"
    train_windows_per_video: int = 1
    train_subset: str = "validation"  # THUMOS14 trains on its validation videos
    test_subset: str = "test"
    missing_features: Literal["error", "skip"] = "error"
    blocked: list[str] = field(default_factory=list)
    exclude_videos: list[str] = field(default_factory=list)
    cache_mb: int = 256
    num_workers: int | None = None

    @property
    def tiou_preset(self) -> str:
        """The evaluation's tIoU thresholds for this dataset (``stale.evaluation.TIOU_PRESETS``):
        ActivityNet's 0.5:0.95, THUMOS14's 0.3:0.7 for every other dataset."""
        return "activitynet" if self.dataset == "activitynet" else "thumos14"

    def validate(self) -> None:
        if self.num_snippets < 2 or self.num_snippets > 4096:
            raise StaleError(f"data.num_snippets must be in [2, 4096], got {self.num_snippets}")
        if self.sampling not in ("resize", "window"):
            raise StaleError(f"data.sampling must be 'resize' or 'window', got {self.sampling!r}")
        if self.time_step is not None and not (isinstance(self.time_step, (int, float)) and self.time_step > 0):
            raise StaleError(f"data.time_step must be a positive number of seconds or null, got {self.time_step!r}")
        if not 0.0 <= self.window_overlap <= 0.95:
            raise StaleError(f"data.window_overlap must be in [0, 0.95], got {self.window_overlap}")
        if not 0.0 <= self.window_min_inside <= 1.0:
            raise StaleError(f"data.window_min_inside must be in [0, 1], got {self.window_min_inside}")
        if not 0.0 < self.window_edge_weight <= 1.0:
            raise StaleError(f"data.window_edge_weight must be in (0, 1], got {self.window_edge_weight}")
        if self.train_windows not in ("tile", "random"):
            raise StaleError(f"data.train_windows must be 'tile' or 'random', got {self.train_windows!r}")
        if not (isinstance(self.train_windows_per_video, int) and 1 <= self.train_windows_per_video <= 1000):
            raise StaleError(f"data.train_windows_per_video must be an integer in [1, 1000], "
                             f"got {self.train_windows_per_video!r}")
        if self.cache_mb < 0:
            raise StaleError(f"data.cache_mb must be >= 0, got {self.cache_mb}")
        if self.num_workers is not None and not 0 <= self.num_workers <= 64:
            raise StaleError(f"data.num_workers must be in [0, 64] or null, got {self.num_workers}")
        if not self.annotations:
            raise StaleError("data.annotations must name an annotation file")

    def annotation_path(self) -> Path:
        if self.annotations.startswith("builtin:"):
            from stale.data.resources import annotations_path

            return annotations_path(self.annotations.split(":", 1)[1])
        return Path(self.annotations).expanduser()


@dataclass
class ProtocolConfig:
    """Zero-shot (train on seen classes, test on unseen ones) or closed-set (all classes).

    unseen_in_train: what happens to training videos that also contain unseen-class segments:
        ``background`` (default: the video is kept, those segments become background) or
        ``drop`` (such videos are left out of training). Both are used in the literature.
    """

    kind: Literal["zero_shot", "closed_set"] = "zero_shot"
    setting: int = 75  # 75 (75% seen / 25% unseen) or 50
    split: int = 0  # which of the 10 standard splits
    seen_file: str | None = None  # user-defined split: one class name per line
    unseen_file: str | None = None
    unseen_in_train: Literal["background", "drop"] = "background"

    def validate(self) -> None:
        if self.setting not in (75, 50):
            raise StaleError(f"protocol.setting must be 75 or 50, got {self.setting}")
        if not 0 <= self.split <= 9:
            raise StaleError(f"protocol.split must be in 0..9, got {self.split}")
        if (self.seen_file is None) != (self.unseen_file is None):
            raise StaleError("protocol.seen_file and protocol.unseen_file go together")
