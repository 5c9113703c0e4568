"""``stale predict``: a trained run + features + class names -> ActivityNet-format results.

The text side takes any class names (that is the point of zero-shot): by default the run's test
classes (the unseen classes of its split, or all classes in closed-set runs). Results are honest
by default; fusion with an external video-level classifier is an explicit option whose output is
labelled as such in the file (``external_data``) and on the terminal.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from stale import __version__
from stale.checkpoint import load_checkpoint
from stale.config import StaleConfig
from stale.configtools import apply_overrides, from_dict
from stale.data.annotations import AnnotationSet, Video
from stale.errors import StaleError
from stale.model.stale import STALE
from stale.pipeline import available_videos, feature_store, load_features
from stale.postprocess import postprocess
from stale.text import build_text_encoder

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    cfg: StaleConfig
    model: STALE
    classes: dict
    checkpoint: str


def load_run(run: str | Path, device: torch.device, overrides: Sequence[str] = ()) -> LoadedRun:
    """Rebuild the model of a run folder (or checkpoint file) and load its weights.

    ``overrides`` may change inference settings (``inference.top_k=20``) and the text weights'
    location; they are applied to the stored config.
    """
    ckpt = load_checkpoint(run)
    cfg = from_dict(StaleConfig, apply_overrides(ckpt["config"], list(overrides)))
    model = STALE(cfg.model, build_text_encoder(cfg.text))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise StaleError(f"{ckpt['path']}: weights do not fit the model of its config: "
                         f"{str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    return LoadedRun(cfg, model, ckpt["classes"], ckpt["path"])


@torch.no_grad()
def predict_videos(run: LoadedRun, videos: Sequence[Video], features: torch.Tensor,
                   class_names: Sequence[str], batch_size: int, device: torch.device,
                   progress: bool = False) -> dict[str, list[dict]]:
    """Results ``{video_id: [{"segment", "label", "score"}]}`` for ``videos`` (features (N, T, C))."""
    results: dict[str, list[dict]] = {}
    starts = range(0, len(videos), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="predicting", unit="batch", leave=False, dynamic_ncols=True)
    use_amp = run.cfg.train.amp and device.type == "cuda"
    for s in starts:
        chunk = videos[s:s + batch_size]
        x = features[s:s + batch_size].to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = run.model(x, class_names)
        class_probs = out["class_logits"].float().softmax(-1)
        mask_probs = out["mask_logits"].float().sigmoid()
        det = postprocess(class_probs, mask_probs, [v.duration for v in chunk], run.cfg.inference)
        results.update(det.to_results([v.id for v in chunk], list(class_names)))
    return results


def fuse_video_scores(results: dict[str, list[dict]], scores_path: str | Path, top: int = 2) -> tuple[dict, int]:
    """Relabel detections with an external classifier's top classes per video (published-table
    reproduction only: such classifiers are trained on all classes, unseen ones included).

    ``scores_path``: JSON ``{video_id: {class_name: score}}``. Each detection becomes ``top``
    detections, one per top class, scored ``detection score x class score``.
    """
    path = Path(scores_path)
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StaleError(f"{path}: cannot read external classifier scores ({exc})") from None
    if not isinstance(table, dict):
        raise StaleError(f"{path}: expected a JSON object {{video_id: {{class: score}}}}")
    fused, missing = {}, 0
    for vid, items in results.items():
        cls = table.get(vid)
        if not isinstance(cls, dict) or not cls:
            missing += 1
            fused[vid] = items
            continue
        best = sorted(cls.items(), key=lambda kv: -float(kv[1]))[:top]
        fused[vid] = sorted(({"segment": it["segment"], "label": name, "score": it["score"] * float(sc)}
                             for it in items for name, sc in best), key=lambda d: -d["score"])
    return fused, missing


def run_prediction(run: LoadedRun, annotations: AnnotationSet, subset: str, out: str | Path,
                   features_dir: str | None = None, classes: Sequence[str] | None = None,
                   all_videos: bool = False, batch_size: int = 32, fuse_scores: str | None = None,
                   gt_out: str | None = None, say: Callable[[str], None] = print) -> dict:
    """Predict on a subset's videos and write the results file (and optionally the matching GT)."""
    from stale.io import atomic_write_json

    dev = next(run.model.parameters()).device
    class_names = list(classes) if classes else list(run.classes["test"])
    if len(set(class_names)) != len(class_names):
        raise StaleError("the class list has duplicate names")
    sub = annotations.subset(subset)
    known = set(sub.classes())
    if not all_videos and set(class_names) <= known:
        # the zero-shot protocol: score the videos that contain the classes asked for
        sub = sub.filter_classes(class_names, "test")
    elif not all_videos and set(class_names) & known:
        say("note: some classes have no ground truth in this subset; predicting on all its videos")
    store = feature_store(run.cfg, features_dir)
    videos = available_videos(list(sub), store, run.cfg.data.missing_features)
    if not videos:
        raise StaleError(f"no videos of subset {subset!r} to predict on (with feature files under {store.root})")
    feats = load_features(videos, store, run.cfg.data.num_snippets, progress=True)
    if feats.shape[-1] != run.cfg.model.input_dim:
        raise StaleError(f"features under {store.root} have {feats.shape[-1]} channels; the model "
                         f"expects {run.cfg.model.input_dim}")
    results = predict_videos(run, videos, feats, class_names, batch_size, dev, progress=True)
    external = {"used": False}
    if fuse_scores:
        results, missing = fuse_video_scores(results, fuse_scores)
        external = {"used": True, "details": f"labels fused with external video-level classifier "
                    f"scores from {Path(fuse_scores).name}; NOT a zero-shot result "
                    f"({missing} videos had no scores)"}
        say("WARNING: results fused with an external classifier trained on all classes; "
            "they are not zero-shot numbers")
    payload = {"version": f"stale {__version__}", "results": results, "external_data": external,
               "classes": class_names, "checkpoint": run.checkpoint}
    atomic_write_json(out, payload, indent=None)
    if gt_out:
        atomic_write_json(gt_out, sub.to_activitynet_json(), indent=None)
    n = sum(len(v) for v in results.values())
    say(f"wrote {n} detections for {len(results)} videos and {len(class_names)} classes to {out}")
    return payload
