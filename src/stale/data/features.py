"""Per-video feature store: a folder of ``<prefix><video_id><suffix>`` numpy arrays of shape (T, C).

Files are memory-mapped, checked (2-D, floating dtype, expected channel count, finite values),
and returned as float32. Every failure is a :class:`StaleError` naming the file. Non-finite values
are an error by default; with ``nonfinite="zero"`` they are replaced by 0 and counted per video
in :attr:`FeatureStore.nonfinite_counts` (and logged once per file).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from stale.errors import StaleError

log = logging.getLogger(__name__)


@dataclass
class FeatureConfig:
    """Where features live and how they are checked.

    root:      folder of feature files.
    prefix:    file-name prefix before the video id (``"v_"`` for ActivityNet feature releases).
    suffix:    file-name suffix (``.npy``).
    dim:       expected channel count C (512 for CLIP ViT-B/16, 2048 for I3D); None: any.
    nonfinite: ``"error"`` (default) or ``"zero"`` (replace NaN/inf by 0, counted).
    mmap:      memory-map the files instead of reading them whole.
    """

    root: str = "features"
    prefix: str = ""
    suffix: str = ".npy"
    dim: int | None = None
    nonfinite: Literal["error", "zero"] = "error"
    mmap: bool = True

    def validate(self) -> None:
        if self.nonfinite not in ("error", "zero"):
            raise StaleError(f"nonfinite: must be 'error' or 'zero', got {self.nonfinite!r}")
        if self.dim is not None and self.dim <= 0:
            raise StaleError(f"dim: must be positive, got {self.dim}")


class FeatureStore:
    """Reads (T, C) float32 features of one video by id; see the module docstring for checks."""

    def __init__(self, root: str | Path, prefix: str = "", suffix: str = ".npy", dim: int | None = None,
                 nonfinite: Literal["error", "zero"] = "error", mmap: bool = True):
        FeatureConfig(str(root), prefix, suffix, dim, nonfinite, mmap).validate()
        self.root = Path(root)
        self.prefix, self.suffix, self.dim = prefix, suffix, dim
        self.nonfinite, self.mmap = nonfinite, mmap
        self.nonfinite_counts: dict[str, int] = {}
        if not self.root.is_dir():
            raise StaleError(f"feature folder not found: {self.root}")

    @classmethod
    def from_config(cls, cfg: FeatureConfig) -> "FeatureStore":
        return cls(cfg.root, cfg.prefix, cfg.suffix, cfg.dim, cfg.nonfinite, cfg.mmap)

    def path(self, video_id: str) -> Path:
        return self.root / f"{self.prefix}{video_id}{self.suffix}"

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self.path(video_id).is_file()

    def ids(self) -> list[str]:
        """Sorted ids of the videos that have a feature file."""
        n_pre, n_suf = len(self.prefix), len(self.suffix)
        return sorted(p.name[n_pre:len(p.name) - n_suf] for p in self.root.glob(f"{self.prefix}*{self.suffix}")
                      if p.is_file() and len(p.name) > n_pre + n_suf)

    def missing(self, video_ids) -> list[str]:
        """The ids among ``video_ids`` that have no feature file (to report before training)."""
        return [v for v in video_ids if v not in self]

    def load(self, video_id: str) -> np.ndarray:
        """Features of ``video_id`` as a new (T, C) float32 array."""
        path = self.path(video_id)
        if not path.is_file():
            raise StaleError(f"features of video {video_id} not found: expected {path}")
        try:
            arr = np.load(path, mmap_mode="r" if self.mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise StaleError(f"{path}: not a readable .npy array ({exc})") from None
        if not isinstance(arr, np.ndarray):
            raise StaleError(f"{path}: expected one array, got {type(arr).__name__}")
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise StaleError(f"{path}: expected a (T, C) array with T > 0, got shape {arr.shape}")
        if arr.dtype.kind != "f":
            raise StaleError(f"{path}: expected floating-point features, got dtype {arr.dtype}")
        if self.dim is not None and arr.shape[1] != self.dim:
            raise StaleError(f"{path}: expected {self.dim} channels, got shape {arr.shape}")
        # the cast copies out of the memory map; float64 beyond float32's range becomes inf here,
        # so finiteness is checked after it
        with np.errstate(over="ignore"):
            out = np.array(arr, dtype=np.float32, copy=True)
        bad = ~np.isfinite(out)
        if bad.any():
            n = int(bad.sum())
            if self.nonfinite == "error":
                t = int(np.argwhere(bad)[0, 0])
                raise StaleError(f"{path}: {n} non-finite values (first at time step {t}); "
                                 f"set nonfinite='zero' to replace them by 0")
            out[bad] = 0.0
            self.nonfinite_counts[video_id] = n
            log.warning("%s: replaced %d non-finite values by 0", path, n)
        return out

    def load_resampled(self, video_id: str, num_snippets: int) -> np.ndarray:
        """Features linearly resampled to STALE's fixed length: (num_snippets, C) float32."""
        from stale.data.timeline import resample_features

        if num_snippets <= 0:
            raise StaleError(f"num_snippets must be positive, got {num_snippets}")
        return resample_features(self.load(video_id), num_snippets)
