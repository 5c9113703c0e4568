"""Every shipped config loads and the paper configs carry the paper's values (Sec. 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stale.pipeline.config import StaleConfig, load_run_config
from stale.core.config import to_dict
from stale.data.splits import load_split
from stale.core.errors import StaleError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "src" / "stale" / "configs"  # every config ships inside the package
SHIPPED = sorted(CONFIGS.glob("*.yaml"))
PAPER = sorted(p for p in CONFIGS.glob("*.yaml") if p.name.startswith(("thumos14_", "activitynet_")))


def test_the_paper_grid_is_complete():
    names = {p.stem for p in PAPER}
    assert names == {f"{ds}_{feat}_{proto}" for ds in ("thumos14", "activitynet") for feat in ("clip", "i3d")
                     for proto in ("75_25", "50_50", "closed")}


def test_shipped_configs_are_found():
    assert len(SHIPPED) >= 14 and CONFIGS / "tiny.yaml" in SHIPPED


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


def test_configs_inherit_and_names_resolve(tmp_path):
    from stale.core.config import find_config, list_packaged_configs

    assert "thumos14_i3d_50_50" in list_packaged_configs()
    # a shipped config by name; its base chain (i3d 50/50 -> i3d 75/25 -> clip 75/25 -> paper)
    cfg = load_run_config("thumos14_i3d_50_50")
    assert cfg.protocol.setting == 50 and cfg.model.input_dim == 2048 and cfg.text.context_length == 50
    assert find_config("builtin:demo") == CONFIGS / "demo.yaml"
    # a user delta on a shipped base, and a delta on a delta in the same folder
    (tmp_path / "mine.yaml").write_text("base: thumos14_clip_75_25\ntrain: {epochs: 3}\n")
    (tmp_path / "more.yaml").write_text("base: mine.yaml\ntrain: {lr: 0.002}\nprotocol: {split: 4}\n")
    more = load_run_config(tmp_path / "more.yaml")
    assert (more.train.epochs, more.train.lr, more.protocol.split, more.data.num_snippets) == (3, 0.002, 4, 256)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(StaleError, match="loops"):
        load_run_config(tmp_path / "loop.yaml")


def test_errors_blame_the_file_or_the_set_argument(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: fast}\n")
    with pytest.raises(StaleError, match=r"^.*bad\.yaml: train\.lr: expected a number"):
        load_run_config(bad)
    with pytest.raises(StaleError, match=r"^--set train\.lr=fast: train\.lr: expected a number"):
        load_run_config("tiny", ["train.lr=fast"])
    with pytest.raises(StaleError, match=r"^--set train\.lr=-1"):
        load_run_config("tiny", ["train.lr=-1"])
    # an override may repair a broken file
    assert load_run_config(bad, ["train.lr=0.1"]).train.lr == 0.1
    (tmp_path / "y.yaml").write_text("train: [1\n")
    with pytest.raises(StaleError, match=r"y\.yaml: not valid YAML \(line"):
        load_run_config(tmp_path / "y.yaml")


def test_the_recipes_by_feature_kind_and_the_configs_built_on_them():
    """clip_features = the paper + the alignment term; nonaligned_features = the paper + the ridge
    bridge into the text space + the CLIP recipe's identity start and alignment term; the demo and
    the CLIP dataset configs build on the first, the I3D configs follow the second."""
    paper = load_run_config("paper").model
    clip = load_run_config("clip_features").model
    na = load_run_config("nonaligned_features").model
    assert (paper.loss.w_align, paper.bridge.kind, paper.temporal.identity_init) == (0.0, "none", False)
    assert (clip.loss.w_align, clip.bridge.kind) == (1.0, "none")
    assert (na.loss.w_align, na.bridge.kind, na.temporal.identity_init, na.prior.weight) == (1.0, "ridge", True, 0.0)
    for name in ("demo", "thumos14_clip_75_25", "activitynet_clip_50_50"):
        m = load_run_config(name).model
        assert (m.loss.w_align, m.bridge.kind) == (1.0, "none"), name
    for name in ("thumos14_i3d_75_25", "thumos14_i3d_closed", "activitynet_i3d_50_50"):
        m = load_run_config(name).model
        assert (m.input_dim, m.bridge.kind, m.temporal.identity_init, m.loss.w_align) == (2048, "ridge", True, 1.0), name
