"""An experiment spec: its datasets, settings, splits, seeds and named variants, parsed and
checked (docs/experiments.md), and the mapping form that travels to workers and is kept in an
experiment folder's ``experiment.json``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from stale.core.errors import StaleError

SPEC_FORMAT = "stale-experiment/1"
CONTROL_KEY = "control_of"


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


#: the most values one ``--splits`` / ``--seeds`` range may name (each is a cell to train)
MAX_RANGE_VALUES = 10_000

#: where choices are made (defaults, switches, hyper-parameters) and where numbers are reported
DEV_SPLITS = (0, 1, 2)
TEST_SPLITS = (3, 4, 5, 6, 7, 8, 9)
SPLIT_NAMES = {"dev": DEV_SPLITS, "test": TEST_SPLITS}


def parse_range(text: str | int | Sequence[int], what: str = "--splits") -> list[int]:
    """``"0-9"``, ``"0,2,5"``, ``3``, a list, or (for splits) ``dev`` = 0-2 / ``test`` = 3-9 ->
    sorted unique ints."""
    if isinstance(text, int) and not isinstance(text, bool):
        return [text]
    if isinstance(text, str) and what.endswith("splits") and text.strip().lower() in SPLIT_NAMES:
        return list(SPLIT_NAMES[text.strip().lower()])
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
                if b - a + 1 > MAX_RANGE_VALUES:   # one cell each: a typo must not hang the command
                    raise StaleError(f"{what} {text!r}: range {part} holds {b - a + 1} values; at most "
                                     f"{MAX_RANGE_VALUES}")
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


#: settings besides ``inference.*`` that a variant reusing runs may change at prediction (windowed
#: detection of a run trained in resize mode: stale.pipeline.windowed)
PREDICT_KEYS = ("two_stage.proposals", "data.sampling", "data.time_step", "data.window_overlap",
                "data.window_edge_weight")


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
            if not (key.startswith("inference.") or key in PREDICT_KEYS):
                raise StaleError(f"{where}: variants.{v.name}.predict: {o!r}: prediction can change "
                                 f"inference.*, {', '.join(PREDICT_KEYS)} only")
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


def merge_specs(old: dict, new: dict) -> dict:
    """The spec mapping of a folder filled by several invocations: datasets, settings, variants
    (earlier ones first), splits and seeds of both; everything else from ``new``."""
    out = dict(new)
    for key in ("datasets", "settings", "variants"):
        out[key] = {**(old.get(key) or {}), **(new.get(key) or {})}
    for key in ("splits", "seeds"):
        out[key] = sorted(set(old.get(key) or []) | set(new.get(key) or []))
    if out.get("reference") is None and old.get("reference") in out["variants"]:
        out["reference"] = old["reference"]   # an invocation that ran other variants keeps it
    return out


def spec_mapping(spec: Spec) -> dict:
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


def split_role(splits: Sequence[int]) -> str:
    """What numbers over ``splits`` may be used for: ``dev`` (choose), ``held-out`` (report), or
    ``mixed`` (dev and held-out splits together: neither)."""
    got = set(splits)
    if got <= set(DEV_SPLITS):
        return "dev"
    if got <= set(TEST_SPLITS):
        return "held-out"
    return "mixed"
