"""benchmarks/gpu_check.sh --cpu-smoke: every part of the GPU check runs and lands in one JSON."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
PARTS = ["env", "bench_default", "bench_fast", "predict_batch_1", "evaluation", "cuda_tests", "extract"]


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="needs bash and coreutils timeout")
def test_cpu_smoke_writes_one_json_with_every_part(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--cpu-smoke"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert [p.name for p in tmp_path.iterdir()] == ["check.json"]   # no temporary file left
    assert report["schema"] == "stale-gpu-check/1" and report["mode"] == "cpu-smoke"
    env = report["env"]
    for key in ("date", "torch", "cuda", "device", "python"):
        assert key in env, key
    assert env["device"].startswith("cpu")
    assert list(report["parts"]) == PARTS
    for name, part in report["parts"].items():
        assert part["status"] == "ok", (name, part)
        assert part["rc"] == 0 and part["seconds"] >= 0 and part["limit_s"] > 0
    s = report["summary"]
    for path in ("default", "fast"):
        t = s["train"][path]
        for key in ("step_s", "activitynet_epoch_s", "activitynet_15_epochs_s"):
            assert _positive(t[key]), (path, key, t)
        assert math.isclose(t["activitynet_15_epochs_s"], 1500 * t["step_s"], rel_tol=1e-9)
    assert s["train"]["default"]["micro_batch"] == 10 and s["train"]["default"]["grad_checkpointing"]
    assert s["train"]["fast"]["micro_batch"] is None and not s["train"]["fast"]["grad_checkpointing"]
    assert s["inference"]["batch_1"]["batch"] == 1
    assert s["inference"]["full_batch"]["batch"] == 8   # --quick's batch
    for case in ("full_batch", "batch_1"):
        assert _positive(s["inference"][case]["videos_per_s"])
    assert s["evaluation_s"] and all(_positive(v) for v in s["evaluation_s"].values())
    tests = s["cuda_tests"]
    assert tests["tests"] >= 1 and tests["failed"] == tests["errors"] == 0
    assert tests["passed"] + tests["skipped"] == tests["tests"]
    assert s["meets_targets"] is None and s["targets"]["train_step_s_max"] == 0.08
    # stale extract with 0 and 1 decode workers: frames/s, and the same bytes either way
    assert [e["case"] for e in s["extract"]] == ["1 process, --workers 0", "1 process, --workers 1"]
    assert all(_positive(e["decoded_frames_per_s"]) and e["same_bytes"] for e in s["extract"])
    # the raw benchmark results are kept, with their derived epoch times
    for r in report["bench"]["bench_default"]["results"]:
        assert _positive(r["value"])
        assert ("activitynet_epoch_s" in r["derived"]) == (r["unit"] == "ms/step")


def test_a_failing_part_is_recorded_not_fatal(tmp_path):
    # a PYTHON that cannot run anything: every part fails fast, the JSON still says so
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\n[ "$1" = - ] && exec "$GPU_CHECK_REAL" "$@"\n'
                    "echo 'no torch here' >&2; exit 3\n")
    fake.chmod(0o755)
    out = tmp_path / "check.json"
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--cpu-smoke"], cwd=tmp_path,
                          env=_env(PYTHON=str(fake), GPU_CHECK_REAL=sys.executable),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    bench = report["parts"]["bench_default"]
    assert bench["status"] == "failed" and bench["rc"] == 3 and "no torch here" in bench["log_tail"]
    assert report["parts"]["env"]["status"] == "ok"   # the scripts fed on stdin ran for real
    assert report["summary"]["train"]["default"] is None and report["summary"]["cuda_tests"] is None
    assert report["parts"]["extract"]["status"] == "failed" and report["summary"]["extract"] is None


def test_usage_errors_exit_2(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--nope"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown option --nope" in proc.stderr
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "missing" / "x.json")], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "no such folder" in proc.stderr
