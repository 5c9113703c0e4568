"""Running cells with the toolkit's launcher (:mod:`stale.core.launch`): one after another or
``jobs`` at once on this machine (one GPU each when there are GPUs, the CPU threads divided
otherwise), or as Slurm jobs through submitit; a crashed Slurm job is recorded as a failed cell."""

from __future__ import annotations

from pathlib import Path

from stale.core.io import atomic_write_json
from stale.core.launch import JobOutcome, run_jobs
from stale.core.logs import get_logger
from stale.experiments.cell_run import run_cell
from stale.experiments.cells import Cell

log = get_logger("experiment")


def _cell_job(spec_map: dict, out: str, cell: Cell, extra: list[str], ddp: int, threads: int | None = None,
              device: str | None = None) -> dict:
    # a cell trained by several DDP processes places them itself (one GPU each)
    return run_cell(spec_map, out, cell, extra, threads, device if ddp <= 1 else None, ddp)


def launch(spec_map: dict, root: Path, cells: list[Cell], extra: list[str], jobs: int, launcher: str,
           slurm: dict, ddp_procs: int = 1) -> None:
    """Run ``cells``; ``slurm``: the Slurm job options (partition, time, gpus, cpus, parallel,
    threads); ``ddp_procs``: DDP processes that train each cell."""

    def done(o: JobOutcome) -> None:
        cell = cells[o.index]
        if o.error is None:
            log.info("[%d/%d] %s: %s%s", o.index + 1, len(cells), cell.key, o.value.get("status"),
                     f" (job {o.job_id})" if o.job_id else "")
            return
        cell.folder(root).mkdir(parents=True, exist_ok=True)
        atomic_write_json(cell.folder(root) / "cell.json", {"cell": cell.__dict__, "key": cell.key,
                                                            "status": "failed", "error": o.error})

    calls = [(spec_map, str(root), c, list(extra), int(ddp_procs)) for c in cells]
    run_jobs(_cell_job, calls, launcher, jobs, root / "submitit", slurm, on_done=done)
