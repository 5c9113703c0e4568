"""The training loop: seeded, resumable, streamed data, AMP on CUDA, DDP under torchrun.

One epoch visits the training videos in an order drawn from ``seed + epoch``, so an epoch's
batches do not depend on what happened before it; together with the RNG states stored in
``last.pt``, a run resumed from its last checkpoint ends with exactly the weights of an
uninterrupted run (on the CPU, where kernels are deterministic). Features are streamed from
disk per batch (:mod:`stale.data.dataset`).

One step encodes the K+1 class prompts once, then runs the batch's videos in micro-batches of
``train.micro_batch`` (gradient accumulation with one text forward and one text backward per
step, see :meth:`Trainer.train_step`): peak memory scales with the micro-batch, not the batch,
and the update equals the full-batch one because every loss term is a mean over videos.

Written to the run folder: ``last.pt`` (full training state) every epoch, ``best.pt`` (weights
and config only) when the selection metric improves, ``metrics.jsonl`` (one line per epoch:
loss terms, held-out metrics, gate coverage, classifier scale) and ``steps.jsonl`` (one line per
step). A non-finite loss or gradient stops training with a clear message; non-finite weights
are never written.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch
from torch import nn
from torch.profiler import record_function

from stale.core.errors import StaleError
from stale.core.io import atomic_write_text
from stale.core.logs import get_logger, progress
from stale.data.dataset import Batch, VideoFeatureDataset, make_loader
from stale.training.checkpoint import load_checkpoint, save_checkpoint, slim_state_dict
from stale.training.config import TrainConfig
from stale.training.distributed import DistInfo, all_reduce_mean, barrier
from stale.training.runtime import rng_state, set_rng_state

log = get_logger("train")

#: ``torch.profiler.record_function`` scopes of a training step (``stale train --profile``);
#: outside a profiler a scope costs a few microseconds
SCOPE_LOSSES = "stale::losses"
SCOPE_BACKWARD = "stale::backward"
SCOPE_CLIP = "stale::gradient clipping"
SCOPE_STEP = "stale::optimiser step"
SCOPE_ZERO = "stale::gradient zeroing"

# settings a resumed run may change: more epochs, the progress bar, threads, and the memory-only
# ones (micro-batching and checkpointing change how gradients are computed, not their value)
_RESUME_MAY_CHANGE = {"train": ("epochs", "progress", "micro_batch", "threads", "device"),
                      "text": ("grad_checkpointing", "share_prefix", "weights", "cache_dir"),
                      "data": ("annotations", "features", "num_workers", "cache_mb")}


def _comparable(config: dict | None) -> dict | None:
    """A run config without the settings a resumed run may change (see ``_RESUME_MAY_CHANGE``)."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    for section, keys in _RESUME_MAY_CHANGE.items():
        out[section] = {k: v for k, v in (config.get(section) or {}).items() if k not in keys}
    return out


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def shard_order(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's strided share of an epoch's order (N,) -> (ceil(N / world_size),).

    Every rank must run the same number of steps, or DDP's gradient all-reduce deadlocks; when
    N does not divide, the order is padded by repeating its first items (as torch's
    DistributedSampler does), so a few videos are seen twice in that epoch.
    """
    if world_size <= 1:
        return order
    size = math.ceil(len(order) / world_size) * world_size
    if size > len(order) > 0:
        order = order.repeat(math.ceil(size / len(order)))[:size]
    return order[rank::world_size]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam; the text tower may get its own learning rate (parameters named ``text_encoder.*``)."""
    text, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (text if name.startswith("text_encoder.") else rest).append(p)
    groups = [{"params": rest, "lr": cfg.lr}]
    if text:
        groups.append({"params": text, "lr": cfg.text_lr if cfg.text_lr is not None else cfg.lr})
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class Selection:
    """How ``best.pt`` is chosen: the epoch record's ``key`` (``min`` or ``max``). ``evaluate``
    adds metrics to each epoch's record (e.g. pseudo-unseen mAP) from the unwrapped model.
    ``key=None`` keeps the last epoch."""

    key: str | None = "val_total"
    mode: Literal["min", "max"] = "min"
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None

    def better(self, value: float, best: float | None) -> bool:
        if self.key is None:
            return True
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best


@dataclass
class Trainer:
    """Runs epochs of training and writes the run folder's checkpoints and metrics.

    ``model`` follows :class:`stale.model.network.STALE`: ``forward(features, class_names,
    gt_fg=None, text=None)`` and, when it has a text side, ``encode_text(class_names)``.
    ``loss_fn(output, targets)`` returns a :class:`~stale.model.outputs.LossTerms`.
    """

    model: nn.Module
    loss_fn: Callable[[Any, Any], Any]
    cfg: TrainConfig
    class_names: Sequence[str]
    out_dir: Path
    checkpoint_extra: dict[str, Any]  # config dict, class lists, ... stored in every checkpoint
    device: torch.device
    dist: DistInfo = field(default_factory=DistInfo)
    selection: Selection = field(default_factory=Selection)
    num_workers: int = 0

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.module = self.model  # the un-wrapped model (what is saved)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # ablations (no masking, GT masks, no adaptation) leave some parameters unused
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids,
                                                             find_unused_parameters=True)
        self.optimizer = build_optimizer(self.module, self.cfg)
        self.start_epoch = 0
        self.history: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        # one DataLoader per (dataset, batch size) for the whole run: its workers persist across
        # epochs, each epoch only sets the order of its batches
        self._loaders: dict[tuple[int, int], Any] = {}

    # -- checkpoints -----------------------------------------------------------------------
    def _weights_payload(self, epoch: int) -> dict[str, Any]:
        state, frozen = slim_state_dict(self.module)
        return {**self.checkpoint_extra, "model": state, "frozen": frozen, "epoch": epoch,
                "record": self.history[-1] if self.history else {}}

    def _full_payload(self, epoch: int) -> dict[str, Any]:
        return {**self._weights_payload(epoch), "optimizer": self.optimizer.state_dict(),
                "history": self.history, "steps": self.steps, "best_value": self.best_value,
                "best_epoch": self.best_epoch, "rng": rng_state()}

    def resume(self, path: Path, migrate_config: Callable[[dict], dict] | None = None) -> None:
        """Continue the training state of checkpoint ``path``, which must have been trained with
        this config; ``migrate_config`` maps a config recorded by an older version first."""
        ckpt = load_checkpoint(path)
        if "optimizer" not in ckpt or "rng" not in ckpt:
            raise StaleError(f"{path}: holds weights only (not a full training state); cannot resume from it")
        recorded = ckpt.get("config")
        if migrate_config is not None and isinstance(recorded, dict):
            recorded = migrate_config(recorded)
        if _comparable(recorded) != _comparable(self.checkpoint_extra.get("config")):
            raise StaleError(f"{path}: the checkpoint was trained with a different config; "
                             "resume with the same config (see config.yaml in the run folder; "
                             "only train.epochs, threads, device, micro_batch and data locations may change)")
        from stale.training.checkpoint import load_weights

        load_weights(self.module, ckpt)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.history = list(ckpt.get("history", []))
        self.steps = list(ckpt.get("steps", []))
        self.best_value = ckpt.get("best_value")
        self.best_epoch = ckpt.get("best_epoch")
        set_rng_state(ckpt["rng"])
        log.info("resumed from %s at epoch %d/%d", path, self.start_epoch + 1, self.cfg.epochs)

    # -- steps -----------------------------------------------------------------------------
    def uses_autocast(self) -> bool:
        """Whether the forward runs under bf16 autocast: ``train.amp`` on CUDA; on the CPU
        ``train.cpu_amp`` (``auto``: where the CPU has native bf16 matrix units)."""
        if not self.cfg.amp:
            return False
        if self.device.type == "cuda":
            return True
        if self.cfg.cpu_amp == "auto":
            from stale.core.precision import native_bf16

            return native_bf16("cpu")[0]
        return bool(self.cfg.cpu_amp)

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.uses_autocast())

    def _forward_loss(self, batch: Batch, text: torch.Tensor | None = None):
        targets = batch.targets
        with self._autocast():
            gt_fg = targets.fg_mask if targets is not None else None
            out = self.model(batch.features, self.class_names, gt_fg=gt_fg, text=text)
        out = out.float()
        with record_function(SCOPE_LOSSES):
            return self.loss_fn(out, targets), out

    @staticmethod
    def _stats(out, targets) -> dict[str, float]:
        """Gate coverage (share of snippets kept), its recall on ground-truth foreground and
        keep-rate on background, and the classifier scale, for the epoch records."""
        if not hasattr(out, "fg_hard"):
            return {}
        with torch.no_grad():
            keep = out.fg_hard.float()
            stats = {"gate_coverage": float(keep.mean())}
            if targets is not None:
                fg = targets.fg_mask >= 0.5
                if fg.any():
                    stats["gate_fg_recall"] = float(keep[fg].mean())
                if (~fg).any():
                    stats["gate_bg_keep"] = float(keep[~fg].mean())
            if getattr(out, "logit_scale", None) is not None:
                stats["logit_scale"] = float(out.logit_scale)
        return stats

    def train_step(self, batch: Batch, where: str) -> dict[str, float]:
        """Gradients of ``batch`` into ``.grad`` (zeroed first); returns its loss terms + stats.

        The text features are computed once, ``text`` (K+1, C) with graph. Every micro-batch but
        the last runs against a detached copy ``leaf`` whose ``.grad`` sums their text gradient;
        the last runs against ``text`` itself and adds ``<text, leaf.grad>`` to its loss, so one
        backward carries all micro-batches' text gradient through the text encoder. Under DDP
        the other micro-batches run in ``no_sync()`` and that last backward -- text encoder
        included -- is the one synchronised pass. Each micro-batch loss is weighted by its share
        of the batch: with per-video-mean losses the sum is exactly the full-batch loss.
        """
        with record_function(SCOPE_ZERO):
            self.optimizer.zero_grad(set_to_none=True)
        n = len(batch)
        size = min(self.cfg.micro_batch or n, n)
        text = leaf = None
        if hasattr(self.module, "encode_text"):
            with self._autocast():
                text = self.module.encode_text(self.class_names)
            # float32: the leaf's gradient is accumulated over micro-batches
            text = text.float()
            leaf = text.detach().requires_grad_(text.requires_grad)
        sums: dict[str, float] = {}
        for start in range(0, n, size):
            last = start + size >= n
            chunk = batch.slice(start, start + size).to(self.device, non_blocking=True)
            share = len(chunk) / n
            sync = nullcontext() if last or not self.dist.enabled else self.model.no_sync()
            with sync:
                losses, out = self._forward_loss(chunk, text if last else leaf)
                total = losses.total
                if not torch.isfinite(total):
                    raise StaleError(f"training diverged {where}: the loss is {total.item()} "
                                     f"(terms: {losses.values()}); lower train.lr (now {self.cfg.lr})")
                weighted = total * share
                if last and leaf is not None and leaf.grad is not None:
                    weighted = weighted + (text * leaf.grad).sum()
                with record_function(SCOPE_BACKWARD):
                    weighted.backward()
            values = {**losses.values(), **self._stats(out, chunk.targets)}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * share
        return sums

    def update(self, params: Sequence[torch.Tensor], where: str) -> float:
        """The optimiser half of a step, after :meth:`train_step`: clip the gradients of
        ``params`` (``train.grad_clip``), take the Adam step, free the gradients. Returns the
        gradient norm before clipping; a non-finite one stops training."""
        with record_function(SCOPE_CLIP):
            max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if not math.isfinite(grad_norm):
            raise StaleError(f"training diverged {where}: the gradient norm is {grad_norm}; "
                             f"lower train.lr (now {self.cfg.lr}) or check the features")
        with record_function(SCOPE_STEP):
            self.optimizer.step()
        with record_function(SCOPE_ZERO):
            # free the gradients now rather than during the next forward (peak memory)
            self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _loader(self, data: VideoFeatureDataset, order, batch_size: int):
        """The run's loader of ``data`` in ``batch_size`` batches, now yielding them in ``order``."""
        key = (id(data), batch_size)
        loader = self._loaders.get(key)
        if loader is None or loader.dataset is not data:
            pin = self.device.type == "cuda"
            loader = self._loaders[key] = make_loader(data, order, batch_size, self.num_workers, pin)
        else:
            loader.batch_sampler.set_order(order)
        return loader

    def train_epoch(self, data: VideoFeatureDataset, epoch: int) -> dict[str, float]:
        self.model.train()
        self._loss_mode(True)
        if hasattr(self.module, "set_epoch"):
            self.module.set_epoch(epoch)
        order = epoch_order(len(data), self.cfg.seed, epoch)
        if hasattr(data, "epoch_items"):        # items drawn per epoch (windows): the epoch is in the index
            order = data.epoch_items(order, epoch)
        order = shard_order(order, self.dist.rank, self.dist.world_size)
        loader = self._loader(data, order, self.cfg.batch_size)
        sums: dict[str, float] = {}
        params = [p for p in self.module.parameters() if p.requires_grad]
        bar = progress(loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", total=len(loader),
                       unit="step", enabled=self.cfg.progress and self.dist.is_main)
        steps = 0
        for step, batch in enumerate(bar):
            where = f"at epoch {epoch + 1}, step {step + 1}"
            values = self.train_step(batch, where)
            values["grad_norm"] = self.update(params, where)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            self.steps.append({"epoch": epoch + 1, "step": step + 1,
                               **{k: round(v, 6) for k, v in values.items()}})
            steps += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{values['total']:.4f}")
        means = {k: v / max(steps, 1) for k, v in sums.items()}
        return {k: float(all_reduce_mean(torch.tensor(v), self.dist)) for k, v in means.items()}

    @torch.no_grad()
    def _loss_mode(self, training: bool) -> None:
        # a loss may judge held-out videos differently (STALELoss: a masked action snippet counts)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.train(training)

    def evaluate_loss(self, data: VideoFeatureDataset) -> dict[str, float]:
        self.model.eval()
        self._loss_mode(False)
        # no graph is kept, but micro-batches still bound the activations' size; same means
        bs = min(self.cfg.micro_batch or self.cfg.batch_size, self.cfg.batch_size)
        sums: dict[str, float] = {}
        n = len(data)
        for batch in self._loader(data, range(n), bs):
            batch = batch.to(self.device)
            losses, _ = self._forward_loss(batch)
            for k, v in losses.values().items():
                sums[k] = sums.get(k, 0.0) + v * len(batch)
        return {k: v / max(n, 1) for k, v in sums.items()}

    def _check_weights(self, where: str) -> None:
        for name, p in self.module.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise StaleError(f"training diverged {where}: parameter {name} is not finite; "
                                 f"nothing was saved for this epoch (lower train.lr, now {self.cfg.lr})")

    # -- the run ---------------------------------------------------------------------------
    def fit(self, train: VideoFeatureDataset, val: VideoFeatureDataset | None) -> list[dict[str, Any]]:
        for epoch in range(self.start_epoch, self.cfg.epochs):
            t0 = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch + 1, "autocast_bf16": self.uses_autocast()}
            record.update({f"train_{k}": v for k, v in self.train_epoch(train, epoch).items()})
            self._check_weights(f"after epoch {epoch + 1}")
            if hasattr(self.module, "set_epoch"):
                # held-out metrics judge the model as it will be used (training schedules off)
                self.module.set_epoch(None)
            if val is not None and len(val) > 0:
                record.update({f"val_{k}": v for k, v in self.evaluate_loss(val).items()})
            if self.selection.evaluate is not None:
                self.model.eval()
                record.update(self.selection.evaluate(self.module))
            record["seconds"] = round(time.perf_counter() - t0, 3)
            self.history.append(record)
            key = self.selection.key
            value = record.get(key, record.get("train_total")) if key else 0.0
            is_best = self.selection.better(float(value), self.best_value)
            if is_best:
                self.best_value, self.best_epoch = float(value), epoch + 1
            if self.dist.is_main:
                save_checkpoint(self.out_dir / "last.pt", self._full_payload(epoch))
                if is_best:
                    save_checkpoint(self.out_dir / "best.pt", self._weights_payload(epoch))
                atomic_write_text(self.out_dir / "metrics.jsonl",
                                  "".join(json.dumps(r) + "\n" for r in self.history))
                atomic_write_text(self.out_dir / "steps.jsonl",
                                  "".join(json.dumps(r) + "\n" for r in self.steps))
                shown = ", ".join(f"{k}={v:.4f}" for k, v in record.items()
                                  if k.endswith("total") or (key and k == key))
                log.info("epoch %d/%d: %s, %.1fs%s", epoch + 1, self.cfg.epochs, shown,
                         record["seconds"], " (best)" if is_best and key else "")
            barrier(self.dist)
        if hasattr(self.module, "set_epoch"):
            self.module.set_epoch(None)
        return self.history
