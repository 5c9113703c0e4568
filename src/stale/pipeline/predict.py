"""``stale predict``: a trained run + features + class names -> ActivityNet-format results.

The text side takes any class names (that is the point of zero-shot): by default the run's test
classes (the unseen classes of its split, or all classes in closed-set runs). Results are honest
by default; fusion with an external video-level classifier is an explicit option whose output is
labelled as such in the file (``external_data``) and on the terminal.

A run folder is portable: its inputs are found by absolute path, then relative to the folder
(``inputs.json``), and ``--annotations`` / ``--features`` point elsewhere when the data moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from stale.core.config import blame_override, apply_overrides, from_dict
from stale.core.errors import StaleError
from stale.core.io import atomic_write_json, read_json, remove_stale_temp_files
from stale.core.logs import get_logger, progress
from stale.core.output_checks import RUN_ARTEFACTS, Output, check_outputs
from stale.data.dataset import VideoFeatureDataset, make_loader
from stale.data.window_dataset import WindowedVideos
from stale.pipeline.assemble import (assemble_test, check_prompts, load_run_annotations, make_dataset,
                                 relocate_inputs)
from stale.pipeline.config import StaleConfig
from stale.pipeline.detectors import build_detector
from stale.pipeline.results import write_results
from stale.training.checkpoint import find_checkpoint, load_checkpoint
from stale.text.tokens import check_listed_names
from stale.training.runtime import resolve_device

log = get_logger("predict")

#: config keys ``stale predict --set`` may change (the model itself is fixed by its weights)
PREDICT_MAY_SET = ("inference.", "data.", "text.weights", "text.cache_dir", "text.truncate",
                   "train.device", "train.amp", "train.threads", "two_stage.proposals")


def detect_dataset(detector, dataset: VideoFeatureDataset | WindowedVideos, class_names: Sequence[str], batch_size: int,
                   device: torch.device, show_progress: bool = False) -> dict[str, list[dict]]:
    """Results ``{video_id: [{"segment", "label", "score"}]}`` of ``detector`` on ``dataset``
    (whole videos, or -- window mode -- the windows of :class:`WindowedVideos`, merged)."""
    if isinstance(dataset, WindowedVideos):
        from stale.model.decoding import InferenceConfig
        from stale.pipeline.windowed import detect_windowed

        return detect_windowed(detector, dataset, class_names, dataset.inference or InferenceConfig(),
                               batch_size, device, show_progress)
    results: dict[str, list[dict]] = {}
    loader = make_loader(dataset, range(len(dataset)), batch_size, 0, device.type == "cuda")
    for batch in progress(loader, desc="detecting", total=len(loader), unit="batch", enabled=show_progress):
        targets = batch.targets.to(device) if getattr(detector, "needs_targets", False) else None
        det = detector(batch.features.to(device), class_names, batch.durations, targets=targets)
        results.update(det.to_results(batch.video_ids, list(class_names)))
    return results


@dataclass
class LoadedRun:
    """A run loaded for detection (``stale.load_run``). ``detect`` takes features of any video
    and any class names."""

    cfg: StaleConfig
    detector: Any
    classes: dict
    checkpoint: str
    run_dir: Path
    device: torch.device

    @property
    def model(self) -> torch.nn.Module:
        return getattr(self.detector, "model", None)

    def detect(self, features, classes: Sequence[str] | str, duration: float | None = None,
               top: int | None = None, windows: bool | None = None, name: str = "video",
               batch_size: int = 32) -> list[dict]:
        """Detections ``[{"segment": [s, e], "label", "score"}]`` (best first) in one video.

        ``features``: a (T, D) array/tensor or the path of a ``.npy`` file of native-rate
        features; ``classes``: names (a list or a comma-separated string); ``duration``: the
        video's length in seconds (default: from ``videos.json`` next to the ``.npy`` when
        ``stale extract`` wrote it, else from the run's annotation file when it lists the video).
        ``windows``: None follows the run (``data.sampling``); True slides windows over the video
        (:meth:`window_settings`; a ``.npy`` is then memory-mapped and read a window at a time);
        False resizes it to ``data.num_snippets`` snippets, with a one-line warning (naming
        ``name``) when its snippets are longer than the run's typical action.
        """
        names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
        names = check_listed_names(names, "detect: classes")
        check_prompts(self.cfg, [names])
        if windows is not None and not isinstance(windows, bool):
            raise StaleError(f"detect: windows must be True, False or None, got {windows!r}")
        use_windows = self.cfg.data.sampling == "window" if windows is None else windows
        if duration is None and isinstance(features, (str, Path)):
            duration = self._annotated_duration(Path(features))
        arr, duration = _features_and_duration(features, duration, lazy=use_windows)
        if arr.ndim != 2 or arr.shape[1] != self.cfg.model.input_dim or arr.shape[0] < 1:
            raise StaleError(f"detect: features have shape {tuple(arr.shape)}, the run expects "
                             f"(T, {self.cfg.model.input_dim}) with T >= 1")
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
            raise StaleError(f"detect: top must be a whole number >= 1 (or None), got {top!r}")
        if use_windows:
            from stale.data.window_dataset import WindowedVideos
            from stale.pipeline.windowed import detect_windowed

            videos = WindowedVideos([name], [duration], [arr.shape[0]], lambda _: arr, self.window_settings(),
                                    _finite_rows)
            items = detect_windowed(self.detector, videos, names, self.cfg.inference, batch_size, self.device)[name]
            return items[:top] if top else items
        from stale.data.timeline import resample_features

        self.warn_if_too_long(duration, name)
        x = torch.from_numpy(resample_features(np.ascontiguousarray(arr, dtype=np.float32),
                                               self.cfg.data.num_snippets))
        det = self.detector(x.unsqueeze(0).to(self.device), names, [duration])
        items = det.to_lists(names)[0]
        return items[:top] if top else items

    def training_scale(self) -> dict:
        """``{"snippet_s", "action_s"}``: the median training video's snippet length in resize
        mode (median duration / T) and the median training action length, in seconds, from the
        run's annotations (None each when they cannot be read)."""
        if not hasattr(self, "_scale"):
            scale: dict = {"snippet_s": None, "action_s": None}
            try:
                sub = load_run_annotations(self.cfg).subset(self.cfg.data.train_subset)
            except StaleError:
                sub = None
            if sub is not None and len(sub):
                scale["snippet_s"] = float(np.median([v.duration for v in sub])) / self.cfg.data.num_snippets
                lengths = [s.end - s.start for v in sub for s in v.segments]
                scale["action_s"] = float(np.median(lengths)) if lengths else None
            self._scale = scale
        return self._scale

    def window_settings(self):
        """Windows for this run: its own (``data.sampling: window``), or -- for a run trained in
        resize mode -- windows of ``num_snippets`` snippets at the snippet length it was trained
        at (median training duration / T; the features' own rate when that is unknown)."""
        from stale.data.window_dataset import WindowSettings

        if self.cfg.data.sampling == "window":
            return WindowSettings.of(self.cfg.data)
        return WindowSettings(self.cfg.data.num_snippets, self.cfg.data.window_overlap,
                              self.training_scale()["snippet_s"], self.cfg.data.window_min_inside)

    def warn_if_too_long(self, duration: float, name: str = "video") -> bool:
        """Log one line (and return True) when resizing a video of ``duration`` seconds gives
        snippets longer than the run's typical training action."""
        step = float(duration) / self.cfg.data.num_snippets
        action = self.training_scale()["action_s"]
        if action is None or step <= action:
            return False
        log.warning("WARNING: %s: %.0f s resized to %d snippets of %.1f s each, longer than this run's typical "
                    "action (%.1f s): short actions cannot be found; use windows (stale detect --windows, "
                    "run.detect(..., windows=True))", name, duration, self.cfg.data.num_snippets, step, action)
        return True


    def _annotated_duration(self, path: Path) -> float | None:
        """Duration of the video a feature file belongs to, from the run's annotations."""
        f = self.cfg.data.features
        suffix = f.suffix if f.suffix is not None else ".npy"   # null: the kind's default
        stem = path.name[:-len(suffix)] if suffix and path.name.endswith(suffix) else path.stem
        vid = stem[len(f.prefix):] if f.prefix and stem.startswith(f.prefix) else stem
        try:
            ann = load_run_annotations(self.cfg)
        except StaleError:
            return None
        return ann.videos[vid].duration if vid in ann else None


