"""``stale features``: look at a feature release before training on it, and convert it.

:func:`inspect_features` reads every video of a source (any layout ``stale.data.features``
reads) and reports what a run would meet: videos found / missing / extra against an annotation
file, channel counts, the length distribution, the feature rate the lengths and durations imply
(and the sampling conventions it matches), non-finite values, and every unreadable video.
:func:`convert_features` writes the toolkit's own layout -- one memory-mapped (T, C) float32
``<prefix><id>.npy`` per video -- from any source (several concatenated along channels).

Convert's output folder: new, empty, or one ``stale features convert`` made from the same sources
(``convert_meta.json`` is the marker; ``convert_index.jsonl`` lists the finished videos, one
line appended per video, so a killed run resumes where it stopped). Nothing else is replaced
without ``overwrite``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from stale.core.errors import StaleError
from stale.core.io import atomic_save_npy, atomic_write_json, read_json, remove_stale_temp_files
from stale.core.logs import get_logger, progress as bar
from stale.data.features import FeatureConfig, StreamConfig, open_features
from stale.data.features.extract_meta import META_NAME as EXTRACT_META, declared_rate, rate_line
from stale.data.features.rate import estimate_rate

log = get_logger("stale.features")
META_NAME = "convert_meta.json"
INDEX_NAME = "convert_index.jsonl"
META_FORMAT = "stale-convert/1"
EXAMPLES = 5


def parse_dims(text: str | int | Sequence[int] | None) -> list[int] | None:
    """``--dim``: ``"2048"`` (the total) or ``"1024,1024"`` (one per source)."""
    if text is None:
        return None
    if isinstance(text, int):
        return [text]
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    try:
        dims = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise StaleError(f"--dim {text!r}: expected a channel count or one per source (e.g. 1024,1024)") from None
    if any(d <= 0 for d in dims):
        raise StaleError(f"--dim {text!r}: channel counts must be positive")
    return dims


def source_config(sources: Sequence[str | os.PathLike], dim=None, kind: str = "auto", prefix: str = "",
                  suffix: str | None = None, key: str | None = None, layout: str = "auto", nonfinite: str = "error",
                  length_mismatch: str = "error") -> FeatureConfig:
    """The :class:`FeatureConfig` of one source or several concatenated along channels;
    ``dim``: the total, or one per source (which also resolves channel-first arrays)."""
    sources = [str(Path(s).expanduser()) for s in sources]
    if not sources:
        raise StaleError("give at least one feature source (a folder, an .h5/.hdf5 or a .pkl file)")
    dims = parse_dims(dim)
    if dims is not None and len(dims) not in (1, len(sources)):
        raise StaleError(f"--dim: give one channel count (the total) or one per source ({len(sources)}), "
                         f"got {len(dims)}")
    total = sum(dims) if dims else None
    common = dict(kind=kind, prefix=prefix, suffix=suffix, key=key, layout=layout, nonfinite=nonfinite,
                  length_mismatch=length_mismatch, dim=total)
    if len(sources) == 1:
        cfg = FeatureConfig(root=sources[0], **common)
    else:
        per = dims if dims is not None and len(dims) == len(sources) else [None] * len(sources)
        cfg = FeatureConfig(root=sources[0], streams=[StreamConfig(root=s, dim=d) for s, d in zip(sources, per)],
                            **common)
    cfg.validate()
    return cfg


# ----------------------------------------------------------------------------- inspect

def _percentiles(values: list[int]) -> dict:
    if not values:
        return {}
    a = np.asarray(values, dtype=np.float64)
    return {"min": int(a.min()), "p5": float(np.percentile(a, 5)), "median": float(np.median(a)),
            "p95": float(np.percentile(a, 95)), "max": int(a.max()), "mean": float(a.mean())}


def _annotation_set(path: str | os.PathLike):
    from stale.data.annotations import load_annotations

    text = str(path)
    if text.startswith("builtin:"):
        from stale.data.resources import annotations_path

        path = annotations_path(text.split(":", 1)[1])
    return load_annotations(path)


def inspect_features(cfg: FeatureConfig, annotations: str | os.PathLike | None = None,
                     progress: bool = False) -> dict:
    """The report of module doc as a JSON-ready dict (``problems`` lists unreadable videos)."""
    reader = open_features(replace(cfg, nonfinite="zero", streams=[replace(s) for s in cfg.streams]))
    available = reader.ids()
    report: dict = {"source": reader.describe(), "kind": reader.kind, "videos_in_source": len(available)}
    hints: list[str] = []
    durations: dict[str, float] = {}
    wanted = available
    problems_first = ""
    if annotations is not None:
        aset = _annotation_set(annotations)
        annotated = {v.id: v for v in aset}
        durations = {k: v.duration for k, v in annotated.items()}
        have = set(available)
        found = [v for v in annotated if v in have]
        missing = [v for v in annotated if v not in have]
        extra = [v for v in available if v not in annotated]
        by_subset: dict[str, int] = {}
        for v in missing:
            by_subset[annotated[v].subset] = by_subset.get(annotated[v].subset, 0) + 1
        report["annotations"] = {"file": str(annotations), "videos": len(annotated), "found": len(found),
                                 "missing": len(missing), "missing_by_subset": by_subset,
                                 "missing_examples": missing[:EXAMPLES], "extra": len(extra),
                                 "extra_examples": extra[:EXAMPLES]}
        if not found and available:
            for pre in ("v_",):
                if sum(a.startswith(pre) and a[len(pre):] in annotated for a in available[:200]):
                    hints.append(f"the source names videos '{pre}<id>' but the annotations do not: "
                                 f"pass --prefix {pre} (data.features.prefix: {pre})")
        wanted = found
        if not found:
            problems_first = f"none of the {len(annotated)} annotated videos has features in {reader.describe()}"
    lengths: dict[str, int] = {}
    channels: dict[int, int] = {}
    first_of: dict[int, str] = {}
    problems: list[str] = [problems_first] if annotations is not None and not wanted else []
    quiet = logging.getLogger("stale.data.features")
    level = quiet.level
    quiet.setLevel(logging.ERROR)   # the non-finite values are counted below, not logged per video
    try:
        for vid in bar(wanted, desc="inspecting features", unit="video", enabled=progress):
            try:
                x = reader.load(vid)
            except StaleError as exc:
                problems.append(str(exc))
                continue
            lengths[vid] = int(x.shape[0])
            channels[int(x.shape[1])] = channels.get(int(x.shape[1]), 0) + 1
            first_of.setdefault(int(x.shape[1]), reader.where(vid))
    finally:
        quiet.setLevel(level)
    if len(channels) > 1:
        common = max(channels, key=channels.get)
        odd = [c for c in channels if c != common]
        problems.append(f"{first_of[odd[0]]}: has {odd[0]} channels but {channels[common]} videos have {common} "
                        f"({sum(channels[c] for c in odd)} videos differ)")
    if len(lengths) > 2 and len(set(lengths.values())) == 1 and len(channels) > 1:
        hints.append("every video has the same first axis but the second varies: channel-first (C, T) arrays? "
                     "pass --dim C or --layout ct")
    index = reader.extract_index() if hasattr(reader, "extract_index") else None
    declared = None
    if index is not None:   # a stale extract folder: its index says how indices map to seconds
        declared = declared_rate(index)
        if annotations is None:
            durations = {v: i["duration"] for v, i in index["videos"].items() if isinstance(i, dict)}
        for vid, t in lengths.items():
            entry = index["videos"].get(vid)
            said = entry.get("num_features") if isinstance(entry, dict) else None
            if said is not None and said != t:
                problems.append(f"{reader.where(vid)}: {t} features but {EXTRACT_META} lists {said}")
    nonfinite = reader.nonfinite_counts
    report.update({
        "videos_read": len(lengths),
        "channels": {str(c): n for c, n in sorted(channels.items())},
        "lengths": _percentiles(list(lengths.values())),
        "rate": estimate_rate(lengths, durations).to_dict() if annotations is not None or durations else None,
        "declared_rate": declared,
        "nonfinite": {"videos": len(nonfinite), "values": int(sum(nonfinite.values())),
                      "examples": [reader.where(v) for v in list(nonfinite)[:EXAMPLES]]},
        "cropped_streams": len(getattr(reader, "cropped", {})),
        "problems": {"count": len(problems), "examples": problems[:EXAMPLES]},
        "hints": hints,
    })
    return report


def format_inspect(report: dict) -> str:
    """The human-readable form of :func:`inspect_features`' report."""
    from stale.data.features.rate import RateEstimate

    out = [f"source: {report['source']} ({report['kind']}), {report['videos_in_source']} videos"]
    ann = report.get("annotations")
    if ann:
        subsets = ", ".join(f"{k} {v}" for k, v in sorted(ann["missing_by_subset"].items()))
        out.append(f"annotations: {ann['file']}: {ann['videos']} videos, {ann['found']} found, {ann['missing']} "
                   f"missing{f' ({subsets})' if subsets else ''}, {ann['extra']} extra (in the source only)")
        if ann["missing_examples"]:
            out.append(f"  missing e.g. {', '.join(ann['missing_examples'])}")
        if ann["extra_examples"]:
            out.append(f"  extra e.g. {', '.join(ann['extra_examples'])}")
    ch = report["channels"]
    out.append(f"read: {report['videos_read']} videos; channels: "
               + (", ".join(f"{c} ({n} videos)" for c, n in ch.items()) if ch else "-"))
    ln = report["lengths"]
    if ln:
        out.append(f"length T: min {ln['min']}, 5% {ln['p5']:.0f}, median {ln['median']:.0f}, 95% {ln['p95']:.0f}, "
                   f"max {ln['max']}")
    if report.get("declared_rate"):
        out.append(f"feature rate declared by {EXTRACT_META}: {rate_line(report['declared_rate'])}")
    if report["rate"] is not None:
        out.append(RateEstimate(**report["rate"]).line())
    nf = report["nonfinite"]
    out.append(f"non-finite values: {nf['values']} in {nf['videos']} videos"
               + (f" (e.g. {nf['examples'][0]}; train with data.features.nonfinite=zero to replace them by 0)"
                  if nf["videos"] else ""))
    if report.get("cropped_streams"):
        out.append(f"streams of different lengths cropped: {report['cropped_streams']} videos")
    pr = report["problems"]
    out.append(f"problems: {pr['count']}")
    out += [f"  {p}" for p in pr["examples"]]
    out += [f"hint: {h}" for h in report["hints"]]
    return "\n".join(out)


