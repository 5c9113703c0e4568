"""The checks every feature source goes through, whatever its file format.

:class:`FeatureReader` is what the rest of the toolkit uses: ``load(id)`` -> (T, C) float32,
``scan(ids)`` before any work, ``missing(ids)``, ``ids()``, ``where(id)`` (the file, or
``file:key``, named in every message). :class:`FeatureSource` is one stream of one format: a
subclass only finds a video's raw array (``_raw``); orientation ((C, T) -> (T, C)), the shape,
dtype and channel checks, the float32 cast and the non-finite policy are done here, the same way
for every format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from stale.core.errors import StaleError
from stale.core.logs import get_logger

log = get_logger("stale.data.features")


@dataclass
class FeatureScan:
    """What :meth:`FeatureReader.scan` found: channel count, native lengths, non-finite counts."""

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


class FeatureReader:
    """Reads (T, C) float32 features of one video by id (any source, one stream or several)."""

    kind = ""
    root: Path
    dim: int | None
    nonfinite: str

    # -- what a source provides
    def where(self, video_id: str) -> str:
        """The file (``file:key`` in a container) holding ``video_id``'s features."""
        raise NotImplementedError

    def has(self, video_id: str) -> bool:
        raise NotImplementedError

    def ids(self) -> list[str]:
        """Sorted ids of the videos the source holds."""
        raise NotImplementedError

    def load(self, video_id: str) -> np.ndarray:
        """Features of ``video_id`` as a new (T, C) float32 array, checked."""
        raise NotImplementedError

    @property
    def nonfinite_counts(self) -> dict[str, int]:
        """Video -> non-finite values replaced by 0 (``nonfinite="zero"``), in this process."""
        raise NotImplementedError

    def set_dim_hint(self, dim: int | None) -> None:
        """The channel count a run expects, used (when ``dim`` is unset) to resolve (C, T) arrays."""

    def header_shape(self, video_id: str) -> tuple[int, int] | None:
        """(T, C) of a video read cheaply (a file header), or None where that needs the data."""
        return None

    def timeline(self, video_id: str):
        """The :class:`~stale.data.timeline.NativeTimeline` (feature index <-> seconds) the source
        declares for ``video_id``, or None where it declares none (only ``stale extract``'s
        folders do, in ``extract_meta.json``)."""
        return None

    def describe(self) -> str:
        return f"{self.kind} {self.root}"

    # -- the same for every source
    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self.has(video_id)

    def missing(self, video_ids) -> list[str]:
        """The ids among ``video_ids`` without features (to report before training)."""
        return [v for v in video_ids if not self.has(v)]

    def scan(self, video_ids, expected_dim: int | None = None, progress: bool = False) -> FeatureScan:
        """Check every video of ``video_ids`` before any work: readable, (T, C) floating point,
        one channel count (``expected_dim`` when given), finite (or counted, ``nonfinite="zero"``).

        Reads each video once (memory-mapped where the format allows: the resident memory stays
        one video's). Errors name the file; the result gives channels, lengths, non-finite counts.
        """
        from stale.core.logs import progress as bar

        if expected_dim is not None:
            self.set_dim_hint(expected_dim)
        dim, first = expected_dim, None
        lengths: dict[str, int] = {}
        max_abs, max_file = 0.0, None
        for vid in bar(list(video_ids), desc="checking features", unit="video", enabled=progress):
            where = self.where(vid)
            head = self.header_shape(vid)   # a wrong file fails before it is read, where there is a header
            if head is not None:
                dim, first = self._same_channels(head[1], dim, first, where)
            arr = self.load(vid)   # shape, dtype, finiteness (error or counted), done once up front
            dim, first = self._same_channels(arr.shape[1], dim, first, where)
            peak = float(np.abs(arr).max())
            if peak > max_abs:
                max_abs, max_file = peak, where
            lengths[vid] = int(arr.shape[0])
        return FeatureScan(dim=dim, lengths=lengths, nonfinite=dict(self.nonfinite_counts),
                           max_abs=max_abs, max_abs_file=max_file)

    @staticmethod
    def _same_channels(c: int, dim: int | None, first: str | None, where: str) -> tuple[int, str | None]:
        """(dim, first file) after checking that ``where`` has ``c`` channels like the others."""
        if dim is None:
            return c, where
        if c != dim:
            ref = (f"the first file {first} has {dim}" if first is not None
                   else f"model.input_dim / data.features.dim is {dim}")
            raise StaleError(f"{where}: has {c} channels but {ref}")
        return dim, first

    def rows(self, video_id: str):
        """(T, C) features of a video as an array-like whose row slices are read on demand
        (a memory map for ``.npy`` folders; the loaded array elsewhere). Windowed sampling reads
        a window's rows from it, so memory stays flat in the video's length; rows are checked
        for non-finite values by the caller (:meth:`checked_rows`)."""
        return self.load(video_id)

    def checked_rows(self, video_id: str, rows: np.ndarray, first: int) -> np.ndarray:
        """``rows`` (n, C) float32 read from :meth:`rows` at index ``first``, under the
        non-finite policy (``error`` names the file and time step, ``zero`` replaces them)."""
        bad = ~np.isfinite(rows)
        if bad.any():
            if self.nonfinite == "error":
                t = first + int(np.argwhere(bad)[0, 0])
                raise StaleError(f"{self.where(video_id)}: non-finite values (first at time step {t}); "
                                 f"set nonfinite='zero' to replace them by 0")
            rows = np.where(bad, np.float32(0.0), rows)
        return rows

    def load_resampled(self, video_id: str, num_snippets: int) -> np.ndarray:
        """Features linearly resampled to STALE's fixed length: (num_snippets, C) float32."""
        from stale.data.timeline import resample_features

        if num_snippets <= 0:
            raise StaleError(f"num_snippets must be positive, got {num_snippets}")
        return resample_features(self.load(video_id), num_snippets)


