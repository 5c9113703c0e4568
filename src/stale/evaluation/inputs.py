"""Reading and validating detection ground truth and predictions into flat numpy arrays.

Input layouts are the ActivityNet ones (see ``docs/evaluation.md``)::

    ground truth: {"database": {vid: {"subset": s,
                                      "annotations": [{"segment": [a, b], "label": l}]}}}
    predictions:  {"results": {vid: [{"label": l, "score": x, "segment": [a, b]}]}}

Every malformed entry raises :class:`StaleError` naming the source (file), the video and the
field. Predictions are parsed with a fast path (list comprehensions + one ``np.array`` per field,
with a type census to reject strings and booleans that numpy would silently coerce); anything
irregular falls back to a per-entry parser that either finds the offending entry or accepts it.
"""

from __future__ import annotations

import itertools
import operator
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from stale.core.errors import StaleError

_NUMBER_TYPES = {float, int}
_SEGMENT_TYPES = {list, tuple}


def load_json_file(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a missing or malformed file is a StaleError naming the file.

    Well-formed files go through orjson with the garbage collector paused (~5x faster than the
    standard library on a 32 MB ActivityNet-sized result file, same float values); anything
    orjson refuses (NaN / Infinity literals, huge numbers, deep nesting, bad bytes) is re-read by
    the standard library, whose verdict and the checks after it name the exact problem.
    """
    from stale.core.io import parse_json_bytes, read_bytes

    return parse_json_bytes(read_bytes(path), str(path), stdlib_verdicts=True)


def _short(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def load_blocked(path: str | os.PathLike) -> list[str]:
    """Video ids to exclude from evaluation.

    Accepts a JSON list of ids, a JSON object mapping subset name -> list of ids (the union of
    all lists is used), or a plain text file with one id per line (blank lines and lines starting
    with ``#`` are skipped).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StaleError(f"{path}: blocked-video file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StaleError(f"{path}: cannot read blocked-video file ({exc})") from None
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StaleError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        except RecursionError:
            raise StaleError(f"{path}: JSON nested too deeply to read") from None
        except ValueError as exc:
            raise StaleError(f"{path}: unreadable number in JSON ({_short(exc)})") from None
        lists = list(data.values()) if isinstance(data, dict) else [data]
        ids: list[str] = []
        for key, lst in zip(data if isinstance(data, dict) else ["(top level)"], lists):
            if not isinstance(lst, list) or not all(isinstance(v, str) for v in lst):
                raise StaleError(f"{path}: entry {key!r} must be a list of video-id strings")
            ids.extend(lst)
        return ids
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


@dataclass
class GroundTruth:
    """Ground-truth instances of one subset, in file order (video order, then annotation order).

    ``video`` indexes ``video_ids``; ``label`` indexes ``classes`` (order of first appearance);
    ``segments`` is (M, 2) float64 seconds.
    """

    video_ids: list[str]
    classes: list[str]
    video: np.ndarray
    label: np.ndarray
    segments: np.ndarray
    blocked_videos_removed: int = 0
    subsets_seen: dict[str, int] = field(default_factory=dict)


@dataclass
class Predictions:
    """Predictions in input order (results-dict order, then list order).

    ``video`` indexes ``video_ids``; ``label_names`` holds each prediction's label as given;
    ``scores`` (N,) and ``segments`` (N, 2) are float64.
    """

    video_ids: list[str]
    video: np.ndarray
    label_names: list
    scores: np.ndarray
    segments: np.ndarray
    blocked_videos_removed: int = 0
    blocked_predictions_removed: int = 0


def _check_number(value: Any, source: str, vid: str, where: str) -> float:
    if type(value) not in _NUMBER_TYPES and (isinstance(value, bool)
                                            or not isinstance(value, numbers.Real)):
        raise StaleError(f"{source}: video {vid!r}: {where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:   # an integer beyond float range (JSON allows any number of digits)
        try:
            digits = f"{len(str(abs(int(value))))}"
        except ValueError:   # str() refuses integers of more than 4300 digits
            digits = f"about {int(math.log10(abs(int(value)))) + 1}"
        raise StaleError(f"{source}: video {vid!r}: {where}: number out of float range "
                         f"(an integer of {digits} digits)") from None
    if not math.isfinite(number):
        raise StaleError(f"{source}: video {vid!r}: {where}: must be a finite number in float range, "
                         f"got {value!r}")
    return number


def _check_segment(seg: Any, source: str, vid: str, where: str) -> tuple[float, float]:
    if isinstance(seg, np.ndarray):
        seg = seg.tolist()
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise StaleError(f"{source}: video {vid!r}: {where}: expected [start, end] "
                         f"(two numbers), got {seg!r}")
    return (_check_number(seg[0], source, vid, f"{where}[0]"),
            _check_number(seg[1], source, vid, f"{where}[1]"))


DEFAULT_SUBSET = "validation"


def default_subset(data: Any) -> str:
    """The subset to evaluate when none is named: the ground truth's only subset (lower case)
    when it holds exactly one (``stale predict --gt-out`` writes one), else ``validation``."""
    db = data.get("database") if isinstance(data, dict) else None
    subsets = {str(v.get("subset", "")).lower() for v in db.values() if isinstance(v, dict)} \
        if isinstance(db, dict) else set()
    return subsets.pop() if len(subsets) == 1 and "" not in subsets else DEFAULT_SUBSET


def parse_ground_truth(data: Any, subset: str, blocked: Iterable[str] = (),
                       source: str = "ground truth") -> GroundTruth:
    """Keep the videos of ``subset`` (compared case-insensitively) minus ``blocked``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("database"), Mapping):
        raise StaleError(f"{source}: expected a JSON object with a 'database' mapping "
                         "(ActivityNet ground-truth layout)")
    want = subset.lower()
    blocked = set(blocked)
    video_ids: list[str] = []
    class_index: dict[str, int] = {}
    vid_col: list[int] = []
    lab_col: list[int] = []
    seg_col: list[tuple[float, float]] = []
    subsets_seen: dict[str, int] = {}
    n_blocked = 0
    for vid, entry in data["database"].items():
        if not isinstance(entry, Mapping):
            raise StaleError(f"{source}: video {vid!r}: expected an object, got {entry!r}")
        sub = entry.get("subset")
        if not isinstance(sub, str):
            raise StaleError(f"{source}: video {vid!r}: field 'subset' missing or not a string")
        subsets_seen[sub] = subsets_seen.get(sub, 0) + 1
        if sub.lower() != want:
            continue
        if vid in blocked:
            n_blocked += 1
            continue
        anns = entry.get("annotations")
        if not isinstance(anns, list):
            raise StaleError(f"{source}: video {vid!r}: field 'annotations' missing or not a list")
        vi = len(video_ids)
        video_ids.append(vid)
        for i, ann in enumerate(anns):
            if not isinstance(ann, Mapping):
                raise StaleError(f"{source}: video {vid!r}: annotations[{i}]: expected an object")
            label = ann.get("label")
            if not isinstance(label, str):
                raise StaleError(f"{source}: video {vid!r}: annotations[{i}].label: "
                                 f"expected a class-name string, got {label!r}")
            seg_col.append(_check_segment(ann.get("segment"), source, vid,
                                          f"annotations[{i}].segment"))
            lab_col.append(class_index.setdefault(label, len(class_index)))
            vid_col.append(vi)
    return GroundTruth(
        video_ids=video_ids, classes=list(class_index),
        video=np.asarray(vid_col, dtype=np.int64), label=np.asarray(lab_col, dtype=np.int64),
        segments=np.asarray(seg_col, dtype=np.float64).reshape(-1, 2),
        blocked_videos_removed=n_blocked, subsets_seen=subsets_seen)


def parse_predictions(data: Any, blocked: Iterable[str] = (),
                      source: str = "predictions") -> Predictions:
    """Flatten a results dict; blocked videos are removed (and counted)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), Mapping):
        raise StaleError(f"{source}: expected a JSON object with a 'results' mapping "
                         "(ActivityNet detection-results layout)")
    blocked = set(blocked)
    video_ids: list[str] = []
    counts: list[int] = []
    lists: list[list] = []
    n_blocked_vid = n_blocked_pred = 0
    for vid, lst in data["results"].items():
        if not isinstance(lst, list):
            raise StaleError(f"{source}: video {vid!r}: expected a list of detections, "
                             f"got {type(lst).__name__}")
        if vid in blocked:
            n_blocked_vid += 1
            n_blocked_pred += len(lst)
            continue
        video_ids.append(vid)
        counts.append(len(lst))
        lists.append(lst)
    parsed = _parse_fast(lists)
    if parsed is None:
        parsed = _parse_slow(video_ids, lists, source)
    labels, scores, segments = parsed
    return Predictions(
        video_ids=video_ids,
        video=np.repeat(np.arange(len(video_ids), dtype=np.int64), counts),
        label_names=labels, scores=scores, segments=segments,
        blocked_videos_removed=n_blocked_vid, blocked_predictions_removed=n_blocked_pred)


def _parse_fast(lists: list[list]):
    """Vectorised parse of well-formed detections; None when anything looks irregular."""
    flat = list(itertools.chain.from_iterable(lists))
    try:
        # map + itemgetter: the same lookups as a comprehension, without a Python frame per item
        labels = list(map(operator.itemgetter("label"), flat))
        scores = list(map(operator.itemgetter("score"), flat))
        segs = list(map(operator.itemgetter("segment"), flat))
    except (KeyError, TypeError, IndexError):
        return None
    # numpy would turn "0.5" or True into numbers silently, hence the type census
    if (not set(map(type, labels)) <= {str} or not set(map(type, scores)) <= _NUMBER_TYPES
            or not set(map(type, segs)) <= _SEGMENT_TYPES):
        return None
    if segs and set(map(len, segs)) != {2}:
        return None
    bounds = list(itertools.chain.from_iterable(segs))
    if not set(map(type, bounds)) <= _NUMBER_TYPES:
        return None
    try:
        score_arr = np.array(scores, dtype=np.float64)
        seg_arr = np.array(bounds, dtype=np.float64).reshape(-1, 2)
    except (OverflowError, ValueError):
        return None
    if not (np.isfinite(score_arr).all() and np.isfinite(seg_arr).all()):
        return None
    return labels, score_arr, seg_arr


def _parse_slow(video_ids: list[str], lists: list[list], source: str):
    """Entry-by-entry parse with precise error messages."""
    labels: list = []
    scores: list[float] = []
    segs: list[tuple[float, float]] = []
    for vid, lst in zip(video_ids, lists):
        for i, det in enumerate(lst):
            if not isinstance(det, Mapping):
                raise StaleError(f"{source}: video {vid!r}: detection [{i}]: expected an object")
            for key in ("label", "score", "segment"):
                if key not in det:
                    raise StaleError(f"{source}: video {vid!r}: detection [{i}]: "
                                     f"field '{key}' missing")
            label = det["label"]
            if not isinstance(label, str):
                raise StaleError(f"{source}: video {vid!r}: detection [{i}].label: expected a "
                                 f"class-name string, got {label!r}")
            labels.append(label)
            scores.append(_check_number(det["score"], source, vid, f"detection [{i}].score"))
            segs.append(_check_segment(det["segment"], source, vid, f"detection [{i}].segment"))
    return (labels, np.asarray(scores, dtype=np.float64),
            np.asarray(segs, dtype=np.float64).reshape(-1, 2))
