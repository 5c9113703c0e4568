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

import math
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from stale.core.errors import StaleError
from stale.core.io import atomic_write_json, atomic_write_text, read_json
from stale.core.logs import get_logger

log = get_logger("experiment")
SPEC_FORMAT = "stale-experiment/1"
CONTROL_KEY = "control_of"


# ----------------------------------------------------------------------------- the spec

@dataclass
class Variant:
    """A named override set. ``reuse`` names another variant whose trained runs this one
    predicts with (``predict`` overrides applied at prediction: ``inference.*``,
    ``two_stage.proposals``); ``permute_names`` asks for the unseen classes under deranged
    names (the leakage control). ``control_of: X`` is short for ``reuse: X`` +
    ``permute_names: true``."""

    name: str
    overrides: list[str] = field(default_factory=list)
    reuse: str | None = None
    predict: list[str] = field(default_factory=list)
    permute_names: bool = False
    description: str = ""
    #: datasets this variant applies to (empty: all); e.g. the training-free CLIP detector
    #: only where features live in CLIP's space
    datasets: list[str] = field(default_factory=list)

    @property
    def trains(self) -> bool:
        return self.reuse is None


@dataclass
class Dataset:
    """Where a dataset's data come from: ``base`` (its run config; default the spec's), config
    ``overrides`` (e.g. real feature folders, given with --set), or a built-in ``synth`` preset
    to generate; ``tiou`` (evaluation thresholds, default by data.dataset)."""

    name: str
    overrides: list[str] = field(default_factory=list)
    synth: dict | None = None
    tiou: str | None = None
    base: str | None = None


@dataclass
class Spec:
    """A parsed experiment spec (see the module docstring)."""

    name: str
    base: str
    path: Path | None
    title: str = ""
    overrides: list[str] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    settings: dict[str, list[str]] = field(default_factory=dict)
    splits: list[int] = field(default_factory=lambda: [0])
    seeds: list[int] = field(default_factory=lambda: [0])
    variants: list[Variant] = field(default_factory=list)
    paper: dict = field(default_factory=dict)
    paper_source: str = ""
    notes: str = ""

    default_datasets: list[str] = field(default_factory=list)
    #: the variant the others are compared with, paired by (split, seed) cell (None: no column)
    reference: str | None = None

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise StaleError(f"spec {self.name}: no variant {name!r}")


def parse_range(text: str | int | Sequence[int], what: str = "--splits") -> list[int]:
    """``"0-9"``, ``"0,2,5"``, ``3`` or a list -> sorted unique ints."""
    if isinstance(text, int) and not isinstance(text, bool):
        return [text]
    if isinstance(text, (list, tuple)):
        items = text
    else:
        items = []
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if b < a:
                    raise StaleError(f"{what} {text!r}: range {part} runs backwards")
                items.extend(range(a, b + 1))
            elif part.isdigit():
                items.append(int(part))
            else:
                raise StaleError(f"{what} {text!r}: expected numbers or ranges like 0-9")
    out = sorted({int(i) for i in items})
    if not out or any(isinstance(i, bool) for i in items):
        raise StaleError(f"{what} {text!r}: no values")
    return out


def split_names(text: str | Sequence[str], known: Sequence[str]) -> list[str]:
    """Split a comma-separated ``--variants`` / ``--datasets`` / ``--settings`` value into names
    of ``known``. Names may themselves hold commas ("control (STALE, permuted names)"): at each
    position the longest run of comma-separated pieces that forms a known name wins; a piece
    that starts no known name is kept as given (and reported as unknown by the caller)."""
    if not isinstance(text, str):
        return [str(t).strip() for t in text if str(t).strip()]
    pieces = text.split(",")
    names = set(known)
    out, i = [], 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):
            cand = ",".join(pieces[i:j]).strip()
            if cand in names:
                out.append(cand)
                i = j
                break
        else:
            if pieces[i].strip():
                out.append(pieces[i].strip())
            i += 1
    return out


