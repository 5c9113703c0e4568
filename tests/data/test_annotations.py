"""Annotation readers: real-file counts, each quirk policy, layouts, zero-shot class filtering."""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stale.data import resources
from stale.data.annotation_formats import detect_layout
from stale.data.annotations import AnnotationPolicy, AnnotationSet, Segment, load_annotations
from stale.data.splits import load_split
from stale.core.errors import StaleError

FIXTURES = Path(__file__).parent / "fixtures"
THUMOS_TXT = FIXTURES / "thumos14_official_txt"


@pytest.fixture(scope="module")
def thumos():
    return load_annotations(resources.annotations_path("thumos14"))


@pytest.fixture(scope="module")
def anet_raw():
    with gzip.open(resources.annotations_path("activitynet"), "rt") as fh:
        return json.load(fh)["database"]


@pytest.fixture(scope="module")
def anet():
    return load_annotations(resources.annotations_path("activitynet"))


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def official(videos: dict) -> dict:
    return {"version": "test", "taxonomy": [], "database": videos}


# ----------------------------------------------------------------------------- real files

def test_thumos14_counts_raw_and_post_policy(thumos):
    rep = thumos.report
    assert rep.layout == "actionformer"
    assert rep.videos_read == {"validation": 200, "test": 212}
    # raw = annotation rows in the file: a CliffDiving instance is one row per label
    assert rep.segments_read == {"validation": 3007, "test": 3358}
    # all 30 segments ending after the duration also start after it: dropped, not clipped
    assert rep.starts_beyond_duration == 30 and rep.clipped_to_duration == 0
    assert rep.segments_kept == {"validation": 3007 - 4, "test": 3358 - 26}
    assert thumos.num_segments("validation") == 3003 and thumos.num_segments("test") == 3332
    assert rep.zero_length == rep.duplicates == rep.reversed == rep.ambiguous == 0
    assert len(thumos["video_test_0000270"].segments) == \
        sum(1 for s in json.loads(resources.annotations_path("thumos14").read_text())["database"]
            ["video_test_0000270"]["annotations"]) - 22
    assert len(thumos.classes()) == 20 and thumos.classes("validation") == thumos.classes("test")
    assert thumos["video_test_0000004"].fps == 30.0
    assert thumos.subsets == ["test", "validation"]


def test_thumos14_double_labels(thumos):
    """Every CliffDiving segment is also labelled Diving; both labels are kept and counted."""
    pairs = 0
    for v in thumos:
        diving = {(s.start, s.end) for s in v.segments if s.label == "Diving"}
        cliff = [(s.start, s.end) for s in v.segments if s.label == "CliffDiving"]
        assert all(b in diving for b in cliff)
        pairs += len(cliff)
    assert pairs == sum(1 for v in thumos for s in v.segments if s.label == "CliffDiving") > 300
    # one further double label exists: ThrowDiscus/Shotput in video_test_0000045
    assert thumos.report.multi_label == pairs + 1
    labels = [s.label for s in thumos["video_test_0000045"].segments if (s.start, s.end) == (130.8, 131.6)]
    assert sorted(labels) == ["Shotput", "ThrowDiscus"]


def test_activitynet_counts(anet, anet_raw):
    rep = anet.report
    assert sum(rep.videos_read.values()) == 19994 and rep.videos_read["validation"] == 4926
    assert rep.videos_read == {"training": 10024, "validation": 4926, "testing": 5044}
    assert rep.zero_length == 12 and rep.clipped_to_duration == 231
    assert rep.starts_beyond_duration == 0 and rep.reversed == 0
    # 47 are bit-identical; 5 more differ only by float noise (< 1e-6 s): 52 within the 1e-3 s tolerance
    assert rep.duplicates == 52
    exact = sum(n - 1 for v in anet_raw.values()
                for n in Counter((a["segment"][0], a["segment"][1], a["label"]) for a in v["annotations"]).values())
    assert exact == 47
    raw_rows = sum(len(v["annotations"]) for v in anet_raw.values())
    assert sum(rep.segments_read.values()) == raw_rows == 23064
    assert anet.num_segments() == raw_rows - 12 - 52
    assert rep.empty_videos["testing"] == 5044
    assert len(anet.classes()) == 200 == len(anet.classes("validation"))
    assert len(anet.subset("Validation")) == 4926


def test_activitynet_keep_everything_policy():
    keep = load_annotations(resources.annotations_path("activitynet"),
                            policy=AnnotationPolicy(duplicate_tol=-1, min_length=-1))
    assert keep.num_segments() == 23064
    assert keep.report.duplicates == keep.report.zero_length == 0 and keep.report.clipped_to_duration == 231


