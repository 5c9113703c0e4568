"""The zero-shot protocol of one run, shared by ``stale demo`` and the experiment cells:
train (or reuse / resume) on the seen classes -> detect the unseen classes in the test videos ->
optionally the leakage control (the unseen classes asked for under deranged names, answers
scored as the true classes) -> the exact ActivityNet mAP."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from stale.core.logs import get_logger
from stale.evaluation import DetectionResult, evaluate_detection
from stale.pipeline.assemble import TestData
from stale.pipeline.config import StaleConfig
from stale.pipeline.predict import LoadedRun, detect_dataset
from stale.pipeline.train import run_training
from stale.synth.leakage import permute_unseen_names

log = get_logger("zero_shot")

BATCH_SIZE = 32   # videos per detection batch (results do not depend on it)


def is_finished(run_dir: Path) -> bool:
    """A run whose training ended: its ``best.pt`` and its ``selection.json`` (written last) exist."""
    return (run_dir / "best.pt").is_file() and (run_dir / "selection.json").is_file()


def train_or_resume(cfg: StaleConfig, run_dir: Path, name: str = "", train=run_training) -> str:
    """Train ``cfg`` into ``run_dir`` unless it finished there: an interrupted run (``last.pt``,
    no ``selection.json``) resumes, leftovers of a failed attempt move aside. ``train``: the
    training function (``run_training``; the experiment passes its DDP launcher). Returns
    ``"reused"``, ``"resumed"`` or ``"trained"``."""
    label = name or str(run_dir)
    interrupted = (run_dir / "last.pt").is_file() and not (run_dir / "selection.json").is_file()
    if not interrupted and (run_dir / "best.pt").is_file():
        log.info("      %s: reusing the finished run in %s", label, run_dir)
        return "reused"
    if interrupted:
        log.info("      %s: resuming %s", label, run_dir)
    else:
        log.info("      %s: training (%d epochs) -> %s", label, cfg.train.epochs, run_dir)
    train(cfg, run_dir, resume=interrupted, overwrite=not interrupted)
    return "resumed" if interrupted else "trained"


@dataclass
class ZeroShotResult:
    """Detections of the test classes (labels are the true classes, also for a control), the
    names they were asked for under, and their mAP."""

    results: dict[str, list[dict]]
    classes: list[str]
    asked_as: list[str]
    metric: DetectionResult


def detect_classes(run: LoadedRun, dataset, classes: Sequence[str], permute_seed: int | None = None
                   ) -> tuple[dict[str, list[dict]], list[str]]:
    """``(results, names asked for)``: ``classes`` detected by ``run`` in ``dataset``; with
    ``permute_seed`` the leakage control -- class i asked for under the name of another class
    (a seeded derangement), the answers relabelled as class i."""
    classes = list(classes)
    names = permute_unseen_names(classes, classes, permute_seed) if permute_seed is not None else classes
    results = detect_dataset(run.detector, dataset, names, BATCH_SIZE, run.device)
    if permute_seed is not None:
        back = dict(zip(names, classes))
        results = {v: [dict(d, label=back[d["label"]]) for d in items] for v, items in results.items()}
    return results, names


def zero_shot(run: LoadedRun, test: TestData, dataset, tiou: str | Sequence[float],
              permute_seed: int | None = None, ground_truth: dict | None = None) -> ZeroShotResult:
    """Detect the test classes of ``test`` (optionally as the leakage control) and score them on
    its ground truth (``ground_truth``: that ground truth already as ActivityNet JSON)."""
    classes = list(test.classes)
    results, names = detect_classes(run, dataset, classes, permute_seed)
    gt = ground_truth if ground_truth is not None else test.ground_truth.to_activitynet_json()
    metric = evaluate_detection(gt, {"results": results}, subset=run.cfg.data.test_subset, tiou_thresholds=tiou)
    return ZeroShotResult(results, classes, names, metric)
