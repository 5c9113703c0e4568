"""Zero-shot class splits: the 40 standard lists, user-defined lists, seeded random splits.

The standard splits (EffPrompt, Ju et al. 2022; used by STALE) are packaged as
``resources/splits/train_<S>_test_<U>/<THUMOS14|ActivityNet>/<train|test>/split_<i>.list`` with
one class name per line; ``train`` holds the seen classes and ``test`` the unseen ones. They are
fixed files: how they were drawn is not documented, so they are used exactly as shipped.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from stale.core.errors import StaleError

_DATASETS = {"thumos14": "thumos14", "thumos": "thumos14", "th14": "thumos14",
             "activitynet": "activitynet", "anet": "activitynet", "activitynet1.3": "activitynet",
             "activitynet-1.3": "activitynet", "activity_net": "activitynet"}
_DATASET_DIRS = {"thumos14": "THUMOS14", "activitynet": "ActivityNet"}
_SETTINGS = {75: "train_75_test_25", 50: "train_50_test_50"}
NUM_SPLITS = 10


@dataclass(frozen=True)
class ZeroShotSplit:
    """Seen (training) and unseen (testing) class names, in file order, and a name for logs."""

    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    name: str = "custom"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.seen + self.unseen


def canonical_dataset(name: str) -> str:
    """'thumos14' or 'activitynet' for any accepted spelling (case-insensitive)."""
    key = str(name).strip().lower().replace(" ", "")
    if key not in _DATASETS:
        raise StaleError(f"unknown dataset {name!r} (use thumos14 or activitynet)")
    return _DATASETS[key]


def canonical_setting(setting: int | str) -> int:
    """75 or 50 from ``75``, ``"75"``, ``"75/25"``, ``"75_25"`` or ``"train_75_test_25"``."""
    text = str(setting).strip().lower().replace("train_", "").replace("test_", "")
    head = text.replace("/", "_").split("_")[0]
    if head.isdigit() and int(head) in _SETTINGS:
        return int(head)
    raise StaleError(f"unknown zero-shot setting {setting!r} (use 75 for 75/25 or 50 for 50/50)")


def _read_list(path: Path) -> tuple[str, ...]:
    from stale.core.io import read_text

    if not Path(path).is_file():
        raise StaleError(f"split file not found: {path}")
    names = []
    for line in read_text(path, "split file").splitlines():
        name = line.strip()
        if name and not name.startswith("#"):
            names.append(name)
    dup = [n for n in set(names) if names.count(n) > 1]
    if dup:
        raise StaleError(f"{path}: class {sorted(dup)[0]!r} is listed more than once")
    if not names:
        raise StaleError(f"{path}: no class names")
    return tuple(names)


def read_split_files(seen_file: str | Path, unseen_file: str | Path, name: str | None = None) -> ZeroShotSplit:
    """A user-defined split from two files with one class name per line (``#`` starts a comment)."""
    return ZeroShotSplit(_read_list(Path(seen_file)), _read_list(Path(unseen_file)),
                         name or f"{Path(seen_file).name}+{Path(unseen_file).name}")


def load_split(dataset: str, setting: int | str, index: int) -> ZeroShotSplit:
    """One of the 40 standard splits, e.g. ``load_split("thumos14", 75, 0)`` (15 seen / 5 unseen)."""
    from stale.data import resources

    ds = canonical_dataset(dataset)
    st = canonical_setting(setting)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < NUM_SPLITS:
        raise StaleError(f"split index must be an integer in 0..{NUM_SPLITS - 1}, got {index!r}")
    parts = [resources.split_path(_SETTINGS[st], _DATASET_DIRS[ds], p, int(index)) for p in ("train", "test")]
    split = read_split_files(*parts, name=f"{ds}-{st}_{100 - st}-split_{int(index)}")
    return split


def validate_split(split: ZeroShotSplit, classes: Iterable[str]) -> None:
    """Check that seen and unseen are disjoint, name only known classes and cover all of them.

    Raises StaleError naming the first offending class (with a close known name, if any).
    """
    known = list(dict.fromkeys(classes))
    known_set = set(known)
    for part, names in (("seen", split.seen), ("unseen", split.unseen)):
        if not names:
            raise StaleError(f"split {split.name}: no {part} classes")
        for n in names:
            if n not in known_set:
                close = difflib.get_close_matches(n, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise StaleError(f"split {split.name}: {part} class {n!r} is not a known class{hint}")
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise StaleError(f"split {split.name}: {part} class {dup!r} is listed more than once")
    both = [n for n in split.seen if n in set(split.unseen)]
    if both:
        raise StaleError(f"split {split.name}: class {both[0]!r} is both seen and unseen")
    covered = set(split.seen) | set(split.unseen)
    missing = [n for n in known if n not in covered]
    if missing:
        raise StaleError(f"split {split.name}: class {missing[0]!r} is neither seen nor unseen "
                         f"({len(missing)} classes missing)")


def random_split(classes: Sequence[str], unseen_fraction: float, seed: int, name: str | None = None) -> ZeroShotSplit:
    """A seeded random split: ``round(unseen_fraction * K)`` unseen classes (at least 1, at most K-1).

    Each part is sorted alphabetically, so the result depends only on the class set and the seed.
    """
    names = sorted(dict.fromkeys(classes))
    if len(names) != len(list(classes)):
        raise StaleError("random_split: class names must be unique")
    if len(names) < 2:
        raise StaleError(f"random_split: need at least 2 classes, got {len(names)}")
    if not 0.0 < float(unseen_fraction) < 1.0:
        raise StaleError(f"random_split: unseen fraction must be in (0, 1), got {unseen_fraction}")
    k = min(max(int(round(unseen_fraction * len(names))), 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(names))
    unseen = sorted(names[i] for i in order[:k])
    seen = [n for n in names if n not in set(unseen)]
    return ZeroShotSplit(tuple(seen), tuple(unseen), name or f"random-{k}_of_{len(names)}-seed_{seed}")


def write_split(split: ZeroShotSplit, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``train.list`` (seen) and ``test.list`` (unseen) into ``out_dir`` atomically."""
    from stale.core.io import atomic_write_text

    out = Path(out_dir)
    paths = (out / "train.list", out / "test.list")
    for path, names in zip(paths, (split.seen, split.unseen)):
        atomic_write_text(path, "".join(f"{n}\n" for n in names))
    return paths
