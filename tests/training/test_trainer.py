"""The training loop: epoch order, optimiser groups, divergence, and exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stale.training.checkpoint import load_checkpoint
from stale.pipeline.config import load_run_config
from stale.training.trainer import TrainConfig, Trainer, _comparable, build_optimizer, epoch_order
from stale.data.dataset import Batch
from stale.core.errors import StaleError
from stale.pipeline.train import run_training


def _cfg(tiny_dataset, tiny_config, *extra):
    return load_run_config(tiny_config, [
        f"data.annotations={tiny_dataset / 'annotations.json'}",
        f"data.features.root={tiny_dataset / 'features'}",
        *extra,
    ])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


@pytest.mark.parametrize("kw", [{"epochs": 0}, {"batch_size": 0}, {"val_fraction": 1.0}, {"val_fraction": -0.1},
                                {"micro_batch": 0}])
def test_train_config_validation(kw):
    with pytest.raises(StaleError):
        TrainConfig(**kw).validate()


def test_comparable_ignores_only_epochs_progress_and_memory_settings():
    a = {"train": {"epochs": 4, "progress": True, "lr": 1e-3}, "model": {"width": 8}}
    assert _comparable(a) == _comparable({"train": {"epochs": 9, "progress": False, "lr": 1e-3},
                                          "model": {"width": 8}})
    # micro-batching and checkpointing change memory, not results: a resume may change them
    # (and a checkpoint written before they existed still resumes)
    b = {"train": {**a["train"], "micro_batch": 4}, "model": {"width": 8},
         "text": {"arch": "x", "grad_checkpointing": False}}
    assert _comparable(b) == _comparable({**b, "train": {**a["train"], "micro_batch": None},
                                          "text": {"arch": "x"}})
    assert _comparable(b) != _comparable({**b, "text": {"arch": "y"}})
    assert _comparable(a) != _comparable({**a, "train": {**a["train"], "lr": 2e-3}})
    assert _comparable(a) != _comparable({**a, "model": {"width": 16}})


class _Out:
    def __init__(self, logits):
        self.class_logits = logits

    def float(self):
        return self


class _NaNLoss:
    def __call__(self, out, targets):
        from stale.model.outputs import LossTerms

        total = out.class_logits.sum() * float("nan")
        return LossTerms(total, total, total, total, total, total, total)


class _FeaturesOnly:
    """A dataset of random features in the VideoFeatureDataset contract (no files)."""

    def __init__(self, n):
        self.x = torch.randn(n, 5, 4)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return i, self.x[i].numpy(), None

    def collate(self, items):
        idx = [i for i, _, _ in items]
        return Batch(torch.tensor(idx), self.x[idx], torch.ones(len(idx), dtype=torch.float64),
                     [str(i) for i in idx])


def test_diverged_loss_is_a_stale_error(tmp_path):
    model = torch.nn.Module()
    model.lin = torch.nn.Linear(4, 3)
    model.encode_text = lambda names: torch.zeros(len(names) + 1, 3)
    model.forward = lambda x, names, gt_fg=None, text=None: _Out(model.lin(x))
    tr = Trainer(model, _NaNLoss(), TrainConfig(epochs=1, batch_size=4, progress=False), ["a", "b"],
                 tmp_path, {"config": {}, "classes": {}}, torch.device("cpu"))
    data = _FeaturesOnly(6)
    with pytest.raises(StaleError, match="diverged.*epoch 1, step 1"):
        tr.fit(data, None)
    assert not (tmp_path / "last.pt").exists()


# -- resume exactness --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    run_training(_cfg(tiny_dataset, tiny_config, "train.epochs=4", *RESUME_SET), out)
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
        run_training(cfg, out)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # epochs 0 and 1 were completed
    assert len(_history(out)) == 2
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)

    # something else touching the global RNGs between the runs must not matter
    torch.rand(1000)
    run_training(cfg, out, resume=True)

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
    run_training(_cfg(tiny_dataset, tiny_config, "train.epochs=2", *RESUME_SET), out)
    run_training(_cfg(tiny_dataset, tiny_config, "train.epochs=4", "train.progress=true", *RESUME_SET), out,
                 resume=True)
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
            run_training(cfg, out, resume=True)
    # a refused resume leaves every file of the run as it was (config.yaml included)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_losses_fall_and_best_is_the_lowest_validation_loss(uninterrupted):
    hist = _history(uninterrupted)
    assert hist[-1]["train_total"] < hist[0]["train_total"]
    assert all(math.isfinite(v) for r in hist for v in r.values())
    best = load_checkpoint(uninterrupted / "best.pt")
    vals = [r["val_total"] for r in hist]
    assert best["epoch"] == min(range(len(vals)), key=vals.__getitem__)
    assert load_checkpoint(uninterrupted / "last.pt")["best_value"] == min(vals)
    # best.pt holds weights and config only; last.pt the full training state
    assert "optimizer" not in best and "rng" not in best and best["record"]["val_total"] == min(vals)
    assert json.loads((uninterrupted / "selection.json").read_text())["epoch"] == best["epoch"] + 1


# -- micro-batching (one text forward/backward per step) ----------------------------------------

MICRO_SET = ("text.finetune=true", "train.batch_size=6", "train.epochs=1")


def _micro_setup(tiny_dataset, tiny_config, n_videos=6):
    from stale.pipeline.assemble import build_model, feature_store, load_run_annotations, make_dataset

    cfg = _cfg(tiny_dataset, tiny_config, *MICRO_SET)
    ann = load_run_annotations(cfg).subset("training")
    videos = list(ann)[:n_videos]
    classes = ann.classes()
    data = make_dataset(videos, feature_store(cfg), cfg, classes)
    torch.manual_seed(0)
    model = build_model(cfg)
    return cfg, model, classes, data


def _trainer(cfg, model, classes, tmp_path, micro, dist=None):
    import dataclasses

    from stale.training.distributed import DistInfo
    from stale.model.losses import STALELoss

    tcfg = dataclasses.replace(cfg.train, micro_batch=micro)
    return Trainer(model, STALELoss(cfg.model.loss), tcfg, classes, tmp_path, {}, torch.device("cpu"),
                   dist or DistInfo())


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_grads_close(got, want, name):
    """float32 sums in another order: tolerance relative to the gradient tensor's scale."""
    scale = float(want.abs().max())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * scale + 1e-9,
                               msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("micro", [2, 4])
