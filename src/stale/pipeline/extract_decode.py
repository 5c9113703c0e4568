"""The decoding half of ``stale extract``: one video -> the preprocessed frames its clips sample.

:func:`decoded_chunks` decodes a video in a streaming way (PyAV), places its frames on a
constant-rate grid (the video's own rate, or ``fps`` to resample it, as conventions such as
ActionFormer's 30 fps need), keeps only the frames the clips sample, applies CLIP's
preprocessing on the CPU, and yields them in chunks of at most ``batch_size`` frames, then one
:data:`END` item with the video's info -- or one :data:`ERROR` item naming the file when the
video is unreadable or truncated (the consumer applies the skip policy). The same generator runs
in this process (``--workers 0``) or in worker processes (:func:`video_loader`), so the chunks,
hence the tower's batches and the features, are the same bytes either way.

Items (tuples, so a DataLoader can pin them): ``(START, i, clips or None)``, ``(CHUNK, i,
frames (B, 3, S, S) float32, frame ids (B,) int64)``, ``(END, i, info)`` or ``(ERROR, i,
message)``; ``i`` is the video's position in the list.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from stale.core.errors import StaleError
from stale.core.lifetime import die_with_parent, end_without_teardown
from stale.data.timeline import NativeTimeline
from stale.pipeline.video_frames import (clip_frame_indices, clip_offsets, declared_frames, decoded_frames,
                                        frames_on_grid, missing_frames_tolerated, open_video)
from stale.text.image_tower import preprocess_frames

START, CHUNK, END, ERROR = "start", "chunk", "end", "error"


@dataclass(frozen=True)
class Sampling:
    """What the decoding side needs (picklable, for worker processes): the clip grid, the
    preprocessing of the image tower, and the truncation policy."""

    clip_frames: int
    stride: int
    frames_per_clip: int
    batch_size: int
    fps: float | None            # resample to this constant rate; None: the video's own
    allow_truncated: bool
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def decoded_chunks(index: int, path: str | os.PathLike, s: Sampling) -> Iterator[tuple]:
    """The items (module doc) of video ``path``, the ``index``-th of the list. Unreadable and
    truncated videos end with an ERROR item, never an exception."""
    path = Path(path)
    try:
        yield from _chunks(index, path, s)
    except StaleError as exc:
        yield ERROR, index, str(exc)


def _chunks(index: int, path: Path, s: Sampling) -> Iterator[tuple]:
    offsets = clip_offsets(s.clip_frames, s.frames_per_clip)
    busy = 0.0   # seconds spent here (decoding, sampling, preprocessing), not waiting on the consumer
    t0 = time.perf_counter()
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        native = _stream_fps(stream)
        if not native > 0:
            raise StaleError(f"{path}: video stream has no frame rate")
        fps = float(s.fps) if s.fps else native
        known = round(stream.frames * fps / native) if stream.frames else 0
        busy += time.perf_counter() - t0
        yield START, index, NativeTimeline(s.stride, s.clip_frames, 1.0).num_features(known) if known else None
        t0 = time.perf_counter()
        batch: list[torch.Tensor] = []
        ids: list[int] = []
        newest, last, n = -1, None, 0
        failure: list[str] = []

        def take(frame, k):
            img = torch.from_numpy(frame.to_ndarray(format="rgb24"))[None]
            batch.append(preprocess_frames(img, s.image_size, s.mean, s.std)[0])
            ids.append(k)

        # frames on the constant-rate grid of fps, placed by their timestamps (VFR videos)
        for n, frame in enumerate(frames_on_grid(decoded_frames(container, failure), fps, path), start=1):
            k = n - 1
            last = frame
            if not np.any((k >= offsets) & ((k - offsets) % s.stride == 0)):
                continue
            take(frame, k)
            newest = k
            if len(batch) >= s.batch_size:
                busy += time.perf_counter() - t0
                yield CHUNK, index, torch.stack(batch), np.asarray(ids, dtype=np.int64)
                t0 = time.perf_counter()
                batch.clear()
                ids.clear()
        declared, source = declared_frames(container, stream, native)
        if declared is not None and fps != native:
            declared = int(round(declared * fps / native))
        said = f" of the {declared / fps:.2f} s it declares" if declared else ""
        if n == 0:
            raise StaleError(f"{path}: no decodable video frames{said}" + (f" ({failure[0]})" if failure else ""))
        short = declared is not None and declared - n > missing_frames_tolerated(declared, fps, source)
        truncated = None
        if failure or short:
            truncated = {"declared_duration": declared / fps if declared else None, "decoded_duration": n / fps,
                         "declared_from": source or None, "decode_error": failure[0] if failure else None}
            if not s.allow_truncated:
                raise StaleError(f"{path}: video is truncated or partly undecodable: decoded "
                                 f"{n / fps:.2f} s ({n} frames){said}" + (f" ({source})" if declared else "")
                                 + (f", decoding stopped with: {failure[0]}" if failure else "")
                                 + "; repair or re-download it, or pass --allow-truncated to keep the decoded part")
        clips = clip_frame_indices(n, s.clip_frames, s.stride, s.frames_per_clip)
        if int(clips.max()) == n - 1 and newest != n - 1:   # a clip longer than the video
            take(last, n - 1)
        if batch:
            busy += time.perf_counter() - t0
            yield CHUNK, index, torch.stack(batch), np.asarray(ids, dtype=np.int64)
            t0 = time.perf_counter()
        info = {"source": str(path), "size": path.stat().st_size, "fps": fps, "num_frames": n,
                "num_features": int(clips.shape[0]), "duration": n / fps, "width": int(last.width),
                "height": int(last.height), "declared_duration": declared / fps if declared else None,
                "features_per_second": fps / s.stride}
        if fps != native:
            info["native_fps"] = native
        if truncated is not None:
            info["truncated"] = truncated
    finally:
        container.close()
    busy += time.perf_counter() - t0
    info["decode_s"] = busy
    yield END, index, info


# ----------------------------------------------------------------------------- worker processes

class _Videos(torch.utils.data.IterableDataset):
    """The items of every video; worker ``w`` of ``N`` decodes videos ``w, w + N, ...`` (the
    DataLoader takes one item from each worker in turn, so the order is deterministic)."""

    def __init__(self, videos: list[Path], sampling: Sampling):
        self.videos, self.sampling = [str(v) for v in videos], sampling

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, n = (info.id, info.num_workers) if info is not None else (0, 1)
        for i in range(w, len(self.videos), n):
            yield from decoded_chunks(i, self.videos[i], self.sampling)


def _as_is(item):
    return item


def _start_worker(parent: int, worker_id: int) -> None:
    """A decoding worker: dies with the extracting process, ends without the interpreter's
    teardown (:func:`~stale.core.lifetime.end_without_teardown`: it aborted now and then); one
    thread (the workers are the parallelism, and N workers x all cores would oversubscribe the
    machine)."""
    die_with_parent(parent)
    end_without_teardown()
    torch.set_num_threads(1)


def video_items(videos: list[Path], sampling: Sampling, workers: int, pin_memory: bool) -> Iterator[tuple]:
    """The items of ``videos`` (module doc): decoded here (``workers`` 0) or by ``workers``
    processes that die with this one, their chunks pinned when ``pin_memory`` (CUDA)."""
    if workers <= 0:
        for i, v in enumerate(videos):
            yield from decoded_chunks(i, v, sampling)
        return
    loader = torch.utils.data.DataLoader(
        _Videos(videos, sampling), batch_size=None, num_workers=min(workers, max(1, len(videos))),
        collate_fn=_as_is, pin_memory=pin_memory, multiprocessing_context="spawn",
        worker_init_fn=functools.partial(_start_worker, os.getpid()))
    yield from loader
