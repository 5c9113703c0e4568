"""Smoke test of benchmarks/bench_windows.py at a tiny size: the same measuring code as the real
run, in this process."""


import pytest

from bench_util import bench_script


@pytest.fixture(scope="module")
def bench():
    with bench_script("bench_windows") as module:
        yield module


def test_rows_for_every_length_and_mode(bench, tmp_path):
    rows = bench.measure([0.25, 1], ["resize", "window"], rate=2.0, dim=16, config="tiny", isolate=False,
                         workdir=str(tmp_path))
    assert [(r["minutes"], r["mode"]) for r in rows] == [(0.25, "resize"), (0.25, "window"), (1, "resize"),
                                                         (1, "window")]
    assert [r["features"] for r in rows] == [30, 30, 120, 120]
    # tiny config: windows of 32 snippets overlapping by half over 30 / 120 native features
    assert [r["windows"] for r in rows] == [1, 1, 1, 7]
    assert all(r["seconds"] > 0 and r["peak_rss_mib"] > 0 and r["detections"] >= 0 for r in rows)
    table = bench.format_table(rows, bench.environment())
    assert table.count("| window |") == 2 and "1-min load" in table
    assert not any(tmp_path.iterdir())     # the feature files are removed
