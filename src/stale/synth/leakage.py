"""Leakage control: scramble the unseen class names so that text can no longer point to them.

A detector that truly reads class semantics from text must score near zero on unseen classes when
their names are deranged among themselves; a detector that scores well anyway is using information
that does not come from the names (e.g. an external closed-set classifier or label leakage).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stale.core.errors import StaleError


def permute_unseen_names(class_names: Sequence[str], unseen: Sequence[str], seed: int) -> list[str]:
    """Copy of ``class_names`` whose unseen entries are a random derangement of themselves.

    Seen names keep their positions; every unseen name moves to another unseen name's position
    (no fixed points), so class ``k``'s slot carries a wrong name. Deterministic for ``seed``.
    """
    names = list(class_names)
    if len(set(names)) != len(names):
        raise StaleError("class_names contains duplicates; cannot permute unseen names")
    unseen = list(dict.fromkeys(unseen))
    missing = [u for u in unseen if u not in names]
    if missing:
        raise StaleError(f"unseen class(es) {missing} not in the class list")
    n = len(unseen)
    if n < 2:
        raise StaleError(f"a derangement needs at least 2 unseen classes, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1EA4]))
    # rejection sampling: a uniform permutation is a derangement with probability ~1/e
    while True:
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            break
    pos = [names.index(u) for u in unseen]
    out = list(names)
    for i, p in enumerate(pos):
        out[p] = unseen[perm[i]]
    return out
