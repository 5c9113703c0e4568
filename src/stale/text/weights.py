"""Loading CLIP text-tower weights: local checkpoints, open_clip pretrained tags, the offline tower.

One loader serves every source (:func:`load_checkpoint_file`):

* an OpenAI JIT archive (``ViT-B-16.pt`` from OpenAI): read with ``torch.jit.load``; OpenAI
  models always use QuickGELU and 64-wide heads, so the tower shape follows from the tensors;
* an open_clip / OpenAI state dict (``.pt``, ``.pth``, ``.bin``, ``.safetensors``; optionally
  wrapped in ``{"state_dict": ...}`` or prefixed ``module.``/``text.``): sizes are read from the
  tensors, the number of heads and the activation from a sidecar JSON if present, otherwise
  from the open_clip architecture ``arch`` (use ``ViT-B-16-quickgelu`` for OpenAI weights);
* the offline tower: a text-only state dict plus its sidecar JSON (format below).

Only the text keys are kept; the vision tower is never instantiated. Sidecar JSON: a file next to
the weights named ``<weights stem>.json`` (or open_clip's ``open_clip_config.json`` in the same
folder) holding ``{"model_cfg": {"embed_dim", "quick_gelu", "text_cfg": {...}}}``.

Pretrained tags (``weights="openai"``) need a download. When ``HF_HUB_OFFLINE`` (or
``TRANSFORMERS_OFFLINE`` / ``STALE_OFFLINE``) is set, nothing is downloaded: a copy already in
the Hugging Face cache is used, otherwise a StaleError is raised at once.
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zipfile
from pathlib import Path

import torch

from stale.core.errors import StaleError
from stale.core.hub import HUB_HOST, LOCAL_WEIGHTS_HINT, hub_reachable, is_offline  # noqa: F401 (re-exported)
from stale.core.io import atomic_torch_save, atomic_write_json
from stale.text.tower import OFFLINE_SPEC, TEST_SPEC, ClipTextTower, TowerSpec, build_random_tower

OFFLINE_ARCH = "stale-offline"   # seeded random tower, created once and cached on disk
TEST_ARCH = "stale-test"         # tiny seeded random tower built in memory (unit tests)
RANDOM_WEIGHTS = "random"        # weights="random": an arch's shape, seeded random weights (benchmarks/tests)
FORMAT = "stale-clip-text/1"
_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.",
                  "text_projection")


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$STALE_CACHE_DIR``, else ``~/.cache/stale``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("STALE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "stale"


# ----------------------------------------------------------------------------- reading files

def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n for n in zf.namelist())


def _unreadable(path: Path, exc: Exception) -> str:
    """One line for a weights file torch cannot read; torch's own advice (``weights_only=False``,
    i.e. run the file's code) is never passed on."""
    text = " ".join(str(exc).split())
    if "can still be loaded" in text:   # a full pickle with Python objects besides the tensors
        return (f"{path}: checkpoint holds pickled Python objects besides tensors, which stale does not "
                f"load (they could run code); save the model's state_dict or a .safetensors file")
    detail = "" if "weights_only" in text or "Weights only" in text else f": {text[:120]}"
    return (f"{path}: not a readable checkpoint (truncated, corrupt, or not a weights file; "
            f"{type(exc).__name__}{detail})")


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], bool]:
    """Read a checkpoint's tensors; returns ``(state_dict, is_openai_jit_archive)``."""
    path = Path(path)
    if not path.is_file():
        raise StaleError(f"text encoder weights: file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu")), False
        if _is_torchscript(path):
            with warnings.catch_warnings():   # OpenAI ships TorchScript; torch now warns on it
                warnings.simplefilter("ignore", FutureWarning)
                return dict(torch.jit.load(str(path), map_location="cpu").state_dict()), True
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except StaleError:
        raise
    except Exception as exc:  # corrupt / truncated / foreign file
        raise StaleError(_unreadable(path, exc)) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise StaleError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return obj, False


