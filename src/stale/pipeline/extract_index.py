"""The index of a ``stale extract`` output folder, shared by the jobs that fill it.

``extract_meta.json``: the settings (arch, weights, clip_frames, stride, ...) and per video its
fps, num_frames, num_features and duration, plus the skipped videos; ``videos.json``: an
ActivityNet-layout annotation stub (subset ``testing``, durations, no annotations) for ``stale
predict --annotations``.

Shards (``shard=(I, N)``): video ``v`` belongs to shard ``crc32(v) mod N`` (:func:`shard_of`:
the same whatever the other inputs, so adding videos moves none), and a shard writes its index
part ``extract_meta.shard-I-of-N.json``; every reader merges the parts with ``extract_meta.json``
(:func:`read_index`), and each shard rewrites ``videos.json`` from the merged view until it sees
no part change (so the last one to finish leaves it complete).
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

from stale.core.errors import StaleError
from stale.core.io import atomic_write_json
from stale.data.features.extract_meta import META_FORMAT, META_NAME, PART_GLOB, SETTING_KEYS, read_index

log = logging.getLogger(__name__)

INDEX_NAME = "videos.json"


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``--shard I/N`` (or an ``(I, N)`` pair) -> (I, N); a malformed value is a one-line error."""
    if shard is None or isinstance(shard, tuple):
        return shard
    try:
        i, n = (int(p) for p in str(shard).split("/"))
    except ValueError:
        raise StaleError(f"--shard {shard!r}: expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise StaleError(f"--shard {shard!r}: must be I/N with 0 <= I < N")
    return i, n


def shard_of(video_id: str, num_shards: int) -> int:
    """The shard (0..num_shards-1) of a video: ``crc32(id) mod num_shards``."""
    return zlib.crc32(video_id.encode("utf-8")) % num_shards


def part_name(shard: tuple[int, int]) -> str:
    """The file name of shard I of N's index part."""
    return f"extract_meta.shard-{shard[0]}-of-{shard[1]}.json"


def load_index(out: Path, settings: dict, overwrite: bool) -> dict:
    """The index a run continues: the folder's (with ``settings`` applied), or a fresh one when
    there is none -- or, with ``overwrite``, when it is damaged or made with other settings
    (without ``overwrite`` those are errors)."""
    path = out / META_NAME
    fresh = {**settings, "videos": {}, "skipped": {}}
    try:
        meta = read_index(out)
    except StaleError as exc:
        if not overwrite:
            raise
        log.warning("%s; --overwrite: starting a new index", exc)
        return fresh
    if meta is None:
        return fresh
    diff = [k for k in SETTING_KEYS if meta.get(k) != settings[k]]
    if diff:
        if not overwrite:
            raise StaleError(f"{path}: folder holds features made with other settings ({', '.join(diff)}: "
                             f"{[meta.get(k) for k in diff]} vs {[settings[k] for k in diff]}); "
                             f"use --overwrite or another --out")
        log.warning("%s: other settings before (%s); starting a new index", path, ", ".join(diff))
        return fresh
    return {**meta, **settings, "skipped": dict(meta.get("skipped", {}))}


def _write_stub(out: Path, videos: dict) -> None:
    database = {vid: {"subset": "testing", "duration": info["duration"], "url": "", "annotations": []}
                for vid, info in sorted(videos.items())}
    atomic_write_json(out / INDEX_NAME, {"version": "stale-extract", "taxonomy": [], "database": database})


def write_index(out: Path, meta: dict, shard: tuple[int, int] | None = None, settle: bool = False) -> None:
    """The index (a shard: its part, holding its own videos) and ``videos.json`` of every video
    indexed; ``settle``: rewrite the latter until no part changed meanwhile (module doc)."""
    if shard is None:
        atomic_write_json(out / META_NAME, meta)
        _write_stub(out, meta["videos"])
        return
    own = {k: v for k, v in meta["videos"].items() if shard_of(k, shard[1]) == shard[0]}
    skipped = {k: v for k, v in meta["skipped"].items() if shard_of(Path(k).stem, shard[1]) == shard[0]}
    atomic_write_json(out / part_name(shard), {**meta, "videos": own, "skipped": skipped, "shard": list(shard)})
    seen = None
    while True:
        stamp = sorted((p.name, p.stat().st_mtime_ns) for p in out.glob(PART_GLOB))
        if stamp == seen:
            return
        _write_stub(out, (read_index(out) or {"videos": {}})["videos"])
        if not settle:
            return
        seen = stamp
