"""The causal sliding window of ``stale stream`` and its finalisation rule: when a detection is
final, and how one action seen by many overlapping windows is emitted once.

Snippet features arrive one by one (snippet ``i`` = the clip starting at frame ``i * stride``,
``seconds_per_snippet = stride / fps``). Every ``hop`` snippets the detector runs on the causal
window of the newest ``window`` snippets ``[a, b)`` (``a = max(0, b - window)``; it never sees a
snippet after ``b``) and returns detections in window seconds, which are moved to stream time.

**Finalisation rule.** A detection ``[s, e)`` of the run on ``[a, b)`` is *final* when

1. it is *settled*: ``e <= b - margin`` -- the detector has seen at least ``margin`` snippets
   after the action's end, so the end is not a pause inside a still-running action -- and
   *due*: ``e > b' - 2 * margin``, ``b'`` being the previous run's ``b``: each stretch of the
   stream is judged when its end settles (with ``margin`` snippets of slack for an end that moves
   between runs), not again by every later run, whose window statistics differ (a detector
   that thresholds per window would otherwise "discover" old actions late);
2. it is *whole*: ``s > a`` or ``a == 0`` -- a detection starting at the window's first snippet
   is the clipped tail of an action that began before the window (its whole was visible to
   earlier runs); the longest action the stream can report is therefore ``window - margin``
   snippets;
3. it is *new*: no detection already emitted has its label and a temporal IoU >=
   ``repeat_iou`` with it. Every action stays in the window for about ``(window - margin) /
   hop`` runs, and each run finds it again (possibly a snippet wider or narrower); those are
   the same action, not new ones. Inside one run the detector's own Soft-NMS
   (:mod:`stale.model.decoding`) has already rescored overlapping candidates, exactly as
   offline; across runs Soft-NMS would only rescore the repeats, never remove them, so the
   repeat test (tIoU from :func:`stale.model.decoding.segment_tiou`) decides instead. The
   test applies inside a run too (best first), so each action is emitted once, not once per
   nested threshold run as in the offline top-100.

At the end of the stream (end of file, a stall, a source error) the last run treats every
detection as settled (``margin = 0``): an action still going on ends with the stream.

**Latency** of an emitted detection = ``clock - e`` in stream seconds, where ``clock`` is the
stream time the source has reached when it is emitted (for a live or ``--realtime`` source:
wall-clock time since the first frame). For a settled detection it lies between ``margin``
and ``2 * margin + hop`` snippets (rule 1), plus the encoder's lag behind the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from stale.core.errors import StaleError
from stale.model.decoding import segment_tiou

#: ``detect(features (T, D) float32, duration seconds) -> [{"segment": [s, e], "label", "score"}]``
DetectFn = Callable[[np.ndarray, float], list[dict]]


@dataclass
class WindowConfig:
    """The causal window in snippets (:class:`StreamOptions` gives it in seconds).

    window: snippets the detector sees per run (the newest ones).
    hop: snippets between two runs.
    margin: snippets the detector must have seen after a detection's end before it is final.
    repeat_iou: tIoU at or above which a detection of the same label repeats an emitted one.
    """

    window: int
    hop: int
    margin: int
    repeat_iou: float = 0.5

    def validate(self) -> None:
        if self.window < 2 or self.hop < 1 or self.margin < 0:
            raise StaleError(f"stream window: need window >= 2, hop >= 1 and margin >= 0 snippets, got "
                             f"window={self.window}, hop={self.hop}, margin={self.margin} (raise --window / "
                             f"--hop, or lower --stride)")
        if self.margin >= self.window:
            raise StaleError(f"--margin ({self.margin} snippets) must be shorter than --window ({self.window} "
                             f"snippets): no detection could ever be final")
        if not 0.0 < self.repeat_iou <= 1.0:
            raise StaleError(f"--repeat-iou must be in (0, 1], got {self.repeat_iou}")


@dataclass
class Emitted:
    """One final detection: ``start``/``end`` in stream seconds, ``label``, ``score``, and
    ``latency`` (seconds from the action's end to its emission, in stream time)."""

    start: float
    end: float
    label: str
    score: float
    latency: float

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label,
                "score": round(self.score, 6), "latency": round(self.latency, 3)}


