"""The report page of each kind of output folder: a ``stale detect`` folder, a demo, an
experiment, a run (see :mod:`stale.reporting.folders` for how a folder's kind is recognised)."""

from __future__ import annotations

from pathlib import Path

from stale.core.output_checks import DETECT_MARKER, DETECT_RESULTS
from stale.reporting.folder_parts import (BuiltReport, evaluate_methods, notes_section, pick_videos, read_or_note,
                                       results_of, training_curves_section, video_views)
from stale.reporting.page import Report, Section, VideoView, facts, image, paragraph, relative_src, table, warn
from stale.reporting.summaries import control_rows, evaluation_sections, percent


def detect_page(folder: Path, page: Path) -> BuiltReport:
    notes: list[str] = []
    rec = read_or_note(folder / DETECT_MARKER, notes) or {}
    payload = read_or_note(folder / DETECT_RESULTS, notes) if (folder / DETECT_RESULTS).is_file() else None
    results = results_of(payload)
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
    rep = Report("stale detect", [Section("Run", blocks, id="run"), *notes_section(notes)], views,
                 "Videos", subtitle=f"{len(views)} videos, {len(classes)} classes: {', '.join(classes)}")
    return BuiltReport(rep, folder / "report.html", "detect", videos, [folder / DETECT_MARKER])


def demo_page(report_dir: Path, page: Path, workdir: Path) -> BuiltReport:
    notes: list[str] = []
    metrics = read_or_note(report_dir / "metrics.json", notes) or {}
    gt = read_or_note(report_dir / "ground_truth.json", notes) if (report_dir / "ground_truth.json").is_file() else None
    predictions, controls = {}, []
    for f in sorted(report_dir.glob("predictions_*.json")):
        payload = read_or_note(f, notes)
        if payload is None:
            continue
        name = payload.get("method") if isinstance(payload.get("method"), str) else f.stem[len("predictions_"):]
        predictions[name] = results_of(payload)
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
        computed, curves = evaluate_methods(gt, {n: r for n, r in predictions.items()}, tiou, notes)
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
        views = video_views(gt, predictions, pick_videos(gt, prefer=drawn), protocol.get("unseen"))
    sections += notes_section(notes)
    rep = Report("stale demo", sections, views, "Test videos (no source video: synthetic features)",
                 subtitle="zero-shot detection of unseen classes on the semi-synthetic benchmark")
    return BuiltReport(rep, report_dir / "index.html", "demo", [], [report_dir / "metrics.json"])


def _cell(rec: dict) -> dict:
    c = rec.get("cell") if isinstance(rec.get("cell"), dict) else rec
    return {k: c.get(k) for k in ("variant", "dataset", "setting", "split", "seed")}


