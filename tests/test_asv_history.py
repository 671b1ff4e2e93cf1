"""``make track`` (bench/speed/asv_benchmarks/history.py --track): the machine is named after its CPU, the
tracked commits are main's merges and speed changes since the first history, and a commit with a result file
for the machine is not measured again. Nothing is measured here (asv runs take minutes per commit)."""
import subprocess
import sys
from pathlib import Path

import pytest

from bench.speed.asv_benchmarks import history as H

ROOT = Path(__file__).resolve().parent.parent
INTEL = ("vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n"
         "flags\t\t: fpu sse2 avx avx2 avx512f avx512bw amx_tile\n")
AMD = "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"


def test_machine_name_says_which_cpu():
    assert H.machine_name(INTEL, 2) == "ci-2core-intel-avx512"
    assert H.machine_name(AMD, 2) == "ci-2core-amd-avx2"
    assert H.machine_name(AMD.replace(" avx2", ""), 8) == "ci-8core-amd-avx"
    assert H.machine_name() == H.machine_name(Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists()
                                              else "", None)


def _has(commit: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT).returncode == 0


def test_tracked_commits_are_the_merges_and_speed_changes_since_dec_2_then_mains_line():
    if not _has(H.SINCE_DEC2[0]):
        pytest.skip("a shallow clone: git fetch --unshallow")
    shas = H.tracked()
    assert len(shas) == len(set(shas)) >= len(H.SINCE_DEC2)
    assert [s[:7] for s in shas[:len(H.SINCE_DEC2)]] == list(H.SINCE_DEC2)
    merges = H.git("log", "--merges", "--format=%H", f"{H.SINCE_DEC2[0]}..{H.TRACK_FROM}").split()
    assert merges and set(merges) <= set(shas)  # every merge since the first history
    for sha in shas[len(H.SINCE_DEC2):]:  # after TRACK_FROM: main's merges and code changes only
        parents = H.git("rev-list", "--parents", "-n", "1", sha).split()[1:]
        assert len(parents) > 1 or H.git("diff", "--name-only", parents[0], sha, "--", *H.CODE)


def test_recorded_commits_are_skipped(tmp_path):
    sha = "4fa2f1ea0123456789abcdef0123456789abcdef"
    assert not H.recorded(sha, "m", tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "4fa2f1ea-existing-py_work_main_.venv_bin_python.json").write_text("{}")
    assert H.recorded(sha, "m", tmp_path) and not H.recorded(sha, "other", tmp_path)


def test_dry_run_lists_what_make_track_would_measure():
    if not _has(H.SINCE_DEC2[-1]):
        pytest.skip("a shallow clone: git fetch --unshallow")
    r = subprocess.run([sys.executable, "-m", "bench.speed.asv_benchmarks.history", "--track", "--dry-run",
                        "--machine", "no-such-machine-here"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("to measure c884ac4") and any(" e8efa95 Merge branch 'wip-speed'" in ln for ln in lines)
    n = len(H.tracked())
    assert lines[-1] == f"machine no-such-machine-here: {n} of {n} commits to measure"
