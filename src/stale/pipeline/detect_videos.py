"""``stale detect``: from video files to detections a person can look at.

For each video: decode it and extract CLIP image features of its clips (``stale extract``'s code,
cached in ``OUT/features`` with extract's own index, so a second run -- or one after an
interruption -- reuses them), then detect the named classes, given as free text:

* with ``run``: the trained run's detector (:func:`stale.pipeline.predict.load_run`); the run must
  have been trained on features of the same kind (the channel count is checked before any video
  is decoded, and so are the image-encoder settings when the run's feature folder says how it was
  made);
* without: the training-free CLIP detector (:mod:`stale.baselines.clip_detector`: snippet-text
  similarity with a prompt ensemble, per-video background handling, smoothing, thresholds into
  segments, Soft-NMS), whose text tower is the text half of the *same* CLIP checkpoint as the
  image tower (both halves of one model share the embedding space; halves of two models do not).

Outputs in ``OUT`` (every path checked before any work, every file written atomically):

* ``detections.json``: ActivityNet results ``{"results": {video: [{"segment", "label",
  "score"}]}, ...}`` (``stale evaluate`` reads it);
* ``detections.csv``: one row per detection (``video,label,start,end,score``);
* ``subtitles/<video>.srt``: the best detections as subtitles (``label (score)``);
* ``timelines/<video>.png``: the best detections on a time axis;
* ``report.html``: the interactive report (:mod:`stale.reporting`), playing the source videos;
* ``detect.json``: the settings, per-video facts and timings (decode, features, detection);
* ``features/``: the cached features (``stale extract``'s layout).

Re-running into the same folder with the same settings resumes (features are reused, outputs
replaced); other settings (classes, detector, weights) need ``overwrite``; files that no
``stale detect`` wrote are never replaced without it.
"""

from __future__ import annotations

import csv
import io
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from stale.core.errors import StaleError
from stale.core.precision import normalise_precision, resolve_precision
from stale.core.logs import get_logger
from stale.core.output_checks import DETECT_MARKER, DETECT_RESULTS

log = get_logger("detect")

FORMAT = "stale-detect/1"
MARKER = DETECT_MARKER
RESULTS = DETECT_RESULTS
CSV_NAME = "detections.csv"
REPORT = "report.html"
FEATURES = "features"
SUBTITLES = "subtitles"
TIMELINES = "timelines"
#: detect.json keys that must agree for a re-run to resume instead of needing --overwrite
_SETTING_KEYS = ("classes", "detector", "extract")


