"""Smoke test of benchmarks/bench_extract.py at a tiny size: every case runs the real command,
the table has a row per case, and a case that writes other bytes is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_util import bench_script

pytest.importorskip("av")


@pytest.fixture()
def bench():
    with bench_script("bench_extract") as module:
        yield module


TINY = ["--videos", "3", "--seconds", "1", "--size", "64x48", "--fps", "10", "--threads", "1",
        "--arch", "ViT-S-32", "--batch-size", "4"]


@pytest.mark.slow
def test_tiny_run_times_every_case_and_checks_the_bytes(bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert bench.main(TINY + ["--workers", "0", "1", "--shards", "2", "--workdir", str(tmp_path),
                              "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cores, 1-min load" in text and "3 clips of 1 s 64x48" in text
    rows = __import__("json").loads(out.read_text())["rows"]
    assert [r["case"] for r in rows] == ["1 process, --workers 0", "1 process, --workers 1",
                                        "2 shards as 2 processes (--threads 1 each)"]
    for r in rows:
        assert r["identical"] and r["decoded_frames"] == 30 and r["encoded_frames"] == 3   # 10 frames: 1 clip
        assert r["seconds"] > 0 and r["decoded_fps"] == pytest.approx(30 / r["seconds"])
        assert f"| {r['case']} |" in text
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]   # clips and features removed


def test_other_bytes_are_an_error(bench, tmp_path, monkeypatch):
    calls = []

    def fake_run(cmds):
        for cmd in cmds:   # write a folder as stale extract would, the second case with other bytes
            out = Path(cmd[cmd.index("--out") + 1])
            out.mkdir(exist_ok=True)
            import json

            import numpy as np

            np.save(out / "clip000.npy", np.full((1, 2), float(len(calls)), np.float32))
            (out / "extract_meta.json").write_text(json.dumps({
                "format": "stale-extract/1", "frames_per_clip": 1, "skipped": {},
                "videos": {"clip000": {"num_frames": 10, "num_features": 1}}}))
        calls.append(cmds)
        return 1.0

    monkeypatch.setattr(bench, "run_case", fake_run)
    monkeypatch.setattr(bench, "write_clip", lambda *a: 10)
    args = bench.argparse.Namespace(videos=1, seconds=1, size=(8, 8), fps=10, workers=[0, 1], shards=0, threads=1,
                                    arch="x", weights="random", device="cpu", batch_size=2, convention=None)
    with pytest.raises(RuntimeError, match="--workers 1: features differ from those of the same-thread-count reference w0"):
        bench.measure(args, tmp_path)
