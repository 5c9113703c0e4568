"""Label assignment (paper Sec. 3.3): action segments in seconds -> per-snippet training targets.

Every instance of every video is used (the released code kept only the last one). The rules,
all in STALE snippet coordinates (snippet ``t`` of ``T`` covers ``[t, t+1) * duration / T`` s,
see :mod:`stale.data.timeline`):

* **Clipping.** Segments are clipped to ``[0, duration]`` (counted as ``clipped``). A segment
  lying entirely outside the video (nothing left after clipping; a zero-length segment
  inside ``[0, duration]`` is kept) is dropped and counted as ``outside``. ``end < start`` or a
  non-finite time is an input error (:class:`StaleError`).
* **Coverage.** An instance covers snippet ``t`` when their intervals overlap by at least
  ``min_overlap`` snippets (default half a snippet; a 1e-9 tolerance absorbs rounding, so a
  boundary exactly at ``t + 0.5`` counts).
* **Short instances.** An instance that covers no snippet by that rule (shorter than
  ``min_overlap`` snippets, or straddling a boundary) covers the snippet containing its centre
  (counted as ``short``). So no instance vanishes at coarse ``T``.
* **Overlaps.** A snippet covered by several instances is given to the **shortest** one (it is
  the one whose extent would otherwise be lost); ties go to the lowest class index, then to the
  first in input order. ``contested`` counts such snippets.
* **Same extent, several labels** (THUMOS14 CliffDiving/Diving): by the tie rule the lower class
  index wins every snippet; each losing instance is counted in ``same_extent``.
* An instance left with no snippet at all after resolution is counted in ``unowned``.

Targets: ``snippet_labels`` (T,) int64 in ``[0, K]`` (``K`` = background); ``instance_masks``
(T, T) row-wise -- row ``t`` is the binary cover of the instance owning snippet ``t`` (all rows
of one instance are identical; background rows are zero); ``fg_mask`` (T,) in {0, 1}. A batch
of them is :class:`stale.model.outputs.Targets` (``Targets.stack``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, Sequence

import numpy as np

from stale.core.errors import StaleError
from stale.data.timeline import seconds_to_snippet, snippet_index

_EPS = 1e-9


@dataclass
class LabelConfig:
    """Label-assignment rules.

    min_overlap: snippets an instance must overlap to cover a snippet, in (0, 1] (default 0.5).
    unknown_labels: for :func:`targets_for_video`, what to do with a segment whose label is not
        in the class list: ``"error"`` (default) or ``"drop"`` (counted as ``unknown``).
    """

    min_overlap: float = 0.5
    unknown_labels: Literal["error", "drop"] = "error"

    def validate(self) -> None:
        if not 0.0 < self.min_overlap <= 1.0:
            raise StaleError(f"labels.min_overlap must be in (0, 1], got {self.min_overlap}")
        if self.unknown_labels not in ("error", "drop"):
            raise StaleError(f"labels.unknown_labels must be 'error' or 'drop', "
                             f"got {self.unknown_labels!r}")


@dataclass
class LabelStats:
    """Counts of every policy applied; add them up over a dataset with ``+``."""

    instances: int = 0      # instances that entered assignment
    clipped: int = 0        # segments clipped to [0, duration]
    outside: int = 0        # segments entirely outside the video (dropped)
    short: int = 0          # instances covering one snippet by the centre rule
    contested: int = 0      # snippets covered by more than one instance
    same_extent: int = 0    # instances sharing their exact extent with a winning instance
    unowned: int = 0        # instances that own no snippet after overlap resolution
    unknown: int = 0        # segments with a label outside the class list (policy "drop")

    def __add__(self, other: "LabelStats") -> "LabelStats":
        return LabelStats(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                             for f in fields(self)})


@dataclass
class VideoTargets:
    """Targets of one video (numpy). Shapes: labels (T,), masks (T, T), fg (T,)."""

    snippet_labels: np.ndarray
    instance_masks: np.ndarray
    fg_mask: np.ndarray
    stats: LabelStats


def assign_labels(duration: float, starts, ends, classes, num_classes: int, num_snippets: int,
                  cfg: LabelConfig | None = None, video_id: str = "<video>") -> VideoTargets:
    """Snippet targets of one video from its segments.

    ``starts``, ``ends`` (M,) seconds and ``classes`` (M,) indices into the ``num_classes``
    action classes; ``M`` may be 0 (all background). Vectorised over instances and snippets.
    """
    cfg = cfg or LabelConfig()
    cfg.validate()
    T, K = int(num_snippets), int(num_classes)
    if T <= 0 or K <= 0:
        raise StaleError(f"{video_id}: num_snippets and num_classes must be positive "
                         f"(got {T}, {K})")
    if not (np.isfinite(duration) and duration > 0):
        raise StaleError(f"{video_id}: field 'duration' must be a positive number, got {duration}")
    s = np.asarray(starts, dtype=np.float64).reshape(-1)
    e = np.asarray(ends, dtype=np.float64).reshape(-1)
    c = np.asarray(classes).reshape(-1)
    if not (s.shape == e.shape == c.shape):
        raise StaleError(f"{video_id}: starts, ends and classes differ in length "
                         f"({s.size}, {e.size}, {c.size})")
    if not (np.isfinite(s).all() and np.isfinite(e).all()):
        raise StaleError(f"{video_id}: field 'segment' has a non-finite time")
    if (e < s).any():
        i = int(np.flatnonzero(e < s)[0])
        raise StaleError(f"{video_id}: field 'segment' #{i} ends before it starts "
                         f"([{s[i]}, {e[i]}])")
    if c.size and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0 or c.max() >= K):
        raise StaleError(f"{video_id}: field 'label' index outside [0, {K}): {c.tolist()}")
    c = c.astype(np.int64)

    stats = LabelStats()
    # a positive-length segment whose clipped length is zero lies outside too
    outside = (e < 0) | (s > duration) | ((e > s) & ((e <= 0) | (s >= duration)))
    stats.outside = int(outside.sum())
    s, e, c = s[~outside], e[~outside], c[~outside]
    stats.clipped = int(((s < 0) | (e > duration)).sum())
    s, e = np.clip(s, 0.0, duration), np.clip(e, 0.0, duration)
    M = s.size
    stats.instances = M

    labels = np.full(T, K, dtype=np.int64)
    masks = np.zeros((T, T), dtype=np.float32)
    if M == 0:
        return VideoTargets(labels, masks, np.zeros(T, dtype=np.float32), stats)

    # cover[m, t]: instance m covers snippet t
    ps, pe = seconds_to_snippet(s, duration, T), seconds_to_snippet(e, duration, T)
    t = np.arange(T, dtype=np.float64)
    overlap = np.minimum(t + 1, pe[:, None]) - np.maximum(t, ps[:, None])
    cover = overlap >= cfg.min_overlap - _EPS
    short = ~cover.any(axis=1)
    stats.short = int(short.sum())
    centre = snippet_index(0.5 * (s + e), duration, T)
    cover[np.flatnonzero(short), centre[short]] = True

    # priority rank: shorter first, then lower class index, then input order
    order = np.lexsort((np.arange(M), c, e - s))
    rank = np.empty(M, dtype=np.int64)
    rank[order] = np.arange(M)
    covered = cover.any(axis=0)
    owner = np.where(cover, rank[:, None], M).argmin(axis=0)   # (T,) instance index
    stats.contested = int((cover.sum(axis=0) > 1).sum())

    same = (s[:, None] == s[None, :]) & (e[:, None] == e[None, :])
    stats.same_extent = int((same & (rank[None, :] < rank[:, None])).any(axis=1).sum())
    owned = np.zeros(M, dtype=bool)
    owned[owner[covered]] = True
    stats.unowned = int((~owned).sum())

    labels[covered] = c[owner[covered]]
    masks[covered] = cover[owner[covered]]
    return VideoTargets(labels, masks, covered.astype(np.float32), stats)


def targets_for_video(video, classes: Sequence[str], num_snippets: int,
                      cfg: LabelConfig | None = None) -> VideoTargets:
    """Targets of a ``stale.data`` ``Video`` (``id``, ``duration``, ``segments`` with ``start``,
    ``end``, ``label``); ``classes`` is the ordered list of the K action classes."""
    cfg = cfg or LabelConfig()
    cfg.validate()
    index = {name: i for i, name in enumerate(classes)}
    known = [seg for seg in video.segments if seg.label in index]
    unknown = len(video.segments) - len(known)
    if unknown and cfg.unknown_labels == "error":
        bad = sorted({seg.label for seg in video.segments if seg.label not in index})
        raise StaleError(f"{video.id}: field 'label' not in the class list: {bad}")
    out = assign_labels(video.duration, [g.start for g in known], [g.end for g in known],
                        np.array([index[g.label] for g in known], dtype=np.int64), len(classes),
                        num_snippets, cfg, video_id=video.id)
    out.stats.unknown = unknown
    return out
