"""The reader thread of ``stale stream`` with fake sources: clip sampling, backpressure (a slow
consumer makes the reader skip clips, counted, with the queue never above its bound), the
blocking policy (nothing lost), a source that stalls, and one that fails part-way."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from stale.core.errors import StaleError
from stale.pipeline.stream_source import SourceReader, Stalled


class FakeFrame:
    """A decoded frame as PyAV gives it: pixels of value ``k % 256`` and a timestamp."""

    def __init__(self, k: int, fps: float):
        self.k, self.pts, self.time_base, self.duration = k, k, 1 / fps, 1

    def to_ndarray(self, format: str):
        assert format == "rgb24"
        return np.full((4, 4, 3), self.k % 256, dtype=np.uint8)


def opener(n: int, fps: float = 100.0, block_after: int | None = None, fail_after: int | None = None,
           release: threading.Event | None = None):
    def frames():
        for k in range(n):
            if block_after is not None and k == block_after:
                release.wait()   # a source that stops sending (a stalled network, a paused camera)
            if fail_after is not None and k == fail_after:
                raise StaleError("fake: broken packet")
            yield FakeFrame(k, fps)
    return lambda: (frames(), fps, lambda: None)


def drain(reader: SourceReader, per_clip_s: float = 0.0, qsizes: list | None = None) -> list:
    clips = []
    while True:
        if qsizes is not None:
            qsizes.append(reader.queue.qsize())
        clip = reader.get()
        if clip is None:
            return clips
        clips.append(clip)
        time.sleep(per_clip_s)   # a slow image tower


def test_clips_sample_their_frames_in_order_with_the_block_policy():
    reader = SourceReader(opener(100), clip_frames=8, stride=4, frames_per_clip=2, queue_size=2,
                          policy="block", realtime=False, stall_timeout=5).start()
    clips = drain(reader, per_clip_s=0.002)
    # clip i starts at frame 4 i and samples frames 4 i + 2 and 4 i + 6 (clip_offsets)
    assert [c.index for c in clips] == list(range(24))
    for c in clips:
        assert [int(f[0, 0, 0]) for f in c.frames] == [4 * c.index + 2, 4 * c.index + 6]
        assert c.time == pytest.approx((4 * c.index + 7) / 100)
    assert reader.clips_skipped == reader.frames_skipped == 0
    assert reader.frames_read == 100 and reader.ended == "end of stream"
    assert reader.max_queued <= 2


def test_a_slow_encoder_makes_a_live_source_skip_counted_clips_and_the_queue_stays_bounded():
    # 200 fps paced: a clip every 4 frames = every 20 ms; the consumer needs 60 ms per clip
    reader = SourceReader(opener(400, fps=200.0), clip_frames=4, stride=4, frames_per_clip=1, queue_size=3,
                          policy="skip", realtime=True, stall_timeout=5).start()
    qsizes: list[int] = []
    t0 = time.monotonic()
    clips = drain(reader, per_clip_s=0.06, qsizes=qsizes)
    elapsed = time.monotonic() - t0
    assert elapsed == pytest.approx(2.0, abs=0.8)   # paced at the frame rate, not held up by the consumer
    assert reader.clips_skipped > 40               # ~2/3 of 100 clips cannot be encoded in time
    assert reader.clips_queued + reader.clips_skipped == 100
    assert len(clips) == reader.clips_queued and reader.frames_skipped == reader.clips_skipped
    assert max(qsizes) <= 3 and reader.max_queued <= 3
    idx = [c.index for c in clips]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)   # dropped clips leave gaps, never reorder


def test_a_stalling_source_ends_by_the_timeout_with_the_clips_before_it():
    release = threading.Event()
    try:
        reader = SourceReader(opener(100, block_after=40, release=release), clip_frames=4, stride=4,
                              frames_per_clip=1, queue_size=50, policy="skip", realtime=False,
                              stall_timeout=0.4).start()
        clips = []
        t0 = time.monotonic()
        with pytest.raises(Stalled, match="no frame from the source for 0.4 s"):
            while True:
                clip = reader.get()
                assert clip is not None
                clips.append(clip)
        assert 0.35 < time.monotonic() - t0 < 3.0
        assert [c.index for c in clips] == list(range(10))   # frames 0..39: clips 0..9
        reader.stop()   # the thread is blocked in the source: stop returns anyway
    finally:
        release.set()


def test_a_source_failing_part_way_ends_the_stream_with_the_reason():
    reader = SourceReader(opener(100, fail_after=50), clip_frames=4, stride=4, frames_per_clip=1,
                          queue_size=50, policy="block", realtime=False, stall_timeout=5).start()
    clips = drain(reader)
    assert [c.index for c in clips] == list(range(12))   # frames 0..49: clip 12 would need frame 50
    assert reader.ended == "source error: fake: broken packet"


def test_a_source_shorter_than_one_clip_gives_one_clip():
    reader = SourceReader(opener(3), clip_frames=16, stride=16, frames_per_clip=1, queue_size=2,
                          policy="block", realtime=False, stall_timeout=5).start()
    clips = drain(reader)
    assert len(clips) == 1 and int(clips[0].frames[0][0, 0, 0]) == 2


def test_a_source_that_cannot_be_opened_is_an_error_at_start():
    def bad():
        raise StaleError("rtsp://x: cannot open the stream (Connection refused)")
    reader = SourceReader(bad, clip_frames=4, stride=4, frames_per_clip=1, queue_size=2, policy="skip",
                          realtime=False, stall_timeout=5)
    with pytest.raises(StaleError, match="Connection refused"):
        reader.start()
