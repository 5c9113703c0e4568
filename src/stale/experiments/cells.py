"""The cells of an experiment -- variant x dataset x setting x split x seed -- their folders,
their run-config overrides in order of precedence, and the synthetic data they train on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from stale.core.errors import StaleError
from stale.core.io import read_json
from stale.core.logs import get_logger
from stale.experiments.spec import Dataset, Spec, Variant

log = get_logger("experiment")


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


#: run-config keys that say where or how fast a cell runs, not what it computes (outside its identity)
RUNTIME_KEYS = {"train": ("device", "threads", "progress", "micro_batch")}


def check_folder_names(spec: Spec) -> None:
    """Distinct variants (datasets, settings) must get distinct cell folders: two names that
    make the same folder name (``"A B"`` and ``"A_B"``) are refused, naming both."""
    for what, names in (("variants", [v.name for v in spec.variants]), ("datasets", [d.name for d in spec.datasets]),
                        ("settings", list(spec.settings))):
        seen: dict[str, str] = {}
        for name in names:
            slug = _slug(name)
            if slug in seen and seen[slug] != name:
                raise StaleError(f"spec {spec.name}: {what} {seen[slug]!r} and {name!r} would share the cell "
                                 f"folder {slug!r}; rename one of them")
            seen[slug] = name


def cell_identity(spec: Spec, cell: Cell, extra: Sequence[str]) -> str:
    """A hash of everything that decides a cell's result: its resolved run config (data paths
    of the built-in benchmarks relative to the experiment folder, so a moved folder keeps its
    identity; runtime keys such as the device left out), what a reusing variant changes, and
    the tIoU preset. A cell folder holding another identity is never taken as this cell. The
    config is hashed in the shape it had before the final Soft-NMS got one place
    (:func:`stale.pipeline.config_migration.identity_tree`), so finished cells of older
    experiment folders keep their identity."""
    import hashlib
    import json

    from stale.core.config import apply_overrides, find_config, load_yaml_tree, to_dict
    from stale.pipeline.config import load_run_config
    from stale.pipeline.config_migration import identity_tree

    overrides = cell_overrides(spec, cell, Path("EXPERIMENT") / "data", extra, origins=True)
    cfg = load_run_config(base_of(spec, cell), overrides)
    raw = apply_overrides(load_yaml_tree(find_config(base_of(spec, cell))), overrides)
    tree = identity_tree(to_dict(cfg), raw)
    for section, keys in RUNTIME_KEYS.items():
        for key in keys:
            tree.get(section, {}).pop(key, None)
    v = spec.variant(cell.variant)
    ds = next(d for d in spec.datasets if d.name == cell.dataset)
    payload = {"cell": cell.__dict__, "config": tree, "reuse": v.reuse, "predict": list(v.predict or []),
               "permute_names": bool(v.permute_names), "tiou": tiou_of(spec, cell, cfg), "synth": ds.synth}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_state(folder: Path, identity: str) -> str:
    """``"new"`` (no record), ``"done"`` (finished with this identity, or finished before
    identities were recorded), ``"failed"``, or ``"other"`` (a record of another identity)."""
    f = folder / "cell.json"
    if not f.is_file():
        return "new"
    rec = read_json(f)
    if not isinstance(rec, dict):
        return "other"
    if rec.get("config_hash", identity) != identity:
        return "other"
    return "done" if rec.get("status") == "done" else "failed"


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


def cell_overrides(spec: Spec, cell: Cell, data_dir: Path, extra: Sequence[str], origins: bool = False):
    """Overrides of a cell in order of precedence (later wins): spec, dataset, setting, variant,
    command line, then the cell's own split and seed. With ``origins``: an
    :class:`~stale.core.config.Overrides` list that also knows where each came from (the spec's
    variant, ``--splits``, ...), so an error blames what the user wrote, not a ``--set`` never
    typed."""
    from stale.core.config import Overrides

    ds = next(d for d in spec.datasets if d.name == cell.dataset)
    variant = spec.variant(cell.variant)
    trained = spec.variant(variant.reuse) if variant.reuse else variant
    where = f"spec {spec.name}"
    out = Overrides()
    out.add(spec.overrides, f"{where}: overrides:")
    if ds.synth is not None:
        root = data_dir / _slug(ds.name)
        dim = _synth_config(ds.synth).dim
        out.add([f"data.annotations={root / 'annotations.json'}", f"data.features.root={root / 'features'}",
                 f"data.features.dim={dim}", f"model.input_dim={dim}"], f"{where}: dataset {ds.name!r}:")
    out.add(ds.overrides, f"{where}: dataset {ds.name!r}:")
    out.add(spec.settings[cell.setting], f"{where}: setting {cell.setting!r}:")
    out.add(trained.overrides, f"{where}: variant {trained.name!r}:")
    out.add(extra, "--set")
    out.add([f"protocol.split={cell.split}"], f"--splits (split {cell.split}):")
    out.add([f"train.seed={cell.seed}"], f"--seeds (seed {cell.seed}):")
    return out if origins else list(out)


def _synth_config(synth: dict):
    from stale.synth.presets import preset

    bad = sorted(set(synth) - {"preset", "seed", "max_videos_per_subset", "length_factor"})
    if bad:
        raise StaleError(f"synth: unknown key(s) {', '.join(bad)} (preset, seed, max_videos_per_subset, "
                         f"length_factor)")
    return preset(str(synth["preset"]), int(synth.get("seed", 0)), synth.get("max_videos_per_subset"),
                  int(synth.get("length_factor", 1)))


def check_data(spec: Spec, data_dir: Path) -> None:
    """A built-in benchmark already in the experiment folder must be the one the spec asks for:
    one made with other settings (another preset, seed or size) is refused before any work --
    reusing it would train the new cells on other data than the spec says."""
    import json

    from stale.core.config import to_dict

    for ds in spec.datasets:
        meta_file = data_dir / _slug(ds.name) / "synth_meta.json"
        if ds.synth is None or not meta_file.is_file():
            continue
        meta = read_json(meta_file)
        have = meta.get("config") if isinstance(meta, dict) else None
        if isinstance(have, dict):
            have = {"length_factor": 1, **have}   # written before the key existed: the default
        want = json.loads(json.dumps(to_dict(_synth_config(ds.synth))))
        if have != want:
            keys = sorted(k for k in want if not isinstance(have, dict) or have.get(k) != want[k])
            raise StaleError(f"{meta_file.parent}: holds the {ds.name} benchmark made with other settings "
                             f"({', '.join(keys) or 'unreadable'}) than spec {spec.name} asks for; use another "
                             f"--out (its cells were trained on that data)")


def prepare_data(spec: Spec, data_dir: Path) -> None:
    """Generate every synthetic dataset the spec names (once; an existing one is reused)."""
    from stale.synth.generate import SynthDataset, default_embed_fn

    check_data(spec, data_dir)
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


def tiou_of(spec: Spec, cell: Cell, cfg) -> str:
    ds = next(d for d in spec.datasets if d.name == cell.dataset)
    if ds.tiou:
        return ds.tiou
    return cfg.data.tiou_preset