def test_activitynet_policies_match_independent_count(anet, anet_raw):
    """Clipping and duplicate counts agree with a vectorised count over the raw file."""
    rows = [(vid, a["segment"][0], a["segment"][1], v["duration"]) for vid, v in anet_raw.items()
            for a in v["annotations"]]
    seg = np.array([[s, e, d] for _, s, e, d in rows])
    assert int((seg[:, 1] > seg[:, 2]).sum()) == 231
    assert float((seg[:, 1] - seg[:, 2]).max()) == pytest.approx(0.848, abs=1e-3)
    assert int((seg[:, 1] == seg[:, 0]).sum()) == 12
    for v in anet:
        assert all(0 <= s.start < s.end <= v.duration for s in v.segments)


def test_activitynet_blocked_lists(anet_raw):
    miss = load_annotations(resources.annotations_path("activitynet"),
                            policy=AnnotationPolicy(blocked=("missing_features",)))
    assert miss.report.videos_kept["validation"] == 4728
    assert miss.report.blocked_videos == 375 + 198 + 193
    # the missing-features list is exactly the videos absent from BSN's video_info_new.csv
    with gzip.open(FIXTURES / "video_info_new.csv.gz", "rt") as fh:
        csv_ids = {line.split(",")[0][2:] for line in fh.read().splitlines()[1:]}
    assert set(miss.videos) == csv_ids
    api = load_annotations(resources.annotations_path("activitynet"), policy=AnnotationPolicy(blocked=("api",)))
    blocked = set(json.loads(resources.blocked_list_path("api").read_text()))
    assert len(blocked) == 986 and api.report.blocked_videos == 986
    assert api.report.videos_kept["validation"] == 4926 - sum(
        1 for b in blocked if anet_raw[b]["subset"] == "validation")
    assert not blocked & set(api.videos)


def test_thumos14_official_txt(thumos):
    txt = load_annotations(THUMOS_TXT)
    rep = txt.report
    assert rep.layout == "thumos14-txt"
    assert rep.videos_read == {"validation": 200, "test": 213}
    ambiguous = sum(1 for p in THUMOS_TXT.rglob("Ambiguous_*.txt") for line in p.read_text().splitlines()
                    if line.strip())
    assert rep.ambiguous == ambiguous > 0
    # video_test_0001292 has only Ambiguous segments: kept, without segments, counted
    assert txt["video_test_0001292"].segments == [] and rep.empty_videos == {"test": 1}
    assert "Ambiguous" not in txt.classes()
    assert rep.durations_inferred == 413
    # with durations from the json the txt files give exactly the json's segments
    txt2 = load_annotations(THUMOS_TXT, durations=thumos)
    assert txt2.report.durations_inferred == 1  # video_test_0001292 is not in the json
    assert txt2.report.starts_beyond_duration == 30
    for v in thumos:
        assert sorted(txt2[v.id].segments, key=repr) == sorted(v.segments, key=repr)


# ----------------------------------------------------------------------------- policies

def test_each_quirk_policy_counted(tmp_path, caplog):
    anns = [
        {"segment": [1.0, 2.0], "label": "A"},
        {"segment": [1.0, 2.0], "label": "A"},        # exact duplicate
        {"segment": [1.0004, 2.0002], "label": "A"},  # duplicate within tolerance
        {"segment": [1.0, 2.0], "label": "B"},        # second label on the same bounds
        {"segment": [3.0, 3.0], "label": "A"},        # zero length
        {"segment": [5.0, 4.0], "label": "B"},        # reversed
        {"segment": [8.0, 12.0], "label": "B"},       # ends past the duration: clipped
        {"segment": [10.0, 11.0], "label": "A"},      # starts at the duration: dropped
        {"segment": [6.0, 7.0], "label": "Ambiguous"},
    ]
    path = write_json(tmp_path / "a.json", official({
        "x": {"subset": "Validation", "duration": 10.0, "annotations": anns},
        "y": {"subset": "TESTING", "duration": 5.0, "annotations": []},
    }))
    with caplog.at_level(logging.DEBUG, logger="stale.data.annotations"):
        aset = load_annotations(path)
    rep = aset.report
    assert (rep.duplicates, rep.zero_length, rep.reversed, rep.clipped_to_duration,
            rep.starts_beyond_duration, rep.ambiguous, rep.multi_label) == (2, 1, 1, 1, 1, 1, 1)
    assert rep.empty_videos == {"testing": 1}
    assert aset["x"].segments == [Segment(1.0, 2.0, "A"), Segment(1.0, 2.0, "B"), Segment(8.0, 10.0, "B")]
    assert aset.subsets == ["testing", "validation"]
    assert any("duplicates dropped 2" in r.getMessage() and "clipped to duration 1" in r.getMessage()
               for r in caplog.records)

    swapped = load_annotations(path, policy=AnnotationPolicy(reversed="swap", duplicate_tol=0.0,
                                                             min_length=0.5))
    assert Segment(4.0, 5.0, "B") in swapped["x"].segments
    assert swapped.report.duplicates == 1  # the 1e-4-off copy is now distinct
    assert swapped.report.zero_length == 1
    nodedup = load_annotations(path, policy=AnnotationPolicy(duplicate_tol=-1))
    assert nodedup.report.duplicates == 0 and len(nodedup["x"].segments) == 5