@dataclass
class DetectOptions:
    """Settings of :func:`run_detect` (the CLI options of ``stale detect``).

    classes: names, ``"a,b"`` or ``"@file"`` (one per line, or a JSON list).
    run: trained run folder or checkpoint; None = the training-free CLIP detector.
    weights / arch / seed: the CLIP image tower (:func:`stale.text.image_tower.load_image_encoder`);
        without ``run`` also the text tower, from the same checkpoint.
    clip_frames / stride / frames_per_clip / batch_size: feature extraction (docs/extract.md).
    overrides: ``key=value`` settings of the detector: ClipDetectorConfig fields
        (``temperature=0.02``, ``segments.smooth=9``) and the final Soft-NMS
        (``inference.top_n=20``, any of ``stale.model.decoding.SOFT_NMS_KEYS``) without ``run``;
        the run's inference settings (``inference.top_k=20``) with it.
    subtitle_top / subtitle_min_score: which detections become subtitles (best first).
    skip_bad / allow_truncated: unreadable / truncated videos, as in ``stale extract``.
    timeline_top: detections per class drawn in the PNG timeline.
    windows: with ``run``: slide windows over each video (:meth:`LoadedRun.detect`), whatever mode
        the run was trained in; without it a run trained in resize mode resizes each video and
        warns (one line) when its snippets are longer than the run's typical action.
    precision: ``auto`` / ``float32`` / ``bf16`` of the image tower and of the run's network
        (:mod:`stale.core.precision`; recorded in detect.json).
    """

    classes: Sequence[str] | str
    run: str | os.PathLike | None = None
    weights: str | None = None
    arch: str = "ViT-B-16"
    seed: int = 0
    clip_frames: int = 16
    stride: int = 16
    frames_per_clip: int = 1
    batch_size: int = 64
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)
    subtitle_top: int = 10
    subtitle_min_score: float = 0.0
    timeline_top: int = 10
    overwrite: bool = False
    skip_bad: bool = False
    allow_truncated: bool = False
    progress: bool = True
    windows: bool = False
    precision: str = "auto"

    def validate(self) -> None:
        self.precision = normalise_precision(self.precision)
        if self.windows and self.run is None:
            raise StaleError("--windows: needs --run (the training-free detector takes every feature as it is)")
        for name in ("subtitle_top", "timeline_top"):
            if int(getattr(self, name)) < 1:
                raise StaleError(f"{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= float(self.subtitle_min_score) <= 1.0:
            raise StaleError(f"subtitle-min-score: must be in [0, 1], got {self.subtitle_min_score}")


@dataclass
class DetectResult:
    """What :func:`run_detect` wrote: ``results`` (video -> detections, best first), the output
    paths, per-video timings in seconds and the extraction summary."""

    out: Path
    results: dict[str, list[dict]]
    files: dict[str, Path]
    subtitles: dict[str, Path]
    timelines: dict[str, Path]
    timings: dict[str, dict[str, float]]
    skipped: dict[str, str]
    detector: str
    sources: dict[str, Path] = field(default_factory=dict)


# ----------------------------------------------------------------------------- export formats

def srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm`` (SubRip), rounded to the millisecond."""
    ms = max(0, int(round(float(seconds) * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(items: Sequence[dict], top: int = 10, min_score: float = 0.0) -> str:
    """SubRip text of the ``top`` best detections scoring at least ``min_score``, in time order;
    overlapping detections become overlapping cues (players stack them)."""
    best = sorted((d for d in items if d["score"] >= min_score), key=lambda d: -d["score"])[:top]
    cues = []
    for i, d in enumerate(sorted(best, key=lambda d: (d["segment"][0], -d["score"])), start=1):
        s, e = d["segment"]
        e = max(e, s + 0.001)   # a cue needs a positive length
        cues.append(f"{i}\n{srt_time(s)} --> {srt_time(e)}\n{d['label']} ({d['score']:.2f})\n")
    return "\n".join(cues)


def to_csv(results: dict[str, list[dict]]) -> str:
    """``video,label,start,end,score`` rows, per video best first (labels quoted when needed)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["video", "label", "start", "end", "score"])
    for vid, items in results.items():
        for d in items:
            w.writerow([vid, d["label"], f"{d['segment'][0]:.3f}", f"{d['segment'][1]:.3f}", f"{d['score']:.6f}"])
    return buf.getvalue()


# ----------------------------------------------------------------------------- checks

def _previous(out: Path) -> dict | None:
    from stale.core.io import read_json

    path = out / MARKER
    if not path.is_file():
        return None
    data = read_json(path, "stale detect record")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StaleError(f"{path}: not a stale detect record (format {data.get('format') if isinstance(data, dict) else None!r}); "
                         f"choose another --out")
    return data


def _check_outputs(out: Path, videos: list[Path], inputs: Sequence[str | os.PathLike], settings: dict,
                   extra_inputs: Sequence[str | os.PathLike | None], overwrite: bool,
                   extra_dirs: Sequence[str | os.PathLike] = ()) -> dict | None:
    """Refuse before any work: outputs colliding with inputs, and existing files this command
    did not write with these settings (unless ``overwrite``). Returns the previous record."""
    from stale.core.output_checks import Output, check_outputs

    prev = _previous(out) if out.is_dir() else None
    same = prev is not None and all(prev.get(k) == settings.get(k) for k in _SETTING_KEYS)
    if prev is not None and not same and not overwrite:
        diff = [k for k in _SETTING_KEYS if prev.get(k) != settings.get(k)]
        raise StaleError(f"--out {out}: holds detections made with other settings ({', '.join(diff)}); "
                         f"pass --overwrite to replace them (cached features are kept when they match) "
                         f"or choose another --out")
    ok = same   # our own outputs of the same settings are replaced on a resumed run
    outputs = [Output(out, "dir", "--out", exists_ok=True),
               Output(out / FEATURES, "dir", "--out (features)", exists_ok=True)]
    outputs += [Output(out / n, "file", "--out", exists_ok=ok) for n in (RESULTS, CSV_NAME, REPORT, MARKER)]
    outputs += [Output(out / SUBTITLES / f"{v.stem}.srt", "file", "--out", exists_ok=ok) for v in videos]
    outputs += [Output(out / TIMELINES / f"{v.stem}.png", "file", "--out", exists_ok=ok) for v in videos]
    dirs = [*(Path(i) for i in inputs if Path(i).is_dir()), *map(Path, extra_dirs)]
    check_outputs(outputs, inputs=[*videos, *extra_inputs], input_dirs=dirs, overwrite=overwrite)
    if same and prev is not None:
        prev["earlier_results"] = _earlier_results(out, {v.stem for v in videos})
    return prev


