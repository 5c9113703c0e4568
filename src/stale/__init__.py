"""stale: zero-shot temporal action detection with vision-language prompting (STALE).

Public API (imported lazily, so ``import stale`` is instant): :func:`load_run`, :func:`train`,
:func:`evaluate`, :func:`splits`, :func:`detect`, :func:`report`; see :mod:`stale.api` and
docs/api.md.
"""

from stale.core.version import __version__

__all__ = ["load_run", "train", "evaluate", "splits", "detect", "report", "__version__"]


def __getattr__(name):
    if name in ("load_run", "train", "evaluate", "splits", "detect", "report"):
        from stale import api

        return getattr(api, name)
    raise AttributeError(f"module 'stale' has no attribute {name!r}")
