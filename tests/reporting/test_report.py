"""`stale report` on every folder kind: what the page says equals an independent evaluation, and
what cannot be read becomes a note, never a crash."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from report_util import (CLASSES, make_demo_folder, make_experiment_folder, make_run_folder, metrics_of)
from stale.core.errors import StaleError
from stale.reporting.folders import build_report, write_folder_report
from stale.reporting.page import Report, Section, VideoView, table
from stale.reporting.render import is_stale_report, render_report


def _tables(page: str) -> list[list[list[str]]]:
    out = []
    for t in re.findall(r"<table[^>]*>(.*?)</table>", page, re.S):
        rows = []
        for r in re.findall(r"<tr>(.*?)</tr>", t, re.S):
            rows.append([unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)])
        out.append(rows)
    return out


def _data(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="stale-data">(.*?)</script>', page, re.S).group(1))


def test_demo_folder_report(tmp_path):
    root = make_demo_folder(tmp_path / "demo")
    built = write_folder_report(root)
    assert built.kind == "demo" and built.default_out == root / "report" / "index.html"
    page = built.default_out.read_text()
    assert is_stale_report(built.default_out)
    for anchor in ('id="metrics"', 'id="class-ap"', 'id="pr"', 'id="control"', 'id="training"'):
        assert anchor in page, anchor
    assert "SYNTHETIC" in page
    metrics = json.loads((root / "report" / "metrics.json").read_text())["methods"]
    mtable = _tables(page)[0]
    assert mtable[0] == ["method", "mAP@0.30", "mAP@0.40", "mAP@0.50", "mAP@0.60", "mAP@0.70", "average mAP"]
    for row in mtable[1:]:
        m = metrics[row[0]]
        assert row[1:] == [f"{100 * x:.1f}" for x in m["mAP"]] + [f"{100 * m['average_mAP']:.1f}"]
    ctl = next(t for t in _tables(page) if t[0][0] == "method" and t[0][1] == "control")
    a, b = metrics["STALE"]["average_mAP"], metrics["control: permuted unseen names"]["average_mAP"]
    assert ctl[1] == ["STALE", "control: permuted unseen names", f"{100 * a:.1f}", f"{100 * b:.1f}", f"{b / a:.2f}"]
    assert page.count("data:image/png;base64,") == 3          # AP bars, PR curves, training curve
    data = _data(page)
    gt = json.loads((root / "report" / "ground_truth.json").read_text())["database"]
    drawn = next((root / "report" / "timelines").glob("*.png")).stem
    assert data["videos"][0]["id"] == drawn and 1 <= len(data["videos"]) <= 6
    for v in data["videos"]:
        assert v["methods"] == list(metrics) and v["src"] is None
        assert len(v["ground_truth"]) == len(gt[v["id"]]["annotations"])
        assert v["duration"] == gt[v["id"]]["duration"]


def test_run_folder_with_and_without_predictions(tmp_path):
    run = make_run_folder(tmp_path / "run")
    page = write_folder_report(run).default_out.read_text()
    gt = json.loads((run / "ground_truth.json").read_text())
    want = metrics_of(gt, json.loads((run / "predictions.json").read_text())["results"], [0.3, 0.5, 0.7])
    mt = next(t for t in _tables(page) if t and t[0][:1] == ["method"] and "average mAP" in t[0])
    assert mt[0] == ["method", "mAP@0.30", "mAP@0.50", "mAP@0.70", "average mAP"]
    assert mt[1] == ["predictions", *[f"{100 * x:.1f}" for x in want["mAP"]], f"{100 * want['average_mAP']:.1f}"]
    assert mt[2][0] == "control: permuted names" and 'id="control"' in page and 'id="training"' in page
    bare = make_run_folder(tmp_path / "bare", with_predictions=False)
    page = write_folder_report(bare).default_out.read_text()
    assert "No predictions exist in this run folder" in page and "stale predict" in page
    assert 'id="training"' in page and 'id="metrics"' not in page


def test_experiment_folder_report(tmp_path):
    exp = make_experiment_folder(tmp_path / "exp")
    page = write_folder_report(exp).default_out.read_text()
    res = json.loads((exp / "results.json").read_text())
    tables = _tables(page)
    cells = next(t for t in tables if t[0][:6] == ["variant", "dataset", "setting", "split", "seed", "status"])
    assert len(cells) == 1 + len(res["cells"])
    done = [c for c in res["cells"] if c["status"] == "done"]
    for row, c in zip(cells[1:], res["cells"]):
        assert row[0] == c["cell"]["variant"] and row[5] == c["status"]
        if c["status"] == "done":
            assert row[-2] == f"{100 * c['metrics']['average_mAP']:.1f}"
    summ = next(t for t in tables if t[0][:3] == ["variant", "dataset", "setting"] and "cells" in t[0])
    for row in summ[1:]:
        node = res["summary"][row[0]]["synth"]["75/25"]
        assert row[4] == f"{100 * node['average_mean']:.1f}" and row[3] == "2"
    ctl = next(t for t in tables if t[0][:2] == ["method", "control"])
    assert ctl[1][:2] == ["STALE", "control"]
    failed = next(t for t in tables if t[0] == ["cell", "error"])
    assert "not a readable .npy" in failed[1][1]
    assert 'id="per-class"' in page and page.count("data:image/png;base64,") == 2
    assert {v["id"] for v in _data(page)["videos"]} and len(done) == 6


def test_unreadable_parts_become_notes(tmp_path):
    exp = make_experiment_folder(tmp_path / "exp")
    cell = json.loads((exp / "results.json").read_text())["cells"][0]["run_dir"]
    (tmp_path / "exp" / cell.split(str(tmp_path / "exp") + "/")[1] / "predictions.json").write_text("{broken")
    page = write_folder_report(exp).default_out.read_text()
    assert 'id="problems"' in page and "predictions.json" in page
    demo = make_demo_folder(tmp_path / "demo")
    (demo / "report" / "predictions_stale_no_mask.json").write_text("[1, 2")
    page = write_folder_report(demo).default_out.read_text()
    assert 'id="problems"' in page and "predictions_stale_no_mask.json" in page


def test_output_rules(tmp_path):
    run = make_run_folder(tmp_path / "run")
    out = write_folder_report(run).default_out
    write_folder_report(run)                          # our own page is regenerated in place
    mine = tmp_path / "mine.html"
    mine.write_text("<html>my notes</html>")
    with pytest.raises(StaleError, match="file exists"):
        write_folder_report(run, mine)
    assert mine.read_text() == "<html>my notes</html>"
    write_folder_report(run, mine, overwrite=True)
    assert is_stale_report(mine) and is_stale_report(out)
    with pytest.raises(StaleError, match="not a stale folder"):
        build_report(tmp_path)
    with pytest.raises(StaleError, match="no such folder"):
        build_report(tmp_path / "missing")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "experiment.json").write_text("{}")
    with pytest.raises(StaleError, match="summarize"):
        build_report(tmp_path / "e")


def test_cli(tmp_path, capsys):
    from stale.cli import main

    run = make_run_folder(tmp_path / "run")
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert "report of the run folder" in capsys.readouterr().out and (tmp_path / "r.html").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_page_escapes_text_and_script_data(tmp_path):
    evil = '</script><script>alert(1)</script> & "quotes"'
    rep = Report(evil, [Section(evil, [table([evil], [[evil]])])],
                 [VideoView(evil, 10.0, {evil: [{"segment": [1, 2], "label": evil, "score": 0.5}]})])
    page = render_report(rep)
    assert "<script>alert(1)</script>" not in page
    assert page.count("<script") == 2                  # the data block and the page's own script
    assert _data(page)["videos"][0]["id"] == evil      # the data survive intact
    assert CLASSES


def test_serve_answers_the_page_and_byte_ranges_of_its_videos(tmp_path):
    import threading
    import urllib.request
    from urllib.parse import unquote, urljoin

    from stale.reporting.page import relative_src
    from stale.reporting.render import write_report
    from stale.reporting.serve import make_server, serve_root

    video = tmp_path / "media" / "my clip.mp4"
    video.parent.mkdir()
    video.write_bytes(bytes(range(256)) * 40)
    page = tmp_path / "pages" / "deep" / "r.html"
    src = relative_src(video, page)
    assert src == "../../media/my%20clip.mp4" and (page.parent / unquote(src)).resolve() == video
    write_report(Report("t", [], [VideoView("v", 5.0, {"m": []}, [], src)]), page)
    root = serve_root(page, [video])
    assert root == tmp_path
    server, url = make_server(page, root)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/pages/deep/r.html")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"stale-data" in r.read()
        req = urllib.request.Request(urljoin(url, src), headers={"Range": "bytes=100-299"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            assert r.status == 206 and r.headers["Content-Range"] == f"bytes 100-299/{256 * 40}"
        assert body == video.read_bytes()[100:300]
        req = urllib.request.Request(urljoin(url, src), headers={"Range": "bytes=-10"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.read() == video.read_bytes()[-10:]
        with urllib.request.urlopen(urljoin(url, src), timeout=10) as r:   # no range: the whole file
            assert r.status == 200 and r.read() == video.read_bytes()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
