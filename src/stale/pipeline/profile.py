"""``stale train CONFIG --profile``: where the time of a training step goes, per box of the paper.

The run is assembled exactly as ``stale train`` assembles it (:func:`stale.pipeline.assemble.
assemble_training`, :func:`stale.pipeline.train.build_trainer`: same data checks, device, threads,
seeds, model, loss, optimiser and loader). Then one warm-up step and ``steps`` measured steps
run under ``torch.profiler.profile`` (CPU activity, plus CUDA on a CUDA device). A step is what
:meth:`Trainer.train_epoch` does per batch: fetch the batch from the loader,
:meth:`Trainer.train_step` (zero the gradients, text forward, micro-batched forward, losses,
backward) and :meth:`Trainer.update` (gradient clipping, Adam step, gradient zeroing).

How time is attributed:

* the trainer's phases are ``record_function`` scopes in the trainer's own code
  (``stale::losses``, ``stale::backward``, ...): a few microseconds per step when no profiler
  runs, and they mark code that belongs to the trainer, not to a module;
* the paper's boxes (text tower, temporal encoder, masking, cross-modal adaptation, classifier,
  mask localiser, E_p / E_m) get their scopes from **module forward hooks** installed only for
  the profiled steps and removed afterwards. Hooks rather than scopes in the model code: the
  model stays untouched, training without ``--profile`` runs no extra code at all, and any
  module that a config swaps in (a different temporal encoder, an ablation) is covered by name;
* backward has no module structure of its own. Each autograd node the engine evaluates carries
  the sequence number of the forward op that created it; the forward op lies inside a box's
  scope, so the text tower's share of backward (``text tower backward``, activation
  recomputation of ``text.grad_checkpointing`` included) is split off from the rest.
  Gradient accumulation into the leaf tensors (``AccumulateGrad``) stays in ``backward (rest)``.

On CPU the times are the scopes' CPU wall times; on CUDA the ``ms per step`` column holds the
device (kernel) time under each scope and the CPU time gets its own column, because the host
only enqueues kernels. ``other`` is the step time not covered by a listed scope (batch slicing,
host-device copies, the finiteness checks, the trainer's statistics). The second table lists
the ten ``aten`` ops with the most self CPU time.

Outputs (only with ``--out DIR``): ``DIR/profile.md`` (the tables) and ``DIR/profile_trace.json``
(a Chrome trace: chrome://tracing or https://ui.perfetto.dev), both written atomically and
checked before any work (nothing is replaced without ``--overwrite``). Single process only: a
profile under ``torchrun`` is not supported.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from stale.core.errors import StaleError
from stale.core.io import atomic_path, atomic_write_text
from stale.core.logs import get_logger
from stale.core.output_checks import Output, check_outputs
from stale.pipeline.assemble import absolute_paths, assemble_training, check_prompts, make_dataset
from stale.pipeline.config import StaleConfig
from stale.pipeline.train import build_trainer
from stale.training.runtime import resolve_device, seed_everything, set_threads
from stale.training.trainer import (SCOPE_BACKWARD, SCOPE_CLIP, SCOPE_LOSSES, SCOPE_STEP, SCOPE_ZERO,
                                    epoch_order)

log = get_logger("profile")

SCOPE_STEP_ALL = "stale::training step"
SCOPE_DATA = "stale::data loading"

#: module attribute of the model -> its row (the paper's boxes, Fig. 2)
MODULE_ROWS = {
    "text_encoder": "text tower forward",
    "temporal": "temporal encoder",
    "masking": "masking",
    "cross_modal": "cross-modal",
    "classifier": "classifier head",
    "localizer": "mask localiser",
    "consistency": "consistency projections (E_p, E_m)",
}
TEXT_BACKWARD = "text tower backward"
BACKWARD_REST = "backward (rest)"
OTHER = "other"
#: the table's rows in order; the trainer's scopes by their row names
TRAINER_ROWS = {SCOPE_DATA: "data loading", SCOPE_LOSSES: "losses", SCOPE_CLIP: "gradient clipping",
                SCOPE_STEP: "optimiser step", SCOPE_ZERO: "gradient zeroing"}
ROW_ORDER = ["data loading", "text tower forward", TEXT_BACKWARD, "temporal encoder", "masking",
             "cross-modal", "classifier head", "mask localiser", "consistency projections (E_p, E_m)",
             "losses", BACKWARD_REST, "gradient clipping", "optimiser step", "gradient zeroing", OTHER]
PROFILE_FILES = ("profile.md", "profile_trace.json")
_EVALUATE = "autograd::engine::evaluate_function"


@dataclass
class ProfileRow:
    """One row: ``ms`` per step (device time on CUDA, CPU time otherwise), ``cpu_ms`` per step,
    its ``percent`` of the step and ``calls`` per step."""

    name: str
    ms: float
    percent: float
    calls: float
    cpu_ms: float


@dataclass
class TrainingProfile:
    """The profile of ``steps`` training steps: per-box ``rows`` and the top ``ops``."""

    steps: int
    device: str
    step_ms: float                       # mean wall time of one step
    rows: list[ProfileRow]
    ops: list[ProfileRow]
    facts: dict = field(default_factory=dict)

    def row(self, name: str) -> ProfileRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_markdown(self) -> str:
        cuda = self.device.startswith("cuda")
        unit = "CUDA ms per step" if cuda else "ms per step"
        head = f"| module | {unit} | % of step | calls |" + (" CPU ms per step |" if cuda else "")
        sep = "|---|---:|---:|---:|" + ("---:|" if cuda else "")

        def line(r: ProfileRow) -> str:
            calls = f"{r.calls:g}" if r.calls else "-"
            out = f"| {r.name} | {r.ms:.2f} | {r.percent:.1f} | {calls} |"
            return out + (f" {r.cpu_ms:.2f} |" if cuda else "")

        listed = sum(r.percent for r in self.rows if r.name != OTHER)
        facts = ", ".join(f"{k} {v}" for k, v in self.facts.items())
        text = [f"Training step profile: {self.steps} measured steps after one warm-up, {self.device}; "
                f"{self.step_ms:.2f} ms per step (wall). {facts}.", "", head, sep,
                *(line(r) for r in self.rows),
                f"| **step** | {self.step_ms:.2f} | 100.0 | 1 |" + (" |" if cuda else ""), "",
                f"Listed scopes cover {listed:.1f}% of the step; module rows are forward time "
                "(backward: text tower backward and backward (rest)).", "",
                "Top 10 ops by self CPU time:", "",
                "| op | self CPU ms per step | % of step | calls |", "|---|---:|---:|---:|",
                *(f"| {o.name} | {o.cpu_ms:.2f} | {o.percent:.1f} | {o.calls:g} |" for o in self.ops)]
        return "\n".join(text) + "\n"


# ----------------------------------------------------------------------------- scopes

class BoxHooks:
    """Forward pre/post hooks on each box module of the model (:data:`MODULE_ROWS`), removed
    on exit (no hook survives the profiled calls). Subclasses give ``_enter(row)`` and
    ``_exit(row)``, each returning the hook."""

    def __init__(self, model: nn.Module):
        self.handles = []
        for attr, row in MODULE_ROWS.items():
            module = getattr(model, attr, None)
            if isinstance(module, nn.Module):
                self.handles.append(module.register_forward_pre_hook(self._enter(row)))
                self.handles.append(module.register_forward_hook(self._exit(row), always_call=True))

    def _enter(self, row: str):
        raise NotImplementedError

    def _exit(self, row: str):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()


class ForwardScopes(BoxHooks):
    """A ``record_function`` scope ``stale::<row>`` around each box module's forward."""

    def __init__(self, model: nn.Module):
        self.open: dict[int, list] = {}
        super().__init__(model)

    def _enter(self, row: str):
        def hook(module, args):
            scope = record_function("stale::" + row)
            scope.__enter__()
            self.open.setdefault(id(module), []).append(scope)
        return hook

    def _exit(self, row: str):
        def hook(module, args, output):
            stack = self.open.get(id(module))
            if stack:
                stack.pop().__exit__(None, None, None)
        return hook


