"""Streamed snippet features: a torch ``Dataset`` reading one video per item from a feature source.

Item ``i`` is video ``videos[i]``: its features resampled to the run's ``T`` snippets (done per
item, so nothing but the current batch is in memory) and, when a ``target_fn`` is given, its
training targets (built per item too). Resampled features are kept in an in-memory cache up to
``cache_bytes`` (the first videos that fit; the rest are read again every epoch), which makes
small datasets as fast as preloading while large ones stream with bounded memory.

:func:`make_loader` wraps it in a ``DataLoader`` whose batches follow an explicit index order
(the trainer's seeded epoch order), with worker processes and pinned memory when asked.
Items carry no randomness, so a resumed run reads exactly the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from stale.data.annotations import Video
from stale.data.features import FeatureReader


@dataclass
class Batch:
    """A batch of videos: ``index`` (B,) positions in the dataset, ``features`` (B, T, C)
    float32, ``durations`` (B,) float64 seconds, ``video_ids``, and the collated ``targets``
    (``stale.model.outputs.Targets``) or None."""

    index: torch.Tensor
    features: torch.Tensor
    durations: torch.Tensor
    video_ids: list[str]
    targets: Any = None

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        tg = self.targets.to(device, non_blocking) if self.targets is not None else None
        return Batch(self.index, self.features.to(device, non_blocking=non_blocking),
                     self.durations, self.video_ids, tg)

    def slice(self, start: int, stop: int) -> "Batch":
        tg = self.targets.slice(start, stop) if self.targets is not None else None
        return Batch(self.index[start:stop], self.features[start:stop], self.durations[start:stop],
                     self.video_ids[start:stop], tg)

    def pin_memory(self) -> "Batch":
        tg = self.targets
        if tg is not None and hasattr(tg, "snippet_labels"):
            from dataclasses import replace

            tg = replace(tg, **{k: getattr(tg, k).pin_memory()
                                for k in ("snippet_labels", "instance_masks", "fg_mask")})
        return Batch(self.index, self.features.pin_memory(), self.durations, self.video_ids, tg)


class VideoFeatureDataset(Dataset):
    """Features of ``videos`` from ``store`` at ``num_snippets`` snippets; see the module doc.

    ``target_fn(video) -> per-video targets`` (e.g. :func:`stale.model.labels.targets_for_video`
    bound to the class list) and ``collate_targets(list) -> batch targets`` go together.
    """

    def __init__(self, videos: Sequence[Video], store: FeatureReader, num_snippets: int,
                 target_fn: Callable[[Video], Any] | None = None,
                 collate_targets: Callable[[list], Any] | None = None, cache_bytes: int = 0):
        self.videos = list(videos)
        self.store = store
        self.num_snippets = int(num_snippets)
        self.target_fn = target_fn
        self.collate_targets = collate_targets
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.videos)

    def features(self, i: int) -> np.ndarray:
        """(T, C) float32 resampled features of item ``i`` (cached when the budget allows)."""
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        arr = self.store.load_resampled(self.videos[i].id, self.num_snippets)
        in_main = torch.utils.data.get_worker_info() is None
        if in_main and self._cached_bytes + arr.nbytes <= self.cache_bytes:
            self._cache[i] = arr
            self._cached_bytes += arr.nbytes
        return arr

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, Any]:
        video = self.videos[i]
        target = self.target_fn(video) if self.target_fn is not None else None
        return i, self.features(i), target

    def collate(self, items: list[tuple[int, np.ndarray, Any]]) -> Batch:
        idx = [it[0] for it in items]
        feats = torch.from_numpy(np.stack([it[1] for it in items]))
        targets = None
        if self.target_fn is not None and self.collate_targets is not None:
            targets = self.collate_targets([it[2] for it in items])
        vids = [self.videos[i] for i in idx]
        return Batch(torch.tensor(idx, dtype=torch.long), feats,
                     torch.tensor([v.duration for v in vids], dtype=torch.float64),
                     [v.id for v in vids], targets)


class OrderedBatches(Sampler[list[int]]):
    """Batches of ``batch_size`` consecutive entries of an explicit index order (the last one
    may be smaller). ``set_order`` swaps the order between epochs: one loader, and its workers,
    serve a whole run (``persistent_workers``)."""

    def __init__(self, order: Sequence[int] | torch.Tensor, batch_size: int):
        self.order = [int(i) for i in order]
        self.batch_size = int(batch_size)

    def set_order(self, order: Sequence[int] | torch.Tensor) -> None:
        self.order = [int(i) for i in order]

    def __len__(self) -> int:
        return (len(self.order) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(0, len(self.order), self.batch_size):
            yield self.order[s:s + self.batch_size]


def make_loader(dataset: VideoFeatureDataset, order: Sequence[int] | torch.Tensor, batch_size: int,
                num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding :class:`Batch` es in ``order``, ``batch_size`` videos each."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=2)
    return DataLoader(dataset, batch_sampler=OrderedBatches(order, batch_size), num_workers=num_workers,
                      collate_fn=dataset.collate, pin_memory=pin_memory, **kwargs)


class InMemoryVideos(Dataset):
    """Videos already in memory, in the :class:`VideoFeatureDataset` contract: ``features``
    (N, T, C), ``durations`` (N,), optional batch ``targets`` (sliceable by index tensors, e.g.
    ``stale.model.outputs.Targets``). For benchmarks, tests and the Python API."""

    def __init__(self, features: torch.Tensor, durations, video_ids: Sequence[str] | None = None,
                 targets: Any = None):
        self.x = features
        self.durations = torch.as_tensor(durations, dtype=torch.float64)
        self.video_ids = list(video_ids) if video_ids is not None else [f"video_{i}" for i in range(len(features))]
        self.targets = targets

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[int, None, None]:
        return int(i), None, None

    def collate(self, items: list) -> Batch:
        idx = torch.tensor([it[0] for it in items], dtype=torch.long)
        tg = None
        if self.targets is not None:
            from dataclasses import fields, replace

            tg = replace(self.targets, **{f.name: getattr(self.targets, f.name)[idx] for f in fields(self.targets)})
        return Batch(idx, self.x[idx], self.durations[idx], [self.video_ids[i] for i in idx.tolist()], tg)