def _earlier_results(out: Path, now: set[str]) -> dict[str, list[dict]]:
    """Detections of the videos an earlier run with the same settings wrote into ``out`` and
    this run does not detect again: the folder keeps them (a run on fewer videos never loses
    the others' outputs)."""
    from stale.core.io import read_json

    path = out / RESULTS
    if not path.is_file():
        return {}
    data = read_json(path, "stale detect results")
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise StaleError(f"{path}: not a stale detect results file (no 'results' mapping); pass --overwrite "
                         f"to replace it, or choose another --out")
    return {vid: items for vid, items in results.items() if vid not in now}


# ----------------------------------------------------------------------------- detectors

def _clip_detector(opts: DetectOptions, encoder, classes: list[str], device):
    """The training-free detector with the text half of the image tower's CLIP."""
    from stale.baselines.clip_detector import ClipDetector
    from stale.text.weights import load_text_tower

    cfg, nms = clip_detector_settings(opts.overrides)
    try:
        tower = load_text_tower(opts.arch, opts.weights, seed=opts.seed).eval()
    except StaleError as exc:
        if "not a CLIP text tower" in str(exc):
            raise StaleError(f"--weights {opts.weights}: holds no CLIP text tower; the training-free detector "
                             f"needs the text tower of the same CLIP as the image tower (pass a full CLIP "
                             f"checkpoint), or pass --run RUN") from None
        raise
    if int(tower.embed_dim) != encoder.embed_dim:
        raise StaleError(f"--weights {opts.weights}: the text tower embeds in {tower.embed_dim} dimensions but the "
                         f"image tower in {encoder.embed_dim}; image and text towers must come from the same CLIP")
    det = ClipDetector(cfg, tower, device, nms)
    det.text_embeddings(classes)   # every name fits the prompts: fail now, not after decoding
    if opts.weights == "random":
        where = f"{opts.arch} with RANDOM weights (seed {opts.seed})"
    else:
        where = opts.weights if opts.weights else f"{opts.arch}/openai"
    return det, f"training-free CLIP detector (text tower of {where}; {len(cfg.templates)} prompt templates)"


def clip_detector_settings(overrides: Sequence[str]):
    """``(ClipDetectorConfig, InferenceConfig)`` of ``stale detect`` without a run: its ``--set``
    overrides name ClipDetectorConfig fields (``segments.smooth=9``) or the final Soft-NMS
    (``inference.top_n=20``); the old ``segments.top_n`` etc. are mapped onto the latter."""
    from stale.baselines.clip_detector import ClipDetectorConfig
    from stale.core.config import apply_overrides, from_dict, to_dict
    from stale.model.decoding import SOFT_NMS_KEYS, InferenceConfig
    from stale.pipeline.config_migration import migrate_overrides

    prefixed = [t if str(t).startswith("inference.") else f"clip_detector.{t}" for t in overrides]
    try:
        prefixed = list(migrate_overrides(prefixed, "clip_detector"))
        for text in prefixed:
            key = text.split("=", 1)[0].strip()
            if key.startswith("inference.") and key.split(".", 1)[1] not in SOFT_NMS_KEYS:
                raise StaleError(f"{text}: the training-free detector reads only the final Soft-NMS of "
                                 f"inference ({', '.join(SOFT_NMS_KEYS)})")
        own = [t.split(".", 1)[1] for t in prefixed if t.startswith("clip_detector.")]
        nms = [t.split(".", 1)[1] for t in prefixed if t.startswith("inference.")]
        cfg = from_dict(ClipDetectorConfig, apply_overrides(to_dict(ClipDetectorConfig()), own))
        return cfg, from_dict(InferenceConfig, apply_overrides(to_dict(InferenceConfig()), nms))
    except StaleError as exc:
        msg = str(exc).replace("clip_detector.", "").replace("--set ", "")
        raise StaleError(f"--set: {msg} (without --run, --set takes the training-free detector's "
                         f"settings, docs/detect.md)") from None


