"""The detector of each method, built from a trained module or rebuilt from a checkpoint.

Every method's detector has the same call: ``detector(features (B, T, D), class_names,
durations (B,), targets=None) -> stale.model.decoding.Detections`` (``targets`` only for
detectors with ``needs_targets``, e.g. the ground-truth-mask ablation); ``stale predict``, the
experiment runner and ``stale detect`` only use that.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.profiler import record_function

from stale.core.errors import StaleError
from stale.core.precision import Precision, resolve_precision
from stale.model.decoding import Detections, postprocess
from stale.pipeline.config import StaleConfig

TOWER_PREFIX = "tower."
#: profiler scope of the post-processing (:mod:`stale.pipeline.profile_predict`)
SCOPE_POSTPROCESS = "stale::post-processing"


class StaleDetector:
    """A trained STALE network as a detector: ``(features (B, T, D), class names, durations
    (B,), targets=None) -> Detections`` (paper Sec. 3.3 inference). ``targets`` (the test
    videos' :class:`~stale.model.outputs.Targets`) are needed only by the ground-truth-mask
    ablation (``model.masking.kind=gt``, paper Tables 3-4), whose mask is their foreground.

    Precision (``inference.precision``, :mod:`stale.core.precision`): in bf16 the network's
    video side runs on a bf16 twin of the model (weights and activations in bf16 -- on CPUs
    with bf16 matrix units the fast path, where autocast is slower than float32), remade
    whenever the float32 weights change; the text features come from the float32 model (once
    per class set, cached by the text encoder) and are cast. Post-processing always runs in
    float32. ``precision(device)`` says what ran (recorded by the commands' outputs)."""

    def __init__(self, model: torch.nn.Module, cfg: StaleConfig):
        self.model = model
        self.cfg = cfg
        self.use_gt_mask = cfg.inference.mask_source == "ground_truth"
        self.needs_targets = cfg.model.masking.kind == "gt" or self.use_gt_mask
        self._twin: tuple[tuple, torch.nn.Module] | None = None

    def precision(self, device: torch.device | str) -> Precision:
        """The resolved ``inference.precision`` on ``device``."""
        return resolve_precision(self.cfg.inference.precision, device)

    def _bf16_twin(self) -> torch.nn.Module:
        key = tuple((p.data_ptr(), p._version) for p in self.model.parameters())
        if self._twin is None or self._twin[0] != key:
            self._twin = (key, low_precision_twin(self.model, torch.bfloat16))
        return self._twin[1]

    def network(self, device: torch.device | str) -> torch.nn.Module:
        """The module that runs on ``device``: the float32 model or its bf16 twin."""
        return self._bf16_twin() if self.precision(device).is_bf16 else self.model

    @torch.no_grad()
    def __call__(self, features: torch.Tensor, class_names: Sequence[str], durations,
                 targets=None) -> Detections:
        gt_fg = targets.fg_mask if targets is not None else None
        if self.needs_targets and gt_fg is None:
            raise StaleError("this run uses ground-truth masks (model.masking.kind=gt): prediction needs "
                             "annotated test videos (their foreground is the mask)")
        names = list(class_names)
        self.model.eval()
        net = self.network(features.device)
        if net is not self.model:
            text = self.model.encode_text(names).to(torch.bfloat16)
            out = net(features.to(torch.bfloat16), names, gt_fg=gt_fg, text=text, force_gt_mask=self.use_gt_mask)
        else:
            out = self.model(features, names, gt_fg=gt_fg, force_gt_mask=self.use_gt_mask)
        # post-processing (thresholds, Soft-NMS) always in float32; the scope names it in profiles
        with record_function(SCOPE_POSTPROCESS):
            out = out.float()
            return postprocess(out.class_probs(), out.mask_probs(), durations, self.cfg.inference)


def low_precision_twin(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of a STALE ``model`` in eval mode whose own floating-point weights are in
    ``dtype``; the text encoder is *shared* (not copied, kept in its own precision; the CLIP
    prior's tower is the same object): callers pass its output, cast, as ``text=``."""
    import copy

    text = getattr(model, "text_encoder", None)
    keep = [*text.modules(), *text.parameters(), *text.buffers()] if isinstance(text, nn.Module) else []
    twin = copy.deepcopy(model, memo={id(t): t for t in keep})
    # scalars (the classifier's logit scale, the prior's weight) stay float32: they cost nothing,
    # and a bf16 logit scale of ~100 would rescale every logit by up to 0.4%
    shared = {id(t) for t in keep}
    for module in twin.modules():
        for name, p in module._parameters.items():
            if p is not None and id(p) not in shared and p.is_floating_point() and p.dim() > 0:
                module._parameters[name] = nn.Parameter(p.detach().to(dtype), requires_grad=False)
        for name, b in module._buffers.items():
            if b is not None and id(b) not in shared and b.is_floating_point() and b.dim() > 0:
                module._buffers[name] = b.to(dtype)
    return twin.eval()


def text_tower(cfg: StaleConfig):
    """The frozen CLIP text tower the baselines embed class names with (``text.arch/weights``)."""
    from stale.text.weights import load_text_tower

    return load_text_tower(cfg.text.arch, cfg.text.weights, cache_dir=cfg.text.cache_dir).eval()


def tower_fingerprint(tower) -> dict:
    """Record of a baseline's frozen text tower (checked when the run is loaded again)."""
    from stale.training.checkpoint import fingerprint

    state = tower.state_dict()
    return {"names": [TOWER_PREFIX + k for k in sorted(state)], "fingerprint": fingerprint(state)}


def build_trainable(cfg: StaleConfig) -> tuple[nn.Module, Any]:
    """``(module, loss_fn)`` of a method trained by the trainer (``stale`` and ``two_stage``)."""
    if cfg.method == "stale":
        from stale.model.losses import STALELoss
        from stale.pipeline.assemble import build_model

        return build_model(cfg), STALELoss(cfg.model.loss)
    if cfg.method == "two_stage":
        from stale.baselines.two_stage import ProposalNet, ProposalObjective

        return ProposalNet(cfg.model.input_dim, cfg.two_stage), ProposalObjective(cfg.two_stage)
    raise StaleError(f"method {cfg.method!r} is not trained by the trainer")


def make_detector(cfg: StaleConfig, module: nn.Module | None, device: torch.device, tower=None):
    """The detector of ``cfg.method`` around a trained ``module`` (None for the training-free one)."""
    if cfg.method == "stale":
        return StaleDetector(module.to(device).eval(), cfg)
    tower = tower if tower is not None else text_tower(cfg)
    if cfg.method == "clip_detector":
        from stale.baselines.clip_detector import ClipDetector

        return ClipDetector(cfg.clip_detector, tower, device, cfg.inference)
    if cfg.method == "linear_probe":
        from stale.baselines.linear_probe import LinearProbeDetector

        return LinearProbeDetector(module, tower, cfg.linear_probe, device, cfg.inference)
    if cfg.method == "two_stage":
        from stale.baselines.two_stage import TwoStageDetector

        return TwoStageDetector(module, tower, cfg.two_stage, device, cfg.inference)
    raise StaleError(f"unknown method {cfg.method!r}")


def build_detector(cfg: StaleConfig, ckpt: dict[str, Any], device: torch.device):
    """The detector of a loaded checkpoint ``ckpt`` (weights already read), on ``device``."""
    from stale.training.checkpoint import fingerprint, load_weights

    if cfg.method == "stale":
        module, _ = build_trainable(cfg)
        load_weights(module, ckpt)
        return make_detector(cfg, module, device)
    tower = text_tower(cfg)
    want = (ckpt.get("text_tower") or {}).get("fingerprint")
    if want and fingerprint(tower.state_dict()) != want:
        raise StaleError(f"{ckpt.get('path')}: the CLIP text tower found now (text.arch / text.weights) is "
                         f"not the one this run used; pass the original with --set text.weights=PATH")
    module = None
    if cfg.method == "two_stage":
        module, _ = build_trainable(cfg)
        module.load_state_dict(ckpt["model"])
    elif cfg.method == "linear_probe":
        from stale.baselines.linear_probe import LinearProbe

        state = ckpt["model"]
        module = LinearProbe(*state["weight"].shape)
        module.load_state_dict(state)
    return make_detector(cfg, module, device, tower)
