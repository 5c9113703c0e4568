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


def tiou_of(spec: Spec, cell: Cell, cfg) -> str:
    ds = next(d for d in spec.datasets if d.name == cell.dataset)
    if ds.tiou:
        return ds.tiou
    return cfg.data.tiou_preset
