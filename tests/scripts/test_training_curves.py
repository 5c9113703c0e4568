"""scripts/training_curves.py: the collapse check finds jumps of L_c and only those."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("training_curves", REPO / "scripts" / "training_curves.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_jump_is_a_rise_above_ratio_times_the_earlier_low():
    tc = _module()
    hist = [{"epoch": e, "train_cls": v} for e, v in enumerate([1.8, 1.7, 3.0, 1.4, 1.3, 1.35, 2.1], 1)]
    assert tc.jumps(hist, 1.5) == [3, 7]
    assert tc.jumps(hist, 2.0) == []
    assert tc.jumps([{"epoch": 1, "train_total": 1.0}], 1.5) == []


def test_cli_counts_runs_and_draws_the_curves(tmp_path, capsys):
    tc = _module()
    for seed, series in enumerate([[1.8, 1.2, 1.0], [1.8, 1.7, 3.1]]):
        cell = tmp_path / "exp" / "cells" / "STALE" / "aligned" / "75_25" / f"split_0_seed_{seed}"
        cell.mkdir(parents=True)
        (cell / "cell.json").write_text(json.dumps({"status": "done", "cell": {
            "variant": "STALE", "dataset": "aligned", "setting": "75/25", "split": 0, "seed": seed}}))
        (cell / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e, "train_cls": v, "train_gate_coverage": 0.3, "val_total": v}) + "\n"
            for e, v in enumerate(series, 1)))
    assert tc.main([str(tmp_path / "exp"), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "| STALE | aligned | 2 | 1 | split 0 seed 1: [3] |" in out
    assert (tmp_path / "c.png").stat().st_size > 1000
