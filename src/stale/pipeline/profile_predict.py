"""Where the time and the FLOPs of STALE prediction go, per box of the paper (Fig. 2).

One detector call (:class:`stale.pipeline.detectors.StaleDetector`: network forward in the
detector's precision, then float32 post-processing) on a batch of videos is

* **counted** once under ``torch.utils.flop_counter.FlopCounterMode`` (matrix products,
  convolutions and attention: 2 x multiply-adds), attributed to the boxes by forward hooks
  that read the counter's running total when a box starts and ends;
* **timed** ``reps`` times under ``torch.profiler`` with the box scopes of ``stale train
  --profile`` (:class:`stale.pipeline.profile.ForwardScopes`, hooks on the module that runs:
  the float32 model or its bf16 twin) plus the detector's own post-processing scope.

Each row: ms per call, GFLOP per call, achieved GFLOP/s and -- given the machine's GEMM rate in
the row's precision (``roofline``, e.g. from ``benchmarks/roofline.py``) -- its share of that
roofline. ``rest`` is the call's time outside every listed scope (the cached text features'
lookup, casts, the output container). Text features are computed once per class set (cached
by the text encoder): a warm-up call fills the cache before anything is measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from stale.pipeline.detectors import SCOPE_POSTPROCESS
from stale.pipeline.profile import BoxHooks, ForwardScopes

POSTPROCESS = "post-processing"
REST = "rest"
_BOXES = ["temporal encoder", "masking", "cross-modal", "classifier head", "mask localiser",
          "consistency projections (E_p, E_m)", "text tower forward"]


@dataclass
class BoxRow:
    """One box: ``ms`` per call, ``gflop`` per call, ``rate`` (GFLOP/s), ``percent`` of the call."""

    name: str
    ms: float
    gflop: float
    percent: float

    @property
    def rate(self) -> float:
        return self.gflop / (self.ms / 1e3) if self.ms > 0 else 0.0


@dataclass
class PredictProfile:
    """The profile of one detector call on ``videos`` videos in ``precision``."""

    videos: int
    precision: str
    call_ms: float                      # wall time of one call (median of the timed calls)
    rows: list[BoxRow]
    facts: dict = field(default_factory=dict)

    @property
    def gflop(self) -> float:
        return sum(r.gflop for r in self.rows)

    @property
    def videos_per_s(self) -> float:
        return self.videos / (self.call_ms / 1e3)

    def to_markdown(self, roofline: float | None = None) -> str:
        """The table; ``roofline``: the machine's GEMM GFLOP/s in this precision (adds a column)."""
        share = (lambda rate: f" {100.0 * rate / roofline:.1f} |") if roofline else (lambda rate: "")
        head = "| box | ms per call | % of call | GFLOP per call | GFLOP/s |" + (" % of roofline |" if roofline else "")
        sep = "|---|---:|---:|---:|---:|" + ("---:|" if roofline else "")
        lines = [f"| {r.name} | {r.ms:.1f} | {r.percent:.1f} | {r.gflop:.2f} | {r.rate:.0f} |" + share(r.rate)
                 for r in self.rows]
        total_rate = self.gflop / (self.call_ms / 1e3)
        facts = ", ".join(f"{k} {v}" for k, v in self.facts.items())
        return "\n".join([
            f"STALE prediction profile, {self.precision}: {self.videos} videos per call, "
            f"{self.call_ms:.1f} ms per call = {self.videos_per_s:.1f} videos/s, "
            f"{self.gflop / self.videos:.3f} GFLOP per video. {facts}.", "", head, sep, *lines,
            f"| **call** | {self.call_ms:.1f} | 100.0 | {self.gflop:.2f} | {total_rate:.0f} |" + share(total_rate),
        ]) + "\n"


class _BoxFlops(BoxHooks):
    """Adds up the FLOPs each box's forward ran (a running counter's difference)."""

    def __init__(self, model: nn.Module, counter):
        self.counter, self.flops, self.start = counter, {}, {}
        super().__init__(model)

    def _enter(self, row: str):
        def hook(module, args):
            self.start[row] = self.counter.get_total_flops()
        return hook

    def _exit(self, row: str):
        def hook(module, args, output):
            done = self.counter.get_total_flops() - self.start.pop(row, self.counter.get_total_flops())
            self.flops[row] = self.flops.get(row, 0) + done
        return hook


def profile_prediction(detector, features: torch.Tensor, class_names: Sequence[str], durations,
                       reps: int = 2) -> PredictProfile:
    """Profile ``detector(features (B, T, D), class_names, durations)`` (module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    names = list(class_names)
    net = detector.network(features.device)
    detector(features, names, durations)                       # warm-up: text cache, twin, allocator
    # the counter's module tracker hooks tensors that require grad: none may while it counts;
    # and nn.Transformer*'s fused inference path is one op the counter does not know: the
    # counting pass runs the same layers as their plain ops (linear, attention)
    params = [p for m in {id(net): net, id(detector.model): detector.model}.values()
              for p in m.parameters() if p.requires_grad]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        for p in params:
            p.requires_grad_(False)
        torch.backends.mha.set_fastpath_enabled(False)
        with FlopCounterMode(display=False) as counter, _BoxFlops(net, counter) as boxes:
            detector(features, names, durations)
            total_flops = counter.get_total_flops()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for p in params:
            p.requires_grad_(True)
    walls = []
    with ForwardScopes(net), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            t0 = time.perf_counter()
            detector(features, names, durations)
            walls.append(time.perf_counter() - t0)
    per: dict[str, float] = {}
    for e in prof.events():
        name = e.name[len("stale::"):] if e.name.startswith("stale::") else None
        if name in _BOXES or e.name == SCOPE_POSTPROCESS:
            parent, nested = e.cpu_parent, False
            while parent is not None:
                nested = nested or parent.name == e.name
                parent = parent.cpu_parent
            if not nested:
                per[name] = per.get(name, 0.0) + e.cpu_time_total / 1e3 / reps
    call_ms = 1e3 * sorted(walls)[len(walls) // 2]
    flops = dict(boxes.flops)
    flops[POSTPROCESS] = total_flops - sum(flops.values())    # what ran outside the boxes
    rows = [BoxRow(name, per.get(name, 0.0), flops.get(name, 0) / 1e9, 100.0 * per.get(name, 0.0) / call_ms)
            for name in [*_BOXES, POSTPROCESS] if name in per or flops.get(name)]
    rest = max(call_ms - sum(r.ms for r in rows), 0.0)
    rows.append(BoxRow(REST, rest, 0.0, 100.0 * rest / call_ms))
    prec = detector.precision(features.device).name
    return PredictProfile(int(features.shape[0]), prec, call_ms, rows,
                          {"classes": len(names), "snippets": int(features.shape[1]),
                           "threads": torch.get_num_threads()})
