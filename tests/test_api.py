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
