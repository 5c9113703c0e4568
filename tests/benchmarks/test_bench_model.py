"""Smoke test of benchmarks/bench_model.py: tiny sizes, the same measuring code as the real run."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_model.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_model"] = module   # dataclasses look their module up while being built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_model", None)


def tiny(bench, **kw):
    # a narrow model and one thread: other tests (and benchmarks) share the 2 CPU cores
    base = dict(batch=3, snippets=8, classes=5, arch="stale-test", context_length=4, steps=2,
                threads=1, overrides=["model.input_dim=48", "data.features.dim=48", "model.width=32"])
    return bench.Case(**{**base, **kw})


def test_tiny_cases_measure_positive_numbers_and_fill_the_table(bench, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cases = [tiny(bench, name="train ft", kind="train", finetune=True),
             tiny(bench, name="train frozen", kind="train", finetune=False),
             tiny(bench, name="infer", kind="infer", classes=4)]
    results = bench.run_cases(cases, isolate=False, say=lambda _: None)
    ft, frozen, infer = results
    for r in results:
        assert r["value"] > 0 and len(r["times_s"]) == 2 and all(t > 0 for t in r["times_s"])
        assert r["peak_rss_mib"] >= r["import_rss_mib"] > 0
        assert r["gpu_peak_mib"] is None and r["device"] == "cpu"
    assert ft["unit"] == frozen["unit"] == "ms/step" and infer["unit"] == "videos/s"
    # the frozen tower has fewer trainable parameters: text.finetune reached the model
    assert frozen["trainable_m"] < ft["trainable_m"] <= ft["params_m"]
    # the Adam steps really trained: loss went from warm-up to the last step and stayed finite
    assert all(abs(x) < 1e6 for x in ft["loss_first_last"])
    assert ft["loss_first_last"][0] != ft["loss_first_last"][1]
    # theta_c = 0: every video yields candidates, so predict did the postprocessing work
    assert infer["detections_per_video"] > 0
    table = bench.format_table(results, bench.environment())
    lines = table.splitlines()
    for name in ("train ft", "train frozen", "infer"):
        assert sum(line.startswith(f"| {name} |") for line in lines) == 1
    assert "ms/step" in table and "videos/s" in table and "RANDOM weights" in table


def test_targets_follow_the_label_contract(bench):
    import numpy as np

    targets, durations = bench.synthetic_targets(6, 7, 20, np.random.default_rng(1))
    labels, masks, fg = targets.snippet_labels, targets.instance_masks, targets.fg_mask
    assert labels.shape == (6, 20) and masks.shape == (6, 20, 20) and fg.shape == (6, 20)
    assert ((durations >= 30) & (durations <= 240)).all()
    assert (fg.sum(1) > 0).all()   # every video has at least one instance
    assert ((labels < 7) == (fg > 0)).all()
    # one class per video, as in ActivityNet
    assert all(len(set(row[row < 7].tolist())) == 1 for row in labels)


def test_cuda_rows_are_derived_into_activitynet_epoch_times(bench):
    case = bench.Case("train, text fine-tuned", "train", device="cuda")
    fake = {"case": bench.asdict(case), "value": 240.0, "unit": "ms/step", "times_s": [0.24] * 3,
            "device": "cuda:0", "trainable_m": 1.0, "peak_rss_mib": 1.0, "import_rss_mib": 1.0,
            "gpu_peak_mib": 2048.0, "threads": 1}
    table = bench.format_table([fake], {"date": "d", "torch": "t", "python": "p", "cpu": "c",
                                        "cores": 2, "load_avg": None, "gpu": "H100"})
    assert "| 2048 |" in table
    assert "24.0 s; 15 epochs 6.0 min" in table   # 100 x 0.24 s; 1500 x 0.24 s = 6 min


def test_predict_batch_and_derived_epoch_times(bench):
    cases = bench.paper_cases(quick=True, predict_batch=1)
    infer = [c for c in cases if c.kind == "infer"]
    assert len(infer) == 1 and infer[0].batch == 1 and infer[0].name == "predict, batch 1"
    assert all(c.batch == 8 for c in cases if c.kind == "train")
    assert [c.batch for c in bench.paper_cases() if c.kind == "infer"] == [100]
    train = {"case": bench.asdict(cases[0]), "value": 80.0, "unit": "ms/step"}
    d = bench.derived(train)
    assert d["activitynet_epoch_s"] == pytest.approx(8.0)          # 100 steps x 0.08 s
    assert d["activitynet_15_epochs_s"] == pytest.approx(120.0)    # 1500 steps x 0.08 s
    assert bench.derived({"case": bench.asdict(infer[0]), "value": 5.0, "unit": "videos/s"}) == {}