def _finite_rows(video: str, rows: np.ndarray, first: int) -> np.ndarray:
    """The finiteness check of :func:`_features_and_duration`, on one window's rows."""
    if not np.isfinite(rows).all():
        raise StaleError(f"detect: features must be finite floating-point numbers ({video}, from time step {first})")
    return rows


def _features_and_duration(features, duration, lazy: bool = False):
    """``(features, duration)`` checked; ``lazy``: a ``.npy`` is memory-mapped and its values are
    checked window by window later (:func:`_finite_rows`), not read whole here."""
    source = None
    if isinstance(features, (str, Path)):
        source = Path(features)
        if not source.is_file():
            raise StaleError(f"detect: feature file not found: {source}")
        try:
            arr = np.load(source, allow_pickle=False, mmap_mode="r" if lazy else None)
        except (ValueError, OSError, EOFError) as exc:
            from stale.data.features import npy_problem

            raise StaleError(npy_problem(source, exc)) from None
    elif isinstance(features, torch.Tensor):
        arr = features.detach().cpu().numpy()
    else:
        arr = np.asarray(features)
    if arr.dtype.kind != "f" or not (lazy or np.isfinite(arr).all()):
        raise StaleError(f"detect: features must be finite floating-point numbers{f' ({source})' if source else ''}")
    if duration is None and source is not None:
        duration = _extracted_duration(source)
    if duration is None:
        raise StaleError("detect: give the video's duration in seconds (no videos.json next to the features, "
                         "and the run's annotations do not list this video)")
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise StaleError(f"detect: duration must be a positive number of seconds, got {duration!r}")
    return arr, float(duration)


