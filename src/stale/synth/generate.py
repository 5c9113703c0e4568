"""Build a semi-synthetic zero-shot TAD dataset and write it in the real on-disk formats.

Output folder::

    DIR/annotations.json       official layout of the source dataset (real ids/segments/labels)
    DIR/features/<file>.npy    float32 (T, D) per video (THUMOS14 ``<id>.npy``, ActivityNet ``v_<id>.npy``)
    DIR/synth_meta.json        dim, sampling, seed, knobs, version, class list, per-video facts

Randomness: the dataset-wide parts (visual encoder, pseudo-classes, background, drift basis) come
from ``SeedSequence([seed, 1|2])``; each video from ``SeedSequence([seed, crc32(id)])``, so a
video's features do not depend on which other videos were selected.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from stale.core.config import to_dict
from stale.core.errors import StaleError
from stale.core.io import atomic_save, atomic_write_json
from stale.synth.codes import ClassCodeConfig, class_codes
from stale.synth.encoder import RandomVisualEncoder, VisualEncoderConfig
from stale.synth.layouts import (LayoutSpec, SourceVideo, annotation_json, get_layout, load_source, repeat_video,
                                 select_videos)
from stale.synth.render import Rendered, RenderConfig, SharedParts, render_video

GENERATOR_VERSION = "2"  # 2: class codes, scenes, per-video nuisance (legacy settings keep their bytes)
EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass
class SynthConfig:
    """What to generate. ``dim`` 256 keeps a full THUMOS14-layout dataset at ~0.67 GB."""

    layout: str = "thumos14"
    dim: int = 256
    seed: int = 0
    max_videos_per_subset: int | None = None
    subsets: list[str] | None = None  # None: the layout's annotated subsets
    encoder: VisualEncoderConfig = field(default_factory=VisualEncoderConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    codes: ClassCodeConfig = field(default_factory=ClassCodeConfig)
    #: every video's skeleton repeated this many times back to back (``layouts.repeat_video``):
    #: videos this many times longer with actions of the same lengths (windowed-sampling studies)
    length_factor: int = 1

    def validate(self) -> None:
        if not 1 <= self.length_factor <= 20:
            raise StaleError(f"synth length_factor must be in 1..20, got {self.length_factor}")
        get_layout(self.layout)
        if self.dim < 2:
            raise StaleError(f"synth dim must be >= 2, got {self.dim}")
        if self.max_videos_per_subset is not None and self.max_videos_per_subset < 1:
            raise StaleError(f"max_videos_per_subset must be >= 1, got {self.max_videos_per_subset}")
        self.render.validate()
        self.codes.validate()


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def video_rng(seed: int, video_id: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(video_id.encode("utf-8"))]))


class SynthDataset:
    """The generator: real temporal skeleton + text-derived class semantics -> features.

    ``embed`` is either a function ``embed(names) -> (K, E)`` (the text encoder the detector will
    use; with ``codes.templates`` it is called as ``embed(names, template)``) or the (K, E) class
    code matrix of ``self.classes`` (the layout's whole class list, in order; legacy codes only).
    ``source`` overrides the packaged annotation file.
    """

    def __init__(self, cfg: SynthConfig, embed: np.ndarray | EmbedFn, source: str | Path | None = None):
        cfg.validate()
        self.cfg = cfg
        self.layout: LayoutSpec = get_layout(cfg.layout)
        all_videos, self.classes, self._extra = load_source(self.layout, source)
        reference = None
        if not cfg.codes.legacy:
            if not callable(embed):
                raise StaleError("synth codes.templates need a text-embedding function, not a fixed matrix")
            emb, reference = class_codes(list(self.classes), cfg.codes,
                                         lambda names, t: embed(list(names), template=t),
                                         np.random.default_rng(np.random.SeedSequence([cfg.seed, 4])))
        else:
            emb = np.asarray(embed(list(self.classes)) if callable(embed) else embed, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != len(self.classes):
            raise StaleError(f"expected ({len(self.classes)}, E) class embeddings for the "
                             f"{cfg.layout} classes, got shape {emb.shape}")
        subsets = tuple(cfg.subsets) if cfg.subsets else self.layout.default_subsets
        self.videos: list[SourceVideo] = [repeat_video(v, cfg.length_factor) for v in
                                          select_videos(all_videos, subsets, cfg.max_videos_per_subset, cfg.seed)]
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self.encoder = RandomVisualEncoder(emb, cfg.dim, np.random.default_rng(np.random.SeedSequence([cfg.seed, 1])),
                                           cfg.encoder, reference)
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2]))
        n_pseudo = max(1, int(round(cfg.render.pseudo_class_ratio * len(self.classes))))
        basis, _ = np.linalg.qr(rng.standard_normal((cfg.dim, cfg.render.bg_drift_rank)))
        self.parts = SharedParts(
            prototypes=self.encoder(emb),
            pseudo=self.encoder(self.encoder.random_text(n_pseudo, rng)),
            background=self.encoder(self.encoder.random_text(1, rng))[0],
            drift_basis=basis.T[: cfg.render.bg_drift_rank],
            action_dir=_unit(np.random.default_rng(np.random.SeedSequence([cfg.seed, 3])).standard_normal(cfg.dim)),
            scenes=(self.encoder(self.encoder.random_text(cfg.render.bg_scenes, np.random.default_rng(
                np.random.SeedSequence([cfg.seed, 5])), cfg.render.scene_spread)) if cfg.render.bg_scenes > 0 else None),
        )

    def render(self, video: SourceVideo) -> Rendered:
        """Features of one selected (or any source) video; deterministic for (seed, video id)."""
        segs = video.segments
        try:
            cls = np.array([self.class_index[s.label] for s in segs], dtype=np.int64)
        except KeyError as exc:
            raise StaleError(f"video {video.id}: label {exc.args[0]!r} is not a known class") from None
        return render_video(
            self.layout.feature_centres(video), video.duration,
            np.array([s.start for s in segs], dtype=np.float64), np.array([s.end for s in segs], dtype=np.float64),
            cls, self.layout.clip_frames, self.layout.stride, self.parts, self.cfg.render,
            video_rng(self.cfg.seed, video.id),
        )

    def iter_rendered(self) -> Iterator[tuple[SourceVideo, Rendered]]:
        for v in self.videos:
            yield v, self.render(v)

    def annotation(self) -> dict:
        return annotation_json(self.layout, self.videos, self.classes, self._extra)

    def write(self, out_dir: str | Path, text_info: dict | None = None, progress=None,
              overwrite: bool = False) -> dict:
        """Write annotations, features and metadata under ``out_dir``; returns the metadata.

        The folder must be new, empty, or one this generator wrote (``synth_meta.json`` is the
        marker; it is written first, with ``"complete": false``, so an interrupted write is
        recognised and finished by the next call). Anything else needs ``overwrite``.
        """
        out = Path(out_dir)
        check_synth_folder(out, overwrite, to_dict(self.cfg))
        feat_dir = out / "features"
        feat_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "synth_meta.json", {"generator": "stale.synth", "complete": False,
                                                    "seed": self.cfg.seed, "config": to_dict(self.cfg)})
        per_video, distractors = {}, {}
        unplaced = zero_len = 0
        for v, r in self.iter_rendered():
            def save(tmp, arr=r.features):
                with open(tmp, "wb") as fh:
                    np.save(fh, arr)
            atomic_save(feat_dir / self.layout.feature_file(v.id), save)
            per_video[v.id] = {"num_features": int(r.features.shape[0]), "fps": self.layout.video_fps(v)}
            distractors[v.id] = r.distractors
            unplaced += r.distractors_unplaced
            zero_len += r.zero_length
            if progress is not None:
                progress(v.id)
        atomic_write_json(out / "annotations.json", self.annotation())
        lay = self.layout
        meta = {
            "generator": "stale.synth", "generator_version": GENERATOR_VERSION, "complete": True,
            "layout": lay.name, "seed": self.cfg.seed, "feature_dim": self.cfg.dim,
            "clip_frames": lay.clip_frames, "stride": lay.stride,
            "fps": lay.feature_fps if lay.feature_fps is not None else "per video (annotation 'fps')",
            "annotation_file": "annotations.json", "feature_dir": "features",
            "feature_prefix": lay.feature_prefix, "feature_suffix": ".npy",
            "classes": list(self.classes), "config": to_dict(self.cfg), "text_encoder": text_info or {},
            "counts": {"videos": len(per_video), "distractors": sum(len(d) for d in distractors.values()),
                       "distractors_unplaced": unplaced, "zero_length_segments": zero_len},
            "videos": per_video, "distractors": distractors,
        }
        atomic_write_json(out / "synth_meta.json", meta)
        return meta


def check_synth_folder(out: Path, overwrite: bool = False, config: dict | None = None) -> None:
    """Refuse to write into a folder holding files the generator did not create, or a dataset
    made with another config (see ``write``)."""
    from stale.core.io import read_json
    from stale.core.output_checks import Output, check_outputs

    check_outputs([Output(out, "dir", "--out", exists_ok=True)])
    if overwrite or not out.is_dir() or not any(out.iterdir()):
        return
    meta = out / "synth_meta.json"
    if not meta.is_file() or read_json(meta).get("generator") != "stale.synth":
        raise StaleError(f"--out {out}: folder holds files stale synth did not write; choose an empty or "
                         f"new folder, or pass --overwrite")
    have = read_json(meta).get("config")
    if isinstance(have, dict):
        have = {"length_factor": 1, **have}   # written before the key existed: the default
    if config is not None and have != config:
        diff = sorted(k for k in set(have or {}) | set(config) if (have or {}).get(k) != config.get(k))
        raise StaleError(f"--out {out}: holds a synthetic dataset made with other settings ({', '.join(diff)}); "
                         f"choose another folder, or pass --overwrite")


def default_embed_fn(weights: str | None = None, template: str = "a video of {}.") -> EmbedFn:
    """Class-name embedding with the project's text encoder (``stale.text.embed_class_names``)."""
    try:
        from stale.text import embed_class_names
    except ImportError as exc:  # pragma: no cover - depends on the text package being installed
        raise StaleError(f"the text encoder (stale.text.embed_class_names) is not available: {exc}") from None
    default = template

    def embed(names: Sequence[str], template: str = default) -> np.ndarray:
        return np.asarray(embed_class_names(list(names), weights=weights, template=template))
    return embed

