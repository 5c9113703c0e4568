"""The report page as data: :class:`Report` (sections of text, fact lists, tables and pictures,
plus the videos), :class:`VideoView` (one video's detections and ground truth) and the block
constructors; :mod:`stale.reporting.render` turns a :class:`Report` into one self-contained HTML
file and :func:`stale.reporting.render.write_report` writes it (atomic).

Per video, the page shows an HTML5 player when the source video exists (referenced by a path
relative to the page, :func:`relative_src`, never copied); a timeline with one track per class
(ground truth as outlined bars when known, detections as filled bars whose opacity follows the
score, packed into lanes); a playhead that follows the player; a score-threshold slider that
filters the timeline and the table; a method selector when several methods' detections are
shown; a sortable table of detections. Clicking a detection (bar or row) seeks the player to its
start; clicking the timeline seeks to that time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence



@dataclass
class VideoView:
    """One video of the report.

    ``detections``: method -> ActivityNet result items ``[{"segment": [s, e], "label", "score"}]``;
    ``ground_truth``: ``[{"segment": [s, e], "label"}]`` (empty when unknown); ``src``: URL of the
    source video relative to the page (None: no player); ``classes``: track order (default: the
    labels present, sorted); ``info``: short facts shown under the title.
    """

    id: str
    duration: float
    detections: dict[str, list[dict]]
    ground_truth: list[dict] = field(default_factory=list)
    src: str | None = None
    classes: list[str] | None = None
    info: str = ""


@dataclass
class Block:
    """A piece of a section: ``kind`` is ``p`` (text), ``warn`` (highlighted text), ``facts``
    (``data`` = [(key, value)]), ``table`` (``data`` = (headers, rows)), ``img`` (``data`` = PNG
    bytes, ``caption``) or ``pre`` (preformatted text)."""

    kind: str
    data: Any
    caption: str = ""


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    id: str = ""


@dataclass
class Report:
    """A page: title, sections in order, then the videos (``videos_title`` heads them)."""

    title: str
    sections: list[Section] = field(default_factory=list)
    videos: list[VideoView] = field(default_factory=list)
    videos_title: str = "Videos"
    subtitle: str = ""


def paragraph(text: str) -> Block:
    return Block("p", text)


def warn(text: str) -> Block:
    return Block("warn", text)


def facts(items: Sequence[tuple[str, Any]]) -> Block:
    return Block("facts", list(items))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> Block:
    return Block("table", (list(headers), [list(r) for r in rows]), caption)


def image(png: bytes | str | os.PathLike, caption: str = "") -> Block:
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    return Block("img", data, caption)


def pre(text: str) -> Block:
    return Block("pre", text)


# ----------------------------------------------------------------------------- evaluation


def relative_src(video: str | os.PathLike, page: str | os.PathLike) -> str:
    """URL of ``video`` relative to the folder of ``page`` (forward slashes, percent-encoded)."""
    from urllib.parse import quote

    rel = os.path.relpath(os.path.abspath(video), os.path.dirname(os.path.abspath(page)))
    return quote(rel.replace(os.sep, "/"))


# ----------------------------------------------------------------------------- serving
