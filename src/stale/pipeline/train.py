"""``stale train``: assemble a run from its config, check everything, then train it.

A run folder holds ``config.yaml`` (the fully resolved config, absolute paths), ``inputs.json``
(where its inputs are, absolute and relative to the folder), ``classes.json`` (protocol and
class lists), ``data_report.json`` (every data policy applied, with counts), ``train.log``,
``metrics.jsonl`` / ``steps.jsonl`` (per epoch / per step), ``selection.json`` (which epoch
``best.pt`` holds and why), ``last.pt`` (full training state, for ``--resume``) and ``best.pt``
(weights + config of the selected epoch).

Model selection never looks at the test split or the real unseen classes: ``val_loss`` uses
held-out *training* videos, ``pseudo_unseen`` held-out seen classes (``train.select``).
"""

from __future__ import annotations

import contextlib

import math
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from stale.core.config import to_dict
from stale.core.errors import StaleError
from stale.core.io import atomic_write_json, atomic_write_text, remove_stale_temp_files
from stale.core.logs import RunLog, get_logger
from stale.core.output_checks import prepare_run_folder
from stale.pipeline.assemble import (TrainingData, absolute_paths, assemble_training, check_prompts,
                                 make_dataset, num_workers, record_inputs)
from stale.pipeline.detectors import build_trainable, text_tower
from stale.pipeline.config import StaleConfig
from stale.pipeline.config_migration import migrate_recorded_config
from stale.training.distributed import DistInfo, init_distributed, shutdown_distributed
from stale.training.runtime import resolve_device, seed_everything, set_threads

log = get_logger("train")


def _selection(cfg: StaleConfig, data: TrainingData, device: torch.device):
    """The trainer's :class:`Selection` for ``train.select``."""
    from stale.training.trainer import Selection

    if cfg.train.select == "last":
        return Selection(key=None)
    if cfg.train.select == "val_loss":
        return Selection("val_total" if data.val_videos else "train_total", "min")
    from stale.evaluation import evaluate_detection
    from stale.pipeline.detectors import make_detector
    from stale.pipeline.predict import detect_dataset

    tower = None if cfg.method == "stale" else text_tower(cfg)
    sel = make_dataset(data.selection_videos, data.store, cfg, classes=data.selection_classes, for_detection=True)
    gt = {"database": {v.id: {"subset": "selection", "annotations": [
        {"segment": [s.start, s.end], "label": s.label} for s in v.segments]} for v in data.selection_videos}}

    def evaluate(model) -> dict[str, float]:
        detector = make_detector(cfg, model, device, tower)
        results = detect_dataset(detector, sel, data.selection_classes, batch_size=cfg.train.batch_size,
                                 device=device)
        res = evaluate_detection(gt, {"results": results}, subset="selection",
                                 tiou_thresholds=cfg.data.tiou_preset)
        return {"sel_pseudo_unseen_mAP": res.average_mAP}

    return Selection("sel_pseudo_unseen_mAP", "max", evaluate)


def _write_selection(out_dir: Path, history: list[dict], best_epoch: int | None, cfg: StaleConfig,
                     data: TrainingData) -> dict:
    epochs = cfg.train.epochs
    chosen = best_epoch or (history[-1]["epoch"] if history else None)
    info = {"select": cfg.train.select, "epoch": chosen, "of_epochs": epochs,
            "metric": {"val_loss": "val_total", "pseudo_unseen": "sel_pseudo_unseen_mAP",
                       "last": None}[cfg.train.select],
            "pseudo_unseen_classes": data.selection_classes,
            "selection_videos": len(data.selection_videos)}
    if chosen is not None and epochs >= 5 and chosen <= math.ceil(epochs / 5):
        info["warning"] = (f"the selected epoch {chosen} lies in the first fifth of {epochs} epochs: "
                           "the model may be undertrained (see metrics.jsonl)")
        log.warning("%s: %s", out_dir, info["warning"])
    atomic_write_json(out_dir / "selection.json", info)
    return info


