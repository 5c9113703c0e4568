"""``stale report``: the HTML report (:mod:`stale.viz.html`) of whatever a folder holds.

Recognised folders (first match wins):

* a ``stale detect`` output folder (``detect.json``): the detections in the source videos;
* a ``stale demo`` folder (``report/metrics.json``; the ``report/`` folder itself works too):
  mAP by tIoU, per-class AP, precision-recall curves and the leakage control of every method,
  the training curves and the test videos the demo drew;
* an experiment folder (``results.json``, written by ``stale experiment``): every cell, the
  mean +- std per variant, per-class AP, the leakage controls, precision-recall curves of the
  cells whose predictions exist, failed cells with their errors;
* a run folder (``config.yaml`` / ``metrics.jsonl`` / ``best.pt`` / ``predictions.json``): its
  evaluation when it holds ``predictions.json`` + ``ground_truth.json`` (plus
  ``predictions_control.json`` for the leakage control), its training curves, and otherwise a
  note that no predictions exist and how to make them.

Whatever part of a folder cannot be read becomes a highlighted note in the page instead of an
error, so a half-finished experiment still renders what is there.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stale.core.errors import StaleError
from stale.core.logs import get_logger
from stale.viz.html import (Report, Section, VideoView, evaluation_sections, facts, image, p,
                            percent, relative_src, table, warn)

log = get_logger("report")

MAX_VIDEOS = 6   # videos shown in evaluated reports (the most varied test videos)


@dataclass
class BuiltReport:
    """A report ready to write: the page model, its default path, the kind of folder, and the
    source video files it plays (for ``--serve``)."""

    report: Report
    default_out: Path
    kind: str
    videos: list[Path] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------- helpers

def _read(path: Path, notes: list[str]) -> Any:
    from stale.core.io import read_json

    try:
        return read_json(path)
    except StaleError as exc:
        notes.append(str(exc))
        return None


def _subset_of(gt: dict) -> str:
    counts = Counter(str(v.get("subset", "")) for v in (gt.get("database") or {}).values() if isinstance(v, dict))
    return counts.most_common(1)[0][0] if counts else "validation"


def _results(payload: Any) -> dict:
    if isinstance(payload, dict) and isinstance(payload.get("results"), dict):
        return payload["results"]
    return {}


def _gt_videos(gt: dict) -> dict[str, dict]:
    return {k: v for k, v in (gt.get("database") or {}).items() if isinstance(v, dict)}


def _pick_videos(gt: dict, limit: int = MAX_VIDEOS, prefer: list[str] | None = None) -> list[str]:
    """``prefer`` first (those present), then the most varied annotated videos (distinct classes,
    then about six instances), as the demo picks its timelines."""
    db = _gt_videos(gt)
    chosen = [v for v in (prefer or []) if v in db][:limit]
    rest = sorted((v for v in db if v not in chosen and db[v].get("annotations")),
                  key=lambda v: (-len({a.get("label") for a in db[v]["annotations"]}),
                                 abs(len(db[v]["annotations"]) - 6), v))
    return chosen + rest[: max(0, limit - len(chosen))]


def _video_views(gt: dict, predictions: dict[str, dict], ids: list[str], classes: list[str] | None) -> list[VideoView]:
    db = _gt_videos(gt)
    views = []
    for vid in ids:
        entry = db.get(vid, {})
        anns = [a for a in entry.get("annotations") or [] if isinstance(a, dict) and "segment" in a]
        dets = {m: list(r.get(vid, [])) for m, r in predictions.items()}
        ends = [float(a["segment"][1]) for a in anns] + [float(d["segment"][1]) for ds in dets.values() for d in ds]
        duration = entry.get("duration")
        duration = float(duration) if isinstance(duration, (int, float)) and duration > 0 else max(ends + [1.0])
        views.append(VideoView(vid, duration, dets, [{"segment": a["segment"], "label": a["label"]} for a in anns],
                               classes=classes, info=f"{len(anns)} ground-truth instances, {duration:.1f} s"))
    return views


def _evaluate(gt: dict, predictions: dict[str, dict], tiou, notes: list[str]):
    """Metrics and precision-recall curves of each method's results (None where it fails)."""
    from stale.evaluation import evaluate_detection
    from stale.evaluation.curves import precision_recall

    subset = _subset_of(gt)
    metrics, curves = {}, {}
    for name, res in predictions.items():
        try:
            metrics[name] = evaluate_detection(gt, {"results": res}, subset, tiou).to_json()
            curves[name] = precision_recall(gt, {"results": res}, subset, tiou)
        except StaleError as exc:
            notes.append(f"{name}: cannot be evaluated ({exc})")
    return metrics, curves