def text_state_dict(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """The text-tower subset of a CLIP state dict, with ``module.``/``text.`` prefixes removed."""
    out = {}
    for key, value in state.items():
        k = key[7:] if key.startswith("module.") else key
        k = k[5:] if k.startswith("text.") else k
        if k.startswith(_TEXT_PREFIXES):
            out[k] = value
    for need in ("token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection"):
        if need not in out:
            raise StaleError(f"{where}: not a CLIP text tower checkpoint (missing '{need}')")
    return out


def sidecar_config(path: Path, need: str = "text_cfg") -> dict | None:
    """The open_clip model config next to a checkpoint (``<stem>.json`` or
    ``open_clip_config.json``), which must have a ``need`` mapping; None when there is none."""
    for cand in (path.with_suffix(".json"), path.parent / "open_clip_config.json"):
        if cand.is_file():
            try:
                data = json.loads(cand.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise StaleError(f"{cand}: unreadable model config ({exc})") from None
            cfg = data.get("model_cfg", data) if isinstance(data, dict) else None
            if not isinstance(cfg, dict) or not isinstance(cfg.get(need), dict):
                raise StaleError(f"{cand}: model config has no '{need}' mapping")
            return cfg
    return None


def _spec_from_state(sd: dict[str, torch.Tensor], cfg: dict | None, openai_jit: bool,
                     quick_gelu: bool | None, where: str) -> TowerSpec:
    vocab, width = sd["token_embedding.weight"].shape
    layers = len({m.group(1) for k in sd if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))})
    fc = sd.get("transformer.resblocks.0.mlp.c_fc.weight")
    mlp_ratio = fc.shape[0] / width if fc is not None else 4.0
    if cfg is not None:
        text_cfg = cfg["text_cfg"]
        for field, got in (("width", width), ("layers", layers)):
            want = text_cfg.get(field)
            if want is not None and int(want) != got:
                raise StaleError(f"{where}: checkpoint has text {field} {got} but the model config "
                                 f"says {want}; choose the matching arch")
        heads = int(text_cfg.get("heads", 8))
        act = bool(cfg.get("quick_gelu", False))
    else:
        heads, act = width // 64, False
    if openai_jit:
        act = True   # every OpenAI CLIP was trained with QuickGELU
    if quick_gelu is not None:
        act = bool(quick_gelu)
    return TowerSpec(width=int(width), layers=layers, heads=heads,
                     embed_dim=int(sd["text_projection"].shape[1]),
                     context_length=int(sd["positional_embedding"].shape[0]), vocab_size=int(vocab),
                     mlp_ratio=mlp_ratio, quick_gelu=act)


def _arch_cfg(arch: str | None) -> dict | None:
    if arch is None:
        return None
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise StaleError(f"unknown text encoder arch {arch!r} (open_clip architectures, e.g. "
                         f"ViT-B-16, ViT-B-16-quickgelu; or {OFFLINE_ARCH!r})")
    if "hf_model_name" in cfg.get("text_cfg", {}):
        raise StaleError(f"arch {arch!r} uses a Hugging Face text model; only CLIP text towers are supported")
    return cfg


def load_checkpoint_file(path: str | os.PathLike, arch: str | None = None,
                         quick_gelu: bool | None = None) -> ClipTextTower:
    """Build a text tower from a local checkpoint (see the module docstring), in float32 on CPU.

    ``arch`` supplies heads/activation when the file has no sidecar JSON and is not an OpenAI JIT
    archive; ``quick_gelu`` (e.g. from a pretrained tag) overrides the activation.
    """
    path = Path(path)
    state, openai_jit = read_state_dict(path)
    sd = text_state_dict(state, str(path))
    del state  # drop the vision tower's tensors right away
    cfg = sidecar_config(path)
    if cfg is None and not openai_jit:
        cfg = _arch_cfg(arch)
    spec = _spec_from_state(sd, cfg, openai_jit, quick_gelu, str(path))
    tower = ClipTextTower(spec)
    sd = {k: v.float() for k, v in sd.items()}
    try:
        tower.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise StaleError(f"{path}: text tower does not match a standard CLIP text transformer: "
                         f"{str(exc).splitlines()[0]}") from None
    return tower