def experiment_page(folder: Path, page: Path, workdir: Path) -> BuiltReport:
    notes: list[str] = []
    res = read_or_note(folder / "results.json", notes) or {}
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
                            if rows else [paragraph("no cells have been recorded yet")], id="cells"))
    # leakage controls: variants whose cells reuse another variant's runs under permuted names
    pairs = sorted({(rec.get("reuses"), _cell(rec)["variant"]) for rec in cells
                    if rec.get("permuted_names") and rec.get("reuses")})
    for (ds, setting), methods in groups.items():
        ctl = [(a, b) for a, b in pairs if a in methods and b in methods]
        if ctl:
            sections.append(Section(f"Leakage control ({ds}, {setting})", [
                paragraph("Each control asks the runs of its variant for the unseen classes under permuted names; it "
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
        d = _cell_folder(folder, Path(str(rec["run_dir"])))
        if d is None:
            notes.append(f"cell {rec.get('key', variant)}: no predictions.json + ground_truth.json in its folder "
                         f"{rec['run_dir']} (nor under {folder / 'cells'}); its precision-recall curves and test "
                         f"videos are left out")
            continue
        gt, pred = read_or_note(d / "ground_truth.json", notes), read_or_note(d / "predictions.json", notes)
        if gt is None or pred is None:
            continue
        tiou = (rec.get("metrics") or {}).get("tiou") or "thumos14"
        _, cv = evaluate_methods(gt, {variant: results_of(pred)}, tiou, notes)
        curves.update(cv)
        if gt0 is None:
            gt0 = gt
        if gt == gt0:
            preds0[variant] = results_of(pred)
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
        views = video_views(gt0, preds0, pick_videos(gt0), None)
    sections += notes_section(notes)
    rep = Report("stale experiment", sections, views, "Test videos of the first cells",
                 subtitle=str(folder))
    return BuiltReport(rep, folder / "report.html", "experiment", [], [folder / "results.json"])


def _cell_folder(folder: Path, recorded: Path) -> Path | None:
    """The folder of an experiment cell holding its predictions: as recorded (absolute, or
    relative to the experiment folder), else the same ``cells/...`` path under this experiment
    folder -- a folder that was moved, or written with a relative ``--out`` from another
    working directory. None when neither holds them."""
    tries = [recorded if recorded.is_absolute() else folder / recorded]
    if "cells" in recorded.parts:
        i = len(recorded.parts) - 1 - recorded.parts[::-1].index("cells")
        tries.append(folder.joinpath(*recorded.parts[i:]))
    for d in tries:
        if (d / "predictions.json").is_file() and (d / "ground_truth.json").is_file():
            return d
    return None


def run_page(folder: Path, page: Path, workdir: Path) -> BuiltReport:
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
    classes = read_or_note(folder / "classes.json", notes) if (folder / "classes.json").is_file() else None
    if isinstance(classes, dict):
        info += [("seen classes", ", ".join(classes.get("seen") or [])),
                 ("test classes", ", ".join((classes.get("test") or classes.get("unseen") or [])))]
    cell = read_or_note(folder / "cell.json", notes) if (folder / "cell.json").is_file() else None
    if isinstance(cell, dict):
        c = _cell(cell)
        info.append(("experiment cell", ", ".join(f"{k} {v}" for k, v in c.items() if v is not None)))
        if cell.get("permuted_names"):
            info.append(("note", "this cell is a leakage control: unseen classes asked for under permuted names"))
    sel = read_or_note(folder / "selection.json", notes) if (folder / "selection.json").is_file() else None
    if isinstance(sel, dict) and "epoch" in sel:
        info.append(("selected epoch", sel["epoch"]))
    sections.append(Section("Run", [facts(info)] if info else [paragraph(str(folder))], id="run"))
    train = training_curves_section({folder.name: folder}, notes, workdir)
    if train is not None:
        sections.append(train)
    views = []
    pred_f, gt_f = folder / "predictions.json", folder / "ground_truth.json"
    if pred_f.is_file() and gt_f.is_file():
        gt, pred = read_or_note(gt_f, notes), read_or_note(pred_f, notes)
        if gt is not None and pred is not None:
            predictions = {"predictions": results_of(pred)}
            controls = []
            ctrl_f = folder / "predictions_control.json"
            if ctrl_f.is_file():
                ctrl = read_or_note(ctrl_f, notes)
                if ctrl is not None:
                    predictions["control: permuted names"] = results_of(ctrl)
                    controls = [("predictions", "control: permuted names")]
            stored = read_or_note(folder / "metrics.json", notes) if (folder / "metrics.json").is_file() else None
            tiou = (stored or {}).get("tiou") or "activitynet"
            metrics, curves = evaluate_methods(gt, predictions, tiou, notes)
            if metrics:
                sections += evaluation_sections(metrics, controls, curves, workdir=workdir)
            views = video_views(gt, predictions, pick_videos(gt), None)
    else:
        missing = [f.name for f in (pred_f, gt_f) if not f.is_file()]
        sections.append(Section("Predictions", [warn(
            f"No predictions exist in this run folder ({', '.join(missing)} missing), so there is nothing to "
            f"evaluate. Make them with: stale predict {folder} --out {pred_f} --gt-out {gt_f}")], id="predictions"))
    sections += notes_section(notes)
    rep = Report(f"stale run: {folder.name}", sections, views, "Test videos", subtitle=str(folder))
    return BuiltReport(rep, folder / "report.html", "run", [], [])