def _extracted_duration(source: Path) -> float | None:
    """The duration ``stale extract`` recorded for the feature file ``source`` (``videos.json``
    next to it), found by its exact name -- ``<prefix><id>.npy`` with the folder's prefix from
    ``extract_meta.json`` -- never by a name that merely ends with an id (``myclip`` is not
    ``clip``); None when the folder does not list it."""
    index = source.parent / "videos.json"
    if not index.is_file():
        return None
    meta_file = source.parent / "extract_meta.json"
    meta = read_json(meta_file) if meta_file.is_file() else {}
    prefix = meta.get("prefix", "") if isinstance(meta, dict) else ""
    stem = source.name[:-len(".npy")] if source.name.endswith(".npy") else source.stem
    if not isinstance(prefix, str) or not stem.startswith(prefix):
        return None
    db = read_json(index).get("database", {})
    entry = db.get(stem[len(prefix):]) if isinstance(db, dict) else None
    return entry.get("duration") if isinstance(entry, dict) else None


def _check_overrides(overrides: Sequence[str], migrating: bool = False) -> None:
    """Refuse an override prediction may not make (``migrating``: old Soft-NMS keys, still to be
    mapped onto ``inference``, pass)."""
    from stale.pipeline.config_migration import OLD_KEYS

    for text in overrides:
        key = str(text).split("=", 1)[0].strip()
        if migrating and tuple(key.split(".")) in OLD_KEYS:
            continue
        if not any(key == p or (p.endswith(".") and key.startswith(p)) for p in PREDICT_MAY_SET):
            raise StaleError(f"--set {text}: prediction cannot change {key!r} (the model is fixed by its "
                             f"weights); allowed: inference.*, data.*, text.weights, train.device")


