"""A folder of ``<prefix><video_id><suffix>`` numpy arrays, (T, C) or (C, T): the toolkit's own
layout (what ``stale extract`` and ``stale features convert`` write), memory-mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from stale.core.errors import StaleError
from stale.data.features.extract_meta import read_index, timeline
from stale.data.features.source import FolderSource


def npy_problem(path, exc: BaseException) -> str:
    """One line for a ``.npy`` file numpy cannot read; numpy's advice to load pickles (which
    would run the file's code) is never passed on."""
    text = " ".join(str(exc).split())
    if "pickle" in text:
        return (f"{path}: not a readable .npy array of numbers (another kind of file, truncated, or "
                f"an array of Python objects)")
    return f"{path}: not a readable .npy array ({text[:160]})"


class FeatureStore(FolderSource):
    """Reads ``<root>/<prefix><id><suffix>`` (memory-mapped); checks in :class:`FeatureSource`."""

    kind = "npy"

    def __init__(self, root: str | Path, prefix: str = "", suffix: str = ".npy", dim: int | None = None,
                 nonfinite: Literal["error", "zero"] = "error", mmap: bool = True, layout: str = "auto"):
        super().__init__(root, prefix, suffix, dim, nonfinite, layout)
        self.mmap = mmap
        self._index: dict | None | bool = False   # the folder's stale extract index, once read

    def extract_index(self) -> dict | None:
        """The folder's ``stale extract`` index (parts merged), or None when it has none."""
        if self._index is False:
            self._index = read_index(self.root)
        return self._index

    def timeline(self, video_id: str):
        index = self.extract_index()
        return None if index is None else timeline(index, video_id)

    @classmethod
    def from_config(cls, cfg) -> "FeatureStore":
        return cls(cfg.root, cfg.prefix, ".npy" if cfg.suffix is None else cfg.suffix, cfg.dim,
                   cfg.nonfinite, cfg.mmap, cfg.layout)

    def _raw(self, video_id: str) -> np.ndarray:
        path = self.path(video_id)
        if not path.is_file():
            raise self.not_found(video_id)
        try:
            arr = np.load(path, mmap_mode="r" if self.mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise StaleError(npy_problem(path, exc)) from None
        if not isinstance(arr, np.ndarray):
            raise StaleError(f"{path}: expected one array, got {type(arr).__name__}")
        return arr

    def header_shape(self, video_id: str) -> tuple[int, int]:
        shape, dtype = self.header(video_id)
        return self.oriented(shape, dtype, self.where(video_id))

    def header(self, video_id: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of a feature file as stored, read from its .npy header only."""
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
            raise self.not_found(video_id) from None
        except (ValueError, OSError, EOFError, SyntaxError) as exc:
            raise StaleError(npy_problem(path, exc)) from None
        return tuple(int(x) for x in shape), np.dtype(dtype)
