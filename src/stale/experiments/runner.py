"""``stale experiment``: the paper's protocol and tables as commands.

A spec (YAML, see ``stale/experiments/*.yaml`` and docs/experiments.md) names a base run config,
datasets (a built-in synthetic benchmark to generate, or overrides pointing at real data),
settings (e.g. 75/25 and 50/50), class splits, seeds and named variants (override sets; a
variant may instead be the *leakage control* of another: its trained runs detect the unseen
classes under deranged names). Every cell -- variant x dataset x setting x split x seed -- is an
ordinary run folder under ``DIR/cells/``: train on the seen classes, predict the unseen ones,
evaluate; it holds ``predictions.json``, ``ground_truth.json``, ``metrics.json`` and
``cell.json`` besides the run files. Finished cells are skipped, an interrupted one resumes from
its ``last.pt``, and a failed cell is recorded and does not stop the others.

``results.json`` holds every cell plus mean +- std (over splits and seeds) per tIoU and average;
``results.md`` is shaped like the paper's table, with the paper's published numbers beside ours
where a spec gives them; ``results.png`` plots the per-split average mAP of every variant.
``stale experiment summarize DIR`` rebuilds them from whatever cells exist. A spec's
``reference`` variant (the paper's full model of that table) adds the **paired** difference of
every other variant from it: per (split, seed) cell the two share, ``variant - reference`` in
average mAP, then mean +- std and how many cells went up. With split-to-split spreads larger than
the effect, the paired difference is what tells a direction.

Scale-out: ``--jobs N`` runs N cells at once on this machine (one GPU each when there are GPUs,
the CPU threads divided otherwise); ``--launcher slurm`` submits each cell as a Slurm job
through submitit (``submitit-local`` runs the same path with submitit's local executor);
``--ddp-procs N`` trains every cell with N DDP processes through torchrun (one GPU each).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from stale.core.errors import StaleError
from stale.core.io import atomic_write_json, read_json
from stale.core.locks import LOCK_NAME, folder_lock
from stale.core.logs import get_logger
from stale.experiments.cells import (cell_identity, cell_state, cells_of, check_data, check_folder_names,
                                     prepare_data, select_datasets)
from stale.experiments.launch import launch
from stale.experiments.spec import SPEC_FORMAT, load_spec, merge_specs, spec_mapping, split_names
from stale.experiments.summary import summarize

log = get_logger("experiment")


def run_experiment(spec_ref: str | os.PathLike, out: str | os.PathLike, *, splits: Sequence[int] | None = None,
                   seeds: Sequence[int] | None = None, variants: Sequence[str] | None = None,
                   datasets: Sequence[str] | None = None, settings: Sequence[str] | None = None,
                   overrides: Sequence[str] = (), jobs: int = 1,
                   launcher: str = "local", slurm: dict | None = None, ddp_procs: int = 1) -> dict:
    """Run every unfinished cell of a spec into ``out``; returns the summary (results.json).

    ``variants`` / ``datasets`` / ``settings`` choose subsets by name: a list, or one
    comma-separated string (names that hold commas are matched whole, see :func:`split_names`).
    """
    from stale.core.output_checks import Output, check_outputs

    spec = load_spec(spec_ref)
    if splits is not None:
        spec.splits = list(splits)
    if seeds is not None:
        spec.seeds = list(seeds)
    if datasets is not None:
        datasets = split_names(datasets, [d.name for d in spec.datasets])
    select_datasets(spec, datasets)
    if settings is not None:
        settings = split_names(settings, list(spec.settings))
        bad = [n for n in settings if n not in spec.settings]
        if bad or not settings:
            raise StaleError(f"--settings: no setting {(bad or [''])[0]!r} in spec {spec.name} "
                             f"(has: {', '.join(spec.settings)})")
        spec.settings = {k: v for k, v in spec.settings.items() if k in settings}
    check_folder_names(spec)
    if variants is not None:
        variants = split_names(variants, [v.name for v in spec.variants])
        missing = [n for n in variants if n not in {v.name for v in spec.variants}]
        if missing or not variants:
            raise StaleError(f"--variants: no variant {(missing or [''])[0]!r} in spec {spec.name} "
                             f"(has: {', '.join(v.name for v in spec.variants)})")
        keep = {v.name for v in spec.variants if v.name in variants}
        keep |= {spec.variant(n).reuse for n in keep if spec.variant(n).reuse}
        spec.variants = [v for v in spec.variants if v.name in keep]
        if spec.reference is not None and spec.reference not in keep:
            # the paired column needs the reference's cells: this invocation runs none
            log.info("--variants: the spec's reference %s is not run; no paired column from these cells",
                     spec.reference)
            spec.reference = None
    if not 1 <= jobs <= 256:
        raise StaleError(f"--jobs must be in [1, 256], got {jobs}")
    # absolute: cell paths recorded in results.json must not depend on this working directory
    root = Path(os.path.abspath(Path(out).expanduser()))
    check_outputs([Output(root, "dir", "--out", exists_ok=True)], inputs=[spec.path])
    marker = root / "experiment.json"
    if root.is_dir() and any(p.name != LOCK_NAME for p in root.iterdir()) and not marker.is_file():
        raise StaleError(f"--out {root}: folder holds files that are not an experiment; choose another")
    # the spec as a mapping travels to the workers (a spec file may change while they run)
    spec_map = spec_mapping(spec)
    cells = cells_of(spec, variants)
    # every cell's config must load before anything runs (a typo fails here, not in cell 37),
    # and a cell folder holding another configuration's cell is refused before any work
    identities = {c: cell_identity(spec, c, list(overrides)) for c in cells}
    states = {c: cell_state(c.folder(root), identities[c]) for c in cells}
    other = [(c.folder(root), c.key) for c in cells if states[c] == "other"]
    other += _mixed_cells(spec, root, list(overrides), {c.folder(root) for c in cells})
    if other:
        raise StaleError(f"--out {root}: {other[0][0]} holds the cell {other[0][1]} made with another "
                         f"configuration (the variant's definition, the spec or --set changed"
                         f"{f'; {len(other) - 1} more such cells' if len(other) > 1 else ''}), and one folder "
                         f"never mixes two; choose another --out, or move those cell folders away to run "
                         f"them again")
    # an earlier invocation into this folder may have run other subsets: the folder's spec is
    # the union, so results.md tabulates every cell it holds
    marker_spec = merge_specs(read_json(marker)["spec"], spec_map) if marker.is_file() else spec_map
    for mapping in (spec_map, marker_spec):   # what the workers and summarize will load
        load_spec(mapping)
    check_data(spec, root / "data")
    root.mkdir(parents=True, exist_ok=True)
    with folder_lock(root, "stale experiment"):   # two experiments never train one folder's cells
        return _run(spec, root, cells, states, marker_spec, spec_map, list(overrides), jobs, launcher, slurm,
                    ddp_procs)


def _run(spec, root: Path, cells, states, marker_spec: dict, spec_map: dict, overrides: list[str], jobs: int,
         launcher: str, slurm: dict | None, ddp_procs: int) -> dict:
    marker = root / "experiment.json"
    atomic_write_json(marker, {"format": SPEC_FORMAT, "spec": marker_spec, "overrides": list(overrides),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    prepare_data(spec, root / "data")
    todo = [c for c in cells if states[c] != "done"]
    log.info("experiment %s: %d cells, %d to run (%d finished), launcher %s, jobs %d", spec.name, len(cells),
             len(todo), len(cells) - len(todo), launcher, jobs)
    trained = [c for c in todo if spec.variant(c.variant).trains]
    controls = [c for c in todo if not spec.variant(c.variant).trains]
    for batch in (trained, controls):
        if batch:
            launch(spec_map, root, batch, list(overrides), jobs, launcher, slurm or {}, ddp_procs)
    return summarize(root)




def _mixed_cells(spec, root: Path, overrides: list[str], running: set[Path]) -> list[tuple[Path, str]]:
    """Finished cells of this folder outside this invocation (other splits or seeds) whose
    variant, dataset and setting it runs, made with another configuration than this
    invocation's: results.json would average two definitions of one variant in one row."""
    from stale.experiments.cells import Cell

    cells_dir = root / "cells"
    if not cells_dir.is_dir():
        return []
    names = ({v.name for v in spec.variants}, {d.name for d in spec.datasets}, set(spec.settings))
    out = []
    for f in sorted(cells_dir.rglob("cell.json")):
        if f.parent in running:
            continue
        try:
            rec = read_json(f)
            cell = Cell(**rec["cell"])
        except (StaleError, KeyError, TypeError):
            continue   # summarize reports what it cannot read
        if "config_hash" not in rec or not (cell.variant in names[0] and cell.dataset in names[1]
                                            and cell.setting in names[2]):
            continue
        if rec["config_hash"] != cell_identity(spec, cell, overrides):
            out.append((f.parent, cell.key))
    return out
