"""Fixtures of the command-line tests: a tiny trained run (one epoch, in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bad_inputs import data_args


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tiny_config, tmp_path_factory) -> Path:
    """A finished one-epoch closed-set run of the tiny config on the tiny dataset."""
    import torch

    from stale.cli import main

    out = tmp_path_factory.mktemp("bad_inputs_run") / "run"
    threads = torch.get_num_threads()
    try:
        rc = main(["train", str(tiny_config), *data_args(tiny_dataset), "--set", "train.epochs=1",
                   "--threads", "1", "--out", str(out), "--quiet"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0 and (out / "best.pt").is_file()
    return out
