"""``stale extract --shards N --launcher local|slurm|submitit-local``: the N shards of an
extraction submitted as N jobs through the toolkit's launcher (:mod:`stale.core.launch`, the one
``stale experiment`` uses), all writing into one folder (:mod:`stale.pipeline.extract_index`).

The folder is checked here before anything is submitted; each job loads the image tower,
resolves ``--device auto`` on the machine it runs on (a Slurm node may have a GPU the login node
lacks; locally with GPUs, shard ``i`` takes ``cuda:i mod GPUs``) and extracts its shard. The
summaries are merged; a failed shard is an error naming it after the others finished (its
videos are redone by running the same command again: resume is per video).
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

from stale.core.errors import StaleError
from stale.core.launch import JobOutcome, run_jobs
from stale.core.logs import get_logger
from stale.pipeline.extract import (SUBMITIT_DIR, ExtractConfig, ExtractSummary, check_extract_output,
                                    extract_videos)

log = get_logger("extract")


def shard_job(videos: list[str], out: str, cfg: ExtractConfig, threads: int | None = None,
              device: str | None = None) -> dict:
    """One shard (``cfg.shard``) in this process: the job the launcher runs; returns the
    :class:`ExtractSummary` as a dict. ``device``: the launcher's GPU for this job, used when
    ``cfg.device`` is ``auto``."""
    from stale.text.image_tower import load_image_encoder
    from stale.training.runtime import resolve_device, set_threads

    set_threads(threads)
    name = device if device is not None and cfg.device == "auto" else cfg.device
    cfg = replace(cfg, device=str(resolve_device(name)))
    encoder = load_image_encoder(cfg.arch, cfg.weights, cfg.seed)
    return asdict(extract_videos([Path(v) for v in videos], out, cfg, encoder))


def extract_shards(inputs, out: str | os.PathLike, cfg: ExtractConfig, shards: int, launcher: str = "local",
                   slurm: dict | None = None) -> ExtractSummary:
    """Extract ``inputs`` into ``out`` as ``shards`` jobs run by ``launcher`` (module doc);
    ``slurm``: partition, time, gpus, cpus per job. Returns the merged summary."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise StaleError(f"--shards: must be a positive integer, got {shards!r}")
    if cfg.shard is not None:
        raise StaleError("give --shard I/N (run one shard here) or --shards N (submit all N), not both")
    videos = check_extract_output(inputs, out, replace(cfg, shard=(0, shards)))
    Path(out).mkdir(parents=True, exist_ok=True)
    calls = [([str(v) for v in videos], str(out), replace(cfg, shard=(i, shards), progress=False))
             for i in range(shards)]
    summary = ExtractSummary()
    failed: list[str] = []

    def done(o: JobOutcome) -> None:
        if o.error is not None:
            failed.append(f"shard {o.index}/{shards}: {o.error}")
            log.error("shard %d/%d failed: %s", o.index, shards, o.error)
            return
        part = ExtractSummary(**o.value)
        log.info("shard %d/%d: %s", o.index, shards, part.line())
        summary.extracted += part.extracted
        summary.resumed += part.resumed
        summary.bad.update(part.bad)
        summary.truncated += part.truncated

    run_jobs(shard_job, calls, launcher, shards, Path(out) / SUBMITIT_DIR,
             {**(slurm or {}), "parallel": shards}, on_done=done)
    if failed:
        raise StaleError(f"{len(failed)} of {shards} shards failed ({failed[0]}); run the same command "
                         f"again to redo their videos")
    return summary
