"""Smoke test of benchmarks/bench_stream.py at a tiny size (a tiny CLIP, a 10 s video at 10 fps):
the same measuring code as the real run, every number of the table present and sane."""

import json

import pytest

from bench_util import bench_script
from media_util import tiny_clip

pytest.importorskip("av")


@pytest.fixture(scope="module")
def bench():
    with bench_script("bench_stream") as module:
        yield module


def test_the_benchmark_at_a_tiny_size(bench, tmp_path, capsys, one_torch_thread):
    weights = tiny_clip(tmp_path / "w")
    out = tmp_path / "r.json"
    rc = bench.main(["--seconds", "10", "--fps", "10", "--size", "64x48", "--weights", str(weights),
                     "--clip-frames", "4", "--stride", "4", "--window", "6", "--hop", "0.8", "--margin", "1.2",
                     "--threads", "1", "--top", "5", "--json", str(out), "--workdir", str(tmp_path / "work")])
    assert rc == 0
    table = capsys.readouterr().out
    assert "1-min load" in table and "| unpaced | 10.0 |" in table and "| paced (--realtime) | 10.0 |" in table
    res = json.loads(out.read_text())
    assert res["video"]["actions"] >= 1
    for run in ("unpaced", "paced"):
        s = res[run]
        assert s["frames_read"] == 100 and s["ended"] == "end of stream"
        assert s["frames_encoded"] + s["frames_skipped"] == 25   # one frame per 4-frame clip
        assert s["detections"] >= 1 and 0.0 <= s["latency_median_s"] <= s["latency_p95_s"]
    assert res["unpaced"]["frames_skipped"] == 0
    assert res["paced"]["wall_s"] >= 9.0   # played at its frame rate
    assert res["paced"]["rtf"] == pytest.approx(res["paced"]["wall_s"] / 10.0)
    a = res["agreement"]
    assert a["offline_top"] == 5 and 0.0 <= a["median_tiou"] <= 1.0


def test_agreement_is_computed_against_an_independent_count(bench):
    offline = [{"segment": [0.0, 2.0], "label": "a", "score": 0.9},
               {"segment": [5.0, 6.0], "label": "b", "score": 0.5},
               {"segment": [8.0, 9.0], "label": "a", "score": 0.4}]
    online = [{"start": 0.0, "end": 1.0, "label": "a", "score": 0.8},     # tIoU 0.5 with the first
              {"start": 5.0, "end": 6.0, "label": "a", "score": 0.5},     # wrong label for the second
              {"start": 8.0, "end": 9.0, "label": "a", "score": 0.1}]
    a = bench.agreement(offline, online, top=3)
    assert a["median_tiou"] == pytest.approx(0.5)
    assert a["share_tiou_0.5"] == pytest.approx(2 / 3)
    assert a["median_dscore"] == pytest.approx(0.2)   # |0.8 - 0.9| and |0.1 - 0.4|
