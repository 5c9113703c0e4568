"""CLIP image features from the user's own video files ("video in, segments out").

Each video is decoded in a streaming way with PyAV. Feature ``i`` describes the clip of
``clip_frames`` consecutive frames starting at frame ``i * stride`` (ActionFormer convention, see
:class:`stale.data.timeline.NativeTimeline`); a video of ``N`` frames gives
``T = max(1, (N - clip_frames) // stride + 1)`` features (a video shorter than one clip gives one
feature from the frames it has). Of each clip, ``frames_per_clip`` evenly spaced frames (one: the
centre frame) go through CLIP's preprocessing (shorter side resized to the model's image size,
bicubic; centre crop; CLIP mean/std) and the image tower; their L2-normalised embeddings are
averaged and L2-normalised again. Output, in one folder:

* ``<prefix><video_id>.npy``: (T, C) float32, written atomically; ``video_id`` = file stem;
* ``extract_meta.json``: settings (arch, weights, clip_frames, stride, ...) and per video its
  fps, num_frames, num_features and duration (= num_frames / fps), plus skipped videos;
* ``videos.json``: an ActivityNet-layout annotation stub (subset ``testing``, durations, no
  annotations) for ``stale predict --annotations``.

Resume: a video whose ``.npy`` exists and is listed in ``extract_meta.json`` (same file size) is
skipped unless ``overwrite``. Unreadable videos raise :class:`StaleError` naming the file, or with
``skip_bad`` are skipped and counted (``ExtractSummary.bad``, meta ``"skipped"``).

Truncation: a video that decodes to fewer frames than its container declares (more than
:func:`~stale.pipeline.video_frames.missing_frames_tolerated` short), or whose decoding fails part-way, is an error naming the
file and the decoded vs. declared duration; with ``allow_truncated`` the decoded part is kept,
its ``duration`` is the decoded one, and it is counted (``ExtractSummary.truncated``, meta
``videos[id]["truncated"]``).

The output folder (:func:`check_extract_output`, before any work): it must be new, empty, or one
this command wrote (``extract_meta.json`` is the marker); a ``.npy`` to be written that exists
but is not in that index is never replaced without ``overwrite``; leftover temporary files of a
killed run are removed.

Shards (``shard=(I, N)``): N jobs fill one folder, each extracting the videos of its shard and
writing its own index part (:mod:`stale.pipeline.extract_index`). A video's features do not
depend on the other videos: N shards write the very bytes one process writes.

Image-tower weights (``weights``): a local open_clip / OpenAI state dict (``.pt``, ``.bin``,
``.safetensors``; shape from a sidecar ``<stem>.json`` / ``open_clip_config.json`` with
``model_cfg.vision_cfg``, else from ``arch``), an OpenAI JIT archive, an open_clip pretrained tag
(default ``"openai"``; never downloaded when ``HF_HUB_OFFLINE``/``STALE_OFFLINE`` is set), or
``"random"``: ``arch``'s shape with seeded random weights, FOR TESTS AND BENCHMARKS ONLY.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stale.data.timeline import NativeTimeline
from stale.core.errors import StaleError
from stale.core.precision import normalise_precision, resolve_precision
from stale.core.logs import progress_bar
from stale.core.io import atomic_save_npy, remove_stale_temp_files
from stale.core.locks import folder_lock, is_lock_file, lock_name
from stale.core.output_checks import Output, check_outputs, check_writable_target
from stale.pipeline.extract_index import (INDEX_NAME, META_FORMAT, META_NAME, SETTING_KEYS, load_index, read_index,
                                         shard_of, write_index)
from stale.pipeline.video_frames import (clip_frame_indices, clip_offsets, declared_frames, decoded_frames,
                                        find_videos, frames_on_grid, missing_frames_tolerated, open_video)
from stale.text.image_tower import ImageEncoder, load_image_encoder, preprocess_frames

log = logging.getLogger(__name__)


@dataclass
class ExtractConfig:
    """Feature extraction settings.

    arch:            open_clip architecture of the image tower (paper: CLIP ViT-B/16).
    weights:         checkpoint file, open_clip tag, or "random" (tests only); None = "openai".
    clip_frames:     frames per clip/snippet (paper: 16).
    stride:          frames between clip starts (16: non-overlapping snippets).
    frames_per_clip: evenly spaced frames encoded per clip and averaged (1 = centre frame).
    batch_size:      frames per image-tower forward pass.
    device:          torch device ("cpu", "cuda", ...).
    prefix:          file-name prefix of the .npy files (e.g. "v_" for ActivityNet-style stores).
    overwrite:       re-extract videos that already have features.
    skip_bad:        skip unreadable videos (counted) instead of failing.
    allow_truncated: keep the decodable part of a truncated video (counted) instead of failing.
    seed:            seed of the random weights (weights="random").
    progress:        show a progress bar per video (on a terminal).
    shard:           (I, N): extract only the videos of shard I of N (``extract_index.shard_of``), so
                     N jobs can fill one folder; each writes its own index part.
    precision:       the image tower's weights and inputs: ``auto`` (bf16 where the device has
                     native bf16 matrix units, else float32; :mod:`stale.core.precision`),
                     ``float32`` or ``bf16``. Recorded in ``extract_meta.json``.
    """

    arch: str = "ViT-B-16"
    weights: str | None = None
    clip_frames: int = 16
    stride: int = 16
    frames_per_clip: int = 1
    batch_size: int = 64
    device: str = "cpu"
    prefix: str = ""
    overwrite: bool = False
    skip_bad: bool = False
    allow_truncated: bool = False
    seed: int = 0
    progress: bool = True
    shard: tuple[int, int] | None = None
    precision: str = "auto"

    def validate(self) -> None:
        self.precision = normalise_precision(self.precision)
        for name in ("clip_frames", "stride", "frames_per_clip", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise StaleError(f"--{name.replace('_', '-')}: must be a positive integer, got {value!r}")
        if self.frames_per_clip > self.clip_frames:
            raise StaleError(f"frames_per_clip ({self.frames_per_clip}) cannot exceed clip_frames "
                             f"({self.clip_frames})")
        if os.sep in self.prefix or (os.altsep and os.altsep in self.prefix):
            raise StaleError(f"prefix: must not contain a path separator, got {self.prefix!r}")
        if self.shard is not None:
            i, n = self.shard
            if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 0 <= i < n):
                raise StaleError(f"--shard: must be I/N with 0 <= I < N, got {i}/{n}")


@dataclass
class ExtractSummary:
    """What :func:`extract_videos` did; ``bad`` maps an unreadable file to the reason."""

    extracted: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)   # kept with allow_truncated (also in extracted)

    def line(self) -> str:
        return (f"extracted {len(self.extracted)}, already done {len(self.resumed)}, "
                f"skipped unreadable {len(self.bad)}"
                + (f", truncated (decoded part kept) {len(self.truncated)}" if self.truncated else ""))


# ----------------------------------------------------------------------------- one video

def encode_video(path: str | os.PathLike, encoder: ImageEncoder, cfg: ExtractConfig,
                 device: torch.device | None = None) -> tuple[np.ndarray, dict]:
    """Features of one video: ``((T, C) float32 L2-normalised, info)``; info has fps, num_frames,
    num_features, duration, width, height and ``timing_s`` (``decode``: demuxing, decoding and
    colour conversion; ``encode``: preprocessing and the image tower). Frames are decoded one by
    one and only the sampled ones are kept, in batches of ``cfg.batch_size``.

    The progress bar counts *encoded clips* (a clip is done when its last sampled frame went
    through the tower); it reaches 100% only after the last batch is encoded.
    """
    import time

    path = Path(path)
    device = device or torch.device(cfg.device)
    offsets = clip_offsets(cfg.clip_frames, cfg.frames_per_clip)
    container = open_video(path)
    bar = progress_bar(desc=path.name, unit="clip", enabled=cfg.progress)
    t_start, t_encode = time.perf_counter(), 0.0
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not fps > 0:
            raise StaleError(f"{path}: video stream has no frame rate")
        timeline = NativeTimeline(cfg.stride, cfg.clip_frames, 1.0)
        bar.total = timeline.num_features(stream.frames) if stream.frames else None
        ids, embs, batch, batch_ids = [], [], [], []
        last = None   # the newest frame, in case a short video's clip needs it

        def flush():
            nonlocal t_encode
            if batch:
                t0 = time.perf_counter()
                x = preprocess_frames(torch.from_numpy(np.stack(batch)).to(device), encoder.image_size,
                                      encoder.mean, encoder.std)
                embs.append(encoder.embed(x).cpu())
                t_encode += time.perf_counter() - t0
                ids.extend(batch_ids)
                batch.clear()
                batch_ids.clear()
                # clips whose last sampled frame is encoded; the final count is set at the end
                done = (ids[-1] - int(offsets[-1])) // cfg.stride + 1 if ids[-1] >= offsets[-1] else 0
                cap = bar.total - 1 if bar.total else done
                bar.n = max(bar.n, min(done, cap))
                bar.refresh()

        n = 0
        failure: list[str] = []
        # frames on the constant-rate grid of fps, placed by their timestamps (VFR videos)
        for n, frame in enumerate(frames_on_grid(decoded_frames(container, failure), fps, path), start=1):
            k = n - 1
            last = frame
            if not np.any((k >= offsets) & ((k - offsets) % cfg.stride == 0)):
                continue
            img = frame.to_ndarray(format="rgb24")
            if batch and img.shape != batch[0].shape:   # resolution change mid-stream
                flush()
            batch.append(img)
            batch_ids.append(k)
            if len(batch) >= cfg.batch_size:
                flush()
        declared, source = declared_frames(container, stream, fps)
        said = f" of the {declared / fps:.2f} s it declares" if declared else ""
        if n == 0:
            raise StaleError(f"{path}: no decodable video frames{said}"
                             + (f" ({failure[0]})" if failure else ""))
        short = declared is not None and declared - n > missing_frames_tolerated(declared, fps, source)
        truncated = None
        if failure or short:
            truncated = {"declared_duration": declared / fps if declared else None,
                         "decoded_duration": n / fps, "declared_from": source or None,
                         "decode_error": failure[0] if failure else None}
            if not cfg.allow_truncated:
                raise StaleError(f"{path}: video is truncated or partly undecodable: decoded "
                                 f"{n / fps:.2f} s ({n} frames){said}"
                                 + (f" ({source})" if declared else "")
                                 + (f", decoding stopped with: {failure[0]}" if failure else "")
                                 + "; repair or re-download it, or pass --allow-truncated to keep "
                                   "the decoded part")
        width, height = last.width, last.height
        index = clip_frame_indices(n, cfg.clip_frames, cfg.stride, cfg.frames_per_clip)
        newest = batch_ids[-1] if batch_ids else (ids[-1] if ids else -1)
        if int(index.max()) == n - 1 and newest != n - 1:   # a clip longer than the video
            batch.append(last.to_ndarray(format="rgb24"))
            batch_ids.append(n - 1)
        flush()
        bar.total = bar.n = int(index.shape[0])   # every clip encoded: now, and only now, 100%
        bar.refresh()
    finally:
        bar.close()
        container.close()
    t_total = time.perf_counter() - t_start
    emb = torch.cat(embs)                                         # (M, C), rows sorted by frame
    ids_arr = np.asarray(ids)
    pos = np.minimum(np.searchsorted(ids_arr, index), len(ids_arr) - 1)   # (T, k) rows of emb
    if not np.array_equal(ids_arr[pos], index):   # a sampling bug, never the user's input
        raise RuntimeError(f"{path}: frames {sorted(set(index.ravel()) - set(ids))} were not encoded")
    feats = F.normalize(emb[torch.from_numpy(pos)].mean(dim=1), dim=-1).numpy().astype(np.float32)
    info = {"source": str(path), "size": path.stat().st_size, "fps": fps, "num_frames": n,
            "num_features": int(feats.shape[0]), "duration": n / fps, "width": int(width),
            "height": int(height), "declared_duration": declared / fps if declared else None,
            "timing_s": {"decode": round(t_total - t_encode, 4), "encode": round(t_encode, 4)}}
    if truncated is not None:
        info["truncated"] = truncated
    return feats, info


# ----------------------------------------------------------------------------- many videos

def _settings(cfg: ExtractConfig, encoder: ImageEncoder) -> dict:
    return {"format": META_FORMAT, "arch": cfg.arch, "weights": encoder.description,
            "random_weights": encoder.random, "clip_frames": cfg.clip_frames, "stride": cfg.stride,
            "frames_per_clip": cfg.frames_per_clip, "prefix": cfg.prefix,
            "image_size": list(encoder.image_size), "mean": list(encoder.mean), "std": list(encoder.std),
            "embed_dim": encoder.embed_dim}


def setting_conflicts(out_dir: str | os.PathLike, cfg: ExtractConfig, encoder: ImageEncoder) -> list[str]:
    """Settings on which the features already in ``out_dir`` disagree with ``cfg`` / ``encoder``
    (empty when there are none yet, or they agree); lets a caller such as ``stale detect``
    decide before extracting. A damaged index is an error."""
    meta = read_index(Path(out_dir))
    if meta is None:
        return []
    settings = _settings(cfg, encoder)
    return [k for k in SETTING_KEYS if meta.get(k) != settings[k]]


def _is_temp(name: str) -> bool:
    """A temporary file of an atomic write, or the folder's lock: not foreign files."""
    return (name.startswith(".") and name.endswith(".tmp")) or is_lock_file(name)


