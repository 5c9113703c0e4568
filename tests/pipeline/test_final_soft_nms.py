"""One final Soft-NMS (issue 17): every method reads ``inference.*``; old keys still load.

* a baseline run obeys ``--set inference.<soft-nms key>``: its detections are exactly
  ``decoding.select_detections`` of its candidates under those settings, called here;
* a run folder recorded with the old keys (the baseline's own copies) loads with one logged
  migration line and the detections the old code gave (its own copies, not ``inference``);
* a config setting an old key and its ``inference`` key differently is refused (exit 2, one line);
* experiment cells keep the identity the old code gave them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from stale.core.config import to_dict
from stale.core.errors import StaleError
from stale.model import decoding
from stale.model.decoding import InferenceConfig
from stale.pipeline.config import load_run_config
from stale.pipeline.predict import load_run
from stale.pipeline.train import run_training

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
BASELINES = ("clip_detector", "linear_probe", "two_stage")
#: where the old code kept each baseline's final Soft-NMS, and its defaults there
OLD = {"clip_detector": ("clip_detector", "segments"), "linear_probe": ("linear_probe", "segments"),
       "two_stage": ("two_stage",)}
OLD_DEFAULTS = {"nms_sigma": 0.5, "top_n": 100, "min_score": 0.001}


def _overrides(data: Path, method: str) -> list[str]:
    return [f"data.annotations={data / 'annotations.json'}", f"data.features.root={data / 'features'}",
            "data.features.dim=24", "model.input_dim=24", "train.epochs=1", "two_stage.hidden=16",
            f"method={method}"]


@pytest.fixture(scope="module")
def runs(tiny_clip_dataset, tiny_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for method in BASELINES:
        run_training(load_run_config(tiny_config, _overrides(tiny_clip_dataset, method)), root / method)
    return root


class Spy:
    """Records every ``select_detections`` call a baseline makes: (candidates, durations, T, K, result)."""

    def __init__(self, monkeypatch):
        import stale.baselines.segments as segments
        import stale.baselines.two_stage as two_stage

        self.calls = []
        real = decoding.select_detections

        def spy(cand, durations, T, K, cfg):
            out = real(cand, durations, T, K, cfg)
            self.calls.append((cand, durations, T, K, out))
            return out

        for mod in (segments, two_stage):
            monkeypatch.setattr(mod, "select_detections", spy)


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 32, 24, generator=g), ["high jump", "long jump", "pole vault", "shot put"], \
        torch.tensor([20.0, 31.0, 45.0])


def _same(a: decoding.Detections, b: decoding.Detections) -> None:
    for name in ("start", "end", "label", "score", "valid"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.segments == b.segments).all()


def _check_against_select_detections(spy: Spy, expected: InferenceConfig) -> None:
    """Each detector result is ``decoding.select_detections`` of its candidates under ``expected``."""
    assert spy.calls
    for cand, durations, T, K, out in spy.calls:
        _same(out, decoding.select_detections(cand, durations, T, K, expected))


@pytest.mark.parametrize("method", BASELINES)
def test_a_baseline_obeys_the_one_soft_nms_setting(runs, method, monkeypatch):
    x, names, durations = _inputs()
    spy = Spy(monkeypatch)
    default = load_run(runs / method, CPU).detector(x, names, durations)
    # tiny.yaml sets inference.top_n=20: the baselines read it as STALE does
    _check_against_select_detections(spy, InferenceConfig(top_n=20))
    spy.calls.clear()
    run = load_run(runs / method, CPU, ["inference.nms_sigma=0.05", "inference.top_n=3", "inference.min_score=0.02"])
    got = run.detector(x, names, durations)
    _check_against_select_detections(spy, InferenceConfig(nms_sigma=0.05, top_n=3, min_score=0.02))
    assert int(got.valid.sum(1).max()) <= 3 < int(default.valid.sum(1).max())
    # class-agnostic suppression reaches the baselines too
    spy.calls.clear()
    load_run(runs / method, CPU, ["inference.class_aware_nms=false"]).detector(x, names, durations)
    _check_against_select_detections(spy, InferenceConfig(top_n=20, class_aware_nms=False))


def _make_old(run_dir: Path, method: str, own: dict) -> dict:
    """Rewrite a run folder's recorded config into the old shape: each baseline's final Soft-NMS
    in its own section (``own`` for the run's method, the old defaults for the others)."""
    ckpt_path = run_dir / "best.pt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    cfg = ckpt["config"]
    for m, path in OLD.items():
        node = cfg
        for part in path:
            node = node[part]
        keys = ("top_n",) if m == "two_stage" else tuple(OLD_DEFAULTS)
        node.update({k: (own if m == method else OLD_DEFAULTS)[k] for k in keys})
    torch.save(ckpt, ckpt_path)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


@pytest.mark.parametrize("method", BASELINES)
def test_an_old_run_folder_loads_with_its_old_detections(runs, method, tmp_path, monkeypatch, caplog):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(runs / method, old)
    own = {"nms_sigma": 0.2, "top_n": 4, "min_score": 0.01}
    recorded = _make_old(old, method, own)
    # the old code ignored inference.* for a baseline: make it differ from the run's own copies
    recorded["inference"].update(nms_sigma=0.9, top_n=50, class_aware_nms=False)
    ckpt = torch.load(old / "best.pt", weights_only=False)
    ckpt["config"] = recorded
    torch.save(ckpt, old / "best.pt")
    x, names, durations = _inputs()
    spy = Spy(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="stale"):
        got = load_run(old, CPU).detector(x, names, durations)
    lines = [r.getMessage() for r in caplog.records if "old Soft-NMS keys" in r.getMessage()]
    assert len(lines) == 1 and str(old / "best.pt") in lines[0]
    section = ".".join(OLD[method])
    assert f"{section}.top_n -> inference.top_n" in lines[0]
    # the old code: the baseline's own sigma / top_n / min_score (two_stage: top_n only), class-aware
    want = InferenceConfig(**(own if method != "two_stage" else {"top_n": own["top_n"]}))
    _check_against_select_detections(spy, want)
    spy.calls.clear()
    # identical to the run as recorded today with those settings in inference
    fresh = load_run(runs / method, CPU, [f"inference.{k}={v}" for k, v in to_dict(want).items()
                                          if k in decoding.SOFT_NMS_KEYS]).detector(x, names, durations)
    _same(got, fresh)
    # a --set on top of the old run still wins (and may use the old key of the run's method)
    spy.calls.clear()
    load_run(old, CPU, [f"{section}.top_n=2"]).detector(x, names, durations)
    _check_against_select_detections(spy, InferenceConfig(**{**to_dict(want), "top_n": 2}))


def test_old_keys_in_a_config_file_are_migrated_or_refused(tiny_config, tmp_path, caplog):
    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump({"base": str(tiny_config), "method": "linear_probe",
                                 "linear_probe": {"segments": {"nms_sigma": 0.3, "smooth": 3}},
                                 "clip_detector": {"segments": {"top_n": 7}}}))
    with caplog.at_level(logging.WARNING, logger="stale"):
        cfg = load_run_config(f)
    assert cfg.inference.nms_sigma == 0.3 and cfg.linear_probe.segments.smooth == 3
    assert cfg.inference.top_n == 20   # clip_detector's copy is not this run's: dropped, not moved
    lines = [r.getMessage() for r in caplog.records if "old Soft-NMS keys" in r.getMessage()]
    assert len(lines) == 1 and str(f) in lines[0] and "linear_probe.segments.nms_sigma -> inference.nms_sigma" \
        in lines[0] and "dropped clip_detector.segments.top_n" in lines[0]
    # the old key of another method follows --set method=; it and the base's inference.top_n clash
    with pytest.raises(StaleError, match=r"old.yaml: clip_detector.segments.top_n=7 and inference.top_n=20"):
        load_run_config(f, ["method=clip_detector"])
    # the same value in both places is fine, different values are refused naming both keys and the file
    f.write_text(yaml.safe_dump({"base": str(tiny_config), "method": "two_stage", "two_stage": {"top_n": 20}}))
    assert load_run_config(f).inference.top_n == 20
    f.write_text(yaml.safe_dump({"base": str(tiny_config), "method": "two_stage", "two_stage": {"top_n": 30}}))
    with pytest.raises(StaleError) as err:
        load_run_config(f)
    assert str(f) in str(err.value) and "two_stage.top_n=30" in str(err.value) and "inference.top_n=20" in str(err.value)
    # old keys given with --set: mapped, and a clash with the inference key refused
    assert load_run_config(tiny_config, ["method=clip_detector", "clip_detector.segments.min_score=0.05"]
                           ).inference.min_score == 0.05
    with pytest.raises(StaleError, match=r"--set clip_detector.segments.top_n=5 and --set inference.top_n=6"):
        load_run_config(tiny_config, ["method=clip_detector", "clip_detector.segments.top_n=5", "inference.top_n=6"])


