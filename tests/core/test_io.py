import json
import os
import stat

import pytest

from stale.core.io import atomic_save, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_uses_normal_permissions(tmp_path):
    path = tmp_path / "sub" / "out.json"
    atomic_write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    atomic_write_text(path, "new")
    assert path.read_text() == "new"


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_save(path, boom)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "nan.json", {"x": float("nan")})
    assert not (tmp_path / "nan.json").exists()


def test_a_full_disk_names_the_destination_not_the_temporary_file(tmp_path):
    import errno

    target = tmp_path / "out.json"
    target.write_text("old")

    def full(p):
        with open(p, "wb") as fh:
            fh.write(b"{")
        raise OSError(errno.ENOSPC, "No space left on device")   # as a write through a handle

    with pytest.raises(OSError) as info:
        atomic_save(target, full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_names_near_the_file_system_limit_get_a_temporary_name_that_fits(tmp_path):
    long = tmp_path / ("n" * 250)
    atomic_write_text(long, "x")
    assert long.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == [long.name]


def test_stale_temp_cleanup_can_be_limited_to_given_names(tmp_path):
    from stale.core.io import remove_stale_temp_files

    dead = 99_999_999
    ours = tmp_path / f".p.json.{dead}.abcd1234.tmp"
    theirs = tmp_path / f".other.bin.{dead}.abcd1234.tmp"
    live = tmp_path / f".p.json.{os.getpid()}.abcd1234.tmp"
    for p in (ours, theirs, live):
        p.write_text("half")
    assert remove_stale_temp_files(tmp_path, names=["p.json"]) == 1
    assert not ours.exists() and theirs.exists() and live.exists()
    assert remove_stale_temp_files(tmp_path) == 1 and not theirs.exists() and live.exists()


def test_paused_gc_restores_the_collector_even_on_error():
    import gc

    from stale.core.io import paused_gc

    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    try:
        with paused_gc():
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()   # a collector the caller had off stays off
    finally:
        gc.enable()
