"""Windowed sampling's datasets (``data.sampling: window``; geometry in :mod:`stale.data.windows`).

* :class:`WindowDataset` -- training: each item is one window of ``T`` snippets of a video, its
  features read from the window's rows only and its targets those of a *window video* (the
  window's span as a video of ``T * step`` seconds holding the instances the edge-cut policy
  keeps, shifted to window time), so the label code of resize mode serves unchanged. Window
  starts are the inference tiling shifted by a per-video offset drawn from ``(seed, video id)``:
  deterministic per seed, different between seeds, never random per item.
* :class:`WindowedVideos` -- detection: whole videos whose windows are produced lazily, one at a
  time, from any row source (a feature reader, or arrays in memory), for
  :func:`stale.pipeline.windowed.detect_windowed`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from stale.data.annotations import Segment, Video
from stale.data.dataset import VideoFeatureDataset
from stale.data.features import FeatureReader
from stale.data.windows import (CutCounts, WindowPlan, cut_segments, plan_windows, release_rows, window_features,
                                window_stride)


@dataclass(frozen=True)
class WindowSettings:
    """The window settings of a run: ``window`` T snippets, ``overlap``, ``time_step`` seconds
    (None: the features' own rate), ``min_inside`` (edge-cut policy), ``edge_weight`` (score
    factor of detections touching an inner window edge)."""

    window: int
    overlap: float = 0.5
    time_step: float | None = None
    min_inside: float = 0.5
    edge_weight: float = 0.5

    @classmethod
    def of(cls, data_cfg) -> "WindowSettings":
        """The settings of a :class:`~stale.data.config.DataConfig`."""
        return cls(data_cfg.num_snippets, data_cfg.window_overlap, data_cfg.time_step, data_cfg.window_min_inside,
                   data_cfg.window_edge_weight)


def native_length(store: FeatureReader, video_id: str) -> int:
    """Number of native features of a video (its file header when the source can read it)."""
    shape = store.header_shape(video_id)
    return int(shape[0]) if shape is not None else int(store.rows(video_id).shape[0])


def read_window(store: FeatureReader, video_id: str, plan: WindowPlan, k: int, rows=None) -> np.ndarray:
    """(T, C) float32 features of window ``k`` of ``plan`` (rows read on demand, checked)."""
    rows = store.rows(video_id) if rows is None else rows
    feats = window_features(rows, plan.length, int(plan.starts[k]), plan.window)
    return store.checked_rows(video_id, feats, int(plan.starts[k]))


def training_offset(seed: int, video_id: str, stride: int) -> int:
    """The per-video shift of the training windows, in ``[0, stride)``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(video_id.encode("utf-8"))]))
    return int(rng.integers(0, stride))


@dataclass
class TrainingWindow:
    """One training window: ``video`` (its index in the video list), ``k`` (window index),
    ``plan`` and ``window_video`` (the window as a video, with the kept instances)."""

    video: int
    k: int
    plan: WindowPlan
    window_video: Video


def training_windows(videos: Sequence[Video], store: FeatureReader, settings: WindowSettings, seed: int
                     ) -> tuple[list[TrainingWindow], CutCounts]:
    """Every training window of ``videos`` with its instances (edge-cut policy), and the counts."""
    out: list[TrainingWindow] = []
    total = CutCounts()
    stride = window_stride(settings.window, settings.overlap)
    for i, v in enumerate(videos):
        plan = plan_windows(v.duration, native_length(store, v.id), settings.window, settings.overlap,
                            settings.time_step, training_offset(seed, v.id, stride))
        starts = np.array([s.start for s in v.segments], dtype=np.float64)
        ends = np.array([s.end for s in v.segments], dtype=np.float64)
        for k, w0 in enumerate(plan.offsets()):
            cut = cut_segments(starts, ends, w0, w0 + plan.window_seconds, settings.min_inside)
            total = total + cut.counts
            segs = [Segment(float(s), float(e), v.segments[j].label)
                    for s, e, j in zip(cut.start, cut.end, cut.index.tolist())]
            wv = replace(v, id=f"{v.id}#w{k}", duration=plan.window_seconds, segments=segs)
            out.append(TrainingWindow(i, k, plan, wv))
    return out, total