def _str_list(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StaleError(f"{where}: expected a list of key=value overrides, got {value!r}")
    return list(value)


def find_spec(ref: str | os.PathLike) -> Path:
    """A spec file path, or the name of a shipped spec (``table1``)."""
    p = Path(ref).expanduser()
    if p.is_file():
        return p
    shipped = Path(__file__).resolve().parents[1] / "experiments" / f"{Path(str(ref)).stem}.yaml"
    if shipped.is_file() and os.sep not in str(ref):
        return shipped
    raise StaleError(f"experiment spec not found: {ref} (nor a shipped spec; `stale experiment list`)")


def list_specs() -> list[str]:
    root = Path(__file__).resolve().parents[1] / "experiments"
    return sorted(p.stem for p in root.glob("*.yaml"))


def load_spec(ref: str | os.PathLike | dict) -> Spec:
    """Parse and check a spec (a file, a shipped name, or an already-parsed mapping)."""
    from stale.core.config import load_yaml

    if isinstance(ref, dict):
        data, path = dict(ref), None
    else:
        path = find_spec(ref)
        data = load_yaml(path)
    where = str(path) if path else "spec"
    known = {"name", "title", "base", "overrides", "datasets", "settings", "splits", "seeds", "variants",
             "paper", "paper_source", "notes", "format", "default_datasets", "reference"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise StaleError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if not isinstance(data.get("base"), str):
        raise StaleError(f"{where}: 'base' must name a run config")
    datasets = []
    for name, d in (data.get("datasets") or {"default": {}}).items():
        d = d or {}
        if not isinstance(d, dict):
            raise StaleError(f"{where}: datasets.{name}: expected a mapping")
        bad = sorted(set(d) - {"overrides", "synth", "tiou", "base"})
        if bad:
            raise StaleError(f"{where}: datasets.{name}: unknown key(s) {', '.join(bad)}")
        synth = d.get("synth")
        if synth is not None and (not isinstance(synth, dict) or "preset" not in synth):
            raise StaleError(f"{where}: datasets.{name}.synth must be a mapping with a 'preset'")
        datasets.append(Dataset(str(name), _str_list(d.get("overrides"), f"{where}: datasets.{name}.overrides"),
                                synth, d.get("tiou"), d.get("base")))
    settings = {}
    for name, ov in (data.get("settings") or {"default": []}).items():
        settings[str(name)] = _str_list(ov, f"{where}: settings.{name}")
    variants = []
    for name, v in (data.get("variants") or {}).items():
        if isinstance(v, list) or v is None:
            variants.append(Variant(str(name), _str_list(v, f"{where}: variants.{name}")))
        elif isinstance(v, dict):
            bad = sorted(set(v) - {"overrides", CONTROL_KEY, "reuse", "predict", "permute_names", "description",
                                   "datasets"})
            if bad:
                raise StaleError(f"{where}: variants.{name}: unknown key(s) {', '.join(bad)}")
            reuse = v.get("reuse", v.get(CONTROL_KEY))
            variants.append(Variant(str(name), _str_list(v.get("overrides"), f"{where}: variants.{name}"),
                                    reuse, _str_list(v.get("predict"), f"{where}: variants.{name}.predict"),
                                    bool(v.get("permute_names", CONTROL_KEY in v)),
                                    str(v.get("description", "")),
                                    _str_list(v.get("datasets"), f"{where}: variants.{name}.datasets")))
        else:
            raise StaleError(f"{where}: variants.{name}: expected a list of overrides or a mapping")
    if not variants:
        raise StaleError(f"{where}: no variants")
    by_name = {v.name: v for v in variants}
    known_ds = {d.name for d in datasets}
    for v in variants:
        unknown = [d for d in v.datasets if d not in known_ds]
        # a mapping is a spec already checked and then narrowed by --datasets (what travels to
        # the workers): a variant may still name datasets that this run left out
        if unknown and path is not None:
            raise StaleError(f"{where}: variants.{v.name}.datasets: no dataset {unknown[0]!r} in the spec")
        if v.reuse is not None:
            if v.reuse not in by_name or v.reuse == v.name or not by_name[v.reuse].trains:
                raise StaleError(f"{where}: variants.{v.name}: reuse {v.reuse!r} is not another trained variant")
            if v.overrides:
                raise StaleError(f"{where}: variants.{v.name}: a variant that reuses runs takes 'predict' "
                                 f"overrides, not 'overrides'")
        for o in v.predict:
            key = o.split("=", 1)[0]
            if not (key.startswith("inference.") or key == "two_stage.proposals"):
                raise StaleError(f"{where}: variants.{v.name}.predict: {o!r}: prediction can change "
                                 f"inference.* and two_stage.proposals only")
    reference = data.get("reference")
    if reference is not None and str(reference) not in by_name:
        raise StaleError(f"{where}: reference {reference!r} is not a variant of the spec "
                         f"(variants: {', '.join(by_name)})")
    default_datasets = _str_list(data.get("default_datasets"), f"{where}: default_datasets")
    bad_ds = [d for d in default_datasets if d not in {x.name for x in datasets}]
    if bad_ds:
        raise StaleError(f"{where}: default_datasets names an unknown dataset {bad_ds[0]!r}")
    spec = Spec(name=str(data.get("name") or (path.stem if path else "experiment")), base=data["base"], path=path,
                title=str(data.get("title", "")), overrides=_str_list(data.get("overrides"), f"{where}: overrides"),
                datasets=datasets, settings=settings, splits=parse_range(data.get("splits", [0]), f"{where}: splits"),
                seeds=parse_range(data.get("seeds", [0]), f"{where}: seeds"), variants=variants,
                paper=data.get("paper") or {}, paper_source=str(data.get("paper_source", "")),
                notes=str(data.get("notes", "")), default_datasets=default_datasets,
                reference=None if reference is None else str(reference))
    return spec


# ----------------------------------------------------------------------------- cells

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


@dataclass(frozen=True)
class Cell:
    variant: str
    dataset: str
    setting: str
    split: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.variant} | {self.dataset} | {self.setting} | split {self.split} | seed {self.seed}"

    def folder(self, root: Path) -> Path:
        return (root / "cells" / _slug(self.variant) / _slug(self.dataset) / _slug(self.setting)
                / f"split_{self.split}_seed_{self.seed}")


def cells_of(spec: Spec, variants: Sequence[str] | None = None) -> list[Cell]:
    chosen = [v for v in spec.variants if variants is None or v.name in variants]
    if variants is not None:
        missing = [n for n in variants if n not in {v.name for v in spec.variants}]
        if missing:
            raise StaleError(f"--variants: no variant {missing[0]!r} in spec {spec.name} "
                             f"(has: {', '.join(v.name for v in spec.variants)})")
        # a variant that reuses runs needs the variant that trains them
        for v in list(chosen):
            if v.reuse and v.reuse not in {c.name for c in chosen}:
                chosen.insert(0, spec.variant(v.reuse))
    # trained variants first, reusing ones last
    chosen.sort(key=lambda v: not v.trains)
    def applies(v: Variant, d: Dataset) -> bool:
        only = v.datasets or (spec.variant(v.reuse).datasets if v.reuse else [])
        return not only or d.name in only

    return [Cell(v.name, d.name, s, sp, seed) for v in chosen for d in spec.datasets if applies(v, d)
            for s in spec.settings for sp in spec.splits for seed in spec.seeds]


def select_datasets(spec: Spec, names: Sequence[str] | None) -> None:
    """Keep the datasets named (default: the spec's ``default_datasets``, else all)."""
    names = list(names) if names else (spec.default_datasets or [d.name for d in spec.datasets])
    known = {d.name for d in spec.datasets}
    bad = [n for n in names if n not in known]
    if bad:
        raise StaleError(f"--datasets: no dataset {bad[0]!r} in spec {spec.name} (has: {', '.join(sorted(known))})")
    spec.datasets = [d for d in spec.datasets if d.name in names]


def cell_overrides(spec: Spec, cell: Cell, data_dir: Path, extra: Sequence[str]) -> list[str]:
    """Overrides of a cell in order of precedence (later wins): spec, dataset, setting, variant,
    command line, then the cell's own split and seed."""
    ds = next(d for d in spec.datasets if d.name == cell.dataset)
    variant = spec.variant(cell.variant)
    trained = spec.variant(variant.reuse) if variant.reuse else variant
    out = [*spec.overrides]
    if ds.synth is not None:
        root = data_dir / _slug(ds.name)
        out += [f"data.annotations={root / 'annotations.json'}", f"data.features.root={root / 'features'}"]
        dim = _synth_config(ds.synth).dim
        out += [f"data.features.dim={dim}", f"model.input_dim={dim}"]
    out += [*ds.overrides, *spec.settings[cell.setting], *trained.overrides, *extra,
            f"protocol.split={cell.split}", f"train.seed={cell.seed}"]
    return out


def _synth_config(synth: dict):
    from stale.synth.presets import preset

    bad = sorted(set(synth) - {"preset", "seed", "max_videos_per_subset"})
    if bad:
        raise StaleError(f"synth: unknown key(s) {', '.join(bad)} (preset, seed, max_videos_per_subset)")
    return preset(str(synth["preset"]), int(synth.get("seed", 0)), synth.get("max_videos_per_subset"))


def prepare_data(spec: Spec, data_dir: Path) -> None:
    """Generate every synthetic dataset the spec names (once; an existing one is reused)."""
    from stale.synth.generate import SynthDataset, default_embed_fn

    for ds in spec.datasets:
        if ds.synth is None:
            continue
        root = data_dir / _slug(ds.name)
        meta = root / "synth_meta.json"
        if meta.is_file() and read_json(meta).get("complete", False):
            continue
        log.info("generating the %s benchmark (%s) -> %s", ds.name, ds.synth["preset"], root)
        SynthDataset(_synth_config(ds.synth), default_embed_fn()).write(
            root, text_info={"weights": None, "template": "a video of {}."})


def base_of(spec: Spec, cell: Cell) -> str:
    ds = next(d for d in spec.datasets if d.name == cell.dataset)
    return ds.base or spec.base


def _tiou(spec: Spec, cell: Cell, cfg) -> str:
    ds = next(d for d in spec.datasets if d.name == cell.dataset)
    if ds.tiou:
        return ds.tiou
    return "activitynet" if cfg.data.dataset == "activitynet" else "thumos14"


def run_cell(spec_ref: str | dict, out: str, cell: Cell, extra: Sequence[str] = (),
             threads: int | None = None, device: str | None = None, ddp_procs: int = 1) -> dict:
    """Train (or reuse), predict and evaluate one cell; returns its ``cell.json`` record.

    Never raises for a problem of the cell itself: a failure is recorded (status ``failed``,
    the one-line error) so the other cells go on.
    """
    import torch

    spec = load_spec(spec_ref)
    root = Path(out)
    folder = cell.folder(root)
    record: dict[str, Any] = {"cell": cell.__dict__, "key": cell.key, "run_dir": str(folder)}
    t0 = time.perf_counter()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        record.update(_run_cell(spec, root, folder, cell, list(extra), device, ddp_procs))
        record["status"] = "done"
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded, the experiment goes on
        msg = " ".join(str(exc).split()) if isinstance(exc, StaleError) else f"{type(exc).__name__}: {exc}"
        record.update(status="failed", error=msg)
        if not isinstance(exc, StaleError):
            record["traceback"] = traceback.format_exc()
        log.warning("cell %s failed: %s", cell.key, msg)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "cell.json", record)
    return record


