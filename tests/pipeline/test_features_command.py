"""``stale features inspect`` / ``convert`` logic: counts against an independent computation,
problems collected per video, conversion identical to the source, resume and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from feature_layouts import arrays, write_h5, write_npy
from stale.core.errors import StaleError
from stale.pipeline.features import convert_features, format_inspect, inspect_features, parse_dims, source_config


def _annotations(path, durations: dict[str, float], subsets: dict[str, str] | None = None):
    db = {v: {"subset": (subsets or {}).get(v, "validation"), "duration": d,
              "annotations": [{"segment": [0.0, d / 2], "label": "jump"}]} for v, d in durations.items()}
    path.write_text(json.dumps({"version": "t", "database": db}))
    return path


def test_inspect_counts_and_statistics(tmp_path):
    data = arrays(8, 6, seed=2)
    data["vid003"][2, 1] = np.nan
    data["vid003"][4, 4] = np.inf
    write_npy(tmp_path / "f", data, prefix="v_")
    # annotated: vid000..vid005 plus two without features; vid006, vid007 are extra
    durations = {v: x.shape[0] / 2.0 for v, x in data.items() if v < "vid006"}
    durations.update({"gone1": 10.0, "gone2": 12.0})
    ann = _annotations(tmp_path / "a.json", durations, {"gone1": "test", "gone2": "validation"})
    rep = inspect_features(source_config([tmp_path / "f"], prefix="v_"), ann)
    a = rep["annotations"]
    assert (a["videos"], a["found"], a["missing"], a["extra"]) == (8, 6, 2, 2)
    assert a["missing_by_subset"] == {"test": 1, "validation": 1} and a["extra_examples"] == ["vid006", "vid007"]
    lens = [data[v].shape[0] for v in sorted(data) if v < "vid006"]
    assert rep["videos_read"] == 6 and rep["channels"] == {"6": 6}
    assert rep["lengths"]["min"] == min(lens) and rep["lengths"]["median"] == float(np.median(lens))
    assert rep["lengths"]["p95"] == pytest.approx(float(np.percentile(lens, 95)))
    assert rep["nonfinite"] == {"videos": 1, "values": 2, "examples": [str(tmp_path / "f" / "v_vid003.npy")]}
    assert rep["rate"]["per_second_median"] == pytest.approx(2.0) and rep["problems"]["count"] == 0
    text = format_inspect(rep)
    assert "8 videos, 6 found, 2 missing (test 1, validation 1), 2 extra" in text
    assert "non-finite values: 2 in 1 videos" in text and "problems: 0" in text
    # without annotations: every video of the source, no rate
    rep = inspect_features(source_config([tmp_path / "f"], prefix="v_"))
    assert rep["videos_read"] == 8 and rep["rate"] is None and "annotations" not in rep


def test_inspect_collects_every_problem_and_hints(tmp_path):
    data = arrays(5, 6, seed=0)
    write_npy(tmp_path / "f", data, prefix="v_")
    (tmp_path / "f" / "v_vid001.npy").write_bytes(b"junk")
    np.save(tmp_path / "f" / "v_vid002.npy", np.zeros((4, 7), np.float32))
    rep = inspect_features(source_config([tmp_path / "f"], prefix="v_"))
    assert rep["videos_read"] == 4 and rep["channels"] == {"6": 3, "7": 1}
    ex = rep["problems"]["examples"]
    assert rep["problems"]["count"] == 2
    assert "v_vid001.npy: not a readable .npy array" in ex[0]
    assert ex[1].startswith(f"{tmp_path / 'f' / 'v_vid002.npy'}: has 7 channels but 3 videos have 6")
    # annotation ids without the files' v_: nothing found, a problem, and the hint
    ann = _annotations(tmp_path / "a.json", {v: 10.0 for v in data})
    rep = inspect_features(source_config([tmp_path / "f"]), ann)
    assert rep["annotations"]["found"] == 0 and rep["problems"]["count"] == 1
    assert "none of the 5 annotated videos has features" in rep["problems"]["examples"][0]
    assert any("--prefix v_" in h for h in rep["hints"])
    # with --dim, a channel-first source inspects as (T, C)
    write_npy(tmp_path / "ct", data, channel_first=True)
    rep = inspect_features(source_config([tmp_path / "ct"], dim=6))
    assert rep["channels"] == {"6": 5} and rep["problems"]["count"] == 0


def test_convert_streams_resume_and_refusals(tmp_path):
    rgb, flow = arrays(4, 3, seed=5), arrays(4, 2, seed=6)
    flow = {k: v[: rgb[k].shape[0]] if v.shape[0] >= rgb[k].shape[0] else np.resize(v, (rgb[k].shape[0], 2))
            for k, v in flow.items()}
    write_h5(tmp_path / "rgb.h5", rgb, prefix="v_")
    write_npy(tmp_path / "flow", flow, prefix="v_", channel_first=True)
    cfg = source_config([tmp_path / "rgb.h5", tmp_path / "flow"], dim="3,2", prefix="v_")
    out = tmp_path / "out"
    s = convert_features(cfg, out)
    assert sorted(s.written) == sorted(rgb) and s.dim == 5 and not s.resumed
    for vid in rgb:
        y = np.load(out / f"v_{vid}.npy")
        assert y.dtype == np.float32 and y.flags.c_contiguous
        np.testing.assert_array_equal(y, np.concatenate([rgb[vid], flow[vid]], axis=1))
    meta = json.loads((out / "convert_meta.json").read_text())
    assert meta["complete"] and meta["channels"] == 5 and meta["settings"]["sources"][1]["dim"] == 2
    # a killed run: the last video's line and file are gone -> only it is converted again
    lines = (out / "convert_index.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])["id"]
    (out / "convert_index.jsonl").write_text("\n".join(lines[:-1]) + '\n{"id": "half')
    (out / f"v_{last}.npy").unlink()
    s = convert_features(cfg, out)
    assert s.written == [last] and len(s.resumed) == 3 and s.dim == 5
    # a .npy not in the index is never replaced without overwrite
    lines = (out / "convert_index.jsonl").read_text().splitlines()
    (out / "convert_index.jsonl").write_text("\n".join(x for x in lines if last not in x) + "\n")
    with pytest.raises(StaleError, match=rf"v_{last}\.npy: exists but is not in .*convert_index\.jsonl"):
        convert_features(cfg, out)
    # other settings, a folder of other files, the output inside an input folder
    with pytest.raises(StaleError, match="was converted from other sources or settings"):
        convert_features(source_config([tmp_path / "rgb.h5"], prefix="v_"), out)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(StaleError, match=r"holds files stale features convert did not make \(e\.g\. notes\.txt\)"):
        convert_features(cfg, tmp_path / "mine")
    with pytest.raises(StaleError, match="lies inside the input folder"):
        convert_features(cfg, tmp_path / "flow" / "sub")
    # --overwrite starts a new index
    s = convert_features(source_config([tmp_path / "rgb.h5"], prefix="v_"), out, overwrite=True)
    assert sorted(s.written) == sorted(rgb) and s.dim == 3
    assert len((out / "convert_index.jsonl").read_text().splitlines()) == 4


def test_convert_errors(tmp_path):
    data = arrays(3, 4, seed=0)
    data["vid001"] = data["vid001"][:, :3]
    write_h5(tmp_path / "f.h5", data)
    with pytest.raises(StaleError, match=r"f\.h5:vid001: has 3 channels but .*f\.h5:vid000 has 4"):
        convert_features(source_config([tmp_path / "f.h5"]), tmp_path / "o1")
    with pytest.raises(StaleError, match=r"no videos found in hdf5 .*f\.h5 \(prefix 'v_'"):
        convert_features(source_config([tmp_path / "f.h5"], prefix="v_"), tmp_path / "o2")
    x = {"vid000": np.array([[1.0, np.nan], [2.0, 3.0]], np.float32)}
    write_h5(tmp_path / "nan.h5", x)
    with pytest.raises(StaleError, match=r"nan\.h5:vid000: 1 non-finite"):
        convert_features(source_config([tmp_path / "nan.h5"]), tmp_path / "o3")
    s = convert_features(source_config([tmp_path / "nan.h5"], nonfinite="zero"), tmp_path / "o4")
    assert s.nonfinite == {"vid000": 1}
    np.testing.assert_array_equal(np.load(tmp_path / "o4" / "vid000.npy"), [[1, 0], [2, 3]])
    assert json.loads((tmp_path / "o4" / "convert_index.jsonl").read_text())["nonfinite"] == 1


def test_dims_and_source_config():
    assert parse_dims("2048") == [2048] and parse_dims("1024, 1024") == [1024, 1024] and parse_dims(None) is None
    for bad in ("x", "0", "-3,4"):
        with pytest.raises(StaleError, match="--dim"):
            parse_dims(bad)
    with pytest.raises(StaleError, match=r"one per source \(2\), got 3"):
        source_config(["a", "b"], dim="1,2,3")
    cfg = source_config(["a", "b"], dim="1024,1024", prefix="v_")
    assert cfg.dim == 2048 and [s.dim for s in cfg.streams] == [1024, 1024]
    assert [s.prefix for s in cfg.resolved_streams()] == ["v_", "v_"]
    cfg = source_config(["a", "b"], dim="2048")
    assert cfg.dim == 2048 and [s.dim for s in cfg.streams] == [None, None]


def test_runs_with_streams_read_them_and_find_them_after_a_move(tmp_path, tiny_dataset, tiny_config):
    """A run config with two streams: both roots are absolute in the run, recorded, and found
    again relative to the run folder after the folder (with its data) moved."""
    import shutil

    from stale.pipeline.assemble import absolute_paths, feature_store, record_inputs, relocate_inputs
    from stale.pipeline.config import load_run_config

    root = tmp_path / "proj"
    feats = {p.stem: np.load(p) for p in (tiny_dataset / "features").glob("*.npy")}
    write_npy(root / "data" / "rgb", {k: v[:, :10] for k, v in feats.items()})
    write_h5(root / "data" / "flow.h5", {k: v[:, 10:] for k, v in feats.items()}, channel_first=True)
    streams = [{"root": str(root / "data" / "rgb"), "dim": 10}, {"root": str(root / "data" / "flow.h5"), "dim": 6}]
    cfg = absolute_paths(load_run_config(tiny_config, [f"data.annotations={tiny_dataset / 'annotations.json'}",
                                                       f"data.features.streams={json.dumps(streams)}"]))
    reader = feature_store(cfg)
    for vid, x in list(feats.items())[:3]:
        np.testing.assert_array_equal(reader.load(vid), x)
    run = root / "runs" / "r1"
    run.mkdir(parents=True)
    rec = record_inputs(cfg, run)
    assert rec["features_stream_1"] == {"absolute": str(root / "data" / "flow.h5"),
                                        "relative_to_run": "../../data/flow.h5"}
    shutil.move(str(root), str(tmp_path / "moved"))
    moved = relocate_inputs(cfg, tmp_path / "moved" / "runs" / "r1", rec)
    assert [s.root for s in moved.data.features.streams] == [str(tmp_path / "moved" / "data" / "rgb"),
                                                             str(tmp_path / "moved" / "data" / "flow.h5")]
    vid = next(iter(feats))
    np.testing.assert_array_equal(feature_store(moved).load(vid), feats[vid])
