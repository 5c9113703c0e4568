"""``stale stream``: online detection on a live source (a camera, a URL, a file played as live).

Frames are decoded in a reader thread and sampled into clips (:mod:`stale.pipeline.stream_source`:
pacing, the bounded queue, the skip policy), each clip is encoded by the CLIP image tower as soon
as it is taken from the queue (several at once when the tower is behind), and the detector runs
on a causal sliding window of the newest snippets; each detection is emitted as soon as it is
final (:mod:`stale.pipeline.stream_window`: the finalisation rule and the latency it implies).

The detector is ``stale detect``'s (:func:`stale.pipeline.detect_videos.video_detector`): the
training-free CLIP detector without ``run``, the trained run's with it.

Outputs: :class:`DetectionStream` iterates over :class:`~stale.pipeline.stream_window.Emitted`
detections. With ``out`` each one is also appended to ``out`` as a JSON line and flushed at once
(a reader can follow the file; an interrupted stream leaves every line emitted so far); the
SubRip file ``srt`` (default: ``out`` with ``.srt``) is rewritten atomically after each emission,
so it always holds every detection so far. Both paths are checked before any work; existing
files are replaced only with ``overwrite``. :attr:`DetectionStream.summary` counts frames read,
encoded and skipped, detections and latencies, and says why the stream ended.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from stale.core.errors import StaleError
from stale.core.logs import get_logger
from stale.pipeline.stream_source import SourceReader, Stalled, pyav_opener
from stale.pipeline.stream_window import CausalWindow, Emitted, WindowConfig

log = get_logger("stream")


@dataclass
class StreamOptions:
    """Settings of :class:`DetectionStream` (the CLI options of ``stale stream``).

    classes / run / weights / arch / seed / overrides / device: as ``stale detect``
        (:class:`~stale.pipeline.detect_videos.DetectOptions`).
    clip_frames / stride / frames_per_clip: the snippets (docs/extract.md).
    batch_size: most clips per image-tower pass (the clips waiting in the queue are taken together).
    window / hop / margin: the causal window in seconds: the detector sees the newest ``window``
        seconds every ``hop`` seconds; a detection is final once ``margin`` seconds follow its end
        (docs/stream.md). repeat_iou: tIoU at which a detection repeats an emitted one.
    realtime: pace a file at its frame rate (tests, demos). input_format: PyAV/FFmpeg input
        format of a device or pipe (``v4l2``, ``mpegts``); None = guessed.
    queue: clips waiting for the image tower at most. backpressure: ``skip`` (drop clips that
        find the queue full, counted), ``block`` (the reader waits), ``auto`` (block for a file
        read as fast as it decodes, skip for everything live or paced).
    stall_timeout: seconds without a frame after which the stream is ended as at its end.
    out: JSON-lines file of the detections; srt: SubRip file (default: ``out`` with ``.srt``;
        none without ``out``); subtitle_min_score: lowest score written to the SRT.
    """

    classes: Sequence[str] | str
    run: str | os.PathLike | None = None
    weights: str | None = None
    arch: str = "ViT-B-16"
    seed: int = 0
    clip_frames: int = 16
    stride: int = 16
    frames_per_clip: int = 1
    batch_size: int = 8
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)
    window: float = 60.0
    hop: float = 2.0
    margin: float = 4.0
    repeat_iou: float = 0.5
    realtime: bool = False
    input_format: str | None = None
    queue: int = 16
    backpressure: str = "auto"
    stall_timeout: float = 30.0
    out: str | os.PathLike | None = None
    srt: str | os.PathLike | None = None
    subtitle_min_score: float = 0.0
    overwrite: bool = False
    precision: str = "auto"

    def validate(self) -> None:
        from stale.core.precision import normalise_precision
        from stale.pipeline.extract import ExtractConfig

        self.precision = normalise_precision(self.precision)

        ExtractConfig(clip_frames=self.clip_frames, stride=self.stride, frames_per_clip=self.frames_per_clip,
                      batch_size=self.batch_size).validate()
        for name in ("window", "hop", "stall_timeout"):
            if not float(getattr(self, name)) > 0:
                raise StaleError(f"--{name.replace('_', '-')}: must be > 0 seconds, got {getattr(self, name)}")
        if not 0 <= float(self.margin) < float(self.window):
            raise StaleError(f"--margin: must be in [0, --window = {self.window}) seconds, got {self.margin}")
        if isinstance(self.queue, bool) or not isinstance(self.queue, int) or self.queue < 1:
            raise StaleError(f"--queue: must be a whole number >= 1 (clips), got {self.queue!r}")
        if self.backpressure not in ("auto", "skip", "block"):
            raise StaleError(f"--backpressure: must be auto, skip or block, got {self.backpressure!r}")
        if not 0.0 <= float(self.subtitle_min_score) <= 1.0:
            raise StaleError(f"--subtitle-min-score: must be in [0, 1], got {self.subtitle_min_score}")

    def srt_path(self) -> Path | None:
        if self.srt is not None:
            return Path(self.srt)
        return Path(self.out).with_suffix(".srt") if self.out is not None else None


@dataclass
class StreamSummary:
    """What a stream did: frames ``read`` from the source, ``encoded`` by the image tower and
    ``skipped`` by backpressure; ``detections`` emitted and their latencies (seconds); stream
    seconds read, wall seconds, seconds in the tower and the detector; why it ``ended``."""

    frames_read: int = 0
    frames_encoded: int = 0
    frames_skipped: int = 0
    clips_skipped: int = 0
    detections: int = 0
    latencies: list = field(default_factory=list)
    stream_s: float = 0.0
    wall_s: float = 0.0
    encode_s: float = 0.0
    detect_s: float = 0.0
    ended: str = "not started"

    def latency(self, q: float) -> float | None:
        return float(np.quantile(self.latencies, q)) if self.latencies else None

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "latencies"}
        return {**d, "latency_median_s": self.latency(0.5), "latency_p95_s": self.latency(0.95),
                "rtf": self.wall_s / self.stream_s if self.stream_s else None,
                "compute_rtf": (self.encode_s + self.detect_s) / self.stream_s if self.stream_s else None}

    def line(self) -> str:
        d = self.to_dict()
        lat = (f"latency median {d['latency_median_s']:.2f} s, p95 {d['latency_p95_s']:.2f} s"
               if self.latencies else "latency -")
        rtf = f"real-time factor {d['rtf']:.2f} (compute {d['compute_rtf']:.2f})" if self.stream_s else ""
        return (f"frames read {self.frames_read}, encoded {self.frames_encoded}, skipped {self.frames_skipped}; "
                f"detections {self.detections}; {lat}; {self.stream_s:.1f} s of stream in {self.wall_s:.1f} s, "
                f"{rtf}; ended: {self.ended}")


def _check_outputs(source: str, opts: StreamOptions) -> None:
    from stale.core.output_checks import Output, check_outputs

    outs = [Output(Path(opts.out), "file", "--out")] if opts.out is not None else []
    srt = opts.srt_path()
    if srt is not None:
        outs.append(Output(srt, "file", "--srt"))
    weights = opts.weights if opts.weights and Path(opts.weights).expanduser().is_file() else None
    inputs = [source if Path(source).expanduser().exists() else None, weights]
    check_outputs(outs, inputs=inputs, overwrite=opts.overwrite)


def _image_encoder(opts: StreamOptions, device):
    """The CLIP image tower of the stream (the one place it is built), in ``opts.precision``
    resolved for ``device`` (:mod:`stale.core.precision`: bf16 weights and inputs where native)."""
    from stale.core.precision import resolve_precision
    from stale.text.image_tower import load_image_encoder

    encoder = load_image_encoder(opts.arch, opts.weights, opts.seed)
    precision = resolve_precision(opts.precision, device)
    encoder.cast(precision.dtype).tower.to(device)
    log.debug("image tower in %s (%s)", precision.name, precision.reason)   # stderr stays for the summary
    if encoder.random:
        log.warning("WARNING: image encoder %s: the detections carry no meaning (tests and "
                    "benchmarks only)", encoder.description)
    return encoder


def _embed(encoder, clips: list, device) -> np.ndarray:
    """(N, C) L2-normalised features of N clips: each clip's frames through CLIP's preprocessing
    and the tower, their embeddings averaged and normalised again (as ``stale extract``)."""
    import torch
    import torch.nn.functional as F

    from stale.text.image_tower import preprocess_frames

    frames = [f for c in clips for f in c.frames]
    out = []
    start = 0
    while start < len(frames):   # runs of one resolution (a live source may change it)
        stop = start + 1
        while stop < len(frames) and frames[stop].shape == frames[start].shape:
            stop += 1
        x = preprocess_frames(torch.from_numpy(np.stack(frames[start:stop])).to(device), encoder.image_size,
                              encoder.mean, encoder.std)
        out.append(encoder.embed(x).cpu())
        start = stop
    emb = torch.cat(out).view(len(clips), len(clips[0].frames), -1).mean(dim=1)
    return F.normalize(emb, dim=-1).numpy().astype(np.float32)


class DetectionStream:
    """Iterate over the final detections of ``source`` (module docstring); a context manager
    (leaving it stops the reader and writes the outputs). Raises :class:`StaleError` before any
    work for bad options, outputs, classes or models; a source that cannot be opened is an
    error when iteration starts."""

    def __init__(self, source: str | os.PathLike, opts: StreamOptions):
        from stale.core.hub import preflight_weights
        from stale.pipeline.detect_videos import DetectOptions, video_detector
        from stale.pipeline.predict import read_class_names
        from stale.training.runtime import resolve_device

        opts.validate()
        self.source, self.opts = str(source), opts
        if "://" not in self.source and opts.input_format is None and not Path(self.source).expanduser().exists():
            raise StaleError(f"{self.source}: no such file (a URL needs its scheme, e.g. rtsp://; a device "
                             f"its --input-format, e.g. v4l2)")
        self.classes = read_class_names(opts.classes)
        _check_outputs(self.source, opts)
        preflight_weights(opts.arch, opts.weights, "CLIP weights")
        self.device = resolve_device(opts.device) if isinstance(opts.device, str) else opts.device
        self.encoder = _image_encoder(opts, self.device)
        dopts = DetectOptions(classes=self.classes, run=opts.run, weights=opts.weights, arch=opts.arch,
                              seed=opts.seed, overrides=list(opts.overrides), precision=opts.precision)
        self.detect, self.description = video_detector(dopts, self.encoder, self.classes, self.device)
        self.summary = StreamSummary()
        self.emitted: list[Emitted] = []
        self._gen: Iterator[Emitted] | None = None

    def __iter__(self) -> Iterator[Emitted]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    def __next__(self) -> Emitted:
        return next(iter(self))

    def __enter__(self) -> "DetectionStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop: the reader ends, the outputs hold everything emitted so far."""
        if self._gen is not None:
            self._gen.close()

    # ------------------------------------------------------------------------- the loop

    def _live(self) -> bool:
        """A source that does not wait for us: a URL, a device, a pipe, or a paced file."""
        return self.opts.realtime or not Path(self.source).expanduser().is_file()

    def _reader(self) -> SourceReader:
        o = self.opts
        policy = o.backpressure if o.backpressure != "auto" else ("skip" if self._live() else "block")
        opener = pyav_opener(self.source, o.stall_timeout, o.input_format)
        return SourceReader(opener, o.clip_frames, o.stride, o.frames_per_clip, o.queue, policy,
                            o.realtime, o.stall_timeout)

    def _run(self) -> Iterator[Emitted]:
        o, s = self.opts, self.summary
        t0 = time.perf_counter()
        reader = self._reader()
        # the clock latencies are measured against (docs/stream.md): a live or paced source's
        # position (wall time since its first frame); for a file read as fast as it decodes, the
        # newest encoded clip's time (the reader runs ahead only as far as the queue lets it)
        live = self._live()
        jsonl, window = None, None
        try:
            try:
                reader.start()
            except Stalled as exc:
                raise StaleError(f"{self.source}: {exc}; is it live? (raise --stall-timeout for a slow start)") from None
            sps = o.stride / reader.fps
            cfg = WindowConfig(window=max(2, int(round(o.window / sps))), hop=max(1, int(round(o.hop / sps))),
                               margin=int(round(o.margin / sps)), repeat_iou=o.repeat_iou)
            window = CausalWindow(cfg, self.detect, sps)
            if o.out is not None:
                Path(o.out).parent.mkdir(parents=True, exist_ok=True)
                jsonl = open(o.out, "w", encoding="utf-8")
            s.ended = "interrupted"
            last = None
            done = False
            while not done:
                try:
                    clip = reader.get()
                except Stalled as exc:
                    clip, s.ended = None, f"stalled ({exc})"
                batch = [] if clip is None else [clip]
                while batch and len(batch) < o.batch_size:   # whatever else is waiting: one pass
                    more = reader.get_nowait()
                    if more is False:
                        break
                    if more is None:
                        done = True
                        break
                    batch.append(more)
                if clip is None:
                    done = True
                if batch:
                    t1 = time.perf_counter()
                    feats = _embed(self.encoder, batch, self.device)
                    s.encode_s += time.perf_counter() - t1
                    s.frames_encoded += sum(len(c.frames) for c in batch)
                for c, f in zip(batch, feats if batch else []):
                    clock = reader.position if live else c.time
                    while window.count < c.index:   # clips dropped by backpressure: hold the last feature
                        yield from self._emit(window.push(last if last is not None else f, clock), jsonl)
                    last = f
                    yield from self._emit(window.push(f, clock), jsonl)
            if not s.ended.startswith("stalled"):
                s.ended = reader.ended or "end of stream"
            yield from self._emit(window.finish(reader.position), jsonl)
        except GeneratorExit:   # the caller stopped iterating (close(), leaving a with block)
            s.ended = "stopped" if s.ended == "interrupted" else s.ended
            raise
        finally:
            reader.stop()
            if jsonl is not None:
                jsonl.close()
            s.frames_read, s.frames_skipped, s.clips_skipped = (reader.frames_read, reader.frames_skipped,
                                                                reader.clips_skipped)
            s.stream_s, s.wall_s = reader.position, time.perf_counter() - t0
            s.detect_s = window.detect_s if window is not None else 0.0
            self._write_srt()

    def _emit(self, items: list[Emitted], jsonl) -> Iterator[Emitted]:
        import json

        for d in items:
            self.emitted.append(d)
            self.summary.detections += 1
            self.summary.latencies.append(d.latency)
            if jsonl is not None:
                jsonl.write(json.dumps(d.to_dict()) + "\n")
                jsonl.flush()
        if items:
            self._write_srt()
        yield from items

    def _write_srt(self) -> None:
        path = self.opts.srt_path()
        if path is None:
            return
        from stale.core.io import atomic_write_text
        from stale.pipeline.detect_videos import to_srt

        items = [{"segment": [d.start, d.end], "label": d.label, "score": d.score} for d in self.emitted]
        atomic_write_text(path, to_srt(items, top=max(1, len(items)), min_score=self.opts.subtitle_min_score))
