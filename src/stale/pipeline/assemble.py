"""The one place that assembles a run from its config: annotations with their policies, the
protocol (which classes are trained on, which are detected), the feature source and its checks,
the training / held-out / test videos, the datasets and the model.

``stale train``, ``stale predict``, ``stale demo``, ``stale experiment`` and the Python API all
go through these functions, so a data policy is applied the same way everywhere and every count
lands in one :class:`DataReport` (``data_report.json``).

Paths: :func:`absolute_paths` turns the config's relative paths into absolute ones before a
run folder is written; :func:`record_inputs` / :func:`relocate_inputs` store and find them again
(by absolute path, then relative to the run folder), so a run works from any directory and after
its folder -- with its data, as the demo's -- is moved.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from stale.core.errors import StaleError
from stale.core.logs import get_logger
from stale.data.annotations import AnnotationPolicy, AnnotationSet, Video, load_annotations
from stale.data.dataset import VideoFeatureDataset
from stale.data.features import FeatureReader, FeatureScan, open_features
from stale.data.window_dataset import (DrawnWindowDataset, WindowDataset, WindowedVideos, WindowSettings,
                                      training_windows)
from stale.data.splits import load_split, random_split, read_split_files, validate_split
from stale.model.labels import LabelStats, targets_for_video
from stale.model.outputs import Targets
from stale.pipeline.config import StaleConfig

log = get_logger("assemble")


@dataclass
class Protocol:
    """Which classes a run trains on and which it detects at test time."""

    kind: str
    train_classes: list[str]
    test_classes: list[str]
    name: str
    left_out: list[str] = field(default_factory=list)  # split classes absent from the data


@dataclass
class DataReport:
    """Every data policy a run applied, with counts (``data_report.json``)."""

    annotations: dict = field(default_factory=dict)
    protocol: dict = field(default_factory=dict)
    train_filter: dict = field(default_factory=dict)
    missing_features: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    videos: dict = field(default_factory=dict)
    windows: dict = field(default_factory=dict)   # window mode: training windows and edge-cut counts

    def to_dict(self) -> dict:
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items()}


# ----------------------------------------------------------------------------- paths

def _abs(p: str | None) -> str | None:
    if p is None or p.startswith("builtin:"):
        return p
    return os.path.abspath(os.path.expanduser(p))


def absolute_paths(cfg: StaleConfig) -> StaleConfig:
    """A copy of ``cfg`` whose file and folder paths are absolute (resolved from the cwd)."""
    data = replace(cfg.data, annotations=_abs(cfg.data.annotations),
                   features=replace(cfg.data.features, root=_abs(cfg.data.features.root),
                                    streams=[replace(st, root=_abs(st.root)) for st in cfg.data.features.streams]),
                   blocked=[b if b in ("api", "missing_features") else _abs(b) for b in cfg.data.blocked])
    protocol = replace(cfg.protocol, seen_file=_abs(cfg.protocol.seen_file),
                       unseen_file=_abs(cfg.protocol.unseen_file))
    text = replace(cfg.text, weights=_abs(cfg.text.weights) if cfg.text.weights and
                   Path(cfg.text.weights).expanduser().exists() else cfg.text.weights)
    return replace(cfg, data=data, protocol=protocol, text=text)


def record_inputs(cfg: StaleConfig, run_dir: Path) -> dict:
    """Where a run's inputs are: absolute paths and paths relative to the run folder."""
    out = {}
    streams = [(f"features_stream_{i}", st.root) for i, st in enumerate(cfg.data.features.streams)]
    for key, p in (("annotations", cfg.data.annotations), ("features", cfg.data.features.root), *streams,
                   ("text_weights", cfg.text.weights)):
        if p and not p.startswith("builtin:") and os.path.isabs(p):
            out[key] = {"absolute": p, "relative_to_run": os.path.relpath(p, Path(run_dir).resolve())}
    return out


