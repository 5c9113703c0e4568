"""``stale demo``: the whole zero-shot pipeline on the built-in semi-synthetic benchmark.

1. write the THUMOS14-layout benchmark (``stale synth``: real video ids, durations and segments;
   features derived from the class names' text embeddings);
2. train STALE on the seen classes of the standard 75/25 ``split_0`` — and, for comparison, STALE
   without representation masking;
3. detect the unseen classes (named only in text) in the test videos and score them with the
   exact ActivityNet mAP at tIoU 0.3:0.1:0.7;
4. the leakage control: the same STALE model asked for the unseen classes under permuted names
   must score near zero — what it knows of an unseen class comes only through its name;
5. write a report folder: metrics, predictions, ground truth, training curves, timelines, and
   ``index.html``, the interactive report (``stale report``).

Each stage is skipped when its output already exists (an interrupted demo resumes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from stale.core.errors import StaleError
from stale.core.logs import get_logger

log = get_logger("demo")

DEMO_CONFIG = "demo"   # the shipped config src/stale/configs/demo.yaml
METHODS = {  # report name -> (run folder, config overrides)
    "STALE": ("stale", []),
    "STALE w/o masking": ("stale_no_mask", ["model.masking.kind=none"]),
}
CONTROL = "control: permuted unseen names"


@dataclass
class DemoOptions:
    out: Path = Path("stale_demo")
    seed: int = 0
    max_videos_per_subset: int | None = None  # subsample the benchmark (tests); None = all 412
    overrides: list[str] = field(default_factory=list)  # applied to the demo run config
    timelines: int = 4


def demo_synth_config(opts: DemoOptions):
    """The demo's benchmark: the ``aligned`` preset (CLIP-like: features share the 128-d space of
    the offline text tower, with a class-agnostic actionness cue, see stale.synth.presets)."""
    from stale.synth.presets import preset

    return preset("aligned", opts.seed, opts.max_videos_per_subset)


def _check_folder(out: Path) -> None:
    """A demo folder is empty, or one this command made (it has ``data/synth_meta.json``)."""
    from stale.core.output_checks import Output, check_outputs

    check_outputs([Output(out, "dir", "--out", exists_ok=True)])
    if out.is_dir() and any(out.iterdir()) and not (out / "data" / "synth_meta.json").is_file():
        raise StaleError(f"--out {out}: folder holds files that stale demo did not write; "
                         f"choose an empty or new folder")


def _generate(opts: DemoOptions, data_dir: Path) -> dict:
    from stale.synth.generate import SynthDataset, default_embed_fn

    meta_path = data_dir / "synth_meta.json"
    want = {"seed": opts.seed, "max_videos_per_subset": opts.max_videos_per_subset}
    if meta_path.is_file():
        from stale.core.io import read_json

        meta = read_json(meta_path)
        have = {"seed": meta.get("seed"), "max_videos_per_subset": meta.get("config", {}).get("max_videos_per_subset")}
        if have == want and meta.get("complete", True):
            log.info("[1/5] benchmark: reusing %s", data_dir)
            return meta
        if have != want:
            raise StaleError(f"{data_dir} holds a benchmark made with other settings {have}; "
                             f"use another --out or delete it")
    log.info("[1/5] benchmark: writing the THUMOS14-layout semi-synthetic dataset ...")
    cfg = demo_synth_config(opts)
    ds = SynthDataset(cfg, default_embed_fn())
    return ds.write(data_dir, text_info={"weights": None, "template": "a video of {}."})


def _run_config(opts: DemoOptions, data_dir: Path, extra: list[str]):
    from stale.pipeline.config import load_run_config

    return load_run_config(DEMO_CONFIG, [f"data.annotations={data_dir / 'annotations.json'}",
                                         f"data.features.root={data_dir / 'features'}",
                                         f"train.seed={opts.seed}", *opts.overrides, *extra])


def _train(opts: DemoOptions, name: str, run_dir: Path, cfg) -> list[dict]:
    from stale.pipeline.zero_shot import train_or_resume
    from stale.viz.plots import read_metrics

    train_or_resume(cfg, run_dir, name)
    return read_metrics(run_dir / "metrics.jsonl")


def run_demo(opts: DemoOptions) -> dict:
    """Run every stage; returns the metrics dict also written to ``report/metrics.json``."""
    import torch

    from stale.core.io import atomic_write_json, atomic_write_text, read_json
    from stale.pipeline.assemble import assemble_test, make_dataset
    from stale.pipeline.predict import load_run
    from stale.pipeline.results import write_results
    from stale.pipeline.zero_shot import zero_shot
    from stale.viz.plots import plot_timeline, plot_training_curves

    t_start = time.perf_counter()
    out = Path(opts.out)
    data_dir, runs_dir, report = out / "data", out / "runs", out / "report"
    timings: dict[str, float] = {}

    _check_folder(out)
    from stale.core.io import remove_stale_temp_files

    remove_stale_temp_files(out, recursive=True)   # of a killed earlier demo in this folder
    # every run config is validated before anything is written (a typo in --set fails here)
    cfgs = {name: _run_config(opts, data_dir, extra) for name, (_, extra) in METHODS.items()}
    t0 = time.perf_counter()
    _generate(opts, data_dir)
    timings["benchmark"] = time.perf_counter() - t0
    # the test set before any training: a benchmark too small for the evaluation fails now
    cfg = cfgs["STALE"]
    test = assemble_test(cfg)
    if len(test.classes) < 2:
        raise StaleError(f"--max-videos-per-subset {opts.max_videos_per_subset}: the benchmark's test videos hold "
                         f"{len(test.classes)} unseen class(es) with ground truth; the leakage control (names "
                         f"permuted among the unseen classes) needs at least 2 -- use more videos per subset")

    log.info("[2/5] training on the seen classes (75/25 split_0) ...")
    histories = {}
    for name, (slug, _) in METHODS.items():
        t0 = time.perf_counter()
        histories[name] = _train(opts, name, runs_dir / slug, cfgs[name])
        timings[f"train {name}"] = time.perf_counter() - t0

    log.info("[3/5] detecting the unseen classes in the test videos ...")
    t0 = time.perf_counter()
    videos, unseen = test.videos, list(test.classes)
    dataset = make_dataset(videos, test.store, cfg, for_detection=True)
    device = torch.device("cpu")
    gt = test.ground_truth.to_activitynet_json()
    scored = {}
    for name, (slug, _) in METHODS.items():
        run = load_run(runs_dir / slug, device)
        scored[name] = zero_shot(run, test, dataset, "thumos14", ground_truth=gt)
        if name == "STALE":
            # leakage control: ask for class i under the name of another unseen class, and
            # score the answers as class i
            scored[CONTROL] = zero_shot(run, test, dataset, "thumos14", permute_seed=opts.seed, ground_truth=gt)
    predictions = {name: s.results for name, s in scored.items()}
    timings["predict"] = time.perf_counter() - t0

    log.info("[4/5] scoring (ActivityNet mAP, tIoU 0.3:0.1:0.7) ...")
    results = {name: s.metric for name, s in scored.items()}

    log.info("[5/5] writing the report ...")
    report.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report / "ground_truth.json", gt, indent=None)
    slugs = {"STALE": "stale", "STALE w/o masking": "stale_no_mask", CONTROL: "control_permuted_names"}
    for name, preds in predictions.items():
        write_results(report / f"predictions_{slugs[name]}.json", preds, unseen, method=name,
                      **({"control_of": "STALE"} if name == CONTROL else {}))
    plot_training_curves(histories, report / "training_curve.png")
    # the most varied videos first (distinct unseen classes), then those with about 6 instances
    with_gt = sorted((v for v in videos if v.segments),
                     key=lambda v: (-len({s.label for s in v.segments}), abs(len(v.segments) - 6), v.id))
    tl_dir = report / "timelines"
    for old in tl_dir.glob("*.png") if tl_dir.is_dir() else ():
        old.unlink()  # pictures of an earlier run of this demo folder
    for v in with_gt[: opts.timelines]:
        plot_timeline(v.id, v.duration, [{"segment": [s.start, s.end], "label": s.label} for s in v.segments],
                      {n: predictions[n].get(v.id, []) for n in ("STALE", CONTROL)},
                      tl_dir / f"{v.id}.png", top=8, classes=unseen)
    timings["total"] = time.perf_counter() - t_start
    classes_json = read_json(runs_dir / "stale" / "classes.json")
    metrics = {
        "data": "SYNTHETIC: semi-synthetic THUMOS14-layout benchmark (stale synth), not real video",
        "protocol": {"setting": "75/25", "split": classes_json["protocol"]["name"], "seen": classes_json["seen"],
                     "unseen": unseen, "test_videos": len(videos),
                     "test_instances": sum(len(v.segments) for v in videos)},
        "methods": {name: r.to_json() for name, r in results.items()},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    atomic_write_json(report / "metrics.json", metrics)
    from stale.reporting.folders import build_report
    from stale.reporting.render import write_report

    write_report(build_report(out).report, report / "index.html")   # the page of this report folder
    table = format_table(results)
    atomic_write_text(report / "summary.md", "# stale demo (synthetic data)\n\n" + table + "\n")
    print("")
    print(f"Zero-shot detection of {len(unseen)} unseen classes ({', '.join(unseen)}) in "
          f"{len(videos)} test videos — SYNTHETIC benchmark:")
    print(table)
    print(f"report: {report / 'index.html'}  (and metrics.json, predictions_*.json, training_curve.png, timelines/)")
    print(f"wall time: {timings['total']:.0f} s")
    return metrics


def format_table(results: dict) -> str:
    """Markdown table: mAP (%) at each tIoU and the average, one row per method."""
    first = next(iter(results.values()))
    head = "| method | " + " | ".join(f"{t:.1f}" for t in first.tiou) + " | avg |"
    rule = "| --- | " + " | ".join("---:" for _ in first.tiou) + " | ---: |"
    rows = [f"| {name} | " + " | ".join(f"{100 * m:.1f}" for m in r.mAP) + f" | {100 * r.average_mAP:.1f} |"
            for name, r in results.items()]
    return "\n".join([head, rule, *rows])
