"""Window geometry of windowed sampling (``data.sampling: window``): the one place that says
which snippets a window holds, where it lies in the video, and what happens to an action that
a window edge cuts.

Conventions (the STALE snippet convention of :mod:`stale.data.timeline`, with a per-video
snippet count instead of a fixed one):

* A video of ``duration`` seconds becomes ``M`` snippets at a fixed time step: ``M`` is the
  number of native features when ``time_step`` is None (the features' own rate: snippet ``t``
  *is* feature ``t``), else ``max(1, round(duration / time_step))`` (features linearly
  resampled, as in resize mode). Snippet ``t`` covers ``[t, t + 1) * duration / M`` seconds, so
  the actual step is ``duration / M`` (within half a snippet of ``time_step``).
* A window is ``T`` consecutive snippets ``[start, start + T)``. Starts are ``0, stride,
  2 stride, ...`` with ``stride = max(1, round(T * (1 - overlap)))``, and the last window is
  aligned to the video's end (``M - T``), so every snippet is covered and no window runs past the
  end. A video shorter than one window (``M < T``) gets one window at 0, padded beyond ``M``
  with its last snippet repeated (detections there are clipped to the video's end).
* Window-local snippet ``j`` of the window at ``start`` is video snippet ``start + j``:
  ``(start + j) * duration / M`` seconds (:meth:`WindowPlan.seconds`).
* Edge-cut policy (training): an annotated instance that a window edge cuts is kept, clipped
  to the window, when at least ``min_inside`` of its length lies inside the window; otherwise it
  is left out of that window's targets. Every decision is counted (:class:`CutCounts`).

Everything here is plain numpy and reads nothing: :func:`window_features` interpolates only the
native features a window needs from any array-like (a memory map reads just those rows), so
memory stays flat in the video's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def num_steps(duration: float, num_features: int, time_step: float | None) -> int:
    """Snippets ``M`` of a video at windowed sampling: its feature count (``time_step`` None),
    else ``max(1, round(duration / time_step))``."""
    if time_step is None:
        return max(1, int(num_features))
    return max(1, int(round(float(duration) / float(time_step))))


def window_stride(window: int, overlap: float) -> int:
    """Snippets between window starts: ``max(1, round(window * (1 - overlap)))``."""
    return max(1, int(round(window * (1.0 - float(overlap)))))


def window_starts(length: int, window: int, overlap: float, offset: int = 0) -> np.ndarray:
    """(W,) int64 start snippets of the windows tiling ``length`` snippets (module doc).

    ``offset`` (in ``[0, stride)``, training only) shifts the regular starts; the first window
    still starts at 0 and the last still ends at ``length``, so coverage never changes."""
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    stride = window_stride(window, overlap)
    last = length - window
    regular = np.arange(int(offset) % stride, last, stride, dtype=np.int64)
    return np.unique(np.concatenate([[0], regular, [last]]).astype(np.int64))


def num_windows(length: int, window: int, overlap: float) -> int:
    """How many windows :func:`window_starts` gives (without building them)."""
    if length <= window:
        return 1
    stride = window_stride(window, overlap)
    last = length - window
    n = -(-last // stride)          # regular starts 0, stride, ... below last
    return n + 1                    # plus the end-aligned one


def grown_top_n(top_n: int, length: int, window: int) -> int:
    """Detections kept for a whole video: the per-window cap ``top_n`` times the number of
    window lengths the video spans, ``top_n * max(1, ceil(M / T))`` -- proportional to the
    video's length, so a long video is not held to a short one's count."""
    return int(top_n) * max(1, math.ceil(int(length) / int(window)))


def release_rows(features, upto: int) -> int:
    """Let the OS take back the pages of rows ``[0, upto)`` of a memory-mapped ``features`` (N, C)
    array once no later window needs them; returns the bytes released (0 when there is nothing
    to do: an array in memory, a non-contiguous view, no ``madvise``).

    Pages of a file mapping that have been read count in the process's resident memory until
    they are unmapped, so a long video read window by window would otherwise grow it by the
    whole file. ``MADV_DONTNEED`` on a read-only file mapping only drops the process's page
    table entries: the data stay in the page cache and a later read sees the same values."""
    import mmap

    mm = getattr(features, "_mmap", None)              # np.memmap's mapping (np.load(mmap_mode=...))
    if (mm is None or upto <= 0 or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED")
            or not features.flags.c_contiguous):
        return 0
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    end = features.ctypes.data - base + min(int(upto), int(features.shape[0])) * int(features.strides[0])
    length = end - end % mmap.PAGESIZE
    if length <= 0:
        return 0
    mm.madvise(mmap.MADV_DONTNEED, 0, length)
    return int(length)


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one video: ``length`` M snippets of ``step`` seconds, ``window`` T, the
    (W,) ``starts``."""

    duration: float
    length: int
    window: int
    starts: np.ndarray

    @property
    def step(self) -> float:
        """Seconds per snippet: ``duration / M``."""
        return float(self.duration) / self.length

    @property
    def window_seconds(self) -> float:
        return self.window * self.step

    def offsets(self) -> np.ndarray:
        """(W,) float64 start of each window in video seconds."""
        return self.starts.astype(np.float64) * self.step

    def seconds(self, window_index, local) -> np.ndarray:
        """Video seconds of window-local snippet coordinate ``local`` (fractional allowed;
        ``T`` is the window's end) in window ``window_index`` (broadcast)."""
        start = self.starts[np.asarray(window_index, dtype=np.int64)]
        return (start + np.asarray(local, dtype=np.float64)) * self.step


