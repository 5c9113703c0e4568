"""Run configs written before the final Soft-NMS had one place (issue 17), read today.

Until then the baselines carried their own copies of the final Soft-NMS settings --
``clip_detector.segments.{nms_sigma,top_n,min_score}``, the same under ``linear_probe.segments``,
and ``two_stage.top_n`` -- while STALE read ``inference.*``. Now every method reads the Soft-NMS
fields of ``inference`` (:data:`stale.model.decoding.SOFT_NMS_KEYS`). Old keys are mapped here,
with one logged line naming them; the old copies of the methods a run does not use had no effect
and are dropped. Two readings:

* a config the user writes (a YAML file, ``--set``, an experiment spec): an old key of the run's
  method becomes its ``inference`` key; the file (or the ``--set`` list) setting both to
  different values is refused, naming both;
* a config an old run recorded (its checkpoint's resolved config, every key spelled out): it
  means what the old code did with it, so the run's detections stay identical -- a baseline's old
  copy wins over the ``inference`` values it ignored, and its Soft-NMS was class-aware with no
  tIoU threshold.

Experiment cells keep their identity (:func:`identity_tree`): the hash is taken over the config
in its old shape, so a finished cell of an old experiment folder is still recognised; a cell
whose detections the change alters (a baseline under a base that sets ``inference.top_n``) gets
a new identity instead of passing for the old one.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

from stale.core.config import from_dict, to_dict
from stale.core.errors import StaleError
from stale.core.logs import get_logger
from stale.model.decoding import SOFT_NMS_KEYS, InferenceConfig
from stale.model.bridge import BridgeConfig

log = get_logger("config")

#: old location of a final Soft-NMS setting -> the ``inference`` key it is now
OLD_KEYS: dict[tuple[str, ...], str] = {
    **{(m, "segments", k): k for m in ("clip_detector", "linear_probe") for k in ("nms_sigma", "top_n", "min_score")},
    ("two_stage", "top_n"): "top_n",
}
#: the final Soft-NMS the old baselines ran where they had no setting of their own
OLD_BASELINE_NMS = {"nms_sigma": 0.5, "top_n": 100, "min_score": 0.001, "class_aware_nms": True,
                    "nms_iou_threshold": 0.0}


def _get(tree: dict, path: Sequence[str]) -> tuple[bool, Any]:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _pop(tree: dict, path: Sequence[str]) -> None:
    node: Any = tree
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def old_keys_in(tree: dict) -> list[tuple[str, ...]]:
    """The old Soft-NMS keys ``tree`` (a nested run-config dict) sets."""
    return [path for path in OLD_KEYS if _get(tree, path)[0]]


def _typed(values: dict) -> dict:
    """Soft-NMS values as the run config types them (``1`` -> ``1.0`` for a float field)."""
    full = to_dict(from_dict(InferenceConfig, values, prefix="inference"))
    return {k: full[k] for k in values}


def old_effective_nms(tree: dict) -> dict:
    """The final Soft-NMS an old-shape config ``tree`` ran with, by the old code's rules: STALE
    its ``inference`` fields, a baseline its own copies (:data:`OLD_KEYS`) and fixed values."""
    method = tree.get("method", "stale")
    if method == "stale":
        given = tree.get("inference") or {}
        return _typed({k: given.get(k, getattr(InferenceConfig(), k)) for k in SOFT_NMS_KEYS})
    out = dict(OLD_BASELINE_NMS)
    for path, key in OLD_KEYS.items():
        found, value = _get(tree, path)
        if found and path[0] == method:
            out[key] = value
    return _typed(out)


def migrate_user_config(tree: dict, where: str, method: str | None = None) -> dict:
    """``tree`` with its old Soft-NMS keys mapped (module doc, first reading); ``where`` names the
    file (or ``--set`` list) in messages, ``method`` the run's method when overrides change it."""
    found = old_keys_in(tree)
    if not found:
        return tree
    method = method or tree.get("method", "stale")
    out = copy.deepcopy(tree)
    inference = out.get("inference") if isinstance(out.get("inference"), dict) else {}
    moved, dropped = [], []
    for path in found:
        old, key = ".".join(path), OLD_KEYS[path]
        value = _get(tree, path)[1]
        _pop(out, path)
        if path[0] != method:
            dropped.append(old)
            continue
        if key in inference and inference[key] != value:
            raise StaleError(f"{where}: {old}={value!r} and inference.{key}={inference[key]!r} both set the final "
                             f"Soft-NMS of {method}; keep only inference.{key} (the one place for every method)")
        inference[key] = value
        moved.append(f"{old} -> inference.{key}")
    if moved:
        out["inference"] = inference
    _log(where, moved, dropped, method)
    return out


def migrate_recorded_config(tree: dict, where: str) -> dict:
    """``tree`` -- the resolved config an old run recorded -- in today's shape, meaning what it
    meant then (module doc, second reading); a config without old keys is returned as it is."""
    found = old_keys_in(tree)
    if not found:
        return tree
    method = tree.get("method", "stale")
    out = copy.deepcopy(tree)
    for path in found:
        _pop(out, path)
    moved = [f"{'.'.join(p)} -> inference.{OLD_KEYS[p]}" for p in found if p[0] == method]
    if method != "stale":
        inference = out.setdefault("inference", {})
        fixed = {k: v for k, v in old_effective_nms(tree).items() if inference.get(k) != v}
        if fixed:
            moved.append(f"inference {', '.join(f'{k}={v!r}' for k, v in fixed.items())} (what {method} ran "
                         f"with; it did not read inference then)")
        inference.update(fixed)
    _log(where, moved, [".".join(p) for p in found if p[0] != method], method)
    return out


