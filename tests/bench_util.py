"""Loading a benchmark script (benchmarks/*.py, not a package) as a module for its tests."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@contextlib.contextmanager
def bench_script(name: str):
    """``benchmarks/<name>.py`` imported as the module ``name`` (registered while in use, so its
    dataclasses and pickling work), removed from ``sys.modules`` afterwards."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
