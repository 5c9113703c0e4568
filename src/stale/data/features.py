"""Per-video feature store: a folder of ``<prefix><video_id><suffix>`` numpy arrays of shape (T, C).

Files are memory-mapped, checked (2-D, floating dtype, expected channel count, finite values),
and returned as float32. Every failure is a :class:`StaleError` naming the file. Non-finite values
are an error by default; with ``nonfinite="zero"`` they are replaced by 0 and counted per video
in :attr:`FeatureStore.nonfinite_counts` (and logged once per file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from stale.core.errors import StaleError
from stale.core.logs import get_logger

log = get_logger(__name__)


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


@dataclass
class FeatureScan:
    """What :meth:`FeatureStore.scan` found: channel count, native lengths, non-finite counts."""

    dim: int | None
    lengths: dict[str, int]
    nonfinite: dict[str, int]
    max_abs: float = 0.0            # the largest |value| over every file (after the non-finite policy)
    max_abs_file: str | None = None  # the file holding it (named when training diverges)

    def report(self) -> dict:
        return {"channels": self.dim, "videos": len(self.lengths),
                "native_length_min": min(self.lengths.values(), default=0),
                "native_length_max": max(self.lengths.values(), default=0),
                "nonfinite_videos": len(self.nonfinite),
                "nonfinite_values_replaced": int(sum(self.nonfinite.values())),
                "max_abs_value": self.max_abs, "max_abs_file": self.max_abs_file}


def npy_problem(path, exc: BaseException) -> str:
    """One line for a ``.npy`` file numpy cannot read; numpy's advice to load pickles (which
    would run the file's code) is never passed on."""
    text = " ".join(str(exc).split())
    if "pickle" in text:
        return (f"{path}: not a readable .npy array of numbers (another kind of file, truncated, or "
                f"an array of Python objects)")
    return f"{path}: not a readable .npy array ({text[:160]})"


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
            raise StaleError(npy_problem(path, exc)) from None
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
            if video_id not in self.nonfinite_counts:
                log.warning("%s: replaced %d non-finite values by 0", path, n)
            self.nonfinite_counts[video_id] = n
        return out

    def header(self, video_id: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of a feature file, read from its .npy header only."""
        path = self.path(video_id)
        try:
            with open(path, "rb") as fh:
                fmt = np.lib.format
                version = fmt.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = fmt.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = fmt.read_array_header_2_0(fh)
                else:  # newer header versions: let numpy parse them
                    arr = np.load(path, mmap_mode="r", allow_pickle=False)
                    shape, dtype = arr.shape, arr.dtype
        except FileNotFoundError:
            raise StaleError(f"features of video {video_id} not found: expected {path}") from None
        except (ValueError, OSError, EOFError, SyntaxError) as exc:
            raise StaleError(npy_problem(path, exc)) from None
        return tuple(int(x) for x in shape), np.dtype(dtype)

    def scan(self, video_ids, expected_dim: int | None = None, progress: bool = False) -> "FeatureScan":
        """Check every file of ``video_ids`` before any work: readable, (T, C) floating point,
        one channel count (``expected_dim`` when given), finite (or counted, ``nonfinite="zero"``).

        Reads each file once (memory-mapped: the resident memory stays one file's). Errors name
        the file; the result gives the channel count, lengths and non-finite counts.
        """
        from stale.core.logs import progress as bar

        video_ids = list(video_ids)
        dim, first = expected_dim, None
        lengths: dict[str, int] = {}
        max_abs, max_file = 0.0, None
        for vid in bar(video_ids, desc="checking features", unit="video", enabled=progress):
            shape, dtype = self.header(vid)
            path = self.path(vid)
            if len(shape) != 2 or shape[0] == 0:
                raise StaleError(f"{path}: expected a (T, C) array with T > 0, got shape {shape}")
            if dtype.kind != "f":
                raise StaleError(f"{path}: expected floating-point features, got dtype {dtype}")
            if dim is None:
                dim, first = shape[1], path
            elif shape[1] != dim:
                ref = (f"the first file {first} has {dim}" if first is not None
                       else f"model.input_dim / data.features.dim is {dim}")
                raise StaleError(f"{path}: has {shape[1]} channels but {ref}")
            arr = self.load(vid)  # finiteness (error or counted), done once up front
            peak = float(np.abs(arr).max())
            if peak > max_abs:
                max_abs, max_file = peak, str(path)
            lengths[vid] = shape[0]
        return FeatureScan(dim=dim, lengths=lengths, nonfinite=dict(self.nonfinite_counts),
                           max_abs=max_abs, max_abs_file=max_file)

    def load_resampled(self, video_id: str, num_snippets: int) -> np.ndarray:
        """Features linearly resampled to STALE's fixed length: (num_snippets, C) float32."""
        from stale.data.timeline import resample_features

        if num_snippets <= 0:
            raise StaleError(f"num_snippets must be positive, got {num_snippets}")
        return resample_features(self.load(video_id), num_snippets)
