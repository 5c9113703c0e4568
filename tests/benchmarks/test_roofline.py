"""Smoke test of benchmarks/roofline.py at tiny sizes: the same code as the real run, every
workload but the training children (bench_model's own test covers that case's code)."""

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "roofline.py"


def test_quick_run_prints_the_table_and_both_precisions(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STALE_NATIVE_BF16", "1")        # auto -> bf16 whatever this CPU has
    spec = importlib.util.spec_from_file_location("roofline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        assert module.main(["--quick", "--threads", "1", "--skip", "train", "--json", str(tmp_path / "r.json")]) == 0
    finally:
        for name in ("bench_model", "bench_evaluation"):
            sys.modules.pop(name, None)
    out = capsys.readouterr().out
    assert "precision auto -> bf16 (STALE_NATIVE_BF16=1)" in out and "load average" in out
    raw = json.loads((tmp_path / "r.json").read_text())
    assert raw["gemm"]["float32"] > 0 and raw["gemm"]["bf16"] > 0
    tower, pred = raw["image_tower"], raw["predict"]
    assert tower["float32"]["precision"] == "float32" and tower["auto"]["precision"] == "bf16"
    assert tower["auto"]["min_cosine"] >= 0.999 and tower["gflop_per_unit"] > 10   # ViT-B/16: ~22 GFLOP
    assert pred["float32"]["precision"] == "float32" and pred["auto"]["precision"] == "bf16"
    assert pred["float32"]["rate"] > 0 and pred["auto"]["rate"] > 0 and pred["gflop_per_unit"] > 0
    assert raw["evaluation"]["seconds"] > 0
    for workload in ("image tower", "STALE predict", "evaluation", "GEMM"):
        assert f"| {workload}" in out
    assert out.count("STALE prediction profile") == 2 and "| mask localiser |" in out
