"""Whether CLIP weights named by a pretrained tag can be had, decided in well under a second.

A tag such as ``openai`` means "download these weights from the Hugging Face hub unless a copy is
already cached". Without network, open_clip retries for about a minute before it fails, and
merely importing open_clip (it imports torchvision, which imports torch's compiler stack) takes
several seconds on a small machine. :func:`preflight_weights` runs before any of that: it imports
nothing heavy, and when a tag would need a download that cannot happen it raises the one-line
error at once. It only ever fails when the full path would fail too: it refuses only when the
hub cache holds no weight file at all (any cached file sends the caller down the exact path,
which looks up the tag's own file).

Cache location (the Hugging Face hub's rules): ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``.
"""

from __future__ import annotations

import os
from pathlib import Path

from stale.core.errors import StaleError

HUB_HOST = "huggingface.co"
LOCAL_WEIGHTS_HINT = ("pass a local CLIP checkpoint instead: --weights / --set text.weights=PATH to an "
                      "OpenAI .pt archive, an open_clip state dict or a .safetensors file (docs/text.md, "
                      "'Getting real CLIP weights')")
#: architectures of stale's own seeded random text towers (never downloaded)
LOCAL_ARCHS = ("stale-offline", "stale-test")
RANDOM_WEIGHTS = "random"
WEIGHT_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth")
_TRUTHY = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True when the environment forbids downloads (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, STALE_OFFLINE)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUTHY
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "STALE_OFFLINE"))


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the weights hub opens within ``timeout`` seconds."""
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder (module docstring)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def cached_weight_files(cache: Path | None = None) -> list[Path]:
    """Weight files in the hub cache's model snapshots (``models--*/snapshots/*/*``)."""
    cache = hf_hub_cache() if cache is None else cache
    if not cache.is_dir():
        return []
    try:
        return sorted(p for p in cache.glob("models--*/snapshots/*/*") if p.suffix in WEIGHT_SUFFIXES)
    except OSError:
        return []


def is_tag(arch: str, weights: str | os.PathLike | None) -> bool:
    """Whether ``arch`` + ``weights`` name pretrained weights to fetch (not a file, not random, not a
    stale tower). ``weights=None`` with an open_clip arch means the tag ``openai``."""
    if weights is None:
        return arch not in LOCAL_ARCHS
    text = str(weights)
    if text == RANDOM_WEIGHTS or Path(text).expanduser().exists():
        return False
    # a path-like value that does not exist is a missing file, reported by the loaders
    return not (os.sep in text or Path(text).suffix in WEIGHT_SUFFIXES)


def preflight_weights(arch: str, weights: str | os.PathLike | None, what: str = "CLIP weights") -> None:
    """Raise the one-line error at once when ``arch``/``weights`` is a pretrained tag that needs a
    download which cannot happen (offline, or the hub unreachable in a 3 s probe) and the hub
    cache holds no weights. Otherwise return and let the loaders do the exact work."""
    if not is_tag(arch, weights) or cached_weight_files():
        return
    tag = "openai" if weights is None else str(weights)
    if is_offline():
        raise StaleError(f"{what} {arch}/{tag} need a download, but downloads are off "
                         f"(HF_HUB_OFFLINE/STALE_OFFLINE set) and no cached copy exists in "
                         f"{hf_hub_cache()}; {LOCAL_WEIGHTS_HINT}")
    if not hub_reachable():
        raise StaleError(f"{what} {arch}/{tag} need a download from {HUB_HOST}, which cannot be reached "
                         f"from this machine; {LOCAL_WEIGHTS_HINT}")
