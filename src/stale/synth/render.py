"""Render one video's (T, D) feature sequence from its segments (formulas in docs/synth.md).

    x(t) = (1 - a(t)) · bg(t) + a(t) · f(t) + σ_n · ε(t)

* ``w_i(t)``: trapezoid weight of instance ``i`` at feature centre ``c_t`` — ramps of width
  ``r_i = softness · (e_i - s_i)`` centred on the annotated boundaries (half-weight exactly at
  ``s_i`` and ``e_i``); ``a(t) = min(1, Σ_i w_i(t))``.
* ``f(t) = Σ_i w_i(t) v_i / Σ_i w_i(t)`` with the instance vector ``v_i = normalise(p_k + σ_i z_i)``
  (``p_k`` the class prototype, ``z_i ~ N(0, I/D)``). Distractors are extra instances of
  pseudo-classes that are not written to the annotation.
* ``bg(t) = normalise(b_v + δ · d(t))``: a per-video base ``b_v = normalise(p_bg + σ_b u_v + κ p̄_v)``
  (shared background prototype, video-specific direction, context of the video's classes) plus a
  slow drift ``d(t)``: white noise in a rank-``R`` subspace smoothed over ``τ`` seconds.
  With ``bg_scenes > 0`` the shared prototype ``p_bg`` becomes a scene sequence ``p_s(t)``:
  the video walks through scenes drawn from ``bg_scenes`` scene prototypes (unrelated to any
  class), switching after exponential durations of mean ``scene_length_s``, with transitions
  smoothed over ``τ``.
* ``ε(t)``: isotropic N(0, I/D) noise box-smoothed over ``clip_frames / stride`` features, as
  overlapping clips share frames.
* Per-video nuisance (``gain``, ``offset``): ``x <- g_v ⊙ x + o_v`` with channel gains
  ``g_v = exp(gain · N(0, I))`` and an offset ``o_v ~ offset · N(0, I/D)``, as camera, lighting
  and encoder statistics change from one video to the next.

Draws added after the original ones (scenes, nuisance) come last from a video's generator, so the
legacy settings keep their exact bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RenderConfig:
    """Difficulty knobs (defaults chosen by measurement, see docs/synth.md)."""

    noise: float = 3.0  # σ_n, per-snippet noise norm relative to the unit signal
    instance_variation: float = 1.2  # σ_i
    boundary_softness: float = 0.3  # ramp width as a fraction of the segment length
    distractor_rate: float = 0.3  # expected distractor segments per annotated instance
    pseudo_class_ratio: float = 0.5  # pseudo-classes (distractor sources) per real class
    bg_variation: float = 0.7  # σ_b
    bg_context: float = 0.5  # κ
    bg_drift: float = 0.6  # δ
    bg_drift_timescale_s: float = 20.0  # τ
    bg_drift_rank: int = 16  # R
    actionness: float = 0.0  # α_a, weight of the direction shared by all actions (class-agnostic cue)
    bg_scenes: int = 0  # scene prototypes the background walks through (0: one shared background)
    scene_length_s: float = 40.0  # mean duration of a scene
    scene_spread: float = 1.0  # scene codes' distance from the reference mean, in its RMS units
    gain: float = 0.0  # per-video per-channel log-gain std
    offset: float = 0.0  # per-video offset norm

    def validate(self) -> None:
        from stale.core.errors import StaleError

        for name in ("noise", "instance_variation", "boundary_softness", "distractor_rate",
                     "pseudo_class_ratio", "bg_variation", "bg_context", "bg_drift", "actionness",
                     "gain", "offset", "scene_spread"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise StaleError(f"synth knob {name} must be a finite number >= 0, got {value!r}")
        if not self.bg_drift_timescale_s > 0 or self.bg_drift_rank < 1:
            raise StaleError("synth knobs bg_drift_timescale_s must be > 0 and bg_drift_rank >= 1")
        if self.bg_scenes < 0 or not self.scene_length_s > 0:
            raise StaleError("synth knobs bg_scenes must be >= 0 and scene_length_s > 0")


@dataclass
class SharedParts:
    """Dataset-wide random parts: (K, D) class prototypes, (P, D) pseudo-class prototypes,
    (D,) background prototype, (R, D) orthonormal drift basis, (D,) unit "actionness" direction
    shared by every action (annotated or distractor), (S, D) scene prototypes (or None)."""

    prototypes: np.ndarray
    pseudo: np.ndarray
    background: np.ndarray
    drift_basis: np.ndarray
    action_dir: np.ndarray | None = None
    scenes: np.ndarray | None = None


@dataclass
class Rendered:
    features: np.ndarray  # (T, D) float32
    fg_weight: np.ndarray  # (T,) a(t) of annotated instances
    label: np.ndarray  # (T,) int64: dominant annotated class where a(t) >= 0.5, else -1
    distractor_weight: np.ndarray  # (T,) weight of distractors
    distractors: list = field(default_factory=list)  # [[start, end, pseudo_index], ...] seconds
    distractors_unplaced: int = 0
    zero_length: int = 0


def box_smooth(x: np.ndarray, w: int) -> np.ndarray:
    """Centred moving average of (T, C) ``x`` over ``w`` rows (edges padded by replication)."""
    if w <= 1:
        return x
    left = (w - 1) // 2
    padded = np.concatenate([np.repeat(x[:1], left, 0), x, np.repeat(x[-1:], w - 1 - left, 0)])
    c = np.cumsum(padded, axis=0, dtype=np.float64)
    c = np.concatenate([np.zeros((1, x.shape[1])), c])
    return ((c[w:] - c[:-w]) / w).astype(x.dtype)


def trapezoid_weights(centres: np.ndarray, starts: np.ndarray, ends: np.ndarray, softness: float) -> np.ndarray:
    """(T,) centres, (N,) boundaries in seconds -> (T, N) weights in [0, 1], 0.5 at each boundary."""
    ramp = np.maximum(softness * (ends - starts), 1e-9)
    c = centres[:, None]
    up = np.clip((c - starts) / ramp + 0.5, 0.0, 1.0)
    down = np.clip((ends - c) / ramp + 0.5, 0.0, 1.0)
    w = up * down
    w[:, ends <= starts] = 0.0  # zero-length segments render nothing (counted by the caller)
    return w


def _unit_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """N(0, I/D) rows: expected squared norm 1."""
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(1.0 / np.sqrt(shape[1]))


def scene_sequence(centres: np.ndarray, duration: float, n_scenes: int, mean_length_s: float,
                   smooth: int, rng: np.random.Generator) -> np.ndarray:
    """(T, S) float32 scene weights (rows sum to 1): scenes of exponential durations with mean
    ``mean_length_s``, each drawn uniformly from ``n_scenes``, transitions box-smoothed twice over
    ``smooth`` features."""
    n = int(np.ceil(3 * duration / mean_length_s)) + 2
    ends = np.cumsum(rng.exponential(mean_length_s, size=n))
    which = rng.integers(0, n_scenes, size=n + 1)
    idx = which[np.searchsorted(ends, centres)]
    onehot = np.zeros((len(centres), n_scenes), dtype=np.float32)
    onehot[np.arange(len(centres)), idx] = 1.0
    w = box_smooth(box_smooth(onehot, smooth), smooth)
    return w / w.sum(1, keepdims=True)


def _place_distractors(rng, n, lengths, duration, busy_s, busy_e, tries=8):
    """Start/end of up to ``n`` distractors of the given lengths, avoiding annotated segments."""
    if n == 0:
        return np.zeros(0), np.zeros(0)
    lengths = np.minimum(lengths, 0.5 * duration)
    starts = rng.random((n, tries)) * (duration - lengths)[:, None]
    ends = starts + lengths[:, None]
    clash = ((starts[..., None] < busy_e) & (ends[..., None] > busy_s)).any(-1)  # (n, tries)
    ok = ~clash
    first = ok.argmax(1)
    found = ok.any(1)
    rows = np.arange(n)[found]
    return starts[rows, first[found]], ends[rows, first[found]]


def render_video(centres: np.ndarray, duration: float, seg_start: np.ndarray, seg_end: np.ndarray,
                 seg_class: np.ndarray, clip_frames: int, stride: int, parts: SharedParts,
                 cfg: RenderConfig, rng: np.random.Generator) -> Rendered:
    """Features for one video: ``centres`` (T,) seconds, segments as (N,) arrays (class indices)."""
    T, D = len(centres), parts.prototypes.shape[1]
    spf = float(centres[1] - centres[0]) if T > 1 else 1.0
    n_seg = len(seg_start)
    zero_len = int((seg_end <= seg_start).sum())

    # distractors: count ~ Poisson(rate * instances), lengths drawn from this video's own segments
    lengths = (seg_end - seg_start)[seg_end > seg_start]
    if len(lengths) == 0:
        lengths = np.array([0.05 * duration])
    n_d = int(rng.poisson(cfg.distractor_rate * max(n_seg, 1)))
    d_len = rng.choice(lengths, size=n_d)
    d_start, d_end = _place_distractors(rng, n_d, d_len, duration, seg_start, seg_end)
    d_class = rng.integers(0, len(parts.pseudo), size=len(d_start))

    # instance vectors (annotated first, then distractors)
    protos = np.concatenate([parts.prototypes[seg_class], parts.pseudo[d_class]]).astype(np.float32)
    inst = protos + cfg.instance_variation * _unit_noise(rng, protos.shape)
    inst /= np.maximum(np.linalg.norm(inst, axis=1, keepdims=True), 1e-12)
    if cfg.actionness > 0 and parts.action_dir is not None:
        # what all actions share whatever their class (people moving), unlike background
        inst = inst + np.float32(cfg.actionness) * parts.action_dir.astype(np.float32)
        inst /= np.linalg.norm(inst, axis=1, keepdims=True)

    w = trapezoid_weights(centres, np.concatenate([seg_start, d_start]),
                          np.concatenate([seg_end, d_end]), cfg.boundary_softness).astype(np.float32)
    total = w.sum(1)
    a = np.minimum(total, 1.0)
    fg = (w @ inst) / np.maximum(total, 1e-6)[:, None]

    # background: video base + slow low-rank drift
    context = parts.prototypes[np.unique(seg_class)].sum(0) if n_seg else np.zeros(D)
    context = context / max(np.linalg.norm(context), 1e-12)
    bg_dir = _unit_noise(rng, (1, D))[0]
    base = parts.background + cfg.bg_variation * bg_dir + cfg.bg_context * context
    base = base / np.linalg.norm(base)
    win = max(1, int(round(cfg.bg_drift_timescale_s / spf)))
    white = rng.standard_normal((T, parts.drift_basis.shape[0]), dtype=np.float32)
    kernel = np.convolve(np.ones(win), np.ones(win)) / win**2  # two box passes = triangle
    drift = box_smooth(box_smooth(white, win), win) / np.float32(np.linalg.norm(kernel))
    drift = drift @ (parts.drift_basis.astype(np.float32) / np.float32(np.sqrt(len(parts.drift_basis))))
    bg = base.astype(np.float32) + np.float32(cfg.bg_drift) * drift
    bg /= np.linalg.norm(bg, axis=1, keepdims=True)

    eps_win = max(1, clip_frames // stride)
    eps = box_smooth(_unit_noise(rng, (T, D)), eps_win) * np.float32(np.sqrt(eps_win))
    if cfg.bg_scenes > 0 and parts.scenes is not None:
        # the video-specific direction and class context stay; the shared prototype becomes scenes
        scene = scene_sequence(centres, duration, len(parts.scenes), cfg.scene_length_s, win, rng)
        own = cfg.bg_variation * bg_dir + cfg.bg_context * context
        bg = scene @ parts.scenes.astype(np.float32) + own.astype(np.float32) + np.float32(cfg.bg_drift) * drift
        bg /= np.linalg.norm(bg, axis=1, keepdims=True)
    x = (1.0 - a)[:, None] * bg + a[:, None] * fg + np.float32(cfg.noise) * eps
    if cfg.gain > 0 or cfg.offset > 0:
        g = np.exp(np.float32(cfg.gain) * rng.standard_normal(D, dtype=np.float32))
        o = np.float32(cfg.offset) * _unit_noise(rng, (1, D))[0]
        x = x * g + o

    n_ann = n_seg
    ann_w = w[:, :n_ann]
    a_ann = np.minimum(ann_w.sum(1), 1.0)
    label = np.full(T, -1, dtype=np.int64)
    if n_ann:
        dom = seg_class[ann_w.argmax(1)]
        label = np.where(a_ann >= 0.5, dom, -1)
    d_w = np.minimum(w[:, n_ann:].sum(1), 1.0)
    distractors = [[float(s), float(e), int(c)] for s, e, c in zip(d_start, d_end, d_class)]
    return Rendered(features=x.astype(np.float32), fg_weight=a_ann, label=label, distractor_weight=d_w,
                    distractors=distractors, distractors_unplaced=n_d - len(d_start), zero_length=zero_len)