def _notes_section(notes: list[str]) -> list[Section]:
    return [Section("Problems reading this folder", [warn(n) for n in notes], id="problems")] if notes else []


def _training_curves(run_dirs: dict[str, Path], notes: list[str], workdir: Path) -> Section | None:
    from stale.viz.plots import plot_training_curves, read_metrics

    hists = {}
    for name, d in run_dirs.items():
        f = d / "metrics.jsonl"
        if not f.is_file():
            continue
        try:
            hist = [r for r in read_metrics(f) if isinstance(r, dict) and "epoch" in r and "train_total" in r]
        except (OSError, ValueError) as exc:
            notes.append(f"{f}: unreadable ({exc})")
            continue
        if hist:
            hists[name] = hist
    if not hists:
        return None
    png = plot_training_curves(hists, workdir / "training_curves.png")
    rows = []
    for name, hist in hists.items():
        last = hist[-1]
        best = min(hist, key=lambda r: r.get("val_total", r["train_total"]))
        rows.append([name, len(hist), f"{last['train_total']:.4f}",
                     f"{last['val_total']:.4f}" if "val_total" in last else "", best["epoch"]])
    return Section("Training", [image(png, "total loss per epoch: training (solid) and held-out training "
                                           "videos of the seen classes (dashed)"),
                                table(["run", "epochs", "last train loss", "last held-out loss", "best epoch"], rows)],
                   id="training")


# ----------------------------------------------------------------------------- folder kinds

def _detect_report(folder: Path, page: Path) -> BuiltReport:
    from stale.runs.detect import MARKER, RESULTS

    notes: list[str] = []
    rec = _read(folder / MARKER, notes) or {}
    payload = _read(folder / RESULTS, notes) if (folder / RESULTS).is_file() else None
    results = _results(payload)
    classes = list(rec.get("classes") or (payload or {}).get("classes") or [])
    videos, views = [], []
    for vid, info in (rec.get("videos") or {}).items():
        src_path = Path(info.get("source", ""))
        src = relative_src(src_path, page) if src_path.is_file() else None
        if src is None:
            notes.append(f"video {vid}: source file {src_path} not found; the report shows no player for it")
        else:
            videos.append(src_path)
        t = (rec.get("timings_s") or {}).get(vid, {})
        items = results.get(vid, [])
        info_line = (f"{info.get('duration', 0):.1f} s, {info.get('width')}x{info.get('height')} at "
                     f"{info.get('fps', 0):.2f} fps, {info.get('num_features')} snippets, {len(items)} detections; "
                     f"decode {t.get('decode', 0):.2f} s, features {t.get('features', 0):.2f} s, detection "
                     f"{t.get('detection', 0):.3f} s{' (features cached)' if t.get('cached_features') else ''}")
        views.append(VideoView(vid, float(info.get("duration") or 1.0), {"detections": items}, [], src, classes,
                               info_line))
    blocks = []
    if rec.get("random_weights"):
        blocks.append(warn(f"The CLIP weights are RANDOM ({rec.get('image_encoder')}): these detections carry "
                           f"no meaning; this output exists for tests and benchmarks only."))
    blocks.append(facts([("classes", ", ".join(classes)), ("detector", rec.get("detector_description", "")),
                         ("image encoder", rec.get("image_encoder", "")),
                         ("videos", f"{len(views)} ({len(rec.get('skipped') or {})} unreadable, skipped)"),
                         ("outputs", "detections.json, detections.csv, subtitles/*.srt, timelines/*.png"),
                         ("total time", f"{rec.get('total_s', 0):.1f} s")]))
    for path, reason in (rec.get("skipped") or {}).items():
        blocks.append(warn(f"skipped {path}: {reason}"))
    rep = Report("stale detect", [Section("Run", blocks, id="run"), *_notes_section(notes)], views,
                 "Videos", subtitle=f"{len(views)} videos, {len(classes)} classes: {', '.join(classes)}")
    return BuiltReport(rep, folder / "report.html", "detect", videos, [folder / MARKER])