def test_conflicting_keys_are_refused_by_the_cli_in_one_line(tiny_config, tmp_path):
    f = tmp_path / "both.yaml"
    f.write_text(yaml.safe_dump({"base": str(tiny_config), "method": "clip_detector",
                                 "inference": {"nms_sigma": 0.4}, "clip_detector": {"segments": {"nms_sigma": 0.3}}}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "stale", "train", str(f), "--out", str(tmp_path / "run")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("stale train: error:")
    assert str(f) in lines[0] and "clip_detector.segments.nms_sigma=0.3" in lines[0] \
        and "inference.nms_sigma=0.4" in lines[0]
    assert not (tmp_path / "run").exists()


def test_detect_without_a_run_maps_the_old_segment_keys():
    from stale.pipeline.detect_videos import clip_detector_settings

    cfg, nms = clip_detector_settings(["segments.top_n=2", "segments.smooth=9", "inference.nms_sigma=0.3"])
    assert (nms.top_n, nms.nms_sigma, cfg.segments.smooth) == (2, 0.3, 9)
    with pytest.raises(StaleError, match="segments.top_n=2 and inference.top_n=3"):
        clip_detector_settings(["segments.top_n=2", "inference.top_n=3"])
    with pytest.raises(StaleError, match="only the final Soft-NMS"):
        clip_detector_settings(["inference.top_k=3"])


# ----------------------------------------------------------------------------- experiment cells

SPEC = {"name": "nms", "title": "t", "base": "demo", "overrides": ["train.epochs=1", "data.num_snippets=32"],
        "datasets": {"aligned": {"synth": {"preset": "aligned", "max_videos_per_subset": 20}}},
        "settings": {"75/25": ["protocol.setting=75"]}, "splits": [0],
        "variants": {"STALE": [], "clip": ["method=clip_detector"], "probe": ["method=linear_probe"],
                     "bi": ["method=two_stage"], "clip7": ["method=clip_detector", "clip_detector.segments.top_n=7"]}}


def _old_identity(spec, cell) -> str:
    """The cell identity as the old code computed it (its resolved config held every baseline's
    own Soft-NMS copy; an old key given by the spec sat there instead of in inference). The old
    formula is written out here on purpose, not imported from cells.py: it is what is checked."""
    from stale.experiments.cells import RUNTIME_KEYS, base_of, cell_overrides, tiou_of

    overrides = cell_overrides(spec, cell, Path("EXPERIMENT") / "data", [])
    old_keys = {o.split("=")[0]: o.split("=")[1] for o in overrides if o.startswith(("clip_detector.", "two_stage.top_n"))}
    cfg = load_run_config(base_of(spec, cell), [o for o in overrides if o.split("=")[0] not in old_keys])
    tree = to_dict(cfg)
    for path in OLD.values():
        node = tree
        for part in path:
            node = node[part]
        for k in (("top_n",) if path == ("two_stage",) else tuple(OLD_DEFAULTS)):
            given = old_keys.get(".".join(path + (k,)))
            node[k] = type(OLD_DEFAULTS[k])(given) if given is not None else OLD_DEFAULTS[k]
    for section, keys in RUNTIME_KEYS.items():
        for key in keys:
            tree.get(section, {}).pop(key, None)
    # keys the old code did not have yet (windowed mode, prompt anchor, feature bridge), at their defaults
    for key in ("sampling", "time_step", "window_overlap", "window_min_inside", "window_edge_weight",
                "train_windows", "train_windows_per_video"):
        tree["data"].pop(key)
    assert tree["model"]["loss"].pop("w_prompt") == 0.0 and tree["model"].pop("bridge")["kind"] == "none"
    v = spec.variant(cell.variant)
    ds = next(d for d in spec.datasets if d.name == cell.dataset)
    payload = {"cell": cell.__dict__, "config": tree, "reuse": v.reuse, "predict": list(v.predict or []),
               "permute_names": bool(v.permute_names), "tiou": tiou_of(spec, cell, cfg), "synth": ds.synth}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def test_cells_keep_the_identity_the_old_code_gave_them(tmp_path):
    from stale.experiments.cells import cell_identity, cell_state, cells_of
    from stale.experiments.spec import load_spec

    spec = load_spec(SPEC)
    cells = cells_of(spec)
    assert {c.variant for c in cells} == set(SPEC["variants"])
    for cell in cells:
        old = _old_identity(spec, cell)
        assert cell_identity(spec, cell, []) == old, cell.key
        folder = cell.folder(tmp_path)
        folder.mkdir(parents=True)
        (folder / "cell.json").write_text(json.dumps({"cell": cell.__dict__, "status": "done", "config_hash": old}))
        assert cell_state(folder, cell_identity(spec, cell, [])) == "done"
    # a baseline whose detections the change alters (tiny.yaml sets inference.top_n=20, the old
    # clip detector kept 100) does not pass for its old cell
    tiny = load_spec(dict(SPEC, base="tiny", variants={"clip": ["method=clip_detector"], "STALE": []}))
    by_variant = {c.variant: c for c in cells_of(tiny)}
    clip, stale_cell = by_variant["clip"], by_variant["STALE"]
    assert cell_identity(tiny, clip, []) != _old_identity(tiny, clip)
    assert cell_identity(tiny, stale_cell, []) == _old_identity(tiny, stale_cell)
    # and a changed Soft-NMS setting is a changed identity
    assert cell_identity(spec, cells[0], ["inference.nms_sigma=0.3"]) != cell_identity(spec, cells[0], [])
    # a key added later counts as soon as a cell moves it off its default
    for moved in ("data.sampling=window", "data.time_step=1.0", "model.loss.w_prompt=1.0", "model.bridge.kind=ridge"):
        assert cell_identity(spec, cells[0], [moved]) != cell_identity(spec, cells[0], []), moved
    # window training draws: a window cell that tiles is the cell window mode recorded before the
    # key existed (tiling was all it did); today's default, random draws, is another cell; a
    # resize cell ignores both keys
    ident = lambda *o: cell_identity(spec, cells[0], list(o))   # noqa: E731
    win = "data.sampling=window"
    assert ident(win, "data.train_windows=tile") == ident(win, "data.train_windows=tile",
                                                           "data.train_windows_per_video=1")
    assert ident(win) == ident(win, "data.train_windows=random") != ident(win, "data.train_windows=tile")
    assert ident(win, "data.train_windows_per_video=2") != ident(win)
    assert ident("data.train_windows=tile") == ident() == ident("data.train_windows_per_video=3")
    from stale.pipeline.config_migration import identity_tree

    tiled = identity_tree(to_dict(load_run_config("demo", [win, "data.train_windows=tile"])), {})["data"]
    drawn = identity_tree(to_dict(load_run_config("demo", [win])), {})["data"]
    assert "train_windows" not in tiled and "train_windows_per_video" not in tiled
    assert drawn["train_windows"] == "random"