class FeatureSource(FeatureReader):
    """One stream in one format; subclasses implement :meth:`_raw`, :meth:`has`, :meth:`ids`,
    :meth:`where`. ``owned_reads``: ``_raw`` returns a fresh array (no copy needed)."""

    owned_reads = False

    def __init__(self, root: str | Path, prefix: str = "", suffix: str = "", dim: int | None = None,
                 nonfinite: Literal["error", "zero"] = "error", layout: str = "auto"):
        if nonfinite not in ("error", "zero"):
            raise StaleError(f"nonfinite: must be 'error' or 'zero', got {nonfinite!r}")
        if dim is not None and dim <= 0:
            raise StaleError(f"dim: must be positive, got {dim}")
        if layout not in ("auto", "tc", "ct"):
            raise StaleError(f"layout: must be auto, tc or ct; got {layout!r}")
        self.root = Path(root)
        self.prefix, self.suffix, self.dim = prefix, suffix, dim
        self.nonfinite, self.layout = nonfinite, layout
        self._nonfinite_counts: dict[str, int] = {}
        self._dim_hint: int | None = None

    @property
    def nonfinite_counts(self) -> dict[str, int]:
        return self._nonfinite_counts

    def set_dim_hint(self, dim: int | None) -> None:
        self._dim_hint = dim

    def name(self, video_id: str) -> str:
        """``<prefix><id><suffix>``: the file name or container entry of a video."""
        return f"{self.prefix}{video_id}{self.suffix}"

    def _raw(self, video_id: str):
        """The video's array as stored (a memory map, an array read from the file, ...);
        a missing or unreadable entry is a StaleError naming :meth:`where`."""
        raise NotImplementedError

    def not_found(self, video_id: str) -> StaleError:
        return StaleError(f"features of video {video_id} not found: expected {self.where(video_id)}")

    def transposed(self, shape: tuple[int, ...]) -> bool:
        """Whether a stored array of ``shape`` is channel-first (see ``FeatureConfig.layout``)."""
        if self.layout != "auto":
            return self.layout == "ct" and len(shape) == 2
        want = self.dim or self._dim_hint
        return len(shape) == 2 and want is not None and shape[1] != want and shape[0] == want

    def oriented(self, shape: tuple[int, ...], dtype: np.dtype, where: str) -> tuple[int, int]:
        """The (T, C) of a stored array of ``shape`` / ``dtype`` (2-D, T > 0, floating point),
        or the StaleError naming ``where``; the channel count is not checked here."""
        if len(shape) != 2:
            raise StaleError(f"{where}: expected a (T, C) array with T > 0, got shape {tuple(shape)}")
        t, c = (shape[1], shape[0]) if self.transposed(shape) else (shape[0], shape[1])
        if t == 0:
            raise StaleError(f"{where}: expected a (T, C) array with T > 0, got shape {tuple(shape)}")
        if np.dtype(dtype).kind != "f":
            raise StaleError(f"{where}: expected floating-point features, got dtype {dtype}")
        return int(t), int(c)

    def check_header(self, shape: tuple[int, ...], dtype: np.dtype, where: str) -> tuple[int, int]:
        """:meth:`oriented`, and the channel count ``dim``."""
        t, c = self.oriented(shape, dtype, where)
        if self.dim is not None and c != self.dim:
            hint = "" if self.layout != "auto" else " (neither axis has that size)"
            raise StaleError(f"{where}: expected {self.dim} channels, got shape {tuple(shape)}{hint}")
        return t, c

    def rows(self, video_id: str):
        raw = self._raw(video_id)
        self.check_header(raw.shape, raw.dtype, self.where(video_id))
        return raw.T if self.transposed(raw.shape) else raw

    def load(self, video_id: str) -> np.ndarray:
        raw = self._raw(video_id)
        where = self.where(video_id)
        self.check_header(raw.shape, raw.dtype, where)
        arr = raw.T if self.transposed(raw.shape) else raw
        # the cast copies out of a memory map; float64 beyond float32's range becomes inf here,
        # so finiteness is checked after it
        with np.errstate(over="ignore"):
            if self.owned_reads:
                out = np.ascontiguousarray(arr, dtype=np.float32)
            else:
                out = np.array(arr, dtype=np.float32, order="C", copy=True)
        bad = ~np.isfinite(out)
        if bad.any():
            n = int(bad.sum())
            if self.nonfinite == "error":
                t = int(np.argwhere(bad)[0, 0])
                raise StaleError(f"{where}: {n} non-finite values (first at time step {t}); "
                                 f"set nonfinite='zero' to replace them by 0")
            out[bad] = 0.0
            if video_id not in self._nonfinite_counts:
                log.warning("%s: replaced %d non-finite values by 0", where, n)
            self._nonfinite_counts[video_id] = n
        return out


class FolderSource(FeatureSource):
    """A folder holding one file per video, ``<root>/<prefix><id><suffix>``."""

    def __init__(self, root: str | Path, prefix: str = "", suffix: str = "", dim: int | None = None,
                 nonfinite: Literal["error", "zero"] = "error", layout: str = "auto"):
        super().__init__(root, prefix, suffix, dim, nonfinite, layout)
        if not self.root.is_dir():
            raise StaleError(f"feature folder not found: {self.root}")

    def path(self, video_id: str) -> Path:
        return self.root / self.name(video_id)

    def where(self, video_id: str) -> str:
        return str(self.path(video_id))

    def has(self, video_id: str) -> bool:
        return self.path(video_id).is_file()

    def ids(self) -> list[str]:
        n_pre, n_suf = len(self.prefix), len(self.suffix)
        return sorted(p.name[n_pre:len(p.name) - n_suf] for p in self.root.glob(f"{self.prefix}*{self.suffix}")
                      if p.is_file() and len(p.name) > n_pre + n_suf)