def _demo_report(report_dir: Path, page: Path, workdir: Path) -> BuiltReport:
    notes: list[str] = []
    metrics = _read(report_dir / "metrics.json", notes) or {}
    gt = _read(report_dir / "ground_truth.json", notes) if (report_dir / "ground_truth.json").is_file() else None
    predictions, controls = {}, []
    for f in sorted(report_dir.glob("predictions_*.json")):
        payload = _read(f, notes)
        if payload is None:
            continue
        name = payload.get("method") if isinstance(payload.get("method"), str) else f.stem[len("predictions_"):]
        predictions[name] = _results(payload)
        if isinstance(payload.get("control_of"), str):
            controls.append((payload["control_of"], name))
    method_metrics = dict(metrics.get("methods") or {})
    # the demo's own method order (metrics.json), then any other predictions file
    predictions = {**{m: predictions[m] for m in method_metrics if m in predictions}, **predictions}
    if not controls:   # older demo folders: the control is the method named so
        ctrl = [m for m in method_metrics if m.startswith("control")]
        base = [m for m in method_metrics if not m.startswith("control")]
        controls = [(base[0], c) for c in ctrl] if base else []
    curves = {}
    if gt is not None and predictions:
        tiou = next((m.get("tiou") for m in method_metrics.values() if m.get("tiou")), "thumos14")
        computed, curves = _evaluate(gt, {n: r for n, r in predictions.items()}, tiou, notes)
        for n, m in computed.items():
            method_metrics.setdefault(n, m)
    protocol = metrics.get("protocol") or {}
    head = []
    if metrics.get("data"):
        head.append(warn(str(metrics["data"])))
    head.append(facts([("setting", protocol.get("setting", "")), ("split", protocol.get("split", "")),
                       ("seen classes", ", ".join(protocol.get("seen") or [])),
                       ("unseen classes (known only by name)", ", ".join(protocol.get("unseen") or [])),
                       ("test videos", protocol.get("test_videos", "")),
                       ("test instances", protocol.get("test_instances", "")),
                       ("timings (s)", ", ".join(f"{k} {v}" for k, v in (metrics.get("timings_s") or {}).items()))]))
    sections = [Section("Demo", head, id="demo")]
    if method_metrics:
        sections += evaluation_sections(method_metrics, controls, curves, workdir=workdir)
    if (report_dir / "training_curve.png").is_file():
        sections.append(Section("Training", [image(report_dir / "training_curve.png",
                                                   "total loss per epoch, training and held-out training videos")],
                                id="training"))
    views = []
    if gt is not None:
        drawn = sorted(q.stem for q in (report_dir / "timelines").glob("*.png")) if (report_dir / "timelines").is_dir() else []
        views = _video_views(gt, predictions, _pick_videos(gt, prefer=drawn), protocol.get("unseen"))
    sections += _notes_section(notes)
    rep = Report("stale demo", sections, views, "Test videos (no source video: synthetic features)",
                 subtitle="zero-shot detection of unseen classes on the semi-synthetic benchmark")
    return BuiltReport(rep, report_dir / "index.html", "demo", [], [report_dir / "metrics.json"])


def _cell(rec: dict) -> dict:
    c = rec.get("cell") if isinstance(rec.get("cell"), dict) else rec
    return {k: c.get(k) for k in ("variant", "dataset", "setting", "split", "seed")}


