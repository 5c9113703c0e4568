"""Detection with sliding windows (``data.sampling: window``, or ``--windows`` for a run trained
in resize mode): any detector, windows batched across videos, detections merged per video.

Windows of every video are produced one at a time (:class:`stale.data.window_dataset.WindowedVideos`)
and packed into batches of ``batch_size`` windows, whatever video they come from; each batch is
one call of the detector (``detector(features (B, T, D), class_names, durations (B,))``, the
durations being the windows' spans). A video's detections are shifted into video seconds, clipped
to its end, cut views (touching an inner window edge) down-weighted by ``data.window_edge_weight``,
and merged by one Soft-NMS over the video (:func:`stale.model.window_merge.merge_detections`)
as soon as its last window is done; the number kept grows with the video's length
(:func:`stale.data.windows.grown_top_n`). Memory holds one batch of windows and the candidates of
the videos in flight, whatever the videos' lengths.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from stale.core.errors import StaleError
from stale.core.logs import progress
from stale.data.window_dataset import WindowedVideos
from stale.data.windows import grown_top_n
from stale.model.decoding import InferenceConfig
from stale.model.window_merge import merge_detections


def detect_windowed(detector, videos: WindowedVideos, class_names: Sequence[str], inference: InferenceConfig,
                    batch_size: int, device: torch.device, show_progress: bool = False) -> dict[str, list[dict]]:
    """Results ``{video_id: [{"segment", "label", "score"}]}`` (best first) of ``detector`` on
    the windows of ``videos``; ``inference`` gives the merge's Soft-NMS and per-window ``top_n``."""
    if getattr(detector, "needs_targets", False):
        raise StaleError("this run uses ground-truth masks (inference.mask_source / model.masking.kind=gt): "
                         "windowed detection is not supported for it; use data.sampling=resize")
    names = list(class_names)
    results: dict[str, list[dict]] = {}
    pending: dict[int, list[np.ndarray]] = {}
    batch: list = []

    def run(items) -> None:
        x = torch.from_numpy(np.stack([it.features for it in items])).to(device)
        spans = [videos.plans[it.video].window_seconds for it in items]
        det = detector(x, names, spans)
        labels, scores = det.label.cpu().numpy(), det.score.double().cpu().numpy()
        valid = det.valid.cpu().numpy()
        plans = [videos.plans[it.video] for it in items]
        w0 = np.array([p.starts[it.k] for p, it in zip(plans, items)], dtype=np.int64)[:, None]   # (B, 1)
        step = np.array([p.step for p in plans])[:, None]
        dur = np.array([p.duration for p in plans])[:, None]
        length = np.array([p.length for p in plans])[:, None]
        off = w0 * step
        s = np.minimum(det.segments[..., 0] + off, dur)                       # (B, n) video seconds
        e = np.minimum(det.segments[..., 1] + off, dur)
        # a cut view touches an inner edge: the window's start (not the video's) or its end (not
        # the video's); eps: seconds come back through the snippet -> seconds product
        eps = 1e-6 * step
        span = videos.settings.window * step
        cut = ((s <= off + eps) & (w0 > 0)) | ((e >= off + span - eps) & (w0 + videos.settings.window < length))
        sc = np.where(cut, scores * videos.settings.edge_weight, scores)
        keep = valid & (s < dur)                                             # not padding past a short video's end
        for b, it in enumerate(items):
            k = keep[b]
            pending.setdefault(it.video, []).append(np.stack([s[b, k], e[b, k], labels[b, k], sc[b, k]], axis=1))
            if it.last:
                finish(it.video)

    def finish(i: int) -> None:
        plan = videos.plans[i]
        cand = np.concatenate(pending.pop(i), axis=0)
        s, e, lab, sc = merge_detections(cand[:, 0], cand[:, 1], cand[:, 2].astype(np.int64), cand[:, 3],
                                         inference, grown_top_n(inference.top_n, plan.length, plan.window))
        results[videos.video_ids[i]] = [{"segment": [float(a), float(b)], "label": names[int(c)], "score": float(d)}
                                        for a, b, c, d in zip(s, e, lab, sc)]

    total = videos.num_windows()
    for item in progress(videos.iter_windows(), desc="detecting (windows)", total=total, unit="window",
                         enabled=show_progress):
        batch.append(item)
        if len(batch) == batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    return {vid: results[vid] for vid in videos.video_ids}