def _train_ddp(cfg, folder: Path, procs: int, resume: bool) -> None:
    """Train a cell with ``procs`` DDP processes through torchrun (one GPU each; gloo on CPU)."""
    import subprocess
    import sys

    import yaml

    from stale.core.config import to_dict

    folder.mkdir(parents=True, exist_ok=True)
    cfg_file = folder / "cell_config.yaml"
    atomic_write_text(cfg_file, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
           "-m", "stale", "train", str(cfg_file), "--out", str(folder), "--quiet",
           "--resume" if resume else "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln] or proc.stderr.strip().splitlines()[-1:]
        raise StaleError(f"DDP training ({procs} processes) failed: {lines[0] if lines else proc.returncode}")


def _run_cell(spec: Spec, root: Path, folder: Path, cell: Cell, extra: list[str], device: str | None,
              ddp_procs: int = 1) -> dict:
    from stale.evaluation import evaluate_detection
    from stale.pipeline.assemble import assemble_test, make_dataset
    from stale.pipeline.config import load_run_config
    from stale.pipeline.predict import detect_dataset, load_run
    from stale.pipeline.train import run_training
    from stale.synth.leakage import permute_unseen_names

    overrides = cell_overrides(spec, cell, root / "data", extra)
    if device:
        overrides.append(f"train.device={device}")
    cfg = load_run_config(base_of(spec, cell), overrides)
    variant = spec.variant(cell.variant)
    if variant.reuse:
        run_dir = Cell(variant.reuse, cell.dataset, cell.setting, cell.split, cell.seed).folder(root)
        if not (run_dir / "cell.json").is_file() or read_json(run_dir / "cell.json").get("status") != "done":
            raise StaleError(f"the reused cell {run_dir} has not finished")
    else:
        run_dir = folder
        interrupted = (run_dir / "last.pt").is_file() and not (run_dir / "selection.json").is_file()
        if interrupted or not (run_dir / "best.pt").is_file():
            if ddp_procs > 1:
                _train_ddp(cfg, run_dir, ddp_procs, resume=interrupted)
            else:   # an interrupted cell resumes; leftovers of a failed attempt move aside
                run_training(cfg, run_dir, resume=interrupted, overwrite=not interrupted)
    run = load_run(run_dir, device or cfg.train.device, variant.predict)
    test = assemble_test(run.cfg)
    classes = list(test.classes)
    names = permute_unseen_names(classes, classes, cell.seed) if variant.permute_names else classes
    ds = make_dataset(test.videos, test.store, run.cfg,
                      classes=classes if getattr(run.detector, "needs_targets", False) else None, cache=False)
    results = detect_dataset(run.detector, ds, names, 32, run.device)
    if variant.permute_names:
        back = dict(zip(names, classes))
        results = {v: [dict(d, label=back[d["label"]]) for d in items] for v, items in results.items()}
    gt = test.ground_truth.to_activitynet_json()
    metric = evaluate_detection(gt, {"results": results}, subset=run.cfg.data.test_subset,
                                tiou_thresholds=_tiou(spec, cell, run.cfg))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "predictions.json", {"results": results, "external_data": {"used": False},
                                                     "classes": classes, "asked_as": names}, indent=None)
    atomic_write_json(folder / "ground_truth.json", gt, indent=None)
    metrics = metric.to_json()
    atomic_write_json(folder / "metrics.json", metrics)
    sel = read_json(run_dir / "selection.json") if (run_dir / "selection.json").is_file() else {}
    return {"metrics": {k: metrics[k] for k in ("tiou", "mAP", "average_mAP", "per_class_ap")},
            "classes": classes, "test_videos": len(test.videos), "selected_epoch": sel.get("epoch"),
            "reuses": variant.reuse, "permuted_names": variant.permute_names}