def run_training(cfg: StaleConfig, out_dir: str | Path, resume: bool = False, overwrite: bool = False) -> dict:
    """Train a model into ``out_dir``; returns the last epoch's metrics record.

    Steps: (1) check the run folder, (2) make paths absolute and set up the device, threads,
    seeds and DDP, (3) assemble and check the data, (4) check the prompts and build the model,
    (5) write the run files, (6) train, (7) record the selected epoch (and retrain on all seen
    classes when ``train.select_retrain``).
    """
    # 1. the output folder: refuse a finished run unless resumed / moved aside, before any work
    inputs = [cfg.data.annotation_path()] if not cfg.data.annotations.startswith("builtin:") else []
    folder, moved = prepare_run_folder(out_dir, resume=resume, overwrite=overwrite,
                                       inputs=inputs, input_dirs=cfg.data.features.roots())
    out_dir = folder
    with RunLog() as runlog, contextlib.ExitStack() as lock:
        if moved is not None:
            log.info("moved the earlier run in %s aside to %s", out_dir, moved)
        # 2. paths and runtime
        cfg = absolute_paths(cfg)
        device = resolve_device(cfg.train.device, "train.device")
        dist = init_distributed(device.type)
        if dist.enabled and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
        try:
            if dist.enabled and cfg.train.select == "pseudo_unseen" and cfg.train.select_retrain:
                # the retraining is a second run in the same processes; under torchrun every rank
                # would start it and move the checkpoints at once
                raise StaleError("train.select_retrain is not supported under torchrun (DDP): train "
                                 "the selection run with DDP, then retrain single-process with "
                                 "train.select=last and train.epochs=<the epoch in selection.json>")
            threads = set_threads(cfg.train.threads)
            seed_everything(cfg.train.seed)
            if device.type == "cpu":
                torch.use_deterministic_algorithms(True, warn_only=True)
            # 3. data: annotations, protocol, features -- every check before anything is written
            data = assemble_training(cfg, progress=cfg.train.progress and dist.is_main)
            # 4. prompts and model (its CLIP weights load here, before minutes of training)
            check_prompts(cfg, [data.classes, data.protocol.test_classes, data.selection_classes],
                          where=str(cfg.data.annotations))
            if cfg.method in ("clip_detector", "linear_probe"):
                return _fit_without_trainer(cfg, data, out_dir, runlog)
            trainer = build_trainer(cfg, data, device, out_dir, dist)
            model, extra = trainer.module, trainer.checkpoint_extra
            log.info("protocol %s: %d training classes, %d test classes; %d training videos, %d held "
                     "out%s; device %s, %d threads, %s", data.protocol.name, len(data.classes),
                     len(data.protocol.test_classes), len(data.fit_videos), len(data.val_videos),
                     f", {len(data.selection_videos)} for pseudo-unseen selection" if data.selection_videos else "",
                     device, threads, "bf16 autocast (float32 weights)" if trainer.uses_autocast() else "float32")
            if resume:
                # before the run files are rewritten: a refused resume must leave the run untouched
                last = out_dir / "last.pt"
                trainer.resume(last, lambda recorded: migrate_recorded_config(recorded, str(last)))
            # 5. the run files; from here on one process writes into the folder
            if dist.is_main:
                _lock_run_folder(out_dir, resume, lock)
                _write_run_files(cfg, data, out_dir, runlog, extra, model)
            train_ds = make_dataset(data.fit_videos, data.store, cfg, data.classes, fit=True)
            val_ds = make_dataset(data.val_videos, data.store, cfg, data.classes) if data.val_videos else None
            # 6. train
            try:
                history = trainer.fit(train_ds, val_ds)
            except StaleError as exc:
                raise StaleError(_divergence_hint(str(exc), data.report.features)) from None
            # 7. selection record, and the optional retraining on every seen class
            if dist.is_main:
                info = _write_selection(out_dir, history, trainer.best_epoch, cfg, data)
                log.info("best.pt holds epoch %s (%s)", info["epoch"], cfg.train.select)
            if cfg.train.select == "pseudo_unseen" and cfg.train.select_retrain:
                _retrain(cfg, out_dir, trainer.best_epoch or cfg.train.epochs)
            return history[-1] if history else {}
        finally:
            shutdown_distributed()


