"""A full disk, a file-size limit, a read-only file system: real ``lrbench`` processes writing to a real small
file system (a tmpfs, mounted when the tests run as root) or under ``RLIMIT_FSIZE`` (any user). Each ends in
one line (exit 74) naming the file, the errno and what is saved, never a traceback, and the command that line
gives continues the run to the same results once there is room."""
import json
import os
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lrbench_process import ROOT, lrbench, tiny_matrix


def failure(p) -> tuple[str, list[str]]:
    """The one error line of a failed command, and the command it says continues (after 'then: lrbench')."""
    assert p.returncode == 74, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1 and lines[0] == p.stderr.rstrip("\n").splitlines()[-1], p.stderr
    then = lines[0].split("then: lrbench ", 1)[1]
    return lines[0], shlex.split(then)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    return tiny_matrix(tmp_path_factory.mktemp("m"), "tiny-disk")


@pytest.fixture(scope="module")
def reference(matrix, tmp_path_factory):
    """The run as it is with room to write (its numbers; it also fills Numba's cache, which a process under
    a file-size limit must not have to write)."""
    res = tmp_path_factory.mktemp("ref")
    p = lrbench("run", "--matrix", matrix, "--chunk-size", 1, "--results", res, "--run-id", "ref", "--no-progress",
                "--no-report")
    assert p.returncode == 0, p.stderr
    return pd.read_csv(res / "runs" / "ref" / "summary.csv")


def same_results(run: Path, reference):
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    pd.testing.assert_frame_equal(pd.read_csv(run / "summary.csv"), reference)


@pytest.fixture
def tmpfs(tmp_path):
    """A tmpfs mounted on a fresh folder (root only); ``mount(options)`` (re)mounts it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE tests cover any user)")
    where = tmp_path / "small"
    where.mkdir()
    state = {"mounted": False}

    def mount(options: str):
        cmd = ["mount", "-o", f"remount,{options}", str(where)] if state["mounted"] else \
              ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        state["mounted"] = True
        return where
    yield mount
    if state["mounted"]:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize("size, stage", [("44k", "training"), ("100k", "report")])
def test_full_disk_one_line_then_its_command_finishes_the_run(tmpfs, matrix, reference, size, stage):
    """The issue's tmpfs (400 KB there, for a larger run): ENOSPC while the chunks are written (44 kB: a part
    or the assembled tables) or at the report (100 kB: training fits); the line says what is saved and which
    command continues, and with room again that command gives the same run as with room all along."""
    mnt = tmpfs(f"size={size}")
    p = lrbench("run", "--matrix", matrix, "--chunk-size", 1, "--results", mnt, "--run-id", "d", "--no-progress")
    line, then = failure(p)
    assert line.startswith(f"Error: {mnt}/runs/d/") and "No space left on device (ENOSPC)" in line, line
    assert "free some space" in line
    if stage == "training":
        assert "chunks saved in" in line and then == ["run", "--resume", "d", "--results", str(mnt)], line
    else:
        assert "Run d is complete" in line and then == ["report", "d", "--results", str(mnt)], line
    tmpfs("size=8m")
    after = lrbench(*then)
    assert after.returncode == 0, after.stderr
    same_results(mnt / "runs" / "d", reference)
    assert (mnt / "runs" / "d" / "report.html").stat().st_size > 10_000
    assert not list(mnt.glob("**/.*.tmp-*")) and not list(mnt.glob("runs/.*.lock"))


def test_read_only_file_system_saves_nothing_and_the_same_command_runs_again(tmpfs, matrix, reference):
    mnt = tmpfs("size=8m,ro")
    args = ["run", "--matrix", str(matrix), "--chunk-size", "1", "--results", str(mnt), "--run-id", "ro",
            "--no-progress", "--no-report"]
    line, then = failure(lrbench(*args))
    assert f"{mnt}/runs: Read-only file system (EROFS)" in line and "Nothing of run ro is saved" in line, line
    assert then == args
    tmpfs("rw")
    assert lrbench(*then).returncode == 0
    same_results(mnt / "runs" / "ro", reference)


def test_file_size_limit_while_training_then_resume(matrix, reference, tmp_path):
    """6,000 bytes: meta.json fits, a chunk's parquet (~11 kB) does not: nothing of the chunks is saved,
    --resume (without the limit) trains them and assembles the run."""
    p = lrbench("run", "--matrix", matrix, "--chunk-size", 1, "--results", tmp_path, "--run-id", "f",
                "--no-progress", fsize=6000)
    line, then = failure(p)
    run = tmp_path / "runs" / "f"
    assert f"{run}/parts/chunk-0000.epochs.parquet: File too large (EFBIG)" in line, line
    assert "Run f has 0 of 2 chunks saved" in line and "raise the file-size limit (ulimit -f)" in line
    assert then == ["run", "--resume", "f", "--results", str(tmp_path)]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "failed" and "File too large" in meta["error"]
    assert not list(run.glob("**/.*.tmp-*"))  # the half-written temporary file is gone
    after = lrbench(*then, "--no-report")
    assert after.returncode == 0, after.stderr
    same_results(run, reference)


def test_file_size_limit_at_the_report_then_lrbench_report(matrix, reference, tmp_path):
    """16 kB: every part and table fits, the report's page and figures do not: the run is complete and
    saved, and ``lrbench report`` writes the report once the limit is gone."""
    p = lrbench("run", "--matrix", matrix, "--chunk-size", 1, "--results", tmp_path, "--run-id", "r",
                "--no-progress", fsize=16384)
    line, then = failure(p)
    run = tmp_path / "runs" / "r"
    assert line.startswith(f"Error: {run}/") and "File too large (EFBIG)" in line, line
    assert f"Run r is complete and saved in {run}" in line and then == ["report", "r", "--results", str(tmp_path)]
    same_results(run, reference)
    assert not (run / "report.html").exists()
    after = lrbench(*then)
    assert after.returncode == 0, after.stderr
    assert (run / "report.html").stat().st_size > 10_000 and (run / "report.md").is_file()


def test_permission_denied_names_the_folder(matrix, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes through folder permissions (the tmpfs tests cover root)")
    root = tmp_path / "res"
    root.mkdir(mode=0o555)
    line, then = failure(lrbench("run", "--matrix", matrix, "--results", root, "--run-id", "p", "--no-report"))
    assert f"{root}/runs: Permission denied (EACCES)" in line and "Nothing of run p is saved" in line, line


def test_other_commands_end_in_one_line_too(tmp_path):
    """A command that writes outside a run (here cross-check's --out, on the committed Keras-classic runs)
    meets the same limit: one line naming the file, exit 74, and the command to run again."""
    runs = ROOT / "results" / "runs"
    out = tmp_path / "cross.csv"
    p = lrbench("cross-check", runs / "kc-torch", runs / "kc-keras", "--out", out, fsize=100)
    line, then = failure(p)
    assert f"{out}: File too large (EFBIG). Its results are not saved" in line, line
    assert then == ["cross-check", str(runs / "kc-torch"), str(runs / "kc-keras"), "--out", str(out)]
    assert not out.exists() and not list(tmp_path.glob(".*.tmp-*"))
    assert lrbench(*then).returncode == 0 and out.stat().st_size > 100