def relocate_inputs(cfg: StaleConfig, run_dir: Path, inputs: dict) -> StaleConfig:
    """``cfg`` with inputs that moved along with the run folder found again (see module doc)."""
    found = {}
    for key, rec in (inputs or {}).items():
        absolute, rel = rec.get("absolute"), rec.get("relative_to_run")
        if absolute and os.path.exists(absolute):
            continue
        if rel:
            cand = os.path.normpath(os.path.join(Path(run_dir).resolve(), rel))
            if os.path.exists(cand):
                found[key] = cand
    if not found:
        return cfg
    data = cfg.data
    if "annotations" in found:
        data = replace(data, annotations=found["annotations"])
    if "features" in found:
        data = replace(data, features=replace(data.features, root=found["features"]))
    moved = [replace(st, root=found.get(f"features_stream_{i}", st.root)) for i, st in enumerate(data.features.streams)]
    data = replace(data, features=replace(data.features, streams=moved))
    text = replace(cfg.text, weights=found["text_weights"]) if "text_weights" in found else cfg.text
    return replace(cfg, data=data, text=text)


# ----------------------------------------------------------------------------- annotations

def load_run_annotations(cfg: StaleConfig, path: str | Path | None = None) -> AnnotationSet:
    """The config's annotation file (or ``path``) with the config's blocked / excluded videos."""
    policy = AnnotationPolicy(blocked=tuple(cfg.data.blocked), exclude_videos=tuple(cfg.data.exclude_videos))
    return load_annotations(path if path is not None else cfg.data.annotation_path(), policy=policy)


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
    if cfg.data.dataset not in ("thumos14", "activitynet"):
        raise StaleError(f"data.dataset {cfg.data.dataset!r} has no standard zero-shot splits; give "
                         f"protocol.seen_file and protocol.unseen_file, or protocol.kind=closed_set")
    split = load_split(cfg.data.dataset, p.setting, p.split)
    named = set(split.seen) | set(split.unseen)
    unknown = [c for c in all_classes if c not in named]
    if unknown:
        raise StaleError(f"{cfg.data.annotation_path()}: class {unknown[0]!r} is not in the standard "
                         f"{cfg.data.dataset} class list ({len(unknown)} such classes); is data.dataset right?")
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
    return Protocol("zero_shot", seen, unseen, split.name, absent)


def train_filter_policy(cfg: StaleConfig) -> str:
    return "train_drop" if cfg.protocol.unseen_in_train == "drop" else "train"


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


