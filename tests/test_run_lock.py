"""One writer per run folder: real ``lrbench`` processes on one run id. A second ``run`` (new or
``--resume``) or ``report`` fails at once (exit 75, one line naming the holder's pid and host) while the
first holds the lock, and the first's results stay as it writes them; a holder killed with SIGKILL leaves
nothing to clean up. The holder is paused with SIGSTOP while it holds the lock, so nothing here depends on
timing. (The Ray driver's lock: tests/test_ray_executor.py.)"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.results import RunLocked, lock_path, run_lock
from lrbench_process import ROOT, lrbench, start, tiny_matrix


def hold_and_pause(proc, run_dir: Path) -> dict:
    """Wait until ``proc`` holds the run's lock (its note names its pid), then stop it there (SIGSTOP)."""
    lock = lock_path(run_dir)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            note = json.loads(lock.read_text() or "{}")
        except (OSError, ValueError):
            note = {}
        if note.get("pid") == proc.pid:
            proc.send_signal(signal.SIGSTOP)
            return note
        time.sleep(0.02)
    raise AssertionError(f"lrbench (pid {proc.pid}) never held {lock}; exit {proc.poll()}")


def error_line(p) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    return tiny_matrix(tmp_path_factory.mktemp("m"), "tiny-lock")


def test_a_second_run_on_the_same_id_fails_at_once_and_the_first_run_is_intact(matrix, tmp_path):
    """The issue's two shells: --epochs 1 --seeds 1, then --epochs 2 --seeds 0,1 on the same --run-id."""
    res, run = tmp_path / "res", tmp_path / "res" / "runs" / "x"
    first = start(tmp_path / "first.log", "run", "--matrix", matrix, "--seeds", "1", "--run-id", "x",
                  "--results", res, "--no-progress", "--no-report")
    try:
        note = hold_and_pause(first, run)
        assert note["host"] == socket.gethostname() and "--run-id x" in note["command"] and note["since"]
        second = lrbench("run", "--matrix", matrix, "--epochs", 2, "--seeds", "0,1", "--run-id", "x", "--results",
                         res, "--no-progress")
        assert second.returncode == 75, second.stderr
        line = error_line(second)
        assert f"run x is being written by pid {first.pid} on host {socket.gethostname()}" in line
        assert "Pick another --run-id" in line and "--seeds 1 --run-id x" in line
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["seeds"] == [0] and meta["epochs"] == 1
    assert "--seeds 1 --run-id x" in meta["command"]
    summary = pd.read_csv(run / "summary.csv")
    assert len(summary) == 2 and set(summary["seed"]) == {0}
    assert not lock_path(run).exists()  # let go and removed


def test_resume_and_report_wait_for_nobody_and_a_killed_holder_leaves_no_lock(matrix, tmp_path):
    """Two --resume at once (two machines on a shared results folder): the second fails at once, and so does
    a report; the holder then dies by SIGKILL: the kernel drops its lock (its note stays, stale and
    harmless) and the next --resume finishes the run."""
    res, run = tmp_path / "res", tmp_path / "res" / "runs" / "y"
    made = lrbench("run", "--matrix", matrix, "--chunk-size", 1, "--run-id", "y", "--results", res, "--no-progress",
                   "--no-report")
    assert made.returncode == 0, made.stderr
    meta = json.loads((run / "meta.json").read_text())
    meta["status"] = "interrupted"
    (run / "meta.json").write_text(json.dumps(meta))
    for p in (run / "parts").glob("chunk-0001.*"):
        p.unlink()
    kept = (run / "parts" / "chunk-0000.summary.csv").stat().st_mtime_ns

    holder = start(tmp_path / "holder.log", "run", "--resume", "y", "--results", res, "--no-progress")
    killed = False
    try:
        hold_and_pause(holder, run)
        for args in (("run", "--resume", "y", "--results", res), ("report", "y", "--results", res)):
            other = lrbench(*args)
            assert other.returncode == 75, other.stderr
            line = error_line(other)
            assert f"run y is being written by pid {holder.pid} on host {socket.gethostname()}" in line
            assert ("resume again" if args[0] == "run" else "Try again when it has ended") in line
        holder.kill()  # SIGKILL, while stopped: no handler, no clean-up
        killed = True
    finally:
        if not killed:
            holder.send_signal(signal.SIGCONT)
    holder.wait(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    assert json.loads(lock_path(run).read_text())["pid"] == holder.pid  # the dead holder's note is still there

    after = lrbench("run", "--resume", "y", "--results", res, "--no-progress", "--no-report")
    assert after.returncode == 0, after.stderr
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and len(pd.read_csv(run / "summary.csv")) == 2
    assert (run / "parts" / "chunk-0000.summary.csv").stat().st_mtime_ns == kept
    assert not lock_path(run).exists()


def test_the_lock_is_reentrant_in_a_process_and_refuses_another(tmp_path):
    """In one process the lock nests (a writer calling another writer); another process is refused with the
    holder's note; the file goes when the outermost holder lets go."""
    run = tmp_path / "runs" / "z"
    probe = ("import sys; from bench.results import run_lock, RunLocked\n"
             "try:\n    with run_lock(sys.argv[1]): print('got it')\n"
             "except RunLocked as e: print('refused:', e)")
    with run_lock(run, "the holder"):
        with run_lock(run):
            assert json.loads(lock_path(run).read_text())["command"] == "the holder"
        out = subprocess.run([sys.executable, "-c", probe, str(run)], cwd=ROOT, capture_output=True, text=True,
                             timeout=120).stdout
        assert out.startswith(f"refused: run z is being written by pid {os.getpid()} on host ")
        assert "(the holder)" in out
    assert not lock_path(run).exists()
    out = subprocess.run([sys.executable, "-c", probe, str(run)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120).stdout
    assert out == "got it\n"
    with pytest.raises(RunLocked):  # a lock file someone else holds: flock, not the file, decides
        fd = os.open(lock_path(run), os.O_RDWR | os.O_CREAT)
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with run_lock(run):
                pass
        finally:
            os.close(fd)


def test_cross_check_into_a_run_being_written_is_refused(tmp_path):
    """cross-check writes crossframework.csv into the Keras run's folder: it takes that run's lock too."""
    import shutil
    runs = ROOT / "results" / "runs"
    keras = tmp_path / "runs" / "kc-keras"
    shutil.copytree(runs / "kc-keras", keras)
    (keras / "crossframework.csv").unlink()
    with run_lock(keras, "lrbench run --resume kc-keras"):
        p = lrbench("cross-check", runs / "kc-torch", keras)
        assert p.returncode == 75, p.stderr
        assert f"run kc-keras is being written by pid {os.getpid()}" in error_line(p)
        assert not (keras / "crossframework.csv").exists()
    p = lrbench("cross-check", runs / "kc-torch", keras)
    assert p.returncode == 0, p.stderr
    assert (keras / "crossframework.csv").is_file() and not lock_path(keras).exists()
