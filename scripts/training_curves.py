"""Training curves of experiment cells, and the mask-gate collapse check (issue 12).

Usage::

    python scripts/training_curves.py EXP_DIR [EXP_DIR ...] --out curves.png
        [--variants "STALE,STALE, before the collapse fix"] [--datasets aligned,nonaligned]
        [--ratio 1.5]

Reads every finished cell's ``metrics.jsonl`` under ``EXP_DIR/cells``, draws one panel per
curve (training L_c, gate coverage, gate recall on action snippets, held-out loss), one line per
run and one colour per (variant, dataset), and prints per group how many runs show the jump: an
epoch whose training classification loss L_c exceeds ``--ratio`` times the lowest L_c of the
epochs before it (the collapse raised it 1.7 -> 3.0 and 1.7 -> 3.7; ordinary epoch-to-epoch
noise stays within a few per cent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def jumps(history: list[dict], ratio: float) -> list[int]:
    """Epochs whose ``train_cls`` exceeds ``ratio`` x the lowest earlier value."""
    out, low = [], None
    for rec in history:
        v = rec.get("train_cls")
        if v is None:
            continue
        if low is not None and v > ratio * low:
            out.append(int(rec["epoch"]))
        low = v if low is None else min(low, v)
    return out


def load_cells(roots: list[Path]) -> list[tuple[dict, list[dict]]]:
    cells = []
    for root in roots:
        for f in sorted((root / "cells").rglob("cell.json")):
            rec = json.loads(f.read_text())
            hist_file = f.parent / "metrics.jsonl"
            if rec.get("status") != "done" or not hist_file.is_file():
                continue
            hist = [json.loads(ln) for ln in hist_file.read_text().splitlines() if ln.strip()]
            cells.append((rec["cell"], hist))
    return cells


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", default=None, help="comma-separated variant names (names with commas matched whole)")
    p.add_argument("--datasets", default=None)
    p.add_argument("--ratio", type=float, default=1.5)
    a = p.parse_args(argv)
    from stale.experiments.spec import split_names
    from stale.viz.plots import plot_metric_curves

    cells = load_cells(a.roots)
    if not cells:
        print(f"no finished cells under {', '.join(map(str, a.roots))}", file=sys.stderr)
        return 2
    known_v = sorted({c["variant"] for c, _ in cells})
    want_v = split_names(a.variants, known_v) if a.variants else known_v
    want_d = a.datasets.split(",") if a.datasets else sorted({c["dataset"] for c, _ in cells})
    groups: dict[str, list[list[dict]]] = {}
    print("| variant | dataset | runs | runs with a jump | epochs of the jumps |")
    print("|---|---|---:|---:|---|")
    for v in want_v:
        for d in want_d:
            runs = [(c, h) for c, h in cells if c["variant"] == v and c["dataset"] == d]
            if not runs:
                continue
            groups[f"{v} | {d}"] = [h for _, h in runs]
            found = {f"split {c['split']} seed {c['seed']}": jumps(h, a.ratio) for c, h in runs}
            bad = {k: e for k, e in found.items() if e}
            print(f"| {v} | {d} | {len(runs)} | {len(bad)} | "
                  + ("; ".join(f"{k}: {e}" for k, e in bad.items()) or "-") + " |")
    plot_metric_curves(groups, ["train_cls", "train_gate_coverage", "train_gate_fg_recall", "val_total"], a.out,
                       title="training curves per run (one line per split x seed)")
    print(f"\ncurves: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
