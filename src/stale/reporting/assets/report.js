
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
