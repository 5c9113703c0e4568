"""``stale extract --shard I/N``: N jobs split the videos deterministically, write index parts
that every reader merges, resume per video, and write exactly the bytes one process writes."""

from __future__ import annotations

import json

import pytest

from media_util import CLIP_SCHEDULES, extract_cfg
from stale.core.errors import StaleError
from stale.pipeline.extract import ExtractConfig, extract_videos
from stale.pipeline.extract_index import read_index, shard_of

av = pytest.importorskip("av")
SCHEDULES = CLIP_SCHEDULES

_cfg = extract_cfg


def test_shards_split_deterministically():
    ids = [f"v_{i}" for i in range(200)]
    for n in (1, 2, 3, 7):
        groups = [[v for v in ids if shard_of(v, n) == i] for i in range(n)]
        assert sorted(sum(groups, [])) == sorted(ids)          # every video in exactly one shard
        assert all(groups) and max(map(len, groups)) - min(map(len, groups)) < 200 // n
    assert shard_of("abc", 4) == shard_of("abc", 4) == __import__("zlib").crc32(b"abc") % 4
    with pytest.raises(StaleError, match="--shard: must be I/N"):
        ExtractConfig(shard=(2, 2)).validate()


def test_two_shards_write_the_bytes_of_one_process(media, tmp_path):
    folder, weights = media
    one = extract_videos([folder], tmp_path / "one", _cfg(weights))
    assert len(one.extracted) == 5
    out = tmp_path / "sharded"
    a = extract_videos([folder], out, _cfg(weights, shard=(0, 2)))
    assert not (out / "extract_meta.json").exists()
    b = extract_videos([folder], out, _cfg(weights, shard=(1, 2)))
    assert sorted(a.extracted + b.extracted) == sorted(one.extracted) and not set(a.extracted) & set(b.extracted)
    assert sorted(a.extracted) == sorted(p.stem for p in folder.iterdir() if shard_of(p.stem, 2) == 0)
    for vid in one.extracted:
        assert (out / f"{vid}.npy").read_bytes() == (tmp_path / "one" / f"{vid}.npy").read_bytes()
    # each part holds its own videos; readers see them merged, with the one process's entries
    parts = {p.name: json.loads(p.read_text()) for p in out.glob("extract_meta.shard-*.json")}
    assert sorted(parts) == ["extract_meta.shard-0-of-2.json", "extract_meta.shard-1-of-2.json"]
    assert sorted(parts["extract_meta.shard-0-of-2.json"]["videos"]) == sorted(a.extracted)
    merged, single = read_index(out), json.loads((tmp_path / "one" / "extract_meta.json").read_text())
    for vid, info in single["videos"].items():
        assert {k: v for k, v in merged["videos"][vid].items() if k != "timing_s"} == \
            {k: v for k, v in info.items() if k != "timing_s"}
    # the annotation stub lists every video (written from the merged parts)
    assert json.loads((out / "videos.json").read_text())["database"].keys() == single["videos"].keys()
    # resume: a shard run again extracts nothing; an unsharded run sees every video done
    rerun = extract_videos([folder], out, _cfg(weights, shard=(1, 2)))
    assert rerun.extracted == [] and sorted(rerun.resumed) == sorted(b.extracted)
    again = extract_videos([folder], out, _cfg(weights))
    assert again.extracted == [] and sorted(again.resumed) == sorted(one.extracted)


def test_a_fellow_shard_checking_between_a_feature_file_and_its_index_accepts_the_folder(media, tmp_path,
                                                                                         monkeypatch):
    """The race CI hit: shard 0 saves its first .npy into an empty folder; shard 1 checks the
    folder before shard 0's index entry lands. The part is written before any feature file, so
    the check sees an index, not a foreign file."""
    import stale.pipeline.extract as extract_mod

    folder, weights = media
    out = tmp_path / "o"
    save, seen = extract_mod.atomic_save_npy, []

    def save_then_fellow_checks(path, array):
        save(path, array)
        assert read_index(out) is not None, f"{path.name} landed before any index"
        seen.append(len(extract_mod.check_extract_output([folder], out, _cfg(weights, shard=(1, 2)))))

    monkeypatch.setattr(extract_mod, "atomic_save_npy", save_then_fellow_checks)
    a = extract_videos([folder], out, _cfg(weights, shard=(0, 2)))
    assert len(seen) == len(a.extracted) > 0 and set(seen) == {5}


