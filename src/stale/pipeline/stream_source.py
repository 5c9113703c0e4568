"""The live side of ``stale stream``: a source read in its own thread, its frames sampled into
clips, and a bounded queue between the source and the image tower (backpressure).

The reader thread opens the source (a file, a URL or a device PyAV opens: opening a live source
may itself block, so it happens in the thread too), places the decoded frames on the constant
``fps`` grid by their timestamps (:func:`stale.pipeline.video_frames.frames_on_grid`, as offline
extraction does), optionally paces them at ``fps`` (``realtime``: a file played as if live), and
collects the frames each clip samples (clip ``i`` starts at frame ``i * stride``; its
``frames_per_clip`` evenly spaced frames, :func:`~stale.pipeline.video_frames.clip_offsets`).
A clip whose sampled frames have all arrived goes into a queue of at most ``queue_size`` clips.

**Backpressure.** With policy ``skip`` (live sources and ``realtime``) a clip that finds the
queue full is dropped and counted (``clips_skipped``, ``frames_skipped``): the source is never
held up and memory stays bounded; the consumer fills a dropped clip's feature with the previous
one, so stream time stays exact. With policy ``block`` (a file read as fast as it decodes) the
reader waits for room instead: nothing is lost, and a file is read no faster than it is encoded.

**End.** The stream ends at the end of the source, at a decoding error (a file cut mid-way: the
clips before the cut are kept; ``ended`` names the error), when :meth:`stop` is called, or when
no frame arrives for ``stall_timeout`` seconds (:meth:`get` raises :class:`Stalled`; a reader
blocked inside the source cannot be interrupted, so it is left behind as a daemon thread, which
ends with the process).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator


from stale.core.errors import StaleError
from stale.pipeline.video_frames import clip_offsets, decoded_frames, frames_on_grid

#: ``opener() -> (frames, fps, close)``: the decoded frames (objects with ``to_ndarray(format=
#: "rgb24")``, ``pts``, ``time_base``), the frame rate and a function closing the source
Opener = Callable[[], tuple[Iterator, float, Callable[[], None]]]
_END = object()


class Stalled(Exception):
    """No frame arrived from the source for ``stall_timeout`` seconds."""


@dataclass
class Clip:
    """One clip's sampled frames: ``index`` (snippet number), ``frames`` (frames_per_clip RGB
    arrays (H, W, 3) uint8) and ``time`` (stream seconds at its last sampled frame)."""

    index: int
    frames: list
    time: float


def pyav_opener(source: str, stall_timeout: float, input_format: str | None = None) -> Opener:
    """The opener of a file, URL or device PyAV reads (``input_format``: e.g. ``v4l2`` for a
    Linux camera, ``mpegts`` for a pipe); network reads time out after ``stall_timeout``."""
    def open_source():
        import av

        try:
            container = av.open(str(source), format=input_format, timeout=(stall_timeout, stall_timeout))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            detail = " ".join(str(getattr(exc, "strerror", None) or exc).split())
            raise StaleError(f"{source}: cannot open the stream ({detail})") from None
        if not container.streams.video:
            container.close()
            raise StaleError(f"{source}: no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or not float(rate) > 0:
            container.close()
            raise StaleError(f"{source}: the video stream declares no frame rate")
        failure: list[str] = []
        frames = frames_on_grid(_failing(decoded_frames(container, failure), failure), float(rate), source)
        return frames, float(rate), container.close

    return open_source


def _failing(frames: Iterator, failure: list) -> Iterator:
    """``frames``, then an error if decoding stopped with one (the reader reports it)."""
    yield from frames
    if failure:
        raise _DecodeError(failure[0])


class _DecodeError(Exception):
    pass


class SourceReader:
    """The reader thread (module docstring). ``get(timeout)`` returns the next :class:`Clip`,
    or None at the end of the stream; counters and ``position`` (stream seconds read) are
    readable at any time."""

    def __init__(self, opener: Opener, clip_frames: int, stride: int, frames_per_clip: int,
                 queue_size: int, policy: str, realtime: bool, stall_timeout: float):
        if policy not in ("skip", "block"):
            raise StaleError(f"backpressure policy must be skip or block, got {policy!r}")
        if queue_size < 1:
            raise StaleError(f"--queue: must be >= 1 clip, got {queue_size}")
        if not stall_timeout > 0:
            raise StaleError(f"--stall-timeout: must be > 0 seconds, got {stall_timeout}")
        self.opener, self.stride, self.policy, self.realtime = opener, stride, policy, realtime
        self.offsets = clip_offsets(clip_frames, frames_per_clip)
        self.stall_timeout = float(stall_timeout)
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.fps = 0.0
        self.frames_read = 0
        self.clips_queued = 0
        self.clips_skipped = 0
        self.frames_skipped = 0
        self.max_queued = 0
        self.position = 0.0
        self.ended: str | None = None   # why the source ended ("end of stream", "decoding stopped: ...")
        self._error: BaseException | None = None
        self._opened = threading.Event()
        self._stop = threading.Event()
        self._last_frame = time.monotonic()
        self._thread = threading.Thread(target=self._read, name="stale-stream-reader", daemon=True)

    # ------------------------------------------------------------------------- consumer side

    def start(self, open_timeout: float | None = None) -> "SourceReader":
        """Start the thread and wait until the source is open (its errors are raised here)."""
        self._thread.start()
        if not self._opened.wait(self.stall_timeout if open_timeout is None else open_timeout):
            self._stop.set()
            raise Stalled(f"the source did not open within {self.stall_timeout:g} s")
        if self._error is not None:
            raise self._error
        self._last_frame = time.monotonic()
        return self

    def get(self) -> Clip | None:
        """The next clip (None: the stream has ended); raises :class:`Stalled` when no frame
        arrived for ``stall_timeout`` seconds while the queue was empty."""
        while True:
            try:
                item = self.queue.get(timeout=0.05)
            except queue.Empty:
                if time.monotonic() - self._last_frame > self.stall_timeout:
                    self._stop.set()
                    raise Stalled(f"no frame from the source for {self.stall_timeout:g} s") from None
                continue
            return None if item is _END else item

    def get_nowait(self) -> Clip | None | bool:
        """The next clip if one is waiting, None at the end, False when the queue is empty."""
        try:
            item = self.queue.get_nowait()
        except queue.Empty:
            return False
        return None if item is _END else item

    def stop(self) -> None:
        """Ask the thread to end (it stops at its next frame, or was already blocked in the
        source and is left behind) and wait briefly for it."""
        self._stop.set()
        self._thread.join(timeout=1.0)

    # ------------------------------------------------------------------------- the thread

    def _read(self) -> None:
        close = None
        try:
            try:
                frames, self.fps, close = self.opener()
            except BaseException as exc:   # noqa: BLE001 - handed to the consumer
                self._error = exc
                return
            finally:
                self._opened.set()
            self._sample(frames)
            self.ended = self.ended or "end of stream"
        except _DecodeError as exc:
            self.ended = f"decoding stopped: {exc}"
        except StaleError as exc:
            self.ended = f"source error: {exc}"
        except Exception as exc:  # noqa: BLE001 - a damaged stream ends it, named
            self.ended = f"source error: {type(exc).__name__}: {' '.join(str(exc).split())}"
        finally:
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing a broken source
                    pass
            if self._opened.is_set() and self._error is None:
                self._put(_END, force=True)

    def _sample(self, frames: Iterator) -> None:
        offsets, stride, last_j = self.offsets, self.stride, len(self.offsets) - 1
        pending: dict[int, list] = {}
        t0, last = None, None
        for k, frame in enumerate(frames):
            if self._stop.is_set():
                self.ended = "stopped"
                return
            now = time.monotonic()
            if self.realtime:
                t0 = now if t0 is None else t0
                wait = t0 + k / self.fps - now
                if wait > 0:
                    time.sleep(wait)
            self._last_frame = time.monotonic()
            self.frames_read = k + 1
            self.position = (k + 1) / self.fps
            last = frame
            hits = [(j, (k - int(off)) // stride) for j, off in enumerate(offsets)
                    if k >= off and (k - int(off)) % stride == 0]
            if not hits:
                continue
            img = frame.to_ndarray(format="rgb24")
            for j, i in hits:
                slots = pending.setdefault(i, [None] * len(offsets))
                slots[j] = img
                if j == last_j:
                    self._offer(Clip(i, pending.pop(i), self.position))
        if self.clips_queued + self.clips_skipped == 0 and last is not None:
            # a source shorter than one clip gives one clip of its last frame (as offline)
            self._offer(Clip(0, [last.to_ndarray(format="rgb24")] * len(offsets), self.position))

    def _offer(self, clip: Clip) -> None:
        if self.policy == "skip":
            try:
                self.queue.put_nowait(clip)
            except queue.Full:
                self.clips_skipped += 1
                self.frames_skipped += len(clip.frames)
                return
        else:
            self._put(clip)
        self.clips_queued += 1
        self.max_queued = max(self.max_queued, self.queue.qsize())

    def _put(self, item, force: bool = False) -> None:
        """Put blocking, but give up when asked to stop (``force``: the end marker, which makes
        room by dropping the oldest clip if the consumer is gone)."""
        while True:
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                if self._stop.is_set():
                    if not force:
                        return
                    try:
                        self.queue.get_nowait()
                    except queue.Empty:
                        pass