def load_run(run: str | Path, device: str | torch.device = "auto", overrides: Sequence[str] = (),
             annotations: str | Path | None = None, features: str | Path | None = None) -> LoadedRun:
    """Rebuild the detector of a run folder (or checkpoint file) and load its weights.

    ``overrides`` may change inference settings (``inference.top_k=20``), data locations and the
    text weights' location; ``annotations`` / ``features`` replace the recorded data paths. A run
    recorded before the final Soft-NMS had one place loads with the detections it gave then
    (:mod:`stale.pipeline.config_migration`).
    """
    from stale.pipeline.config_migration import migrate_overrides, migrate_recorded_config

    _check_overrides(overrides, migrating=True)
    ckpt_path = find_checkpoint(run)
    run_dir = ckpt_path.parent
    ckpt = load_checkpoint(ckpt_path)
    recorded = migrate_recorded_config(ckpt["config"], str(ckpt_path))
    overrides = migrate_overrides(list(overrides), str(recorded.get("method", "stale")))
    _check_overrides(overrides)
    try:
        cfg = from_dict(StaleConfig, apply_overrides(recorded, list(overrides)))
    except StaleError as exc:   # the run's own config was valid: a --set argument is at fault
        culprit = blame_override(exc, list(overrides)) if overrides else None
        if culprit is None:
            raise
        raise StaleError(f"--set {culprit}: {exc}") from None
    inputs_file = run_dir / "inputs.json"
    if inputs_file.is_file():
        cfg = relocate_inputs(cfg, run_dir, read_json(inputs_file))
    if annotations is not None or features is not None:
        from dataclasses import replace

        data = cfg.data
        if annotations is not None:
            data = replace(data, annotations=str(Path(annotations).expanduser().absolute()))
        if features is not None:
            data = replace(data, features=replace(data.features, root=str(Path(features).expanduser().absolute())))
        cfg = replace(cfg, data=data)
    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    detector = build_detector(cfg, ckpt, dev)
    run = LoadedRun(cfg, detector, ckpt["classes"], ckpt["path"], run_dir, dev)
    trained = (ckpt["config"].get("data") or {}).get("sampling", "resize")
    if trained == "resize" and cfg.data.sampling == "window" and cfg.data.time_step is None:
        # a run trained on resized videos detects in windows at the snippet length it learnt
        from dataclasses import replace

        run.cfg = replace(cfg, data=replace(cfg.data, time_step=run.training_scale()["snippet_s"]))
        log.info("windows for a run trained in resize mode: %d snippets of %s s (its median training snippet)",
                 cfg.data.num_snippets, "the features' own" if run.cfg.data.time_step is None
                 else f"{run.cfg.data.time_step:.3f}")
    return run


def read_video_scores(scores_path: str | Path) -> dict[str, dict[str, float]]:
    """An external classifier's video scores ``{video_id: {class_name: score}}``, checked (every
    score a finite number; booleans and strings are named)."""
    path = Path(scores_path)
    table = read_json(path, "external classifier score file")
    if not isinstance(table, dict):
        raise StaleError(f"{path}: expected a JSON object {{video_id: {{class: score}}}}")
    for vid, cls in table.items():
        if not isinstance(cls, dict):
            raise StaleError(f"{path}: video {vid}: expected an object {{class: score}}, got {type(cls).__name__}")
        for name, sc in cls.items():
            if isinstance(sc, bool) or not isinstance(sc, (int, float)) or not math.isfinite(float(sc)):
                raise StaleError(f"{path}: video {vid}: class {name!r}: score must be a finite number, got {sc!r}")
    return table


def fuse_video_scores(results: dict[str, list[dict]], scores: str | Path | dict, top: int = 2) -> tuple[dict, int]:
    """Relabel detections with an external classifier's top classes per video (published-table
    reproduction only: such classifiers are trained on all classes, unseen ones included).

    ``scores``: a JSON file ``{video_id: {class_name: score}}`` (or its :func:`read_video_scores`
    table). Each detection becomes ``top`` detections, one per top class, scored
    ``detection score x class score``.
    """
    table = scores if isinstance(scores, dict) else read_video_scores(scores)
    fused, missing = {}, 0
    for vid, items in results.items():
        cls = table.get(vid)
        if not cls:
            missing += 1
            fused[vid] = items
            continue
        best = sorted(cls.items(), key=lambda kv: -float(kv[1]))[:top]
        fused[vid] = sorted(({"segment": it["segment"], "label": name, "score": it["score"] * float(sc)}
                             for it in items for name, sc in best), key=lambda d: -d["score"])
    return fused, missing


