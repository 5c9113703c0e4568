"""Feature sources: every released layout of per-video (T, C) features, read as it is.

``open_features(FeatureConfig)`` gives a :class:`FeatureReader` for a folder of ``.npy`` arrays
(:class:`FeatureStore`, memory-mapped), a folder of CSV tables (:class:`CsvFolder`), an HDF5 file
or a pickled dict with one entry per video (:class:`Hdf5Source`, :class:`PickleSource`), or
several of them concatenated along channels (:class:`ConcatSource`). Every one goes through the
same checks (:class:`FeatureSource`): (T, C) after turning channel-first arrays around, T > 0,
floating point, the expected channel count, finite values (or replaced by 0 and counted), each
failure one line naming the file (and the key in a container).
"""

from __future__ import annotations

from stale.core.errors import StaleError
from stale.data.features.config import (DEFAULT_SUFFIX, KINDS, FeatureConfig, StreamConfig,
                                        detect_kind)
from stale.data.features.containers import Hdf5Source, PickleSource
from stale.data.features.npy import FeatureStore, npy_problem
from stale.data.features.source import FeatureReader, FeatureScan, FeatureSource, FolderSource
from stale.data.features.streams import ConcatSource
from stale.data.features.tables import CsvFolder

__all__ = ["FeatureConfig", "StreamConfig", "FeatureReader", "FeatureSource", "FolderSource", "FeatureScan",
           "FeatureStore", "CsvFolder", "Hdf5Source", "PickleSource", "ConcatSource", "open_features",
           "open_stream", "detect_kind", "npy_problem", "KINDS"]


def open_stream(stream: StreamConfig, nonfinite: str = "error", mmap: bool = True) -> FeatureSource:
    """One stream (all fields resolved, see :meth:`FeatureConfig.resolved_streams`)."""
    kind = stream.kind if stream.kind not in (None, "auto") else detect_kind(stream.root, stream.prefix or "",
                                                                             stream.suffix)
    prefix = stream.prefix or ""
    suffix = DEFAULT_SUFFIX[kind] if stream.suffix is None else stream.suffix
    layout = stream.layout or "auto"
    if kind == "npy":
        return FeatureStore(stream.root, prefix, suffix, stream.dim, nonfinite, mmap, layout)
    if kind == "csv":
        return CsvFolder(stream.root, prefix, suffix, stream.dim, nonfinite, layout)
    cls = Hdf5Source if kind == "hdf5" else PickleSource
    return cls(stream.root, prefix, suffix, stream.key or "{id}", stream.dim, nonfinite, layout)


def open_features(cfg: FeatureConfig, root: str | None = None) -> FeatureReader:
    """The reader ``cfg`` describes (``root`` replaces ``cfg.root`` of a one-stream source)."""
    cfg.validate()
    streams = cfg.resolved_streams()
    if root is not None:
        if len(streams) > 1:
            raise StaleError(f"features {root}: this run reads {len(streams)} streams "
                             f"({', '.join(s.root for s in streams)}); give them with --set data.features.streams=...")
        streams[0].root = str(root)
    sources = [open_stream(s, cfg.nonfinite, cfg.mmap) for s in streams]
    if len(sources) == 1:
        return sources[0]
    return ConcatSource(sources, cfg.dim, cfg.length_mismatch)
