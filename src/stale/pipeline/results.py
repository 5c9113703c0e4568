"""The one writer of detection results files (``stale predict``, the demo, experiment cells).

Every results file is the ActivityNet results layout plus the same leading fields:
``version`` (of stale), ``results`` (``{video_id: [{"segment": [s, e], "label", "score"}]}``),
``external_data`` (whether an external classifier touched the labels), ``classes`` (the classes
scored); then what the writer adds (``checkpoint``, ``data_report``, ``method``, ``asked_as``,
``control_of``).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from stale.core.io import atomic_write_json
from stale.core.version import __version__

NO_EXTERNAL_DATA = {"used": False}


def results_payload(results: dict[str, list[dict]], classes: Sequence[str], external: dict | None = None,
                    **extra: Any) -> dict:
    """The JSON object of a results file (module docstring)."""
    return {"version": f"stale {__version__}", "results": results,
            "external_data": dict(external or NO_EXTERNAL_DATA), "classes": list(classes), **extra}


def write_results(path: str | os.PathLike, results: dict[str, list[dict]], classes: Sequence[str],
                  external: dict | None = None, **extra: Any) -> dict:
    """Write a results file atomically (compact JSON); returns its payload."""
    payload = results_payload(results, classes, external, **extra)
    atomic_write_json(path, payload, indent=None)
    return payload