def _experiment_report(folder: Path, page: Path, workdir: Path) -> BuiltReport:
    notes: list[str] = []
    res = _read(folder / "results.json", notes) or {}
    cells = [c for c in res.get("cells") or [] if isinstance(c, dict)]
    rows, tious = [], []
    for rec in cells:
        for t in ((rec.get("metrics") or {}).get("tiou") or []):
            if t not in tious:
                tious.append(t)
    for rec in cells:
        c, m = _cell(rec), rec.get("metrics") or {}
        by_t = dict(zip(m.get("tiou") or [], m.get("mAP") or []))
        rows.append([c["variant"], c["dataset"], c["setting"], c["split"], c["seed"], rec.get("status", ""),
                     *[percent(by_t.get(t)) for t in tious], percent(m.get("average_mAP")),
                     rec.get("seconds", "")])
    sections = []
    spec = res.get("spec") if isinstance(res.get("spec"), dict) else {}
    head = [facts([("spec", spec.get("name", "") if spec else str(res.get("spec", ""))),
                   ("title", spec.get("title", "") if spec else ""),
                   ("cells", f"{res.get('cells_done', sum(r.get('status') == 'done' for r in cells))} done of "
                             f"{res.get('cells_expected', len(cells))}"),
                   ("updated", res.get("updated", ""))])]
    if (folder / "results.png").is_file():
        head.append(image(folder / "results.png", "average mAP of every cell, per variant"))
    sections.append(Section("Experiment", head, id="experiment"))
    # summary: mean +- std per variant x dataset x setting
    srows, groups = [], {}
    summary = res.get("summary") if isinstance(res.get("summary"), dict) else {}
    for variant, by_ds in summary.items():
        for ds, by_set in (by_ds or {}).items():
            for setting, node in (by_set or {}).items():
                if not isinstance(node, dict):
                    continue
                mean, std = node.get("average_mean"), node.get("average_std")
                srows.append([variant, ds, setting, node.get("n", len(node.get("cells") or [])),
                              percent(mean), percent(std)])
                groups.setdefault((ds, setting), {})[variant] = {"average_mAP": mean, "tiou": node.get("tiou"),
                                                                 "mAP": node.get("mean")}
    if srows:
        sections.append(Section("Summary", [table(["variant", "dataset", "setting", "cells", "avg mAP mean (%)",
                                                   "std (%)"], srows, "mean and standard deviation over splits and seeds")],
                                id="summary"))
    sections.append(Section("Cells", [table(["variant", "dataset", "setting", "split", "seed", "status",
                                             *[f"mAP@{float(t):.2f}" for t in tious], "avg mAP", "seconds"], rows)]
                            if rows else [p("no cells have been recorded yet")], id="cells"))
    # leakage controls: variants whose cells reuse another variant's runs under permuted names
    pairs = sorted({(rec.get("reuses"), _cell(rec)["variant"]) for rec in cells
                    if rec.get("permuted_names") and rec.get("reuses")})
    for (ds, setting), methods in groups.items():
        ctl = [(a, b) for a, b in pairs if a in methods and b in methods]
        if ctl:
            from stale.viz.html import control_rows

            sections.append(Section(f"Leakage control ({ds}, {setting})", [
                p("Each control asks the runs of its variant for the unseen classes under permuted names; it "
                  "must score near zero if what a model knows of an unseen class comes only through its name."),
                table(["method", "control", "method avg mAP (%)", "control avg mAP (%)", "control / method"],
                      control_rows(methods, ctl))], id=f"control-{ds}-{setting}"))
    # per-class AP (mean over done cells) and precision-recall of the first cell of each variant
    per_variant: dict[str, dict[str, list[float]]] = {}
    for rec in cells:
        if rec.get("status") != "done":
            continue
        for cls, aps in ((rec.get("metrics") or {}).get("per_class_ap") or {}).items():
            vals = [float(a) for a in (aps if isinstance(aps, list) else [aps]) if isinstance(a, (int, float))]
            if vals:
                per_variant.setdefault(_cell(rec)["variant"], {}).setdefault(cls, []).append(sum(vals) / len(vals))
    methods = {v: {"per_class_ap": {c: [sum(x) / len(x)] for c, x in d.items()}} for v, d in per_variant.items()}
    curves, views = {}, []
    first_done: dict[str, dict] = {}   # variant -> its first finished cell's record
    for rec in cells:
        if rec.get("status") == "done" and rec.get("run_dir"):
            first_done.setdefault(_cell(rec)["variant"], rec)
    gt0, preds0 = None, {}
    for variant, rec in first_done.items():
        d = Path(str(rec["run_dir"]))
        d = d if d.is_absolute() else folder / d
        if not ((d / "predictions.json").is_file() and (d / "ground_truth.json").is_file()):
            continue
        gt, pred = _read(d / "ground_truth.json", notes), _read(d / "predictions.json", notes)
        if gt is None or pred is None:
            continue
        tiou = (rec.get("metrics") or {}).get("tiou") or "thumos14"
        _, cv = _evaluate(gt, {variant: _results(pred)}, tiou, notes)
        curves.update(cv)
        if gt0 is None:
            gt0 = gt
        if gt == gt0:
            preds0[variant] = _results(pred)
    if methods or curves:
        from stale.viz.plots import plot_class_ap, plot_pr_curves

        blocks = []
        means = {v: {c: x[0] for c, x in m["per_class_ap"].items()} for v, m in methods.items()}
        if means:
            blocks.append(image(plot_class_ap(means, workdir / "class_ap.png", "AP per class (mean over cells "
                                              "and tIoU thresholds)"), "per-class AP (%), mean over the done cells"))
        if curves:
            tiou = min(next(iter(curves.values())).tiou, key=lambda t: abs(t - 0.5))
            blocks.append(image(plot_pr_curves({n: c.at(tiou) for n, c in curves.items()}, workdir / "pr.png", tiou),
                                "precision-recall of each variant's first finished cell"))
        sections.append(Section("Per-class results", blocks, id="per-class"))
    failed = [r for r in cells if r.get("status") not in ("done", None)]
    if failed:
        sections.append(Section("Failed cells", [table(["cell", "error"], [[r.get("key", ""), r.get("error", "")]
                                                                          for r in failed])], id="failed"))
    if gt0 is not None and preds0:
        views = _video_views(gt0, preds0, _pick_videos(gt0), None)
    sections += _notes_section(notes)
    rep = Report("stale experiment", sections, views, "Test videos of the first cells",
                 subtitle=str(folder))
    return BuiltReport(rep, folder / "report.html", "experiment", [], [folder / "results.json"])