def plan_windows(duration: float, num_features: int, window: int, overlap: float,
                 time_step: float | None = None, offset: int = 0) -> WindowPlan:
    """The :class:`WindowPlan` of a video of ``duration`` seconds and ``num_features`` features."""
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    m = num_steps(duration, num_features, time_step)
    return WindowPlan(float(duration), m, int(window), window_starts(m, window, overlap, offset))


def window_features(features, length: int, start: int, window: int) -> np.ndarray:
    """(window, C) float32 features of snippets ``[start, start + window)`` of a video whose
    ``features`` (N, C) (an array or memory map) are resampled to ``length`` snippets.

    Equal to ``resample_features(features, length)[start:start + window]`` (linear, samples at
    interval centres, ``align_corners=False``) but reads only the native rows the window needs;
    snippets at or beyond ``length`` (padding of a video shorter than a window) repeat the
    video's last snippet."""
    n, c = int(features.shape[0]), int(features.shape[1])
    out = np.zeros((window, c), dtype=np.float32)
    stop = min(start + window, length)
    if stop <= start:
        out[:] = window_features(features, length, length - 1, 1)[0]
        return out
    if n == length:                       # the features' own rate: a plain slice
        out[: stop - start] = np.asarray(features[start:stop], dtype=np.float32)
        return _pad_last(out, stop - start)
    t = np.arange(start, stop, dtype=np.float64)
    src = np.clip((t + 0.5) * (n / length) - 0.5, 0.0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (src - lo)[:, None]
    first, last = int(lo[0]), int(hi[-1]) + 1
    rows = np.asarray(features[first:last], dtype=np.float64)
    out[: stop - start] = ((1.0 - w) * rows[lo - first] + w * rows[hi - first]).astype(np.float32)
    return _pad_last(out, stop - start)


def _pad_last(out: np.ndarray, filled: int) -> np.ndarray:
    """Rows ``[filled, T)`` of ``out`` set to row ``filled - 1``.

    Not zeros: a zero snippet is degenerate for a layer-normalised, cosine-scored model -- from
    an identity-started encoder it reaches the cosine head as a zero vector, whose normalisation
    has a gradient of 1 / eps, and training diverged at its first step (inf gradient norm) on a
    window of a video shorter than one window. A held last frame keeps every row a real feature;
    its snippets are background (no instance reaches past the end) and detections past the end
    are dropped."""
    if filled < len(out):
        out[filled:] = out[filled - 1]
    return out


@dataclass
class CutCounts:
    """Edge-cut decisions over windows: instances wholly ``inside`` a window, ``cut_kept``
    (clipped, at least ``min_inside`` inside), ``cut_dropped`` (less inside)."""

    inside: int = 0
    cut_kept: int = 0
    cut_dropped: int = 0

    def __add__(self, other: "CutCounts") -> "CutCounts":
        return CutCounts(self.inside + other.inside, self.cut_kept + other.cut_kept,
                         self.cut_dropped + other.cut_dropped)

    def to_dict(self) -> dict:
        return {"inside": self.inside, "cut_kept": self.cut_kept, "cut_dropped": self.cut_dropped}


@dataclass
class CutSegments:
    """Instances of one window in window-local seconds: ``start``/``end`` (n,), ``index`` (n,)
    into the video's instance list, and the :class:`CutCounts` of the decision."""

    start: np.ndarray
    end: np.ndarray
    index: np.ndarray
    counts: CutCounts = field(default_factory=CutCounts)


def cut_segments(starts, ends, win_start: float, win_end: float, min_inside: float) -> CutSegments:
    """The instances ``[starts, ends]`` (seconds, (n,)) that window ``[win_start, win_end)``
    (seconds) trains on, with the edge-cut policy of the module doc, shifted to window time."""
    s, e = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    inter = np.clip(np.minimum(e, win_end) - np.maximum(s, win_start), 0.0, None)
    length = e - s
    touches = inter > 0
    whole = touches & (s >= win_start) & (e <= win_end)
    cut = touches & ~whole
    frac = np.where(length > 0, inter / np.where(length > 0, length, 1.0), 0.0)
    kept_cut = cut & (frac >= min_inside)
    keep = whole | kept_cut
    idx = np.flatnonzero(keep)
    counts = CutCounts(int(whole.sum()), int(kept_cut.sum()), int((cut & ~kept_cut).sum()))
    cs = np.clip(s[idx], win_start, win_end) - win_start
    ce = np.clip(e[idx], win_start, win_end) - win_start
    return CutSegments(cs, ce, idx, counts)
