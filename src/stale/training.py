"""``stale train``: build everything a run needs from its config and train it.

A run folder holds ``config.yaml`` (the resolved config), ``classes.json`` (protocol and class
lists), ``data_report.json`` (what the data layer did), ``metrics.jsonl`` (one line per epoch),
``last.pt`` (written every epoch, used by ``--resume``) and ``best.pt`` (lowest validation loss
on held-out *training* videos of the seen classes — never the test split or test classes).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

import torch
import yaml

from stale.config import StaleConfig
from stale.configtools import to_dict
from stale.distributed import init_distributed, shutdown_distributed
from stale.engine import Trainer, resolve_device, seed_everything
from stale.errors import StaleError
from stale.io import atomic_write_json, atomic_write_text
from stale.model.losses import STALELoss
from stale.model.stale import STALE
from stale.pipeline import (available_videos, build_batches, feature_store, load_run_annotations,
                            resolve_protocol, split_holdout, train_test_sets)
from stale.text import build_text_encoder

log = logging.getLogger(__name__)


def build_model(cfg: StaleConfig) -> STALE:
    """The STALE network with its prompted text encoder, as configured."""
    return STALE(cfg.model, build_text_encoder(cfg.text))


def run_training(cfg: StaleConfig, out_dir: str | Path, resume: bool = False,
                 say: Callable[[str], None] = print) -> dict:
    """Train a model; returns the last epoch's metrics record."""
    out_dir = Path(out_dir)
    device = resolve_device(cfg.train.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    say = say if dist.is_main else (lambda *_: None)
    try:
        last = out_dir / "last.pt"
        if not resume and last.exists():
            raise StaleError(f"{out_dir} already holds a run (last.pt); use --resume to continue "
                             "it or choose another --out")
        if resume and not last.exists():
            raise StaleError(f"--resume: no checkpoint {last} to resume from")
        seed_everything(cfg.train.seed)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)

        ann = load_run_annotations(cfg)
        protocol = resolve_protocol(cfg, ann)
        train_set, _ = train_test_sets(cfg, ann, protocol)
        store = feature_store(cfg)
        videos = available_videos(list(train_set), store, cfg.data.missing_features)
        if not videos:
            raise StaleError("no training videos left after the protocol and feature checks")
        fit_videos, val_videos = split_holdout(videos, cfg.train.val_fraction, cfg.train.seed)
        classes = protocol.train_classes
        # the model (and its CLIP weights) first: a missing checkpoint fails before minutes of loading
        model = build_model(cfg).to(device)
        train_b, stats = build_batches(fit_videos, classes, store, cfg, True, cfg.train.progress and dist.is_main)
        val_b, _ = build_batches(val_videos, classes, store, cfg, True) if val_videos else (None, None)
        feat_dim = train_b.tensors["features"].shape[-1]
        if feat_dim != cfg.model.input_dim:
            raise StaleError(f"features under {store.root} have {feat_dim} channels but "
                             f"model.input_dim is {cfg.model.input_dim}")
        say(f"protocol {protocol.name}: {len(classes)} training classes, "
            f"{len(protocol.test_classes)} test classes; {len(fit_videos)} training videos, "
            f"{len(val_videos)} held out for model selection")

        extra = {"config": to_dict(cfg), "classes": {"train": classes, "test": protocol.test_classes},
                 "protocol": {"kind": protocol.kind, "name": protocol.name}}
        trainer = Trainer(model, STALELoss(cfg.model.loss), cfg.train, classes, out_dir, extra, device,
                          dist, log=say)
        if resume:
            # before the run files are rewritten: a refused resume must leave the run untouched
            trainer.resume(last)
        if dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
            atomic_write_json(out_dir / "classes.json", extra["classes"] | {"protocol": extra["protocol"]})
            atomic_write_json(out_dir / "data_report.json", {
                "annotations": ann.report.to_dict(),
                "labels": dataclasses.asdict(stats),
                "videos": {"train": len(fit_videos), "heldout": len(val_videos)},
            })
        history = trainer.fit(train_b, val_b)
        return history[-1] if history else {}
    finally:
        shutdown_distributed()
