"""CLIP image features from the user's own video files ("video in, segments out").

Each video is decoded in a streaming way with PyAV, here or in ``workers`` processes
(:mod:`stale.pipeline.extract_decode`), onto a constant-rate grid (its own rate, or ``fps``).
Feature ``i`` describes the clip of
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
writing its own index part (:mod:`stale.pipeline.extract_index`; :mod:`stale.pipeline.extract_launch`
submits them). A video's features do not depend on the other videos (the tower's batches never
mix two): N shards, or decode workers, write the very bytes one process writes.

Image-tower weights (``weights``): a local open_clip / OpenAI state dict (``.pt``, ``.bin``,
``.safetensors``; shape from a sidecar ``<stem>.json`` / ``open_clip_config.json`` with
``model_cfg.vision_cfg``, else from ``arch``), an OpenAI JIT archive, an open_clip pretrained tag
(default ``"openai"``; never downloaded when ``HF_HUB_OFFLINE``/``STALE_OFFLINE`` is set), or
``"random"``: ``arch``'s shape with seeded random weights, FOR TESTS AND BENCHMARKS ONLY.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from stale.core.errors import StaleError
from stale.core.precision import normalise_precision, resolve_precision
from stale.core.logs import progress_bar
from stale.core.io import atomic_save_npy, remove_stale_temp_files
from stale.core.locks import folder_lock, is_lock_file, lock_name
from stale.core.output_checks import Output, check_outputs, check_writable_target
from stale.pipeline.extract_decode import CHUNK, ERROR, START, Sampling, video_items
from stale.pipeline.extract_index import (INDEX_NAME, META_FORMAT, META_NAME, SETTING_KEYS, load_index, read_index,
                                         shard_of, write_index)
from stale.pipeline.video_frames import clip_frame_indices, clip_offsets, find_videos
from stale.text.image_tower import ImageEncoder, load_image_encoder

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
    workers:         processes decoding and preprocessing videos for the image tower (0: this one).
    fps:             resample every video to this constant frame rate before taking clips (None:
                     each video's own rate); conventions such as ActionFormer's use 30.
    convention:      the name of the preset (``stale.data.features.rate.EXTRACT_PRESETS``) that
                     set clip_frames / stride / fps, recorded in the index; None when set by hand.
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
    workers: int = 0
    fps: float | None = None
    convention: str | None = None
    precision: str = "auto"

    def validate(self) -> None:
        self.precision = normalise_precision(self.precision)
        for name in ("clip_frames", "stride", "frames_per_clip", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise StaleError(f"--{name.replace('_', '-')}: must be a positive integer, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, (int, np.integer)) or self.workers < 0:
            raise StaleError(f"--workers: must be a non-negative integer, got {self.workers!r}")
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and not isinstance(self.fps, bool)
                                         and 0 < self.fps < float("inf")):
            raise StaleError(f"--fps: must be a positive number, got {self.fps!r}")
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


# ----------------------------------------------------------------------------- encoding

def sampling_of(cfg: ExtractConfig, encoder: ImageEncoder) -> Sampling:
    """The decoding side's settings (:mod:`stale.pipeline.extract_decode`) for ``cfg``."""
    return Sampling(cfg.clip_frames, cfg.stride, cfg.frames_per_clip, cfg.batch_size, cfg.fps, cfg.allow_truncated,
                    tuple(encoder.image_size), tuple(encoder.mean), tuple(encoder.std))


