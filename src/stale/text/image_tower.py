"""The CLIP image tower (for features of the user's own videos) and CLIP's preprocessing.

Weights: a local open_clip / OpenAI state dict (``.pt``, ``.bin``, ``.safetensors``; shape from a
sidecar ``<stem>.json`` / ``open_clip_config.json`` with ``model_cfg.vision_cfg``, else from
``arch``), an OpenAI JIT archive, an open_clip pretrained tag (default ``"openai"``; see
:func:`stale.text.weights.pretrained_file` for the offline rules), or ``"random"``: ``arch``'s
shape with seeded random weights, FOR TESTS AND BENCHMARKS ONLY. Checkpoint reading is shared
with the text tower (:mod:`stale.text.weights`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from stale.core.errors import StaleError
from stale.text.weights import RANDOM_WEIGHTS, pretrained_file, read_state_dict, sidecar_config


@dataclass
class ImageEncoder:
    """A CLIP image tower with its preprocessing: ``tower((B, 3, H, W)) -> (B, C)``."""

    tower: torch.nn.Module
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embed_dim: int
    description: str
    random: bool = False
    dtype: torch.dtype = torch.float32   # of the tower's weights and inputs (:meth:`cast`)

    def cast(self, dtype: torch.dtype) -> "ImageEncoder":
        """Put the tower's weights in ``dtype`` (bf16 on CPUs with bf16 matrix units: ~3.7x the
        float32 rate; see :mod:`stale.core.precision`); returns ``self``."""
        if dtype != self.dtype:
            self.tower.to(dtype)
            self.dtype = dtype
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed frames (B, 3, H, W) -> L2-normalised float32 embeddings (B, C), through
        the tower in its ``dtype`` (normalised in float32)."""
        with torch.inference_mode():
            return F.normalize(self.tower(x.to(self.dtype)).float(), dim=-1)


# ----------------------------------------------------------------------------- the image tower

def _vision_cfg_dict(cfg: dict, where: str) -> dict:
    vision = cfg.get("vision_cfg")
    if not isinstance(vision, dict):
        raise StaleError(f"{where}: model config has no 'vision_cfg' mapping (a text-only config?)")
    if vision.get("timm_model_name") or vision.get("hf_model_name"):
        raise StaleError(f"{where}: timm / Hugging Face image towers are not supported; use a CLIP ViT or ResNet")
    return vision


def _build_tower(embed_dim: int, vision_cfg: dict, quick_gelu: bool) -> torch.nn.Module:
    from open_clip.model import _build_vision_tower

    try:
        return _build_vision_tower(int(embed_dim), dict(vision_cfg), quick_gelu=bool(quick_gelu))
    except (TypeError, ValueError) as exc:
        raise StaleError(f"invalid vision_cfg {vision_cfg!r}: {exc}") from None


def _arch_cfg(arch: str) -> dict:
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise StaleError(f"unknown image encoder arch {arch!r} (an open_clip architecture, e.g. ViT-B-16)")
    return cfg


def _visual_state(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        k = key[7:] if key.startswith("module.") else key
        if k.startswith("visual."):
            out[k[7:]] = value.float()
    if not out:
        raise StaleError(f"{where}: no image tower in this checkpoint (no 'visual.*' tensors)")
    return out


def _from_file(path: Path, arch: str, quick_gelu: bool | None, preprocess: dict) -> ImageEncoder:
    state, openai_jit = read_state_dict(path)
    if openai_jit:
        from open_clip.model import build_model_from_openai_state_dict

        try:
            tower = build_model_from_openai_state_dict(state, quick_gelu=True, cast_dtype=None).visual.float()
        except Exception as exc:  # a JIT archive that is not a CLIP model
            raise StaleError(f"{path}: not an OpenAI CLIP archive ({type(exc).__name__}: {exc})") from None
        return _encoder(tower, preprocess, f"{path} (OpenAI JIT archive)")
    cfg = sidecar_config(path, need='vision_cfg') or _arch_cfg(arch)
    vision_cfg = _vision_cfg_dict(cfg, str(path))
    act = bool(cfg.get("quick_gelu", False)) if quick_gelu is None else quick_gelu
    tower = _build_tower(cfg["embed_dim"], vision_cfg, act)
    try:
        tower.load_state_dict(_visual_state(state, str(path)), strict=True)
    except RuntimeError as exc:
        raise StaleError(f"{path}: image tower does not match arch/config {vision_cfg}: "
                         f"{str(exc).splitlines()[0]} (pass the matching --arch or a sidecar JSON)") from None
    return _encoder(tower, {**cfg.get("preprocess_cfg", {}), **preprocess}, str(path))


def _encoder(tower: torch.nn.Module, preprocess: dict, description: str, random: bool = False) -> ImageEncoder:
    from open_clip.transform import PreprocessCfg

    default = PreprocessCfg()
    size = getattr(tower, "image_size", default.size)
    size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    tower.eval().requires_grad_(False)
    with torch.inference_mode():
        dim = int(tower(torch.zeros(1, 3, *size)).shape[-1])
    return ImageEncoder(tower, size, tuple(preprocess.get("mean", default.mean)),
                        tuple(preprocess.get("std", default.std)), dim, description, random)


def load_image_encoder(arch: str = "ViT-B-16", weights: str | os.PathLike | None = None,
                       seed: int = 0) -> ImageEncoder:
    """The CLIP image tower named by ``arch`` + ``weights`` (see the module docstring), float32, CPU."""
    if weights is not None and str(weights) == RANDOM_WEIGHTS:
        cfg = _arch_cfg(arch)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tower = _build_tower(cfg["embed_dim"], _vision_cfg_dict(cfg, arch), cfg.get("quick_gelu", False))
        return _encoder(tower, cfg.get("preprocess_cfg", {}),
                        f"{arch} with RANDOM weights (seed {seed})", random=True)
    weights = "openai" if weights is None else str(weights)
    path = Path(weights).expanduser()
    if path.is_file():
        return _from_file(path.resolve(), arch, None, {})
    if os.sep in weights or path.suffix in (".pt", ".pth", ".bin", ".safetensors"):
        raise StaleError(f"image encoder weights: file not found: {weights}")
    _arch_cfg(arch)
    file, quick = pretrained_file(arch, weights, what="CLIP image weights")
    from open_clip.pretrained import get_pretrained_cfg

    pcfg = get_pretrained_cfg(arch, weights)
    enc = _from_file(Path(file), arch, quick, {k: pcfg[k] for k in ("mean", "std") if k in pcfg})
    enc.description = f"{arch}/{weights}"
    return enc


# ----------------------------------------------------------------------------- preprocessing

def preprocess_frames(frames: torch.Tensor, size: tuple[int, int], mean, std) -> torch.Tensor:
    """CLIP preprocessing of a batch of RGB frames.

    frames: (B, H, W, 3) uint8. Returns (B, 3, size[0], size[1]) float32: resized (bicubic,
    antialiased, clamped to the pixel range like PIL) so that the crop fits with the shorter side
    matching, centre-cropped, normalised with ``mean``/``std``.
    """
    th, tw = size
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    if th / h >= tw / w:   # height binds: torchvision's Resize(int) rounding of the long side
        nh, nw = th, max(tw, int(th * w / h))
    else:
        nh, nw = max(th, int(tw * h / w)), tw
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        x = x.clamp_(0.0, 1.0)
    top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
    x = x[..., top:top + th, left:left + tw]
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
