"""Parts shared by the pages of the kinds of output folder (:mod:`stale.reporting.folder_pages`):
reading a folder's JSON files (an unreadable one becomes a note on the page), choosing and
drawing test videos, evaluating stored predictions, the training-curves section."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stale.core.errors import StaleError
from stale.reporting.page import Report, Section, VideoView, image, table, warn

MAX_VIDEOS = 6   # videos shown in evaluated reports (the most varied test videos)


@dataclass
@dataclass
class BuiltReport:
    """A report ready to write: the page model, its default path, the kind of folder, and the
    source video files it plays (for ``--serve``)."""

    report: Report
    default_out: Path
    kind: str
    videos: list[Path] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)



def read_or_note(path: Path, notes: list[str]) -> Any:
    from stale.core.io import read_json

    try:
        return read_json(path)
    except StaleError as exc:
        notes.append(str(exc))
        return None


def subset_of(gt: dict) -> str:
    counts = Counter(str(v.get("subset", "")) for v in (gt.get("database") or {}).values() if isinstance(v, dict))
    return counts.most_common(1)[0][0] if counts else "validation"


def results_of(payload: Any) -> dict:
    if isinstance(payload, dict) and isinstance(payload.get("results"), dict):
        return payload["results"]
    return {}


def gt_videos(gt: dict) -> dict[str, dict]:
    return {k: v for k, v in (gt.get("database") or {}).items() if isinstance(v, dict)}


def pick_videos(gt: dict, limit: int = MAX_VIDEOS, prefer: list[str] | None = None) -> list[str]:
    """``prefer`` first (those present), then the most varied annotated videos (distinct classes,
    then about six instances), as the demo picks its timelines."""
    db = gt_videos(gt)
    chosen = [v for v in (prefer or []) if v in db][:limit]
    rest = sorted((v for v in db if v not in chosen and db[v].get("annotations")),
                  key=lambda v: (-len({a.get("label") for a in db[v]["annotations"]}),
                                 abs(len(db[v]["annotations"]) - 6), v))
    return chosen + rest[: max(0, limit - len(chosen))]


def video_views(gt: dict, predictions: dict[str, dict], ids: list[str], classes: list[str] | None) -> list[VideoView]:
    db = gt_videos(gt)
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


def evaluate_methods(gt: dict, predictions: dict[str, dict], tiou, notes: list[str]):
    """Metrics and precision-recall curves of each method's results (None where it fails)."""
    from stale.evaluation import evaluate_detection
    from stale.evaluation.curves import precision_recall

    subset = subset_of(gt)
    metrics, curves = {}, {}
    for name, res in predictions.items():
        try:
            metrics[name] = evaluate_detection(gt, {"results": res}, subset, tiou).to_json()
            curves[name] = precision_recall(gt, {"results": res}, subset, tiou)
        except StaleError as exc:
            notes.append(f"{name}: cannot be evaluated ({exc})")
    return metrics, curves


def notes_section(notes: list[str]) -> list[Section]:
    return [Section("Problems reading this folder", [warn(n) for n in notes], id="problems")] if notes else []


def _number(x) -> bool:
    import math

    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _epoch_records(records: list) -> tuple[list[dict], list[int]]:
    """The records of a ``metrics.jsonl`` that can be drawn (numeric ``epoch`` and
    ``train_total``; a non-numeric ``val_total`` is dropped, and kept for no record unless every
    record has one) and the 1-based line numbers of those that cannot."""
    good, bad = [], []
    for i, r in enumerate(records, 1):
        if isinstance(r, dict) and _number(r.get("epoch")) and _number(r.get("train_total")):
            good.append(r)
        else:
            bad.append(i)
    with_val = all(_number(r.get("val_total")) for r in good)
    return [{k: v for k, v in r.items() if with_val or k != "val_total"} for r in good], bad


def training_curves_section(run_dirs: dict[str, Path], notes: list[str], workdir: Path) -> Section | None:
    from stale.viz.plots import plot_training_curves, read_metrics

    hists = {}
    for name, d in run_dirs.items():
        f = d / "metrics.jsonl"
        if not f.is_file():
            continue
        try:
            records = read_metrics(f)
        except (OSError, ValueError) as exc:
            notes.append(f"{f}: unreadable ({exc})")
            continue
        hist, bad = _epoch_records(records)
        if bad:
            notes.append(f"{f}: {len(bad)} record(s) without a numeric epoch and train_total skipped "
                         f"(first: line {bad[0]})")
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