class _Video:
    """A video being encoded: its frames' embeddings so far, and its progress bar (clips)."""

    def __init__(self, name: str, clips: int | None, enabled: bool):
        self.ids: list[np.ndarray] = []
        self.embs: list[torch.Tensor] = []
        self.encode_s = 0.0
        self.bar = progress_bar(desc=name, unit="clip", enabled=enabled)
        self.bar.total = clips

    def add(self, emb: torch.Tensor, ids: np.ndarray, seconds: float, cfg: ExtractConfig, last_offset: int) -> None:
        self.embs.append(emb)
        self.ids.append(ids)
        self.encode_s += seconds
        # clips whose last sampled frame is encoded; the final count is set at the end
        top = int(ids[-1])
        done = (top - last_offset) // cfg.stride + 1 if top >= last_offset else 0
        cap = self.bar.total - 1 if self.bar.total else done
        self.bar.n = max(self.bar.n, min(done, cap))
        self.bar.refresh()

    def features(self, path: str, info: dict, cfg: ExtractConfig) -> np.ndarray:
        """(T, C) float32: each clip's frame embeddings averaged and L2-normalised."""
        index = clip_frame_indices(info["num_frames"], cfg.clip_frames, cfg.stride, cfg.frames_per_clip)
        emb = torch.cat(self.embs)                                     # (M, C), rows sorted by frame
        ids = np.concatenate(self.ids)
        pos = np.minimum(np.searchsorted(ids, index), len(ids) - 1)    # (T, k) rows of emb
        if not np.array_equal(ids[pos], index):   # a sampling bug, never the user's input
            raise RuntimeError(f"{path}: frames {sorted(set(index.ravel()) - set(ids.tolist()))} were not encoded")
        self.bar.total = self.bar.n = int(index.shape[0])   # every clip encoded: now, and only now, 100%
        self.bar.refresh()
        return F.normalize(emb[torch.from_numpy(pos)].mean(dim=1), dim=-1).numpy().astype(np.float32)


def encoded_videos(videos: list[Path], encoder: ImageEncoder, cfg: ExtractConfig,
                   device: torch.device | None = None) -> Iterator[tuple[int, np.ndarray | None, dict | str]]:
    """``(i, features (T, C) float32, info)`` for each video as it completes, or ``(i, None,
    message)`` for an unreadable or truncated one (the caller applies the skip policy).

    Decoding runs here (``cfg.workers`` 0) or in ``cfg.workers`` processes
    (:func:`~stale.pipeline.extract_decode.video_items`), which feed the image tower chunks of at
    most ``cfg.batch_size`` frames of one video each: a video's batches are the same whatever the
    other videos, so workers and shards write the same bytes as one process. info: fps,
    num_frames, num_features, duration, width, height, features_per_second, ``timing_s``
    (``decode``: demuxing, decoding, colour conversion and preprocessing; ``encode``: the tower).
    """
    device = device or torch.device(cfg.device)
    last_offset = int(clip_offsets(cfg.clip_frames, cfg.frames_per_clip)[-1])
    pending: dict[int, _Video] = {}
    items = video_items(videos, sampling_of(cfg, encoder), cfg.workers, pin_memory=device.type == "cuda")
    try:
        for item in items:
            kind, i = item[0], item[1]
            if kind == START:
                pending[i] = _Video(Path(videos[i]).name, item[2], cfg.progress and cfg.workers == 0)
            elif kind == CHUNK:
                t0 = time.perf_counter()
                emb = encoder.embed(item[2].to(device, non_blocking=True)).cpu()
                pending[i].add(emb, item[3], time.perf_counter() - t0, cfg, last_offset)
            else:
                video = pending.pop(i, None)
                if kind == ERROR:
                    if video is not None:
                        video.bar.close()
                    yield i, None, item[2]
                    continue
                info = dict(item[2])
                try:
                    feats = video.features(info["source"], info, cfg)
                finally:
                    video.bar.close()
                info["timing_s"] = {"decode": round(info.pop("decode_s"), 4), "encode": round(video.encode_s, 4)}
                yield i, feats, info
    finally:
        for video in pending.values():
            video.bar.close()
        close = getattr(items, "close", None)
        if close is not None:
            close()   # ends the worker processes now, not when the generator is collected


def encode_video(path: str | os.PathLike, encoder: ImageEncoder, cfg: ExtractConfig,
                 device: torch.device | None = None) -> tuple[np.ndarray, dict]:
    """Features of one video: ``((T, C) float32 L2-normalised, info)`` (see :func:`encoded_videos`);
    an unreadable or truncated video raises :class:`StaleError` naming the file.

    The progress bar counts *encoded clips* (a clip is done when its last sampled frame went
    through the tower); it reaches 100% only after the last batch is encoded.
    """
    for _, feats, info in encoded_videos([Path(path)], encoder, replace(cfg, workers=0), device):
        if feats is None:
            raise StaleError(info)
        return feats, info
    raise RuntimeError(f"{path}: no result")   # encoded_videos yields once per video


