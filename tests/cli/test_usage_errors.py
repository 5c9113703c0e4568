"""Usage errors of every command (an argument of the wrong type, an unknown option, a missing
argument) are one line ``stale CMD: error: ...`` naming the argument, and exit status 2 -- the
same contract as every other bad input, not argparse's usage block."""

from __future__ import annotations

import pytest

from bad_inputs import error_line, run_cli

CASES = [
    (["experiment", "table1", "--out", "x", "--jobs", "abc"], "--jobs", "'abc'"),
    (["experiment", "table1", "--out", "x", "--ddp-procs", "1.5"], "--ddp-procs", "'1.5'"),
    (["demo", "--max-videos-per-subset", "four"], "--max-videos-per-subset", "'four'"),
    (["detect", "v.mp4", "--classes", "a", "--out", "o", "--subtitle-min-score", "high"],
     "--subtitle-min-score", "'high'"),
    (["extract", "v.mp4", "--out", "o", "--stride", "x"], "--stride", "'x'"),
    (["predict", "run", "--out", "p.json", "--batch-size", "many"], "--batch-size", "'many'"),
    (["report", "run", "--port", "http"], "--port", "'http'"),
    (["splits", "random", "ann.json", "--out", "o", "--unseen", "a quarter"], "--unseen", "'a quarter'"),
    (["splits", "show", "thumos14", "75_25", "first"], "index", "'first'"),
    (["synth", "--out", "o", "--dim", "wide"], "--dim", "'wide'"),
    (["train", "tiny", "--out", "o", "--threads", "all"], "--threads", "'all'"),
    (["evaluate", "gt.json"], "required", "predictions"),
    (["config", "show", "tiny", "--no-such-flag"], "unrecognized arguments", "--no-such-flag"),
    (["nope"], "invalid choice", "'nope'"),
]


@pytest.mark.parametrize("argv,arg,value", CASES, ids=[c[0][0] + ":" + c[1] for c in CASES])
def test_usage_error_is_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, arg, value):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2, err
    cmd = argv[0] if argv[0] != "nope" else ""
    line = error_line(err, cmd) if cmd else err.strip()
    assert len(err.strip().splitlines()) == 1, err
    assert "\nusage:" not in "\n" + err and arg in line and value in line, line
    assert list(tmp_path.iterdir()) == []


def test_help_and_version_still_exit_0(capsys):
    assert run_cli(capsys, "--version")[0] == 0
    rc, out, _ = run_cli(capsys, "report", "--help")
    assert rc == 0 and "usage:" in out


def test_a_bad_device_is_blamed_on_the_option(capsys, tmp_path, tiny_run):
    from bad_inputs import refused

    refused(capsys, ["predict", tiny_run, "--out", tmp_path / "p.json", "--device", "gpu"],
            "--device: 'gpu' is not a device", roots=[tmp_path, tiny_run])
