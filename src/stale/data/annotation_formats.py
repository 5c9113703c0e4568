"""Readers of the four annotation layouts in use, up to the raw videos (segments as read, before
any policy): the official ActivityNet layout, ActionFormer's (``fps`` per video), BSN/BMN's (a
JSON keyed by ``v_<id>`` plus ``video_info_new.csv``) and the official per-class THUMOS14 text
files; :func:`detect_layout` tells them apart. ``.gz`` files are read transparently. Malformed
values (non-numeric, NaN, inf) raise :class:`StaleError` naming the file, the video and the
field. :mod:`stale.data.annotations` applies the policies and builds the set."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from stale.core.errors import StaleError

LAYOUTS = ("auto", "activitynet", "actionformer", "bsn", "thumos14-txt")


def where_field(path: Path, vid: str | None, fieldname: str) -> str:
    return f"{path}: video {vid}: field '{fieldname}'" if vid is not None else f"{path}: field '{fieldname}'"


def finite_number(value: Any, path: Path, vid: str | None, fieldname: str) -> float:
    """A finite float from a JSON/CSV value, or StaleError naming file, video and field."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise StaleError(f"{where_field(path, vid, fieldname)}: not a number: {value!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StaleError(f"{where_field(path, vid, fieldname)}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise StaleError(f"{where_field(path, vid, fieldname)}: value is not finite ({value})")
    return value


def open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_json_file(path: Path) -> Any:
    try:
        with open_text(path) as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise StaleError(f"{path}: cannot read JSON ({exc})") from None


@dataclass
class RawVideo:
    """A video as read, before policies: segments are ``(start, end, label)`` tuples."""

    id: str
    subset: str
    duration: float | None
    rows: list[tuple[float, float, str]]
    fps: float | None = None
    num_frames: int | None = None


def parse_rows(anns: Any, path: Path, vid: str) -> list[tuple[float, float, str]]:
    if anns is None:
        return []
    if not isinstance(anns, list):
        raise StaleError(f"{where_field(path, vid, 'annotations')}: expected a list, got {type(anns).__name__}")
    rows = []
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise StaleError(f"{where_field(path, vid, f'annotations[{i}]')}: expected an object")
        seg = ann.get("segment")
        if not isinstance(seg, (list, tuple)) or len(seg) != 2:
            raise StaleError(f"{where_field(path, vid, f'annotations[{i}].segment')}: expected [start, end], "
                             f"got {seg!r}")
        label = ann.get("label")
        if not isinstance(label, str) or not label.strip():
            raise StaleError(f"{where_field(path, vid, f'annotations[{i}].label')}: expected a class name, "
                             f"got {label!r}")
        start = finite_number(seg[0], path, vid, f"annotations[{i}].segment[0]")
        end = finite_number(seg[1], path, vid, f"annotations[{i}].segment[1]")
        rows.append((start, end, label.strip()))
    return rows


def parse_database(data: dict, path: Path) -> list[RawVideo]:
    db = data.get("database")
    if not isinstance(db, dict):
        raise StaleError(f"{where_field(path, None, 'database')}: expected an object of videos")
    out = []
    for vid, entry in db.items():
        if not isinstance(entry, dict):
            raise StaleError(f"{path}: video {vid}: expected an object, got {type(entry).__name__}")
        subset = entry.get("subset")
        if not isinstance(subset, str) or not subset:
            raise StaleError(f"{where_field(path, vid, 'subset')}: expected a subset name, got {subset!r}")
        duration = finite_number(entry.get("duration"), path, vid, "duration")
        fps = finite_number(entry["fps"], path, vid, "fps") if entry.get("fps") is not None else None
        out.append(RawVideo(str(vid), subset.lower(), duration, parse_rows(entry.get("annotations"), path, vid),
                        fps=fps))
    return out


def read_video_info(path: Path) -> dict[str, dict[str, str]]:
    try:
        with open_text(path) as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StaleError(f"{path}: cannot read CSV ({exc})") from None
    if not rows or "video" not in rows[0]:
        raise StaleError(f"{path}: expected a CSV with a 'video' column (BSN video_info layout)")
    return {r["video"]: r for r in rows}


def strip_v_prefix(name: str) -> str:
    return name[2:] if name.startswith("v_") else name


def parse_bsn(data: dict, path: Path, video_info: Path | None) -> list[RawVideo]:
    if video_info is None and (path.parent / "video_info_new.csv").is_file():
        video_info = path.parent / "video_info_new.csv"
    info = read_video_info(Path(video_info)) if video_info is not None else {}
    info_path = Path(video_info) if video_info is not None else path
    out = []
    for name in list(data) + [n for n in info if n not in data]:
        entry = data.get(name, {})
        row = info.get(name, {})
        if not isinstance(entry, dict):
            raise StaleError(f"{path}: video {name}: expected an object, got {type(entry).__name__}")
        subset = entry.get("subset") or row.get("subset")
        if not isinstance(subset, str) or not subset:
            raise StaleError(f"{where_field(path, name, 'subset')}: missing (give the BSN video_info CSV "
                             f"with a 'subset' column)")
        if entry.get("duration_second") is not None:
            duration = finite_number(entry["duration_second"], path, name, "duration_second")
        elif row.get("seconds") not in (None, ""):
            duration = finite_number(row["seconds"], info_path, name, "seconds")
        else:
            raise StaleError(f"{where_field(path, name, 'duration_second')}: missing duration")
        fps = finite_number(row["fps"], info_path, name, "fps") if row.get("fps") not in (None, "") else None
        frames = row.get("numFrame") or entry.get("duration_frame")
        num_frames = int(finite_number(frames, info_path, name, "numFrame")) if frames not in (None, "") else None
        out.append(RawVideo(strip_v_prefix(name), subset.lower(), duration,
                        parse_rows(entry.get("annotations"), path, name), fps=fps, num_frames=num_frames))
    return out


TXT_NAME = re.compile(r"^(?P<label>.+)_(?P<split>val|test)\.txt$")


def parse_thumos_txt(folder: Path, durations: Mapping[str, float] | None) -> list[RawVideo]:
    files = sorted(p for p in folder.rglob("*.txt") if TXT_NAME.match(p.name))
    if not files:
        raise StaleError(f"{folder}: no THUMOS14 '<Class>_val.txt' / '<Class>_test.txt' files found")
    videos: dict[str, RawVideo] = {}
    for f in files:
        m = TXT_NAME.match(f.name)
        label, subset = m["label"], ("validation" if m["split"] == "val" else "test")
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise StaleError(f"{f}:{lineno}: expected 'video start end', got {line!r}")
            vid = parts[0]
            start = finite_number(parts[1], f, vid, f"line {lineno} start")
            end = finite_number(parts[2], f, vid, f"line {lineno} end")
            raw = videos.setdefault(vid, RawVideo(vid, subset, None, []))
            raw.rows.append((start, end, label))
    if durations is not None:
        for vid, raw in videos.items():
            if vid in durations:
                raw.duration = finite_number(durations[vid], folder, vid, "duration")
    return list(videos.values())


def read_id_list(spec: str) -> set[str]:
    """Video ids of a blocked list: a packaged name (``api``, ``missing_features``) or a file."""
    from stale.data import resources

    path = resources.blocked_list_path(spec) if spec in resources.BLOCKED_LISTS else Path(spec)
    if not path.is_file():
        raise StaleError(f"blocked list {spec!r}: file not found: {path} "
                         f"(packaged lists: {', '.join(resources.BLOCKED_LISTS)})")
    if path.suffix in (".json", ".gz"):
        data = read_json_file(path)
        items = [x for v in data.values() for x in v] if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise StaleError(f"{path}: expected a JSON list of video ids (or an object of such lists)")
        return set(items)
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def detect_layout(path: str | Path, data: Any = None) -> str:
    """Name of the layout of ``path`` (see :data:`LAYOUTS`), or StaleError when unknown."""
    path = Path(path)
    if path.is_dir():
        return "thumos14-txt"
    if path.name.endswith((".csv", ".csv.gz")):
        raise StaleError(f"{path}: a BSN video_info CSV holds no segments; pass the annotation JSON "
                         f"and give this file as video_info")
    data = read_json_file(path) if data is None else data
    if isinstance(data, dict) and isinstance(data.get("database"), dict):
        entries = list(data["database"].values())[:50]
        return "actionformer" if any(isinstance(e, dict) and "fps" in e for e in entries) else "activitynet"
    if isinstance(data, dict) and data:
        entries = list(data.items())[:50]
        if all(isinstance(e, dict) and ("annotations" in e or "duration_second" in e) for _, e in entries):
            return "bsn"
    keys = list(data)[:5] if isinstance(data, dict) else type(data).__name__
    raise StaleError(f"{path}: unknown annotation layout (top-level {keys}); expected the ActivityNet/"
                     f"ActionFormer layout with 'database', the BSN layout keyed by 'v_<id>', or a folder "
                     f"of official THUMOS14 txt files")
