"""The training loop: seeded, resumable, AMP on CUDA, DDP under torchrun.

One epoch visits the training videos in an order drawn from ``seed + epoch``, so an epoch's
batches do not depend on what happened before it; together with the RNG states stored in each
checkpoint, this makes a run resumed from its last checkpoint end with exactly the weights of an
uninterrupted run (on the CPU, where kernels are deterministic).

One step encodes the K+1 class prompts once, then runs the batch's videos in micro-batches of
``train.micro_batch`` (gradient accumulation with one text forward and one text backward per
step, see :meth:`Trainer.train_step`): peak memory scales with the micro-batch, not the batch,
and the update equals the full-batch one because every loss term is a mean over videos.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from stale.checkpoint import load_checkpoint, save_checkpoint
from stale.distributed import DistInfo, all_reduce_mean, barrier
from stale.errors import StaleError
from stale.io import atomic_write_text


@dataclass
class TrainConfig:
    """Optimisation settings (paper, Sec. 4: Adam, 15 epochs, lr 1e-4 ActivityNet / 1e-5 THUMOS14)."""

    epochs: int = 15
    batch_size: int = 16
    # videos per forward/backward pass inside a step (gradient accumulation; same update as the
    # whole batch, less memory); None = the whole batch at once
    micro_batch: int | None = None
    lr: float = 1e-4
    text_lr: float | None = None  # learning rate of the text tower (None: same as lr)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    seed: int = 0
    val_fraction: float = 0.1  # held-out share of the *training* videos, for model selection
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    progress: bool = True

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise StaleError("train.epochs and train.batch_size must be >= 1")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise StaleError(f"train.micro_batch must be >= 1 or null, got {self.micro_batch}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise StaleError(f"train.val_fraction must be in [0, 1), got {self.val_fraction}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise StaleError(f"train.device={name} but CUDA is not available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Batches:
    """Tensors of a set of videos, indexable along the first axis (features and targets)."""

    tensors: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def take(self, idx: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in self.tensors.items():
            t = v[idx]
            if t.dtype in (torch.uint8, torch.bool):
                t = t.float()
            out[k] = t.to(device, non_blocking=True)
        return out


# settings a resumed run may change: more epochs, the progress bar, and the memory-only ones
# (micro-batching and checkpointing change how gradients are computed, not their value)
_RESUME_MAY_CHANGE = {"train": ("epochs", "progress", "micro_batch"), "text": ("grad_checkpointing",)}


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
class Trainer:
    """Runs epochs of training and writes ``last.pt``, ``best.pt`` and ``metrics.jsonl``.

    ``model`` follows :class:`stale.model.stale.STALE`: ``encode_text(class_names) -> (K+1, C)``
    and ``forward(features, class_names, gt_fg=None, text=None) -> dict``.
    """

    model: nn.Module
    loss_fn: Callable[[dict, dict], dict[str, torch.Tensor]]
    cfg: TrainConfig
    class_names: Sequence[str]
    out_dir: Path
    checkpoint_extra: dict[str, Any]  # config dict, class lists, ... stored in every checkpoint
    device: torch.device
    dist: DistInfo = field(default_factory=DistInfo)
    log: Callable[[str], None] = print

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
        self.best_val = math.inf

    # -- checkpoints -----------------------------------------------------------------------
    def _payload(self, epoch: int) -> dict[str, Any]:
        return {
            **self.checkpoint_extra,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epoch,
            "history": self.history,
            "best_val": self.best_val,
            "rng": _rng_state(),
        }

    def resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        if _comparable(ckpt.get("config")) != _comparable(self.checkpoint_extra.get("config")):
            raise StaleError(f"{path}: the checkpoint was trained with a different config; "
                             "resume with the same config (see config.yaml in the run folder; "
                             "only train.epochs and train.progress may change)")
        self.module.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.history = list(ckpt.get("history", []))
        self.best_val = float(ckpt.get("best_val", math.inf))
        _set_rng_state(ckpt["rng"])
        self.log(f"resumed from {path} at epoch {self.start_epoch}/{self.cfg.epochs}")

    # -- steps -----------------------------------------------------------------------------
    def _autocast(self):
        use_amp = self.cfg.amp and self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_amp)

    def _forward_loss(self, batch: dict[str, torch.Tensor],
                      text: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        with self._autocast():
            out = self.model(batch["features"], self.class_names, gt_fg=batch.get("fg_mask"),
                             text=text)
        out = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in out.items()}
        return self.loss_fn(out, batch)

    def train_step(self, data: Batches, idx: torch.Tensor, where: str) -> dict[str, float]:
        """Gradients of the batch ``idx`` (N,) into ``.grad`` (zeroed first); returns its loss terms.

        The text features are computed once, ``text`` (K+1, C) with graph. Every micro-batch but
        the last runs against a detached copy ``leaf`` whose ``.grad`` sums their text gradient;
        the last runs against ``text`` itself and adds ``<text, leaf.grad>`` to its loss, so one
        backward carries all micro-batches' text gradient through the text encoder. Under DDP
        the other micro-batches run in ``no_sync()`` and that last backward -- text encoder
        included -- is the one synchronised pass. Each micro-batch loss is weighted by its share
        of the batch: with per-video-mean losses the sum is exactly the full-batch loss.
        """
        self.optimizer.zero_grad(set_to_none=True)
        n = len(idx)
        size = min(self.cfg.micro_batch or n, n)
        with self._autocast():
            text = self.module.encode_text(self.class_names)
        # float32: the leaf's gradient is accumulated over micro-batches
        text = text.float()
        leaf = text.detach().requires_grad_(text.requires_grad)
        sums: dict[str, float] = {}
        for start in range(0, n, size):
            last = start + size >= n
            chunk = data.take(idx[start:start + size], self.device)
            share = len(chunk["features"]) / n
            sync = nullcontext() if last or not self.dist.enabled else self.model.no_sync()
            with sync:
                losses = self._forward_loss(chunk, text if last else leaf)
                total = losses["total"]
                if not torch.isfinite(total):
                    terms = {k: float(v.detach()) for k, v in losses.items()}
                    raise StaleError(f"training diverged: loss is {total.item()} {where} "
                                     f"(terms: {terms})")
                weighted = total * share
                if last and leaf.grad is not None:
                    weighted = weighted + (text * leaf.grad).sum()
                weighted.backward()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * share
        return sums

    def train_epoch(self, data: Batches, epoch: int) -> dict[str, float]:
        self.model.train()
        order = shard_order(epoch_order(len(data), self.cfg.seed, epoch), self.dist.rank,
                            self.dist.world_size)
        bs = self.cfg.batch_size
        steps = math.ceil(len(order) / bs)
        sums: dict[str, float] = {}
        bar = range(steps)
        if self.cfg.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(bar, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False, dynamic_ncols=True)
        for step in bar:
            losses = self.train_step(data, order[step * bs:(step + 1) * bs],
                                     f"at epoch {epoch + 1}, step {step + 1}")
            if self.cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            # free the gradients now rather than during the next forward (peak memory)
            self.optimizer.zero_grad(set_to_none=True)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{losses['total']:.4f}")
        means = {k: v / max(steps, 1) for k, v in sums.items()}
        return {k: float(all_reduce_mean(torch.tensor(v), self.dist)) for k, v in means.items()}

    @torch.no_grad()
    def evaluate_loss(self, data: Batches) -> dict[str, float]:
        self.model.eval()
        # no graph is kept, but micro-batches still bound the activations' size; same means
        bs = min(self.cfg.micro_batch or self.cfg.batch_size, self.cfg.batch_size)
        sums: dict[str, float] = {}
        n = len(data)
        for start in range(0, n, bs):
            idx = torch.arange(start, min(start + bs, n))
            losses = self._forward_loss(data.take(idx, self.device))
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
        return {k: v / max(n, 1) for k, v in sums.items()}

    # -- the run ---------------------------------------------------------------------------
    def fit(self, train: Batches, val: Batches | None) -> list[dict[str, Any]]:
        for epoch in range(self.start_epoch, self.cfg.epochs):
            t0 = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch + 1}
            record.update({f"train_{k}": v for k, v in self.train_epoch(train, epoch).items()})
            if val is not None and len(val) > 0:
                record.update({f"val_{k}": v for k, v in self.evaluate_loss(val).items()})
            record["seconds"] = round(time.perf_counter() - t0, 3)
            self.history.append(record)
            val_loss = record.get("val_total", record["train_total"])
            is_best = val_loss < self.best_val
            if is_best:
                self.best_val = val_loss
            if self.dist.is_main:
                payload = self._payload(epoch)
                save_checkpoint(self.out_dir / "last.pt", payload)
                if is_best:
                    save_checkpoint(self.out_dir / "best.pt", payload)
                atomic_write_text(self.out_dir / "metrics.jsonl",
                                  "".join(json.dumps(r) + "\n" for r in self.history))
                shown = ", ".join(f"{k}={v:.4f}" for k, v in record.items()
                                  if k.endswith("total")) + f", {record['seconds']:.1f}s"
                self.log(f"epoch {epoch + 1}/{self.cfg.epochs}: {shown}{' (best)' if is_best else ''}")
            barrier(self.dist)
        return self.history
