"""One self-contained HTML report: videos with synchronised timelines, detection tables, metrics.

The page is a single file that opens from disk: CSS and JavaScript are inline, pictures are PNG
data URIs, the data are one JSON block. Source videos are *referenced* by a path relative to the
page (never copied), so a browser plays them from disk; ``serve`` runs a tiny localhost HTTP
server (with byte ranges, which seeking needs) for browsers that refuse local files.

Per video (:class:`VideoView`): an HTML5 player when the source video exists; a timeline with one
track per class (ground truth as outlined bars when known, detections as filled bars whose
opacity follows the score, packed into lanes); a playhead that follows the player; a
score-threshold slider that filters the timeline and the table; a method selector when several
methods' detections are shown; a sortable table of detections. Clicking a detection (bar or row)
seeks the player to its start; clicking the timeline seeks to that time.

Evaluated work adds :func:`evaluation_sections`: mAP at each tIoU, per-class AP bars,
precision-recall curves and the leakage-control comparison.

Build a page from :class:`Report` (sections of text, fact lists, tables and pictures, plus the
videos) and write it with :func:`write_report` (atomic).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

GENERATOR = "stale report"   # <meta name="generator">: marks pages stale may regenerate

# ----------------------------------------------------------------------------- model


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


def p(text: str) -> Block:
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


def percent(x: Any) -> str:
    """A fraction as a percentage with one decimal ("" for missing / non-finite)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    return f"{100 * v:.1f}" if math.isfinite(v) else ""


def metrics_table(methods: Mapping[str, Mapping[str, Any]]) -> Block:
    """mAP (%) at each tIoU and the average, one row per method (``stale evaluate --json-out``
    dicts: ``tiou``, ``mAP``, ``average_mAP``)."""
    tious: list[float] = []
    for m in methods.values():
        for t in m.get("tiou") or []:
            if t not in tious:
                tious.append(t)
    headers = ["method", *[f"mAP@{float(t):.2f}" for t in tious], "average mAP"]
    rows = []
    for name, m in methods.items():
        by_t = dict(zip(m.get("tiou") or [], m.get("mAP") or []))
        rows.append([name, *[percent(by_t.get(t)) for t in tious], percent(m.get("average_mAP"))])
    return table(headers, rows, "mean average precision (%) at each temporal IoU threshold")


