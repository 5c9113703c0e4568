"""The public Python API (``import stale``): the same operations as the CLI, for notebooks.

>>> import stale
>>> run_dir = stale.train("demo", "runs/demo", overrides=["data.annotations=...", "data.features.root=..."])
>>> run = stale.load_run(run_dir)
>>> dets = run.detect("features/video_test_0000004.npy", ["pole vault", "high jump"], duration=33.5)
>>> result = stale.evaluate("gt.json", "pred.json", subset="test", tiou="thumos14")
>>> split = stale.splits("thumos14", 75, 0)
>>> res = stale.detect(["clip.mp4"], "high jump,a person pole vaulting", "det", weights="ViT-B-16.pt")
>>> page = stale.report("stale_demo")
>>> info = stale.features_inspect("csv_mean_100", annotations="anet_anno_action.json", prefix="v_")
>>> stale.features_convert(["rgb.h5", "flow.h5"], "features_npy")

See docs/api.md for a worked example.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence


def load_run(path: str | os.PathLike, device: str = "auto", overrides: Sequence[str] = (),
             annotations: str | os.PathLike | None = None, features: str | os.PathLike | None = None):
    """A trained run folder (or checkpoint file) ready to detect: ``run.detect(features, classes)``."""
    from stale.runs.predict import load_run as _load

    return _load(path, device, overrides, annotations, features)


def train(config: str | os.PathLike, out: str | os.PathLike, overrides: Sequence[str] = (),
          resume: bool = False, overwrite: bool = False) -> Path:
    """Train a run (``stale train``): ``config`` is a YAML file or a shipped config name; returns
    the run folder."""
    from stale.runs.config import load_run_config
    from stale.runs.train import run_training

    cfg = load_run_config(config, list(overrides))
    run_training(cfg, out, resume=resume, overwrite=overwrite)
    return Path(out)


def evaluate(ground_truth: Any, predictions: Any, subset: str = "validation",
             tiou: str | Sequence[float] = "activitynet", blocked: Sequence[str] = ()):
    """Exact ActivityNet detection mAP (``stale evaluate``): file paths or parsed JSON objects.
    Returns a :class:`stale.evaluation.DetectionResult` (``.mAP``, ``.average_mAP``, ``.ap``)."""
    from stale.core.io import read_json
    from stale.evaluation import evaluate_detection

    gt = read_json(ground_truth) if isinstance(ground_truth, (str, os.PathLike)) else ground_truth
    pred = read_json(predictions) if isinstance(predictions, (str, os.PathLike)) else predictions
    return evaluate_detection(gt, pred, subset, tiou, blocked,
                              gt_source=str(ground_truth) if isinstance(ground_truth, (str, os.PathLike)) else "ground truth",
                              pred_source=str(predictions) if isinstance(predictions, (str, os.PathLike)) else "predictions")


def splits(dataset: str, setting: int | str, index: int):
    """One of the 40 standard zero-shot splits: ``.seen`` and ``.unseen`` class names."""
    from stale.data.splits import load_split

    return load_split(dataset, setting, index)


def detect(videos: Sequence[str | os.PathLike] | str | os.PathLike, classes: Sequence[str] | str,
           out: str | os.PathLike, run: str | os.PathLike | None = None, weights: str | None = None,
           arch: str = "ViT-B-16", overwrite: bool = False, **options):
    """Detect ``classes`` (names, ``"a,b"`` or ``"@file"``) in video files (``stale detect``):
    features cached in ``out/features``, then the trained ``run``'s detector or, without one, the
    training-free CLIP detector with the text tower of the same CLIP ``weights``. Writes
    detections.json, detections.csv, subtitles/, timelines/ and report.html into ``out``.

    ``options``: further :class:`stale.runs.detect.DetectOptions` fields (``clip_frames``,
    ``stride``, ``device``, ``overrides``, ``subtitle_top``, ...). Returns a
    :class:`stale.runs.detect.DetectResult` (``.results``: video -> detections, best first;
    ``.files``; ``.timings``)."""
    from stale.runs.detect import DetectOptions, run_detect

    inputs = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    opts = DetectOptions(classes=classes, run=run, weights=weights, arch=arch, overwrite=overwrite,
                         progress=options.pop("progress", False), **options)
    return run_detect(inputs, out, opts)


def report(folder: str | os.PathLike, out: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Write the HTML report of a demo, detect, run or experiment folder (``stale report``);
    returns the page's path."""
    from stale.runs.report import write_folder_report

    return write_folder_report(folder, out, overwrite=overwrite).default_out


def features_inspect(sources: str | os.PathLike | Sequence[str | os.PathLike], annotations: str | os.PathLike | None = None,
                     **options) -> dict:
    """What a feature release holds (``stale features inspect``): videos found / missing / extra
    against ``annotations``, channels, lengths, the implied feature rate and the conventions it
    matches, non-finite values, unreadable videos (``["problems"]``). ``sources``: a folder of
    ``.npy``/``.csv`` files, an HDF5 or pickle file, or several (concatenated along channels);
    ``options``: ``dim`` (total or per source), ``kind``, ``prefix``, ``suffix``, ``key``,
    ``layout``, ``length_mismatch``. Returns the JSON-ready report."""
    from stale.runs.features import inspect_features, source_config

    inputs = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    return inspect_features(source_config(inputs, **options), annotations)


def features_convert(sources: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike,
                     overwrite: bool = False, **options):
    """Write any feature source as one (T, C) float32 ``<prefix><id>.npy`` per video into ``out``
    (``stale features convert``; resumable). ``options`` as :func:`features_inspect`, plus
    ``nonfinite`` (``"error"`` or ``"zero"``). Returns a
    :class:`stale.runs.features.ConvertSummary` (``.written``, ``.resumed``, ``.dim``)."""
    from stale.runs.features import convert_features, source_config

    inputs = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    return convert_features(source_config(inputs, **options), out, overwrite=overwrite)
