"""Paths of the data files packaged with stale (annotations, blocked lists, zero-shot splits).

Resources live in ``stale/data/resources/`` and are installed with the package (regular, not
zipped, installs), so these helpers return ordinary filesystem paths.
"""

from __future__ import annotations

from importlib import resources as _ir
from pathlib import Path

from stale.core.errors import StaleError

BLOCKED_LISTS = {"api": "blocked_api.json", "missing_features": "blocked_missing_features.json"}
ANNOTATIONS = {"thumos14": "thumos14.json", "activitynet": "activity_net.v1-3.json.gz"}


def resource_root() -> Path:
    """Folder holding the packaged data."""
    return Path(str(_ir.files("stale.data") / "resources"))


def resource_path(relative: str) -> Path:
    """Path of one packaged file; StaleError when it is missing (a broken install)."""
    path = resource_root() / relative
    if not path.exists():
        raise StaleError(f"packaged resource missing: {path} (reinstall stale)")
    return path


def annotations_path(dataset: str) -> Path:
    """Packaged annotation file of ``dataset`` (canonical name: 'thumos14' or 'activitynet')."""
    if dataset not in ANNOTATIONS:
        raise StaleError(f"no packaged annotations for {dataset!r} (have: {', '.join(ANNOTATIONS)})")
    return resource_path(ANNOTATIONS[dataset])


def blocked_list_path(name: str) -> Path:
    """Packaged blocked-video list: 'api' (official ActivityNet) or 'missing_features'."""
    if name not in BLOCKED_LISTS:
        raise StaleError(f"unknown blocked list {name!r} (have: {', '.join(BLOCKED_LISTS)})")
    return resource_path(BLOCKED_LISTS[name])


def split_path(setting_dir: str, dataset_dir: str, part: str, index: int) -> Path:
    """Packaged split list, e.g. ``split_path('train_75_test_25', 'THUMOS14', 'test', 0)``."""
    return resource_path(f"splits/{setting_dir}/{dataset_dir}/{part}/split_{index}.list")
