"""`stale detect` end to end through the CLI on real video files (moving coloured shapes encoded
with PyAV) with a tiny complete CLIP (image + text towers): every output file is checked, with
and without a trained run, plus resume, settings changes and refusals before any work."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from media_util import tiny_clip, write_shapes_video

pytest.importorskip("av")
CLASSES = "red square sliding to the right,a blue circle,green bar"
NAMES = [c.strip() for c in CLASSES.split(",")]


def stale_subprocess(*args, timeout=300):
    """The real command line, in a fresh process."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "stale", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def stale(*args):
    """The same entry point (argument parsing, error boundary, exit status) in this process,
    which saves the several seconds of imports a new process costs on a small machine."""
    import contextlib
    import io

    from stale.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("detect_media")
    vids = root / "videos"
    write_shapes_video(vids / "shapes one.mp4", [(2, None), (3, "red square"), (2, None), (3, "blue circle")])
    write_shapes_video(vids / "bars.mp4", [(3, "green bar"), (2, None), (3, "red square")], fps=12, size=(128, 96))
    return {"videos": vids, "clip": tiny_clip(root / "weights"),
            "vision_only": tiny_clip(root / "weights", with_text=False), "root": root}


@pytest.fixture(scope="module")
def detected(media):
    out = media["root"] / "out"
    proc = stale_subprocess("detect", media["videos"], "--classes", CLASSES, "--weights", media["clip"],
                            "--out", out, "--clip-frames", "4", "--stride", "4", "--subtitle-top", "3",
                            "--no-progress", "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_every_output_file(media, detected):
    out, proc = detected
    vids = ["bars", "shapes one"]
    # ActivityNet results JSON
    res = json.loads((out / "detections.json").read_text())
    assert set(res["results"]) == set(vids) and res["external_data"] == {"used": False}
    assert res["classes"] == NAMES and "training-free CLIP detector" in res["detector"]
    meta = json.loads((out / "features" / "extract_meta.json").read_text())
    for vid in vids:
        items = res["results"][vid]
        duration = meta["videos"][vid]["duration"]
        assert items, vid
        assert [d["score"] for d in items] == sorted((d["score"] for d in items), reverse=True)
        for d in items:
            s, e = d["segment"]
            assert 0 <= s < e <= duration + 1e-6 and d["label"] in NAMES and 0 < d["score"] <= 1
    assert meta["videos"]["shapes one"]["duration"] == 10.0 and meta["videos"]["bars"]["duration"] == 8.0
    assert np.load(out / "features" / "shapes one.npy").shape == ((100 - 4) // 4 + 1, 32)
    # the evaluator reads the results file as it is
    from stale.evaluation import evaluate_detection

    gt = {"database": {"shapes one": {"subset": "test", "annotations": [{"segment": [2, 5], "label": NAMES[0]}]}}}
    r = evaluate_detection(gt, res, "test", "0.5")
    assert r.num_predictions == sum(d["label"] == NAMES[0] for v in res["results"].values() for d in v)
    # CSV: one row per detection, same values
    rows = list(csv.DictReader((out / "detections.csv").open()))
    flat = [(v, d["label"], round(d["segment"][0], 3), round(d["segment"][1], 3), round(d["score"], 6))
            for v, items in res["results"].items() for d in items]
    assert [(r["video"], r["label"], float(r["start"]), float(r["end"]), float(r["score"])) for r in rows] == flat
    # SRT: the 3 best detections of each video, in time order, SubRip timing
    for vid in vids:
        text = (out / "subtitles" / f"{vid}.srt").read_text()
        cues = [c for c in text.strip().split("\n\n") if c]
        best = sorted(res["results"][vid], key=lambda d: -d["score"])[:3]
        assert len(cues) == len(best)
        starts = []
        for i, cue in enumerate(cues, start=1):
            idx, timing, label = cue.split("\n")
            assert idx == str(i)
            m = re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})", timing)
            assert m, timing
            g = [int(x) for x in m.groups()]
            a = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
            b = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
            assert a < b
            starts.append(a)
            assert re.fullmatch(r".+ \(\d\.\d\d\)", label)
        assert starts == sorted(starts)
        assert sorted(starts) == pytest.approx(sorted(round(d["segment"][0], 3) for d in best), abs=1e-3)
    # PNG timelines
    from PIL import Image

    for vid in vids:
        png = out / "timelines" / f"{vid}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as im:
            assert im.size[0] > 500 and im.size[1] > 100
    # the HTML report: each video, playable by a relative path, and the detections as data
    page = (out / "report.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="stale-data">(.*?)</script>', page, re.S).group(1))
    assert [v["id"] for v in data["videos"]] == vids
    for v in data["videos"]:
        from urllib.parse import unquote

        assert (out / unquote(v["src"])).resolve() == (media["videos"] / f"{v['id']}.mp4").resolve()
        assert v["detections"]["detections"] == res["results"][v["id"]]
        assert f'data-video="{v["id"]}"' in page
    assert "shapes%20one.mp4" in page
    # the run record and the timings on the terminal
    rec = json.loads((out / "detect.json").read_text())
    assert set(rec["timings_s"]["bars"]) == {"decode", "features", "detection", "cached_features"}
    assert "decode" in proc.stdout and "detections in 2 videos" in proc.stdout


def test_rerun_resumes_with_cached_features(media, detected):
    out, _ = detected
    before = {p.name: p.read_bytes() for p in (out / "features").glob("*.npy")}
    res_before = (out / "detections.json").read_bytes()
    proc = stale("detect", media["videos"], "--classes", CLASSES, "--weights", media["clip"], "--out", out,
                 "--clip-frames", "4", "--stride", "4", "--subtitle-top", "3", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("(features cached)") == 2
    assert {p.name: p.read_bytes() for p in (out / "features").glob("*.npy")} == before
    assert (out / "detections.json").read_bytes() == res_before      # deterministic


def test_other_classes_need_overwrite_and_reuse_features(media, detected):
    out, _ = detected
    args = ["detect", media["videos"], "--classes", "a dancing person", "--weights", media["clip"], "--out", out,
            "--clip-frames", "4", "--stride", "4", "--no-progress"]
    refused = stale(*args)
    assert refused.returncode == 2 and "other settings (classes)" in refused.stderr
    done = stale(*args, "--overwrite")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("(features cached)") == 2
    res = json.loads((out / "detections.json").read_text())
    assert {d["label"] for v in res["results"].values() for d in v} <= {"a dancing person"}


def test_refusals_happen_before_any_work(media, tmp_path):
    # a file that stale detect did not write
    out = tmp_path / "o"
    out.mkdir()
    (out / "detections.csv").write_text("mine")
    p = stale("detect", media["videos"], "--classes", "x", "--weights", media["clip"], "--out", out)
    assert p.returncode == 2 and "detections.csv: file exists" in p.stderr
    assert (out / "detections.csv").read_text() == "mine" and not (out / "features").exists()
    # a checkpoint without a text tower cannot drive the training-free detector
    p = stale("detect", media["videos"], "--classes", "x", "--weights", media["vision_only"], "--out", tmp_path / "v")
    assert p.returncode == 2 and "holds no CLIP text tower" in p.stderr and "--run" in p.stderr
    assert not (tmp_path / "v" / "features").exists() or not list((tmp_path / "v" / "features").glob("*.npy"))
    # a duplicate class name, an empty class list, a missing video
    p = stale("detect", media["videos"], "--classes", "a,b,a", "--weights", media["clip"], "--out", tmp_path / "d")
    assert p.returncode == 2 and "listed twice" in p.stderr
    p = stale("detect", tmp_path / "nope.mp4", "--classes", "a", "--weights", media["clip"], "--out", tmp_path / "d")
    assert p.returncode == 2 and "video not found" in p.stderr
    # the output folder may not be the video folder's input file
    p = stale("detect", media["videos"] / "bars.mp4", "--classes", "a", "--weights", media["clip"],
              "--out", media["videos"] / "bars.mp4")
    assert p.returncode == 2 and "is a file" in p.stderr


@pytest.fixture(scope="module")
def runs(media, tmp_path_factory, tiny_dataset_factory):
    """Two tiny trained runs: on 32-d features (the tiny CLIP's width) and on 16-d ones."""
    root = tmp_path_factory.mktemp("detect_runs")
    out = {}
    for dim in (32, 16):
        data = tiny_dataset_factory(root / f"data{dim}", dim=dim, n_train=12, n_val=4)
        import stale as api

        out[dim] = api.train("tiny", root / f"run{dim}", overrides=[
            f"data.annotations={data / 'annotations.json'}", f"data.features.root={data / 'features'}",
            f"model.input_dim={dim}", f"data.features.dim={dim}", "train.epochs=2", "train.progress=false"])
    return out


def test_with_a_trained_run(media, runs, tmp_path):
    out = tmp_path / "withrun"
    p = stale("detect", media["videos"] / "bars.mp4", "--classes", "high jump,long jump", "--run", runs[32],
              "--weights", media["clip"], "--out", out, "--clip-frames", "4", "--stride", "4", "--no-progress")
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((out / "detections.json").read_text())
    assert "trained run" in res["detector"] and set(res["results"]) == {"bars"}
    items = res["results"]["bars"]
    assert items and {d["label"] for d in items} <= {"high jump", "long jump"}
    assert all(0 <= d["segment"][0] < d["segment"][1] <= 8.0 + 1e-6 for d in items)
    # the same detections as the run's own API on the cached features
    import stale as api

    run = api.load_run(runs[32], "cpu")
    want = run.detect(out / "features" / "bars.npy", ["high jump", "long jump"])
    assert items == json.loads(json.dumps(sorted(want, key=lambda d: -d["score"])))
    assert (out / "report.html").is_file() and (out / "subtitles" / "bars.srt").is_file()
    # the precision that ran is recorded: auto -> float32 here (the tests simulate a CPU without
    # bf16 units); --precision bf16 runs both the image tower and the network in bf16
    rec = json.loads((out / "detect.json").read_text())
    assert {k: v["precision"] for k, v in rec["precision"].items()} == {"image_tower": "float32", "detector": "float32"}
    p = stale("detect", media["videos"] / "bars.mp4", "--classes", "high jump,long jump", "--run", runs[32],
              "--weights", media["clip"], "--out", tmp_path / "bf16", "--clip-frames", "4", "--stride", "4",
              "--no-progress", "--precision", "bf16")
    assert p.returncode == 0, p.stderr[-2000:]
    rec = json.loads((tmp_path / "bf16" / "detect.json").read_text())
    assert rec["precision"]["image_tower"]["precision"] == rec["precision"]["detector"]["precision"] == "bf16"
    import numpy as np

    a, b = np.load(out / "features" / "bars.npy"), np.load(tmp_path / "bf16" / "features" / "bars.npy")
    assert (a * b).sum(-1).min() >= 0.999 and not np.array_equal(a, b)


def test_a_run_expecting_other_features_is_refused_before_decoding(media, runs, tmp_path):
    out = tmp_path / "mismatch"
    p = stale("detect", media["videos"], "--classes", "high jump", "--run", runs[16], "--weights", media["clip"],
              "--out", out, "--no-progress")
    assert p.returncode == 2
    assert "expects 16-d features" in p.stderr and "gives 32-d" in p.stderr
    assert not list((out / "features").glob("*.npy")) if (out / "features").exists() else True


def test_python_api(media, tmp_path):
    import stale as api

    res = api.detect(media["videos"] / "bars.mp4", ["green bar", "red square"], tmp_path / "api",
                     weights=str(media["clip"]), clip_frames=4, stride=4)
    assert set(res.results) == {"bars"} and res.files["report"].is_file()
    assert set(res.timings["bars"]) >= {"decode", "features", "detection"}
    page = api.report(tmp_path / "api")
    assert page == tmp_path / "api" / "report.html"
    # detector settings: at most two detections per video, and a typo is one clear error
    few = api.detect(media["videos"] / "bars.mp4", ["green bar", "red square"], tmp_path / "few",
                     weights=str(media["clip"]), clip_frames=4, stride=4, overrides=["inference.top_n=2"])
    assert 1 <= len(few.results["bars"]) <= 2 < len(res.results["bars"])
    from stale.core.errors import StaleError

    with pytest.raises(StaleError, match="unknown config key.*top_m"):
        api.detect(media["videos"] / "bars.mp4", "x", tmp_path / "bad", weights=str(media["clip"]),
                   overrides=["segments.top_m=2"])


def test_a_run_interrupted_while_writing_resumes(media, tmp_path, monkeypatch):
    import stale as api
    import stale.pipeline.detect_videos as mod

    out = tmp_path / "int"

    def boom(results):
        raise KeyboardInterrupt

    monkeypatch.setattr(mod, "to_csv", boom)
    with pytest.raises(KeyboardInterrupt):
        api.detect(media["videos"] / "bars.mp4", "green bar", out, weights=str(media["clip"]), clip_frames=4, stride=4)
    assert (out / "detections.json").is_file() and not (out / "detections.csv").exists()
    assert json.loads((out / "detect.json").read_text())["complete"] is False
    monkeypatch.undo()
    res = api.detect(media["videos"] / "bars.mp4", "green bar", out, weights=str(media["clip"]), clip_frames=4, stride=4)
    assert res.timings["bars"]["cached_features"] and (out / "detections.csv").is_file()
    assert json.loads((out / "detect.json").read_text())["complete"] is True


def test_a_rerun_on_fewer_videos_keeps_the_others_outputs(media, tmp_path):
    out = tmp_path / "both"
    args = ["--classes", CLASSES, "--weights", media["clip"], "--out", out, "--clip-frames", "4", "--stride", "4",
            "--subtitle-top", "3", "--no-progress"]
    assert stale("detect", media["videos"], *args).returncode == 0
    before = json.loads((out / "detections.json").read_text())["results"]
    kept = {p: p.read_bytes() for p in (out / "subtitles" / "shapes one.srt", out / "timelines" / "shapes one.png")}
    p = stale("detect", media["videos"] / "bars.mp4", *args)
    assert p.returncode == 0, p.stderr[-2000:]
    after = json.loads((out / "detections.json").read_text())["results"]
    assert after == before                                     # both videos, the same detections
    assert all(path.read_bytes() == data for path, data in kept.items())
    assert set(json.loads((out / "detect.json").read_text())["videos"]) == {"shapes one", "bars"}
    rows = list(csv.reader((out / "detections.csv").open()))
    assert {r[0] for r in rows[1:]} == {"shapes one", "bars"}


def test_out_inside_the_run_folder_it_reads_is_refused(media, runs):
    from bad_inputs import snapshot

    before = snapshot(runs[32])
    for out in (runs[32], runs[32] / "detect"):
        p = stale("detect", media["videos"] / "bars.mp4", "--classes", "high jump", "--run", runs[32],
                  "--weights", media["clip"], "--out", out, "--no-progress")
        assert p.returncode == 2 and "lies inside the input folder" in p.stderr and str(runs[32]) in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    assert snapshot(runs[32]) == before


def test_a_second_detect_into_one_folder_is_refused(media, tmp_path):
    from stale.core.locks import folder_lock

    out = tmp_path / "busy"
    out.mkdir()
    with folder_lock(out, "stale detect"):
        p = stale("detect", media["videos"] / "bars.mp4", "--classes", "a,b", "--weights", media["clip"],
                  "--out", out, "--clip-frames", "4", "--stride", "4", "--no-progress")
    assert p.returncode == 2 and "another stale detect (process" in p.stderr
    assert not (out / "detections.json").exists() and not (out / "features").exists()


def test_windows_with_a_trained_run(media, runs, tmp_path):
    out = tmp_path / "windows"
    p = stale("detect", media["videos"] / "bars.mp4", "--classes", "high jump,long jump", "--run", runs[32],
              "--windows", "--weights", media["clip"], "--out", out, "--clip-frames", "4", "--stride", "4",
              "--no-progress")
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((out / "detections.json").read_text())
    assert res["detector"].endswith("sliding windows")
    assert json.loads((out / "detect.json").read_text())["detector"]["windows"] is True
    items = res["results"]["bars"]
    assert items and all(0 <= d["segment"][0] < d["segment"][1] <= 8.0 + 1e-6 for d in items)
    import stale as api

    run = api.load_run(runs[32], "cpu")
    want = run.detect(out / "features" / "bars.npy", ["high jump", "long jump"], windows=True)
    assert items == json.loads(json.dumps(sorted(want, key=lambda d: -d["score"])))
    assert want != run.detect(out / "features" / "bars.npy", ["high jump", "long jump"], windows=False)
    # --windows needs a run
    q = stale("detect", media["videos"] / "bars.mp4", "--classes", "high jump", "--windows", "--weights",
              media["clip"], "--out", tmp_path / "nowin")
    assert q.returncode == 2 and "--windows: needs --run" in q.stderr