def pseudo_unseen_split(classes: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seen classes split into (train-seen, pseudo-unseen) for transfer-aware model selection:
    a seeded random split with the protocol's unseen share (at least one class each side)."""
    if len(classes) < 2:
        raise StaleError(f"train.select=pseudo_unseen needs at least 2 seen classes, got {len(classes)}")
    split = random_split(list(classes), fraction, seed, name="pseudo-unseen")
    order = {c: i for i, c in enumerate(classes)}
    return (sorted(split.seen, key=order.get), sorted(split.unseen, key=order.get))


# ----------------------------------------------------------------------------- features

def feature_store(cfg: StaleConfig, root: str | Path | None = None) -> FeatureReader:
    """The run's feature source (``data.features``: a folder, a container, several streams)."""
    return open_features(cfg.data.features, None if root is None else str(root))


def available_videos(videos: Sequence[Video], store: FeatureReader, policy: str,
                     report: DataReport | None = None, what: str = "videos") -> list[Video]:
    """Videos with a feature file; missing ones are an error or skipped and counted (policy)."""
    missing = store.missing([v.id for v in videos])
    if missing:
        example = store.where(missing[0])
        if policy == "error":
            raise StaleError(f"{len(missing)} of {len(videos)} {what} have no feature file "
                             f"(e.g. {example}); set data.missing_features=skip to leave them out")
        log.warning("skipping %d of %d %s without a feature file (e.g. %s)", len(missing), len(videos),
                    what, example)
    if report is not None:
        report.missing_features[what] = {"policy": policy, "skipped": len(missing),
                                         "examples": missing[:5], "of": len(videos)}
    gone = set(missing)
    return [v for v in videos if v.id not in gone]


def check_features(videos: Sequence[Video], store: FeatureReader, input_dim: int,
                   report: DataReport | None = None, progress: bool = False) -> FeatureScan:
    """Every feature file checked before any work (see :meth:`FeatureReader.scan`); a channel
    count other than ``model.input_dim`` names the file."""
    scan = store.scan([v.id for v in videos], expected_dim=input_dim, progress=progress)
    if report is not None:
        prev = report.features
        merged = scan.report()
        if prev:
            merged["videos"] += prev.get("videos", 0)
            merged["nonfinite_videos"] = len(store.nonfinite_counts)
            merged["nonfinite_values_replaced"] = int(sum(store.nonfinite_counts.values()))
            if (prev.get("max_abs_value") or 0.0) >= merged["max_abs_value"]:
                merged["max_abs_value"], merged["max_abs_file"] = prev["max_abs_value"], prev.get("max_abs_file")
        merged["nonfinite_policy"] = store.nonfinite
        report.features = merged
    return scan


# ----------------------------------------------------------------------------- targets, datasets

def label_stats(videos: Sequence[Video], classes: Sequence[str], cfg: StaleConfig) -> LabelStats:
    """Label-assignment counts of ``videos`` (and every label error found before training)."""
    stats = LabelStats()
    for v in videos:
        stats = stats + targets_for_video(v, classes, cfg.data.num_snippets, cfg.labels).stats
    return stats


def make_dataset(videos: Sequence[Video], store: FeatureReader, cfg: StaleConfig,
                 classes: Sequence[str] | None = None, cache: bool = True, for_detection: bool = False,
                 fit: bool = False):
    """Streamed features of ``videos`` (with training targets for ``classes`` when given).

    Resize mode: a :class:`VideoFeatureDataset` (one item per video). Window mode
    (``data.sampling: window``): a :class:`WindowDataset` of training windows, or -- with
    ``for_detection`` -- the :class:`WindowedVideos` that ``detect_dataset`` slides windows over.
    ``fit``: the set the trainer fits on, whose windows ``data.train_windows: random`` draws per
    epoch (:class:`DrawnWindowDataset`); every other set (held-out, probe) stays tiled."""
    if cfg.data.sampling == "window" and for_detection:
        windowed = WindowedVideos.from_store(videos, store, WindowSettings.of(cfg.data))
        windowed.inference = cfg.inference
        return windowed
    target_fn = collate = None
    if classes is not None:
        target_fn = partial(targets_for_video, classes=list(classes), num_snippets=cfg.data.num_snippets,
                            cfg=cfg.labels)
        collate = Targets.stack
    cache_bytes = cfg.data.cache_mb * 2**20 if cache else 0
    if cfg.data.sampling == "window" and fit and cfg.data.train_windows == "random":
        return DrawnWindowDataset(videos, store, WindowSettings.of(cfg.data), cfg.train.seed,
                                  cfg.data.train_windows_per_video, target_fn, collate, cache_bytes)
    if cfg.data.sampling == "window":
        return WindowDataset(videos, store, WindowSettings.of(cfg.data), cfg.train.seed, target_fn, collate,
                             cache_bytes)
    return VideoFeatureDataset(videos, store, cfg.data.num_snippets, target_fn, collate, cache_bytes=cache_bytes)


def num_workers(cfg: StaleConfig, device_type: str) -> int:
    if cfg.data.num_workers is not None:
        return cfg.data.num_workers
    return 2 if device_type == "cuda" else 0


# ----------------------------------------------------------------------------- training plan

def _restrict(videos: Sequence[Video], classes: set[str], policy: str, ann: AnnotationSet) -> AnnotationSet:
    """``videos`` restricted to ``classes`` with ``policy``; a class none of them holds is
    simply absent (a subset of the training videos need not contain every training class)."""
    subset = AnnotationSet({v.id: v for v in videos}, ann.report)
    present = classes & set(subset.classes())
    return subset.filter_classes(sorted(present), policy) if present else AnnotationSet({}, ann.report)


@dataclass
class TrainingData:
    """Everything training needs about its data, checked before anything is written."""

    annotations: AnnotationSet
    protocol: Protocol
    store: FeatureReader
    classes: list[str]                 # classes the model is trained on
    fit_videos: list[Video]
    val_videos: list[Video]
    report: DataReport
    selection_classes: list[str] = field(default_factory=list)   # pseudo-unseen classes
    selection_videos: list[Video] = field(default_factory=list)  # held-out videos holding them


def assemble_training(cfg: StaleConfig, progress: bool = False) -> TrainingData:
    """Annotations -> protocol -> training videos with features -> hold-out, all checked.

    With ``train.select=pseudo_unseen`` (zero-shot only) a share of the seen classes becomes
    pseudo-unseen: training uses the other seen classes, and the held-out videos that contain
    pseudo-unseen classes are the selection set (the real unseen classes are never touched).
    """
    report = DataReport()
    ann = load_run_annotations(cfg)
    report.annotations = ann.report.to_dict()
    log.info("%s", ann.report.summary())
    protocol = resolve_protocol(cfg, ann)
    classes = list(protocol.train_classes)
    pseudo: list[str] = []
    if cfg.train.select == "pseudo_unseen":
        if protocol.kind != "zero_shot":
            raise StaleError("train.select=pseudo_unseen is for zero-shot runs (protocol.kind=zero_shot)")
        classes, pseudo = pseudo_unseen_split(protocol.train_classes, cfg.train.pseudo_unseen_fraction,
                                              cfg.train.seed)
    report.protocol = {"kind": protocol.kind, "name": protocol.name, "train_classes": classes,
                       "test_classes": protocol.test_classes, "pseudo_unseen": pseudo,
                       "left_out_absent": protocol.left_out,
                       "unseen_in_train": cfg.protocol.unseen_in_train}
    sub = ann.subset(cfg.data.train_subset)
    # hold out videos among all training-subset videos of the seen classes, so that the
    # selection videos (pseudo-unseen) and the training videos never overlap
    seen_videos = sub.filter_classes(protocol.train_classes, train_filter_policy(cfg))
    store = feature_store(cfg)
    videos = available_videos(list(seen_videos), store, cfg.data.missing_features, report, "training videos")
    if not videos:
        raise StaleError("no training videos left after the protocol and feature checks")
    fit, val = split_holdout(videos, cfg.train.val_fraction, cfg.train.seed)
    sel_videos: list[Video] = []
    if pseudo:
        keep = set(classes)
        policy = train_filter_policy(cfg)
        fit_set = _restrict(fit, keep, policy, ann)
        fit = list(fit_set)
        held = AnnotationSet({v.id: v for v in val}, ann.report)
        present = set(held.classes())
        wanted = [c for c in pseudo if c in present]
        if not wanted:
            raise StaleError(f"train.select=pseudo_unseen: none of the pseudo-unseen classes {pseudo} "
                             f"occurs in the {len(val)} held-out videos; raise train.val_fraction")
        sel_videos = list(held.filter_classes(wanted, "test"))
        pseudo = wanted
        # the held-out videos need not hold every training class (only those present filter)
        val = list(_restrict(val, keep, policy, ann))
        report.train_filter = {"fit": fit_set.report.class_filter.__dict__ if fit_set.report.class_filter else {}}
    elif seen_videos.report.class_filter is not None:
        report.train_filter = dict(seen_videos.report.class_filter.__dict__)
    if not fit:
        raise StaleError("no training videos left after holding out videos for model selection")
    check_features([*fit, *val, *sel_videos], store, cfg.model.input_dim, report, progress)
    if cfg.data.sampling == "window":
        # the training items are windows: their instances (edge-cut policy) are what is labelled
        windows, cuts = training_windows([*fit, *val], store, WindowSettings.of(cfg.data), cfg.train.seed)
        report.windows = {"windows": len(windows), "videos": len(fit) + len(val), **cuts.to_dict(),
                          "min_inside": cfg.data.window_min_inside, "time_step": cfg.data.time_step,
                          "window": cfg.data.num_snippets, "overlap": cfg.data.window_overlap}
        log.info("window mode: %d training windows of %d snippets from %d videos; instances: %d inside a "
                 "window, %d cut by an edge and kept (>= %.0f%% inside), %d cut and left out", len(windows),
                 cfg.data.num_snippets, len(fit) + len(val), cuts.inside, cuts.cut_kept,
                 100 * cfg.data.window_min_inside, cuts.cut_dropped)
        if cfg.data.train_windows == "random":
            # the trainer draws its windows per epoch (the tiling above still labels the held-out set)
            drawn = DrawnWindowDataset(fit, store, WindowSettings.of(cfg.data), cfg.train.seed,
                                       cfg.data.train_windows_per_video)
            first = drawn.epoch_counts(0)
            report.windows["train_windows"] = {"mode": "random", "per_video": cfg.data.train_windows_per_video,
                                               "per_epoch": len(drawn), "first_epoch": first.to_dict()}
            log.info("window mode: training draws %d window(s) per video and epoch (%d per epoch) at random "
                     "starts; the first epoch's instances: %d inside, %d cut and kept, %d cut and left out",
                     cfg.data.train_windows_per_video, len(drawn), first.inside, first.cut_kept, first.cut_dropped)
        stats = label_stats([w.window_video for w in windows], classes, cfg)
    else:
        stats = label_stats([*fit, *val], classes, cfg)
    report.labels = stats.__dict__.copy()
    report.videos = {"train": len(fit), "heldout": len(val), "selection": len(sel_videos)}
    return TrainingData(ann, protocol, store, classes, fit, val, report, pseudo, sel_videos)


@dataclass
class TestData:
    """The videos a run is evaluated on, their features and the matching ground truth."""

    videos: list[Video]
    classes: list[str]
    store: FeatureReader
    ground_truth: AnnotationSet
    report: DataReport


def assemble_test(cfg: StaleConfig, classes: Sequence[str] | None = None, annotations: AnnotationSet | None = None,
                  subset: str | None = None, all_videos: bool = False, features_root: str | None = None,
                  strict_classes: bool = True) -> TestData:
    """Test videos of a run: the videos of ``subset`` (default ``data.test_subset``) that contain
    the ``classes`` asked for (default: the protocol's test classes), with only those classes'
    ground truth. ``all_videos`` keeps every video of the subset. A requested class absent from
    the subset's ground truth is an error when ``strict_classes`` (then no ground truth could
    be scored), else it is kept for detection and counted."""
    report = DataReport()
    ann = annotations if annotations is not None else load_run_annotations(cfg)
    report.annotations = ann.report.to_dict()
    subset = subset or cfg.data.test_subset
    sub = ann.subset(subset)
    if classes is None:
        classes = resolve_protocol(cfg, ann).test_classes
    classes = list(classes)
    known = set(sub.classes())
    absent = [c for c in classes if c not in known]
    report.protocol = {"subset": subset, "classes": classes, "without_ground_truth": absent}
    if absent and strict_classes and known:
        raise StaleError(f"class {absent[0]!r} has no ground truth in subset {subset!r} of "
                         f"{ann.report.source} ({len(absent)} such classes); pass --all-videos to "
                         f"detect it anyway (its ground truth is then empty)")
    with_gt = [c for c in classes if c in known]
    gt = sub.filter_classes(with_gt, "test") if with_gt else AnnotationSet({}, ann.report)
    chosen = list(sub) if all_videos or not with_gt else list(gt)
    if all_videos:
        gt_videos = {v.id: v for v in gt}
        gt = AnnotationSet({v.id: gt_videos.get(v.id, replace(v, segments=[])) for v in chosen}, gt.report)
    store = feature_store(cfg, features_root)
    videos = available_videos(chosen, store, cfg.data.missing_features, report, "test videos")
    if not videos:
        raise StaleError(f"no videos of subset {subset!r} to predict on (with features in {store.describe()})")
    keep = {v.id for v in videos}
    gt = AnnotationSet({k: v for k, v in gt.videos.items() if k in keep}, gt.report)
    report.videos = {"test": len(videos)}
    return TestData(videos, classes, store, gt, report)


# ----------------------------------------------------------------------------- the model

def build_model(cfg: StaleConfig):
    """The STALE network with its prompted text encoder, as configured."""
    from stale.model.network import STALE
    from stale.text import build_text_encoder

    return STALE(cfg.model, build_text_encoder(cfg.text))


def check_prompts(cfg: StaleConfig, class_lists: Sequence[Sequence[str]], where: str | None = None) -> None:
    """Every class name fits the text tower's prompt (context length included), and no two names
    of a list are one prompt (``High Jump`` / ``high jump``) -- checked before anything is
    written, so neither fails after minutes of work. ``where``: the names' source, for messages."""
    from stale.text.tokens import ClipTokenizer, check_class_names

    tok = ClipTokenizer()
    limit = 77
    n = cfg.text.context_length
    for names in class_lists:
        try:
            check_class_names(names)
        except StaleError as exc:
            raise StaleError(f"{where}: {exc}" if where else str(exc)) from None
        for k, name in enumerate(names):
            need = 1 + n + len(tok.encode_name(name, k)) + len(tok.period) + 1
            if need > limit and cfg.text.truncate == "error":
                raise StaleError(f"class {name!r}: its prompt needs {need} tokens ({n} context) but CLIP "
                                 f"allows {limit}; shorten the name, lower text.context_length or set "
                                 f"text.truncate=name")