@pytest.mark.parametrize("bad, field", [
    ({"segment": [float("nan"), 2.0], "label": "A"}, "annotations[0].segment[0]"),
    ({"segment": [1.0, "soon"], "label": "A"}, "annotations[0].segment[1]"),
    ({"segment": [1.0, None], "label": "A"}, "annotations[0].segment[1]"),
    ({"segment": [1.0], "label": "A"}, "annotations[0].segment"),
    ({"segment": [1.0, 2.0], "label": 3}, "annotations[0].label"),
])
def test_bad_values_name_file_video_field(tmp_path, bad, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(official({"vid7": {"subset": "training", "duration": 10, "annotations": [bad]}}),
                               allow_nan=True))
    with pytest.raises(StaleError) as exc:
        load_annotations(path)
    msg = str(exc.value)
    assert str(path) in msg and "vid7" in msg and field in msg


def test_bad_duration_and_unknown_layout(tmp_path):
    inf = tmp_path / "inf.json"
    inf.write_text('{"database": {"v1": {"subset": "training", "duration": Infinity, "annotations": []}}}')
    with pytest.raises(StaleError, match=r"v1.*'duration'.*not finite"):
        load_annotations(inf)
    neg = write_json(tmp_path / "neg.json", official({"v2": {"subset": "training", "duration": 0}}))
    with pytest.raises(StaleError, match=r"v2.*duration.*positive"):
        load_annotations(neg)
    odd = write_json(tmp_path / "odd.json", {"results": [1, 2]})
    with pytest.raises(StaleError, match="unknown annotation layout"):
        load_annotations(odd)
    with pytest.raises(StaleError, match="not found"):
        load_annotations(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(StaleError, match="broken.json"):
        load_annotations(tmp_path / "broken.json")
    with pytest.raises(StaleError, match="layout"):
        load_annotations(neg, layout="csv")


def test_gzip_transparent_and_blocked_file(tmp_path):
    db = official({"a": {"subset": "Validation", "duration": 9.0,
                         "annotations": [{"segment": [1, 2], "label": "X"}]},
                   "b": {"subset": "Validation", "duration": 9.0,
                         "annotations": [{"segment": [3, 4], "label": "Y"}]}})
    gz = tmp_path / "a.json.gz"
    with gzip.open(gz, "wt") as fh:
        json.dump(db, fh)
    aset = load_annotations(gz)
    assert aset.report.layout == "activitynet" and len(aset) == 2
    blocked = tmp_path / "blocked.txt"
    blocked.write_text("b\n")
    aset = load_annotations(gz, policy=AnnotationPolicy(blocked=(str(blocked),), exclude_videos=("zz",)))
    assert list(aset.videos) == ["a"] and aset.report.blocked_videos == 1
    assert aset.report.blocked_segments == 1
    assert load_annotations(gz, policy=AnnotationPolicy(exclude_videos=("a",))).report.excluded_videos == 1
    with pytest.raises(StaleError, match="blocked list"):
        load_annotations(gz, policy=AnnotationPolicy(blocked=("nonexistent_list",)))


def test_bsn_layout(tmp_path):
    anno = {"v_abc": {"duration_second": 20.0, "duration_frame": 600, "feature_frame": 592,
                      "annotations": [{"segment": [2.0, 25.0], "label": "Run"}]},
            "v_def": {"duration_second": 10.0, "annotations": [{"segment": [1.0, 3.0], "label": "Jump"}]}}
    path = write_json(tmp_path / "anet_anno_action.json", anno)
    (tmp_path / "video_info_new.csv").write_text(
        "video,numFrame,seconds,fps,rfps,subset,featureFrame\n"
        "v_abc,600,20.0,30.0,29.97,training,592\n"
        "v_def,250,10.0,25.0,25.0,validation,240\n"
        "v_ghi,100,4.0,25.0,25.0,testing,96\n")
    assert detect_layout(path) == "bsn"
    aset = load_annotations(path)  # video_info found next to the json
    assert set(aset.videos) == {"abc", "def", "ghi"}
    assert aset["abc"].subset == "training" and aset["abc"].fps == 30.0 and aset["abc"].num_frames == 600
    assert aset["abc"].segments == [Segment(2.0, 20.0, "Run")] and aset.report.clipped_to_duration == 1
    assert aset["ghi"].segments == [] and aset["ghi"].duration == 4.0
    (tmp_path / "video_info_new.csv").unlink()
    with pytest.raises(StaleError, match=r"v_abc.*subset"):
        load_annotations(path)
    (tmp_path / "x.csv").write_text("video,subset\n")
    with pytest.raises(StaleError, match="video_info"):
        load_annotations(tmp_path / "x.csv")


def test_bsn_matches_official_on_real_videos(tmp_path, anet_raw):
    """The same ActivityNet videos through the BSN layout give the same set."""
    ids = sorted(anet_raw)[:300]
    bsn = {f"v_{i}": {"duration_second": anet_raw[i]["duration"], "subset": anet_raw[i]["subset"],
                      "annotations": anet_raw[i]["annotations"]} for i in ids}
    a = load_annotations(write_json(tmp_path / "bsn.json", bsn))
    b = load_annotations(write_json(tmp_path / "off.json", official({i: anet_raw[i] for i in ids})))
    assert a.report.layout == "bsn" and b.report.layout == "activitynet"
    assert {v.id: (v.subset, v.duration, v.segments) for v in a} == \
        {v.id: (v.subset, v.duration, v.segments) for v in b}


def test_txt_layout_errors(tmp_path):
    folder = tmp_path / "txt"
    folder.mkdir()
    with pytest.raises(StaleError, match="no THUMOS14"):
        load_annotations(folder)
    (folder / "Run_val.txt").write_text("video_validation_1 1.0 2.0\nvideo_validation_1 1.0\n")
    with pytest.raises(StaleError, match=r"Run_val.txt:2"):
        load_annotations(folder)
    (folder / "Run_val.txt").write_text("video_validation_1 1.0 nan\n")
    with pytest.raises(StaleError, match=r"video_validation_1.*not finite"):
        load_annotations(folder)


# ----------------------------------------------------------------------------- set operations

def test_subset_and_classes(thumos):
    val = thumos.subset("VALIDATION")
    assert len(val) == 200 and all(v.subset == "validation" for v in val)
    with pytest.raises(StaleError, match="no subset 'training'"):
        thumos.subset("training")
    with pytest.raises(StaleError, match="no video"):
        thumos["video_test_9999999"]


def test_filter_classes_train_and_test(thumos):
    split = load_split("thumos14", 75, 0)
    train = thumos.subset("validation")
    filtered = train.filter_classes(split.seen, "train")
    seen = set(split.seen)
    # independent count: unseen-class segments inside videos that keep a seen-class segment
    to_bg = sum(sum(s.label not in seen for s in v.segments) for v in train
                if any(s.label in seen for s in v.segments))
    cf = filtered.report.class_filter
    assert cf.segments_to_background == to_bg > 0
    assert cf.videos_kept == sum(1 for v in train if any(s.label in seen for s in v.segments))
    assert all(s.label in seen for v in filtered for s in v.segments)
    assert cf.segments_kept == filtered.num_segments() == sum(s.label in seen for v in train for s in v.segments)
    assert "to background" in filtered.report.summary()

    strict = train.filter_classes(split.seen, "train_drop")
    assert len(strict) == sum(1 for v in train if v.segments and all(s.label in seen for s in v.segments))

    test = thumos.subset("test").filter_classes(split.unseen, "test")
    unseen = set(split.unseen)
    assert set(test.classes()) == unseen
    assert len(test) == sum(1 for v in thumos.subset("test") if any(s.label in unseen for s in v.segments))
    assert test.report.class_filter.segments_to_background == 0
    with pytest.raises(StaleError, match="unknown class 'Swimming'"):
        thumos.filter_classes(["Swimming"])
    with pytest.raises(StaleError, match="policy"):
        thumos.filter_classes(split.seen, "both")


def test_to_activitynet_json_roundtrip(thumos, tmp_path):
    out = thumos.subset("test").to_activitynet_json()
    assert set(out) == {"version", "taxonomy", "database"} and len(out["database"]) == 212
    entry = out["database"]["video_test_0000004"]
    assert entry["subset"] == "test" and entry["annotations"][0] == {"segment": [0.2, 1.1], "label": "CricketBowling"}
    again = load_annotations(write_json(tmp_path / "gt.json", out))
    assert again.report.layout == "activitynet"
    assert {v.id: v.segments for v in again} == {v.id: v.segments for v in thumos.subset("test")}
    rep = again.report
    assert rep.starts_beyond_duration == rep.clipped_to_duration == rep.duplicates == 0


def test_report_to_dict_is_json(thumos):
    d = thumos.report.to_dict()
    json.dumps(d)
    assert d["segments_read"] == {"validation": 3007, "test": 3358}
    assert isinstance(thumos, AnnotationSet)
