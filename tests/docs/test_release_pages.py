"""The "from the released features to Table 1" pages (docs/releases/*.md), executed: files are
generated in each release's exact layout (tests/feature_layouts.py), then every ``stale``
command of the page's bash blocks runs as written -- on a tiny model and one split -- and its
YAML config delta assembles a run that reads the features."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import feature_layouts as layouts

REPO = Path(__file__).resolve().parents[2]
PAGES = {
    "thumos14-i3d-actionformer.md": layouts.thumos14_i3d_actionformer,
    "activitynet-clip-stale.md": layouts.activitynet_clip_stale,
    "activitynet-tsn-bsn.md": layouts.activitynet_tsn_bsn,
}
# CPU-sized model; the feature dims, annotations and protocol stay the page's. The width is the
# stale-test tower's embedding size (24), as the real configs use CLIP's (512): the I3D configs'
# feature bridge feeds the identity-initialised encoder text-space features of that size
TINY = ["text.arch=stale-test", "text.context_length=4", "model.width=24", "model.masking.num_queries=4",
        "model.temporal.num_layers=1", "train.epochs=1", "train.batch_size=2", "train.micro_batch=null",
        "train.val_fraction=0", "data.missing_features=skip"]


def blocks(text: str, lang: str) -> list[str]:
    """Contents of the page's fenced blocks of language ``lang`` ("" = none given)."""
    out, current, open_lang = [], [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if open_lang is None:
                open_lang, current = line[3:].strip(), []
            else:
                if open_lang == lang:
                    out.append("\n".join(current) + "\n")
                open_lang = None
        elif open_lang is not None:
            current.append(line)
    return out


def commands(text: str) -> list[list[str]]:
    """Every ``stale ...`` line of the page's bash blocks (continuations joined), as argv."""
    out = []
    for block in blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("stale "):
                out.append(shlex.split(line)[1:])
    return out


def without_weights(argv: list[str]) -> list[str]:
    """The page's ``--set text.weights=/models/...`` names a checkpoint the tests do not have."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--set" and i + 1 < len(argv) and argv[i + 1].startswith("text.weights="):
            skip = True
            continue
        out.append(a)
    return out


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "STALE_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "stale", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(PAGES))
def test_release_page_runs_as_written(page, tmp_path):
    text = (REPO / "docs" / "releases" / page).read_text()
    release = PAGES[page](tmp_path / "data")
    cmds = commands(text)
    kinds = [c[0] + (" " + c[1] if c[0] == "features" else "") for c in cmds]
    assert "features inspect" in kinds and "train" in kinds and "experiment" in kinds, kinds
    # the YAML delta: written under its FILE name; it assembles a run that checks every feature file
    from stale.pipeline.assemble import assemble_training
    from stale.pipeline.config import load_run_config

    (yaml_block,) = [b for b in blocks(text, "yaml") if b.startswith("# FILE:")]
    name = yaml_block.split("\n", 1)[0].split(":", 1)[1].strip()
    (tmp_path / name).write_text(yaml_block)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        cfg = load_run_config(name, TINY)
        data = assemble_training(cfg)
    finally:
        os.chdir(cwd)
    assert data.report.features["channels"] == next(iter(release["data"].values())).shape[1]
    n_train = sum(v.subset in ("training", "validation") and v.subset == cfg.data.train_subset
                  for v in release["videos"])
    assert len(data.fit_videos) == n_train > 0
    for argv in cmds:
        argv = without_weights(argv)
        if argv[0] == "train":
            argv += [x for t in TINY for x in ("--set", t)]
        elif argv[0] == "experiment":
            argv += [*(x for t in TINY for x in ("--set", t)), "--splits", "0", "--settings", "75/25",
                     "--variants", "STALE", "--jobs", "1"]
        proc = _run(argv, tmp_path)
        assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-3000:])
        if argv[:2] == ["features", "inspect"]:
            # what the page shows for the sample is what the command prints
            shown = [b for b in blocks(text, "") if b.startswith("source:")]
            assert shown and shown[0].splitlines()[0] == proc.stdout.splitlines()[0]
            for line in shown[0].splitlines():
                if line.startswith(("read:", "length T:", "feature rate:", "problems:")):
                    assert line in proc.stdout.splitlines(), (line, proc.stdout)
        if argv[:2] == ["features", "convert"]:
            out = tmp_path / argv[argv.index("--out") + 1]
            for vid, x in release["data"].items():
                np.testing.assert_array_equal(np.load(out / f"v_{vid}.npy"), x)
        if argv[0] == "experiment":
            out = tmp_path / argv[argv.index("--out") + 1]
            assert (out / "results.md").is_file() and "| STALE |" in (out / "results.md").read_text()
        if argv[0] == "train":
            out = tmp_path / argv[argv.index("--out") + 1]
            assert (out / "best.pt").is_file()
