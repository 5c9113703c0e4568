"""bf16 against float32 where ``precision`` applies: the CLIP image tower (embeddings, ``stale
extract`` features and what it records) and STALE prediction (scores and detections), plus the
fallback of ``auto`` on a (simulated) CPU without bf16 matrix units."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stale.core.precision import ENV_NATIVE_BF16
from stale.pipeline.extract import ExtractConfig, extract_videos
from stale.text.image_tower import load_image_encoder

av = pytest.importorskip("av")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from test_extract import write_video

    return write_video(tmp_path_factory.mktemp("videos") / "colours.mp4", seconds=2, size=(64, 48))


def test_vit_b16_tower_in_bf16_keeps_the_embeddings():
    """The paper's tower shape (ViT-B/16, random weights): bf16 weights and inputs give
    embeddings at cosine >= 0.999 to float32 ones (the issue's acceptance bound)."""
    enc = load_image_encoder("ViT-B-16", "random", seed=0)
    x = torch.randn(3, 3, *enc.image_size, generator=torch.Generator().manual_seed(1))
    want = enc.embed(x)
    assert enc.cast(torch.bfloat16) is enc and enc.dtype == torch.bfloat16
    assert next(enc.tower.parameters()).dtype == torch.bfloat16
    got = enc.embed(x)
    assert got.dtype == torch.float32 and got.shape == want.shape == (3, enc.embed_dim)
    cos = (got * want).sum(-1)
    assert cos.min().item() >= 0.999, cos
    assert not torch.equal(got, want)   # it really ran in bf16


def test_extract_records_and_honours_precision(tmp_path, video, monkeypatch):
    def run(out, precision):
        cfg = ExtractConfig(arch="ViT-B-16", weights="random", clip_frames=8, stride=8, batch_size=8,
                            progress=False, precision=precision)
        with pytest.warns(UserWarning, match="RANDOM"):
            extract_videos([video], tmp_path / out, cfg)
        meta = json.loads((tmp_path / out / "extract_meta.json").read_text())
        return np.load(tmp_path / out / "colours.npy"), meta

    f32, meta32 = run("f32", "float32")
    bf, meta_bf = run("bf16", "bf16")
    assert meta32["precision"]["precision"] == "float32" and meta_bf["precision"]["precision"] == "bf16"
    assert meta_bf["videos"]["colours"]["precision"] == "bf16"
    assert f32.shape == bf.shape == (2, 512)   # 20 frames, clips of 8
    cos = (f32 * bf).sum(-1)
    assert cos.min() >= 0.999 and not np.array_equal(f32, bf)
    # auto on a CPU without bf16 units: float32, the very same bytes, and the reason recorded
    monkeypatch.setenv(ENV_NATIVE_BF16, "0")
    auto, meta_auto = run("auto0", "auto")
    assert meta_auto["precision"] == {"precision": "float32", "requested": "auto",
                                      "reason": f"{ENV_NATIVE_BF16}=0"}
    np.testing.assert_array_equal(auto, f32)
    # ... and with them: bf16
    monkeypatch.setenv(ENV_NATIVE_BF16, "1")
    auto1, meta_auto1 = run("auto1", "auto")
    assert meta_auto1["precision"]["precision"] == "bf16"
    np.testing.assert_array_equal(auto1, bf)


# ----------------------------------------------------------------------------- STALE prediction

def _paper_sized_detector(precision: str):
    from stale.pipeline.assemble import build_model
    from stale.pipeline.config import load_run_config
    from stale.pipeline.detectors import StaleDetector

    cfg = load_run_config("activitynet_clip_75_25", ["text.weights=random", f"inference.precision={precision}",
                                                     "inference.theta_c=0.0"])
    torch.manual_seed(0)
    return StaleDetector(build_model(cfg).eval(), cfg)


def test_stale_prediction_in_bf16_agrees_with_float32(monkeypatch):
    """The paper's model shape: the bf16 twin's class and mask probabilities stay within
    0.02 of float32, and the detections are the same segments with scores within 3%."""
    det = _paper_sized_detector("float32")
    names = [f"class number {i}" for i in range(20)]
    x = F.normalize(torch.randn(4, 100, 512, generator=torch.Generator().manual_seed(2)), dim=-1)
    durations = [60.0, 120.0, 30.0, 200.0]
    model = det.model
    with torch.no_grad():
        ref = model(x, names).float()
    a = det(x, names, durations)
    assert det.precision("cpu").name == "float32" and det._twin is None   # float32 never builds the twin
    det.cfg.inference.precision = "bf16"
    b = det(x, names, durations)
    twin = det._twin[1]
    assert next(twin.temporal.parameters()).dtype == torch.bfloat16
    assert twin.text_encoder is model.text_encoder                        # shared, not copied
    assert next(model.temporal.parameters()).dtype == torch.float32      # the float32 model untouched
    with torch.no_grad():
        text = model.encode_text(names).bfloat16()
        low = twin(x.bfloat16(), names, text=text).float()
    assert (low.class_probs() - ref.class_probs()).abs().max() < 0.02
    assert (low.mask_probs() - ref.mask_probs()).abs().max() < 0.02
    # detections (a random model: near ties, so a Soft-NMS survivor may come or go): nearly the
    # same count per video, the same best score, and the best segments found in both
    assert ((a.valid.sum(1) - b.valid.sum(1)).abs() <= 2).all()
    torch.testing.assert_close(b.score[:, 0], a.score[:, 0], rtol=0.03, atol=1e-3)
    for v in range(len(durations)):
        n = int(min(a.valid[v].sum(), b.valid[v].sum(), 3))
        near = np.abs(a.segments[v, :n, None] - b.segments[v, None]).max(-1) <= 0.02 * durations[v]
        assert near.any(axis=1).all(), (a.segments[v, :n], b.segments[v, :5])
    # a weight change remakes the twin (validation during training sees the new weights)
    with torch.no_grad():
        next(model.temporal.parameters()).add_(0.01)
    det(x, names, durations)
    assert det._twin[1] is not twin
    # auto follows the capability
    det.cfg.inference.precision = "auto"
    monkeypatch.setenv(ENV_NATIVE_BF16, "0")
    assert det.precision("cpu").record()["precision"] == "float32"
    monkeypatch.setenv(ENV_NATIVE_BF16, "1")
    assert det.precision("cpu").record() == {"precision": "bf16", "requested": "auto",
                                             "reason": f"{ENV_NATIVE_BF16}=1"}


def test_the_twin_shares_the_text_tower_with_the_clip_prior(tiny_config):
    """With the CLIP prior on, the prior's tower is the text encoder's: the twin shares it
    (float32, never cast in place) and the bf16 prediction stays close to float32."""
    from stale.pipeline.assemble import build_model
    from stale.pipeline.config import load_run_config
    from stale.pipeline.detectors import StaleDetector

    cfg = load_run_config(tiny_config, ["text.weights=random", "text.arch=stale-test", "text.context_length=4",
                                        "model.prior.weight=0.5", "model.input_dim=24", "data.features.dim=24",
                                        "inference.precision=bf16", "inference.theta_c=0"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert model.prior is not None and model.prior.tower is model.text_encoder.tower
    det = StaleDetector(model, cfg)
    x = torch.randn(2, cfg.data.num_snippets, cfg.model.input_dim, generator=torch.Generator().manual_seed(3))
    names = ["high jump", "long jump", "pole vault"]
    det(x, names, [20.0, 30.0])
    twin = det._twin[1]
    assert twin.prior.tower is model.text_encoder.tower and twin.text_encoder is model.text_encoder
    assert all(p.dtype == torch.float32 for p in model.parameters())          # nothing cast in place
    assert next(twin.temporal.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        ref = model(x, names).float()
        low = twin(x.bfloat16(), names, text=model.encode_text(names).bfloat16()).float()
    assert (low.class_probs() - ref.class_probs()).abs().max() < 0.03
