"""Windowed sampling's datasets (``data.sampling: window``; geometry in :mod:`stale.data.windows`).

* :class:`WindowDataset` -- training: each item is one window of ``T`` snippets of a video, its
  features read from the window's rows only and its targets those of a *window video* (the
  window's span as a video of ``T * step`` seconds holding the instances the edge-cut policy
  keeps, shifted to window time), so the label code of resize mode serves unchanged. Window
  starts are the inference tiling shifted by a per-video offset drawn from ``(seed, video id)``:
  deterministic per seed, different between seeds, never random per item.
* :class:`DrawnWindowDataset` -- training with ``data.train_windows: random``: ``k`` windows per
  video and epoch at uniformly random starts drawn from ``(seed, epoch, video id, slot)``. The
  epoch travels in the item index (``epoch * len + slot``, :meth:`DrawnWindowDataset.epoch_items`),
  so loader workers need no shared state and a resumed run reads exactly the same windows.
* :class:`WindowedVideos` -- detection: whole videos whose windows are produced lazily, one at a
  time, from any row source (a feature reader, or arrays in memory), for
  :func:`stale.pipeline.windowed.detect_windowed`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from stale.data.annotations import Segment, Video
from stale.data.dataset import Batch, VideoFeatureDataset
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
        for k, w0 in enumerate(plan.offsets()):
            wv, counts = window_video(v, w0, plan.window_seconds, settings.min_inside, f"{v.id}#w{k}")
            total = total + counts
            out.append(TrainingWindow(i, k, plan, wv))
    return out, total


def window_video(video: Video, start: float, seconds: float, min_inside: float, name: str
                 ) -> tuple[Video, CutCounts]:
    """The window ``[start, start + seconds)`` (video seconds) of ``video`` as a video named
    ``name``: the instances the edge-cut policy keeps, in window time, and the policy's counts."""
    starts = np.array([s.start for s in video.segments], dtype=np.float64)
    ends = np.array([s.end for s in video.segments], dtype=np.float64)
    cut = cut_segments(starts, ends, start, start + seconds, min_inside)
    segs = [Segment(float(s), float(e), video.segments[j].label)
            for s, e, j in zip(cut.start, cut.end, cut.index.tolist())]
    return replace(video, id=name, duration=seconds, segments=segs), cut.counts


def drawn_start(seed: int, epoch: int, video_id: str, slot: int, last: int) -> int:
    """A window start drawn uniformly from ``[0, last]`` snippets for ``(seed, epoch, video,
    slot)``: the same four always give the same start."""
    rng = np.random.default_rng(np.random.SeedSequence(
        [int(seed), int(epoch), zlib.crc32(video_id.encode("utf-8")), int(slot)]))
    return int(rng.integers(0, max(int(last), 0) + 1))


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
            if torch.utils.data.get_worker_info() is None:
                self._cache[i] = arr
                self._cached_bytes += arr.nbytes
        return arr


class DrawnWindowDataset(VideoFeatureDataset):
    """Training windows drawn per epoch (``data.train_windows: random``): ``per_video`` windows
    of each video per epoch, each at a start drawn uniformly from ``[0, M - T]``
    (:func:`drawn_start`; a video shorter than a window always gives its one padded window).

    It has ``len(videos) * per_video`` slots; index ``epoch * len(self) + slot`` is slot ``slot``
    in epoch ``epoch`` (:meth:`epoch_items` turns an epoch's order of slots into indices), and a
    plain index below ``len(self)`` is epoch 0 -- what a one-pass reader (the linear probe) sees.
    Items carry their window video, so a batch's durations and ids are the windows'. The cache
    keeps whole videos at the window time step (sliced per window) up to ``cache_bytes``; the
    others are read a window's rows at a time."""

    def __init__(self, videos: Sequence[Video], store: FeatureReader, settings: WindowSettings, seed: int,
                 per_video: int = 1, target_fn: Callable[[Video], Any] | None = None,
                 collate_targets: Callable[[list], Any] | None = None, cache_bytes: int = 0):
        self.source_videos = list(videos)
        self.settings = settings
        self.seed = int(seed)
        self.per_video = int(per_video)
        self.plans = [plan_windows(v.duration, native_length(store, v.id), settings.window, settings.overlap,
                                   settings.time_step) for v in self.source_videos]
        super().__init__(self.source_videos, store, settings.window, target_fn, collate_targets, cache_bytes)

    def __len__(self) -> int:
        return len(self.source_videos) * self.per_video

    def epoch_items(self, order, epoch: int):
        """Indices of epoch ``epoch``'s items from its order of slots (a tensor or sequence)."""
        return torch.as_tensor(order, dtype=torch.long) + int(epoch) * len(self)

    def window_of(self, index: int) -> tuple[int, int, int]:
        """``(video, epoch, start snippet)`` of item ``index``."""
        epoch, slot = divmod(int(index), len(self))
        video, j = divmod(slot, self.per_video)
        plan = self.plans[video]
        start = drawn_start(self.seed, epoch, self.source_videos[video].id, j, plan.length - plan.window)
        return video, epoch, start

    def features(self, i: int) -> np.ndarray:
        return self._features(*self.window_of(i)[::2])

    def _features(self, video: int, start: int) -> np.ndarray:
        """(T, C) features of the window at ``start`` of ``video``: sliced from the whole video at
        the window step when it is cached (it is cached while the budget allows), else read from
        the window's own rows only -- a long video is never read whole for one window."""
        v, plan = self.source_videos[video], self.plans[video]
        hit = self._cache.get(video)
        if hit is not None:
            return window_features(hit, plan.length, start, plan.window)
        rows = self.store.rows(v.id)
        whole = plan.length * int(rows.shape[1]) * 4
        if torch.utils.data.get_worker_info() is None and self._cached_bytes + whole <= self.cache_bytes:
            arr = self.store.checked_rows(v.id, window_features(rows, plan.length, 0, plan.length), 0)
            self._cache[video] = arr
            self._cached_bytes += arr.nbytes
            return window_features(arr, plan.length, start, plan.window)
        return self.store.checked_rows(v.id, window_features(rows, plan.length, start, plan.window), start)

    def window(self, i: int) -> tuple[Video, CutCounts]:
        """The window video of item ``i`` (instances by the edge-cut policy, in window time)
        and the policy's counts."""
        return self._window(*self.window_of(i)[::2])

    def _window(self, video: int, start: int) -> tuple[Video, CutCounts]:
        v, plan = self.source_videos[video], self.plans[video]
        return window_video(v, start * plan.step, plan.window_seconds, self.settings.min_inside, f"{v.id}@{start}")

    def epoch_counts(self, epoch: int) -> CutCounts:
        """The edge-cut counts of epoch ``epoch``'s draws."""
        total = CutCounts()
        for slot in range(len(self)):
            total = total + self.window(epoch * len(self) + slot)[1]
        return total

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, Any, Video]:
        video, _, start = self.window_of(i)           # one draw per item
        wv = self._window(video, start)[0]
        target = self.target_fn(wv) if self.target_fn is not None else None
        return i, self._features(video, start), target, wv

    def collate(self, items: list) -> Batch:
        feats = torch.from_numpy(np.stack([it[1] for it in items]))
        targets = None
        if self.target_fn is not None and self.collate_targets is not None:
            targets = self.collate_targets([it[2] for it in items])
        return Batch(torch.tensor([it[0] for it in items], dtype=torch.long), feats,
                     torch.tensor([it[3].duration for it in items], dtype=torch.float64),
                     [it[3].id for it in items], targets)


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
