"""Run the asv suite over the project's history without building an environment per commit.

    python -m bench.speed.asv_benchmarks.history                   # every commit since lrcore landed, --quick
    python -m bench.speed.asv_benchmarks.history --last 3 --full   # the last 3 commits, asv's full sampling
    python -m bench.speed.asv_benchmarks.history --commits 43ce021 67cc6ba

For each commit: a ``git worktree`` checkout under ``.asv/worktrees/``, then
``asv run --environment existing:<python> --set-commit-hash <sha>`` with ``LRBENCH_ASV_PROJECT`` pointing
at the checkout (``bench/speed/asv_benchmarks/__init__.py`` then imports ``lrcore`` and ``bench`` from it).
The benchmarks are this working tree's; the measured code is the commit's; the interpreter and the
libraries (torch, numba, numpy) are those of ``--python`` (default ``.venv/bin/python``), the same for every
commit. Results land in ``results/asv/<machine>/`` like any ``asv run``'s. Commits that already have a
result file for the machine are skipped unless ``--force``.

This is a faster stand-in for ``asv run <range>`` (which builds and installs each commit in the
virtualenv of ``asv.conf.json``, and cannot build the first two commits, which have no pyproject.toml).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIRST = "0124315"  # "lrcore: canonical schedules, ...": where lrcore landed
MACHINE = "ci-2core-shared"


def git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def commits(since: str) -> list[str]:
    return [git("rev-parse", since)] + git("rev-list", "--reverse", "--first-parent", f"{since}..HEAD").split()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.speed.asv_benchmarks.history", description=__doc__.split("\n\n")[0])
    ap.add_argument("--since", default=FIRST, help="first commit (default: %(default)s, where lrcore landed)")
    ap.add_argument("--last", type=int, default=None, help="only the last N commits of the range")
    ap.add_argument("--commits", nargs="+", help="these commits instead of a range")
    ap.add_argument("--machine", default=MACHINE, help="asv machine name (default %(default)s; see asv machine)")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--full", action="store_true", help="asv's full sampling (default: --quick, one sample)")
    ap.add_argument("--bench", default=None, help="asv --bench regex")
    ap.add_argument("--force", action="store_true", help="re-run commits that already have results")
    args = ap.parse_args(argv)

    shas = [git("rev-parse", c) for c in args.commits] if args.commits else commits(args.since)
    if args.last:
        shas = shas[-args.last:]
    asv = str(Path(args.python).parent / "asv")
    machines = Path(os.environ.get("ASV_MACHINE_FILE", Path.home() / ".asv-machine.json"))
    if not machines.exists() or f'"{args.machine}"' not in machines.read_text():
        subprocess.run([asv, "machine", "--machine", args.machine, "--yes"], cwd=ROOT, check=True)
    results = ROOT / "results" / "asv" / args.machine
    t_all = time.perf_counter()
    failed = []
    for i, sha in enumerate(shas, 1):
        title = git("log", "-1", "--format=%h %s", sha)[:90]
        if not args.force and results.is_dir() and any(results.glob(f"{sha[:8]}-*.json")):
            print(f"[{i}/{len(shas)}] {title}: results exist, skipped", flush=True)
            continue
        wt = ROOT / ".asv" / "worktrees" / sha[:12]
        if not wt.exists():
            git("worktree", "add", "--detach", str(wt), sha)
        cmd = [asv, "run", "--machine", args.machine, "--environment", f"existing:{args.python}",
               "--set-commit-hash", sha, "--show-stderr"]
        if not args.full:
            cmd.append("--quick")
        if args.bench:
            cmd += ["--bench", args.bench]
        print(f"[{i}/{len(shas)}] {title}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, LRBENCH_ASV_PROJECT=str(wt))).returncode
        print(f"    asv exit {rc}, {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(sha[:8])
        git("worktree", "remove", "--force", str(wt))
    print(f"{len(shas)} commits in {time.perf_counter() - t_all:.0f} s" + (f"; asv failed on {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
