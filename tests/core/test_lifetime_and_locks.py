"""Workers end with their parent, even when it is killed with SIGKILL; one writer per folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stale.core.errors import StaleError
from stale.core.locks import LOCK_NAME, folder_lock

PARENT = textwrap.dedent("""
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp
    from stale.core.lifetime import die_with_parent

    def work(path):
        with open(path, "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(120)

    if __name__ == "__main__":
        with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futs = [pool.submit(work, sys.argv[1] + str(i)) for i in range(2)]
            time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie (dead, not yet reaped by init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_workers_die_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "pid")])
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not all((tmp_path / f"pid{i}").is_file() for i in range(2)):
            time.sleep(0.2)
        pids = [int((tmp_path / f"pid{i}").read_text() or 0) for i in range(2)]
        assert all(_alive(p) for p in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "orphaned workers still run"
    finally:
        parent.kill()


def test_a_second_writer_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    with folder_lock(tmp_path, "stale extract"):
        with pytest.raises(StaleError, match=rf"another stale extract \(process {os.getpid()}\) is writing"):
            with folder_lock(tmp_path, "stale extract"):
                pass
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from stale.core.locks import folder_lock\n"
                               "with folder_lock(sys.argv[1], 'x'):\n    print('held', flush=True); time.sleep(60)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StaleError, match=f"process {holder.pid}"):
            with folder_lock(tmp_path, "stale extract"):
                pass
        holder.kill()
        holder.wait(10)
        assert (tmp_path / LOCK_NAME).is_file()        # left behind by kill -9 ...
        with folder_lock(tmp_path, "stale extract"):   # ... but released
            assert (tmp_path / LOCK_NAME).read_text() == str(os.getpid())
        assert not (tmp_path / LOCK_NAME).exists()     # a holder that finishes removes it
    finally:
        holder.kill()


def test_a_file_system_without_flock_goes_on_unlocked(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with folder_lock(tmp_path, "stale extract"):
        pass
    assert "cannot lock the folder (No locks available)" in caplog.text


def test_shards_lock_their_own_index_part(tmp_path):
    from stale.core.locks import is_lock_file, lock_name

    with folder_lock(tmp_path, "stale extract", lock_name((0, 2))):
        with folder_lock(tmp_path, "stale extract", lock_name((1, 2))):   # another shard: side by side
            with pytest.raises(StaleError, match="another stale extract"):
                with folder_lock(tmp_path, "stale extract", lock_name((1, 2))):
                    pass
    assert all(is_lock_file(lock_name(s)) for s in (None, (0, 2), (3, 4))) and not is_lock_file(".x.lock")
    assert list(tmp_path.iterdir()) == []


def test_end_without_teardown_skips_the_interpreters_teardown_after_the_exit_hooks(tmp_path):
    """The spawned decoding workers' exit (end_without_teardown): later atexit hooks still run
    and buffered output is flushed, but nothing is torn down (no finaliser of a module global
    runs: where a native library's static destructor aborted now and then) and the status is 0."""
    script = textwrap.dedent("""
        import atexit, sys
        from stale.core.lifetime import end_without_teardown

        class Loud:
            def __del__(self):
                sys.stdout.write("torn down\\n")
                sys.stdout.flush()

        keep = Loud()
        end_without_teardown()
        atexit.register(lambda: sys.stdout.write("later hook\\n"))   # registered later: runs first
        sys.stdout.write("buffered\\n")
        sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout == "buffered\nlater hook\n", proc.stdout + proc.stderr
    assert proc.returncode == 0
    # the same script without the call tears down as usual: the check can fail
    plain = subprocess.run([sys.executable, "-c", script.replace("end_without_teardown()", "")],
                           capture_output=True, text=True, timeout=60)
    assert "torn down" in plain.stdout and plain.returncode == 3