def _run_report(folder: Path, page: Path, workdir: Path) -> BuiltReport:
    notes: list[str] = []
    sections = []
    info = []
    cfg_path = folder / "config.yaml"
    if cfg_path.is_file():
        try:
            import yaml

            cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except (OSError, ValueError) as exc:   # yaml errors are ValueErrors' cousins; keep it simple
            notes.append(f"{cfg_path}: unreadable ({exc})")
            cfg = {}
        except Exception as exc:  # noqa: BLE001 - a YAML syntax error of any kind
            notes.append(f"{cfg_path}: unreadable ({type(exc).__name__})")
            cfg = {}
        info += [("method", cfg.get("method", "stale")), ("dataset", (cfg.get("data") or {}).get("dataset", "")),
                 ("text tower", f"{(cfg.get('text') or {}).get('arch', '')} / {(cfg.get('text') or {}).get('weights')}")]
    classes = _read(folder / "classes.json", notes) if (folder / "classes.json").is_file() else None
    if isinstance(classes, dict):
        info += [("seen classes", ", ".join(classes.get("seen") or [])),
                 ("test classes", ", ".join((classes.get("test") or classes.get("unseen") or [])))]
    cell = _read(folder / "cell.json", notes) if (folder / "cell.json").is_file() else None
    if isinstance(cell, dict):
        c = _cell(cell)
        info.append(("experiment cell", ", ".join(f"{k} {v}" for k, v in c.items() if v is not None)))
        if cell.get("permuted_names"):
            info.append(("note", "this cell is a leakage control: unseen classes asked for under permuted names"))
    sel = _read(folder / "selection.json", notes) if (folder / "selection.json").is_file() else None
    if isinstance(sel, dict) and "epoch" in sel:
        info.append(("selected epoch", sel["epoch"]))
    sections.append(Section("Run", [facts(info)] if info else [p(str(folder))], id="run"))
    train = _training_curves({folder.name: folder}, notes, workdir)
    if train is not None:
        sections.append(train)
    views = []
    pred_f, gt_f = folder / "predictions.json", folder / "ground_truth.json"
    if pred_f.is_file() and gt_f.is_file():
        gt, pred = _read(gt_f, notes), _read(pred_f, notes)
        if gt is not None and pred is not None:
            predictions = {"predictions": _results(pred)}
            controls = []
            ctrl_f = folder / "predictions_control.json"
            if ctrl_f.is_file():
                ctrl = _read(ctrl_f, notes)
                if ctrl is not None:
                    predictions["control: permuted names"] = _results(ctrl)
                    controls = [("predictions", "control: permuted names")]
            stored = _read(folder / "metrics.json", notes) if (folder / "metrics.json").is_file() else None
            tiou = (stored or {}).get("tiou") or "activitynet"
            metrics, curves = _evaluate(gt, predictions, tiou, notes)
            if metrics:
                sections += evaluation_sections(metrics, controls, curves, workdir=workdir)
            views = _video_views(gt, predictions, _pick_videos(gt), None)
    else:
        missing = [f.name for f in (pred_f, gt_f) if not f.is_file()]
        sections.append(Section("Predictions", [warn(
            f"No predictions exist in this run folder ({', '.join(missing)} missing), so there is nothing to "
            f"evaluate. Make them with: stale predict {folder} --out {pred_f} --gt-out {gt_f}")], id="predictions"))
    sections += _notes_section(notes)
    rep = Report(f"stale run: {folder.name}", sections, views, "Test videos", subtitle=str(folder))
    return BuiltReport(rep, folder / "report.html", "run", [], [])


