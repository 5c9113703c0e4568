"""Running cells: one after another or ``jobs`` at once on this machine (one GPU each when there
are GPUs, the CPU threads divided otherwise), or as Slurm jobs through submitit."""

from __future__ import annotations

import os
from pathlib import Path

from stale.core.errors import StaleError
from stale.core.io import atomic_write_json
from stale.core.lifetime import die_with_parent
from stale.core.logs import get_logger
from stale.experiments.cell_run import run_cell
from stale.experiments.cells import Cell

log = get_logger("experiment")


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


def launch(spec_map: dict, root: Path, cells: list[Cell], extra: list[str], jobs: int, launcher: str,
           slurm: dict, ddp_procs: int = 1) -> None:
    """Run ``cells``; ``slurm``: the Slurm job options (partition, time, gpus, cpus, parallel,
    threads); ``ddp_procs``: DDP processes that train each cell."""
    if launcher == "local":
        if jobs == 1:
            for i, c in enumerate(cells):
                log.info("[%d/%d] %s", i + 1, len(cells), c.key)
                _local_worker((spec_map, str(root), c, extra, None, 0, int(ddp_procs)))
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = None if _gpus() else _cpu_threads(jobs)
        ctx = mp.get_context("spawn")
        # workers end with this process, even when it is killed (no orphan trains on in a cell)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futs = {pool.submit(_local_worker, (spec_map, str(root), c, extra, threads, i,
                                                int(ddp_procs))): c
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
                                 int(ddp_procs)) for c in cells]
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