# ----------------------------------------------------------------------------- many videos

def _settings(cfg: ExtractConfig, encoder: ImageEncoder) -> dict:
    return {"format": META_FORMAT, "arch": cfg.arch, "weights": encoder.description,
            "random_weights": encoder.random, "clip_frames": cfg.clip_frames, "stride": cfg.stride,
            "frames_per_clip": cfg.frames_per_clip, "prefix": cfg.prefix,
            "image_size": list(encoder.image_size), "mean": list(encoder.mean), "std": list(encoder.std),
            "embed_dim": encoder.embed_dim, "fps": cfg.fps, "convention": cfg.convention,
            # feature i is centred at (i * stride + clip_frames / 2) / fps seconds
            "features_per_second": cfg.fps / cfg.stride if cfg.fps else None}


def setting_conflicts(out_dir: str | os.PathLike, cfg: ExtractConfig, encoder: ImageEncoder) -> list[str]:
    """Settings on which the features already in ``out_dir`` disagree with ``cfg`` / ``encoder``
    (empty when there are none yet, or they agree); lets a caller such as ``stale detect``
    decide before extracting. A damaged index is an error."""
    meta = read_index(Path(out_dir))
    if meta is None:
        return []
    settings = _settings(cfg, encoder)
    return [k for k in SETTING_KEYS if meta.get(k) != settings[k]]


#: submitit's logs of ``--shards N --launcher slurm|submitit-local`` (stale.pipeline.extract_launch)
SUBMITIT_DIR = ".submitit"


def _is_temp(name: str) -> bool:
    """A temporary file of an atomic write, the folder's lock, or the shard jobs' logs: not foreign files."""
    return (name.startswith(".") and name.endswith(".tmp")) or is_lock_file(name) or name == SUBMITIT_DIR


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
    mine = videos
    if cfg.shard is not None and cfg.shard[1] > 1:
        # the other shards' files are theirs: a fellow job may be writing one right now (its
        # .npy lands just before its index entry)
        mine = [v for v in videos if shard_of(v.stem, cfg.shard[1]) == cfg.shard[0]]
    for video in mine:
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
        # the part goes down before the first feature file: a fellow shard checking the folder
        # in between would otherwise find a .npy and no index, and refuse it as foreign
        write_index(out, meta, shard)
    todo = []
    for video in videos:
        if not cfg.overwrite and (out / f"{cfg.prefix}{video.stem}.npy").is_file() and video.stem in meta["videos"]:
            summary.resumed.append(video.stem)
        else:
            todo.append(video)
    bar = progress_bar(total=len(todo), desc="videos", unit="video", enabled=cfg.progress and cfg.workers > 0)
    try:
        for i, feats, info in encoded_videos(todo, encoder, cfg, device):
            bar.update(1)
            video = todo[i]
            vid = video.stem
            if feats is None:   # unreadable or truncated: info is the one-line reason
                if not cfg.skip_bad:
                    raise StaleError(info)
                log.warning("skipping %s", info)
                summary.bad[str(video)] = info
                meta["skipped"][str(video)] = info
                meta["videos"].pop(vid, None)
                write_index(out, meta, shard)
                continue
            atomic_save_npy(out / f"{cfg.prefix}{vid}.npy", feats)
            if "truncated" in info:
                summary.truncated.append(vid)
                log.warning("%s: truncated; kept the decoded %.2f s of %s s", video,
                            info["truncated"]["decoded_duration"], info["truncated"]["declared_duration"])
            meta["videos"][vid] = info | {"precision": precision["precision"]}
            meta["skipped"].pop(str(video), None)
            write_index(out, meta, shard)
            summary.extracted.append(vid)
    finally:
        bar.close()
    meta["summary"] = asdict(summary) | {"line": summary.line()}
    write_index(out, meta, shard, settle=True)
    return summary
