"""Feature sources: every layout reads the same values through the same checks, and every bad
file is one StaleError naming the file (and key)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from feature_layouts import arrays, write_csv, write_h5, write_npy, write_pickle
from stale.core.config import from_dict
from stale.core.errors import StaleError
from stale.data.features import (ConcatSource, CsvFolder, FeatureConfig, FeatureStore, Hdf5Source, PickleSource,
                                 detect_kind, open_features)


@pytest.fixture
def data():
    return arrays(n=4, dim=6, seed=3)


def _same(reader, data):
    assert reader.ids() == sorted(data)
    for vid, x in data.items():
        y = reader.load(vid)
        assert y.dtype == np.float32 and y.flags.c_contiguous
        np.testing.assert_array_equal(y, x)


def test_every_kind_reads_the_reference_values(tmp_path, data):
    write_npy(tmp_path / "npy", data, prefix="v_")
    write_csv(tmp_path / "csv", data, prefix="v_")
    write_csv(tmp_path / "csv_numbers", data, header="numbers")
    write_csv(tmp_path / "csv_pandas", data, index_column=True)
    write_csv(tmp_path / "csv_bare", data, header="none")
    write_h5(tmp_path / "f.h5", data, prefix="v_")
    write_h5(tmp_path / "nested.hdf5", data, key="rgb/{id}/feat")
    write_pickle(tmp_path / "f.pkl", data, prefix="v_")
    write_pickle(tmp_path / "nested.pkl", data, nested="features")
    cases = {
        "npy": dict(root=str(tmp_path / "npy"), prefix="v_"),
        "csv": dict(root=str(tmp_path / "csv"), prefix="v_"),
        "csv_numbers": dict(root=str(tmp_path / "csv_numbers")),
        "csv_pandas": dict(root=str(tmp_path / "csv_pandas")),
        "csv_bare": dict(root=str(tmp_path / "csv_bare")),
        "h5": dict(root=str(tmp_path / "f.h5"), prefix="v_"),
        "nested h5": dict(root=str(tmp_path / "nested.hdf5"), key="rgb/{id}/feat"),
        "pkl": dict(root=str(tmp_path / "f.pkl"), prefix="v_"),
        "nested pkl": dict(root=str(tmp_path / "nested.pkl"), key="{id}/features"),
    }
    kinds = {}
    for name, kw in cases.items():
        reader = open_features(FeatureConfig(dim=6, **kw))
        kinds[name] = reader.kind
        _same(reader, data)
        assert "vid001" in reader and "nope" not in reader and reader.missing(["vid001", "nope"]) == ["nope"]
    assert kinds == {"npy": "npy", "csv": "csv", "csv_numbers": "csv", "csv_pandas": "csv", "csv_bare": "csv",
                     "h5": "hdf5", "nested h5": "hdf5", "pkl": "pickle", "nested pkl": "pickle"}
    # the CSV text (repr of float32 values) parses back to the very same float32 numbers
    assert CsvFolder(tmp_path / "csv", prefix="v_").load("vid002").tobytes() == data["vid002"].tobytes()


def test_channel_first_arrays_are_turned_around(tmp_path, data):
    write_npy(tmp_path / "ct", data, channel_first=True)
    write_h5(tmp_path / "ct.h5", data, channel_first=True)
    for root in ("ct", "ct.h5"):
        _same(open_features(FeatureConfig(root=str(tmp_path / root), dim=6)), data)          # from dim
        _same(open_features(FeatureConfig(root=str(tmp_path / root), layout="ct")), data)    # told
    # without dim or layout a (C, T) array is read as it is stored (and a run's dim then names it)
    raw = open_features(FeatureConfig(root=str(tmp_path / "ct")))
    assert raw.load("vid000").shape == data["vid000"].T.shape
    # the run's expected channel count (scan) resolves them too
    scan = raw.scan(sorted(data), expected_dim=6)
    assert scan.dim == 6 and scan.lengths == {k: v.shape[0] for k, v in data.items()}
    np.testing.assert_array_equal(raw.load("vid001"), data["vid001"])
    # layout=tc with a channel-first file: the channel check says what it got
    with pytest.raises(StaleError, match=r"vid000\.npy: expected 6 channels, got shape \(6, \d+\)$"):
        open_features(FeatureConfig(root=str(tmp_path / "ct"), dim=6, layout="tc")).load("vid000")


def test_streams_concatenate_along_channels(tmp_path):
    rgb, flow = arrays(3, 4, seed=1), arrays(3, 5, seed=1)
    flow = {k: v[:, :5] + 1 for k, v in flow.items()}
    write_h5(tmp_path / "rgb_val.h5", rgb)
    write_npy(tmp_path / "flow", flow, channel_first=True)
    cfg = from_dict(FeatureConfig, {"dim": 9, "streams": [{"root": str(tmp_path / "rgb_val.h5"), "dim": 4},
                                                          {"root": str(tmp_path / "flow"), "dim": 5}]})
    reader = open_features(cfg)
    assert isinstance(reader, ConcatSource) and reader.ids() == sorted(rgb)
    for vid in rgb:
        np.testing.assert_array_equal(reader.load(vid), np.concatenate([rgb[vid], flow[vid]], axis=1))
    assert reader.where("vid000") == f"{tmp_path / 'rgb_val.h5'}:vid000 + {tmp_path / 'flow' / 'vid000.npy'}"
    # one stream's missing video is the video's absence
    os.remove(tmp_path / "flow" / "vid002.npy")
    assert reader.missing(sorted(rgb)) == ["vid002"] and reader.ids() == ["vid000", "vid001"]
    # a channel-count mismatch of the concatenation names both streams
    bad = open_features(from_dict(FeatureConfig, {"dim": 10, "streams": [{"root": str(tmp_path / "rgb_val.h5")},
                                                                         {"root": str(tmp_path / "flow"), "layout": "ct"}]}))
    with pytest.raises(StaleError, match=r"rgb_val\.h5:vid000 \+ .*vid000\.npy: expected 10 channels in all, "
                                         r"the streams give 4 \+ 5 = 9"):
        bad.load("vid000")
    with pytest.raises(StaleError, match="not the sum of the streams"):
        from_dict(FeatureConfig, {"dim": 10, "streams": [{"root": "a", "dim": 4}, {"root": "b", "dim": 5}]})


def test_stream_lengths_must_agree_or_are_cropped(tmp_path):
    a = arrays(2, 3, seed=0, lengths=[10, 8])
    b = {k: v[:-1] for k, v in a.items()}   # the flow stream one feature short
    write_npy(tmp_path / "rgb", a)
    write_npy(tmp_path / "flow", b)
    streams = [{"root": str(tmp_path / "rgb")}, {"root": str(tmp_path / "flow")}]
    with pytest.raises(StaleError, match=r"video vid000: .*rgb/vid000\.npy has 10 features but .*flow/vid000\.npy "
                                         r"has 9; set data.features.length_mismatch=crop"):
        open_features(from_dict(FeatureConfig, {"streams": streams})).load("vid000")
    reader = open_features(from_dict(FeatureConfig, {"streams": streams, "length_mismatch": "crop"}))
    x = reader.load("vid001")
    np.testing.assert_array_equal(x, np.concatenate([a["vid001"][:7], b["vid001"]], axis=1))
    assert reader.cropped == {"vid001": (8, 7)}


def test_bad_files_are_one_line_naming_file_and_key(tmp_path, data):
    write_h5(tmp_path / "f.h5", data, prefix="v_")
    h5 = Hdf5Source(tmp_path / "f.h5", prefix="v_", dim=6)
    # wrong key: the missing entry, and a key pattern that leads to a group
    with pytest.raises(StaleError, match=r"features of video zzz not found: expected .*f\.h5:v_zzz$"):
        h5.load("zzz")
    assert Hdf5Source(tmp_path / "f.h5").ids() == [f"v_{k}" for k in sorted(data)]
    assert Hdf5Source(tmp_path / "f.h5", key="feats/{id}").ids() == []
    write_h5(tmp_path / "g.h5", data, key="{id}/rgb")
    with pytest.raises(StaleError, match=r"g\.h5:vid000: is a group, not an array \(it holds rgb\); set the key "
                                         r"pattern .* e\.g\. '\{id\}/rgb'"):
        Hdf5Source(tmp_path / "g.h5").load("vid000")
    # channel-count mismatch names file and key
    with pytest.raises(StaleError, match=r"f\.h5:v_vid001: expected 8 channels, got shape \(\d+, 6\)"):
        Hdf5Source(tmp_path / "f.h5", prefix="v_", dim=8).load("vid001")
    # a corrupt HDF5 file: garbage, and a real one cut in half
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(300))
    with pytest.raises(StaleError, match=r"junk\.h5: not a readable HDF5 file"):
        Hdf5Source(tmp_path / "junk.h5").load("vid000")
    blob = (tmp_path / "f.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(StaleError, match=r"cut\.h5"):
        Hdf5Source(tmp_path / "cut.h5", prefix="v_").load("vid003")
    # non-float data
    import h5py

    with h5py.File(tmp_path / "int.h5", "w") as f:
        f["vid000"] = np.arange(12).reshape(2, 6)
    with pytest.raises(StaleError, match=r"int\.h5:vid000: expected floating-point features, got dtype int64"):
        Hdf5Source(tmp_path / "int.h5").load("vid000")
    with pytest.raises(StaleError, match="feature file not found"):
        Hdf5Source(tmp_path / "none.h5")


def test_ragged_and_broken_csv(tmp_path, data):
    write_csv(tmp_path / "c", data)
    path = tmp_path / "c" / "vid001.csv"
    lines = path.read_text().splitlines()
    lines[4] = ",".join(lines[4].split(",")[:-1])       # row 5 (4th data row) lost its last value
    path.write_text("\n".join(lines) + "\n")
    src = CsvFolder(tmp_path / "c", dim=6)
    with pytest.raises(StaleError, match=r"vid001\.csv: row 5 has 5 values but row 2 has 6 \(a ragged table"):
        src.load("vid001")
    lines[4] = lines[3].replace(lines[3].split(",")[2], "abc", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StaleError, match=r"vid001\.csv: row 5, column 3: 'abc' is not a number"):
        src.load("vid001")
    (tmp_path / "c" / "vid002.csv").write_text("f0,f1,f2,f3,f4,f5\n")
    with pytest.raises(StaleError, match=r"vid002\.csv: expected a \(T, C\) array with T > 0"):
        src.load("vid002")
    (tmp_path / "c" / "vid003.csv").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(StaleError, match=r"vid003\.csv: not a text \(CSV\) file"):
        src.load("vid003")
    with pytest.raises(StaleError, match=r"vid000\.csv: expected 7 channels"):
        CsvFolder(tmp_path / "c", dim=7).load("vid000")


def test_pickles_hold_only_arrays(tmp_path, data):
    write_pickle(tmp_path / "f.pkl", data)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"vid000": Evil()}))
    with pytest.raises(StaleError, match=r"evil\.pkl: not a readable pickle of feature arrays \(it refers to "
                                         r"(posix|os)\.system"):
        PickleSource(tmp_path / "evil.pkl").load("vid000")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(StaleError, match=r"list\.pkl: expected a pickled dict"):
        PickleSource(tmp_path / "list.pkl").ids()
    (tmp_path / "cut.pkl").write_bytes((tmp_path / "f.pkl").read_bytes()[:100])
    with pytest.raises(StaleError, match=r"cut\.pkl: not a readable pickle"):
        PickleSource(tmp_path / "cut.pkl").load("vid000")
    # nested lists are tables too; ragged ones are named
    (tmp_path / "lists.pkl").write_bytes(pickle.dumps({"a": [[1.0, 2.0], [3.0, 4.0]], "b": [[1.0], [2.0, 3.0]]}))
    np.testing.assert_array_equal(PickleSource(tmp_path / "lists.pkl").load("a"), [[1, 2], [3, 4]])
    with pytest.raises(StaleError, match=r"lists\.pkl:b: a list that is not a \(T, C\) table"):
        PickleSource(tmp_path / "lists.pkl").load("b")


def test_nonfinite_policy_is_the_same_for_every_kind(tmp_path):
    x = {"vid000": np.ones((4, 3), np.float32)}
    x["vid000"][1, 2] = np.nan
    x["vid000"][3, 0] = np.inf
    write_csv(tmp_path / "c", x)
    write_h5(tmp_path / "f.h5", x)
    write_pickle(tmp_path / "f.pkl", x)
    for root in ("c", "f.h5", "f.pkl"):
        with pytest.raises(StaleError, match=r"2 non-finite values \(first at time step 1\)"):
            open_features(FeatureConfig(root=str(tmp_path / root))).load("vid000")
        reader = open_features(FeatureConfig(root=str(tmp_path / root), nonfinite="zero"))
        np.testing.assert_array_equal(reader.load("vid000"), np.where(np.isfinite(x["vid000"]), x["vid000"], 0))
        assert reader.nonfinite_counts == {"vid000": 2}


def test_detect_kind(tmp_path, data):
    write_npy(tmp_path / "n", data)
    write_csv(tmp_path / "c", data)
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.hdf5").write_bytes(b"")
    (tmp_path / "x.pickle").write_bytes(b"")
    (tmp_path / "x.txt").write_text("")
    assert [detect_kind(tmp_path / p) for p in ("n", "c", "empty", "x.hdf5", "x.pickle")] == \
        ["npy", "csv", "npy", "hdf5", "pickle"]
    with pytest.raises(StaleError, match=r"x\.txt: not a feature source"):
        detect_kind(tmp_path / "x.txt")
    with pytest.raises(StaleError, match="feature source not found"):
        detect_kind(tmp_path / "nope")
    with pytest.raises(StaleError, match=r"key 'feats': must contain"):
        FeatureConfig(key="feats").validate()


def test_containers_in_dataloader_workers(tmp_path, data):
    """An HDF5 file opened in the main process is reopened, not shared, by worker processes."""
    import torch

    from stale.data.annotations import Video
    from stale.data.dataset import VideoFeatureDataset, make_loader

    write_h5(tmp_path / "f.h5", data)
    src = Hdf5Source(tmp_path / "f.h5", dim=6)
    src.load("vid000")   # the file is now open here
    ids = sorted(data)
    clone = pickle.loads(pickle.dumps(src))
    assert clone._handle is None
    np.testing.assert_array_equal(clone.load("vid002"), data["vid002"])
    ds = VideoFeatureDataset([Video(v, "training", 10.0) for v in ids], src, 5)
    got = torch.cat([b.features for b in make_loader(ds, range(len(ids)), 2, num_workers=1)])
    want = torch.stack([torch.from_numpy(FeatureStore(write_npy(tmp_path / "n", data)).load_resampled(v, 5))
                        for v in ids])
    assert torch.equal(got, want)