def check_extract_output(inputs, out_dir: str | os.PathLike, cfg: ExtractConfig) -> list[Path]:
    """Check the output folder before any work (module docstring); returns the videos.

    Refused (one :class:`StaleError` line): ``--out`` equal to an input video or inside an input
    folder, under a regular file, not writable; a non-empty folder without an
    ``extract_meta.json`` of this command (unless ``overwrite``); a feature file to be written
    that exists but is not in that index, or is listed for another file of the same id (a
    different size), unless ``overwrite``; a feature file name the file system cannot hold.
    """
    cfg.validate()
    videos = find_videos(inputs)
    out = Path(out_dir)
    dirs = [Path(i).expanduser() for i in inputs if Path(i).expanduser().is_dir()]
    check_outputs([Output(out, "dir", "--out", exists_ok=True)], inputs=videos, input_dirs=dirs)
    for name in (META_NAME, INDEX_NAME):
        check_writable_target(Output(out / name, "file", "--out"))
    targets = {v.stem: out / f"{cfg.prefix}{v.stem}.npy" for v in videos}
    for target in targets.values():
        check_writable_target(Output(target, "file", "--out"))
    if not out.is_dir():
        return videos
    # a shard's fellow jobs may run on other machines, whose process ids this one cannot see:
    # their temporary files are left alone (an unsharded run in the folder removes leftovers)
    tidy = remove_stale_temp_files if cfg.shard is None or cfg.shard[1] == 1 else (lambda folder: 0)
    if cfg.overwrite:
        tidy(out)
        return videos
    meta = read_index(out)
    if meta is None:
        foreign = sorted(p.name for p in out.iterdir() if not _is_temp(p.name))
        if foreign:
            raise StaleError(f"--out {out}: folder holds files stale extract did not write ({foreign[0]}"
                             f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}; no "
                             f"{META_NAME}); choose an empty or new folder, or pass --overwrite")
    tidy(out)   # only in a folder that is ours (or empty)
    if meta is None:
        return videos
    listed = meta["videos"]
    for video in videos:
        vid, target = video.stem, targets[video.stem]
        if not target.exists():
            continue
        if vid not in listed:
            raise StaleError(f"--out {out}: {target.name} exists but is not in {META_NAME} (not made by "
                             f"stale extract); pass --overwrite to replace it, or choose another folder")
        old = listed[vid] if isinstance(listed[vid], dict) else {}
        size = video.stat().st_size
        if "size" in old and old["size"] != size:
            raise StaleError(f"--out {out}: {target.name} holds features of {old.get('source')} "
                             f"({old['size']} bytes), not of {video} ({size} bytes); pass --overwrite "
                             f"to re-extract, or choose another folder")
    return videos


