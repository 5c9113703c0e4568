"""The results of an experiment folder: ``results.json`` (every cell, mean +- std per variant,
the paired differences from the reference), ``results.md`` (tables shaped like the paper's) and
``results.png`` (per-split average mAP) and ``curves.png`` (training curves, mean ± std per row)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Sequence

from stale.core.errors import StaleError
from stale.core.io import atomic_write_json, atomic_write_text, read_json
from stale.experiments.cells import Cell, cells_of
from stale.experiments.spec import SPEC_FORMAT, Spec, load_spec, split_role

#: the line results.md carries about the splits its numbers come from
ROLE_NOTE = {
    "dev": "Splits: **dev** (0-2) -- for choosing defaults and switches; report held-out splits (3-9).",
    "held-out": "Splits: **held-out** (3-9) -- no choice was made on them.",
    "mixed": "Splits: **dev and held-out mixed** -- neither a choice nor a report should rest on these rows.",
}


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def _cell_record(f: Path) -> dict:
    """A cell's ``cell.json``; a record that cannot be tabulated (unreadable, no cell, done
    without usable metrics) becomes a failed cell whose error names the file."""
    try:
        rec = read_json(f)
    except StaleError as exc:
        return {"key": str(f.parent), "status": "failed", "error": str(exc)}
    if not isinstance(rec, dict):
        return {"key": str(f.parent), "status": "failed", "error": f"{f}: not a cell record"}
    cell, m = rec.get("cell"), rec.get("metrics")
    keys = ("variant", "dataset", "setting", "split", "seed")
    problem = None
    if not (isinstance(cell, dict) and all(k in cell for k in keys)):
        problem = f"{f}: no cell ({', '.join(keys)})"
    elif rec.get("status") == "done" and not (
            isinstance(m, dict) and isinstance(m.get("mAP"), list) and m.get("tiou") is not None
            and all(isinstance(x, (int, float)) for x in [*m["mAP"], m.get("average_mAP")])):
        problem = f"{f}: marked done but without numeric metrics (tiou, mAP, average_mAP)"
    if problem:
        return {**rec, "key": rec.get("key", str(f.parent)), "status": "failed", "error": problem}
    return rec


def summarize(root: str | os.PathLike) -> dict:
    """Aggregate every cell of an experiment folder into results.json / results.md / results.png."""
    root = Path(root)
    marker = root / "experiment.json"
    if not marker.is_file():
        raise StaleError(f"{root}: not an experiment folder (no experiment.json)")
    meta = read_json(marker)
    if not isinstance(meta, dict) or not isinstance(meta.get("spec"), dict):
        raise StaleError(f"{marker}: not an experiment record (no 'spec' mapping)")
    spec = load_spec(meta["spec"])
    records = []
    for f in sorted((root / "cells").rglob("cell.json")) if (root / "cells").is_dir() else []:
        records.append(_cell_record(f))
    summary: dict = {}
    for r in records:
        if r.get("status") != "done":
            continue
        c = r["cell"]
        m = r["metrics"]
        node = summary.setdefault(c["variant"], {}).setdefault(c["dataset"], {}).setdefault(c["setting"], {
            "tiou": m["tiou"], "cells": []})
        node["cells"].append({"split": c["split"], "seed": c["seed"], "mAP": m["mAP"],
                              "average_mAP": m["average_mAP"], "selected_epoch": r.get("selected_epoch")})
    for variant in summary.values():
        for ds in variant.values():
            for node in ds.values():
                cols = list(zip(*[x["mAP"] for x in node["cells"]]))
                stats = [_mean_std(list(col)) for col in cols]
                node["mean"] = [s[0] for s in stats]
                node["std"] = [s[1] for s in stats]
                node["average_mean"], node["average_std"] = _mean_std([x["average_mAP"] for x in node["cells"]])
                node["n"] = len(node["cells"])
    if spec.reference is not None:
        _add_paired(summary, spec.reference)
    failed = [{"key": r.get("key"), "error": r.get("error")} for r in records if r.get("status") != "done"]
    expected = len(cells_of(spec))
    out = {"format": SPEC_FORMAT, "spec": meta["spec"], "cells": records, "summary": summary,
           "failed": failed, "cells_expected": expected, "cells_done": sum(r.get("status") == "done" for r in records),
           "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    out["curves"] = bool(summary) and plot_curves(spec, root, records, root / "curves.png") is not None
    atomic_write_json(root / "results.json", out)
    atomic_write_text(root / "results.md", format_results(spec, out))
    if summary:
        plot_results(spec, out, root / "results.png")
    return out


#: the per-epoch records drawn in ``curves.png``: the training loss, the loss on held-out
#: training videos (seen classes), and the classification part of the latter
CURVE_KEYS = ("train_total", "val_total", "val_cls")


def plot_curves(spec: Spec, root: Path, records: list[dict], path: Path) -> Path | None:
    """``curves.png``: the training curves (``metrics.jsonl``) of every finished cell that trained,
    per (dataset, setting) and variant, mean ± std over its splits and seeds; None (and no file)
    when no cell trained."""
    from stale.viz.plots import plot_curve_bands, read_metrics

    panels: dict[str, dict[str, list]] = {}
    for r in records:
        if r.get("status") != "done":
            continue
        c = r["cell"]
        metrics = Cell(**{k: c[k] for k in Cell.__dataclass_fields__}).folder(root) / "metrics.jsonl"
        if not metrics.is_file():
            continue   # a control (predicts with another cell's run) or an older record
        hist = read_metrics(metrics)
        if not any("train_total" in h for h in hist):
            continue   # fitted in closed form or not trained: no curve
        panels.setdefault(f"{c['dataset']}, {c['setting']}", {}).setdefault(c["variant"], []).append(hist)
    if not panels:
        return None
    order = [v.name for v in spec.variants]
    panels = {p: dict(sorted(g.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
              for p, g in panels.items()}
    return plot_curve_bands(panels, CURVE_KEYS, path, f"{spec.name}: training curves (mean ± std over cells)")


def _add_paired(summary: dict, reference: str) -> None:
    """``node["paired"]`` for every variant but ``reference``: the differences of average mAP
    from the reference in the (split, seed) cells both have, their mean, sample std and signs."""
    for name, variant in summary.items():
        if name == reference:
            continue
        for ds, settings in variant.items():
            for setting, node in settings.items():
                ref = summary.get(reference, {}).get(ds, {}).get(setting)
                if not ref:
                    continue
                ref_avg = {(c["split"], c["seed"]): c["average_mAP"] for c in ref["cells"]}
                own = sorted(((c["split"], c["seed"]), c["average_mAP"]) for c in node["cells"])
                pairs = [(k, avg - ref_avg[k]) for k, avg in own if k in ref_avg]
                if not pairs:
                    continue
                diffs = [d for _, d in pairs]
                mean, std = _mean_std(diffs)
                node["paired"] = {"reference": reference, "n": len(diffs), "mean": mean, "std": std,
                                  "up": sum(d > 0 for d in diffs), "down": sum(d < 0 for d in diffs),
                                  "cells": [{"split": k[0], "seed": k[1], "diff": d} for k, d in pairs]}


def _fmt_paired(node: dict | None) -> str:
    p = (node or {}).get("paired")
    if not p:
        return "–"
    spread = f" ± {100 * p['std']:.1f}" if p["n"] > 1 else ""
    return f"{100 * p['mean']:+.1f}{spread} ({p['up']}/{p['n']} up)"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _fmt(mean: float, std: float, n: int) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if n > 1 else f"{100 * mean:.1f}"


def format_results(spec: Spec, results: dict) -> str:
    """Markdown tables shaped like the paper's: per dataset, rows = variants, columns = tIoU +
    avg per setting (mean ± std over splits x seeds, in %), paper numbers beside where given."""
    lines = [f"# {spec.title or spec.name}", ""]
    if spec.notes:
        lines += [spec.notes.strip(), ""]
    lines.append(f"Cells done: {results['cells_done']} of {results['cells_expected']}; values are mAP (%) "
                 f"as mean ± sample std over splits {spec.splits} and seeds {spec.seeds} (n: cells per row).")
    lines.append(ROLE_NOTE[split_role(spec.splits)])
    if results.get("curves"):
        lines.append("Training curves of the trained rows (mean ± std over their cells): curves.png.")
    if spec.reference is not None:
        lines.append(f"The paired column is each variant's average mAP minus {spec.reference}'s in the same "
                     "(split, seed) cells: mean ± sample std of those differences, and in how many cells "
                     "the variant was ahead.")
    lines.append("")
    summary = results["summary"]
    for ds in spec.datasets:
        for setting in spec.settings:
            rows = [(v, summary.get(v.name, {}).get(ds.name, {}).get(setting)) for v in spec.variants]
            tiou = next((node["tiou"] for _, node in rows if node), None)
            if tiou is None:
                continue
            lines.append(f"## {ds.name}, {setting}")
            lines.append("")
            paired = spec.reference is not None
            head = ["method", *(f"{t:.2f}" for t in tiou), "avg", "n",
                    *([f"avg − {spec.reference} (paired)"] if paired else []), "paper avg"]
            lines += [_md_row(head), _md_row(["---"] + ["---:"] * (len(head) - 1))]
            for v, node in rows:
                if node is None:
                    row = ["–"] * len(tiou) + ["–", "0"] + (["–"] if paired else [])
                else:
                    row = [*(_fmt(m, s, node["n"]) for m, s in zip(node["mean"], node["std"])),
                           f"**{_fmt(node['average_mean'], node['average_std'], node['n'])}**", str(node["n"])]
                    if paired:
                        row.append("(reference)" if v.name == spec.reference else _fmt_paired(node))
                lines.append(_md_row([v.name, *row, _paper_avg(spec, v.name, setting)]))
            lines.append("")
    if spec.paper:
        lines += [f"Paper numbers: {spec.paper_source or 'Nag et al., ECCV 2022'} (real THUMOS14 / ActivityNet "
                  "features; not comparable with a synthetic benchmark -- compare directions, not values).", ""]
    if results["failed"]:
        lines += ["## Failed cells", ""] + [f"* {f['key']}: {f['error']}" for f in results["failed"]] + [""]
    return "\n".join(lines)


def _paper_avg(spec: Spec, variant: str, setting: str) -> str:
    v = spec.paper.get(variant, {})
    if isinstance(v, dict) and setting in v:
        val = v[setting]
        if isinstance(val, dict):
            return " / ".join(f"{k}: {x}" for k, x in val.items())
        return str(val)
    return "–"


def plot_results(spec: Spec, results: dict, path: Path) -> Path:
    """Per-split average mAP of every variant, one panel per (dataset, setting)."""
    from stale.viz.plots import pyplot, save_figure

    plt = pyplot()
    panels = [(d.name, s) for d in spec.datasets for s in spec.settings]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.5, 4.2 * len(panels)), 3.6), dpi=110, squeeze=False)
    summary = results["summary"]
    for ax, (ds, setting) in zip(axes[0], panels):
        for i, v in enumerate(spec.variants):
            node = summary.get(v.name, {}).get(ds, {}).get(setting)
            if not node:
                continue
            xs = [c["split"] + 0.08 * (c["seed"] - 0) for c in node["cells"]]
            ys = [100 * c["average_mAP"] for c in node["cells"]]
            ax.scatter(xs, ys, color=f"C{i}", s=18, label=f"{v.name} ({100 * node['average_mean']:.1f})")
            ax.axhline(100 * node["average_mean"], color=f"C{i}", lw=0.8, ls="--")
        ax.set_title(f"{ds}, {setting}", fontsize=9)
        ax.set_xlabel("split")
        ax.set_ylabel("average mAP (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(plt, fig, path)
