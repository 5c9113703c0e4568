"""``stale extract`` as a hostile user runs it: truncated videos are an error naming the decoded
and declared duration (or a counted policy behind ``--allow-truncated``), and no file the command
did not make is ever replaced -- a same-named ``.npy`` outside its index, a folder of someone
else's files, an input video."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bad_inputs import enospc, leftover_temp, refused, run_cli, temp_files

av = pytest.importorskip("av")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_CLIP = {"embed_dim": 32, "quick_gelu": False,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
             "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}}


def write_video(path: Path, seconds: int = 4, fps: int = 10, faststart: bool = False) -> Path:
    """H.264 video of noisy frames (so that each frame costs bytes and a cut loses frames)."""
    rng = np.random.default_rng(0)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(seconds * fps):
            img = rng.integers(0, 255, size=(48, 64, 3)).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Tiny CLIP weights (state dict + sidecar) and videos: whole, cut, not a video."""
    import torch
    from open_clip.model import CLIP

    root = tmp_path_factory.mktemp("extract_media")
    torch.manual_seed(0)
    weights = root / "tiny_clip.pt"
    torch.save(CLIP(TINY_CLIP["embed_dim"], TINY_CLIP["vision_cfg"], TINY_CLIP["text_cfg"]).state_dict(), weights)
    (root / "tiny_clip.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    vids = root / "videos"
    vids.mkdir()
    whole = write_video(vids / "a.mkv")
    cuts = root / "cut"
    cuts.mkdir()
    cut(whole, cuts / "cut_mkv.mkv", 0.6)
    cut(write_video(root / "fast.mp4", faststart=True), cuts / "cut_mp4.mp4", 0.5)
    (root / "not_a_video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    write_video(root / "other.mkv", seconds=2).rename(root / "a.mkv")   # same id as videos/a.mkv
    return {"root": root, "weights": weights, "videos": vids, "whole": whole, "cuts": cuts,
            "other_a": root / "a.mkv", "junk": root / "not_a_video.mp4"}


def args(media, *inputs, out, extra=()) -> list:
    return ["extract", *inputs, "--out", out, "--weights", media["weights"], "--clip-frames", "4",
            "--stride", "4", "--device", "cpu", "--no-progress", *extra]


@pytest.fixture()
def done(media, tmp_path, capsys) -> Path:
    """An output folder of a finished extraction of ``videos/a.mkv``."""
    out = tmp_path / "feats"
    rc, _, err = run_cli(capsys, *args(media, media["whole"], out=out))
    assert rc == 0, err
    return out


# ----------------------------------------------------------------------------- truncation

@pytest.mark.parametrize("name, needles", [
    ("cut_mkv.mkv", ["truncated", "decoded", "of the 4.00 s it declares", "--allow-truncated"]),
    ("cut_mp4.mp4", ["truncated", "decoded", "of the 4.00 s it declares"]),
])
def test_truncated_video_is_an_error_naming_both_durations(capsys, media, tmp_path, name, needles):
    refused(capsys, args(media, media["cuts"] / name, out=tmp_path / "out"), name, *needles,
            roots=[tmp_path, media["root"]], new_files_ok=True)
    assert not list((tmp_path / "out").glob("*.npy"))


def test_allow_truncated_keeps_the_decoded_part_and_counts_it(capsys, media, tmp_path):
    out = tmp_path / "out"
    rc, stdout, err = run_cli(capsys, *args(media, media["cuts"] / "cut_mkv.mkv", out=out,
                                            extra=["--allow-truncated"]))
    assert rc == 0, err
    meta = json.loads((out / "extract_meta.json").read_text())
    info = meta["videos"]["cut_mkv"]
    assert info["truncated"]["declared_duration"] == pytest.approx(4.0)
    assert info["duration"] == pytest.approx(info["num_frames"] / 10) and info["duration"] < 3.5
    assert meta["summary"]["truncated"] == ["cut_mkv"]
    assert "truncated (decoded part kept) 1" in stdout
    index = json.loads((out / "videos.json").read_text())
    assert index["database"]["cut_mkv"]["duration"] == pytest.approx(info["duration"])


def test_skip_bad_skips_a_truncated_video_and_counts_it(capsys, media, tmp_path):
    out = tmp_path / "out"
    cut_video = media["cuts"] / "cut_mkv.mkv"
    rc, _, err = run_cli(capsys, *args(media, cut_video, media["whole"], out=out, extra=["--skip-bad"]))
    assert rc == 0, err
    meta = json.loads((out / "extract_meta.json").read_text())
    assert list(meta["videos"]) == ["a"] and "truncated" in meta["skipped"][str(cut_video)]
    assert not (out / "cut_mkv.npy").exists()


def test_complete_video_is_not_flagged(capsys, media, done):
    info = json.loads((done / "extract_meta.json").read_text())["videos"]["a"]
    assert "truncated" not in info and info["num_frames"] == 40
    assert info["declared_duration"] == pytest.approx(4.0)


def test_not_a_video(capsys, media, tmp_path):
    refused(capsys, args(media, media["junk"], out=tmp_path / "out"), "not_a_video.mp4", "cannot open video",
            roots=[tmp_path, media["root"]], new_files_ok=True)


def test_video_not_found(capsys, media, tmp_path):
    refused(capsys, args(media, tmp_path / "none.mp4", out=tmp_path / "out"), "none.mp4", "not found",
            roots=[tmp_path])


# ----------------------------------------------------------------------------- the output folder

def test_same_named_npy_in_a_foreign_folder_is_kept(capsys, media, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    np.save(out / "a.npy", np.ones((3, 5), np.float32))   # the user's own features
    refused(capsys, args(media, media["whole"], out=out), str(out), "did not write", "a.npy", "--overwrite",
            roots=[tmp_path])


def test_npy_not_in_the_index_is_kept(capsys, media, done, tmp_path):
    shutil.copy(media["whole"], tmp_path / "b.mkv")
    np.save(done / "b.npy", np.ones((3, 5), np.float32))   # put there by hand, not by extract
    refused(capsys, args(media, tmp_path / "b.mkv", out=done), "b.npy", "not in extract_meta.json",
            "--overwrite", roots=[tmp_path])


def test_folder_of_other_files(capsys, media, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused(capsys, args(media, media["whole"], out=out), "did not write", "notes.txt", roots=[tmp_path])


def test_damaged_index_is_named_and_overwrite_starts_a_new_one(capsys, media, done, tmp_path):
    (done / "extract_meta.json").write_text('{"videos": ')
    refused(capsys, args(media, media["whole"], out=done), "extract_meta.json", "not valid JSON",
            roots=[tmp_path])
    rc, _, err = run_cli(capsys, *args(media, media["whole"], out=done, extra=["--overwrite"]))
    assert rc == 0, err
    assert list(json.loads((done / "extract_meta.json").read_text())["videos"]) == ["a"]


def test_foreign_folder_keeps_even_its_temporary_files(capsys, media, tmp_path):
    out = tmp_path / "out"
    theirs = leftover_temp(out, "their_file.bin")   # another program's naming, same pattern
    (out / "data.bin").write_bytes(b"theirs")
    refused(capsys, args(media, media["whole"], out=out), "did not write", roots=[tmp_path])
    assert theirs.exists()


def test_same_id_from_another_file_is_not_taken_as_done(capsys, media, done, tmp_path):
    refused(capsys, args(media, media["other_a"], out=done), "a.npy", "holds features of", "--overwrite",
            roots=[tmp_path])


def test_out_is_an_input_video(capsys, media, tmp_path):
    refused(capsys, args(media, media["whole"], out=media["whole"]), "--out", roots=[media["root"]])


def test_out_inside_an_input_folder(capsys, media):
    refused(capsys, args(media, media["videos"], out=media["videos"] / "feats"), "inside the input folder",
            roots=[media["root"]])


def test_out_under_a_regular_file(capsys, media, tmp_path):
    (tmp_path / "f").write_text("mine")
    refused(capsys, args(media, media["whole"], out=tmp_path / "f" / "out"), "regular file", roots=[tmp_path])


def test_feature_file_name_too_long(capsys, media, tmp_path):
    refused(capsys, args(media, media["whole"], out=tmp_path / "out", extra=["--prefix", "p" * 300]),
            "file name too long", roots=[tmp_path])


@pytest.mark.parametrize("extra, needles", [
    (["--device", "foo"], ["'foo'", "not a device"]),
    (["--batch-size", "0"], ["--batch-size", "positive"]),
    (["--stride", "-1"], ["--stride", "positive"]),
    (["--frames-per-clip", "9"], ["frames_per_clip"]),
    (["--prefix", "a/b"], ["prefix", "path separator"]),
])
def test_bad_arguments(capsys, media, tmp_path, extra, needles):
    refused(capsys, args(media, media["whole"], out=tmp_path / "out", extra=extra), *needles, roots=[tmp_path])


def test_junk_weights_without_torch_advice(capsys, media, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not weights" * 30)
    argv = args(media, media["whole"], out=tmp_path / "out")
    argv[argv.index("--weights") + 1] = junk
    refused(capsys, argv, str(junk), "not a readable checkpoint", absent=["weights_only"], roots=[tmp_path])


def test_full_disk_leaves_no_partial_feature_file(capsys, media, tmp_path, monkeypatch):
    real_save = np.save

    def full(fh, arr, *a, **k):
        real_save(fh, arr[:1])
        raise enospc()

    monkeypatch.setattr(np, "save", full)
    out = tmp_path / "out"
    line = refused(capsys, args(media, media["whole"], out=out), "a.npy", "no space left",
                   roots=[media["root"]], new_files_ok=True)
    assert ".tmp" not in line
    assert not (out / "a.npy").exists() and temp_files(tmp_path) == []


def test_leftover_temp_files_are_cleaned_and_resume_skips(capsys, media, done):
    stale = leftover_temp(done, "a.npy")
    before = (done / "a.npy").read_bytes()
    rc, stdout, err = run_cli(capsys, *args(media, media["whole"], out=done))
    assert rc == 0, err
    assert "already done 1" in stdout and not stale.exists()
    assert (done / "a.npy").read_bytes() == before


def test_a_second_extract_into_one_folder_is_refused(media, tmp_path, capsys):
    """Two processes writing one index would lose a video: the second is refused at once (the
    lock is held here, as a running `stale extract` holds it)."""
    import os

    from stale.core.locks import LOCK_NAME, folder_lock

    out = tmp_path / "feats"
    out.mkdir()
    with folder_lock(out, "stale extract"):
        refused(capsys, args(media, media["whole"], out=out), str(out), f"another stale extract (process {os.getpid()})", roots=[tmp_path])
    rc, _, err = run_cli(capsys, *args(media, media["whole"], out=out))
    assert rc == 0, err
    assert json.loads((out / "extract_meta.json").read_text())["videos"].keys() == {"a"}
    assert not (out / LOCK_NAME).exists()   # removed by its holder
    # a lock file a killed process left behind is not a foreign file (nor in a folder holding only it)
    (out / LOCK_NAME).write_text("99999999")
    rc, _, err = run_cli(capsys, *args(media, media["whole"], out=out))
    assert rc == 0, err
    (tmp_path / "only_lock").mkdir()
    (tmp_path / "only_lock" / LOCK_NAME).write_text("99999999")
    rc, _, err = run_cli(capsys, *args(media, media["whole"], out=tmp_path / "only_lock"))
    assert rc == 0, err


def test_broken_links_in_a_video_folder_are_named_and_counted(media, tmp_path, capsys):
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(media["whole"], vids / "a.mkv")
    (vids / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (vids / "loop.mp4").symlink_to(vids / "loop.mp4")
    rc, out, err = run_cli(capsys, *args(media, vids, out=tmp_path / "o"))
    assert rc == 0, err
    assert err.count("skipped 2 broken link(s) among the videos") == 1
    assert f"{vids / 'gone.mp4'} (dangling link -> {tmp_path / 'nowhere.mp4'})" in err
    assert f"{vids / 'loop.mp4'} (symlink loop)" in err
    # a folder of broken links only, and a broken link given by name: errors naming them
    (vids / "a.mkv").unlink()
    refused(capsys, args(media, vids, out=tmp_path / "o2"), "no video files", "2 broken link(s)", "symlink loop",
            roots=[tmp_path])
    refused(capsys, args(media, vids / "loop.mp4", out=tmp_path / "o2"), "loop.mp4: symlink loop",
            roots=[tmp_path])


def test_one_file_given_relatively_and_absolutely_is_one_video(media, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(media["videos"])
    rc, out, err = run_cli(capsys, *args(media, "a.mkv", media["whole"], media["videos"], out=tmp_path / "o"))
    assert rc == 0, err
    assert list(json.loads((tmp_path / "o" / "extract_meta.json").read_text())["videos"]) == ["a"]
    # two different files of one id are still refused
    refused(capsys, args(media, media["whole"], media["other_a"], out=tmp_path / "o3"), "two videos with the same id",
            roots=[tmp_path])
