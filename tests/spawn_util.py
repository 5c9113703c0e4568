"""Helpers for tests that spawn DDP ranks: a free loopback port and a bounded join."""

from __future__ import annotations

import socket
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(fn, args: tuple, nprocs: int, timeout_s: float = 90.0) -> None:
    """Spawn ``fn(rank, *args)`` in ``nprocs`` processes; fail (and kill them) after ``timeout_s``."""
    import torch.multiprocessing as mp

    ctx = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"DDP ranks did not finish in {timeout_s:.0f} s (deadlock?)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