def extract_videos(inputs, out_dir: str | os.PathLike, cfg: ExtractConfig,
                   encoder: ImageEncoder | None = None) -> ExtractSummary:
    """Extract features of every video in ``inputs`` into ``out_dir`` (see the module docstring)."""
    videos = check_extract_output(inputs, out_dir, cfg)
    device = torch.device(cfg.device)
    if encoder is None:
        encoder = load_image_encoder(cfg.arch, cfg.weights, cfg.seed)
    if encoder.random:
        warnings.warn(f"image encoder {encoder.description}: features are meaningless; "
                      f"for tests and benchmarks only", stacklevel=2)
    precision = resolve_precision(cfg.precision, device)
    encoder.cast(precision.dtype).tower.to(device)
    log.info("image tower in %s (%s)", precision.name, precision.reason)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # one writer of the index (of a shard: of its part) at a time; shards run side by side
    with folder_lock(out, "stale extract", lock_name(cfg.shard if cfg.shard and cfg.shard[1] > 1 else None)):
        # checked again under the lock: a process that held it may have written meanwhile
        # (the files found above: their folders were checked, and broken links reported, once)
        return _extract_locked(check_extract_output(videos, out_dir, cfg), out, cfg, encoder, device,
                               precision.record())


def _extract_locked(videos: list[Path], out: Path, cfg: ExtractConfig, encoder: ImageEncoder,
                    device: torch.device, precision: dict) -> ExtractSummary:
    meta = load_index(out, _settings(cfg, encoder), cfg.overwrite)
    meta["precision"] = precision   # of this run (features of either precision agree to cos >= 0.999)
    summary = ExtractSummary()
    shard = cfg.shard if cfg.shard is not None and cfg.shard[1] > 1 else None
    if shard is not None:
        videos = [v for v in videos if shard_of(v.stem, shard[1]) == shard[0]]
        log.info("shard %d/%d: %d videos", shard[0], shard[1], len(videos))
    for video in videos:
        vid = video.stem
        target = out / f"{cfg.prefix}{vid}.npy"
        if not cfg.overwrite and target.is_file() and vid in meta["videos"]:
            summary.resumed.append(vid)
            continue
        try:
            feats, info = encode_video(video, encoder, cfg, device)
        except StaleError as exc:
            if not cfg.skip_bad:
                raise
            log.warning("skipping %s", exc)
            summary.bad[str(video)] = str(exc)
            meta["skipped"][str(video)] = str(exc)
            meta["videos"].pop(vid, None)
            write_index(out, meta, shard)
            continue

        atomic_save_npy(target, feats)
        if "truncated" in info:
            summary.truncated.append(vid)
            log.warning("%s: truncated; kept the decoded %.2f s of %s s", video,
                        info["truncated"]["decoded_duration"], info["truncated"]["declared_duration"])
        meta["videos"][vid] = info | {"precision": precision["precision"]}
        meta["skipped"].pop(str(video), None)
        write_index(out, meta, shard)
        summary.extracted.append(vid)
    meta["summary"] = asdict(summary) | {"line": summary.line()}
    write_index(out, meta, shard, settle=True)
    return summary
