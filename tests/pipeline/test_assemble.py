"""From a run config to tensors: protocol, train/test sets, hold-out, features and targets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from stale.pipeline.config import load_run_config
from stale.core.errors import StaleError
from stale.pipeline.assemble import (available_videos, feature_store, load_run_annotations, make_dataset,
                                     resolve_protocol, split_holdout, train_filter_policy)

SEEN = ["high jump", "long jump", "pole vault", "shot put"]
UNSEEN = ["hammer throw", "discus throw"]


def train_test_sets(cfg, ann, protocol):
    """The protocol's training videos (as assemble_training selects them, before features and
    hold-out) and test videos (as assemble_test selects them)."""
    train = ann.subset(cfg.data.train_subset).filter_classes(protocol.train_classes, train_filter_policy(cfg))
    test = ann.subset(cfg.data.test_subset).filter_classes(protocol.test_classes, "test")
    return train, test


def _cfg(root, tiny_config, *extra):
    return load_run_config(tiny_config, [f"data.annotations={root / 'annotations.json'}",
                                         f"data.features.root={root / 'features'}", *extra])


def _split_files(tmp_path, seen=SEEN, unseen=UNSEEN):
    (tmp_path / "seen.txt").write_text("# seen classes\n" + "\n".join(seen) + "\n")
    (tmp_path / "unseen.txt").write_text("\n".join(unseen) + "\n")
    return ["protocol.kind=zero_shot", f"protocol.seen_file={tmp_path / 'seen.txt'}",
            f"protocol.unseen_file={tmp_path / 'unseen.txt'}"]


def test_closed_set_protocol_uses_all_classes(tiny_dataset, tiny_config):
    cfg = _cfg(tiny_dataset, tiny_config)
    ann = load_run_annotations(cfg)
    p = resolve_protocol(cfg, ann)
    assert p.kind == "closed_set" and p.train_classes == p.test_classes == ann.classes()
    assert len(p.train_classes) == 6
    train, test = train_test_sets(cfg, ann, p)
    assert {v.subset for v in train} == {"training"} and len(train) == 24
    assert {v.subset for v in test} == {"validation"}


def test_zero_shot_protocol_separates_seen_and_unseen(tiny_dataset, tiny_config, tmp_path):
    cfg = _cfg(tiny_dataset, tiny_config, *_split_files(tmp_path))
    ann = load_run_annotations(cfg)
    p = resolve_protocol(cfg, ann)
    assert (p.kind, p.train_classes, p.test_classes) == ("zero_shot", SEEN, UNSEEN)
    train, test = train_test_sets(cfg, ann, p)
    assert {s.label for v in train for s in v.segments} <= set(SEEN)
    assert {s.label for v in test for s in v.segments} <= set(UNSEEN)
    assert all(v.segments for v in test)
    # independent count: training videos with at least one seen segment
    raw = json.loads((tiny_dataset / "annotations.json").read_text())["database"]
    expect = {k for k, v in raw.items() if v["subset"] == "training"
              and any(a["label"] in SEEN for a in v["annotations"])}
    assert {v.id for v in train} == expect


def test_split_naming_an_unknown_class_fails(tiny_dataset, tiny_config, tmp_path):
    cfg = _cfg(tiny_dataset, tiny_config, *_split_files(tmp_path, SEEN[:-1] + ["shotput"]))
    with pytest.raises(StaleError, match="shotput"):
        resolve_protocol(cfg, load_run_annotations(cfg))


@pytest.mark.parametrize("n,fraction", [(24, 0.25), (10, 0.1), (7, 0.5)])
def test_holdout_is_deterministic_and_disjoint(tiny_dataset, tiny_config, n, fraction):
    videos = list(load_run_annotations(_cfg(tiny_dataset, tiny_config)))[:n]
    fit, val = split_holdout(videos, fraction, seed=3)
    assert len(val) == round(fraction * n) and len(fit) + len(val) == n
    assert not {v.id for v in fit} & {v.id for v in val}
    assert [v.id for v in fit] == [v.id for v in videos if v not in val]  # order kept
    again = split_holdout(videos, fraction, seed=3)
    assert [v.id for v in again[1]] == [v.id for v in val]
    assert [v.id for v in split_holdout(videos, fraction, seed=4)[1]] != [v.id for v in val]


def test_holdout_never_empties_the_training_set(tiny_dataset, tiny_config):
    videos = list(load_run_annotations(_cfg(tiny_dataset, tiny_config)))
    assert split_holdout(videos, 0.0, 0) == (videos, [])
    assert split_holdout(videos[:1], 0.9, 0) == (videos[:1], [])


def test_missing_feature_policy(tiny_dataset, tiny_config, tmp_path, caplog):
    root = tmp_path / "d"
    shutil.copytree(tiny_dataset, root)
    (root / "features" / "vid003.npy").unlink()
    cfg = _cfg(root, tiny_config)
    videos = list(load_run_annotations(cfg).subset("training"))
    with pytest.raises(StaleError, match=r"1 of 24 videos have no feature file.*vid003\.npy"):
        available_videos(videos, feature_store(cfg), "error")
    with caplog.at_level("WARNING"):
        kept = available_videos(videos, feature_store(cfg), "skip")
    assert [v.id for v in kept] == [v.id for v in videos if v.id != "vid003"]
    assert "skipping 1 of 24" in caplog.text


def _stack(ds, idx):
    return ds.collate([ds[i] for i in idx])


def test_features_are_resampled_to_num_snippets(tiny_dataset, tiny_config):
    cfg = _cfg(tiny_dataset, tiny_config, "data.num_snippets=20")
    videos = list(load_run_annotations(cfg))[:5]
    store = feature_store(cfg)
    feats = _stack(make_dataset(videos, store, cfg), range(5)).features
    assert feats.shape == (5, 20, 16) and feats.dtype == torch.float32
    for i, v in enumerate(videos):
        np.testing.assert_array_equal(feats[i].numpy(), store.load_resampled(v.id, 20))
    raw = np.load(tiny_dataset / "features" / f"{videos[0].id}.npy")
    # linear resampling keeps values inside the input's range, per channel
    assert np.all(feats[0].numpy() <= raw.max(0) + 1e-6) and np.all(feats[0].numpy() >= raw.min(0) - 1e-6)


def test_cache_budget_bounds_what_is_kept_in_memory(tiny_dataset, tiny_config):
    cfg = _cfg(tiny_dataset, tiny_config)
    videos = list(load_run_annotations(cfg))[:6]
    one = 32 * 16 * 4  # bytes of one resampled video
    ds = make_dataset(videos, feature_store(cfg), cfg)
    ds.cache_bytes = 3 * one
    first = _stack(ds, range(6)).features
    assert sorted(ds._cache) == [0, 1, 2] and ds._cached_bytes == 3 * one
    # cached or re-read from disk, an item is the same
    assert torch.equal(_stack(ds, range(6)).features, first)
    streamed = make_dataset(videos, feature_store(cfg), cfg, cache=False)
    assert torch.equal(_stack(streamed, range(6)).features, first) and not streamed._cache


def test_nonfinite_features_are_an_error(tiny_dataset, tiny_config, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(tiny_dataset, root)
    x = np.load(root / "features" / "vid001.npy")
    x[4, 2] = np.nan
    np.save(root / "features" / "vid001.npy", x)
    cfg = _cfg(root, tiny_config)
    videos = list(load_run_annotations(cfg))[:3]
    with pytest.raises(StaleError, match=r"vid001\.npy.*non-finite"):
        feature_store(cfg).scan([v.id for v in videos], 16)
    # with nonfinite=zero the values are replaced and counted
    cfg = _cfg(root, tiny_config, "data.features.nonfinite=zero")
    scan = feature_store(cfg).scan([v.id for v in videos], 16)
    assert scan.nonfinite == {"vid001": 1} and scan.report()["nonfinite_values_replaced"] == 1


def test_dataset_batches_shapes_and_targets(tiny_dataset, tiny_config):
    cfg = _cfg(tiny_dataset, tiny_config)
    ann = load_run_annotations(cfg)
    classes = ann.classes()
    videos = list(ann.subset("training"))[:6]
    b = _stack(make_dataset(videos, feature_store(cfg), cfg, classes), range(6))
    T, K = 32, len(classes)
    t = b.targets
    assert len(b) == 6 and b.features.shape == (6, T, 16)
    assert t.snippet_labels.shape == (6, T) and t.snippet_labels.dtype == torch.int64
    assert int(t.snippet_labels.min()) >= 0 and int(t.snippet_labels.max()) <= K
    assert t.instance_masks.shape == (6, T, T) and t.instance_masks.dtype == torch.uint8
    assert torch.equal(t.fg_mask, (t.snippet_labels < K).float())
    assert torch.equal(b.durations, torch.tensor([v.duration for v in videos], dtype=torch.float64))
    assert b.video_ids == [v.id for v in videos]
    # every labelled class occurs: the first video's first segment label is on some snippet
    first = classes.index(videos[0].segments[0].label)
    assert (t.snippet_labels[0] == first).any()
    part = b.slice(4, 6).to(torch.device("cpu"))
    assert part.targets.instance_masks.dtype == torch.float32
    assert torch.equal(part.features, b.features[4:6]) and part.video_ids == b.video_ids[4:6]
    no_targets = _stack(make_dataset(videos, feature_store(cfg), cfg), range(6))
    assert no_targets.targets is None


def test_pseudo_unseen_holdout_lacking_training_classes_assembles(tiny_dataset, tiny_config, tmp_path):
    """Held-out videos need not hold every training class (issue 21: 'unknown class' crash)."""
    from stale.pipeline.assemble import assemble_training

    hit = 0
    for seed in range(12):
        cfg = _cfg(tiny_dataset, tiny_config, *_split_files(tmp_path), "train.select=pseudo_unseen",
                   "train.val_fraction=0.2", f"train.seed={seed}")
        try:
            data = assemble_training(cfg)
        except StaleError as exc:  # only the documented refusal: no pseudo-unseen class held out
            assert "none of the pseudo-unseen classes" in str(exc)
            continue
        held_classes = {s.label for v in data.val_videos for s in v.segments}
        assert held_classes <= set(data.classes)
        assert {s.label for v in data.selection_videos for s in v.segments} <= set(data.selection_classes)
        assert not {v.id for v in data.fit_videos} & {v.id for v in data.val_videos + data.selection_videos}
        hit += len(held_classes) < len(data.classes)
    assert hit > 0, "no seed produced a hold-out lacking a training class: the test checks nothing"