def test_micro_batches_give_the_full_batch_gradient_and_update(tiny_dataset, tiny_config, tmp_path,
                                                               micro):
    import copy

    cfg, model, classes, data = _micro_setup(tiny_dataset, tiny_config)
    assert cfg.model.temporal.dropout == cfg.model.masking.dropout == 0.0
    models = {m: copy.deepcopy(model) for m in (None, micro)}
    calls = {m: 0 for m in models}
    for m, net in models.items():
        real = net.text_encoder.forward

        def counted(names, _m=m, _real=real):
            calls[_m] += 1
            return _real(names)

        net.text_encoder.forward = counted
    trainers = {m: _trainer(cfg, net, classes, tmp_path, m) for m, net in models.items()}
    batch = data.collate([data[i] for i in range(6)])
    losses = {m: tr.train_step(batch, "test") for m, tr in trainers.items()}
    assert calls == {None: 1, micro: 1}   # one text forward per step, micro-batched or not
    for k in losses[None]:
        assert losses[micro][k] == pytest.approx(losses[None][k], rel=1e-5, abs=1e-7)
    full, parts = _grads(models[None]), _grads(models[micro])
    assert full.keys() == parts.keys()
    # the text tower (fine-tuned) and the learned context got their gradient through the cache
    assert any(k.startswith("text_encoder.tower.transformer.") for k in full)
    assert full["text_encoder.ctx"].abs().sum() > 0
    for k in full:
        _assert_grads_close(parts[k], full[k], k)
    # and a whole epoch step (clipping + optimiser) lands on the same weights. SGD, because
    # Adam's first step g / (|g| + eps) turns the float noise of mathematically zero gradients
    # (the attention key biases: softmax ignores a per-query constant) into lr-sized moves
    models = {m: copy.deepcopy(model) for m in (None, micro)}
    for m, net in models.items():
        tr = _trainer(cfg, net, classes, tmp_path, m)
        tr.optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        tr.train_epoch(data, 0)
    a, b = models[None].state_dict(), models[micro].state_dict()
    moved = [k for k in a if not torch.equal(a[k], model.state_dict()[k])]
    assert any(k.startswith("text_encoder.tower.") for k in moved)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def _ddp_rank(rank, world, port, data_root, config, out):
    """One gloo rank: a DDP micro-batched step on this rank's 3 videos; saves its gradients."""
    import os
    from pathlib import Path

    from stale.training.distributed import init_distributed, shutdown_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    try:
        cfg, model, classes, data = _micro_setup(Path(data_root), Path(config))
        tr = _trainer(cfg, model, classes, Path(out), 2, info)
        tr.train_step(data.collate([data[i] for i in range(3 * rank, 3 * rank + 3)]), "test")
        torch.save(_grads(tr.module), Path(out) / f"grads{rank}.pt")
    finally:
        shutdown_distributed()


