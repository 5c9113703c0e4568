"""Every shipped config loads and the paper configs carry the paper's values (Sec. 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stale.config import StaleConfig, load_run_config
from stale.configtools import to_dict
from stale.data.splits import load_split
from stale.errors import StaleError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"  # the paper's configs
PACKAGED = REPO / "src" / "stale" / "configs"  # configs shipped inside the package (tiny, demo)
SHIPPED = sorted(CONFIGS.glob("*.yaml")) + sorted(PACKAGED.glob("*.yaml"))
PAPER = sorted(p for p in CONFIGS.glob("*.yaml") if p.name.startswith(("thumos14_", "activitynet_")))


def test_the_paper_grid_is_complete():
    names = {p.stem for p in PAPER}
    assert names == {f"{ds}_{feat}_{proto}" for ds in ("thumos14", "activitynet") for feat in ("clip", "i3d")
                     for proto in ("75_25", "50_50", "closed")}


def test_shipped_configs_are_found():
    assert len(SHIPPED) >= 13 and PACKAGED / "tiny.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_config_loads_and_validates(path):
    cfg = load_run_config(path)
    assert isinstance(cfg, StaleConfig)
    # a loaded config round-trips through its dict form (what checkpoints store)
    assert to_dict(load_run_config(None, [f"{k}={v}" for k, v in _flat(to_dict(cfg))])) == to_dict(cfg)


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        elif isinstance(v, list) or v is None:
            yield f"{prefix}{k}", ("[" + ", ".join(repr(x) for x in v) + "]") if isinstance(v, list) else "null"
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.name)
def test_paper_values(path):
    dataset, feat, proto = path.stem.split("_", 2)
    cfg = load_run_config(path)
    thumos = dataset == "thumos14"
    assert cfg.data.dataset == dataset
    assert cfg.data.annotations == f"builtin:{dataset}"
    assert cfg.data.num_snippets == (256 if thumos else 100)
    assert cfg.train.lr == pytest.approx(1e-5 if thumos else 1e-4)
    assert cfg.train.epochs == 15
    assert cfg.model.masking.num_queries == 20
    assert cfg.text.context_length == 50 and cfg.text.class_position == "middle"
    assert cfg.text.arch == "ViT-B-16"
    dim = 512 if feat == "clip" else 2048
    assert cfg.model.input_dim == dim and cfg.data.features.dim == dim
    # THUMOS14 trains on its validation videos and tests on its test videos
    assert (cfg.data.train_subset, cfg.data.test_subset) == (("validation", "test") if thumos
                                                             else ("training", "validation"))
    if proto == "closed":
        assert cfg.protocol.kind == "closed_set"
    else:
        assert cfg.protocol.kind == "zero_shot"
        assert cfg.protocol.setting == int(proto.split("_")[0]) and cfg.protocol.split == 0
        assert cfg.protocol.seen_file is None
        split = load_split(dataset, cfg.protocol.setting, cfg.protocol.split)  # the split exists
        assert len(split.seen) > len(split.unseen) if proto == "75_25" else len(split.seen) == len(split.unseen)


def test_overrides_change_values_and_unknown_keys_fail():
    path = CONFIGS / "thumos14_clip_75_25.yaml"
    cfg = load_run_config(path, ["protocol.split=7", "train.lr=0.5"])
    assert cfg.protocol.split == 7 and cfg.train.lr == 0.5
    with pytest.raises(StaleError, match="nosuchkey"):
        load_run_config(path, ["train.nosuchkey=1"])
    with pytest.raises(StaleError):
        load_run_config(path, ["protocol.setting=60"])
    with pytest.raises(StaleError):
        load_run_config(CONFIGS / "does_not_exist.yaml")


def test_tiny_config_is_small(tiny_config):
    cfg = load_run_config(tiny_config)
    assert cfg.text.arch == "stale-test" and cfg.model.input_dim == cfg.data.features.dim == 16
    assert cfg.protocol.kind == "closed_set" and cfg.train.progress is False
