"""Where features live and how they are read: one source, or several streams concatenated.

A source is a folder of per-video files (``.npy`` arrays, ``.csv`` tables) or one container file
holding an entry per video (HDF5, a pickled dict). Each video's features are a (T, C) array; a
channel-first (C, T) release is turned around (``layout``). Several streams (RGB and optical
flow, as the paper's E = [Xr; Xo]) are read separately and concatenated along channels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stale.core.errors import StaleError

Kind = Literal["auto", "npy", "csv", "hdf5", "pickle"]
Layout = Literal["auto", "tc", "ct"]
KINDS = ("npy", "csv", "hdf5", "pickle")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pck")
#: default per-video name suffix of each kind (containers name entries by id alone)
DEFAULT_SUFFIX = {"npy": ".npy", "csv": ".csv", "hdf5": "", "pickle": ""}


@dataclass
class StreamConfig:
    """One stream of a multi-stream source; a field left ``null`` takes the value of
    ``data.features`` (``dim`` is this stream's own channel count, used to resolve (C, T))."""

    root: str = ""
    kind: Kind | None = None
    prefix: str | None = None
    suffix: str | None = None
    key: str | None = None
    layout: Layout | None = None
    dim: int | None = None


@dataclass
class FeatureConfig:
    """Where features live and how they are checked.

    root:      a folder of per-video files, or a container file (``.h5``/``.hdf5``, ``.pkl``).
    kind:      ``auto`` (from the path: a folder of ``.npy`` or ``.csv`` files, an HDF5 or pickle
               file), or ``npy`` | ``csv`` | ``hdf5`` | ``pickle``.
    prefix:    name prefix before the video id (``"v_"`` for ActivityNet feature releases).
    suffix:    name suffix after the id; null: ``.npy`` / ``.csv`` for folders, none for containers.
    key:       containers: the entry of a video, a pattern in which ``{id}`` stands for
               ``<prefix><id><suffix>``; ``/`` walks into groups (HDF5) or nested dicts (pickle),
               e.g. ``"{id}/rgb"`` (quoted in YAML: a value starting with ``{`` is a mapping
               there). null: the entry named like the video (``"{id}"``).
    layout:    ``tc`` (T, C), ``ct`` (C, T: transposed on read) or ``auto``: (C, T) when the
               expected channel count (``dim``, else the model's ``input_dim``) is the first axis
               and not the second.
    dim:       expected channel count C of the (concatenated) features; None: any.
    nonfinite: ``"error"`` (default) or ``"zero"`` (replace NaN/inf by 0, counted).
    mmap:      memory-map ``.npy`` files instead of reading them whole.
    streams:   several sources concatenated along channels, in order (``root`` is then unused).
    length_mismatch: streams of one video with different lengths: ``error`` or ``crop`` (to
               the shortest; a release's flow stream often lacks a feature or two).
    """

    root: str = "features"
    kind: Kind = "auto"
    prefix: str = ""
    suffix: str | None = None
    key: str | None = None
    layout: Layout = "auto"
    dim: int | None = None
    nonfinite: Literal["error", "zero"] = "error"
    mmap: bool = True
    streams: list[StreamConfig] = field(default_factory=list)
    length_mismatch: Literal["error", "crop"] = "error"

    def validate(self) -> None:
        if self.nonfinite not in ("error", "zero"):
            raise StaleError(f"nonfinite: must be 'error' or 'zero', got {self.nonfinite!r}")
        if self.dim is not None and self.dim <= 0:
            raise StaleError(f"dim: must be positive, got {self.dim}")
        if self.kind not in ("auto", *KINDS):
            raise StaleError(f"kind: must be one of auto, {', '.join(KINDS)}; got {self.kind!r}")
        if self.layout not in ("auto", "tc", "ct"):
            raise StaleError(f"layout: must be auto, tc or ct; got {self.layout!r}")
        if self.length_mismatch not in ("error", "crop"):
            raise StaleError(f"length_mismatch: must be 'error' or 'crop', got {self.length_mismatch!r}")
        for i, s in enumerate(self.streams):
            if not s.root:
                raise StaleError(f"streams[{i}].root: give the stream's folder or file")
            if s.dim is not None and s.dim <= 0:
                raise StaleError(f"streams[{i}].dim: must be positive, got {s.dim}")
        for key in [k for k in (self.key, *(s.key for s in self.streams)) if k is not None]:
            if key.count("{id}") != 1:
                raise StaleError(f"key {key!r}: must contain '{{id}}' exactly once")
        dims = [s.dim for s in self.streams]
        if dims and self.dim is not None and None not in dims and sum(dims) != self.dim:
            raise StaleError(f"dim: {self.dim} is not the sum of the streams' dims "
                             f"({' + '.join(str(s.dim) for s in self.streams)})")

    def resolved_streams(self) -> list[StreamConfig]:
        """Every stream with its inherited fields filled in (one stream when ``streams`` is empty)."""
        if not self.streams:
            return [StreamConfig(self.root, self.kind, self.prefix, self.suffix, self.key, self.layout, self.dim)]
        out = []
        for s in self.streams:
            out.append(StreamConfig(s.root, s.kind or self.kind, self.prefix if s.prefix is None else s.prefix,
                                    self.suffix if s.suffix is None else s.suffix, s.key or self.key,
                                    s.layout or self.layout,
                                    s.dim if s.dim is not None else (self.dim if len(self.streams) == 1 else None)))
        return out

    def roots(self) -> list[str]:
        """The paths this config reads (``root``, or every stream's)."""
        return [s.root for s in self.streams] if self.streams else [self.root]


def detect_kind(root: str | os.PathLike, prefix: str = "", suffix: str | None = None) -> str:
    """The kind of source at ``root`` (see :class:`FeatureConfig`); a path that is none of them
    is a :class:`StaleError` saying what was expected."""
    path = Path(root).expanduser()
    if path.is_dir():
        if suffix:
            for kind in ("npy", "csv"):
                if suffix.lower().endswith(DEFAULT_SUFFIX[kind]):
                    return kind
        counts = {"npy": 0, "csv": 0}
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name.lower()
                if not entry.name.startswith(prefix):
                    continue
                if name.endswith(".npy"):
                    counts["npy"] += 1
                elif name.endswith(".csv"):
                    counts["csv"] += 1
                if counts["npy"] > 50 or counts["csv"] > 50:
                    break
        if counts["csv"] > counts["npy"]:
            return "csv"
        return "npy"   # an empty folder too: the toolkit's own layout
    if path.is_file():
        name = path.name.lower()
        if name.endswith(HDF5_SUFFIXES):
            return "hdf5"
        if name.endswith(PICKLE_SUFFIXES):
            return "pickle"
        raise StaleError(f"{path}: not a feature source: expected a folder of .npy or .csv files, an HDF5 "
                         f"file ({', '.join(HDF5_SUFFIXES)}) or a pickle ({', '.join(PICKLE_SUFFIXES)}); "
                         f"set data.features.kind for another name")
    raise StaleError(f"feature source not found: {path}")