class WindowDataset(VideoFeatureDataset):
    """Training windows as a :class:`VideoFeatureDataset`: item ``i`` is window ``windows[i]``
    (its ``videos[i]`` is the window video, so batches, targets and caching work unchanged)."""

    def __init__(self, videos: Sequence[Video], store: FeatureReader, settings: WindowSettings, seed: int,
                 target_fn: Callable[[Video], Any] | None = None,
                 collate_targets: Callable[[list], Any] | None = None, cache_bytes: int = 0):
        self.source_videos = list(videos)
        self.windows, self.cut_counts = training_windows(self.source_videos, store, settings, seed)
        super().__init__([w.window_video for w in self.windows], store, settings.window, target_fn,
                         collate_targets, cache_bytes)

    def features(self, i: int) -> np.ndarray:
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        w = self.windows[i]
        arr = read_window(self.store, self.source_videos[w.video].id, w.plan, w.k)
        if self._cached_bytes + arr.nbytes <= self.cache_bytes:
            import torch

            if torch.utils.data.get_worker_info() is None:
                self._cache[i] = arr
                self._cached_bytes += arr.nbytes
        return arr


@dataclass
class WindowItem:
    """One window to detect in: ``video`` (index), ``k`` (window index), ``features`` (T, C),
    ``last`` (the video's last window)."""

    video: int
    k: int
    features: np.ndarray
    last: bool


class WindowedVideos:
    """Videos to detect in with windows: ``ids``, ``durations`` (seconds), ``lengths`` (native
    features) and ``rows(video_id) -> (N, C) array-like`` (rows read on demand); ``settings``
    gives T, the overlap and the time step. Only :meth:`iter_windows` touches features, one
    window at a time. ``inference``: the merge's settings (an ``InferenceConfig``, set by the
    pipeline; None: the defaults)."""

    inference: Any = None

    def __init__(self, ids: Sequence[str], durations: Sequence[float], lengths: Sequence[int],
                 rows: Callable[[str], Any], settings: WindowSettings,
                 check: Callable[[str, np.ndarray, int], np.ndarray] | None = None):
        self.video_ids = list(ids)
        self.durations = [float(d) for d in durations]
        self.settings = settings
        self.rows = rows
        self.check = check
        self.plans = [plan_windows(d, n, settings.window, settings.overlap, settings.time_step)
                      for d, n in zip(self.durations, lengths)]

    @classmethod
    def from_store(cls, videos: Sequence[Video], store: FeatureReader, settings: WindowSettings) -> "WindowedVideos":
        return cls([v.id for v in videos], [v.duration for v in videos], [native_length(store, v.id) for v in videos],
                   store.rows, settings, store.checked_rows)

    def __len__(self) -> int:
        return len(self.video_ids)

    def num_windows(self) -> int:
        return int(sum(len(p.starts) for p in self.plans))

    def iter_windows(self) -> Iterator[WindowItem]:
        """Windows of every video in order, each read when it is reached."""
        for i, (vid, plan) in enumerate(zip(self.video_ids, self.plans)):
            rows = self.rows(vid)
            n = int(rows.shape[0])
            starts = plan.starts.tolist()
            for k, start in enumerate(starts):
                feats = window_features(rows, plan.length, start, plan.window)
                if self.check is not None:
                    feats = self.check(vid, feats, start)
                yield WindowItem(i, k, feats, k == len(starts) - 1)
                # rows no later window reads (interpolation reaches one row below a window's
                # first source position): memory stays flat in the video's length
                upto = n if k == len(starts) - 1 else int(starts[k + 1] * n // plan.length) - 1
                release_rows(rows, upto)