def _log(where: str, moved: list[str], dropped: list[str], method: str) -> None:
    parts = []
    if moved:
        parts.append("migrated " + ", ".join(moved))
    if dropped:
        parts.append(f"dropped {', '.join(dropped)} (not read by method {method})")
    log.warning("%s: old Soft-NMS keys (the final Soft-NMS is now inference.* for every method): %s",
                where, "; ".join(parts))


def migrate_overrides(overrides: Sequence[str], method: str) -> Sequence[str]:
    """``key=value`` overrides with old Soft-NMS keys rewritten (``clip_detector.segments.top_n=5``
    -> ``inference.top_n=5`` when the run's ``method`` is ``clip_detector``; dropped for another
    method); an old key and its ``inference`` key set to different values is refused, naming
    both. Keeps the origins of an :class:`~stale.core.config.Overrides` list."""
    from stale.core.config import Overrides, override_label, parse_override

    def path_of(text: str) -> tuple[str, ...]:
        return tuple(str(text).split("=", 1)[0].strip().split("."))

    if not any(path_of(t) in OLD_KEYS for t in overrides):
        return overrides
    origins = getattr(overrides, "origins", {})
    out = Overrides()
    new_keys = {path_of(t)[1]: t for t in overrides if len(path_of(t)) == 2 and path_of(t)[0] == "inference"}
    moved, dropped = [], []
    for text in overrides:
        path = path_of(text)
        if path not in OLD_KEYS:
            out.add([text], origins.get(text, "--set"))
            continue
        if path[0] != method:
            dropped.append(".".join(path))
            continue
        key, value = OLD_KEYS[path], parse_override(text)[1]
        other = new_keys.get(key)
        if other is not None and parse_override(other)[1] != value:
            raise StaleError(f"{override_label(text, overrides)} and {override_label(other, overrides)} both set "
                             f"the final Soft-NMS of {method}; keep only inference.{key} (the one place for every "
                             f"method)")
        new = f"inference.{key}={text.split('=', 1)[1]}"
        out.add([new], origins.get(text, "--set"))
        moved.append(f"{override_label(text, overrides)} -> inference.{key}")
    _log("config overrides", moved, dropped, method)
    return out


def identity_tree(tree: dict, raw: dict) -> dict:
    """The resolved config ``tree`` (``to_dict`` of a run config) in the shape the old code hashed,
    for experiment cell identities: the old Soft-NMS keys back at their old places and
    ``inference`` as the user wrote it (both from ``raw``, the merged config before migration, else
    their defaults). Where the final Soft-NMS a baseline now runs differs from the one it ran then,
    it is added under ``final_nms``, so such a cell never passes for an old one."""
    out = copy.deepcopy(tree)
    given = raw.get("inference") if isinstance(raw.get("inference"), dict) else {}
    out.setdefault("inference", {}).update(
        _typed({k: given.get(k, getattr(InferenceConfig(), k)) for k in SOFT_NMS_KEYS}))
    for path, key in OLD_KEYS.items():
        found, value = _get(raw, path)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _typed({key: value if found else OLD_BASELINE_NMS[key]})[key]
    now = {k: tree["inference"][k] for k in SOFT_NMS_KEYS}
    if tree.get("method", "stale") != "stale" and now != old_effective_nms(raw):
        out["final_nms"] = now
    # window-only training keys mean nothing to a resize run
    if out.get("data", {}).get("sampling", "resize") == "resize":
        for key in ("train_windows", "train_windows_per_video"):
            out["data"].pop(key, None)
    # keys added after cells were recorded count only where a cell moves them off their default
    for path, default in added_keys().items():
        node = out
        for part in path[:-1]:
            node = node.get(part, {})
        if isinstance(node, dict) and path[-1] in node and node[path[-1]] == default:
            node.pop(path[-1])
    return out


def added_keys() -> dict[tuple[str, ...], Any]:
    """Config keys added after experiment cells were recorded, with their defaults: a cell that
    leaves one at its default keeps the identity it had before the key existed (the windowed
    mode's ``data.*``, the prompt anchor ``model.loss.w_prompt``, the feature bridge)."""
    from stale.data.config import DataConfig
    from stale.model.losses import LossConfig

    data = DataConfig.__dataclass_fields__
    keys: dict[tuple[str, ...], Any] = {
        ("data", k): data[k].default for k in ("sampling", "time_step", "window_overlap",
                                               "window_min_inside", "window_edge_weight",
                                               "train_windows_per_video")}
    # what window runs did before the key existed (not today's default, random draws)
    keys[("data", "train_windows")] = "tile"
    keys[("model", "loss", "w_prompt")] = LossConfig.__dataclass_fields__["w_prompt"].default
    keys[("model", "bridge")] = to_dict(BridgeConfig())
    return keys
