"""`stale extract`: real H.264 clips written with PyAV, a tiny open_clip image tower loaded from a
state-dict file + sidecar config, and an independent frame-by-frame recomputation."""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stale.data.annotations import load_annotations
from stale.data.features import FeatureStore
from stale.data.timeline import NativeTimeline
from stale.core.errors import StaleError
from stale.pipeline.extract import ExtractConfig, extract_videos, load_image_encoder
from stale.text.image_tower import preprocess_frames
from stale.pipeline.video_frames import clip_frame_indices, clip_offsets

av = pytest.importorskip("av")

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (240, 240, 20)]   # one per second
TINY_CFG = {"embed_dim": 32, "quick_gelu": False,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
            "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}}


def write_video(path, seconds=3, fps=10, size=(64, 48), noise=True):
    """H.264 clip: second s is filled with COLOURS[s] (plus a fixed texture so frames are not flat)."""
    w, h = size
    rng = np.random.default_rng(0)
    texture = rng.integers(-20, 20, size=(h, w, 3)) if noise else np.zeros((h, w, 3), int)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "10"}
        for i in range(seconds * fps):
            img = np.clip(np.array(COLOURS[i // fps], int) + texture, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from open_clip.model import CLIP

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = CLIP(TINY_CFG["embed_dim"], TINY_CFG["vision_cfg"], TINY_CFG["text_cfg"])
    path = folder / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    (folder / "tiny_clip.json").write_text(json.dumps({"model_cfg": TINY_CFG}))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder / "colours.mp4")
    write_video(folder / "short.mkv", seconds=1, fps=5)    # 5 frames < one 8-frame clip
    return folder


def cfg(**kw):
    base = dict(clip_frames=4, stride=4, batch_size=5, progress=False)
    return ExtractConfig(**{**base, **kw})


def reference_features(path, weights, clip_frames, stride, k):
    """Independent recomputation: decode all frames, torchvision preprocessing, one frame at a time."""
    from torchvision.transforms import v2

    frames = [f.to_ndarray(format="rgb24") for f in av.open(str(path)).decode(video=0)]
    n = len(frames)
    enc = load_image_encoder(weights=str(weights))
    tf = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                     v2.Resize(32, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                     v2.Lambda(lambda x: x.clamp(0, 1)), v2.CenterCrop(32),
                     v2.Normalize([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])])
    t = max(1, (n - clip_frames) // stride + 1)
    out = []
    for i in range(t):
        embs = []
        for j in range(k):
            idx = min(n - 1, i * stride + int((j + 0.5) * clip_frames / k))
            x = tf(torch.from_numpy(frames[idx]).permute(2, 0, 1))[None]
            with torch.no_grad():
                embs.append(F.normalize(enc.tower(x), dim=-1)[0])
        out.append(F.normalize(torch.stack(embs).mean(0), dim=0).numpy())
    return np.stack(out), n


def test_clip_indices_follow_actionformer_convention():
    assert clip_offsets(16, 1).tolist() == [8]
    assert clip_offsets(16, 4).tolist() == [2, 6, 10, 14]
    for n in (1, 15, 16, 17, 31, 32, 100):
        idx = clip_frame_indices(n, 16, 16, 2)
        assert idx.shape == (NativeTimeline(16, 16, 30.0).num_features(n), 2)
        assert idx.shape[0] == max(1, (n - 16) // 16 + 1)
        assert idx.max() <= n - 1 and idx[0, 0] == min(4, n - 1)
    assert clip_frame_indices(40, 8, 4, 1)[:, 0].tolist() == [4 * i + 4 for i in range(9)]


def test_preprocess_matches_torchvision():
    from torchvision.transforms import v2

    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    stripes = torch.zeros(2, 24, 35, 3, dtype=torch.uint8)
    stripes[:, :, (torch.arange(35) // 2) % 2 == 0] = 255         # upscaling overshoots: clamped
    for frames in (torch.randint(0, 256, (3, 48, 70, 3), dtype=torch.uint8), stripes):
        got = preprocess_frames(frames, (32, 32), mean, std)
        x = v2.functional.to_dtype(frames.permute(0, 3, 1, 2), torch.float32, scale=True)
        x = v2.functional.resize(x, 32, interpolation=v2.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)
        want = v2.functional.normalize(v2.functional.center_crop(x, 32), mean, std)
        assert got.shape == (len(frames), 3, 32, 32)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    tall = preprocess_frames(frames.transpose(1, 2), (32, 32), mean, std)   # portrait: width binds
    assert tall.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("k", [1, 2])
def test_features_equal_independent_computation(tmp_path, videos, tiny_weights, k):
    summary = extract_videos([videos / "colours.mp4"], tmp_path, cfg(weights=str(tiny_weights), frames_per_clip=k))
    assert summary.extracted == ["colours"]
    feats = np.load(tmp_path / "colours.npy")
    want, n = reference_features(videos / "colours.mp4", tiny_weights, 4, 4, k)
    assert n == 30 and feats.shape == ((30 - 4) // 4 + 1, 32) == want.shape
    assert feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(feats, want, atol=2e-5)


def test_video_shorter_than_a_clip_uses_its_last_frame(tmp_path, videos, tiny_weights):
    extract_videos([videos / "short.mkv"], tmp_path, cfg(weights=str(tiny_weights), clip_frames=16, stride=16))
    want, n = reference_features(videos / "short.mkv", tiny_weights, 16, 16, 1)
    assert n == 5 and want.shape == (1, 32)
    np.testing.assert_allclose(np.load(tmp_path / "short.npy"), want, atol=2e-5)


def test_outputs_colours_meta_and_annotation_stub(tmp_path, videos, tiny_weights):
    summary = extract_videos([videos], tmp_path, cfg(weights=str(tiny_weights), clip_frames=8, prefix="v_"))
    assert sorted(summary.extracted) == ["colours", "short"]
    store = FeatureStore(tmp_path, prefix="v_", dim=32)
    feats = store.load("colours")
    assert feats.shape == ((30 - 8) // 4 + 1, 32)
    # centre frames 4, 8, 12, ..., 24 -> seconds 0,0,1,1,1,2: same colour ~same feature, else apart
    sec = (np.arange(feats.shape[0]) * 4 + 4) // 10
    sim = feats @ feats.T
    same, diff = sim[sec[:, None] == sec[None, :]], sim[sec[:, None] != sec[None, :]]
    assert same.min() > diff.max()
    assert store.load("short").shape == (1, 32)                  # video shorter than one clip
    meta = json.loads((tmp_path / "extract_meta.json").read_text())
    v = meta["videos"]["colours"]
    assert (v["fps"], v["num_frames"], v["num_features"], v["duration"]) == (10.0, 30, 6, 3.0)
    assert meta["videos"]["short"]["duration"] == 1.0
    assert (meta["clip_frames"], meta["stride"], meta["embed_dim"], meta["random_weights"]) == (8, 4, 32, False)
    tl = NativeTimeline(meta["stride"], meta["clip_frames"], v["fps"])
    assert tl.num_features(v["num_frames"]) == feats.shape[0]
    ann = load_annotations(tmp_path / "videos.json")
    assert {x.id: (x.subset, x.duration, x.segments) for x in ann} == {
        "colours": ("testing", 3.0, []), "short": ("testing", 1.0, [])}


def test_deterministic_resume_and_overwrite(tmp_path, videos, tiny_weights):
    c = cfg(weights=str(tiny_weights))
    extract_videos([videos / "colours.mp4"], tmp_path / "a", c)
    extract_videos([videos / "colours.mp4"], tmp_path / "b", c)
    a = (tmp_path / "a" / "colours.npy").read_bytes()
    assert a == (tmp_path / "b" / "colours.npy").read_bytes()
    target = tmp_path / "a" / "colours.npy"
    np.save(target, np.zeros((7, 32), np.float32))              # marker: resume must not touch it
    again = extract_videos([videos], tmp_path / "a", c)
    assert again.resumed == ["colours"] and again.extracted == ["short"]
    assert not np.load(target).any()
    redo = extract_videos([videos / "colours.mp4"], tmp_path / "a", cfg(weights=str(tiny_weights), overwrite=True))
    assert redo.extracted == ["colours"] and target.read_bytes() == a
    with pytest.raises(StaleError, match="other settings.*stride"):
        extract_videos([videos], tmp_path / "a", cfg(weights=str(tiny_weights), stride=2))


def test_corrupt_video_errors_or_is_counted(tmp_path, videos, tiny_weights):
    bad = tmp_path / "in" / "broken.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(StaleError, match="broken.mp4"):
        extract_videos([bad], tmp_path / "out", cfg(weights=str(tiny_weights)))
    summary = extract_videos([bad, videos / "colours.mp4"], tmp_path / "out",
                             cfg(weights=str(tiny_weights), skip_bad=True))
    assert summary.extracted == ["colours"] and list(summary.bad) == [str(bad)]
    meta = json.loads((tmp_path / "out" / "extract_meta.json").read_text())
    assert list(meta["skipped"]) == [str(bad)] and list(meta["videos"]) == ["colours"]
    assert not (tmp_path / "out" / "broken.npy").exists()


def test_weight_loading_errors(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StaleError, match="downloads are off"):
        load_image_encoder("ViT-B-16", None)
    with pytest.raises(StaleError, match="file not found"):
        load_image_encoder("ViT-B-16", str(tmp_path / "missing.pt"))
    lone = tmp_path / "lone.pt"                                  # no sidecar: shape from arch
    lone.write_bytes(tiny_weights.read_bytes())
    with pytest.raises(StaleError, match="does not match"):
        load_image_encoder("ViT-B-16", str(lone))
    text_only = tmp_path / "text.pt"
    torch.save({k: v for k, v in torch.load(tiny_weights).items() if not k.startswith("visual.")}, text_only)
    (tmp_path / "text.json").write_text(json.dumps({"model_cfg": TINY_CFG}))
    with pytest.raises(StaleError, match="no image tower"):
        load_image_encoder("ViT-B-16", str(text_only))
    with pytest.raises(StaleError, match="frames_per_clip"):
        cfg(frames_per_clip=5).validate()


def test_random_weights_are_seeded_and_flagged():
    a = load_image_encoder("RN50", "random", seed=1)
    b = load_image_encoder("RN50", "random", seed=1)
    assert a.random and "RANDOM" in a.description and a.embed_dim == 1024
    assert all(torch.equal(x, y) for x, y in zip(a.tower.state_dict().values(), b.tower.state_dict().values()))


def test_cli_runs_extraction(tmp_path, videos, tiny_weights, capsys):
    from stale.cli import extract as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([str(videos / "colours.mp4"), "--out", str(tmp_path), "--weights", str(tiny_weights),
                              "--clip-frames", "8", "--stride", "8", "--device", "cpu", "--no-progress"])
    assert cli.run(args) == 0
    assert np.load(tmp_path / "colours.npy").shape == ((30 - 8) // 8 + 1, 32)
    assert "extracted 1" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # through the CLI's entry point, which routes the logged warning to stderr
        from stale.cli import main

        assert main(["extract", str(videos / "short.mkv"), "--out", str(tmp_path / "r"), "--weights", "random",
                     "--arch", "RN50", "--device", "cpu", "--no-progress"]) == 0
    assert "WARNING" in capsys.readouterr().err
    assert np.load(tmp_path / "r" / "short.npy").shape == (1, 1024)
    assert json.loads((tmp_path / "r" / "extract_meta.json").read_text())["random_weights"] is True


def test_progress_counts_encoded_clips_and_ends_with_the_encoding(tmp_path, videos, tiny_weights, monkeypatch):
    """The bar's unit is the clip; it moves only when frames went through the tower, and reaches
    100% only after the last forward pass (it used to count decoded frames)."""
    import tqdm as tqdm_module

    events = []   # (n, total, tower forward passes so far) at every refresh

    class Bar:
        def __init__(self, *a, unit=None, **k):
            self.unit, self.n, self.total = unit, 0, None
            bars.append(self)

        def refresh(self):
            events.append((self.n, self.total, len(calls)))

        def update(self, k=1):
            self.n += k
            self.refresh()

        def close(self):
            pass

    bars, calls = [], []
    monkeypatch.setattr(tqdm_module, "tqdm", Bar)
    enc = load_image_encoder(weights=str(tiny_weights))
    forward = enc.tower.forward
    enc.tower.forward = lambda x: calls.append(len(x)) or forward(x)
    from stale.pipeline.extract import encode_video

    feats, info = encode_video(videos / "colours.mp4", enc, cfg(batch_size=2, progress=True))
    T = feats.shape[0]
    assert bars[0].unit == "clip" and len(calls) >= 3
    ns = [n for n, _, _ in events]
    assert ns == sorted(ns)                                      # never goes back
    assert events[-1] == (T, T, len(calls))                      # 100% after the last pass ...
    assert all(n < total for n, total, _ in events[:-1] if total)  # ... and not before
    assert all(n <= 2 * c for n, _, c in events)                 # no clip counted before encoding
    assert set(info["timing_s"]) == {"decode", "encode"} and min(info["timing_s"].values()) >= 0
