"""Single-file feature containers holding one entry per video: HDF5 files (TSP's ActivityNet and
THUMOS releases, G-TAD-style ``rgb_*.h5`` / ``flow_*.h5``) and pickled dicts.

The entry of a video is the source's ``key`` pattern with ``{id}`` replaced by
``<prefix><id><suffix>``; ``/`` walks into HDF5 groups or nested dicts (``"{id}/rgb"``,
``"features/{id}"``). HDF5 files are opened once per process (DataLoader workers open their own)
and read one video's dataset at a time, never the whole file. A pickle is read whole, once per
process, through an unpickler that only rebuilds numpy arrays and plain containers: a feature
file cannot run code.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stale.core.errors import StaleError
from stale.data.features.source import FeatureSource


class ContainerSource(FeatureSource):
    """Entries of one container file; subclasses give :meth:`_node` and :meth:`_members`."""

    def __init__(self, root: str | Path, prefix: str = "", suffix: str = "", key: str = "{id}",
                 dim: int | None = None, nonfinite: Literal["error", "zero"] = "error", layout: str = "auto"):
        super().__init__(root, prefix, suffix, dim, nonfinite, layout)
        if key.count("{id}") != 1:
            raise StaleError(f"key {key!r}: must contain '{{id}}' exactly once")
        self.key = key
        if not self.root.is_file():
            raise StaleError(f"feature file not found: {self.root}")
        self._pid: int | None = None
        self._handle: Any = None

    def __getstate__(self) -> dict:
        # an open file (or a loaded pickle) is not carried into worker processes: each opens its own
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None
        return state

    def entry(self, video_id: str) -> str:
        return self.key.replace("{id}", self.name(video_id))

    def where(self, video_id: str) -> str:
        return f"{self.root}:{self.entry(video_id)}"

    def container(self):
        """The open file / loaded dict of this process."""
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def _open(self):
        raise NotImplementedError

    def _node(self, key: str):
        """The array, group/dict or None (absent) at ``key``."""
        raise NotImplementedError

    def _members(self, node) -> list[str] | None:
        """Names inside a group/dict node; None for anything else."""
        raise NotImplementedError

    def _array(self, node, where: str):
        raise NotImplementedError

    def has(self, video_id: str) -> bool:
        return self._node(self.entry(video_id)) is not None

    def ids(self) -> list[str]:
        parts = self.key.split("/")
        i = next(j for j, p in enumerate(parts) if "{id}" in p)
        group = self._node("/".join(parts[:i])) if i else self.container()
        names = self._members(group) if group is not None else None
        pre, post = parts[i].split("{id}")
        pre, post = pre + self.prefix, self.suffix + post
        out = []
        for m in names or []:
            if m.startswith(pre) and m.endswith(post) and len(m) > len(pre) + len(post):
                out.append(m[len(pre):len(m) - len(post)])
        return sorted(out)

    def _raw(self, video_id: str):
        node = self._node(self.entry(video_id))
        where = self.where(video_id)
        if node is None:
            raise self.not_found(video_id)
        members = self._members(node)
        if members is not None:
            example = f"'{self.key}/{members[0]}'" if members else "one naming an array"
            raise StaleError(f"{where}: is a group, not an array (it holds {', '.join(members[:4]) or 'nothing'}); "
                             f"set the key pattern (data.features.key / --key) to e.g. {example}")
        return self._array(node, where)


class Hdf5Source(ContainerSource):
    """One dataset per video in an HDF5 file (read with h5py)."""

    kind = "hdf5"
    owned_reads = True

    def _open(self):
        import h5py

        try:
            return h5py.File(self.root, "r")
        except (OSError, ValueError) as exc:
            raise StaleError(f"{self.root}: not a readable HDF5 file (damaged, truncated or another kind "
                             f"of file: {' '.join(str(exc).split())[:120]})") from None

    def _node(self, key: str):
        f = self.container()
        try:
            return f.get(key) if key else f
        except (KeyError, OSError, ValueError, RuntimeError) as exc:
            raise StaleError(f"{self.root}:{key}: cannot be read ({' '.join(str(exc).split())[:120]})") from None

    def _members(self, node) -> list[str] | None:
        import h5py

        return sorted(node.keys()) if isinstance(node, h5py.Group) else None

    def _array(self, node, where: str) -> np.ndarray:
        import h5py

        if not isinstance(node, h5py.Dataset):
            raise StaleError(f"{where}: not a dataset ({type(node).__name__})")
        if node.dtype.kind != "f":   # checked before reading: strings or compound types read badly
            raise StaleError(f"{where}: expected floating-point features, got dtype {node.dtype}")
        try:
            return node[()]
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            raise StaleError(f"{where}: cannot be read, the file is damaged "
                             f"({' '.join(str(exc).split())[:120]})") from None


# numpy arrays in any pickle protocol, and plain containers: nothing that can run code
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"), ("collections", "OrderedDict"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}; a feature pickle may hold only numpy "
                                     f"arrays in dicts (convert it, e.g. tensors with .numpy())")


class PickleSource(ContainerSource):
    """A pickled dict ``{key: array}`` (nested dicts allowed), read whole once per process."""

    kind = "pickle"

    def _open(self):
        try:
            with open(self.root, "rb") as fh:
                data = _ArrayUnpickler(fh).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
                IndexError, KeyError, OverflowError, RecursionError) as exc:
            raise StaleError(f"{self.root}: not a readable pickle of feature arrays "
                             f"({' '.join(str(exc).split())[:160]})") from None
        if not isinstance(data, Mapping):
            raise StaleError(f"{self.root}: expected a pickled dict of video -> array, got {type(data).__name__}")
        return data

    def _node(self, key: str):
        node: Any = self.container()
        for part in key.split("/") if key else []:
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node

    def _members(self, node) -> list[str] | None:
        return sorted(str(k) for k in node) if isinstance(node, Mapping) else None

    def _array(self, node, where: str) -> np.ndarray:
        if isinstance(node, (list, tuple)):
            try:
                node = np.asarray(node, dtype=np.float64)
            except (ValueError, TypeError):
                raise StaleError(f"{where}: a list that is not a (T, C) table of numbers (ragged?)") from None
        if not isinstance(node, np.ndarray):
            raise StaleError(f"{where}: expected an array, got {type(node).__name__}")
        return node
