"""The public Python API (``import stale``): every CLI command, for notebooks and scripts.

Each function takes the command's options under the same names (``--max-videos-per-subset`` ->
``max_videos_per_subset``, ``--set`` -> ``overrides``) with the same defaults, does the same
checks, and returns what the command prints as data. A command with actions has one function
per action (``stale splits random`` -> :func:`splits_random`); ``stale synth`` is
:func:`synthesize` (``stale.synth`` is the generator's package).

>>> import stale
>>> run_dir = stale.train("demo", "runs/demo", overrides=["data.annotations=...", "data.features.root=..."])
>>> run = stale.load_run(run_dir)
>>> dets = run.detect("features/video_test_0000004.npy", ["pole vault", "high jump"], duration=33.5)
>>> stale.predict(run_dir, "pred.json", gt_out="gt.json")
>>> result = stale.evaluate("gt.json", "pred.json", tiou="thumos14")     # the subset: gt.json's only one
>>> split = stale.splits("thumos14", 75, 0)
>>> res = stale.detect(["clip.mp4"], "high jump,a person pole vaulting", "det", weights="ViT-B-16.pt")
>>> page = stale.report("stale_demo")
>>> info = stale.features_inspect("csv_mean_100", annotations="anet_anno_action.json", prefix="v_")
>>> stale.features_convert(["rgb.h5", "flow.h5"], "features_npy")

See docs/api.md for a worked example and the table of commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from stale.core.arguments import checked

#: CLI command (and action) -> the API function doing it (tested: every command is covered)
COMMANDS = {
    "evaluate": "evaluate", "splits show": "splits", "splits validate": "splits_validate",
    "splits random": "splits_random", "text-embed": "text_embed", "extract": "extract", "synth": "synthesize",
    "train": "train", "predict": "predict", "detect": "detect", "report": "report",
    "experiment": "experiment", "experiment summarize": "summarize_experiment",
    "experiment list": "list_experiments", "demo": "demo", "config show": "config", "config list": "list_configs",
    "features inspect": "features_inspect", "features convert": "features_convert",
    "stream": "stream",
}
__all__ = ["load_run", *dict.fromkeys(COMMANDS.values())]


@checked
def load_run(path: str | os.PathLike, device: str = "auto", overrides: Sequence[str] = (),
             annotations: str | os.PathLike | None = None, features: str | os.PathLike | None = None):
    """A trained run folder (or checkpoint file) ready to detect: ``run.detect(features, classes)``."""
    from stale.pipeline.predict import load_run as _load

    return _load(path, device, overrides, annotations, features)


@checked
def train(config: str | os.PathLike, out: str | os.PathLike, overrides: Sequence[str] = (),
          resume: bool = False, overwrite: bool = False, threads: int | None = None,
          device: str | None = None) -> Path:
    """Train a run (``stale train``): ``config`` is a YAML file or a shipped config name; returns
    the run folder. ``threads`` / ``device``: short for ``train.threads`` / ``train.device``."""
    from stale.pipeline.config import load_run_config
    from stale.pipeline.train import run_training

    from stale.core.config import option_overrides

    cfg = load_run_config(config, option_overrides(overrides, train_threads=threads, train_device=device))
    run_training(cfg, out, resume=resume, overwrite=overwrite)
    return Path(out)


@checked
def evaluate(ground_truth: Any, predictions: Any, subset: str | None = None,
             tiou: str | Sequence[float] = "activitynet", blocked: str | os.PathLike | Sequence[str] | None = None):
    """Exact ActivityNet detection mAP (``stale evaluate``): file paths or parsed JSON objects.
    ``subset`` None: the ground truth's only subset when it holds one (the file ``stale predict
    --gt-out`` writes), else ``validation``. ``blocked``: video ids to leave out, or a file of
    them (as ``--blocked``). Returns a :class:`stale.evaluation.DetectionResult` (``.mAP``,
    ``.average_mAP``, ``.ap``)."""
    from stale.core.io import read_json
    from stale.evaluation import evaluate_detection, load_blocked

    gt = read_json(ground_truth) if isinstance(ground_truth, (str, os.PathLike)) else ground_truth
    pred = read_json(predictions) if isinstance(predictions, (str, os.PathLike)) else predictions
    if isinstance(blocked, (str, os.PathLike)):
        blocked = load_blocked(blocked)
    return evaluate_detection(gt, pred, subset, tiou, blocked or (),
                              gt_source=str(ground_truth) if isinstance(ground_truth, (str, os.PathLike)) else "ground truth",
                              pred_source=str(predictions) if isinstance(predictions, (str, os.PathLike)) else "predictions")


@checked
def splits(dataset: str, setting: int | str, index: int):
    """One of the 40 standard zero-shot splits (``stale splits show``): ``.seen`` and ``.unseen``."""
    from stale.data.splits import load_split

    return load_split(dataset, setting, index)


def _annotation_classes(annotations: str | os.PathLike | None, dataset: str | None) -> list[str]:
    """The classes of an annotation file, or of the packaged file of ``dataset``."""
    from stale.core.errors import StaleError
    from stale.data import resources
    from stale.data.annotations import load_annotations

    if annotations is None:
        if dataset is None:
            raise StaleError("give --annotations FILE (or a dataset name to use the packaged file)")
        annotations = resources.annotations_path(dataset)
    return load_annotations(annotations).classes()


@checked
def splits_validate(dataset: str | None = None, setting: int | str | None = None, index: int | str | None = None,
                    seen: str | os.PathLike | None = None, unseen: str | os.PathLike | None = None,
                    annotations: str | os.PathLike | None = None) -> list[tuple[Any, int]]:
    """Check splits against the classes of an annotation file (``stale splits validate``): a
    standard split (``index`` None or ``"all"``: all ten) or a user one (``seen`` / ``unseen``
    files). Returns ``[(split, number of classes)]``; a bad split raises StaleError."""
    from stale.core.errors import StaleError
    from stale.data.splits import NUM_SPLITS, canonical_dataset, load_split, read_split_files, validate_split

    if (seen is None) != (unseen is None):
        raise StaleError("give both --seen and --unseen for a user-defined split")
    dataset = canonical_dataset(dataset) if dataset else None
    if seen is not None:
        chosen = [read_split_files(seen, unseen)]
    else:
        if dataset is None or setting is None:
            raise StaleError("give DATASET SETTING [INDEX|all], or --seen and --unseen files")
        if index in (None, "all"):
            indices = range(NUM_SPLITS)
        elif str(index).isdigit():
            indices = [int(index)]
        else:
            raise StaleError(f"split index must be 0..{NUM_SPLITS - 1} or 'all', got {index!r}")
        chosen = [load_split(dataset, setting, i) for i in indices]
    classes = _annotation_classes(annotations, dataset)
    for split in chosen:
        validate_split(split, classes)
    return [(split, len(classes)) for split in chosen]


@checked
def splits_random(annotations: str | os.PathLike, out: str | os.PathLike, unseen: float = 0.25, seed: int = 0,
                  overwrite: bool = False):
    """Draw a seeded random split of an annotation file's classes and write ``out/train.list``
    (seen) and ``out/test.list`` (unseen) (``stale splits random``); returns
    ``(split, train path, test path)``."""
    from stale.core.io import remove_stale_temp_files
    from stale.core.output_checks import Output, check_outputs
    from stale.data.splits import random_split, write_split

    out = Path(out)
    ann = Path(annotations).expanduser()
    check_outputs([Output(out, "dir", "--out", exists_ok=True), Output(out / "train.list", "file", "--out"),
                   Output(out / "test.list", "file", "--out")],
                  inputs=[] if ann.is_dir() else [ann], input_dirs=[ann] if ann.is_dir() else [],
                  overwrite=overwrite)
    remove_stale_temp_files(out, names=["train.list", "test.list"])
    split = random_split(_annotation_classes(annotations, None), unseen, seed)
    train_list, test_list = write_split(split, out)
    return split, train_list, test_list


@checked
def text_embed(out: str | os.PathLike, classes: str | None = None, classes_file: str | os.PathLike | None = None,
               weights: str | None = None, arch: str | None = None, template: str = "a video of {}.",
               cache_dir: str | None = None, device: str | None = None, overwrite: bool = False):
    """Frozen CLIP text embeddings of class names (``stale text-embed``): writes ``out`` (a
    ``.npy``, (K, E) float32, L2-normalised rows in class order) and ``OUT.classes.json``; returns
    ``(embeddings, that JSON's record)``. ``classes``: ``"a,b"``; or ``classes_file``."""
    from stale.core.errors import StaleError
    from stale.core.io import atomic_save_npy, atomic_write_json, remove_stale_temp_files
    from stale.core.output_checks import Output, check_outputs
    from stale.text.embed import embed_class_names, read_class_list
    from stale.text.weights import OFFLINE_ARCH
    from stale.training.runtime import resolve_device

    if (classes is None) == (classes_file is None):
        raise StaleError("give the class names: classes or classes_file (one of them)")
    out = Path(out)
    if out.suffix != ".npy":
        raise StaleError(f"--out {out}: must end with .npy")
    meta_path = out.with_suffix(".classes.json")
    local = weights if weights and Path(weights).expanduser().exists() else None
    resolved = check_outputs([Output(out, "file", "--out"), Output(meta_path, "file", "--out (class list)")],
                             inputs=[classes_file, local], overwrite=overwrite)
    if template.count("{}") != 1:
        raise StaleError(f"--template {template!r}: must contain {{}} exactly once, where the class "
                         f"name goes")
    dev = str(resolve_device(device)) if device is not None else None
    names = read_class_list(classes, classes_file)
    for path in resolved:
        remove_stale_temp_files(path.parent, names=[path.name])
    emb = embed_class_names(names, weights=weights, template=template, arch=arch, cache_dir=cache_dir, device=dev)

    atomic_save_npy(out, emb)
    record = {"classes": names, "template": template, "arch": arch or ("ViT-B-16" if weights is not None else OFFLINE_ARCH),
              "weights": weights, "embed_dim": int(emb.shape[1])}
    atomic_write_json(meta_path, record)
    return emb, record


@checked
def extract(inputs: Sequence[str | os.PathLike] | str | os.PathLike, out: str | os.PathLike,
            weights: str | None = None, arch: str = "ViT-B-16", clip_frames: int = 16, stride: int = 16,
            frames_per_clip: int = 1, batch_size: int = 64, device: str = "auto", prefix: str = "",
            overwrite: bool = False, skip_bad: bool = False, allow_truncated: bool = False, seed: int = 0,
            threads: int | None = None, progress: bool = True, shard: str | tuple[int, int] | None = None,
            workers: int = 0, fps: float | None = None, convention: str | None = None, shards: int | None = None,
            launcher: str = "local", partition: str | None = None, time: int = 60, gpus_per_job: int = 0,
            cpus_per_job: int = 2, precision: str = "auto"):
    """CLIP image features of video files (``stale extract``): ``<prefix><stem>.npy`` per video,
    ``extract_meta.json`` and ``videos.json`` in ``out``. ``shard``: ``"I/N"`` or ``(I, N)``, only
    the videos of shard I of N (N jobs fill one ``out``; docs/extract.md); ``shards``: submit all N
    shards as jobs of ``launcher`` (local, slurm, submitit-local; ``partition`` / ``time`` /
    ``gpus_per_job`` / ``cpus_per_job`` for Slurm). ``workers``: decoding processes;
    ``convention``: a sampling preset (sets clip_frames, stride, fps); ``fps``: resample videos to
    this rate. ``precision``: the image tower's, ``auto`` (bf16 where the CPU/GPU has native bf16
    matrix units), ``float32`` or ``bf16`` (docs/inference.md, "Precision"). Returns the
    :class:`stale.pipeline.extract.ExtractSummary` (``.line()``, ``.bad``); random weights are
    logged as a warning."""
    from stale.core.errors import StaleError
    from stale.core.hub import preflight_weights
    from stale.core.logs import get_logger

    preflight_weights(arch, weights, "CLIP image weights")   # before the slow imports
    from stale.data.features.rate import apply_preset
    from stale.pipeline.extract import ExtractConfig, check_extract_output, extract_videos
    from stale.pipeline.extract_index import parse_shard
    from stale.text.image_tower import load_image_encoder
    from stale.training.runtime import resolve_device, set_threads

    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    clip_frames, stride, fps = apply_preset(convention, clip_frames, stride, fps)
    fps = float(fps) if isinstance(fps, int) and not isinstance(fps, bool) else fps
    cfg = ExtractConfig(arch=arch, weights=weights, clip_frames=clip_frames, stride=stride,
                        frames_per_clip=frames_per_clip, batch_size=batch_size, device=device,
                        prefix=prefix, overwrite=overwrite, skip_bad=skip_bad, allow_truncated=allow_truncated,
                        seed=seed, progress=progress, shard=parse_shard(shard), workers=workers, fps=fps,
                        convention=convention, precision=precision)
    if shards is not None:   # each job resolves --device on its own machine
        from stale.pipeline.extract_launch import extract_shards

        return extract_shards(inputs, out, cfg, shards, launcher, {
            "partition": partition, "time": time, "gpus": gpus_per_job, "cpus": cpus_per_job, "threads": threads})
    if launcher != "local":
        raise StaleError(f"--launcher {launcher}: submits shards; give --shards N")
    set_threads(threads)
    cfg.device = str(resolve_device(device))
    videos = check_extract_output(inputs, out, cfg)   # before the weights load
    encoder = load_image_encoder(cfg.arch, cfg.weights, cfg.seed)
    if encoder.random:
        get_logger("extract").warning("WARNING: image encoder %s. These features carry no visual meaning; "
                                      "use them for tests and benchmarks only.", encoder.description)
    return extract_videos(videos, out, cfg, encoder)


#: ``stale synth`` difficulty flags -> RenderConfig fields (defaults live in the dataclass)
SYNTH_KNOBS = ("noise", "instance_variation", "boundary_softness", "distractor_rate")


@checked
def synthesize(out: str | os.PathLike, layout: str | None = None, preset: str | None = None, seed: int = 0,
          dim: int | None = None, max_videos_per_subset: int | None = None, subsets: str | Sequence[str] | None = None,
          noise: float | None = None, instance_variation: float | None = None,
          boundary_softness: float | None = None, distractor_rate: float | None = None,
          overrides: Sequence[str] = (), text_weights: str | None = None, template: str = "a video of {}.",
          stats: bool = False, overwrite: bool = False) -> dict:
    """Write a semi-synthetic dataset in the real on-disk layouts (``stale synth``; docs/synth.md;
    not ``stale.synth``, the name of the generator's package). Returns the ``synth_meta.json``
    record, with ``difficulty_stats`` added when ``stats``."""
    from stale.core.config import apply_overrides, from_dict, to_dict
    from stale.core.errors import StaleError
    from stale.core.io import remove_stale_temp_files
    from stale.synth.generate import SynthConfig, SynthDataset, check_synth_folder, default_embed_fn

    if preset is None and layout is None:
        raise StaleError("give --layout thumos14|activitynet or --preset NAME")
    if preset is not None:
        from stale.synth.presets import preset as preset_config

        data = to_dict(preset_config(preset))
        if layout is not None:
            data["layout"] = layout
        data["seed"] = seed
    else:
        data = to_dict(SynthConfig())
        data.update(layout=layout, seed=seed)
    if dim is not None:
        data["dim"] = dim
    if max_videos_per_subset is not None:
        data["max_videos_per_subset"] = max_videos_per_subset
    if subsets:
        items = subsets.split(",") if isinstance(subsets, str) else subsets
        data["subsets"] = [s.strip() for s in items if s.strip()]
    knobs = {"noise": noise, "instance_variation": instance_variation, "boundary_softness": boundary_softness,
             "distractor_rate": distractor_rate}
    for name, value in knobs.items():
        if value is not None:
            data["render"][name] = value
    cfg = from_dict(SynthConfig, apply_overrides(data, list(overrides)))
    if template.count("{}") != 1:
        raise StaleError(f"--template must contain '{{}}' exactly once, for the class name, got {template!r}")
    out = Path(out)
    # the folder is checked before the class names are embedded and anything is rendered
    check_synth_folder(out, overwrite, to_dict(cfg))
    remove_stale_temp_files(out)
    remove_stale_temp_files(out / "features")
    embed = default_embed_fn(text_weights, template)
    ds = SynthDataset(cfg, embed)
    meta = ds.write(out, text_info={"weights": text_weights, "template": template}, overwrite=overwrite)
    if stats:
        import numpy as np

        from stale.data.splits import load_split
        from stale.synth.stats import difficulty_stats
        from stale.synth.transfer import zero_shot_difficulty
        from stale.text.embed import ENSEMBLE_TEMPLATES

        found = difficulty_stats(ds)
        # what a detector knowing the unseen classes by name can read: 75/25 split_0, with the
        # training-free detector's prompt ensemble
        split = load_split(cfg.layout, 75, 0)
        text = np.mean([embed(ds.classes, template=t) for t in ENSEMBLE_TEMPLATES], axis=0)
        found["zero_shot_75_25_split_0"] = zero_shot_difficulty(ds, split.seen, split.unseen, text)
        meta = {**meta, "difficulty_stats": found}
    return meta


@checked
def predict(run: str | os.PathLike, out: str | os.PathLike, subset: str | None = None,
            classes: str | Sequence[str] | None = None, all_videos: bool = False,
            gt_out: str | os.PathLike | None = None, batch_size: int = 32, device: str = "auto",
            threads: int | None = None, overrides: Sequence[str] = (), annotations: str | os.PathLike | None = None,
            features: str | os.PathLike | None = None, fuse_video_scores: str | os.PathLike | None = None,
            overwrite: bool = False, windows: bool = False, precision: str | None = None) -> dict:
    """Detect with a trained run on a subset's videos and write the results file (``stale
    predict``), and with ``gt_out`` the ground truth of exactly these classes and videos.
    ``classes``: names, ``"a,b"`` or ``"@FILE"`` (default: the run's test classes). ``windows``:
    slide windows over the videos (``data.sampling=window``; a run trained in resize mode uses
    its training snippet length as the time step). ``precision``: ``auto`` / ``float32`` /
    ``bf16``, short for ``inference.precision`` (recorded in the results file). Returns the
    results file's payload."""
    from stale.core.errors import StaleError
    from stale.pipeline.predict import load_run as _load
    from stale.pipeline.predict import read_class_names, run_prediction
    from stale.training.runtime import set_threads

    if not isinstance(batch_size, int) or batch_size < 1:
        raise StaleError(f"--batch-size must be >= 1, got {batch_size}")
    set_threads(threads)
    names = read_class_names(classes)
    if not isinstance(windows, bool):
        raise StaleError(f"windows must be True or False, got {windows!r}")
    overrides = [*overrides, "data.sampling=window"] if windows else overrides
    if precision is not None:
        from stale.core.precision import normalise_precision

        overrides = [*overrides, f"inference.precision={normalise_precision(precision)}"]
    loaded = _load(run, device, overrides, annotations=annotations, features=features)
    return run_prediction(loaded, out, subset=subset, classes=names, all_videos=all_videos, batch_size=batch_size,
                          fuse_scores=fuse_video_scores, gt_out=gt_out, overwrite=overwrite,
                          annotations_path=annotations)


@checked
def detect(videos: Sequence[str | os.PathLike] | str | os.PathLike, classes: Sequence[str] | str,
           out: str | os.PathLike, run: str | os.PathLike | None = None, weights: str | None = None,
           arch: str = "ViT-B-16", overwrite: bool = False, threads: int | None = None, **options):
    """Detect ``classes`` (names, ``"a,b"`` or ``"@file"``) in video files (``stale detect``):
    features cached in ``out/features``, then the trained ``run``'s detector or, without one, the
    training-free CLIP detector with the text tower of the same CLIP ``weights``. Writes
    detections.json, detections.csv, subtitles/, timelines/ and report.html into ``out``.

    ``options``: further :class:`stale.pipeline.detect_videos.DetectOptions` fields (``clip_frames``,
    ``stride``, ``device``, ``overrides``, ``subtitle_top``, ...). Returns a
    :class:`stale.pipeline.detect_videos.DetectResult` (``.results``: video -> detections, best first;
    ``.files``; ``.timings``)."""
    from stale.core.hub import preflight_weights

    preflight_weights(arch, weights, "CLIP weights")   # before the slow imports
    from dataclasses import fields

    from stale.core.arguments import check_options
    from stale.pipeline.detect_videos import DetectOptions, run_detect
    from stale.training.runtime import set_threads

    given = {"classes", "run", "weights", "arch", "overwrite"}   # parameters of this function
    check_options("detect", options, {f.name: str(f.type) for f in fields(DetectOptions) if f.name not in given})

    set_threads(threads)
    inputs = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    opts = DetectOptions(classes=classes, run=run, weights=weights, arch=arch, overwrite=overwrite,
                         progress=options.pop("progress", False), **options)
    return run_detect(inputs, out, opts)


@checked
def stream(source: str | os.PathLike, classes: Sequence[str] | str, run: str | os.PathLike | None = None,
           weights: str | None = None, arch: str = "ViT-B-16", out: str | os.PathLike | None = None,
           srt: str | os.PathLike | None = None, overwrite: bool = False, threads: int | None = None, **options):
    """Detect ``classes`` online in a live ``source`` (a file, a URL or a device PyAV opens) --
    ``stale stream``. Returns a :class:`stale.pipeline.stream.DetectionStream`: iterate over it
    for each detection as soon as it is final (``.start``, ``.end``, ``.label``, ``.score``,
    ``.latency``; ``.to_dict()``); ``out`` also appends them to a JSON-lines file and ``srt``
    (default: ``out`` with ``.srt``) keeps a SubRip file of all of them. Use it in a ``with``
    block (or call ``.close()``) to stop early; ``.summary`` counts frames read, encoded and
    skipped and the latencies. Bad options, outputs, classes and models fail here, before any
    frame is read.

    ``options``: further :class:`stale.pipeline.stream.StreamOptions` fields (``window``, ``hop``,
    ``margin``, ``realtime``, ``stride``, ``overrides``, ...)."""
    from stale.core.hub import preflight_weights

    preflight_weights(arch, weights, "CLIP weights")   # before the slow imports
    from dataclasses import fields

    from stale.core.arguments import check_options
    from stale.pipeline.stream import DetectionStream, StreamOptions
    from stale.training.runtime import set_threads

    given = {"classes", "run", "weights", "arch", "out", "srt", "overwrite"}   # parameters of this function
    check_options("stream", options, {f.name: str(f.type) for f in fields(StreamOptions) if f.name not in given})
    set_threads(threads)
    opts = StreamOptions(classes=classes, run=run, weights=weights, arch=arch, out=out, srt=srt,
                         overwrite=overwrite, **options)
    return DetectionStream(source, opts)


@checked
def report(folder: str | os.PathLike, out: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Write the HTML report of a demo, detect, run or experiment folder (``stale report``);
    returns the page's path."""
    from stale.reporting.folders import write_folder_report

    return write_folder_report(folder, out, overwrite=overwrite).default_out


@checked
def experiment(spec: str | os.PathLike, out: str | os.PathLike, splits: str | Sequence[int] | None = None,
               seeds: str | Sequence[int] | None = None, variants: str | Sequence[str] | None = None,
               settings: str | Sequence[str] | None = None, datasets: str | Sequence[str] | None = None,
               overrides: Sequence[str] = (), jobs: int = 1, launcher: str = "local", partition: str | None = None,
               time: int = 60, gpus_per_job: int = 0, cpus_per_job: int = 2, ddp_procs: int = 1) -> dict:
    """Run every unfinished cell of an experiment spec into ``out`` (``stale experiment``;
    docs/experiments.md); returns the summary written to ``results.json``. ``splits`` / ``seeds``:
    ``"0-9"``, ``"0,2"`` or a list; ``variants`` / ``settings`` / ``datasets``: names (a list or
    comma-separated)."""
    from stale.experiments.runner import run_experiment
    from stale.experiments.spec import parse_range

    return run_experiment(
        spec, out, splits=parse_range(splits) if splits is not None else None,
        seeds=parse_range(seeds, "--seeds") if seeds is not None else None,
        variants=variants or None, datasets=datasets or None, settings=settings or None,
        overrides=list(overrides), jobs=jobs, launcher=launcher,
        slurm={"partition": partition, "time": time, "gpus": gpus_per_job, "cpus": cpus_per_job,
               "parallel": jobs}, ddp_procs=ddp_procs)


@checked
def summarize_experiment(folder: str | os.PathLike) -> dict:
    """Rebuild results.json / results.md / results.png of an experiment folder from its cells
    (``stale experiment summarize``); returns the summary."""
    from stale.experiments.summary import summarize

    return summarize(folder)


@checked
def list_experiments() -> list[str]:
    """The names of the shipped experiment specs (``stale experiment list``)."""
    from stale.experiments.spec import list_specs

    return list_specs()


@checked
def demo(out: str | os.PathLike = "stale_demo", seed: int = 0, max_videos_per_subset: int | None = None,
         threads: int | None = None, overrides: Sequence[str] = ()) -> dict:
    """The built-in zero-shot demo (``stale demo``): benchmark, training, detection of the unseen
    classes, the leakage control, the report; returns the metrics written to
    ``out/report/metrics.json``."""
    from stale.core.errors import StaleError
    from stale.pipeline.demo import DemoOptions, run_demo
    from stale.training.runtime import set_threads

    if max_videos_per_subset is not None and max_videos_per_subset < 1:
        raise StaleError(f"--max-videos-per-subset must be >= 1, got {max_videos_per_subset}")
    set_threads(threads)
    return run_demo(DemoOptions(Path(out), seed, max_videos_per_subset, list(overrides)))


@checked
def config(config: str | os.PathLike, overrides: Sequence[str] = ()) -> dict:
    """A run config fully resolved -- bases merged, ``overrides`` applied, checked -- as a dict
    (``stale config show``)."""
    from stale.core.config import to_dict
    from stale.pipeline.config import load_run_config

    return to_dict(load_run_config(config, list(overrides)))


@checked
def list_configs() -> list[str]:
    """The names of the shipped run configs (``stale config list``)."""
    from stale.core.config import list_packaged_configs

    return list_packaged_configs()


def _feature_source(sources, dim, kind, prefix, suffix, key, layout, nonfinite, length_mismatch):
    from stale.pipeline.features import source_config

    inputs = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    return source_config(inputs, dim, kind, prefix, suffix, key, layout, nonfinite, length_mismatch)


def features_inspect(sources: str | os.PathLike | Sequence[str | os.PathLike],
                     annotations: str | os.PathLike | None = None, kind: str = "auto", prefix: str = "",
                     suffix: str | None = None, key: str | None = None, layout: str = "auto",
                     dim: str | int | Sequence[int] | None = None, length_mismatch: str = "error",
                     progress: bool = False) -> dict:
    """What a feature release holds (``stale features inspect``): videos found / missing / extra
    against ``annotations``, channels, lengths, the implied feature rate and the conventions it
    matches, non-finite values, unreadable videos (``["problems"]``; the command fails on any,
    this function returns them). ``sources``: a folder of ``.npy``/``.csv`` files, an HDF5 or
    pickle file, or several (concatenated along channels); ``dim``: the total or one per source.
    Returns the JSON-ready report."""
    from stale.pipeline.features import inspect_features

    cfg = _feature_source(sources, dim, kind, prefix, suffix, key, layout, "error", length_mismatch)
    return inspect_features(cfg, annotations, progress=progress)


def features_convert(sources: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike,
                     kind: str = "auto", prefix: str = "", suffix: str | None = None, key: str | None = None,
                     layout: str = "auto", dim: str | int | Sequence[int] | None = None,
                     length_mismatch: str = "error", nonfinite: str = "error", overwrite: bool = False,
                     progress: bool = False):
    """Write any feature source as one (T, C) float32 ``<prefix><id>.npy`` per video into ``out``
    (``stale features convert``; resumable). Options as :func:`features_inspect`, plus
    ``nonfinite`` (``"error"`` or ``"zero"``). Returns a
    :class:`stale.pipeline.features.ConvertSummary` (``.written``, ``.resumed``, ``.dim``)."""
    from stale.pipeline.features import convert_features

    cfg = _feature_source(sources, dim, kind, prefix, suffix, key, layout, nonfinite, length_mismatch)
    return convert_features(cfg, out, overwrite=overwrite, progress=progress)
