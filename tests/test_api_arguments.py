"""The Python API checks its arguments as the CLI does, before any work: one ArgumentError (a
StaleError) naming the function, the argument and the value -- never a bare TypeError, and never
a string silently split into characters."""

from __future__ import annotations

import numpy as np
import pytest

import stale
from stale.core.arguments import ArgumentError, check_argument
from stale.core.errors import StaleError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("call, needles", [
    (lambda t: stale.config("tiny", overrides="train.epochs=2"), ["stale.config: argument overrides",
                                                                 "a list of str", "wrap one string in a list"]),
    (lambda t: stale.train(None, t / "r"), ["stale.train: argument config", "NoneType None"]),
    (lambda t: stale.experiment("table1", t / "e", jobs="2"), ["argument jobs", "expected int", "str '2'"]),
    (lambda t: stale.experiment("table1", t / "e", ddp_procs=0), ["argument ddp_procs", "in [1, 64]", "got 0"]),
    (lambda t: stale.demo(t / "d", threads=2.5), ["argument threads", "float 2.5"]),
    (lambda t: stale.demo(t / "d", max_videos_per_subset=True), ["argument max_videos_per_subset", "bool True"]),
    (lambda t: stale.splits_random(t / "a.json", t / "s", unseen="0.3"), ["argument unseen", "expected float"]),
    (lambda t: stale.detect([], "a", t / "o"), ["stale.detect: argument videos", "empty list"]),
    (lambda t: stale.detect(["v.mp4"], ["a", 3], t / "o"), ["argument classes", "list"]),
    (lambda t: stale.extract(t / "v.mp4", t / "o", clip_frames=1.0), ["argument clip_frames", "float 1.0"]),
    (lambda t: stale.report(t, outt="x.html"), ["stale.report", "outt"]),
    (lambda t: stale.predict(t, t / "p.json", batch_size="8"), ["argument batch_size", "str '8'"]),
    (lambda t: stale.synthesize(t / "s", preset="aligned", seed=-1), ["argument seed", "must be in [0, 2**63 - 1]"]),
    (lambda t: stale.stream(t / "v.mp4", "a", weights="random", window="30"), ["stale.stream: argument window", "str '30'"]),
    (lambda t: stale.stream(t / "v.mp4", "a", weights="random", realtime=1), ["argument realtime", "int 1"]),
    (lambda t: stale.stream(t / "v.mp4", "a", weights="random", hopp=1.0), ["stale.stream: unknown option 'hopp'", "hop"]),
])
def test_bad_arguments_are_one_error_naming_the_argument(tmp_path, call, needles):
    with pytest.raises(ArgumentError) as info:
        call(tmp_path)
    assert isinstance(info.value, StaleError) and "\n" not in str(info.value)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []   # nothing was written


def test_good_arguments_pass():
    check_argument("f", "overrides", ["a=1", "b=2"], "Sequence[str]")
    check_argument("f", "videos", ("a.mp4", "b.mp4"), "Sequence[str | os.PathLike] | str | os.PathLike")
    check_argument("f", "threads", None, "int | None")
    check_argument("f", "unseen", 1, "float")
    assert stale.config("tiny", overrides=("train.epochs=2",))["train"]["epochs"] == 2


def test_run_detect_refuses_empty_features_and_a_bad_top(tiny_run_for_api):
    run = tiny_run_for_api
    with pytest.raises(StaleError, match=r"shape \(0, 16\).*T >= 1"):
        run.detect(np.zeros((0, 16), np.float32), ["high jump"], duration=5.0)
    with pytest.raises(StaleError, match="top must be"):
        run.detect(np.zeros((4, 16), np.float32), ["high jump"], duration=5.0, top=0)
    with pytest.raises(StaleError, match="duration must be a positive number"):
        run.detect(np.zeros((4, 16), np.float32), ["high jump"], duration="20")


@pytest.fixture(scope="module")
def tiny_run_for_api(one_torch_thread, tmp_path_factory, tiny_dataset, tiny_config):
    out = tmp_path_factory.mktemp("api_args") / "run"
    stale.train(tiny_config, out, overrides=[f"data.annotations={tiny_dataset / 'annotations.json'}",
                                             f"data.features.root={tiny_dataset / 'features'}", "train.epochs=1",
                                             "train.progress=false"])
    return stale.load_run(out, device="cpu")


def test_ranges_checked_further_down_keep_the_cli_messages(tmp_path):
    with pytest.raises(StaleError, match=r"--jobs must be in \[1, 256\], got 0"):
        stale.experiment("table1", tmp_path / "e", jobs=0)
    with pytest.raises(StaleError, match="--clip-frames: must be a positive integer"):
        stale.extract(tmp_path / "v.mp4", tmp_path / "o", clip_frames=0, weights="random")


@pytest.mark.parametrize("options, needles", [
    ({"subtitle_top": "3"}, ["argument subtitle_top", "expected int", "str '3'"]),
    ({"nope": 1}, ["unknown option 'nope'", "subtitle_top"]),
    ({"overrides": "temperature=0.02"}, ["argument overrides", "a list of str", "wrap one string"]),
    ({"device": None}, ["argument device", "NoneType"]),
])
def test_detect_options_are_checked_before_any_work(tmp_path, options, needles):
    with pytest.raises(ArgumentError) as info:
        stale.detect([tmp_path / "v.mp4"], "a", tmp_path / "o", weights="random", **options)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []
