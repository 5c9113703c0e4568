"""Variable-frame-rate videos (as phones record): frames are placed on the constant-rate grid
by their timestamps, so a frame shown at 1.0 s is at 1.0 s in the features and the duration is
the video's, and a complete VFR file is not mistaken for a truncated one."""

from __future__ import annotations

import fractions
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stale.pipeline.video_frames import frames_on_grid

av = pytest.importorskip("av")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: presentation times (s): 2 fps for the first second, then 30 fps for two seconds
TIMES = [0.0, 0.5, 1.0] + [1.0 + (i + 1) / 30 for i in range(60)]


@dataclass
class FakeFrame:
    pts: int | None
    duration: int | None
    name: str
    time_base: fractions.Fraction = fractions.Fraction(1, 1000)


def _fake(times_ms, last_ms=None):
    return [FakeFrame(t, last_ms if i == len(times_ms) - 1 else None, f"f{i}") for i, t in enumerate(times_ms)]


def test_constant_rate_frames_are_unchanged():
    frames = _fake([40 * i + 7 for i in range(10)], last_ms=40)   # 25 fps, starting at 7 ms
    assert [f.name for f in frames_on_grid(iter(frames), 25.0)] == [f"f{i}" for i in range(10)]


def test_frames_are_placed_by_their_timestamps():
    frames = _fake([0, 500, 1000, 1033, 1040, 1067], last_ms=33)
    got = [f.name for f in frames_on_grid(iter(frames), 30.0)]
    want = ["f0"] * 15 + ["f1"] * 15 + ["f2"] + ["f4"] + ["f5"]   # f3 and f4 share a grid step
    assert got == want
    # no timestamps at all: one frame each, in decoding order
    assert [f.name for f in frames_on_grid(iter(_fake([None] * 4)), 30.0)] == ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vfr") / "phone.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(TIMES):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_a_decoded_vfr_video_is_on_the_grid(vfr_video):
    from stale.pipeline.video_frames import decoded_frames, open_video

    container = open_video(vfr_video)
    try:
        grid = [int(np.median(f.to_ndarray(format="rgb24"))) for f in frames_on_grid(decoded_frames(container, []), 30.0)]
    finally:
        container.close()
    assert len(grid) == 91                                  # 3.0 s + the last frame's 1/30 s
    level = lambda i: 4 * i   # noqa: E731 - the grey level of source frame i
    assert abs(grid[0] - level(0)) <= 2 and abs(grid[14] - level(0)) <= 2     # 0 .. 0.47 s: frame 0
    assert abs(grid[15] - level(1)) <= 2 and abs(grid[29] - level(1)) <= 2    # 0.5 .. 0.97 s: frame 1
    assert abs(grid[30] - level(2)) <= 2                                      # 1.0 s: frame 2
    assert abs(grid[90] - level(62)) <= 2


def test_extract_keeps_the_time_and_does_not_call_it_truncated(vfr_video, tmp_path):
    from media_util import tiny_clip
    from stale.pipeline.extract import ExtractConfig, encode_video
    from stale.text.image_tower import load_image_encoder

    weights = tiny_clip(tmp_path / "w")
    encoder = load_image_encoder("ViT-B-16", str(weights), 0)
    feats, info = encode_video(vfr_video, encoder, ExtractConfig(weights=str(weights), clip_frames=3, stride=3,
                                                                 device="cpu", progress=False))
    assert "truncated" not in info and info["num_frames"] == 91
    assert info["duration"] == pytest.approx(91 / 30) and info["declared_duration"] == pytest.approx(3.033, abs=0.01)
    assert feats.shape[0] == (91 - 3) // 3 + 1
    # the clip of 0.0-0.1 s and the one of 0.3-0.4 s both show frame 0: identical features
    np.testing.assert_allclose(feats[0], feats[3], atol=1e-6)
    assert not np.allclose(feats[5], feats[10], atol=1e-6)   # frame 1 (0.5 s) vs frame 2 (1.0 s)


def test_a_timestamp_jump_is_an_error_not_an_endless_still():
    from stale.core.errors import StaleError

    frames = _fake([0, 40, 40 + 2 * 3600 * 1000])
    with pytest.raises(StaleError, match=r"clip.mp4: timestamps jump by 7200 s after 0.04 s"):
        list(frames_on_grid(iter(frames), 25.0, "clip.mp4"))
