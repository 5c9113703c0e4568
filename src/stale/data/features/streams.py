"""Several streams of one video concatenated along channels (the paper's E = [Xr; Xo]: RGB and
optical-flow features from two folders or two files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stale.core.errors import StaleError
from stale.core.logs import get_logger
from stale.data.features.source import FeatureReader, FeatureSource

log = get_logger("stale.data.features")


class ConcatSource(FeatureReader):
    """``load(id)`` = the streams' (T, C_i) features side by side: (T, sum C_i).

    Each stream is checked on its own (format, shape, its ``dim``, non-finite values); then the
    lengths must agree (``length_mismatch="crop"``: cut to the shortest, logged once per video)
    and the total channel count must be ``dim`` when given.
    """

    kind = "streams"

    def __init__(self, streams: list[FeatureSource], dim: int | None = None, length_mismatch: str = "error"):
        if len(streams) < 2:
            raise StaleError("streams: give at least two sources to concatenate")
        if length_mismatch not in ("error", "crop"):
            raise StaleError(f"length_mismatch: must be 'error' or 'crop', got {length_mismatch!r}")
        self.streams = list(streams)
        self.dim = dim
        self.length_mismatch = length_mismatch
        self.root = Path(self.streams[0].root)
        self.nonfinite = self.streams[0].nonfinite
        self.cropped: dict[str, tuple[int, ...]] = {}

    @property
    def nonfinite_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.streams:
            for vid, n in s.nonfinite_counts.items():
                out[vid] = out.get(vid, 0) + n
        return out

    def set_dim_hint(self, dim: int | None) -> None:
        # a stream's own channel count can be inferred only when the others are known
        known = [s.dim for s in self.streams]
        if dim is not None and known.count(None) == 1 and sum(d for d in known if d) < dim:
            self.streams[known.index(None)].set_dim_hint(dim - sum(d for d in known if d))

    def describe(self) -> str:
        return " + ".join(s.describe() for s in self.streams)

    def where(self, video_id: str) -> str:
        return " + ".join(s.where(video_id) for s in self.streams)

    def has(self, video_id: str) -> bool:
        return all(s.has(video_id) for s in self.streams)

    def ids(self) -> list[str]:
        common = set(self.streams[0].ids())
        for s in self.streams[1:]:
            common &= set(s.ids())
        return sorted(common)

    def load(self, video_id: str) -> np.ndarray:
        parts = [s.load(video_id) for s in self.streams]
        lengths = tuple(p.shape[0] for p in parts)
        if len(set(lengths)) > 1:
            if self.length_mismatch == "error":
                i = next(j for j, n in enumerate(lengths) if n != lengths[0])
                raise StaleError(f"video {video_id}: {self.streams[0].where(video_id)} has {lengths[0]} features "
                                 f"but {self.streams[i].where(video_id)} has {lengths[i]}; set "
                                 f"data.features.length_mismatch=crop to cut every stream to the shortest")
            if video_id not in self.cropped:
                log.info("video %s: streams of lengths %s cropped to %d", video_id, lengths, min(lengths))
            self.cropped[video_id] = lengths
            parts = [p[:min(lengths)] for p in parts]
        out = np.concatenate(parts, axis=1)
        if self.dim is not None and out.shape[1] != self.dim:
            dims = " + ".join(str(p.shape[1]) for p in parts)
            raise StaleError(f"{self.where(video_id)}: expected {self.dim} channels in all, the streams give "
                             f"{dims} = {out.shape[1]} (channel-first arrays? give each stream's dim)")
        return out