def _batches(trainer, dataset, seed: int) -> Iterator:
    """Batches in the order :meth:`Trainer.train_epoch` draws them, epoch after epoch."""
    epoch = 0
    while True:
        order = epoch_order(len(dataset), seed, epoch)
        yield from trainer._loader(dataset, order, trainer.cfg.batch_size)
        epoch += 1


def _step(trainer, batches: Iterator, params, where: str, device: torch.device) -> None:
    """One training step as :meth:`Trainer.train_epoch` runs it, with its scopes."""
    with record_function(SCOPE_STEP_ALL):
        with record_function(SCOPE_DATA):
            batch = next(batches)
        trainer.train_step(batch, where)
        trainer.update(params, where)
        if device.type == "cuda":
            torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the table

def _has_ancestor(event, prefix: str) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(prefix):
            return True
        parent = parent.cpu_parent
    return False


def _ancestor_id(event, name: str) -> int:
    """``id`` of the nearest enclosing event called ``name``; -1 when there is none."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == name:
            return id(parent)
        parent = parent.cpu_parent
    return -1


def _scope_of(event) -> str | None:
    """The innermost ``stale::`` scope enclosing ``event`` (itself included)."""
    while event is not None:
        if event.name.startswith("stale::"):
            return event.name
        event = event.cpu_parent
    return None


def summarise(events, steps: int, device: str) -> TrainingProfile:
    """The tables of a profiler's ``events()`` covering ``steps`` steps."""
    cuda = device.startswith("cuda")
    per: dict[str, list[float]] = {}    # row -> [device us, cpu us, calls]

    def add(row: str, dev: float, cpu: float, calls: int = 1) -> None:
        acc = per.setdefault(row, [0.0, 0.0, 0])
        acc[0] += dev
        acc[1] += cpu
        acc[2] += calls

    step_cpu = step_dev = 0.0
    n_steps = 0
    forward_scope: dict[tuple[int, int], str] = {}
    for e in events:
        if e.name == SCOPE_STEP_ALL:
            step_cpu += e.cpu_time_total
            step_dev += e.device_time_total
            n_steps += 1
        elif e.name in TRAINER_ROWS or e.name == SCOPE_BACKWARD:
            # nested scopes are counted once (e.g. a zeroing inside another zeroing)
            if not _has_ancestor(e, e.name):
                add(TRAINER_ROWS.get(e.name, e.name), e.device_time_total, e.cpu_time_total)
        elif e.name.startswith("stale::") and e.name[len("stale::"):] in MODULE_ROWS.values():
            if not _has_ancestor(e, e.name):
                add(e.name[len("stale::"):], e.device_time_total, e.cpu_time_total)
        elif e.sequence_nr >= 0 and not e.name.startswith(_EVALUATE):
            scope = _scope_of(e)
            if scope is not None:
                forward_scope.setdefault((e.thread, e.sequence_nr), scope)
    if n_steps == 0:
        raise StaleError("the profiler recorded no training step; nothing to report")
    # backward nodes -> the box whose forward op created them
    text_scope = "stale::" + MODULE_ROWS["text_encoder"]
    text_passes: set[int] = set()       # the backward scopes that ran text tower nodes
    engine_dev = 0.0                    # kernels of the engine's own thread (CUDA)
    for e in events:
        if e.name.startswith(_EVALUATE) and not _has_ancestor(e, _EVALUATE):
            outside = _ancestor_id(e, SCOPE_BACKWARD) == -1
            if outside:
                # on CUDA the autograd engine runs on its own thread, outside the trainer's scopes
                engine_dev += e.device_time_total
            if e.sequence_nr >= 0 and forward_scope.get((e.fwd_thread, e.sequence_nr)) == text_scope:
                add(TEXT_BACKWARD, e.device_time_total, e.cpu_time_total, 0)
                text_passes.add(_ancestor_id(e, SCOPE_BACKWARD))
    back = per.pop(SCOPE_BACKWARD, [0.0, 0.0, 0])
    back[0] += engine_dev
    step_dev += engine_dev
    text_back = per.get(TEXT_BACKWARD, [0.0, 0.0, 0])
    if TEXT_BACKWARD in per:
        # on CUDA the engine's thread has no parent scope: one pass per step, as the trainer runs it
        text_back[2] = steps if -1 in text_passes else len(text_passes)
    add(BACKWARD_REST, max(back[0] - text_back[0], 0.0), max(back[1] - text_back[1], 0.0), back[2])

    def value(acc) -> float:
        return acc[0] if cuda else acc[1]

    total = step_dev if cuda else step_cpu
    total = total if total > 0 else step_cpu
    covered = sum(value(a) for a in per.values())
    per[OTHER] = [max(step_dev - covered, 0.0), max(step_cpu - sum(a[1] for a in per.values()), 0.0), 0]
    rows = [ProfileRow(name, value(per[name]) / 1e3 / steps, 100.0 * value(per[name]) / total,
                       per[name][2] / steps, per[name][1] / 1e3 / steps)
            for name in ROW_ORDER if name in per]
    ops: dict[str, list[float]] = {}
    for e in events:
        if e.name.startswith("aten::"):
            acc = ops.setdefault(e.name, [0.0, 0])
            acc[0] += e.self_cpu_time_total
            acc[1] += 1
    top = sorted(ops.items(), key=lambda kv: -kv[1][0])[:10]
    op_rows = [ProfileRow(name, us / 1e3 / steps, 100.0 * us / step_cpu, calls / steps, us / 1e3 / steps)
               for name, (us, calls) in top]
    return TrainingProfile(steps, device, step_cpu / 1e3 / steps, rows, op_rows)