def test_ddp_micro_batches_average_the_full_gradients(tiny_dataset, tiny_config, tmp_path):
    """Two gloo ranks, 3 videos each, micro-batches of 2 (chunks 2 + 1): every rank ends with the
    mean of the two shards' full-batch gradients, text tower included (its backward happens in
    the synchronised pass)."""
    from spawn_util import free_port, run_ranks

    run_ranks(_ddp_rank, (2, free_port(), str(tiny_dataset), str(tiny_config), str(tmp_path)), nprocs=2)
    got = [torch.load(tmp_path / f"grads{r}.pt") for r in range(2)]
    cfg, model, classes, data = _micro_setup(tiny_dataset, tiny_config)
    tr = _trainer(cfg, model, classes, tmp_path, None)
    ref = []
    for rank in range(2):
        tr.train_step(data.collate([data[i] for i in range(3 * rank, 3 * rank + 3)]), "test")
        ref.append(_grads(model))
    assert got[0].keys() == got[1].keys() == ref[0].keys()
    assert any(k.startswith("text_encoder.tower.transformer.") for k in ref[0])
    for k in ref[0]:
        mean = (ref[0][k] + ref[1][k]) / 2
        torch.testing.assert_close(got[0][k], got[1][k], rtol=0, atol=0, msg=lambda m, k=k: f"{k}: {m}")
        _assert_grads_close(got[0][k], mean, k)


def test_cpu_amp_autocasts_the_forward_and_keeps_float32_state(tiny_dataset, tiny_config, tmp_path):
    """``train.cpu_amp`` runs the CPU forward under bf16 autocast (the loss and the update stay
    float32 and close to the float32 step); without it the CPU step never autocasts."""
    import copy
    import dataclasses

    cfg, model, classes, data = _micro_setup(tiny_dataset, tiny_config)
    batch = data.collate([data[i] for i in range(6)])
    losses, grads = {}, {}
    for amp in (False, True):
        net = copy.deepcopy(model)
        tr = _trainer(cfg, net, classes, tmp_path, None)
        tr.cfg = dataclasses.replace(tr.cfg, cpu_amp=amp)
        assert tr._autocast().fast_dtype == torch.bfloat16 and tr._autocast()._enabled == amp
        assert tr.uses_autocast() == amp
        losses[amp] = tr.train_step(batch, "test")
        grads[amp] = _grads(net)
        assert all(p.dtype == torch.float32 for p in net.parameters())
    assert losses[True]["total"] != losses[False]["total"]
    assert losses[True]["total"] == pytest.approx(losses[False]["total"], rel=5e-2)
    g32 = torch.cat([g.flatten() for g in grads[False].values()])
    g16 = torch.cat([grads[True][k].flatten() for k in grads[False]])
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.95


