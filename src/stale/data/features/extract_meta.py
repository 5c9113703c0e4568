"""Reading the index ``stale extract`` writes next to its features, and the time axis it declares.

``extract_meta.json`` (and, while shards run, their parts ``extract_meta.shard-I-of-N.json``,
merged by :func:`read_index`) holds the sampling settings -- ``clip_frames``, ``stride``, ``fps``
(the rate videos were resampled to, or null for each video's own), ``convention`` and
``features_per_second`` -- and per video its ``fps`` and ``num_features``. :func:`timeline`
turns them into the :class:`~stale.data.timeline.NativeTimeline` that maps a feature index to
seconds (feature ``i`` is centred at ``(i * stride + clip_frames / 2) / fps``), so nothing is
guessed. The writing side is :mod:`stale.pipeline.extract_index`.
"""

from __future__ import annotations

from pathlib import Path

from stale.core.errors import StaleError
from stale.core.io import read_json
from stale.data.timeline import NativeTimeline

META_NAME = "extract_meta.json"
PART_GLOB = "extract_meta.shard-*-of-*.json"
META_FORMAT = "stale-extract/1"
# settings that must agree between runs writing into the same folder
SETTING_KEYS = ("arch", "weights", "clip_frames", "stride", "frames_per_clip", "prefix", "fps")


def _read_one(path: Path) -> dict:
    meta = read_json(path, path.name)
    if (not isinstance(meta, dict) or meta.get("format") != META_FORMAT
            or not isinstance(meta.get("videos"), dict)):
        raise StaleError(f"{path}: not an index written by stale extract (format {META_FORMAT!r} with a "
                         f"'videos' mapping); choose another --out")
    return meta


def read_index(out: Path) -> dict | None:
    """The folder's index: ``extract_meta.json`` merged with the shards' parts (None when there
    is none); a damaged one, or parts made with other settings, is an error."""
    paths = ([out / META_NAME] if (out / META_NAME).is_file() else []) + sorted(out.glob(PART_GLOB))
    if not paths:
        return None
    merged: dict | None = None
    for path in paths:
        meta = _read_one(path)
        if merged is None:
            merged = {**meta, "videos": dict(meta["videos"]), "skipped": dict(meta.get("skipped", {}))}
            first = path
            continue
        diff = [k for k in SETTING_KEYS if meta.get(k) != merged.get(k)]
        if diff:
            raise StaleError(f"{path}: made with other settings than {first.name} ({', '.join(diff)}); "
                             f"remove one, or use another --out")
        merged["videos"].update(meta["videos"])
        merged["skipped"].update(meta.get("skipped", {}))
    merged.pop("shard", None)
    return merged


def timeline(meta: dict, video_id: str) -> NativeTimeline | None:
    """Feature index <-> seconds of ``video_id`` from a folder's index (None: not in it)."""
    info = meta["videos"].get(video_id)
    if not isinstance(info, dict) or not info.get("fps"):
        return None
    return NativeTimeline(int(meta["stride"]), int(meta["clip_frames"]), float(info["fps"]))


def declared_rate(meta: dict) -> dict:
    """The feature rate a folder's index declares: the settings, and the rate (features per
    second) of the folder (``fps`` fixed) or of its videos (each at its own rate: min / max)."""
    rates = sorted(float(v["fps"]) / int(meta["stride"]) for v in meta["videos"].values()
                   if isinstance(v, dict) and v.get("fps"))
    fixed = meta.get("fps")
    return {"convention": meta.get("convention"), "clip_frames": meta.get("clip_frames"),
            "stride": meta.get("stride"), "fps": fixed,
            "features_per_second": fixed / int(meta["stride"]) if fixed else None,
            "video_rate_min": rates[0] if rates else None, "video_rate_max": rates[-1] if rates else None,
            "videos": len(rates)}


def rate_line(rate: dict) -> str:
    """One line for :func:`declared_rate`'s result."""
    c, s = rate["clip_frames"], rate["stride"]
    if rate["features_per_second"] is not None:
        fps = rate["fps"]
        text = (f"{rate['features_per_second']:g} features/s: {c}-frame clips every {s} frames at {fps:g} fps"
                + (f" ({rate['convention']})" if rate["convention"] else ""))
        return f"{text}; feature i is centred at (i * {s} + {c / 2:g}) / {fps:g} s"
    if rate["videos"] == 0:
        return f"{c}-frame clips every {s} frames at each video's own rate (no video indexed)"
    span = (f"{rate['video_rate_min']:g}" if rate["video_rate_min"] == rate["video_rate_max"]
            else f"{rate['video_rate_min']:g}-{rate['video_rate_max']:g}")
    return (f"{span} features/s: {c}-frame clips every {s} frames at each video's own rate (videos[id].fps); "
            f"feature i is centred at (i * {s} + {c / 2:g}) / fps s")