# ----------------------------------------------------------------------------- the command

def profile_training(cfg: StaleConfig, steps: int = 2, out: str | Path | None = None,
                     overwrite: bool = False) -> str:
    """Profile one warm-up and ``steps`` measured training steps of ``cfg``'s run; returns the
    Markdown tables (and writes ``profile.md`` / ``profile_trace.json`` into ``out`` when given)."""
    if steps < 1:
        raise StaleError(f"--profile-steps must be >= 1, got {steps}")
    targets = []
    if out is not None:
        out = Path(out)
        inputs = [cfg.data.annotation_path()] if not cfg.data.annotations.startswith("builtin:") else []
        targets = check_outputs([Output(out / name, "file", "--out") for name in PROFILE_FILES],
                                inputs=inputs, input_dirs=cfg.data.features.roots(), overwrite=overwrite)
    if cfg.method not in ("stale", "two_stage"):
        raise StaleError(f"method {cfg.method!r} has no training loop to profile (stale and two_stage do)")
    cfg = absolute_paths(cfg)
    device = resolve_device(cfg.train.device, "train.device")
    threads = set_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    data = assemble_training(cfg)
    check_prompts(cfg, [data.classes, data.protocol.test_classes, data.selection_classes])
    with tempfile.TemporaryDirectory() as tmp:   # the trainer writes nothing in a step
        trainer = build_trainer(cfg, data, device, Path(tmp))
        dataset = make_dataset(data.fit_videos, data.store, cfg, data.classes)
        model = trainer.module
        trainer.model.train()
        if hasattr(model, "set_epoch"):
            model.set_epoch(0)
        params = [p for p in model.parameters() if p.requires_grad]
        batches = _batches(trainer, dataset, cfg.train.seed)
        t0 = time.perf_counter()
        _step(trainer, batches, params, "in the profiler's warm-up step", device)
        warm_s = time.perf_counter() - t0
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        try:
            with ForwardScopes(model), profile(activities=activities) as prof:
                for i in range(steps):
                    _step(trainer, batches, params, f"in profiled step {i + 1}", device)
        finally:
            batches.close()   # ends the loader (and its worker processes, if any)
        result = summarise(prof.events(), steps, str(device))
    result.facts = {"batch": cfg.train.batch_size, "micro-batch": cfg.train.micro_batch or "whole",
                    "classes": len(data.classes), "snippets": cfg.data.num_snippets,
                    "text": f"{cfg.text.arch} (finetune {cfg.text.finetune})", "threads": threads,
                    "warm-up s": f"{warm_s:.2f}",
                    "load": "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"}
    table = result.to_markdown()
    if targets:
        md, trace = targets
        md.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(trace) as tmp_trace:
            prof.export_chrome_trace(str(tmp_trace))
        atomic_write_text(md, table)
        log.info("wrote %s and %s", md, trace)
    return table