def test_one_loader_per_dataset_serves_every_epoch_in_that_epochs_order(tiny_dataset, tiny_config, tmp_path,
                                                                         monkeypatch):
    """The trainer makes one DataLoader per dataset for the run (so persistent workers persist)
    and each epoch's batches follow that epoch's seeded order."""
    import stale.training.trainer as trainer_module

    cfg, model, classes, data = _micro_setup(tiny_dataset, tiny_config)
    made, seen = [], []
    real = trainer_module.make_loader
    monkeypatch.setattr(trainer_module, "make_loader", lambda *a, **k: made.append(a[0]) or real(*a, **k))
    tr = _trainer(cfg, model, classes, tmp_path, None)
    real_step = tr.train_step
    tr.train_step = lambda batch, where: seen.append(batch.index.tolist()) or real_step(batch, where)
    for epoch in range(3):
        tr.train_epoch(data, epoch)
        tr.evaluate_loss(data)
    assert made == [data]    # one loader (training and evaluation batches are of one size here)
    bs = cfg.train.batch_size
    for epoch in range(3):
        order = trainer_module.epoch_order(len(data), cfg.train.seed, epoch).tolist()
        steps = [seen.pop(0) for _ in range(-(-len(data) // bs))]
        assert sum(steps, []) == order


def test_windows_drawn_per_epoch_reach_the_trainer_with_their_epoch(tiny_dataset, tiny_config, tmp_path):
    """A dataset that draws its items per epoch (``data.train_windows: random``) gets the epoch
    in each index: epoch ``e`` trains on indices ``e * len + slot`` in that epoch's seeded order
    of slots, so its windows are that epoch's draws."""
    import stale.training.trainer as trainer_module
    from stale.pipeline.assemble import build_model, feature_store, load_run_annotations, make_dataset

    cfg = _cfg(tiny_dataset, tiny_config, *MICRO_SET, "data.sampling=window", "data.train_windows=random",
               "data.train_windows_per_video=2")
    videos = list(load_run_annotations(cfg).subset("training"))[:5]
    classes = load_run_annotations(cfg).classes()
    data = make_dataset(videos, feature_store(cfg), cfg, classes, fit=True)
    assert type(data).__name__ == "DrawnWindowDataset" and len(data) == 10
    assert type(make_dataset(videos, feature_store(cfg), cfg, classes)).__name__ == "WindowDataset"
    torch.manual_seed(0)
    tr = _trainer(cfg, build_model(cfg), classes, tmp_path, None)
    seen = []
    real_step = tr.train_step
    tr.train_step = lambda batch, where: seen.append((batch.index.tolist(), batch.video_ids)) or real_step(batch, where)
    for epoch in range(2):
        tr.train_epoch(data, epoch)
    bs = cfg.train.batch_size
    for epoch in range(2):
        order = (trainer_module.epoch_order(10, cfg.train.seed, epoch) + 10 * epoch).tolist()
        steps = [seen.pop(0) for _ in range(-(-10 // bs))]
        assert sum((s[0] for s in steps), []) == order
        ids = sum((s[1] for s in steps), [])
        want = [f"{videos[v].id}@{start}" for v, _, start in (data.window_of(i) for i in order)]
        assert ids == want


@pytest.mark.parametrize("native", ["0", "1"])
def test_cpu_amp_auto_follows_the_cpus_bf16_capability(tiny_dataset, tiny_config, tmp_path, monkeypatch, native):
    """``train.cpu_amp: auto`` (the default) autocasts the CPU forward exactly where the CPU has
    native bf16 matrix units (``STALE_NATIVE_BF16`` stands in for the CPU check here); float32
    otherwise -- the fallback of a machine without them."""
    import dataclasses

    cfg, model, classes, data = _micro_setup(tiny_dataset, tiny_config)
    tr = _trainer(cfg, model, classes, tmp_path, None)
    assert tr.cfg.cpu_amp == "auto"
    monkeypatch.setenv("STALE_NATIVE_BF16", native)
    assert tr.uses_autocast() == (native == "1") and tr._autocast()._enabled == (native == "1")
    tr.cfg = dataclasses.replace(tr.cfg, amp=False)           # amp off wins everywhere
    assert not tr.uses_autocast()