# ----------------------------------------------------------------------------- tags

def pretrained_file(arch: str, tag: str, what: str = "text encoder weights") -> tuple[str, bool | None]:
    """Path of the weights for an open_clip pretrained tag: a cached copy (Hugging Face cache,
    ``$HF_HOME``), else a download. Offline (``HF_HUB_OFFLINE``/``STALE_OFFLINE``) or with the hub
    unreachable (a 3-second probe) this fails at once with one line saying how to pass a local file,
    instead of open_clip's minute of retries."""
    import open_clip
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    pcfg = get_pretrained_cfg(arch, tag)
    if not pcfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise StaleError(f"{what} {tag!r}: not a file and not a pretrained tag of "
                         f"{arch!r} (tags: {', '.join(tags) or 'none'})")
    quick = pcfg.get("quick_gelu")
    cached = _hf_cached(pcfg.get("hf_hub", ""))
    if cached is not None:
        return cached, quick
    if is_offline():
        extra = f", or use text.arch {OFFLINE_ARCH!r} (seeded random tower)" if what.startswith("text") else ""
        raise StaleError(f"{what} {arch}/{tag} need a download, but downloads are off "
                         f"(HF_HUB_OFFLINE/STALE_OFFLINE set) and no cached copy exists; {LOCAL_WEIGHTS_HINT}{extra}")
    if not hub_reachable():
        raise StaleError(f"{what} {arch}/{tag} need a download from {HUB_HOST}, which cannot be reached "
                         f"from this machine; {LOCAL_WEIGHTS_HINT}")
    try:
        return download_pretrained(pcfg), quick
    except Exception as exc:  # noqa: BLE001 - any download failure is an environment problem
        raise StaleError(f"could not download {what} {arch}/{tag}: {' '.join(str(exc).split())[:200]}; "
                         f"{LOCAL_WEIGHTS_HINT}") from None


def _hf_cached(hf_hub: str) -> str | None:
    if not hf_hub:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo, filename = os.path.split(hf_hub)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    for name in names:
        hit = try_to_load_from_cache(repo, name)
        if isinstance(hit, str):
            return hit
    return None


# ----------------------------------------------------------------------------- offline tower

