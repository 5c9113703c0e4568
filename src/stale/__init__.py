"""stale: zero-shot temporal action detection with vision-language prompting (STALE).

Public API (imported lazily, so ``import stale`` is instant): :func:`load_run`, :func:`train`,
:func:`evaluate`, :func:`splits`, :func:`detect`, :func:`report`, :func:`features_inspect`,
:func:`features_convert`; see :mod:`stale.api` and
docs/api.md.
"""

__version__ = "0.2.0"
_API = ("load_run", "train", "evaluate", "splits", "detect", "report", "features_inspect", "features_convert")
__all__ = [*_API, "__version__"]


def __getattr__(name):
    if name in _API:
        from stale import api

        return getattr(api, name)
    raise AttributeError(f"module 'stale' has no attribute {name!r}")