# ----------------------------------------------------------------------------- convert

@dataclass
class ConvertSummary:
    """What :func:`convert_features` did."""

    out: Path
    written: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    dim: int | None = None
    prefix: str = ""
    nonfinite: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (f"converted {len(self.written)} videos, already done {len(self.resumed)}"
                + (f", {len(self.nonfinite)} with non-finite values replaced by 0" if self.nonfinite else "")
                + f"; (T, {self.dim}) float32 .npy in {self.out} (data.features.root={self.out}"
                + (f", data.features.prefix={self.prefix}" if self.prefix else "") + ")")


def _settings(cfg: FeatureConfig) -> dict:
    streams = [{"root": os.path.abspath(s.root), "kind": s.kind, "prefix": s.prefix, "suffix": s.suffix,
                "key": s.key, "layout": s.layout, "dim": s.dim} for s in cfg.resolved_streams()]
    return {"sources": streams, "dim": cfg.dim, "nonfinite": cfg.nonfinite, "length_mismatch": cfg.length_mismatch}


def _done(out: Path) -> dict[str, dict]:
    """Videos listed in the index (a partial last line of a killed run is ignored)."""
    path = out / INDEX_NAME
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
                done[rec["id"]] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return done


def check_convert_output(cfg: FeatureConfig, out: str | os.PathLike, overwrite: bool = False) -> dict:
    """The checks of the module doc, before anything is read; returns the finished videos."""
    from stale.core.output_checks import Output, check_outputs

    out = Path(out)
    roots = [Path(r).expanduser() for r in cfg.roots()]
    check_outputs([Output(out, "dir", "--out", exists_ok=True)], inputs=[r for r in roots if not r.is_dir()],
                  input_dirs=[r for r in roots if r.is_dir()], overwrite=overwrite)
    if not out.is_dir():
        return {}
    meta = out / META_NAME
    if not meta.is_file():
        other = next((p.name for p in sorted(out.iterdir()) if not p.name.startswith(".")), None)
        if other is not None and not overwrite:
            raise StaleError(f"--out {out}: holds files stale features convert did not make (e.g. {other}); "
                             f"choose a new folder or pass --overwrite")
        return {}
    old = read_json(meta, "convert meta")
    if not isinstance(old, dict) or old.get("format") != META_FORMAT:
        raise StaleError(f"{meta}: not a stale features convert index (format {META_FORMAT})")
    if old.get("settings") != _settings(cfg) and not overwrite:
        raise StaleError(f"--out {out}: was converted from other sources or settings ({meta}); choose a new "
                         f"folder or pass --overwrite")
    return {} if overwrite else _done(out)


