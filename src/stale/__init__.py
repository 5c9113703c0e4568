"""stale: zero-shot temporal action detection with vision-language prompting (STALE).

Public API (imported lazily, so ``import stale`` is instant): one function per CLI command --
:func:`train`, :func:`load_run`, :func:`predict`, :func:`evaluate`, :func:`detect`,
:func:`extract`, :func:`stream`, :func:`report`, :func:`experiment`, :func:`demo`, :func:`synthesize`,
:func:`splits`, :func:`config`, :func:`features_inspect`, ...; see :mod:`stale.api` and docs/api.md.
"""

from stale.core.version import __version__

__all__ = ["load_run", "evaluate", "splits", "splits_validate", "splits_random", "text_embed", "extract",
           "synthesize", "train", "predict", "detect", "report", "experiment", "summarize_experiment",
           "list_experiments", "demo", "config", "list_configs", "features_inspect", "features_convert", "stream",
           "__version__"]


def __getattr__(name):
    if name in __all__ and name != "__version__":
        from stale import api

        return getattr(api, name)
    raise AttributeError(f"module 'stale' has no attribute {name!r}")