def _lock_run_folder(out_dir: Path, resume: bool, lock: contextlib.ExitStack) -> None:
    """Hold the run folder's lock (:mod:`stale.core.locks`) from the first write on: a second
    ``stale train`` into it is refused, and one that passed its checks while this one was
    getting ready finds the artefacts written meanwhile."""
    from stale.core.locks import folder_lock
    from stale.core.output_checks import run_artefacts

    out_dir.mkdir(parents=True, exist_ok=True)
    lock.enter_context(folder_lock(out_dir, "stale train"))
    present = run_artefacts(out_dir)
    if present and not resume:
        raise StaleError(f"--out {out_dir}: another process wrote a run here meanwhile ({', '.join(present)}); "
                         f"nothing was written -- choose another folder")


def build_trainer(cfg: StaleConfig, data: TrainingData, device: torch.device, out_dir: Path,
                  dist: DistInfo | None = None):
    """The run's model and loss (on ``device``) inside its :class:`~stale.training.trainer.Trainer`,
    with the checkpoint records and model selection of ``train.select``: what ``stale train``
    trains and ``stale train --profile`` measures (methods trained by the trainer only)."""
    from stale.training.trainer import Trainer

    model, loss_fn = build_trainable(cfg)
    fit_bridge(cfg, model, data)
    model = model.to(device)
    extra = _checkpoint_extra(cfg, data)
    if cfg.method != "stale":
        from stale.pipeline.detectors import tower_fingerprint

        extra["text_tower"] = tower_fingerprint(text_tower(cfg))
    dist = dist if dist is not None else DistInfo()
    return Trainer(model, loss_fn, cfg.train, data.classes, out_dir, extra,
                   device, dist, _selection(cfg, data, device), num_workers(cfg, device.type))


def fit_bridge(cfg: StaleConfig, model, data: TrainingData) -> None:
    """Fit ``model.bridge`` (:mod:`stale.model.bridge`), when the config has one, before training:
    the linear probe's ridge map from the training videos' seen-class foreground snippets to
    their class's template-ensemble text embedding, the ridge strength chosen on the held-out
    training videos (never on test data). A resumed run loads the fitted map from ``last.pt``."""
    bridge = getattr(model, "bridge", None)
    if bridge is None:
        return
    from stale.baselines.linear_probe import LinearProbeConfig, fit_linear_probe

    tower = getattr(getattr(model, "text_encoder", None), "tower", None) or text_tower(cfg)
    probe_cfg = LinearProbeConfig(l2_grid=list(cfg.model.bridge.l2_grid),
                                  templates=list(cfg.model.bridge.templates))
    train_ds = make_dataset(data.fit_videos, data.store, cfg, data.classes)
    val_ds = make_dataset(data.val_videos, data.store, cfg, data.classes) if data.val_videos else None
    probe = fit_linear_probe(train_ds, val_ds, data.classes, tower, probe_cfg, cfg.train.seed)
    bridge.set_map(probe.mu, probe.weight, float(probe.l2))
    log.info("feature bridge: ridge map %d -> %d fitted (l2 %g)", probe.weight.shape[0],
             probe.weight.shape[1], float(probe.l2))


def _checkpoint_extra(cfg: StaleConfig, data: TrainingData) -> dict:
    return {"config": to_dict(cfg),
            "classes": {"train": data.classes, "test": data.protocol.test_classes,
                        "seen": data.protocol.train_classes, "pseudo_unseen": data.selection_classes},
            "protocol": {"kind": data.protocol.kind, "name": data.protocol.name}}


