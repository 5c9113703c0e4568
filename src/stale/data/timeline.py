"""Mapping between seconds and feature/snippet indices, in the two conventions in use.

*ActionFormer convention* (native feature stride): feature ``i`` is computed from a clip of
``num_frames`` frames starting at frame ``i * stride``, so its centre lies at
``(i * stride + num_frames / 2) / fps`` seconds.

*STALE convention* (fixed length): every video's feature sequence is resampled to ``T``
snippets by linear interpolation, and snippet ``t`` covers the normalised time interval
``[t / T, (t + 1) / T)`` of the video, i.e. ``[t, t + 1) * duration / T`` seconds; its centre
is at ``(t + 0.5) * duration / T``. Resampling treats input features as samples at their
interval centres too (``align_corners=False``), so both sides use the same centre convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NativeTimeline:
    """ActionFormer-style timeline of a feature sequence at its native stride."""

    stride: int
    num_frames: int
    fps: float

    def __post_init__(self) -> None:
        if self.stride <= 0 or self.num_frames <= 0 or not self.fps > 0:
            raise ValueError(
                f"stride, num_frames and fps must be positive (got {self.stride}, "
                f"{self.num_frames}, {self.fps})"
            )

    @property
    def seconds_per_feature(self) -> float:
        return self.stride / self.fps

    def index_to_seconds(self, index):
        """Centre time in seconds of feature ``index`` (scalar or array; fractional allowed)."""
        return (np.asarray(index, dtype=np.float64) * self.stride + 0.5 * self.num_frames) / self.fps

    def seconds_to_index(self, seconds):
        """Continuous (fractional) feature index whose centre is at ``seconds``."""
        return (np.asarray(seconds, dtype=np.float64) * self.fps - 0.5 * self.num_frames) / self.stride

    def nearest_index(self, seconds, length: int):
        """Index of the feature whose centre is nearest to ``seconds``, clipped to ``[0, length)``."""
        idx = np.rint(self.seconds_to_index(seconds)).astype(np.int64)
        return np.clip(idx, 0, length - 1)

    def num_features(self, num_video_frames: int) -> int:
        """Number of complete clips a video of ``num_video_frames`` frames yields (at least 1)."""
        return max(1, (int(num_video_frames) - self.num_frames) // self.stride + 1)


def snippet_to_seconds(index, duration: float, num_snippets: int):
    """Start time in seconds of STALE snippet ``index`` (fractional allowed); ``index == T`` is the end."""
    return np.asarray(index, dtype=np.float64) * (float(duration) / num_snippets)


def seconds_to_snippet(seconds, duration: float, num_snippets: int):
    """Continuous snippet coordinate of ``seconds``: ``0`` is the video start, ``T`` its end."""
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    return np.asarray(seconds, dtype=np.float64) * (num_snippets / float(duration))


def snippet_index(seconds, duration: float, num_snippets: int):
    """Integer index of the snippet that contains ``seconds``, clipped to ``[0, T)``."""
    pos = np.floor(seconds_to_snippet(seconds, duration, num_snippets)).astype(np.int64)
    return np.clip(pos, 0, num_snippets - 1)


def resample_features(features, num_snippets: int):
    """Linearly resample a (T_in, C) feature array to (num_snippets, C) (STALE's fixed length).

    Works on numpy arrays and torch tensors; the output has the input's type and dtype
    (computation in float32 at least). Samples sit at interval centres on both sides.
    """
    import torch
    import torch.nn.functional as F

    is_numpy = isinstance(features, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(features)) if is_numpy else features
    if x.ndim != 2:
        raise ValueError(f"expected a (T, C) feature array, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("cannot resample an empty feature sequence")
    dtype = x.dtype
    work = x.to(torch.float64 if dtype == torch.float64 else torch.float32)
    out = F.interpolate(work.T.unsqueeze(0), size=num_snippets, mode="linear", align_corners=False)
    out = out.squeeze(0).T.to(dtype)
    return out.numpy() if is_numpy else out