def convert_features(cfg: FeatureConfig, out: str | os.PathLike, overwrite: bool = False,
                     progress: bool = False) -> ConvertSummary:
    """Write every video of the source ``cfg`` into ``out`` as ``<prefix><id>.npy`` (module doc)."""
    out = Path(out)
    done = check_convert_output(cfg, out, overwrite)
    reader = open_features(cfg)
    ids = reader.ids()
    if not ids:
        streams = getattr(reader, "streams", [])
        counts = "; ".join(f"{s.describe()} holds {len(s.ids())}" for s in streams)
        raise StaleError(f"no videos found in {reader.describe() if not streams else 'every stream (' + counts + ')'} "
                         f"(prefix {cfg.prefix!r}, key {cfg.key or '{id}'!r}); check --prefix / --key / --kind")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out)
    prefix = cfg.prefix
    summary = ConvertSummary(out, prefix=prefix, dim=cfg.dim)
    settings = _settings(cfg)
    atomic_write_json(out / META_NAME, {"format": META_FORMAT, "settings": settings, "prefix": prefix,
                                        "videos": len(ids), "complete": False})
    if overwrite and (out / INDEX_NAME).exists():
        (out / INDEX_NAME).unlink()
    first = None
    for rec in done.values():
        summary.dim, first = summary.dim or rec.get("channels"), first or rec["id"]
    with open(out / INDEX_NAME, "a", encoding="utf-8") as index:
        for vid in bar(ids, desc="converting features", unit="video", enabled=progress):
            target = out / f"{prefix}{vid}.npy"
            if vid in done and target.is_file():
                summary.resumed.append(vid)
                continue
            if target.exists() and not overwrite:
                raise StaleError(f"{target}: exists but is not in {out / INDEX_NAME}; pass --overwrite to replace it")
            x = reader.load(vid)
            if summary.dim is None:
                summary.dim, first = int(x.shape[1]), vid
            elif x.shape[1] != summary.dim:
                raise StaleError(f"{reader.where(vid)}: has {x.shape[1]} channels but {reader.where(first)} has "
                                 f"{summary.dim}")
            atomic_save_npy(target, x)
            n_bad = reader.nonfinite_counts.get(vid, 0)
            if n_bad:
                summary.nonfinite[vid] = n_bad
            index.write(json.dumps({"id": vid, "length": int(x.shape[0]), "channels": int(x.shape[1]),
                                    "nonfinite": n_bad}) + "\n")
            index.flush()
            summary.written.append(vid)
    atomic_write_json(out / META_NAME, {"format": META_FORMAT, "settings": settings, "prefix": prefix,
                                        "videos": len(ids), "complete": True, "channels": summary.dim,
                                        "nonfinite_videos": len(summary.nonfinite)})
    return summary