def offline_tower_path(cache_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Where the offline tower for ``seed`` lives (``<cache>/clip-text-offline-<shape>-s<seed>.pt``)."""
    s = OFFLINE_SPEC
    name = f"clip-text-offline-w{s.width}-l{s.layers}-h{s.heads}-e{s.embed_dim}-s{seed}.pt"
    return default_cache_dir(cache_dir) / name


def ensure_offline_tower(cache_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Create the offline tower's checkpoint (weights + sidecar JSON) once; return its path.

    Both files are written atomically, the sidecar first, so an existing ``.pt`` always has its
    config; concurrent creators write identical bytes.
    """
    path = offline_tower_path(cache_dir, seed)
    if path.is_file() and path.with_suffix(".json").is_file():
        return path
    tower = build_random_tower(OFFLINE_SPEC, seed)
    try:
        atomic_write_json(path.with_suffix(".json"),
                          {"format": FORMAT, "seed": seed, "model_cfg": OFFLINE_SPEC.to_model_cfg()})
        atomic_torch_save(path, tower.state_dict())
    except OSError as exc:
        raise StaleError(f"cannot write the offline text tower to {path.parent} ({exc}); "
                         f"set STALE_CACHE_DIR to a writable folder") from None
    return path


def save_tower(tower: ClipTextTower, path: str | os.PathLike) -> None:
    """Save a tower as a text-only checkpoint + sidecar JSON (the offline tower's format)."""
    path = Path(path)
    atomic_write_json(path.with_suffix(".json"), {"format": FORMAT, "model_cfg": tower.spec.to_model_cfg()})
    atomic_torch_save(path, tower.state_dict())


# ----------------------------------------------------------------------------- random towers

def random_arch_tower(arch: str, seed: int = 0) -> ClipTextTower:
    """A text tower of ``arch``'s exact shape (any open_clip CLIP arch, or ``stale-offline`` /
    ``stale-test``) with seeded random weights, built in memory without any download.

    FOR BENCHMARKS AND TESTS ONLY: it has the cost (parameters, FLOPs, memory) of the real
    tower but none of its knowledge, so a model trained with it is not zero-shot capable.
    """
    if arch == TEST_ARCH:
        return build_random_tower(TEST_SPEC, seed)
    if arch == OFFLINE_ARCH:
        return build_random_tower(OFFLINE_SPEC, seed)
    cfg = _arch_cfg(arch)
    text_cfg = cfg["text_cfg"]
    width = int(text_cfg.get("width", 512))
    spec = TowerSpec(width=width, layers=int(text_cfg.get("layers", 12)),
                     heads=int(text_cfg.get("heads", 8)), embed_dim=int(cfg["embed_dim"]),
                     context_length=int(text_cfg.get("context_length", 77)),
                     vocab_size=int(text_cfg.get("vocab_size", 49408)),
                     mlp_ratio=float(text_cfg.get("mlp_ratio", 4.0)),
                     quick_gelu=bool(cfg.get("quick_gelu", False)))
    return build_random_tower(spec, seed)


# ----------------------------------------------------------------------------- entry point

def load_text_tower(arch: str = OFFLINE_ARCH, weights: str | os.PathLike | None = None,
                    cache_dir: str | os.PathLike | None = None, seed: int = 0) -> ClipTextTower:
    """The text tower named by ``arch`` + ``weights``.

    * ``arch="stale-offline"``, ``weights=None``: the cached seeded random tower (``seed``);
    * ``arch="stale-test"``, ``weights=None``: a tiny seeded random tower, in memory;
    * another ``arch`` with ``weights=None``: its OpenAI weights (tag ``"openai"``);
    * ``weights`` an existing file: :func:`load_checkpoint_file` (``arch`` as fallback config);
    * ``weights`` a tag such as ``"openai"``: open_clip pretrained weights for ``arch``;
    * ``weights="random"``: ``arch``'s shape with seeded random weights (:func:`random_arch_tower`).
      For benchmarks and tests only: such a tower knows nothing about language.
    """
    if weights is not None and str(weights) == RANDOM_WEIGHTS:
        return random_arch_tower(arch, seed)
    if arch == TEST_ARCH and weights is None:
        return build_random_tower(TEST_SPEC, seed)
    if arch == OFFLINE_ARCH and weights is None:
        return load_checkpoint_file(ensure_offline_tower(cache_dir, seed))
    if weights is None:
        weights = "openai"   # an open_clip arch's standard weights are OpenAI's
    weights = str(weights)
    arch_for_file = None if arch in (OFFLINE_ARCH, TEST_ARCH) else arch
    if Path(weights).expanduser().is_file():
        return load_checkpoint_file(Path(weights).expanduser(), arch_for_file)
    if os.sep in weights or Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors"):
        raise StaleError(f"text encoder weights: file not found: {weights}")
    if arch_for_file is None:
        raise StaleError(f"weights {weights!r} is a pretrained tag, which needs an open_clip arch "
                         f"(e.g. ViT-B-16), not {arch!r}")
    _arch_cfg(arch)
    path, quick = pretrained_file(arch, weights)
    if quick is not None and quick != bool(_arch_cfg(arch).get("quick_gelu", False)):
        warnings.warn(f"{arch}/{weights} was trained with quick_gelu={quick}; using that", stacklevel=2)
    return load_checkpoint_file(path, arch, quick_gelu=quick)
