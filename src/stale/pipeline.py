"""From a run config to tensors: annotations, the zero-shot protocol, features and targets.

This is the glue between the data layer and the model: it applies the protocol (which classes
are trained on and which are detected), loads and resamples every video's features once, and
builds the snippet targets, so that the training loop only indexes ready tensors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from stale.config import StaleConfig
from stale.data.annotations import AnnotationPolicy, AnnotationSet, Video, load_annotations
from stale.data.features import FeatureStore
from stale.data.splits import load_split, read_split_files, validate_split
from stale.engine import Batches
from stale.errors import StaleError
from stale.labels import LabelStats, collate_targets, targets_for_video

log = logging.getLogger(__name__)


@dataclass
class Protocol:
    """Which classes a run trains on and which it detects at test time."""

    kind: str
    train_classes: list[str]
    test_classes: list[str]
    name: str


def load_run_annotations(cfg: StaleConfig) -> AnnotationSet:
    policy = AnnotationPolicy(blocked=tuple(cfg.data.blocked), exclude_videos=tuple(cfg.data.exclude_videos))
    ann = load_annotations(cfg.data.annotation_path(), policy=policy)
    log.info("%s", ann.report.summary())
    return ann


def resolve_protocol(cfg: StaleConfig, ann: AnnotationSet) -> Protocol:
    p = cfg.protocol
    all_classes = ann.classes()
    if p.kind == "closed_set":
        return Protocol("closed_set", ann.classes(cfg.data.train_subset), ann.classes(cfg.data.test_subset),
                        "closed-set")
    if p.seen_file is not None:
        split = read_split_files(p.seen_file, p.unseen_file)
        validate_split(split, all_classes)
        return Protocol("zero_shot", list(split.seen), list(split.unseen), split.name)
    # a standard split names every class of its dataset; a subsample of the data may lack some
    split = load_split(cfg.data.dataset, p.setting, p.split)
    validate_split(split, list(split.seen) + list(split.unseen) +
                   [c for c in all_classes if c not in set(split.seen) | set(split.unseen)])
    in_train, in_test = set(ann.classes(cfg.data.train_subset)), set(ann.classes(cfg.data.test_subset))
    seen = [c for c in split.seen if c in in_train]
    unseen = [c for c in split.unseen if c in in_test]
    absent = [c for c in (*split.seen, *split.unseen) if c not in set(seen) | set(unseen)]
    if absent:
        log.warning("split %s: %d classes have no segments in their subset of %s and are left out: %s",
                    split.name, len(absent), cfg.data.annotation_path(), ", ".join(absent))
    if not seen or not unseen:
        raise StaleError(f"split {split.name}: no {'seen' if not seen else 'unseen'} class has segments "
                         f"in {cfg.data.annotation_path()}")
    return Protocol("zero_shot", seen, unseen, split.name)


def train_test_sets(cfg: StaleConfig, ann: AnnotationSet, protocol: Protocol) -> tuple[AnnotationSet, AnnotationSet]:
    """Training videos (seen-class segments; others become background) and test videos
    (those containing a test class, with only their test-class segments)."""
    train = ann.subset(cfg.data.train_subset).filter_classes(protocol.train_classes, "train")
    test = ann.subset(cfg.data.test_subset).filter_classes(protocol.test_classes, "test")
    return train, test


def split_holdout(videos: Sequence[Video], fraction: float, seed: int) -> tuple[list[Video], list[Video]]:
    """Deterministic hold-out of a share of the *training* videos for model selection."""
    videos = list(videos)
    n_val = int(round(fraction * len(videos)))
    if n_val == 0 or len(videos) - n_val < 1:
        return videos, []
    order = np.random.default_rng(seed).permutation(len(videos))
    val_idx = set(order[:n_val].tolist())
    return ([v for i, v in enumerate(videos) if i not in val_idx],
            [v for i, v in enumerate(videos) if i in val_idx])


def feature_store(cfg: StaleConfig, root: str | None = None) -> FeatureStore:
    f = cfg.data.features
    return FeatureStore(root or f.root, f.prefix, f.suffix, f.dim, f.nonfinite, f.mmap)


def available_videos(videos: Sequence[Video], store: FeatureStore, policy: str) -> list[Video]:
    """Videos with a feature file; missing ones are an error or skipped and counted (policy)."""
    missing = store.missing([v.id for v in videos])
    if missing:
        example = store.path(missing[0])
        if policy == "error":
            raise StaleError(f"{len(missing)} of {len(videos)} videos have no feature file "
                             f"(e.g. {example}); set data.missing_features=skip to leave them out")
        log.warning("skipping %d of %d videos without a feature file (e.g. %s)",
                    len(missing), len(videos), example)
    gone = set(missing)
    return [v for v in videos if v.id not in gone]


def load_features(videos: Sequence[Video], store: FeatureStore, num_snippets: int,
                  progress: bool = False) -> torch.Tensor:
    """(N, T, C) float32 tensor of every video's features resampled to ``num_snippets``."""
    it = videos
    if progress:
        from tqdm import tqdm

        it = tqdm(videos, desc="loading features", leave=False, dynamic_ncols=True)
    arrays = [store.load_resampled(v.id, num_snippets) for v in it]
    dims = {a.shape[1] for a in arrays}
    if len(dims) > 1:
        raise StaleError(f"feature files under {store.root} have different dimensions {sorted(dims)}; "
                         "set data.features.dim to find the odd ones")
    return torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros(0, num_snippets, 0)


def build_batches(videos: Sequence[Video], classes: Sequence[str], store: FeatureStore,
                  cfg: StaleConfig, with_targets: bool, progress: bool = False) -> tuple[Batches, LabelStats]:
    """Features (and targets) of ``videos`` as one :class:`Batches`."""
    T = cfg.data.num_snippets
    tensors = {"features": load_features(videos, store, T, progress)}
    stats = LabelStats()
    if with_targets:
        items = [targets_for_video(v, classes, T, cfg.labels) for v in videos]
        for it in items:
            stats = stats + it.stats
        tensors.update(collate_targets(items))
        # masks are binary: uint8 keeps ActivityNet-sized sets small (Batches casts per batch)
        tensors["instance_masks"] = tensors["instance_masks"].to(torch.uint8)
    tensors["durations"] = torch.tensor([v.duration for v in videos], dtype=torch.float64)
    return Batches(tensors), stats
