"""The Python API, used exactly as docs/api.md shows (its code block is executed here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import stale

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from stale.synth.generate import SynthDataset, default_embed_fn
    from stale.synth.presets import preset

    root = tmp_path_factory.mktemp("api") / "data"
    SynthDataset(preset("aligned", max_videos_per_subset=40), default_embed_fn()).write(root)
    return root


def test_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, stale; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert set(stale.__all__) >= {"load_run", "train", "evaluate", "splits"}


def test_the_documented_example_runs(bench, tmp_path, monkeypatch, capsys):
    text = DOC.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    video = next(p.stem for p in sorted((bench / "features").glob("video_test_*.npy")))
    code = code.replace('DATA = "stale_demo/data"', f'DATA = "{bench}"')
    code = code.replace('video = "video_test_0000004"', f'video = "{video}"')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(stale.splits("thumos14", 75, 0).unseen)
    # detections: at most 5 lines, labels among the two names asked for, scores in [0, 1]
    dets = [ln for ln in out[1:-1]]
    assert 0 < len(dets) <= 5 and all(ln.split()[0] in ("PoleVault", "HammerThrow") for ln in dets)
    maps, avg = out[-1].rsplit("] ", 1)
    assert len(eval(maps + "]")) == 5 and 0.0 <= float(avg) <= 100.0
    assert (tmp_path / "api_runs" / "stale" / "best.pt").is_file()


def test_the_other_commands_example_runs(bench, tmp_path, monkeypatch, capsys):
    """The second block of docs/api.md: config, splits, synth, text-embed, experiment list."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    code = blocks[1].replace('DATA = "stale_demo/data"', f'DATA = "{bench}"')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "5 True"
    classes = stale.splits("thumos14", 75, 0).classes   # the benchmark's classes are THUMOS14's
    seen, unseen, total = map(int, out[1].split())
    assert (seen + unseen, total) == (len(classes), len(classes)) and unseen == round(0.25 * len(classes))
    lists = [(tmp_path / "api_runs" / "split" / n).read_text().split("\n") for n in ("train.list", "test.list")]
    assert sorted(c for part in lists for c in part if c) == sorted(classes)
    videos, shape = out[2].split(" ", 1)
    assert int(videos) > 0 and shape.startswith("(2, ") and "['long jump', 'high jump']" in shape
    assert (tmp_path / "api_runs" / "synth" / "annotations.json").is_file()
    assert out[3] == "True"


def _cli_actions():
    """``{"command" or "command action": argparse parser}`` of every CLI command."""
    import argparse

    from stale.cli import build_parser

    out = {}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            out.update({f"{name} {action}": p for action, p in nested[0].choices.items()})
        else:
            out[name] = parser
    return out


# options about the terminal or the output of a command, not the operation
TERMINAL = {"help", "quiet", "verbose", "debug", "json_out", "per_class", "serve", "port", "no_progress",
            "profile", "profile_steps", "json"}
# experiment: its positional argument names the action
RENAMED = {("detect", "inputs"): "videos"}   # the API of 0.2 named it so
SKIP = {"experiment": {"spec", "folder"}, "evaluate": {"overwrite"}}   # evaluate --overwrite: of --json-out


def test_every_command_has_an_api_function_with_its_options():
    """Every command (and action) has its function in stale.api, documented with the command,
    taking every option of the command under the same name with the same default."""
    import dataclasses
    import inspect

    from stale import api
    from stale.pipeline.detect_videos import DetectOptions
    from stale.pipeline.stream import StreamOptions

    actions = _cli_actions()
    actions.update({"experiment summarize": None, "experiment list": None})   # words of its SPEC argument
    assert set(actions) == set(api.COMMANDS), set(actions) ^ set(api.COMMANDS)
    for command, parser in actions.items():
        fn = getattr(api, api.COMMANDS[command])
        assert f"stale {command}" in " ".join((fn.__doc__ or "").replace("``", "").split()), command
        if parser is None:
            continue
        params = dict(inspect.signature(fn).parameters)
        if command == "detect":
            params.update({f.name: f for f in dataclasses.fields(DetectOptions)})
        if command == "stream":
            params.update({f.name: f for f in dataclasses.fields(StreamOptions) if f.name not in params})
        skip = SKIP.get(command) or set()
        for a in parser._actions:
            if a.dest in TERMINAL or a.dest in skip:
                continue
            dest = "overrides" if a.dest == "set" else RENAMED.get((command, a.dest), a.dest)
            assert dest in params, f"stale {command}: option {a.dest} has no parameter in stale.{fn.__name__}"
            p = params[dest]
            if isinstance(p, inspect.Parameter):
                default = p.default
            elif p.default is not dataclasses.MISSING:
                default = p.default
            elif p.default_factory is not dataclasses.MISSING:
                default = p.default_factory()
            else:
                default = inspect.Parameter.empty
            if a.required or a.option_strings == [] or default is inspect.Parameter.empty:
                continue
            want = tuple(a.default) if isinstance(a.default, list) else a.default
            want = False if want is None and a.const is True else want   # store_true
            got = tuple(default) if isinstance(default, (list, tuple)) else default
            assert got == want, f"stale {command} --{a.dest}: CLI default {want!r}, API {got!r}"


def test_no_api_name_is_shadowed_by_a_subpackage():
    """``stale.X`` is the API function only while no module ``stale.X`` exists: importing the
    module would replace the attribute (``stale.report`` once was both)."""
    import importlib
    import pkgutil

    import stale.api

    for m in pkgutil.walk_packages(stale.__path__, "stale."):
        importlib.import_module(m.name)
    for name in stale.__all__:
        if name != "__version__":
            assert getattr(stale, name) is getattr(stale.api, name), name


def test_features_inspect_and_convert(tmp_path):
    import numpy as np

    from feature_layouts import arrays, write_h5

    data = arrays(3, 4, seed=7)
    write_h5(tmp_path / "f.h5", data, prefix="v_", channel_first=True)
    rep = stale.features_inspect(tmp_path / "f.h5", prefix="v_", dim=4)
    assert rep["kind"] == "hdf5" and rep["videos_read"] == 3 and rep["channels"] == {"4": 3}
    summary = stale.features_convert(str(tmp_path / "f.h5"), tmp_path / "out", prefix="v_", dim=4)
    assert sorted(summary.written) == sorted(data) and summary.dim == 4
    for vid, x in data.items():
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"v_{vid}.npy"), x)
