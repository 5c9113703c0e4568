"""Rebuilding the detector a run folder describes (STALE or a baseline), from its checkpoint.

Every method's detector has the same call: ``detector(features (B, T, D), class_names,
durations (B,), gt_fg=None) -> stale.model.decoding.Detections``; ``stale predict``, the
experiment runner and ``stale detect`` only use that.
"""

from __future__ import annotations

from typing import Any

import torch

from stale.runs.config import StaleConfig


def build_detector(cfg: StaleConfig, ckpt: dict[str, Any], device: torch.device):
    """The detector of a loaded checkpoint ``ckpt`` (weights already read), on ``device``."""
    from stale.runs.assemble import build_model
    from stale.runs.predict import StaleDetector
    from stale.training.checkpoint import load_weights

    model = build_model(cfg)
    load_weights(model, ckpt)
    model.to(device).eval()
    return StaleDetector(model, cfg)