def _run_detector(opts: DetectOptions, encoder, classes: list[str], device):
    """The trained run's detector; its features must be of the kind extracted here."""
    from stale.core.io import read_json
    from stale.pipeline.assemble import check_prompts
    from stale.pipeline.predict import load_run

    run = load_run(opts.run, device, [*opts.overrides, f"inference.precision={opts.precision}"])
    want = int(run.cfg.model.input_dim)
    if want != encoder.embed_dim:
        raise StaleError(f"--run {opts.run}: the run expects {want}-d features, but the image encoder "
                         f"{encoder.description} gives {encoder.embed_dim}-d ones; detect with the image "
                         f"encoder (--weights/--arch) whose features the run was trained on")
    meta_path = Path(run.cfg.data.features.root) / "extract_meta.json"
    if meta_path.is_file():   # the run was trained on stale-extract features: the same encoder is needed
        meta = read_json(meta_path)
        if meta.get("arch") != opts.arch or bool(meta.get("random_weights")) != bool(encoder.random):
            raise StaleError(f"--run {opts.run}: the run was trained on features of {meta.get('arch')} / "
                             f"{meta.get('weights')} ({meta_path}), not {opts.arch} / {encoder.description}; "
                             f"pass the same --weights and --arch")
        if meta.get("weights") != encoder.description:
            log.warning("--run %s was trained on features of %s; these come from %s (fine if that is the "
                        "same checkpoint moved)", opts.run, meta.get("weights"), encoder.description)
    check_prompts(run.cfg, [classes])
    return run, f"trained run {run.checkpoint} (method {run.cfg.method})"


def video_detector(opts: DetectOptions, encoder, classes: list[str], device):
    """``(detect, description)``: ``detect(features, duration seconds, name="video") ->
    [{"segment", "label", "score"}]`` of one video (or one stream window), with the trained
    ``opts.run`` or, without one, the training-free CLIP detector; checked against ``encoder``.
    ``features``: a (T, C) float32 array or the path of a ``.npy`` file (with ``opts.windows`` a
    trained run memory-maps it and reads a window at a time)."""
    import numpy as np
    import torch

    if opts.run is not None:
        run, description = _run_detector(opts, encoder, classes, device)
        windows = True if getattr(opts, "windows", False) else None   # None: as the run was trained
        if windows:
            description += ", sliding windows"

        def detect_run(feats, duration, name="video"):
            return run.detect(feats, classes, duration, windows=windows, name=name)
        # what the network runs in (detect.json records it)
        detect_run.precision = (run.detector.precision(device).record()
                                if hasattr(run.detector, "precision") else None)
        return detect_run, description
    detector, description = _clip_detector(opts, encoder, classes, device)

    def detect_one(feats, duration, name="video"):
        if isinstance(feats, (str, os.PathLike)):
            feats = np.load(feats)
        x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))[None].to(device)
        return detector(x, classes, [duration]).to_lists(classes)[0]
    return detect_one, description


# ----------------------------------------------------------------------------- the command

def run_detect(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, opts: DetectOptions) -> DetectResult:
    """Detect ``opts.classes`` in every video of ``inputs`` and write the outputs into ``out``
    (module docstring). Returns what was written. One ``stale detect`` at a time writes into
    ``out`` (a second one is refused, :mod:`stale.core.locks`)."""
    import contextlib

    with contextlib.ExitStack() as lock:
        return _run_detect(inputs, out, opts, lock)


