"""Video files, frame by frame: finding them, opening and decoding them with PyAV (streaming),
what their container declares, and which frames each feature's clip samples (ActionFormer
convention, :class:`stale.data.timeline.NativeTimeline`)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from stale.core.errors import StaleError
from stale.core.logs import get_logger
from stale.data.timeline import NativeTimeline

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".3gp", ".ts", ".mts")


def clip_offsets(clip_frames: int, frames_per_clip: int) -> np.ndarray:
    """Frame offsets inside a clip of the ``frames_per_clip`` evenly spaced samples (1: the centre)."""
    return np.floor((np.arange(frames_per_clip) + 0.5) * clip_frames / frames_per_clip).astype(np.int64)


def clip_frame_indices(num_frames: int, clip_frames: int, stride: int, frames_per_clip: int) -> np.ndarray:
    """(T, frames_per_clip) frame indices sampled for each clip of a ``num_frames``-frame video.

    Clip ``i`` starts at frame ``i * stride``; indices past the end (videos shorter than one clip)
    are clipped to the last frame.
    """
    t = NativeTimeline(stride, clip_frames, 1.0).num_features(num_frames)
    idx = np.arange(t)[:, None] * stride + clip_offsets(clip_frames, frames_per_clip)[None, :]
    return np.minimum(idx, num_frames - 1)


def open_video(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        detail = " ".join(str(getattr(exc, "strerror", None) or exc).split())
        raise StaleError(f"{path}: cannot open video: not a video file, or damaged or truncated "
                         f"({detail})") from None
    if not container.streams.video:
        container.close()
        raise StaleError(f"{path}: no video stream")
    return container


def decoded_frames(container, failure: list) -> Iterator:
    """Decoded frames of the first video stream; a decoding error ends the iteration and is
    appended to ``failure`` (the caller decides: error, or keep the part decoded so far)."""
    import av

    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    try:
        yield from container.decode(stream)
    except (av.FFmpegError, OSError) as exc:
        failure.append(" ".join(str(exc).split()))


def _seconds(frame, attr: str) -> float | None:
    """``frame.pts`` / ``frame.duration`` in seconds (None when the stream gives none)."""
    value, base = getattr(frame, attr, None), getattr(frame, "time_base", None)
    if value is None or base is None:
        return None
    return float(value * base)


#: the longest a single frame may stay on screen (seconds); a longer gap is a broken timestamp
MAX_FRAME_GAP_S = 3600.0


def frames_on_grid(frames: Iterator, fps: float, source: str | os.PathLike = "video") -> Iterator:
    """The decoded frames as a constant-rate sequence at ``fps``, placed by their timestamps.

    Frame ``k`` of the result is the frame shown at ``k / fps`` seconds after the first frame:
    a variable-frame-rate video (as phones record) has frames repeated where its rate is below
    ``fps`` and dropped where it is above, so a frame shown at 1.0 s is frame ``round(fps)``,
    not its decoding index. A constant-rate video gives its frames unchanged, one each. Frames
    without a timestamp follow the previous one; the last frame lasts its own duration (one
    frame when the stream gives none). A frame shown for more than :data:`MAX_FRAME_GAP_S`
    (a timestamp jump) is an error naming ``source`` and the time.
    """
    prev, start, t0 = None, 0, None
    for frame in frames:
        t = _seconds(frame, "pts")
        if t is None or prev is None:
            slot = start + (prev is not None)
        else:
            slot = int(round((t - t0) * fps))
        if t0 is None and t is not None:
            t0 = t
        if prev is None:
            prev, start = frame, 0
            continue
        if slot <= start:   # two frames in one grid step: the later one is shown there
            prev = frame
            continue
        if slot - start > MAX_FRAME_GAP_S * fps:
            raise StaleError(f"{source}: timestamps jump by {(slot - start) / fps:.0f} s after "
                             f"{start / fps:.2f} s (one frame shown for over an hour); the file's "
                             f"timestamps are broken -- re-mux it (e.g. ffmpeg -i IN -c copy OUT)")
        for _ in range(slot - start):
            yield prev
        prev, start = frame, slot
    if prev is not None:
        length = _seconds(prev, "duration")
        for _ in range(max(1, int(round(length * fps))) if length else 1):
            yield prev


def declared_frames(container, stream, fps: float) -> tuple[int | None, str]:
    """Frames the file declares for its video stream, and where the number comes from: the
    stream's frame count, else its duration, else the container's duration (which may include
    a longer audio track); ``(None, "")`` when the file declares nothing."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames), "frame count"
    if stream.duration and stream.time_base:
        return int(round(float(stream.duration * stream.time_base) * fps)), "stream duration"
    if container.duration and container.duration > 0:
        import av

        return int(round(container.duration / av.time_base * fps)), "container duration"
    return None, ""


def missing_frames_tolerated(declared: int, fps: float, source: str) -> int:
    """Frames a complete video may lack against its declaration: 2 frames or 2 % (rounding,
    edit lists, a last partial GOP), plus 0.5 s when only the container's duration is known
    (an audio track may outlast the video)."""
    tol = max(2, int(0.02 * declared))
    if source == "container duration":
        tol += int(round(0.5 * fps))
    return tol


log = get_logger("extract")


def _broken_link(p: Path) -> str | None:
    """Why the symbolic link ``p`` names no file (``"dangling link -> target"``, ``"symlink
    loop"``), or None when ``p`` is not a broken link."""
    if not p.is_symlink():
        return None
    try:
        p.resolve(strict=True)
    except RuntimeError:   # Python < 3.13 reports a loop so
        return "symlink loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        return f"dangling link -> {os.readlink(p)}"
    return None


def find_videos(inputs) -> list[Path]:
    """Video files named by ``inputs`` (files, or folders whose video files are taken, sorted).

    A file named twice (e.g. relatively and absolutely) is taken once; two different files of
    one id are an error. Broken links among a folder's videos (dangling, or a loop) are named
    and counted in a warning, never skipped silently; one given by name is an error."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not list(inputs):
        raise StaleError("no videos given")
    out = []
    broken: list[str] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            entries = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXTENSIONS)
            found = [q for q in entries if q.is_file()]
            bad = [(q, _broken_link(q)) for q in entries if not q.is_file()]
            broken += [f"{q} ({why})" for q, why in bad if why]
            if not found:
                raise StaleError(f"{p}: no video files ({', '.join(VIDEO_EXTENSIONS)})"
                                 + (f"; {len(broken)} broken link(s): {', '.join(broken[:3])}" if broken else ""))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif _broken_link(p):
            raise StaleError(f"{p}: {_broken_link(p)}; not a video file")
        else:
            raise StaleError(f"video not found: {p}")
    if broken:
        log.warning("skipped %d broken link(s) among the videos: %s%s", len(broken), ", ".join(broken[:5]),
                    ", ..." if len(broken) > 5 else "")
    stems: dict[str, Path] = {}
    for p in out:
        if p.stem in stems and not _same_file(stems[p.stem], p):
            raise StaleError(f"two videos with the same id {p.stem!r}: {stems[p.stem]} and {p}; rename one")
        stems.setdefault(p.stem, p)
    return list(stems.values())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()