def _write_run_files(cfg: StaleConfig, data: TrainingData, out_dir: Path, runlog: RunLog, extra: dict,
                     model=None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir)
    runlog.attach(out_dir / "train.log")
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    atomic_write_json(out_dir / "inputs.json", record_inputs(cfg, out_dir))
    atomic_write_json(out_dir / "classes.json", extra["classes"] | {"protocol": extra["protocol"]})
    report = data.report.to_dict()
    encoder = getattr(model, "text_encoder", None)
    report["text"] = {"truncated_names": dict(getattr(encoder, "truncated", {}))}
    atomic_write_json(out_dir / "data_report.json", report)


def _fit_without_trainer(cfg: StaleConfig, data: TrainingData, out_dir: Path, runlog: RunLog) -> dict:
    """The baselines with no training loop: the training-free CLIP detector (nothing to fit) and
    the linear probe (closed form). Both write a run folder whose ``best.pt`` ``stale predict``
    loads like any other."""
    import json
    import time

    from stale.pipeline.detectors import tower_fingerprint
    from stale.training.checkpoint import save_checkpoint

    t0 = time.perf_counter()
    tower = text_tower(cfg)
    extra = _checkpoint_extra(cfg, data) | {"text_tower": tower_fingerprint(tower)}
    record: dict = {"epoch": 1}
    state: dict = {}
    if cfg.method == "linear_probe":
        from stale.baselines.linear_probe import fit_linear_probe

        train_ds = make_dataset(data.fit_videos, data.store, cfg, data.classes)
        val_ds = make_dataset(data.val_videos, data.store, cfg, data.classes) if data.val_videos else None
        probe = fit_linear_probe(train_ds, val_ds, data.classes, tower, cfg.linear_probe, cfg.train.seed)
        state = probe.state_dict()
        record["ridge_l2"] = float(probe.l2)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    _write_run_files(cfg, data, out_dir, runlog, extra)
    save_checkpoint(out_dir / "best.pt", {**extra, "model": state, "epoch": 0, "record": record})
    atomic_write_text(out_dir / "metrics.jsonl", json.dumps(record) + "\n")
    atomic_write_json(out_dir / "selection.json", {"select": "none", "epoch": 1, "of_epochs": 1,
                                                   "method": cfg.method})
    log.info("%s: %s written to %s", cfg.method, "fitted" if state else "nothing to train", out_dir)
    return record


#: feature magnitude above which a divergence is blamed on the features (L2-normalised CLIP
#: features stay near 1, I3D activations below ~100)
SUSPICIOUS_FEATURE_MAGNITUDE = 1e3


def _divergence_hint(message: str, features: dict | None) -> str:
    """A divergence message, plus the feature file with the largest magnitude when that is
    far beyond what real features hold (the usual cause besides the learning rate)."""
    peak = (features or {}).get("max_abs_value") or 0.0
    if "diverged" not in message or peak <= SUSPICIOUS_FEATURE_MAGNITUDE:
        return message
    return (f"{message}; the features reach |x| = {peak:.3g} in {features.get('max_abs_file')} "
            f"(real features stay below ~{SUSPICIOUS_FEATURE_MAGNITUDE:.0f}): check or rescale that file")


def _retrain(cfg: StaleConfig, out_dir: Path, epochs: int) -> None:
    """Train on every seen class for the selected number of epochs into ``out_dir/final`` and
    make its last epoch the run's ``best.pt`` (the selection model stays in ``selection.pt``).

    Resumable: a run resumed after the retraining finished finds ``selection.pt`` and stops; one
    interrupted during the retraining continues ``final/`` from its ``last.pt``."""
    import os

    final = out_dir / "final"
    if (out_dir / "selection.pt").is_file():
        log.info("already retrained on all seen classes (%s)", out_dir / "selection.pt")
        return
    sub = replace(cfg, train=replace(cfg.train, select="last", epochs=int(epochs), select_retrain=False))
    log.info("retraining on all seen classes for %d epochs -> %s", epochs, final)
    partial = (final / "last.pt").is_file()
    run_training(sub, final, resume=partial, overwrite=not partial)
    os.replace(out_dir / "best.pt", out_dir / "selection.pt")
    os.replace(final / "best.pt", out_dir / "best.pt")

