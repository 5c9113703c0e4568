"""Temporal-action annotations: one schema (:class:`AnnotationSet`), counted quirk policies.

Four inputs are understood (read by :mod:`stale.data.annotation_formats`), all producing an
:class:`AnnotationSet` of :class:`Video` objects whose segments are in seconds:

* ``activitynet``  – official ActivityNet layout (``version``/``taxonomy``/``database``);
* ``actionformer`` – the same structure with ``fps`` per video (ActionFormer's THUMOS14 file);
* ``bsn``          – BSN/BMN layout: a JSON keyed by ``v_<id>`` plus ``video_info_new.csv``
  (ids lose their ``v_`` prefix, so they match the official files and the evaluator);
* ``thumos14-txt`` – the official per-class THUMOS14 text files (``<Class>_<val|test>.txt``).

``.gz`` files are read transparently. Real files have quirks (zero-length, duplicated, reversed or
out-of-range segments, ``Ambiguous`` labels, blocked videos); each one is handled by an explicit
policy (:class:`AnnotationPolicy`), counted in an :class:`AnnotationReport`, and summarised in one
log line per load. Malformed values (non-numeric, NaN, inf) raise :class:`StaleError` naming the
file, the video and the field. See ``docs/data.md`` for the policies and the measured counts.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Literal, Mapping

from stale.core.errors import StaleError
from stale.data.annotation_formats import (LAYOUTS, RawVideo, detect_layout, parse_bsn, parse_database,
                                           parse_thumos_txt, read_id_list, read_json_file, where_field)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Segment:
    """One annotated action instance: ``[start, end]`` in seconds and its class name."""

    start: float
    end: float
    label: str


@dataclass
class Video:
    """One video: id (no ``v_`` prefix), lower-case subset, duration in seconds, its segments."""

    id: str
    subset: str
    duration: float
    segments: list[Segment] = field(default_factory=list)
    fps: float | None = None
    num_frames: int | None = None


@dataclass
class AnnotationPolicy:
    """How the quirks of real annotation files are handled (defaults documented in docs/data.md).

    reversed:         ``end < start``: ``"drop"`` (default; we do not guess what was meant) or ``"swap"``.
    min_length:       segments with ``end - start <= min_length`` seconds are dropped (0: zero-length;
                      negative keeps zero-length segments, as the official evaluator does).
    duplicate_tol:    same-label segments whose start and end both differ by at most this many
                      seconds are duplicates; the first is kept. Negative disables de-duplication.
    ambiguous_labels: labels that are not classes (THUMOS14 ``Ambiguous``); excluded and counted.
    blocked:          blocked-video lists to remove: ``"api"`` (official ActivityNet list),
                      ``"missing_features"`` (videos absent from the common feature sets) or paths
                      to JSON lists / text files with one id per line.
    exclude_videos:   further video ids to remove (e.g. THUMOS14 ``video_test_0000270``).
    """

    reversed: Literal["drop", "swap"] = "drop"
    min_length: float = 0.0
    duplicate_tol: float = 1e-3
    ambiguous_labels: tuple[str, ...] = ("Ambiguous",)
    blocked: tuple[str, ...] = ()
    exclude_videos: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.reversed not in ("drop", "swap"):
            raise StaleError(f"reversed: must be 'drop' or 'swap', got {self.reversed!r}")
        if not math.isfinite(self.min_length):
            raise StaleError(f"min_length: must be a finite number, got {self.min_length!r}")


@dataclass
class ClassFilterReport:
    """What :meth:`AnnotationSet.filter_classes` did (zero-shot protocol)."""

    policy: str
    num_classes: int
    videos_in: int
    videos_kept: int
    segments_kept: int
    segments_to_background: int  # "train": other-class segments inside kept videos
    segments_removed: int        # all other-class segments no longer annotated (incl. the above)


@dataclass
class AnnotationReport:
    """Counts of everything a load did. ``*_read`` are raw counts as in the file, per subset."""

    source: str
    layout: str
    policy: AnnotationPolicy
    videos_read: dict[str, int] = field(default_factory=dict)
    segments_read: dict[str, int] = field(default_factory=dict)  # label rows, Ambiguous included
    ambiguous: int = 0
    reversed: int = 0
    starts_beyond_duration: int = 0
    clipped_to_duration: int = 0
    negative_starts_clipped: int = 0
    zero_length: int = 0
    duplicates: int = 0
    multi_label: int = 0  # boundary pairs carrying two or more labels (all labels kept)
    durations_inferred: int = 0
    blocked_videos: int = 0
    blocked_segments: int = 0
    excluded_videos: int = 0
    empty_videos: dict[str, int] = field(default_factory=dict)  # kept, per subset
    videos_kept: dict[str, int] = field(default_factory=dict)
    segments_kept: dict[str, int] = field(default_factory=dict)
    class_filter: ClassFilterReport | None = None

    def summary(self) -> str:
        """One line for the log."""
        rev = "swapped" if self.policy.reversed == "swap" else "dropped"
        parts = [
            f"{Path(self.source).name} ({self.layout}): read {sum(self.videos_read.values())} videos, "
            f"{sum(self.segments_read.values())} segments; kept {sum(self.videos_kept.values())} "
            f"videos, {sum(self.segments_kept.values())} segments",
            f"ambiguous excluded {self.ambiguous}",
            f"reversed {rev} {self.reversed}",
            f"starting at/after duration dropped {self.starts_beyond_duration}",
            f"clipped to duration {self.clipped_to_duration}",
            f"negative starts clipped to 0 {self.negative_starts_clipped}",
            f"zero-length dropped {self.zero_length}",
            f"duplicates dropped {self.duplicates}",
            f"multi-label kept {self.multi_label}",
            f"videos without segments kept {sum(self.empty_videos.values())}",
            f"blocked videos removed {self.blocked_videos} ({self.blocked_segments} segments)",
        ]
        if self.excluded_videos:
            parts.append(f"excluded videos {self.excluded_videos}")
        if self.durations_inferred:
            parts.append(f"durations inferred from segments {self.durations_inferred}")
        if self.class_filter is not None:
            cf = self.class_filter
            parts.append(f"class filter '{cf.policy}' ({cf.num_classes} classes): kept {cf.videos_kept}/"
                         f"{cf.videos_in} videos, {cf.segments_to_background} segments to background, "
                         f"{cf.segments_removed} removed")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- policies

def _clean(raw: RawVideo, policy: AnnotationPolicy, rep: AnnotationReport) -> list[Segment]:
    """Apply the segment policies to one video, in a fixed order, counting each action."""
    ambiguous = set(policy.ambiguous_labels)
    dur = raw.duration
    kept: list[tuple[float, float, str]] = []
    for start, end, label in raw.rows:
        if label in ambiguous:
            rep.ambiguous += 1
            continue
        if end < start:
            rep.reversed += 1
            if policy.reversed == "drop":
                continue
            start, end = end, start
        if start < 0:
            # a time before the video starts: clipped to 0 (counted); nothing left is dropped below
            rep.negative_starts_clipped += 1
            start = 0.0
        if start >= dur:
            rep.starts_beyond_duration += 1
            continue
        if end > dur:
            rep.clipped_to_duration += 1
            end = dur
        if end - start <= policy.min_length:
            rep.zero_length += 1
            continue
        kept.append((start, end, label))
    if policy.duplicate_tol >= 0:
        unique: list[tuple[float, float, str]] = []
        tol = policy.duplicate_tol
        for s, e, lab in kept:
            if any(lab == l2 and abs(s - s2) <= tol and abs(e - e2) <= tol for s2, e2, l2 in unique):
                rep.duplicates += 1
            else:
                unique.append((s, e, lab))
        kept = unique
    labels_per_bounds = Counter((s, e) for s, e, _ in set(kept))
    rep.multi_label += sum(1 for n in labels_per_bounds.values() if n > 1)
    return [Segment(s, e, lab) for s, e, lab in kept]


def _build(raws: list[RawVideo], source: Path, layout: str, policy: AnnotationPolicy) -> "AnnotationSet":
    rep = AnnotationReport(source=str(source), layout=layout, policy=policy)
    blocked: set[str] = set()
    for spec in policy.blocked:
        blocked |= read_id_list(spec)
    excluded = set(policy.exclude_videos)
    videos: dict[str, Video] = {}
    for raw in raws:
        rep.videos_read[raw.subset] = rep.videos_read.get(raw.subset, 0) + 1
        rep.segments_read[raw.subset] = rep.segments_read.get(raw.subset, 0) + len(raw.rows)
        if raw.duration is None:
            # official THUMOS14 txt without a duration source: the last annotated end is a lower bound
            raw.duration = max(e for _, e, _ in raw.rows)
            rep.durations_inferred += 1
        if not raw.duration > 0:
            raise StaleError(f"{where_field(source, raw.id, 'duration')}: must be positive, got {raw.duration}")
        if raw.id in videos:
            raise StaleError(f"{source}: video {raw.id}: listed twice")
        segments = _clean(raw, policy, rep)
        if raw.id in blocked:
            rep.blocked_videos += 1
            rep.blocked_segments += len(segments)
            continue
        if raw.id in excluded:
            rep.excluded_videos += 1
            continue
        videos[raw.id] = Video(raw.id, raw.subset, raw.duration, segments, raw.fps, raw.num_frames)
    for v in videos.values():
        rep.videos_kept[v.subset] = rep.videos_kept.get(v.subset, 0) + 1
        rep.segments_kept[v.subset] = rep.segments_kept.get(v.subset, 0) + len(v.segments)
        if not v.segments:
            rep.empty_videos[v.subset] = rep.empty_videos.get(v.subset, 0) + 1
    aset = AnnotationSet(videos, rep)
    log.debug("%s", rep.summary())
    return aset


def load_annotations(
    path: str | Path,
    layout: str = "auto",
    policy: AnnotationPolicy | None = None,
    *,
    video_info: str | Path | None = None,
    durations: "Mapping[str, float] | AnnotationSet | None" = None,
) -> "AnnotationSet":
    """Read an annotation file or folder into an :class:`AnnotationSet`, applying ``policy``.

    ``video_info``: BSN ``video_info_new.csv`` (default: the one next to the JSON, if any).
    ``durations``:  video durations for the THUMOS14 txt folder (a mapping or another set).
    """
    path = Path(path)
    policy = policy or AnnotationPolicy()
    policy.validate()
    if layout not in LAYOUTS:
        raise StaleError(f"unknown annotation layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if not path.exists():
        raise StaleError(f"annotation file not found: {path}")
    data = None
    if layout == "auto":
        if not path.is_dir():
            data = read_json_file(path) if not path.name.endswith((".csv", ".csv.gz")) else None
        layout = detect_layout(path, data)
    if layout == "thumos14-txt":
        if not path.is_dir():
            raise StaleError(f"{path}: the thumos14-txt layout expects a folder of per-class txt files")
        if isinstance(durations, AnnotationSet):
            durations = {v.id: v.duration for v in durations}
        raws = parse_thumos_txt(path, durations)
    else:
        data = read_json_file(path) if data is None else data
        if not isinstance(data, dict):
            raise StaleError(f"{path}: expected a JSON object at the top level")
        if layout == "bsn":
            raws = parse_bsn(data, path, Path(video_info) if video_info is not None else None)
        else:
            raws = parse_database(data, path)
    return _build(raws, path, layout, policy)


# ----------------------------------------------------------------------------- the set

class AnnotationSet:
    """Videos keyed by id, plus the :class:`AnnotationReport` of how they were loaded."""

    def __init__(self, videos: dict[str, Video], report: AnnotationReport):
        self.videos = videos
        self.report = report

    def __len__(self) -> int:
        return len(self.videos)

    def __iter__(self) -> Iterator[Video]:
        return iter(self.videos.values())

    def __contains__(self, video_id: object) -> bool:
        return video_id in self.videos

    def __getitem__(self, video_id: str) -> Video:
        try:
            return self.videos[video_id]
        except KeyError:
            raise StaleError(f"{self.report.source}: no video {video_id!r}") from None

    @property
    def subsets(self) -> list[str]:
        return sorted({v.subset for v in self})

    def num_segments(self, subset: str | None = None) -> int:
        return sum(len(v.segments) for v in self if subset is None or v.subset == subset.lower())

    def classes(self, subset: str | None = None) -> list[str]:
        """Sorted class names with at least one segment (in ``subset`` when given)."""
        sub = subset.lower() if subset is not None else None
        return sorted({s.label for v in self if sub is None or v.subset == sub for s in v.segments})

    def subset(self, name: str) -> "AnnotationSet":
        """The videos of one subset (case-insensitive); StaleError for an unknown subset."""
        key = name.lower()
        if key not in self.subsets:
            raise StaleError(f"{self.report.source}: no subset {name!r} (subsets: {', '.join(self.subsets)})")
        return AnnotationSet({k: v for k, v in self.videos.items() if v.subset == key}, self.report)

    def filter_classes(self, names: Iterable[str],
                       policy: Literal["train", "train_drop", "test"] = "train") -> "AnnotationSet":
        """Restrict to the classes ``names`` for the zero-shot protocol.

        ``train``:      keep videos with at least one segment of ``names``; their other segments
                        become background (removed, counted as ``segments_to_background``).
        ``train_drop``: keep only videos all of whose segments are of ``names``.
        ``test``:       keep videos with at least one segment of ``names``, and only those segments.
        Names must be classes of this set (StaleError otherwise). Returns a new set whose report
        carries a :class:`ClassFilterReport`.
        """
        if policy not in ("train", "train_drop", "test"):
            raise StaleError(f"filter_classes: policy must be 'train', 'train_drop' or 'test', got {policy!r}")
        wanted = list(dict.fromkeys(names))
        known = set(self.classes())
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise StaleError(f"{self.report.source}: unknown class {unknown[0]!r} "
                             f"({len(unknown)} unknown; the set has {len(known)} classes)")
        keep = set(wanted)
        out: dict[str, Video] = {}
        to_bg = removed = 0
        for v in self:
            mine = [s for s in v.segments if s.label in keep]
            others = len(v.segments) - len(mine)
            if not mine or (policy == "train_drop" and others):
                removed += others
                continue
            removed += others
            if policy == "train":
                to_bg += others
            out[v.id] = replace(v, segments=mine)
        cf = ClassFilterReport(policy, len(keep), len(self), len(out),
                               sum(len(v.segments) for v in out.values()), to_bg, removed)
        result = AnnotationSet(out, replace(self.report, class_filter=cf))
        log.debug("%s", result.report.summary())
        return result

    def to_activitynet_json(self) -> dict:
        """The official ActivityNet layout (the evaluator's ground truth), post-policy."""
        return {
            "version": "stale export of " + Path(self.report.source).name,
            "taxonomy": [],
            "database": {
                v.id: {
                    "subset": v.subset,
                    "duration": v.duration,
                    "annotations": [{"segment": [s.start, s.end], "label": s.label} for s in v.segments],
                }
                for v in self
            },
        }
