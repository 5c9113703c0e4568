"""Smoke test of benchmarks/bench_feature_sources.py: tiny sizes, the same measuring code as the
real run (every layout must give the .npy folder's batches, bit for bit)."""

import pytest

from bench_util import bench_script


@pytest.fixture(scope="module")
def bench():
    with bench_script("bench_feature_sources") as module:
        yield module


def test_every_layout_reads_the_same_batches(bench, tmp_path):
    rows = bench.measure([5], list(bench.KINDS), native=9, dim=6, snippets=4, batch=2, isolate=False,
                         workdir=str(tmp_path))
    assert [r["kind"] for r in rows] == list(bench.KINDS)
    assert rows[0]["ratio"] == 1.0
    for r in rows:
        assert r["videos"] == 5 and r["epoch_s"] > 0 and r["disk_mib"] > 0 and r["peak_rss_mib"] > 0
    table = bench.format_table(rows, bench.environment())
    assert table.count("\n| 5 |") == len(bench.KINDS) and "cores, 1-min load" in table
    assert "| 1.00x | yes |" in table and "Peak RSS from" not in table   # one count: no growth line
    # the generated layouts are removed (only the reference stays until the temp dir goes)
    assert not any(tmp_path.iterdir())


def test_a_layout_that_reads_differently_is_caught(bench, tmp_path, monkeypatch):
    real = bench.write_layout

    def off_by_one(kind, root, n, native, dim):
        cfg = real(kind, root, n, native, dim)
        if kind == "hdf5":
            import h5py

            with h5py.File(cfg["root"], "a") as f:
                f["vid_00001"][0, 0] += 1.0
        return cfg

    monkeypatch.setattr(bench, "write_layout", off_by_one)
    with pytest.raises(RuntimeError, match="hdf5: batches differ"):
        bench.measure([3], ["npy", "hdf5"], native=5, dim=4, snippets=3, batch=2, isolate=False,
                      workdir=str(tmp_path))


def test_child_process_round_trip(bench, tmp_path):
    cfg = bench.write_layout("csv", tmp_path, 2, 4, 3)
    r = bench.run_child({"features": cfg, "snippets": 3, "batch": 2}, isolate=True)
    assert r["videos"] == 2 and len(r["checksum"]) == 64


def test_the_verdicts_follow_the_targets(bench):
    rows = [{"videos": n, "kind": k, "disk_mib": 1.0, "epoch_s": e, "ratio": r, "peak_rss_mib": m}
            for n, k, e, r, m in ((412, "npy", 1.0, 1.0, 200.0), (412, "csv", 3.0, 3.0, 210.0),
                                  (2000, "npy", 4.0, 1.0, 205.0), (2000, "csv", 6.0, 1.5, 420.0))]
    assert bench.memory_growth(rows) == pytest.approx({"npy": 0.025, "csv": 1.0})
    table = bench.format_table(rows, "h")
    assert "| 412 | csv | 1 | 3.00 | 3.00x | NO | 210 |" in table and "| 2000 | csv | 1 | 6.00 | 1.50x | yes |" in table
    assert "from 412 to 2000 videos" in table and "npy +2% (flat)" in table and "csv +100% (GROWS)" in table
