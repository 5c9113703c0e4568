"""DDP on the CPU (gloo): torchrun end to end, and two spawned ranks running the Trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stale.training.checkpoint import load_checkpoint
from stale.training.distributed import DistInfo, all_reduce_mean, barrier, init_distributed, shutdown_distributed
from stale.training.trainer import shard_order
from spawn_util import free_port, run_ranks

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict:
    """The test process's environment for torchrun: offline, one thread per rank, loopback."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


# -- single-process behaviour ------------------------------------------------------------------

def test_single_process_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo() and not info.enabled and info.is_main
    x = torch.tensor([1.5, -2.0])
    assert torch.equal(all_reduce_mean(x, info), x)
    barrier(info)
    shutdown_distributed()  # nothing to shut down: no error


@pytest.mark.parametrize("n,world", [(24, 2), (23, 2), (10, 3), (1, 2), (7, 1)])
def test_shards_are_equal_sized_and_cover_the_epoch(n, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [shard_order(order, r, world) for r in range(world)]
    size = -(-n // world)
    assert all(len(s) == size for s in shards)  # same step count on every rank
    flat = torch.cat(shards)
    assert set(flat.tolist()) == set(range(n))
    assert len(flat) - len(set(flat.tolist())) == size * world - n  # only the padding repeats
    if n % world == 0:
        assert sorted(flat.tolist()) == list(range(n))


# -- two gloo ranks running the Trainer ---------------------------------------------------------

def _rank_main(rank: int, world: int, port: int, data_root: str, config: str, out: str) -> None:
    """One spawned rank: trains the tiny model twice (an even and an odd number of videos)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    from stale.pipeline.config import load_run_config
    from stale.training.trainer import Trainer
    from stale.model.losses import STALELoss
    from stale.pipeline.assemble import build_model, feature_store, load_run_annotations, make_dataset

    class Recording(Trainer):
        def train_epoch(self, data, epoch):
            real_get, taken = data.__class__.__getitem__, []

            def get(ds, i):
                taken.append(int(i))
                return real_get(ds, i)

            data.__class__.__getitem__ = get
            try:
                return super().train_epoch(data, epoch)
            finally:
                data.__class__.__getitem__ = real_get
                self.seen.append(taken)

    info = init_distributed("cpu")
    try:
        root = Path(data_root)
        cfg = load_run_config(config, [f"data.annotations={root / 'annotations.json'}",
                                       f"data.features.root={root / 'features'}",
                                       "model.temporal.dropout=0.1", "train.epochs=2"])
        ann = load_run_annotations(cfg).subset("training")
        videos = list(ann)
        classes = ann.classes()
        result = {}
        for name, vids, bs in (("even", videos, 8), ("odd", videos[:23], 11)):
            # 23 videos in batches of 11: unpadded shards of 12 and 11 would run 2 and 1 steps
            data = make_dataset(vids, feature_store(cfg), cfg, classes)
            torch.manual_seed(1000 + rank)  # different initial weights: DDP must sync them
            model = build_model(cfg)
            cfg.train.batch_size = bs
            tr = Recording(model, STALELoss(cfg.model.loss), cfg.train, classes, Path(out) / name,
                           {"config": {}, "classes": {"train": classes, "test": classes}},
                           torch.device("cpu"), info)
            tr.seen = []
            hist = tr.fit(data, None)
            result[name] = {"state": {k: v.clone() for k, v in tr.module.state_dict().items()},
                            "seen": tr.seen, "ids": [v.id for v in vids], "history": hist}
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        shutdown_distributed()


def test_two_gloo_ranks_stay_identical_and_split_each_epoch(tiny_dataset, tiny_config, tmp_path):
    world = 2
    run_ranks(_rank_main, (world, free_port(), str(tiny_dataset), str(tiny_config), str(tmp_path)), nprocs=world)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]
    for name, n in (("even", 24), ("odd", 23)):
        a, b = ranks[0][name], ranks[1][name]
        assert a["state"].keys() == b["state"].keys()
        for k in a["state"]:
            assert torch.equal(a["state"][k], b["state"][k]), f"{name}: {k} differs between ranks"
        strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
        assert strip(a["history"]) == strip(b["history"])  # all-reduced: every rank logs the same
        assert len(a["seen"]) == len(b["seen"]) == 2
        for epoch, (sa, sb) in enumerate(zip(a["seen"], b["seen"])):
            assert len(sa) == len(sb) == -(-n // world)
            assert set(sa) | set(sb) == set(range(n))
            if n % world == 0:
                assert not set(sa) & set(sb), f"epoch {epoch}: ranks saw the same videos"
            else:
                assert len(set(sa) & set(sb)) == 1  # the single padded video
        assert a["seen"][0] != a["seen"][1]  # a new order every epoch
        # rank 0 wrote the checkpoint and it holds the shared weights
        ck = load_checkpoint(tmp_path / name / "last.pt")
        assert set(ck["model"]) | set(ck["frozen"]["names"]) == set(a["state"])
        for k in ck["model"]:
            assert torch.equal(ck["model"][k], a["state"][k])


# -- torchrun end to end -------------------------------------------------------------------------

def test_torchrun_two_processes_trains(tiny_dataset, tiny_config, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "stale", "train", str(tiny_config),
           "--set", f"data.annotations={tiny_dataset / 'annotations.json'}",
           "--set", f"data.features.root={tiny_dataset / 'features'}",
           "--set", "train.epochs=6", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hist = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in hist] == list(range(1, 7))
    losses = [r["train_total"] for r in hist]
    assert losses[-1] < 0.8 * losses[0], losses
    ck = load_checkpoint(out / "last.pt")
    assert ck["epoch"] == 5 and len(ck["history"]) == 6
    assert (out / "best.pt").is_file() and (out / "config.yaml").is_file()
    assert "epoch 6/6" in proc.stdout + proc.stderr
