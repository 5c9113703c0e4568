"""One cell of an experiment: train (or reuse a trained variant's run), predict the unseen
classes (under permuted names for a leakage control), evaluate; never raises for a problem of
the cell itself (a failure is recorded in its ``cell.json``)."""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from stale.core.errors import StaleError
from stale.core.io import atomic_write_json, atomic_write_text, read_json
from stale.core.logs import get_logger
from stale.experiments.cells import Cell, base_of, cell_identity, cell_overrides, tiou_of
from stale.experiments.spec import Spec, load_spec

log = get_logger("experiment")


def run_cell(spec_ref: str | dict, out: str, cell: Cell, extra: Sequence[str] = (),
             threads: int | None = None, device: str | None = None, ddp_procs: int = 1) -> dict:
    """Train (or reuse), predict and evaluate one cell; returns its ``cell.json`` record.

    Never raises for a problem of the cell itself: a failure is recorded (status ``failed``,
    the one-line error) so the other cells go on.
    """
    import torch

    spec = load_spec(spec_ref)
    root = Path(out)
    folder = cell.folder(root)
    record: dict[str, Any] = {"cell": cell.__dict__, "key": cell.key, "run_dir": str(folder)}
    t0 = time.perf_counter()
    try:
        record["config_hash"] = cell_identity(spec, cell, list(extra))
        if threads:
            torch.set_num_threads(int(threads))
        record.update(_run_cell(spec, root, folder, cell, list(extra), device, ddp_procs))
        record["status"] = "done"
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded, the experiment goes on
        msg = " ".join(str(exc).split()) if isinstance(exc, StaleError) else f"{type(exc).__name__}: {exc}"
        record.update(status="failed", error=msg)
        if not isinstance(exc, StaleError):
            record["traceback"] = traceback.format_exc()
        log.warning("cell %s failed: %s", cell.key, msg)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "cell.json", record)
    return record


def _train_ddp(cfg, folder: Path, procs: int, resume: bool, overwrite: bool = True) -> None:
    """Train a cell with ``procs`` DDP processes through torchrun (one GPU each; gloo on CPU);
    the signature of ``run_training`` (a run not resumed always starts afresh)."""
    import subprocess
    import sys

    import yaml

    from stale.core.config import to_dict

    folder.mkdir(parents=True, exist_ok=True)
    cfg_file = folder / "cell_config.yaml"
    atomic_write_text(cfg_file, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
           "-m", "stale", "train", str(cfg_file), "--out", str(folder), "--quiet",
           "--resume" if resume else "--overwrite"]
    from stale.core.lifetime import die_with_parent

    parent = os.getpid()   # torchrun ends with this process (killed or not)
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=lambda: die_with_parent(parent))
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln] or proc.stderr.strip().splitlines()[-1:]
        raise StaleError(f"DDP training ({procs} processes) failed: {lines[0] if lines else proc.returncode}")


def _run_cell(spec: Spec, root: Path, folder: Path, cell: Cell, extra: list[str], device: str | None,
              ddp_procs: int = 1) -> dict:
    from functools import partial

    from stale.pipeline.assemble import assemble_test, make_dataset
    from stale.pipeline.config import load_run_config
    from stale.pipeline.predict import load_run
    from stale.pipeline.results import write_results
    from stale.pipeline.train import run_training
    from stale.pipeline.zero_shot import train_or_resume, zero_shot

    overrides = cell_overrides(spec, cell, root / "data", extra)
    if device:
        overrides.append(f"train.device={device}")
    cfg = load_run_config(base_of(spec, cell), overrides)
    variant = spec.variant(cell.variant)
    if variant.reuse:
        run_dir = Cell(variant.reuse, cell.dataset, cell.setting, cell.split, cell.seed).folder(root)
        if not (run_dir / "cell.json").is_file() or read_json(run_dir / "cell.json").get("status") != "done":
            raise StaleError(f"the reused cell {run_dir} has not finished")
    else:
        run_dir = folder
        train_or_resume(cfg, run_dir, cell.key, partial(_train_ddp, procs=ddp_procs) if ddp_procs > 1 else run_training)
    run = load_run(run_dir, device or cfg.train.device, variant.predict)
    test = assemble_test(run.cfg)
    classes = list(test.classes)
    ds = make_dataset(test.videos, test.store, run.cfg,
                      classes=classes if getattr(run.detector, "needs_targets", False) else None, cache=False,
                      for_detection=True)
    gt = test.ground_truth.to_activitynet_json()
    scored = zero_shot(run, test, ds, tiou_of(spec, cell, run.cfg),
                       permute_seed=cell.seed if variant.permute_names else None, ground_truth=gt)
    folder.mkdir(parents=True, exist_ok=True)
    write_results(folder / "predictions.json", scored.results, classes, asked_as=scored.asked_as)
    atomic_write_json(folder / "ground_truth.json", gt, indent=None)
    metrics = scored.metric.to_json()
    atomic_write_json(folder / "metrics.json", metrics)
    sel = read_json(run_dir / "selection.json") if (run_dir / "selection.json").is_file() else {}
    return {"metrics": {k: metrics[k] for k in ("tiou", "mAP", "average_mAP", "per_class_ap")},
            "classes": classes, "test_videos": len(test.videos), "selected_epoch": sel.get("epoch"),
            "reuses": variant.reuse, "permuted_names": variant.permute_names}
