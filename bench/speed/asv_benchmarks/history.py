"""Run the asv suite over the project's history without building an environment per commit.

    python -m bench.speed.asv_benchmarks.history --track           # what `make track` runs: see TRACKED
    python -m bench.speed.asv_benchmarks.history --track --dry-run # the commits it would measure, and why
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

``--track`` names the machine after its CPU (:func:`machine_name`: machines of one kind differ up to 3x)
and measures the tracked commits (:func:`tracked`) that have no result for it yet. Every run ends by
rewriting the machine's digest, ``timeline.csv`` and ``timeline.png`` (:mod:`bench.speed.timeline`).

This is a faster stand-in for ``asv run <range>`` (which builds and installs each commit in the
virtualenv of ``asv.conf.json``, and cannot build the first two commits, which have no pyproject.toml).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIRST = "0124315"  # "lrcore: canonical schedules, ...": where lrcore landed
MACHINE = "ci-2core-shared"
#: main's history since the last commit of the first recorded history (c884ac4, Dec 2): every merge commit,
#: and every commit that names a speed change of the code asv measures (lrcore's kernels, the trainers).
SINCE_DEC2 = (
    "c884ac4",  # the last commit measured on ci-2core-shared: where a machine's new line starts
    "bd37b5c",  # BatchedMLP: one forward pass for forward and loss_and_grad; RMSprop kernel in two loops
    "206e415",  # torch optimizer path: one (M, N) buffer, a few ops per optimizer run, no host sync
    "b5e2668",  # trainer: tables on the training device, no per-step host sync (--optim-impl)
    "468eeff",  # numba kernel: contiguous loops without per-step tests, segment loops
    "065cdc9",  # numba kernel: float steps from exact offsets, reciprocals instead of divisions
    "de58001",  # numba kernel: anneal loops form their float steps inline
    "35db03e",  # numba kernel: restarts' falling cosine in loops of their own
    "018103f",  # numba kernel: polynomial exponent split without int conversions or branches
    "1d4df50",  # merge wip-layout (bench/ as train/, matrix/, report/, speed/)
    "758df2c",  # numba kernel: polynomial powers 1, 2 and 1/2 without log
    "2eee111",  # merge wip-ray
    "3940f0e",  # merge wip-gpu (device path without per-step syncs, fused torch optimizer)
    "3438035",  # merge wip-lrcore (faster numba kernels, family table)
    "10767a9",  # numba kernel: binomial series for polynomial and inverse-sqrt (no pow/sqrt/division per step)
    "f2d3d14",  # numba kernel: float steps inline in restarts, one-cycle and cyclic
    "7544495",  # merge main into wip-report (schedule-free optimizers)
    "bc4be2f",  # numba kernel: restart cycles settled only where a cycle ends inside the tile
    "3ba29f1",  # formulas.restart_cycle: fewer pow calls (restarts near the cosine's speed)
    "1a48cd7",  # merge wip-report
    "555a46f",  # merge wip-accept
    "e8efa95",  # merge wip-speed
    "4fa2f1e",  # main's head when tracking began
)
#: After it, ``--track`` follows main's first-parent line: its merges and commits that change measured code.
TRACK_FROM = SINCE_DEC2[-1]
CODE = ("lrcore", "bench", "pyproject.toml")


def machine_name(cpuinfo: str | None = None, cores: int | None = None) -> str:
    """``ci-<cores>core-<vendor>-<widest vector ISA>``, e.g. ``ci-2core-intel-avx512`` or ``ci-2core-amd-avx2``,
    from ``/proc/cpuinfo`` (``cpuinfo``: its text, for tests)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", cpuinfo, re.M)
    vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(vendor.group(1) if vendor else "", "")
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)
    flags = set(flags.group(1).split()) if flags else set()
    isa = next((name for flag, name in (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"))
                if flag in flags), "")
    import platform
    return "-".join(x for x in ("ci", f"{cores or os.cpu_count()}core", vendor or platform.machine(), isa) if x)


def git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def machine_details() -> dict:
    """The CPU model, cores, architecture, OS and RAM, for the machine's ``machine.json``."""
    import platform
    info = {"arch": platform.machine(), "os": f"{platform.system()} {platform.release()}",
            "num_cpu": str(os.cpu_count())}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
        kb = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
        info["ram"] = f"{kb / 2 ** 20:.0f}GB"
    except (OSError, AttributeError):
        pass
    return info


def register(machines: Path, name: str) -> None:
    """Add machine ``name`` with :func:`machine_details` to asv's machine file (``asv machine --yes`` would
    store only the values that differ from what asv detects, and asv then records only those)."""
    import json
    known = json.loads(machines.read_text()) if machines.exists() else {"version": 1}
    known[name] = {"machine": name, **machine_details()}
    machines.write_text(json.dumps(known, indent=4) + "\n")


def commits(since: str) -> list[str]:
    return [git("rev-parse", since)] + git("rev-list", "--reverse", "--first-parent", f"{since}..HEAD").split()


def tracked() -> list[str]:
    """What ``make track`` measures: :data:`SINCE_DEC2`, then every commit of main's first-parent line after
    :data:`TRACK_FROM` that is a merge or changes measured code (:data:`CODE`), oldest first."""
    out = [git("rev-parse", c) for c in SINCE_DEC2]
    for line in git("rev-list", "--reverse", "--first-parent", "--parents", f"{TRACK_FROM}..HEAD").splitlines():
        sha, *parents = line.split()
        if len(parents) > 1 or git("diff", "--name-only", parents[0], sha, "--", *CODE):
            out.append(sha)
    return list(dict.fromkeys(out))


def recorded(sha: str, machine: str, results: Path | None = None) -> bool:
    """Whether ``results/asv/<machine>/`` has a result file of commit ``sha``."""
    folder = (results or ROOT / "results" / "asv") / machine
    return folder.is_dir() and any(folder.glob(f"{sha[:8]}-*.json"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.speed.asv_benchmarks.history", description=__doc__.split("\n\n")[0])
    ap.add_argument("--since", default=FIRST, help="first commit (default: %(default)s, where lrcore landed)")
    ap.add_argument("--last", type=int, default=None, help="only the last N commits of the range")
    ap.add_argument("--commits", nargs="+", help="these commits instead of a range")
    ap.add_argument("--machine", default=None, help=f"asv machine name (default {MACHINE}; with --track the "
                    f"CPU's, here {machine_name()}; see asv machine)")
    ap.add_argument("--track", action="store_true", help="measure the tracked commits (SINCE_DEC2, then main's "
                    "merges and code changes) not yet recorded, under the CPU's machine name: `make track`")
    ap.add_argument("--dry-run", action="store_true", help="list the commits to measure and the recorded ones")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--full", action="store_true", help="asv's full sampling (default: --quick, one sample)")
    ap.add_argument("--bench", default=None, help="asv --bench regex")
    ap.add_argument("--force", action="store_true", help="re-run commits that already have results")
    args = ap.parse_args(argv)

    machine = args.machine or (machine_name() if args.track else MACHINE)
    shas = ([git("rev-parse", c) for c in args.commits] if args.commits else tracked() if args.track else
            commits(args.since))
    if args.last:
        shas = shas[-args.last:]
    if args.dry_run:
        for sha in shas:
            state = "recorded" if recorded(sha, machine) and not args.force else "to measure"
            print(f"{state:10s} {git('log', '-1', '--format=%h %s', sha)[:100]}")
        todo = sum(not recorded(sha, machine) or args.force for sha in shas)
        print(f"machine {machine}: {todo} of {len(shas)} commits to measure")
        return 0
    args.machine = machine
    asv = str(Path(args.python).parent / "asv")
    machines = Path(os.environ.get("ASV_MACHINE_FILE", Path.home() / ".asv-machine.json"))
    if not machines.exists() or f'"{args.machine}"' not in machines.read_text():
        if args.track:
            register(machines, args.machine)
        else:
            subprocess.run([asv, "machine", "--machine", args.machine, "--yes"], cwd=ROOT, check=True)
    results = ROOT / "results" / "asv" / args.machine
    t_all = time.perf_counter()
    failed = []
    for i, sha in enumerate(shas, 1):
        title = git("log", "-1", "--format=%h %s", sha)[:90]
        if not args.force and recorded(sha, args.machine):
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
    if any(results.glob("*-existing-*.json")):
        from bench.speed.timeline import write  # the digest of the machine's history: docs/TRACKING.md
        for path in write(args.machine):
            print(f"written: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