def _is_demo_report(folder: Path) -> bool:
    """A demo's ``report/`` folder itself: its metrics.json lists methods (a run's does not)."""
    from stale.core.io import read_json

    if not (folder / "metrics.json").is_file():
        return False
    try:
        data = read_json(folder / "metrics.json")
    except StaleError:
        return False
    return isinstance(data, dict) and isinstance(data.get("methods"), dict)


def folder_kind(path: str | os.PathLike) -> tuple[str, Path]:
    """``(kind, default page path)`` of a folder (module docstring), or a StaleError saying what
    was expected. Reads at most one small JSON file."""
    from stale.core.outputs import RUN_ARTEFACTS

    folder = Path(path)
    if not folder.exists():
        raise StaleError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise StaleError(f"{folder}: not a folder (give a demo, detect, run or experiment folder)")
    if (folder / "detect.json").is_file():
        return "detect", folder / "report.html"
    if (folder / "report" / "metrics.json").is_file():
        return "demo", folder / "report" / "index.html"
    if _is_demo_report(folder):
        return "demo-report", folder / "index.html"
    if (folder / "results.json").is_file():
        return "experiment", folder / "report.html"
    if any((folder / n).exists() for n in (*RUN_ARTEFACTS, "predictions.json")):
        return "run", folder / "report.html"
    if (folder / "experiment.json").is_file():
        raise StaleError(f"{folder}: an experiment folder without results.json yet; run "
                         f"'stale experiment summarize {folder}' first")
    raise StaleError(f"{folder}: not a stale folder (expected detect.json, report/metrics.json, "
                     f"results.json, or a run's config.yaml / metrics.jsonl / predictions.json)")


def build_report(path: str | os.PathLike, page: str | os.PathLike | None = None,
                 workdir: str | os.PathLike | None = None) -> BuiltReport:
    """The report of the folder ``path`` (module docstring). ``page``: where the page will be
    written (video paths are made relative to it; default: the folder kind's default)."""
    import tempfile

    folder = Path(path)
    kind, default = folder_kind(folder)
    target = Path(page) if page is not None else default
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        if kind == "detect":
            built = _detect_report(folder, target)
        elif kind == "demo":
            built = _demo_report(folder / "report", target, work)
        elif kind == "demo-report":
            built = _demo_report(folder, target, work)
        elif kind == "experiment":
            built = _experiment_report(folder, target, work)
        else:
            built = _run_report(folder, target, work)
    built.default_out = default
    return built


def write_folder_report(path: str | os.PathLike, out: str | os.PathLike | None = None,
                        overwrite: bool = False) -> BuiltReport:
    """Build and write the report of ``path``; returns it (``default_out`` = the written path).

    An existing file at the output is replaced only when it is a page stale wrote (its generator
    tag) or with ``overwrite``."""
    from stale.core.outputs import Output, check_outputs
    from stale.viz.html import is_stale_report, write_report

    _, default = folder_kind(path)
    target = Path(out) if out is not None else default
    ours = target.is_file() and is_stale_report(target)
    # the output is checked before the (possibly slow) evaluation work
    check_outputs([Output(target, "file", "--out", exists_ok=ours)], overwrite=overwrite)
    built = build_report(path, page=target)
    check_outputs([Output(target, "file", "--out", exists_ok=True)], inputs=built.inputs)
    write_report(built.report, target)
    built.default_out = target
    return built