def read_class_names(spec: str | Sequence[str] | None) -> list[str] | None:
    """Class names from a comma-separated string, ``@FILE`` (one per line, or a JSON list), or a
    list; duplicates are an error naming the name."""
    from stale.core.io import read_text

    if spec is None:
        return None
    if isinstance(spec, str):
        if spec.startswith("@"):
            path = Path(spec[1:]).expanduser()
            text = read_text(path, "class file")
            if path.suffix == ".json":
                from stale.core.io import parse_json_bytes

                data = parse_json_bytes(text.encode(), str(path))
                if not isinstance(data, list) or not all(isinstance(c, str) for c in data):
                    raise StaleError(f"{path}: expected a JSON list of class names")
                names = [c.strip() if isinstance(c, str) else c for c in data]
            else:
                names = [ln.strip() for ln in text.splitlines() if not ln.strip().startswith("#")]
            where = str(path)
        else:
            names = [n.strip() for n in spec.split(",")]
            where = "--classes"
    else:
        names, where = [n.strip() if isinstance(n, str) else n for n in spec], "classes"
    return check_listed_names(names, where)


def run_prediction(run: LoadedRun, out: str | Path, *, subset: str | None = None,
                   classes: Sequence[str] | None = None, all_videos: bool = False, batch_size: int = 32,
                   fuse_scores: str | Path | None = None, gt_out: str | Path | None = None,
                   overwrite: bool = False, annotations_path: str | Path | None = None) -> dict:
    """Predict on a subset's videos and write the results file (and optionally the matching GT).

    Outputs are checked before any work. ``--gt-out`` holds exactly the requested classes.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise StaleError(f"--batch-size must be a positive integer, got {batch_size}")
    cfg = run.cfg
    ann_path = Path(annotations_path) if annotations_path else cfg.data.annotation_path()
    outputs = [Output(out, "file", "--out")] + ([Output(gt_out, "file", "--gt-out")] if gt_out else [])
    # every file of the run folder counts as an input: predictions never replace a checkpoint
    run_files = [run.run_dir / name for name in RUN_ARTEFACTS]
    resolved = check_outputs(outputs, inputs=[run.checkpoint, ann_path, fuse_scores, *run_files],
                             input_dirs=cfg.data.features.roots(), overwrite=overwrite)
    for path in resolved:   # temporaries of an earlier, killed write of these files
        remove_stale_temp_files(path.parent, names=[path.name])
    class_names = list(classes) if classes else list(run.classes["test"])
    check_prompts(cfg, [class_names])
    ann = load_run_annotations(cfg, ann_path)
    test = assemble_test(cfg, class_names, ann, subset, all_videos, strict_classes=not all_videos)
    table = read_video_scores(fuse_scores) if fuse_scores else None   # checked before the work
    needs_gt = getattr(run.detector, "needs_targets", False)
    ds = make_dataset(test.videos, test.store, cfg, classes=class_names if needs_gt else None, cache=False,
                      for_detection=True)
    results = detect_dataset(run.detector, ds, class_names, batch_size, run.device, show_progress=True)
    external = {"used": False}
    if fuse_scores:
        results, missing = fuse_video_scores(results, table)
        external = {"used": True, "details": f"labels fused with external video-level classifier "
                    f"scores from {Path(fuse_scores).name}; NOT a zero-shot result "
                    f"({missing} videos had no scores)"}
        log.warning("WARNING: results fused with an external classifier trained on all classes; "
                    "they are not zero-shot numbers")
    precision = run.detector.precision(run.device).record() if hasattr(run.detector, "precision") else None
    payload = write_results(out, results, class_names, external, checkpoint=run.checkpoint, precision=precision,
                            data_report={"missing_features": test.report.missing_features,
                                         "classes_without_ground_truth": test.report.protocol.get("without_ground_truth", [])})
    if gt_out:
        atomic_write_json(gt_out, test.ground_truth.to_activitynet_json(), indent=None)
    n = sum(len(v) for v in results.values())
    log.info("wrote %d detections for %d videos and %d classes to %s", n, len(results), len(class_names), out)
    return payload