# ----------------------------------------------------------------------------- launching

def _cpu_threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


def _local_worker(args) -> dict:
    spec_ref, out, cell, extra, threads, slot, ddp = args
    device = None
    n = _gpus()
    if n and ddp <= 1:
        device = f"cuda:{slot % n}"
    return run_cell(spec_ref, out, cell, extra, threads, device, ddp)


def run_experiment(spec_ref: str | os.PathLike, out: str | os.PathLike, *, splits: Sequence[int] | None = None,
                   seeds: Sequence[int] | None = None, variants: Sequence[str] | None = None,
                   datasets: Sequence[str] | None = None, settings: Sequence[str] | None = None,
                   overrides: Sequence[str] = (), jobs: int = 1,
                   launcher: str = "local", slurm: dict | None = None) -> dict:
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
    if variants is not None:
        variants = split_names(variants, [v.name for v in spec.variants])
    if variants is not None:
        keep = {v.name for v in spec.variants if v.name in variants}
        keep |= {spec.variant(n).reuse for n in keep if spec.variant(n).reuse}
        spec.variants = [v for v in spec.variants if v.name in keep]
    if not 1 <= jobs <= 256:
        raise StaleError(f"--jobs must be in [1, 256], got {jobs}")
    root = Path(out)
    check_outputs([Output(root, "dir", "--out", exists_ok=True)], inputs=[spec.path])
    marker = root / "experiment.json"
    if root.is_dir() and any(root.iterdir()) and not marker.is_file():
        raise StaleError(f"--out {root}: folder holds files that are not an experiment; choose another")
    # the spec as a mapping travels to the workers (a spec file may change while they run)
    spec_map = _spec_mapping(spec)
    cells = cells_of(spec, variants)
    # every cell's config must load before anything runs (a typo fails here, not in cell 37)
    from stale.pipeline.config import load_run_config

    for c in cells:
        load_run_config(base_of(spec, c), cell_overrides(spec, c, root / "data", list(overrides)))
    root.mkdir(parents=True, exist_ok=True)
    # an earlier invocation into this folder may have run other subsets: the folder's spec is
    # the union, so results.md tabulates every cell it holds
    marker_spec = _merge_specs(read_json(marker)["spec"], spec_map) if marker.is_file() else spec_map
    atomic_write_json(marker, {"format": SPEC_FORMAT, "spec": marker_spec, "overrides": list(overrides),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    prepare_data(spec, root / "data")
    todo = [c for c in cells if not _finished(c.folder(root))]
    log.info("experiment %s: %d cells, %d to run (%d finished), launcher %s, jobs %d", spec.name, len(cells),
             len(todo), len(cells) - len(todo), launcher, jobs)
    trained = [c for c in todo if spec.variant(c.variant).trains]
    controls = [c for c in todo if not spec.variant(c.variant).trains]
    for batch in (trained, controls):
        if batch:
            _launch(spec_map, root, batch, list(overrides), jobs, launcher, slurm or {})
    return summarize(root)


def _merge_specs(old: dict, new: dict) -> dict:
    """The spec mapping of a folder filled by several invocations: datasets, settings, variants
    (earlier ones first), splits and seeds of both; everything else from ``new``."""
    out = dict(new)
    for key in ("datasets", "settings", "variants"):
        out[key] = {**(old.get(key) or {}), **(new.get(key) or {})}
    for key in ("splits", "seeds"):
        out[key] = sorted(set(old.get(key) or []) | set(new.get(key) or []))
    return out


def _spec_mapping(spec: Spec) -> dict:
    return {"name": spec.name, "title": spec.title, "base": spec.base, "overrides": spec.overrides,
            "datasets": {d.name: {"overrides": d.overrides, "synth": d.synth, "tiou": d.tiou, "base": d.base}
                         for d in spec.datasets},
            "settings": spec.settings, "splits": spec.splits, "seeds": spec.seeds,
            "variants": {v.name: ({"reuse": v.reuse, "predict": v.predict, "permute_names": v.permute_names,
                                   "description": v.description} if v.reuse else
                                  {"overrides": v.overrides, "description": v.description,
                                   "datasets": v.datasets})
                         for v in spec.variants},
            "paper": spec.paper, "paper_source": spec.paper_source, "notes": spec.notes,
            "reference": spec.reference}


def _finished(folder: Path) -> bool:
    f = folder / "cell.json"
    return f.is_file() and read_json(f).get("status") == "done"


def _launch(spec_map: dict, root: Path, cells: list[Cell], extra: list[str], jobs: int, launcher: str,
            slurm: dict) -> None:
    if launcher == "local":
        if jobs == 1:
            for i, c in enumerate(cells):
                log.info("[%d/%d] %s", i + 1, len(cells), c.key)
                _local_worker((spec_map, str(root), c, extra, None, 0, int(slurm.get("ddp", 1))))
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = None if _gpus() else _cpu_threads(jobs)
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futs = {pool.submit(_local_worker, (spec_map, str(root), c, extra, threads, i,
                                                int(slurm.get("ddp", 1)))): c
                    for i, c in enumerate(cells)}
            for n, fut in enumerate(as_completed(futs), 1):
                rec = fut.result()
                log.info("[%d/%d] %s: %s", n, len(cells), futs[fut].key, rec.get("status"))
        return
    if launcher in ("slurm", "submitit-local"):
        try:
            import submitit
        except ImportError:  # pragma: no cover - declared dependency
            raise StaleError("--launcher slurm needs the submitit package (pip install submitit)") from None
        folder = root / "submitit"
        if launcher == "slurm":
            ex = submitit.AutoExecutor(folder=str(folder))
            params = {"timeout_min": int(slurm.get("time", 60)), "slurm_partition": slurm.get("partition"),
                      "gpus_per_node": int(slurm.get("gpus", 0)), "cpus_per_task": int(slurm.get("cpus", 2)),
                      "slurm_array_parallelism": int(slurm.get("parallel", jobs))}
            ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        else:
            ex = submitit.LocalExecutor(folder=str(folder))
            ex.update_parameters(timeout_min=int(slurm.get("time", 60)))
        with ex.batch():
            handles = [ex.submit(run_cell, spec_map, str(root), c, extra, slurm.get("threads"), None,
                                 int(slurm.get("ddp", 1))) for c in cells]
        for h, c in zip(handles, cells):
            try:
                rec = h.result()
                log.info("%s: %s (job %s)", c.key, rec.get("status"), h.job_id)
            except Exception as exc:  # noqa: BLE001 - a crashed job is a failed cell
                msg = " ".join(str(exc).split())[:300]
                c.folder(root).mkdir(parents=True, exist_ok=True)
                atomic_write_json(c.folder(root) / "cell.json", {"cell": c.__dict__, "key": c.key, "status": "failed",
                                                                 "error": f"job {h.job_id}: {msg}"})
        return
    raise StaleError(f"--launcher must be local, slurm or submitit-local, got {launcher!r}")


# ----------------------------------------------------------------------------- results

def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarize(root: str | os.PathLike) -> dict:
    """Aggregate every cell of an experiment folder into results.json / results.md / results.png."""
    root = Path(root)
    marker = root / "experiment.json"
    if not marker.is_file():
        raise StaleError(f"{root}: not an experiment folder (no experiment.json)")
    meta = read_json(marker)
    spec = load_spec(meta["spec"])
    records = []
    for f in sorted((root / "cells").rglob("cell.json")) if (root / "cells").is_dir() else []:
        records.append(read_json(f))
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
    atomic_write_json(root / "results.json", out)
    atomic_write_text(root / "results.md", format_results(spec, out))
    if summary:
        plot_results(spec, out, root / "results.png")
    return out


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
    from stale.viz.plots import _plt, _save

    plt = _plt()
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
    return _save(plt, fig, path)