def _run_detect(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, opts: DetectOptions,
                lock) -> DetectResult:
    import numpy as np

    from stale.core.hub import preflight_weights
    from stale.core.io import atomic_write_json, atomic_write_text, read_json
    from stale.pipeline.extract import ExtractConfig, check_extract_output, extract_videos, setting_conflicts
    from stale.pipeline.predict import read_class_names
    from stale.pipeline.video_frames import find_videos
    from stale.text.image_tower import load_image_encoder
    from stale.training.runtime import resolve_device

    t_all = time.perf_counter()
    opts.validate()
    classes = read_class_names(opts.classes)
    out = Path(out)
    videos = find_videos(inputs)
    device = resolve_device(opts.device) if isinstance(opts.device, str) else opts.device
    xcfg = ExtractConfig(arch=opts.arch, weights=opts.weights, clip_frames=opts.clip_frames, stride=opts.stride,
                         frames_per_clip=opts.frames_per_clip, batch_size=opts.batch_size, device=str(device),
                         skip_bad=opts.skip_bad, allow_truncated=opts.allow_truncated, seed=opts.seed,
                         progress=opts.progress, precision=opts.precision)
    xcfg.validate()
    weights_file = opts.weights if opts.weights and Path(opts.weights).expanduser().is_file() else None
    run_files = []
    if opts.run is not None:
        from stale.training.checkpoint import find_checkpoint

        ckpt = find_checkpoint(opts.run)
        run_files = [ckpt, ckpt.parent / "config.yaml", ckpt.parent / "classes.json"]
    detector_key = {"run": str(Path(opts.run).resolve()) if opts.run else None, "overrides": list(opts.overrides)}
    if opts.windows:   # only when asked: folders written before --windows existed still resume
        detector_key["windows"] = True
    extract_key = {"arch": opts.arch, "weights": str(Path(weights_file).resolve()) if weights_file else opts.weights,
                   "seed": opts.seed if opts.weights == "random" else None, "clip_frames": opts.clip_frames,
                   "stride": opts.stride, "frames_per_clip": opts.frames_per_clip}
    settings = {"classes": classes, "detector": detector_key, "extract": extract_key}
    # the run folder is read: nothing is written inside it (--out RUN)
    prev = _check_outputs(out, videos, inputs, settings, [weights_file, *run_files], opts.overwrite,
                          [run_files[0].parent] if run_files else [])
    check_extract_output(videos, out / FEATURES, replace(xcfg, overwrite=opts.overwrite))
    preflight_weights(opts.arch, opts.weights, "CLIP weights")

    # the models first: a wrong run, checkpoint or class name fails before any video is decoded
    t0 = time.perf_counter()
    encoder = load_image_encoder(opts.arch, opts.weights, opts.seed)
    if encoder.random:
        log.warning("WARNING: image encoder %s: the detections carry no meaning (tests and "
                    "benchmarks only)", encoder.description)
    precision = {"image_tower": resolve_precision(opts.precision, device).record()}
    detect_one, description = video_detector(opts, encoder, classes, device)
    if getattr(detect_one, "precision", None) is not None:
        precision["detector"] = detect_one.precision
    t_models = time.perf_counter() - t0

    # from here on this process writes into OUT: one writer at a time (the checks above are
    # read-only, so a refused second process has changed nothing)
    from stale.core.locks import folder_lock

    out.mkdir(parents=True, exist_ok=True)
    lock.enter_context(folder_lock(out, "stale detect"))
    prev = _check_outputs(out, videos, inputs, settings, [weights_file, *run_files], opts.overwrite,
                          [run_files[0].parent] if run_files else [])   # again, under the lock

    # features: extract's code and index, cached and resumable in OUT/features
    feat_dir = out / FEATURES
    conflicts = setting_conflicts(feat_dir, xcfg, encoder)
    if conflicts:
        if not opts.overwrite:
            raise StaleError(f"{feat_dir}: holds features made with other settings ({', '.join(conflicts)}); "
                             f"pass --overwrite to extract them again, or choose another --out")
        xcfg.overwrite = True   # a new feature index; matching features are never re-extracted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the random-weights warning was logged above
        summary = extract_videos(videos, feat_dir, xcfg, encoder)
    meta = read_json(feat_dir / "extract_meta.json")

    results, timings, facts = {}, {}, {}
    for video in videos:
        vid = video.stem
        if str(video) in summary.bad:
            continue
        info = meta["videos"][vid]
        t0 = time.perf_counter()
        items = detect_one(feat_dir / f"{vid}.npy", float(info["duration"]), name=vid)
        t_det = time.perf_counter() - t0
        results[vid] = sorted(items, key=lambda d: -d["score"])
        cached = vid in summary.resumed
        tm = info.get("timing_s", {})
        timings[vid] = {"decode": float(tm.get("decode", 0.0)), "features": float(tm.get("encode", 0.0)),
                        "detection": round(t_det, 4), "cached_features": cached}
        facts[vid] = {"source": str(video.resolve()), "duration": info["duration"], "fps": info["fps"],
                      "num_frames": info["num_frames"], "num_features": info["num_features"],
                      "width": info.get("width"), "height": info.get("height"), "detections": len(items)}
    if not results:
        raise StaleError(f"no video could be read ({len(summary.bad)} skipped); nothing to detect in")
    earlier = (prev or {}).pop("earlier_results", {})
    if earlier:
        log.info("keeping the detections of %d video(s) of an earlier run in %s", len(earlier), out)
        facts = {**{v: f for v, f in (prev or {}).get("videos", {}).items() if v in earlier}, **facts}
        results = {**earlier, **results}
    new_ids = [vid for vid in results if vid not in earlier]

    # outputs; the record goes first (incomplete), so a run interrupted while writing them is
    # recognised as ours and resumes instead of being refused
    files = {"results": out / RESULTS, "csv": out / CSV_NAME, "report": out / REPORT, "record": out / MARKER}
    atomic_write_json(files["record"], {"format": FORMAT, **settings, "complete": False,
                                        "videos": {**(prev or {}).get("videos", {}), **facts}})
    atomic_write_json(files["results"], {"version": "stale detect", "results": results,
                                         "external_data": {"used": False}, "classes": classes,
                                         "detector": description}, indent=None)
    atomic_write_text(files["csv"], to_csv(results))
    subtitles, timelines = {}, {}
    from stale.viz.plots import plot_timeline

    for vid in new_ids:
        items = results[vid]
        subtitles[vid] = out / SUBTITLES / f"{vid}.srt"
        atomic_write_text(subtitles[vid], to_srt(items, opts.subtitle_top, opts.subtitle_min_score))
        timelines[vid] = plot_timeline(vid, float(facts[vid]["duration"]), [], {"detections": items},
                                       out / TIMELINES / f"{vid}.png", top=opts.timeline_top, classes=classes)
    for vid in earlier:   # kept from the earlier run
        subtitles[vid], timelines[vid] = out / SUBTITLES / f"{vid}.srt", out / TIMELINES / f"{vid}.png"
    if prev is not None:   # --overwrite with other settings: the other videos' files are outdated
        for old in set(prev.get("videos", {})) - set(results):
            for p in (out / SUBTITLES / f"{old}.srt", out / TIMELINES / f"{old}.png"):
                if p.is_file():
                    p.unlink()
    record = {"format": FORMAT, **settings, "complete": True, "detector_description": description,
              "image_encoder": encoder.description, "random_weights": bool(encoder.random),
              "precision": precision,
              "features": FEATURES, "videos": facts, "timings_s": timings,
              "skipped": dict(summary.bad), "models_s": round(t_models, 3),
              "total_s": round(time.perf_counter() - t_all, 3),
              "outputs": {"results": RESULTS, "csv": CSV_NAME, "report": REPORT,
                          "subtitles": SUBTITLES, "timelines": TIMELINES}}
    atomic_write_json(files["record"], record)
    from stale.reporting.folders import build_report
    from stale.reporting.render import write_report

    write_report(build_report(out, page=files["report"]).report, files["report"])
    sources = {vid: Path(f["source"]) for vid, f in facts.items()}
    return DetectResult(out, results, files, subtitles, timelines, timings, dict(summary.bad), description, sources)
