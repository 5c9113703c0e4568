"""The training loop: epoch order, optimiser groups, divergence, and exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stale.checkpoint import load_checkpoint
from stale.config import load_run_config
from stale.engine import Batches, TrainConfig, Trainer, _comparable, build_optimizer, epoch_order
from stale.errors import StaleError
from stale.training import run_training


def _cfg(tiny_dataset, tiny_config, *extra):
    return load_run_config(tiny_config, [
        f"data.annotations={tiny_dataset / 'annotations.json'}",
        f"data.features.root={tiny_dataset / 'features'}",
        *extra,
    ])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread for every run of the module (module fixtures included): faster on a
    busy 2-core machine, and bitwise comparisons need the same thread count on both sides."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# dropout > 0 makes the RNG state part of what a resume must restore; a held-out share makes
# the validation losses and best.pt selection part of it too
RESUME_SET = ("model.temporal.dropout=0.1", "model.masking.dropout=0.1", "train.val_fraction=0.25")


def _history(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k != "seconds"} for ln in lines]


def _assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"tensor {k} differs"


# -- pure pieces -------------------------------------------------------------------------------

def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(50, seed=3, epoch=4)
    assert sorted(a.tolist()) == list(range(50))
    assert torch.equal(a, epoch_order(50, seed=3, epoch=4))  # independent of history
    assert not torch.equal(a, epoch_order(50, seed=3, epoch=5))
    assert not torch.equal(a, epoch_order(50, seed=4, epoch=4))


def test_optimizer_gives_text_tower_its_own_lr():
    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(3, 3)
    model.text_encoder = torch.nn.Linear(3, 2)
    model.frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    opt = build_optimizer(model, TrainConfig(lr=1e-3, text_lr=1e-5))
    groups = [(g["lr"], {id(p) for p in g["params"]}) for g in opt.param_groups]
    assert groups == [(1e-3, {id(p) for p in model.backbone.parameters()}),
                      (1e-5, {id(p) for p in model.text_encoder.parameters()})]
    same = build_optimizer(model, TrainConfig(lr=2e-4))
    assert [g["lr"] for g in same.param_groups] == [2e-4, 2e-4]


@pytest.mark.parametrize("kw", [{"epochs": 0}, {"batch_size": 0}, {"val_fraction": 1.0}, {"val_fraction": -0.1}])
def test_train_config_validation(kw):
    with pytest.raises(StaleError):
        TrainConfig(**kw).validate()


def test_comparable_ignores_only_epochs_and_progress():
    a = {"train": {"epochs": 4, "progress": True, "lr": 1e-3}, "model": {"width": 8}}
    assert _comparable(a) == _comparable({"train": {"epochs": 9, "progress": False, "lr": 1e-3},
                                          "model": {"width": 8}})
    assert _comparable(a) != _comparable({**a, "train": {**a["train"], "lr": 2e-3}})
    assert _comparable(a) != _comparable({**a, "model": {"width": 16}})


class _NaNLoss:
    def __call__(self, out, batch):
        total = out["class_logits"].sum() * float("nan")
        return {"total": total}


def test_diverged_loss_is_a_stale_error(tmp_path):
    model = torch.nn.Module()
    model.lin = torch.nn.Linear(4, 3)
    model.forward = lambda x, names, gt_fg=None: {"class_logits": model.lin(x)}
    data = Batches({"features": torch.randn(6, 5, 4)})
    tr = Trainer(model, _NaNLoss(), TrainConfig(epochs=1, batch_size=4, progress=False), ["a", "b"],
                 tmp_path, {"config": {}, "classes": {}}, torch.device("cpu"), log=lambda *_: None)
    with pytest.raises(StaleError, match="diverged.*epoch 1, step 1"):
        tr.fit(data, None)
    assert not (tmp_path / "last.pt").exists()


# -- resume exactness --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    run_training(_cfg(tiny_dataset, tiny_config, "train.epochs=4", *RESUME_SET), out, say=lambda *_: None)
    return out


def test_interrupted_and_resumed_run_is_bitwise_identical(uninterrupted, tiny_dataset, tiny_config,
                                                          tmp_path, monkeypatch):
    cfg = _cfg(tiny_dataset, tiny_config, "train.epochs=4", *RESUME_SET)
    out = tmp_path / "run"
    real_epoch = Trainer.train_epoch

    def interrupted(self, data, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(self, data, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, out, say=lambda *_: None)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # epochs 0 and 1 were completed
    assert len(_history(out)) == 2
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)

    # something else touching the global RNGs between the runs must not matter
    torch.rand(1000)
    run_training(cfg, out, resume=True, say=lambda *_: None)

    a, b = load_checkpoint(uninterrupted / "last.pt"), load_checkpoint(out / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    _assert_same_weights(a["model"], b["model"])
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a["history"]] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in b["history"]]
    assert _history(uninterrupted) == _history(out)
    assert len(_history(out)) == 4 and all("val_total" in r for r in _history(out))
    # the optimiser moments and best.pt agree too
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k]))
    _assert_same_weights(load_checkpoint(uninterrupted / "best.pt")["model"],
                         load_checkpoint(out / "best.pt")["model"])


def test_resume_may_grow_epochs_and_matches_straight_run(uninterrupted, tiny_dataset, tiny_config, tmp_path):
    out = tmp_path / "run"
    run_training(_cfg(tiny_dataset, tiny_config, "train.epochs=2", *RESUME_SET), out, say=lambda *_: None)
    run_training(_cfg(tiny_dataset, tiny_config, "train.epochs=4", "train.progress=true", *RESUME_SET), out,
                 resume=True, say=lambda *_: None)
    _assert_same_weights(load_checkpoint(uninterrupted / "last.pt")["model"],
                         load_checkpoint(out / "last.pt")["model"])
    assert _history(uninterrupted) == _history(out)


def test_resume_with_changed_config_is_refused(uninterrupted, tiny_dataset, tiny_config, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for change in ("train.lr=0.001", "model.temporal.dropout=0.2"):
        cfg = _cfg(tiny_dataset, tiny_config, "train.epochs=6", *RESUME_SET, change)
        with pytest.raises(StaleError, match="different config"):
            run_training(cfg, out, resume=True, say=lambda *_: None)
    # a refused resume leaves every file of the run as it was (config.yaml included)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_losses_fall_and_best_is_the_lowest_validation_loss(uninterrupted):
    hist = _history(uninterrupted)
    assert hist[-1]["train_total"] < hist[0]["train_total"]
    assert all(math.isfinite(v) for r in hist for v in r.values())
    best = load_checkpoint(uninterrupted / "best.pt")
    vals = [r["val_total"] for r in hist]
    assert best["epoch"] == min(range(len(vals)), key=vals.__getitem__)
    assert best["best_val"] == min(vals)
