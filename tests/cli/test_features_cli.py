"""``stale features`` through the real command line: the report, --json, exit status 2 with one
line when videos do not read, convert end to end, and bad arguments refused without writing."""

from __future__ import annotations

import json

import numpy as np

from bad_inputs import refused, run_cli
from feature_layouts import arrays, write_csv, write_h5
from stale.cli import build_parser


def test_features_is_a_command():
    help_text = build_parser().format_help()
    assert "features" in help_text and "inspect a feature release" in help_text


def test_inspect_text_json_and_problems(capsys, tmp_path):
    data = arrays(4, 5, seed=1)
    write_csv(tmp_path / "c", data, prefix="v_")
    rc, out, err = run_cli(capsys, "features", "inspect", tmp_path / "c", "--prefix", "v_", "--no-progress")
    assert rc == 0, err
    assert out.splitlines()[0] == f"source: csv {tmp_path / 'c'} (csv), 4 videos"
    assert "channels: 5 (4 videos)" in out and "problems: 0" in out
    rc, out, _ = run_cli(capsys, "features", "inspect", tmp_path / "c", "--prefix", "v_", "--json")
    rep = json.loads(out)
    assert rc == 0 and rep["kind"] == "csv" and rep["lengths"]["max"] == max(x.shape[0] for x in data.values())
    # a ragged CSV: the report is printed, then one error line, exit 2
    p = tmp_path / "c" / "v_vid002.csv"
    rows = p.read_text().splitlines()
    rows[3] += ",0.5"
    p.write_text("\n".join(rows) + "\n")
    rc, out, err = run_cli(capsys, "features", "inspect", tmp_path / "c", "--prefix", "v_")
    assert rc == 2 and "problems: 1" in out
    assert err.strip() == (f"stale features: error: 1 problem(s) in csv {tmp_path / 'c'}, first: {p}: row 4 has "
                           f"6 values but row 2 has 5 (a ragged table: truncated or badly written)")


def test_convert_through_the_cli(capsys, tmp_path):
    rgb, flow = arrays(3, 4, seed=2), arrays(3, 4, seed=3)
    flow = {k: np.resize(v, (rgb[k].shape[0], 4)) for k, v in flow.items()}
    write_h5(tmp_path / "rgb.h5", rgb, key="rgb/{id}")
    write_h5(tmp_path / "flow.h5", flow, key="flow/{id}", channel_first=True)
    # one --key for both streams cannot fit: the first stream's missing entry is named
    refused(capsys, ["features", "convert", tmp_path / "rgb.h5", tmp_path / "flow.h5", "--key", "rgb/{id}",
                     "--out", tmp_path / "o"], "no videos found in every stream", "rgb.h5 holds 3", "flow.h5 holds 0",
            roots=[tmp_path], new_files_ok=True)
    write_h5(tmp_path / "flow2.h5", flow, key="rgb/{id}", channel_first=True)
    rc, out, err = run_cli(capsys, "features", "convert", tmp_path / "rgb.h5", tmp_path / "flow2.h5",
                           "--key", "rgb/{id}", "--dim", "4,4", "--out", tmp_path / "o2")
    assert rc == 0, err
    assert out.startswith("converted 3 videos, already done 0; (T, 8) float32 .npy in")
    for vid in rgb:
        np.testing.assert_array_equal(np.load(tmp_path / "o2" / f"{vid}.npy"),
                                      np.concatenate([rgb[vid], flow[vid]], axis=1))
    rc, out, _ = run_cli(capsys, "features", "convert", tmp_path / "rgb.h5", tmp_path / "flow2.h5",
                         "--key", "rgb/{id}", "--dim", "4,4", "--out", tmp_path / "o2")
    assert rc == 0 and out.startswith("converted 0 videos, already done 3")


def test_bad_arguments(capsys, tmp_path):
    write_h5(tmp_path / "f.h5", arrays(2, 3))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    refused(capsys, ["features", "inspect", tmp_path / "nope"], "feature source not found", roots=[tmp_path])
    refused(capsys, ["features", "inspect", tmp_path / "f.h5", "--dim", "three"], "--dim 'three'", roots=[tmp_path])
    refused(capsys, ["features", "inspect", tmp_path / "f.h5", "--key", "feats"], "must contain '{id}'",
            roots=[tmp_path])
    refused(capsys, ["features", "inspect", tmp_path / "junk.h5"], "junk.h5: not a readable HDF5 file",
            roots=[tmp_path])
    refused(capsys, ["features", "convert", tmp_path / "f.h5", "--out", tmp_path / "f.h5"], "--out",
            roots=[tmp_path])
    refused(capsys, ["features", "convert", tmp_path / "f.h5", "--dim", "4", "--out", tmp_path / "o"],
            "f.h5:vid000: expected 4 channels", roots=[tmp_path], new_files_ok=True)
