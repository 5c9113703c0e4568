"""The report page as one self-contained HTML file: it opens from disk; CSS and JavaScript
(the package data files ``assets/report.css`` and ``assets/report.js``) are inline, pictures are
PNG data URIs, the data are one JSON block."""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from stale.reporting.page import Block, Report, VideoView

GENERATOR = "stale report"   # <meta name="generator">: marks pages stale may regenerate


def asset(name: str) -> str:
    """The text of a file of ``stale/reporting/assets`` (package data; read when a page is rendered)."""
    from importlib.resources import files

    return files("stale.reporting").joinpath("assets", name).read_text(encoding="utf-8")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _json_for_script(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``<``, ``>``, ``&`` outside escapes)."""
    text = json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _is_number(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, (int, float)):
        return True
    try:
        float(str(x))
        return str(x).strip() != ""
    except ValueError:
        return False


def _block_html(b: Block) -> str:
    if b.kind == "p":
        return f"<p>{_e(b.data)}</p>"
    if b.kind == "warn":
        return f'<p class="warn">{_e(b.data)}</p>'
    if b.kind == "pre":
        return f"<pre>{_e(b.data)}</pre>"
    if b.kind == "facts":
        rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in b.data)
        return f'<dl class="facts">{rows}</dl>'
    if b.kind == "img":
        cap = f"<figcaption>{_e(b.caption)}</figcaption>" if b.caption else ""
        return f'<figure><img alt="{_e(b.caption)}" src="{_png_uri(b.data)}">{cap}</figure>'
    if b.kind == "table":
        headers, rows = b.data
        numeric = [bool(rows) and all(_is_number(r[i]) or r[i] in ("", None) for r in rows if i < len(r))
                   and any(_is_number(r[i]) for r in rows if i < len(r)) for i in range(len(headers))]
        head = "".join(f'<th class="{"num" if numeric[i] else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
        body = "".join("<tr>" + "".join(
            f'<td class="{"num" if i < len(numeric) and numeric[i] else ""}">{_e("" if c is None else c)}</td>'
            for i, c in enumerate(r)) + "</tr>" for r in rows)
        cap = f"<caption>{_e(b.caption)}</caption>" if b.caption else ""
        return f'<table class="sortable">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    raise ValueError(f"unknown block kind {b.kind!r}")


def _default_threshold(items: Sequence[dict], keep: int = 10) -> float:
    """Initial slider value: the ``keep``-th best score (rounded down to 0.01), 0 if fewer."""
    scores = sorted((float(d["score"]) for d in items), reverse=True)
    if len(scores) <= keep:
        return 0.0
    return math.floor(scores[keep - 1] * 100) / 100


def _video_html(i: int, v: VideoView) -> str:
    methods = list(v.detections)
    first = v.detections[methods[0]] if methods else []
    thr = _default_threshold(first)
    player = ""
    if v.src:
        player = (f'<div class="player"><video controls preload="metadata" muted src="{_e(v.src)}"></video>'
                  f'<div class="video-error"></div></div>')
    select = ""
    if len(methods) > 1:
        opts = "".join(f'<option value="{_e(m)}">{_e(m)}</option>' for m in methods)
        select = f'<label>method <select class="method">{opts}</select></label>'
    info = f'<div class="info">{_e(v.info)}</div>' if v.info else ""
    return f"""<section class="video" data-index="{i}" data-video="{_e(v.id)}" id="video-{i}">
<h3>{_e(v.id)}</h3>{info}{player}
<div class="controls">{select}<label>score threshold <input type="range" class="threshold" min="0" max="1" step="0.01" value="{thr:.2f}"> <span class="thr-value">{thr:.2f}</span></label>
<span class="count"></span><span>playhead <span class="clock">0:00.0</span></span></div>
<div class="timeline"></div><div class="axis"></div>
<div class="dets-wrap"><table class="dets sortable"><thead><tr><th>class</th><th class="num">start (s)</th><th class="num">end (s)</th><th class="num">length (s)</th><th class="num">score</th></tr></thead><tbody></tbody></table></div>
</section>"""


def _video_data(v: VideoView) -> dict:
    labels = sorted({d["label"] for ds in v.detections.values() for d in ds} | {g["label"] for g in v.ground_truth})
    classes = list(v.classes) if v.classes else labels
    classes += [c for c in labels if c not in classes]
    return {"id": v.id, "duration": float(v.duration), "src": v.src, "classes": classes,
            "methods": list(v.detections),
            "detections": {m: [{"segment": [float(d["segment"][0]), float(d["segment"][1])],
                                "label": str(d["label"]), "score": float(d["score"])} for d in ds]
                           for m, ds in v.detections.items()},
            "ground_truth": [{"segment": [float(g["segment"][0]), float(g["segment"][1])], "label": str(g["label"])}
                             for g in v.ground_truth]}


def render_report(report: Report) -> str:
    """The page's HTML text (see the module docstring)."""
    videos = [_video_data(v) for v in report.videos]
    classes: list[str] = []
    for v in videos:
        classes += [c for c in v["classes"] if c not in classes]
    data = {"videos": videos, "classes": classes}
    toc = [(s.id or f"section-{i}", s.title) for i, s in enumerate(report.sections)]
    if report.videos:
        toc.append(("videos", report.videos_title))
    parts = [f'<nav class="toc">' + "".join(f'<a href="#{_e(a)}">{_e(t)}</a>' for a, t in toc) + "</nav>"]
    for i, s in enumerate(report.sections):
        parts.append(f'<section class="block" id="{_e(s.id or f"section-{i}")}"><h2>{_e(s.title)}</h2>'
                     + "".join(_block_html(b) for b in s.blocks) + "</section>")
    if report.videos:
        parts.append(f'<h2 id="videos">{_e(report.videos_title)}</h2>')
        parts.append('<p class="info">Drag the score threshold to filter detections; click a detection '
                     '(bar or table row) to jump there; click the timeline to seek; click a column '
                     'header to sort. Outlined bars are ground truth, filled bars detections (opacity '
                     '= score).</p>')
        parts.extend(_video_html(i, v) for i, v in enumerate(report.videos))
    sub = f'<div class="sub">{_e(report.subtitle)}</div>' if report.subtitle else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="{GENERATOR}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(report.title)}</title>
<style>{asset("report.css")}</style></head>
<body><header><h1>{_e(report.title)}</h1>{sub}</header>
<main>
{''.join(parts)}
</main>
<script type="application/json" id="stale-data">{_json_for_script(data)}</script>
<script>{asset("report.js")}</script>
</body></html>
"""


def is_stale_report(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a page this module wrote (its generator tag in the first 1 KB)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">'.encode() in head


def write_report(report: Report, path: str | os.PathLike) -> Path:
    """Render and write the page atomically; returns its path."""
    from stale.core.io import atomic_write_text

    path = Path(path)
    atomic_write_text(path, render_report(report))
    return path
