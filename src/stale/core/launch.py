"""Running a list of jobs: one after another or ``jobs`` at once on this machine, or as Slurm
jobs (or submitit's local executor) through submitit.

One launcher for the toolkit: ``stale experiment`` runs its cells with it, ``stale extract
--shards N`` its shards. A job is a call ``fn(*args, threads=..., device=...)``: locally with
several jobs at once, each process gets the CPU threads divided between the jobs, or one GPU
(``cuda:slot mod GPUs``) when there are GPUs; local worker processes end with this process,
even when it is killed (:func:`stale.core.lifetime.die_with_parent`). Under submitit, a job's
``threads`` are ``slurm["threads"]`` and its device is left to the job (``None``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from stale.core.errors import StaleError
from stale.core.lifetime import die_with_parent

LAUNCHERS = ("local", "slurm", "submitit-local")


@dataclass
class JobOutcome:
    """One finished job: its position in the list, what it returned, or (submitit only: a
    local job's exception propagates) the one-line error of a job that failed or crashed."""

    index: int
    value: Any = None
    error: str | None = None
    job_id: str | None = None


def cpu_threads(jobs: int) -> int:
    """CPU threads per job when ``jobs`` run at once on this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA setup is a machine without GPUs here
        return 0


def _slot_call(fn: Callable, args: tuple, threads: int | None, slot: int) -> Any:
    n = gpu_count()
    return fn(*args, threads=threads, device=f"cuda:{slot % n}" if n else None)


def run_jobs(fn: Callable, calls: Sequence[tuple], launcher: str, jobs: int, folder: str | os.PathLike,
             slurm: dict | None = None, on_done: Callable[[JobOutcome], None] | None = None) -> list[JobOutcome]:
    """Run ``fn(*args, threads=, device=)`` for every ``args`` in ``calls``; ``on_done`` is called
    as each job finishes (in finishing order); returns the outcomes in the order of ``calls``.

    ``launcher``: ``local`` (``jobs`` processes, in this process when 1), ``slurm`` or
    ``submitit-local`` (submitit's files in ``folder``); ``slurm``: partition, time (minutes),
    gpus, cpus, parallel (array parallelism, default ``jobs``) and threads per job.
    """
    if launcher not in LAUNCHERS:
        raise StaleError(f"--launcher must be local, slurm or submitit-local, got {launcher!r}")
    slurm = slurm or {}
    done = on_done or (lambda outcome: None)
    outcomes: list[JobOutcome | None] = [None] * len(calls)

    def finish(outcome: JobOutcome) -> None:
        outcomes[outcome.index] = outcome
        done(outcome)

    if launcher == "local" and jobs <= 1:
        for i, args in enumerate(calls):
            finish(JobOutcome(i, _slot_call(fn, tuple(args), None, 0)))
    elif launcher == "local":
        import multiprocessing as mp
        from concurrent import futures

        threads = None if gpu_count() else cpu_threads(jobs)
        # workers end with this process, even when it is killed (no orphan goes on working)
        with futures.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                         initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futs = {pool.submit(_slot_call, fn, tuple(args), threads, i): i for i, args in enumerate(calls)}
            for fut in futures.as_completed(futs):
                finish(JobOutcome(futs[fut], fut.result()))
    else:
        for outcome in _submitit(fn, calls, launcher, jobs, Path(folder), slurm):
            finish(outcome)
    return [o for o in outcomes if o is not None]


def _submitit(fn: Callable, calls: Sequence[tuple], launcher: str, jobs: int, folder: Path, slurm: dict):
    try:
        import submitit
    except ImportError:  # pragma: no cover - declared dependency
        raise StaleError(f"--launcher {launcher} needs the submitit package (pip install submitit)") from None
    if launcher == "slurm":
        ex = submitit.AutoExecutor(folder=str(folder))
        params = {"timeout_min": int(slurm.get("time", 60)), "slurm_partition": slurm.get("partition"),
                  "gpus_per_node": int(slurm.get("gpus", 0)), "cpus_per_task": int(slurm.get("cpus", 2)),
                  "slurm_array_parallelism": int(slurm.get("parallel") or jobs)}
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    else:
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=int(slurm.get("time", 60)))
    with ex.batch():
        handles = [ex.submit(fn, *args, threads=slurm.get("threads"), device=None) for args in calls]
    for i, h in enumerate(handles):
        try:
            yield JobOutcome(i, h.result(), job_id=str(h.job_id))
        except Exception as exc:  # noqa: BLE001 - a crashed job is a failed job, reported by the caller
            yield JobOutcome(i, error=f"job {h.job_id}: {' '.join(str(exc).split())[:300]}", job_id=str(h.job_id))