def test_parts_with_other_settings_are_refused(media, tmp_path):
    folder, weights = media
    out = tmp_path / "o"
    extract_videos([folder / "clip0.mp4"], out, _cfg(weights, shard=(0, 2)))
    extract_videos([folder / "clip1.mp4"], out, _cfg(weights, shard=(1, 2)))
    part = next(out.glob("extract_meta.shard-1-of-2.json"))
    meta = json.loads(part.read_text())
    meta["stride"] = 2
    part.write_text(json.dumps(meta))
    with pytest.raises(StaleError, match=r"shard-1-of-2\.json: made with other settings than .* \(stride\)"):
        extract_videos([folder], out, _cfg(weights, shard=(0, 2)))


def test_cli_shard_argument():
    from stale.pipeline.extract_index import parse_shard

    assert parse_shard("0/4") == (0, 4) and parse_shard(None) is None and parse_shard("2/3") == (2, 3)
    for bad, why in (("4/4", "0 <= I < N"), ("1", "expected I/N"), ("a/b", "expected I/N"), ("-1/2", "0 <= I < N")):
        with pytest.raises(StaleError, match=f"--shard '{bad}': .*{why}"):
            parse_shard(bad)


@pytest.mark.parametrize("launcher", ["local", "submitit-local"])
def test_shards_submitted_by_the_launcher_write_the_bytes_of_one_process(media, tmp_path, launcher):
    """``--shards 2 --launcher L``: two jobs of the experiment runner's launcher fill one folder."""
    if launcher == "submitit-local":
        pytest.importorskip("submitit")
    import stale

    folder, weights = media
    kw = dict(weights=str(weights), clip_frames=4, stride=4, batch_size=3, device="cpu", progress=False)
    one = stale.extract(folder, tmp_path / "one", **kw)
    two = stale.extract(folder, tmp_path / "two", shards=2, launcher=launcher, **kw)
    assert sorted(two.extracted) == sorted(one.extracted) and len(one.extracted) == len(SCHEDULES)
    for vid in one.extracted:
        assert (tmp_path / "two" / f"{vid}.npy").read_bytes() == (tmp_path / "one" / f"{vid}.npy").read_bytes()
    assert sorted(p.name for p in (tmp_path / "two").glob("extract_meta.shard-*.json")) == [
        "extract_meta.shard-0-of-2.json", "extract_meta.shard-1-of-2.json"]
    assert sorted(read_index(tmp_path / "two")["videos"]) == sorted(one.extracted)
    if launcher == "submitit-local":
        assert list((tmp_path / "two" / ".submitit").glob("*_log.out"))
    again = stale.extract(folder, tmp_path / "two", shards=2, launcher=launcher, **kw)   # resume per video
    assert again.extracted == [] and sorted(again.resumed) == sorted(one.extracted)


def test_launcher_options_are_checked(media, tmp_path):
    import stale

    folder, weights = media
    with pytest.raises(StaleError, match="--launcher slurm: submits shards; give --shards N"):
        stale.extract(folder, tmp_path / "o", weights=str(weights), launcher="slurm")
    with pytest.raises(StaleError, match="--shard I/N .* or --shards N .*not both"):
        stale.extract(folder, tmp_path / "o", weights=str(weights), shard="0/2", shards=2)
    with pytest.raises(StaleError, match="--shards: must be a positive integer"):
        stale.extract(folder, tmp_path / "o", weights=str(weights), shards=0)
    assert not (tmp_path / "o").exists()
