"""Feature store: checks with clear errors, NaN policy, resampling, id listing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stale.data.features import FeatureConfig, FeatureStore
from stale.data.timeline import resample_features
from stale.core.errors import StaleError


@pytest.fixture
def store_dir(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v_abc.npy", rng.standard_normal((37, 8)).astype(np.float32))
    np.save(tmp_path / "v_f64.npy", rng.standard_normal((5, 8)))
    np.save(tmp_path / "v_half.npy", rng.standard_normal((5, 8)).astype(np.float16))
    (tmp_path / "notes.txt").write_text("not a feature")
    return tmp_path


def test_load_float32_and_ids(store_dir):
    store = FeatureStore(store_dir, prefix="v_", dim=8)
    x = store.load("abc")
    assert x.dtype == np.float32 and x.shape == (37, 8)
    np.testing.assert_array_equal(x, np.load(store_dir / "v_abc.npy"))
    x[0, 0] = 1e6  # a private copy: the file and the map stay untouched
    assert np.load(store_dir / "v_abc.npy")[0, 0] != 1e6
    for vid in ("f64", "half"):
        y = store.load(vid)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, np.load(store_dir / f"v_{vid}.npy").astype(np.float32))
    assert store.ids() == ["abc", "f64", "half"]
    assert "abc" in store and "zzz" not in store
    assert store.missing(["abc", "zzz"]) == ["zzz"]
    assert FeatureStore(store_dir, mmap=False).load("v_abc").shape == (37, 8)


def test_errors_name_the_file(store_dir):
    store = FeatureStore(store_dir, prefix="v_", dim=16)
    with pytest.raises(StaleError, match=r"zzz.*expected .*v_zzz\.npy"):
        store.load("zzz")
    with pytest.raises(StaleError, match=r"v_abc\.npy: expected 16 channels"):
        store.load("abc")
    np.save(store_dir / "v_int.npy", np.arange(16).reshape(1, 16))
    with pytest.raises(StaleError, match=r"v_int\.npy: expected floating"):
        store.load("int")
    np.save(store_dir / "v_3d.npy", np.zeros((2, 3, 16), np.float32))
    with pytest.raises(StaleError, match=r"v_3d\.npy: expected a \(T, C\)"):
        store.load("3d")
    np.save(store_dir / "v_empty.npy", np.zeros((0, 16), np.float32))
    with pytest.raises(StaleError, match=r"v_empty\.npy.*T > 0"):
        store.load("empty")
    (store_dir / "v_junk.npy").write_bytes(b"garbage bytes")
    with pytest.raises(StaleError, match=r"v_junk\.npy: not a readable"):
        store.load("junk")
    with pytest.raises(StaleError, match="feature folder not found"):
        FeatureStore(store_dir / "nope")
    with pytest.raises(StaleError, match="nonfinite"):
        FeatureStore(store_dir, nonfinite="ignore")


def test_nonfinite_policy(tmp_path):
    x = np.ones((6, 4), np.float32)
    x[2, 1], x[4, 3], x[5, 0] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "bad.npy", x)
    np.save(tmp_path / "huge.npy", np.full((2, 4), 1e300))  # overflows float32
    with pytest.raises(StaleError, match=r"bad\.npy: 3 non-finite values \(first at time step 2\)"):
        FeatureStore(tmp_path).load("bad")
    with pytest.raises(StaleError, match=r"huge\.npy: 8 non-finite"):
        FeatureStore(tmp_path).load("huge")
    store = FeatureStore(tmp_path, nonfinite="zero")
    y = store.load("bad")
    expected = np.where(np.isfinite(x), x, 0)
    np.testing.assert_array_equal(y, expected)
    assert store.nonfinite_counts == {"bad": 3}


def test_load_resampled(store_dir):
    store = FeatureStore.from_config(FeatureConfig(root=str(store_dir), prefix="v_", dim=8))
    raw = np.load(store_dir / "v_abc.npy")
    out = store.load_resampled("abc", 100)
    assert out.shape == (100, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, resample_features(raw, 100), rtol=0, atol=0)
    # independent check against numpy interpolation at interval centres (align_corners=False)
    pos = np.clip((np.arange(100) + 0.5) * 37 / 100 - 0.5, 0, 36)
    ref = np.stack([np.interp(pos, np.arange(37), raw[:, c]) for c in range(8)], axis=1)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # same length is the identity; length 1 input broadcasts
    np.testing.assert_allclose(store.load_resampled("abc", 37), raw, atol=1e-6)
    with pytest.raises(StaleError, match="num_snippets"):
        store.load_resampled("abc", 0)


def test_resample_boundaries():
    """Edge behaviour of the shared resampler (timeline) used by load_resampled."""
    one = np.array([[1.0, -2.0]], np.float32)
    np.testing.assert_array_equal(resample_features(one, 5), np.repeat(one, 5, axis=0))
    ramp = np.arange(4, dtype=np.float32)[:, None]
    up = resample_features(ramp, 8)[:, 0]
    assert up[0] == 0 and up[-1] == 3 and np.all(np.diff(up) >= 0)
    t = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    assert resample_features(t, 3).dtype == torch.float64
    torch.testing.assert_close(resample_features(t, 3), t)