@dataclass
class CausalWindow:
    """Features in, final detections out (module docstring).

    ``push(feature (D,))`` appends the next snippet's feature and returns the detections that
    became final (a run happens every ``hop`` snippets); ``finish()`` runs once more on the last
    window with every detection settled. ``clock`` (stream seconds the source has reached) is
    what latencies are measured against."""

    cfg: WindowConfig
    detect: DetectFn
    seconds_per_snippet: float
    features: list = field(default_factory=list)   # the newest ``window`` features, (D,) each
    count: int = 0                                  # snippets pushed so far
    runs: int = 0
    detect_s: float = 0.0                           # time spent in the detector
    _last_run: int = 0
    _emitted: list = field(default_factory=list)    # (start, end, label) in snippets, recent ones

    def __post_init__(self) -> None:
        self.cfg.validate()
        if not self.seconds_per_snippet > 0:
            raise StaleError(f"stream: seconds per snippet must be > 0, got {self.seconds_per_snippet}")

    def push(self, feature: np.ndarray, clock: float) -> list[Emitted]:
        self.features.append(np.asarray(feature, dtype=np.float32))
        if len(self.features) > self.cfg.window:
            del self.features[0]
        self.count += 1
        if self.count - self._last_run < self.cfg.hop:
            return []
        return self._run(self.cfg.margin, clock)

    def finish(self, clock: float) -> list[Emitted]:
        """The last run at the end of the stream (nothing new since the last run: nothing to do
        unless detections were waiting to settle)."""
        if self.count == 0:
            return []
        return self._run(0, clock)

    def _run(self, margin: int, clock: float) -> list[Emitted]:
        import time

        b = self.count
        a = b - len(self.features)
        due = self._last_run - 2 * self.cfg.margin if self.runs else None   # rule 1's "due"
        self._last_run = b
        self.runs += 1
        t0 = time.perf_counter()
        items = self.detect(np.stack(self.features), len(self.features) * self.seconds_per_snippet)
        self.detect_s += time.perf_counter() - t0
        return self._final(items, a, b, margin, due, clock)

    def _final(self, items: list[dict], a: int, b: int, margin: int, due: int | None,
               clock: float) -> list[Emitted]:
        """The detections of one run on ``[a, b)`` that are final (rules 1-3), best first."""
        sps = self.seconds_per_snippet
        # window seconds -> stream snippets (the detector's bounds are whole snippets)
        seg = np.array([d["segment"] for d in items], dtype=np.float64).reshape(-1, 2) / sps + a
        seg = np.round(seg).astype(np.int64)
        keep = (seg[:, 1] <= b - margin) & ((seg[:, 0] > a) | (a == 0)) & (seg[:, 1] > seg[:, 0])
        if due is not None:
            keep &= seg[:, 1] > due
        self._emitted = [x for x in self._emitted if x[1] > a]   # older ones cannot overlap any more
        out: list[Emitted] = []
        for i in np.flatnonzero(keep):
            d, (s, e) = items[i], seg[i]
            if self._repeats(int(s), int(e), d["label"]):
                continue
            self._emitted.append((int(s), int(e), d["label"]))
            out.append(Emitted(float(s * sps), float(e * sps), d["label"], float(d["score"]), float(clock - e * sps)))
        return out

    def _repeats(self, s: int, e: int, label: str) -> bool:
        same = [(x[0], x[1]) for x in self._emitted if x[2] == label]
        if not same:
            return False
        ref = torch.tensor(same, dtype=torch.float64)
        iou = segment_tiou(torch.tensor(float(s)), torch.tensor(float(e)), ref[:, 0], ref[:, 1])
        return bool((iou >= self.cfg.repeat_iou - 1e-9).any())