def class_ap_means(methods: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """method -> {class: AP averaged over the tIoU thresholds} from ``per_class_ap`` lists."""
    out = {}
    for name, m in methods.items():
        per = m.get("per_class_ap") or {}
        vals = {}
        for c, aps in per.items():
            nums = [float(a) for a in (aps if isinstance(aps, list) else [aps])
                    if isinstance(a, (int, float)) and math.isfinite(float(a))]
            if nums:
                vals[c] = sum(nums) / len(nums)
        if vals:
            out[name] = vals
    return out


def control_rows(methods: Mapping[str, Mapping[str, Any]], controls: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Rows (method, control, method avg mAP, control avg mAP, ratio) of the leakage comparison."""
    rows = []
    for method, control in controls:
        a = methods.get(method, {}).get("average_mAP")
        b = methods.get(control, {}).get("average_mAP")
        ratio = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0:
            ratio = f"{b / a:.2f}"
        rows.append([method, control, percent(a), percent(b), ratio])
    return rows


def evaluation_sections(methods: Mapping[str, Mapping[str, Any]], controls: Sequence[tuple[str, str]] = (),
                        curves: Mapping[str, Any] | None = None, pr_tiou: float = 0.5,
                        workdir: str | os.PathLike | None = None) -> list[Section]:
    """Sections for evaluated detections: the mAP table, per-class AP bars, precision-recall
    curves (``curves``: method -> :class:`stale.evaluation.curves.PRCurves`) and the leakage
    control (``controls``: (method, its control) pairs). Pictures are drawn to ``workdir``
    (a temporary folder when None) and inlined."""
    import tempfile

    from stale.viz.plots import plot_class_ap, plot_pr_curves

    sections = [Section("Detection mAP", [metrics_table(methods)], id="metrics")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        means = class_ap_means(methods)
        if means:
            png = plot_class_ap(means, folder / "class_ap.png",
                                "AP per class, averaged over the tIoU thresholds")
            sections.append(Section("Per-class AP", [image(png, "AP (%) of each class, per method")], id="class-ap"))
        if curves:
            first = next(iter(curves.values()))
            tiou = min(first.tiou, key=lambda t: abs(t - pr_tiou))
            pr = {name: c.at(tiou) for name, c in curves.items()}
            png = plot_pr_curves(pr, folder / "pr.png", tiou)
            sections.append(Section("Precision-recall", [
                image(png, f"precision against recall of the ranked detections at tIoU {tiou:.2f}; "
                           f"the area under each step line is the class's AP")], id="pr"))
    if controls:
        sections.append(Section("Leakage control", [
            p("The control asks the same trained model for the unseen classes under permuted names "
              "(each class is asked for under another unseen class's name) and scores the answers "
              "as the true classes. A model that recognises an unseen class through its name must "
              "score near zero there; a control close to the method itself would mean the "
              "detections do not depend on the class names."),
            table(["method", "control", "method avg mAP (%)", "control avg mAP (%)", "control / method"],
                  control_rows(methods, controls))], id="control"))
    return sections


# ----------------------------------------------------------------------------- rendering

_CSS = """
:root{--fg:#1d2330;--muted:#5c6370;--line:#d9dde3;--bg:#fff;--soft:#f4f6f8;--accent:#2458c6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0}
header{padding:18px 28px;border-bottom:1px solid var(--line);background:var(--soft)}
header h1{margin:0;font-size:20px} header .sub{color:var(--muted);margin-top:4px}
main{padding:8px 28px 40px;max-width:1280px}
h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.warn{background:#fff4d6;border:1px solid #e8c66a;padding:6px 10px;border-radius:4px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.facts dt{color:var(--muted)} dl.facts dd{margin:0;word-break:break-word}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:3px 9px;text-align:left}
th{background:var(--soft);position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none} table.sortable th:after{content:" \\2195";color:#aab}
table.sortable th.asc:after{content:" \\2191";color:var(--fg)} table.sortable th.desc:after{content:" \\2193";color:var(--fg)}
td.num,th.num{text-align:right}
figure{margin:8px 0} figure img{max-width:100%;border:1px solid var(--line)} figcaption{color:var(--muted);font-size:12px}
pre{background:var(--soft);padding:8px;overflow:auto}
nav.toc a{margin-right:12px}
.video{border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin:14px 0}
.video h3{margin:2px 0 4px} .video .info{color:var(--muted);font-size:12px}
.player video{max-width:100%;max-height:360px;background:#000;display:block;margin:6px 0}
.player .video-error{color:#a33;font-size:12px}
.controls{display:flex;flex-wrap:wrap;gap:14px;align-items:center;margin:6px 0}
.controls input[type=range]{width:220px;vertical-align:middle}
.timeline{position:relative;margin:8px 0 4px;user-select:none}
.track{display:flex;align-items:stretch;border-top:1px solid var(--line)}
.track .name{width:170px;flex:none;padding:2px 6px;font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;border-right:1px solid var(--line)}
.track .lanes{position:relative;flex:1;background:repeating-linear-gradient(90deg,transparent,transparent 49px,#f0f1f3 49px,#f0f1f3 50px)}
.seg{position:absolute;border-radius:2px;min-width:2px;cursor:pointer}
.seg.gt{background:transparent;border:2px solid;opacity:.9}
.seg.det{border:1px solid rgba(0,0,0,.45)}
.seg.det:hover,.seg.det.current{outline:2px solid #000;z-index:3}
.axis{position:relative;height:20px;margin-left:170px;font-size:11px;color:var(--muted)}
.axis span{position:absolute;transform:translateX(-50%);top:2px;white-space:nowrap}
.playhead{position:absolute;top:0;bottom:0;width:2px;background:#e0262b;pointer-events:none;z-index:5}
.dets-wrap{max-height:300px;overflow:auto;border:1px solid var(--line)}
.dets-wrap table{margin:0;width:100%}
tr.det-row{cursor:pointer} tr.det-row:hover{background:#eef3ff}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:middle}
.empty{color:var(--muted);font-style:italic}
"""

_JS = r"""
(function(){
'use strict';
window.__staleErrors = window.__staleErrors || [];
window.addEventListener('error', function(e){ window.__staleErrors.push(String(e.message)); });
var DATA = JSON.parse(document.getElementById('stale-data').textContent);
var PALETTE = ['#1f77b4','#ff7f0e','#2ca02c','#d62728','#9467bd','#8c564b','#e377c2','#7f7f7f','#bcbd22','#17becf'];
var MAX_LANES = 8;
function colour(name){ var i = DATA.classes.indexOf(name); return PALETTE[(i < 0 ? 0 : i) % PALETTE.length]; }
function fmt(t){ return (Math.round(t * 100) / 100).toFixed(2); }
function clock(t){ var m = Math.floor(t / 60), s = t - 60 * m; return m + ':' + (s < 10 ? '0' : '') + s.toFixed(1); }
function el(tag, cls, text){ var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }

function niceStep(duration){
  var raw = duration / 8, p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-6))));
  var steps = [1, 2, 5, 10], i;
  for (i = 0; i < steps.length; i++) if (steps[i] * p >= raw) return steps[i] * p;
  return 10 * p;
}

function packLanes(items){
  // greedy interval packing in start order; the last lane takes the overflow
  var ends = [], order = items.slice().sort(function(a, b){ return a.segment[0] - b.segment[0]; });
  order.forEach(function(it){
    var lane = -1;
    for (var k = 0; k < ends.length; k++) if (it.segment[0] >= ends[k]) { lane = k; break; }
    if (lane < 0) { if (ends.length < MAX_LANES) { lane = ends.length; ends.push(0); } else lane = MAX_LANES - 1; }
    ends[lane] = Math.max(ends[lane], it.segment[1]);
    it._lane = lane;
  });
  return Math.max(ends.length, 1);
}

function VideoPanel(root, v){
  var self = this;
  this.root = root; this.v = v; this.duration = v.duration;
  this.method = v.methods.length ? v.methods[0] : null;
  this.video = root.querySelector('video');
  this.timeline = root.querySelector('.timeline');
  this.slider = root.querySelector('input.threshold');
  this.thrLabel = root.querySelector('.thr-value');
  this.count = root.querySelector('.count');
  this.tbody = root.querySelector('table.dets tbody');
  var sel = root.querySelector('select.method');
  if (sel) sel.addEventListener('change', function(){ self.method = sel.value; self.build(); });
  this.slider.addEventListener('input', function(){ self.filter(); });
  this.timeline.addEventListener('click', function(e){
    if (e.target.classList.contains('det')) return;
    var lanes = self.timeline.querySelector('.lanes'); if (!lanes) return;
    var r = lanes.getBoundingClientRect();
    if (e.clientX < r.left) return;
    self.seek(Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)) * self.duration);
  });
  if (this.video) {
    var tick = function(){ self.playhead(self.video.currentTime); if (!self.video.paused) requestAnimationFrame(tick); };
    this.video.addEventListener('timeupdate', function(){ self.playhead(self.video.currentTime); });
    this.video.addEventListener('seeked', function(){ self.playhead(self.video.currentTime); });
    this.video.addEventListener('play', function(){ requestAnimationFrame(tick); });
    this.video.addEventListener('error', function(){
      var msg = root.querySelector('.video-error');
      if (msg) msg.textContent = 'the video could not be played here (missing file or a codec this browser lacks): ' + self.video.getAttribute('src');
    });
  }
  this.build();
}

VideoPanel.prototype.items = function(){ return this.method ? (this.v.detections[this.method] || []) : []; };

VideoPanel.prototype.build = function(){
  var self = this, v = this.v, tl = this.timeline;
  tl.innerHTML = '';
  var items = this.items();
  if (!v.classes.length) tl.appendChild(el('div', 'empty', 'no detections and no ground truth in this video'));
  v.classes.forEach(function(c){
    var track = el('div', 'track'); track.dataset.label = c;
    var name = el('div', 'name'); var sw = el('span', 'swatch'); sw.style.background = colour(c);
    name.appendChild(sw); name.appendChild(document.createTextNode(c)); name.title = c;
    var lanes = el('div', 'lanes');
    track.appendChild(name); track.appendChild(lanes); tl.appendChild(track);
    track._lanes = lanes; track._gt = v.ground_truth.filter(function(g){ return g.label === c; });
    track._dets = items.filter(function(d){ return d.label === c; });
  });
  var ph = el('div', 'playhead'); tl.appendChild(ph); this.ph = ph;
  var axis = this.root.querySelector('.axis'); axis.innerHTML = '';
  var step = niceStep(this.duration);
  for (var t = 0; t <= this.duration + 1e-9; t += step) {
    var s = el('span', '', (step < 1 ? t.toFixed(1) : Math.round(t)) + ' s');
    s.style.left = (100 * t / this.duration) + '%'; axis.appendChild(s);
  }
  // the table: every detection of the method, best first
  this.tbody.innerHTML = '';
  items.slice().sort(function(a, b){ return b.score - a.score; }).forEach(function(d){
    var tr = el('tr', 'det-row');
    tr.dataset.start = d.segment[0]; tr.dataset.end = d.segment[1]; tr.dataset.score = d.score; tr.dataset.label = d.label;
    var c0 = el('td'); var sw = el('span', 'swatch'); sw.style.background = colour(d.label);
    c0.appendChild(sw); c0.appendChild(document.createTextNode(d.label)); tr.appendChild(c0);
    [d.segment[0], d.segment[1], d.segment[1] - d.segment[0], d.score].forEach(function(x, i){
      var td = el('td', 'num', i === 3 ? x.toFixed(3) : fmt(x)); td.dataset.value = x; tr.appendChild(td);
    });
    tr.addEventListener('click', function(){ self.seek(d.segment[0], tr); });
    self.tbody.appendChild(tr);
  });
  this.filter();
};

VideoPanel.prototype.filter = function(){
  var self = this, thr = parseFloat(this.slider.value), shown = 0, total = 0, dur = this.duration;
  this.thrLabel.textContent = thr.toFixed(2);
  Array.prototype.forEach.call(this.timeline.querySelectorAll('.track'), function(track){
    var lanesEl = track._lanes; lanesEl.innerHTML = '';
    var vis = track._dets.filter(function(d){ return d.score >= thr; });
    total += track._dets.length; shown += vis.length;
    var gtRows = track._gt.length ? 1 : 0;
    var n = packLanes(vis), laneH = 14;
    lanesEl.style.height = ((gtRows + n) * laneH + 6) + 'px';
    track._gt.forEach(function(g){
      var b = el('div', 'seg gt'); b.style.borderColor = colour(g.label);
      b.style.left = (100 * g.segment[0] / dur) + '%'; b.style.width = (100 * (g.segment[1] - g.segment[0]) / dur) + '%';
      b.style.top = '3px'; b.style.height = (laneH - 3) + 'px';
      b.title = 'ground truth ' + g.label + ' ' + fmt(g.segment[0]) + '-' + fmt(g.segment[1]) + ' s';
      b.addEventListener('click', function(e){ e.stopPropagation(); self.seek(g.segment[0]); });
      lanesEl.appendChild(b);
    });
    vis.forEach(function(d){
      var b = el('div', 'seg det');
      b.dataset.start = d.segment[0]; b.dataset.end = d.segment[1]; b.dataset.score = d.score; b.dataset.label = d.label;
      b.style.background = colour(d.label); b.style.opacity = (0.35 + 0.65 * Math.max(0, Math.min(1, d.score))).toFixed(2);
      b.style.left = (100 * d.segment[0] / dur) + '%'; b.style.width = (100 * (d.segment[1] - d.segment[0]) / dur) + '%';
      b.style.top = (3 + (gtRows + d._lane) * laneH) + 'px'; b.style.height = (laneH - 3) + 'px';
      b.title = d.label + ' ' + fmt(d.segment[0]) + '-' + fmt(d.segment[1]) + ' s, score ' + d.score.toFixed(3);
      b.addEventListener('click', function(e){ e.stopPropagation(); self.seek(d.segment[0], b); });
      lanesEl.appendChild(b);
    });
  });
  Array.prototype.forEach.call(this.tbody.querySelectorAll('tr.det-row'), function(tr){
    tr.hidden = parseFloat(tr.dataset.score) < thr;
  });
  this.count.textContent = shown + ' of ' + total + ' detections with score \u2265 ' + thr.toFixed(2);
  this.count.dataset.shown = shown; this.count.dataset.total = total;
  this.playhead(this.video ? this.video.currentTime : (this._t || 0));
};

VideoPanel.prototype.seek = function(t, source){
  this._t = t;
  if (this.video) { try { this.video.currentTime = t; } catch (e) { /* not loaded yet */ } }
  Array.prototype.forEach.call(this.root.querySelectorAll('.current'), function(x){ x.classList.remove('current'); });
  if (source) source.classList.add('current');
  this.playhead(t);
};

VideoPanel.prototype.playhead = function(t){
  if (!this.ph) return;
  var lanes = this.timeline.querySelector('.lanes');
  var off = lanes ? lanes.offsetLeft : 0, w = lanes ? lanes.offsetWidth : this.timeline.offsetWidth;
  this.ph.style.left = (off + w * Math.max(0, Math.min(1, t / this.duration))) + 'px';
  var clk = this.root.querySelector('.clock'); if (clk) clk.textContent = clock(t);
};

function sortable(tableEl){
  var heads = tableEl.querySelectorAll('th');
  Array.prototype.forEach.call(heads, function(th, col){
    th.addEventListener('click', function(){
      var asc = !th.classList.contains('asc');
      Array.prototype.forEach.call(heads, function(h){ h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var body = tableEl.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(r){
        var c = r.cells[col]; if (!c) return '';
        var v = c.dataset.value !== undefined ? c.dataset.value : c.textContent;
        var num = parseFloat(v);
        return (v !== '' && !isNaN(num) && isFinite(v)) ? num : v.toLowerCase();
      }
      rows.sort(function(a, b){
        var x = key(a), y = key(b), r = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
        return asc ? r : -r;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
}

window.stalePanels = [];
Array.prototype.forEach.call(document.querySelectorAll('section.video'), function(root){
  var v = DATA.videos[parseInt(root.dataset.index, 10)];
  window.stalePanels.push(new VideoPanel(root, v));
});
Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), sortable);
window.addEventListener('resize', function(){ window.stalePanels.forEach(function(pn){ pn.playhead(pn.video ? pn.video.currentTime : (pn._t || 0)); }); });
document.body.dataset.ready = '1';
})();
"""


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
<style>{_CSS}</style></head>
<body><header><h1>{_e(report.title)}</h1>{sub}</header>
<main>
{''.join(parts)}
</main>
<script type="application/json" id="stale-data">{_json_for_script(data)}</script>
<script>{_JS}</script>
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


def relative_src(video: str | os.PathLike, page: str | os.PathLike) -> str:
    """URL of ``video`` relative to the folder of ``page`` (forward slashes, percent-encoded)."""
    from urllib.parse import quote

    rel = os.path.relpath(os.path.abspath(video), os.path.dirname(os.path.abspath(page)))
    return quote(rel.replace(os.sep, "/"))


# ----------------------------------------------------------------------------- serving


def make_server(page: str | os.PathLike, root: str | os.PathLike | None = None, port: int = 0,
                host: str = "127.0.0.1"):
    """A localhost HTTP server for ``page`` and the files it references: serves ``root`` (default:
    the page's folder) with byte-range support (browsers seek in videos with ranges). Returns
    ``(server, url)``; call ``server.serve_forever()``, and ``server.server_close()`` after."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import quote

    page = Path(page).resolve()
    root = Path(root).resolve() if root is not None else page.parent
    if not page.is_relative_to(root):
        raise ValueError(f"{page} is not inside the served folder {root}")

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):   # quiet: the terminal shows the URL only
            pass

        def send_head(self):
            rng = self.headers.get("Range")
            path = Path(self.translate_path(self.path))
            if not rng or not rng.startswith("bytes=") or not path.is_file():
                return super().send_head()
            size = path.stat().st_size
            first, _, last = rng[6:].split(",")[0].strip().partition("-")
            try:
                if first:
                    start, end = int(first), (int(last) if last else size - 1)
                else:
                    start, end = max(0, size - int(last)), size - 1
            except ValueError:
                return super().send_head()
            end = min(end, size - 1)
            if start > end or start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return None
            fh = open(path, "rb")
            fh.seek(start)
            self.send_response(206)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self._remaining = end - start + 1
            return fh

        def copyfile(self, source, outputfile):
            remaining = getattr(self, "_remaining", None)
            if remaining is None:
                return super().copyfile(source, outputfile)
            while remaining > 0:
                chunk = source.read(min(65536, remaining))
                if not chunk:
                    break
                outputfile.write(chunk)
                remaining -= len(chunk)
            self._remaining = None

    server = ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(root)))
    rel = quote(page.relative_to(root).as_posix())
    return server, f"http://{host}:{server.server_address[1]}/{rel}"


def serve_root(page: str | os.PathLike, videos: Sequence[str | os.PathLike] = ()) -> Path:
    """The folder to serve so that ``page`` and every referenced video are inside it."""
    dirs = [str(Path(page).resolve().parent)] + [str(Path(v).resolve().parent) for v in videos]
    return Path(os.path.commonpath(dirs))


def serve(page: str | os.PathLike, videos: Sequence[str | os.PathLike] = (), port: int = 0,
          announce=print) -> None:
    """Serve ``page`` (and the videos it plays) on localhost until interrupted (Ctrl-C)."""
    server, url = make_server(page, serve_root(page, videos), port)
    announce(f"serving the report at {url}  (Ctrl-C to stop; only this machine can connect)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
