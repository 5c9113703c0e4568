"""Shared fixtures: a tiny generated detection dataset in the real on-disk formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_CLASSES = ["high jump", "long jump", "pole vault", "shot put", "hammer throw", "discus throw"]


def make_tiny_dataset(root: Path, seed: int = 0, dim: int = 16, n_train: int = 24, n_val: int = 12,
                      classes=TINY_CLASSES) -> Path:
    """Write an ActivityNet-layout annotation file and per-video (T, dim) .npy features.

    Each class has a fixed random prototype; snippets inside a segment carry their class's
    prototype plus noise, the rest carry a background vector plus noise. One feature per 0.5 s.
    """
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(len(classes), dim))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    bg = rng.normal(size=dim)
    bg = 0.5 * bg / np.linalg.norm(bg)
    feat_dir = root / "features"
    feat_dir.mkdir(parents=True, exist_ok=True)
    database = {}
    for i in range(n_train + n_val):
        vid = f"vid{i:03d}"
        duration = float(rng.uniform(20, 40))
        n_feat = int(duration / 0.5)
        centres = (np.arange(n_feat) + 0.5) * 0.5
        x = bg + 0.15 * rng.normal(size=(n_feat, dim))
        anns, t = [], float(rng.uniform(0, 4))
        for _ in range(int(rng.integers(1, 4))):
            length = float(rng.uniform(3, 8))
            if t + length > duration:
                break
            k = int(rng.integers(len(classes)))
            inside = (centres >= t) & (centres < t + length)
            x[inside] = protos[k] + 0.15 * rng.normal(size=(int(inside.sum()), dim))
            anns.append({"segment": [round(t, 3), round(t + length, 3)], "label": classes[k]})
            t += length + float(rng.uniform(2, 6))
        np.save(feat_dir / f"{vid}.npy", x.astype(np.float32))
        database[vid] = {"subset": "training" if i < n_train else "validation",
                         "duration": round(duration, 3), "annotations": anns}
    path = root / "annotations.json"
    path.write_text(json.dumps({"version": "tiny", "taxonomy": [], "database": database}))
    return root


@pytest.fixture(scope="session", autouse=True)
def float32_for_module_fixtures():
    """The same as :func:`float32_unless_asked` for fixtures of module and session scope, which
    are set up before any function-scoped fixture (e.g. a module's CLI runs)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STALE_NATIVE_BF16", "0")
        yield


@pytest.fixture(autouse=True)
def float32_unless_asked(monkeypatch):
    """``precision: auto`` resolves to float32 in every test (as on a CPU without bf16 matrix
    units), so that exact comparisons with float32 recomputations hold on any machine; the
    tests of the bf16 paths ask for bf16 explicitly or set ``STALE_NATIVE_BF16=1``."""
    monkeypatch.setenv("STALE_NATIVE_BF16", "0")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for every test of a module that asks for it (module fixtures
    included): faster on a busy 2-core machine, and bitwise comparisons need the same thread
    count on both sides."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_clip_dataset(tmp_path_factory) -> Path:
    """The tiny dataset with 24-d features, the embedding size of the ``stale-test`` CLIP tower, so
    the detectors comparing features with text embeddings (clip_detector, two_stage) run on it."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny24"), dim=24, n_train=12, n_val=6)


@pytest.fixture(scope="session")
def tiny_config() -> Path:
    return REPO / "src" / "stale" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def browser():
    """A headless chromium (selenium); the test is skipped when none is installed."""
    pytest.importorskip("selenium")
    from browser_util import find_browser, start_browser, stop_browser

    if find_browser() is None:
        pytest.skip("no chromium + chromedriver installed (apt-get install chromium chromium-driver)")
    drv = start_browser()
    yield drv
    stop_browser(drv)


@pytest.fixture(scope="session")
def tiny_dataset_factory():
    """:func:`make_tiny_dataset` itself, for tests that need another size or width (``from
    conftest import`` is ambiguous once sub-folders have their own conftest.py)."""
    return make_tiny_dataset
