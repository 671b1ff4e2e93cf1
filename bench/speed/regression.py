"""The regression gate: the code under test against a reference commit, timed side by side on this machine,
and a short training's error rates against a committed baseline.

    python -m bench.speed.regression                    # judge the working tree (exit 0 ok, 1 regression, 2 cannot judge)
    python -m bench.speed.regression --against HEAD~3   # another reference commit
    python -m bench.speed.regression --record           # after a pass on a clean tree: HEAD becomes the reference
    python -m bench.speed.regression --update           # re-measure the error-rate baseline (commit it)

Speed: each probe of :data:`bench.speed.probes.PROBES` is timed in two worker processes (this venv's Python,
numba and torch on one thread), one importing the candidate tree (the working tree), one a temporary
``git worktree`` of the reference commit (``--against``, else ``results/regression/reference.json``, else
the merge base with ``origin/main``). Rounds alternate which side goes first; a side's time in a round is
the best of a few calls; the verdict is on the median over rounds of candidate / reference time, which
must stay <= the probe's tolerance. Both sides share the machine's speed and load of that moment, so
unchanged code gives ~1 on any machine (docs/TRACKING.md has the runs).

Accuracy: ``error_rate.*`` of :mod:`bench.speed.shortrun` (deterministic on the CPU) must stay within
``tolerance`` (absolute) of ``results/regression/baseline.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..machine import machine
from . import probes as P

__all__ = ["Metric", "METRICS", "SPEED_TOLERANCE", "Verdict", "CannotJudge", "Worker", "compare",
           "judge_speed", "judge", "render", "reference_commit", "reference_tree", "measure", "main",
           "load_baseline", "write_baseline", "DEFAULT_BASELINE", "DEFAULT_REFERENCE"]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BASELINE = ROOT / "results" / "regression" / "baseline.json"
DEFAULT_REFERENCE = ROOT / "results" / "regression" / "reference.json"

#: candidate / reference time above which a probe fails. A lost fast path costs far more (numba kernel on
#: the numpy path: ~25x; a batched step doing three times its work: ~3x); unchanged code stays within
#: 0.8-1.15x per round and ~1.1x in the median on a 2-core VM with other load (docs/TRACKING.md).
SPEED_TOLERANCE = {"evaluate.warmup_cosine": 1.5, "evaluate_many.mixed": 1.5, "train.batched_step": 1.5,
                   "train.batched_step.bf16": 1.5, "train.sequential_step": 1.5}
ROUNDS, INNER = 7, 3
#: a probe's calls per side and round: INNER, or more for short probes, until a round takes MIN_ROUND_S
MIN_ROUND_S, MAX_INNER = 0.05, 25


class CannotJudge(RuntimeError):
    """The gate has nothing to compare with (no reference commit, shallow clone, no baseline, no data)."""


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    kind: str          # "error" (lower is better; absolute tolerance)
    tolerance: float
    description: str
    #: bumped when what is measured changes: a baseline value of an older set-up is no reference
    revision: int = 1


def _error_metrics() -> dict[str, Metric]:
    """The short run's error rates in fp32 (``error_rate.*``) and, as separate metrics, in bf16
    (``error_rate.bf16.*``): runs of different precision are never pooled."""
    from .shortrun import CONFIGS, EPOCHS, N_TRAIN
    out = {}
    for key, label in (("error_rate.", ""), ("error_rate.bf16.", ", bf16")):
        for name, opt, lr, text in CONFIGS:
            out[f"{key}{name}"] = Metric(f"{key}{name}", "error", 0.01,
                                         f"test error, {opt} lr {lr:g}, {EPOCHS} epochs of {N_TRAIN}{label}")
        out[f"{key}mean"] = Metric(f"{key}mean", "error", 0.01, f"mean test error of the short run{label}")
    return out


#: The accuracy metrics judged against the committed baseline.
METRICS: dict[str, Metric] = _error_metrics()


@dataclasses.dataclass
class Verdict:
    name: str
    kind: str               # "time" (candidate / reference) | "error"
    description: str
    baseline: float | None  # reference seconds | baseline error rate
    measured: float | None  # candidate seconds | measured error rate
    limit: float | None     # ratio limit | error limit
    ok: bool
    note: str = ""
    judged: bool = True     # False: nothing to judge against (the note says why)
    ratio: float | None = None
    spread: tuple[float, float] | None = None

# ------------------------------------------------------------------------------------ the two trees


def _git(*args, cwd=ROOT, check=True) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise CannotJudge(f"git {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout.strip()


def reference_commit(against: str | None = None, record: Path = DEFAULT_REFERENCE, repo: Path = ROOT) -> tuple[str, str]:
    """(full sha, where it came from): ``against``, else the recorded commit, else the merge base with
    ``origin/main``. Raises :class:`CannotJudge`, saying what to do, when the commit is not in this clone."""
    if shutil.which("git") is None:
        raise CannotJudge("git is not installed: the gate checks out its reference commit with git")
    if _git("rev-parse", "--is-inside-work-tree", cwd=repo, check=False) != "true":
        raise CannotJudge(f"{repo} is not a git checkout: pass --reference-tree PATH to compare with a folder")
    if against:
        rev, source = against, "--against"
    elif Path(record).exists():
        rev, source = json.loads(Path(record).read_text())["commit"], f"recorded in {Path(record).name}"
    else:
        rev = _git("merge-base", "HEAD", "origin/main", cwd=repo, check=False)
        source = "merge base with origin/main"
        if not rev:
            raise CannotJudge(f"no reference commit: {record} is missing and there is no origin/main; "
                              "pass --against REV")
    sha = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=repo, check=False)
    if not sha:
        shallow = _git("rev-parse", "--is-shallow-repository", cwd=repo, check=False) == "true"
        raise CannotJudge(f"reference commit {rev} ({source}) is not in this clone"
                          + (" (a shallow clone): run `git fetch --unshallow`" if shallow else
                             ": fetch it, or pass --against REV")
                          + " and run the gate again")
    return sha, source


@contextlib.contextmanager
def reference_tree(sha: str, repo: Path = ROOT):
    """A temporary ``git worktree`` of ``sha`` (removed afterwards)."""
    tmp = Path(tempfile.mkdtemp(prefix="lrbench-gate-"))
    tree = tmp / "ref"
    _git("worktree", "add", "--detach", "--quiet", str(tree), sha, cwd=repo)
    try:
        yield tree
    finally:
        _git("worktree", "remove", "--force", str(tree), cwd=repo, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        _git("worktree", "prune", cwd=repo, check=False)

# ------------------------------------------------------------------------------------------- workers

#: Started as ``python -c BOOT PROBES_DIR TREE`` in TREE: imports this folder's probes.py (the gate's own
#: probe code) as ``_lrbench_gate.probes``, with TREE first on sys.path so that lrcore and bench are TREE's.
BOOT = ("import importlib, sys, types; probes_dir, tree = sys.argv[1], sys.argv[2]; sys.path.insert(0, tree); "
        "pkg = types.ModuleType('_lrbench_gate'); pkg.__path__ = [probes_dir]; sys.modules['_lrbench_gate'] = pkg; "
        "importlib.import_module('_lrbench_gate.probes').serve(tree)")


class Worker:
    """A process that times :data:`bench.speed.probes.PROBES` on the code of ``tree`` (see :func:`bench.speed.probes.serve`)."""

    def __init__(self, tree: Path, label: str):
        self.tree, self.label = Path(tree).resolve(), label
        self.log = tempfile.TemporaryFile(mode="w+")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_NUM_THREADS")}
        env["PYTHONPATH"] = str(self.tree)
        self.proc = subprocess.Popen([sys.executable, "-c", BOOT, str(Path(__file__).resolve().parent),
                                      str(self.tree)], cwd=self.tree, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        hello = self._read()
        for mod in ("lrcore", "bench"):
            if not Path(hello[mod]).resolve().is_relative_to(self.tree):
                self.close()
                raise CannotJudge(f"the {label} worker imported {mod} from {hello[mod]}, not from {self.tree}")

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(P.REPLY):
                return json.loads(line[len(P.REPLY):])
        self.log.seek(0)
        raise CannotJudge(f"the {self.label} worker ({self.tree}) exited:\n{self.log.read()[-3000:]}")

    def time(self, probe: str, inner: int = INNER) -> dict:
        self.proc.stdin.write(json.dumps({"probe": probe, "inner": inner}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def compare(candidate: Path, reference: Path, probes=None, *, rounds: int = ROUNDS, inner: int = INNER,
            log=None) -> dict:
    """Time each probe in both trees, interleaved: {probe: {"candidate": [s...], "reference": [s...]} or
    {"error": ..., "side": ...}}."""
    names = list(probes or P.PROBES)
    cand, ref = Worker(candidate, "candidate"), None
    try:
        ref = Worker(reference, "reference")
        out = {}
        for name in names:
            t0 = time.perf_counter()
            first = {side: w.time(name, inner=1) for side, w in (("candidate", cand), ("reference", ref))}
            bad = [side for side, r in first.items() if "error" in r]
            if bad:
                out[name] = {"error": first[bad[0]]["error"], "trace": first[bad[0]].get("trace", ""), "side": bad[0]}
                continue
            # short probes get more calls per round (best of at least ~50 ms): a millisecond call is easily
            # pre-empted on a busy machine, and the best of many is what the code can do
            calls = max(inner, min(MAX_INNER, math.ceil(MIN_ROUND_S / max(first["candidate"]["seconds"], 1e-6))))
            times = {"candidate": [], "reference": []}
            for r in range(rounds):
                order = (("candidate", cand), ("reference", ref)) if r % 2 == 0 else (("reference", ref), ("candidate", cand))
                for side, w in order:
                    got = w.time(name, calls)
                    if "error" in got:
                        raise RuntimeError(f"{name} failed in the {side} tree: {got['error']}")
                    times[side].append(got["seconds"])
            out[name] = times
            if log:
                ratios = [c / r for c, r in zip(times["candidate"], times["reference"])]
                log(f"{name}: candidate / reference = {statistics.median(ratios):.2f} "
                    f"({time.perf_counter() - t0:.1f} s)")
        return out
    finally:
        cand.close()
        if ref is not None:
            ref.close()


def judge_speed(timings: dict, tolerance: dict | None = None) -> list[Verdict]:
    """One verdict per probe: median over rounds of candidate / reference time <= the probe's tolerance. A
    probe the reference tree cannot run is not judged (new code); one the candidate cannot run fails."""
    tolerance = {**SPEED_TOLERANCE, **(tolerance or {})}
    out = []
    for name, t in timings.items():
        desc = P.PROBES[name][2] if name in P.PROBES else ""
        limit = tolerance.get(name, max(SPEED_TOLERANCE.values()))
        if "error" in t:
            cand = t["side"] == "candidate"
            out.append(Verdict(name, "time", desc, None, None, limit, False,
                               f"{t['side']} tree failed: {t['error']}", judged=cand))
            continue
        ratios = [c / r for c, r in zip(t["candidate"], t["reference"])]
        ratio = statistics.median(ratios)
        ok = math.isfinite(ratio) and ratio <= limit
        out.append(Verdict(name, "time", desc, statistics.median(t["reference"]), statistics.median(t["candidate"]),
                           limit, ok, "" if ok else f"{ratio:.2f}x the reference's time", ratio=ratio,
                           spread=(min(ratios), max(ratios))))
    return out

# ------------------------------------------------------------------------------------------ accuracy


def measure(only=None, *, data=None, data_dir=None) -> dict:
    """The error rates of :mod:`bench.speed.shortrun` whose names contain one of ``only`` (all by default); a
    precision is trained only when one of its metrics is asked for."""
    names = [n for n in METRICS if not only or any(o in n for o in only)]
    precisions = [p for p in ("fp32", "bf16") if any((".bf16." in n) == (p == "bf16") for n in names)]
    errs = P.measure_error_rates(data, data_dir, precisions=precisions or ("fp32",))
    return {k: v for k, v in errs.items() if not only or any(o in k for o in only)}


def judge(measured: dict, baseline: dict, *, require_all: bool = True) -> list[Verdict]:
    """One verdict per error metric: ``measured <= baseline + tolerance``. A metric with no baseline value of
    its current set-up revision, or not measured (with ``require_all``), is not judged."""
    def val(v):
        return None if v is None else float(v["value"] if isinstance(v, dict) else v)

    base = baseline.get("metrics", {})
    out = []
    for name in list(base) + [n for n in measured if n not in base]:
        ref = METRICS.get(name)
        b = base.get(name, {})
        stale = bool(b) and ref is not None and int(b.get("revision", 1)) != ref.revision
        if stale:
            b = {}
        tol = float(b.get("tolerance", ref.tolerance if ref else 0.0))
        desc = b.get("description", ref.description if ref else "")
        got, want = val(measured.get(name)), val(b) if b else None
        if got is None:
            if require_all:
                out.append(Verdict(name, "error", desc, want, None, None, False, "not measured", judged=False))
            continue
        if want is None:
            how = f"python -m bench.speed.regression --update --only {name}"
            note = (f"baseline is of set-up revision {int(base[name].get('revision', 1))}, the gate measures "
                    f"revision {ref.revision}: {how}") if stale else f"no baseline: {how}"
            out.append(Verdict(name, "error", desc, None, got, None, False, note, judged=False))
            continue
        if not math.isfinite(got):
            out.append(Verdict(name, "error", desc, want, got, None, False, "not finite"))
            continue
        limit = want + tol
        ok = got <= limit
        note = "" if ok else f"+{got - want:.4f} error"
        if ok and got < want - tol:
            note = "better than baseline (--update?)"
        out.append(Verdict(name, "error", desc, want, got, limit, ok, note))
    return out

# -------------------------------------------------------------------------------------------- output


def _verdict_text(v: Verdict) -> str:
    text = "[green]ok[/]" if v.ok else "[bold red]REGRESSION[/]" if v.judged else "[bold yellow]NOT JUDGED[/]"
    return text + (f" ({v.note})" if v.note else "")


def render(verdicts: list[Verdict], title: str = "regression gate", file=None) -> None:
    """Print the judged tables (rich): speed probes, then error rates."""
    from rich.console import Console
    from rich.table import Table
    console = Console(file=file, width=None if (file or sys.stdout).isatty() else 180)
    speed = [v for v in verdicts if v.kind == "time"]
    acc = [v for v in verdicts if v.kind != "time"]
    if speed:
        table = Table(title=f"{title}: speed, candidate against reference", title_justify="left")
        for col in ("probe", "what", "reference", "candidate", "ratio [min, max]", "limit", "verdict"):
            table.add_column(col, justify="left" if col in ("probe", "what", "verdict") else "right")
        for v in speed:
            ratio = "-" if v.ratio is None else f"{v.ratio:.2f} [{v.spread[0]:.2f}, {v.spread[1]:.2f}]"
            table.add_row(v.name, v.description, "-" if v.baseline is None else f"{v.baseline * 1e3:.2f} ms",
                          "-" if v.measured is None else f"{v.measured * 1e3:.2f} ms", ratio, f"<= {v.limit:.2f}",
                          _verdict_text(v))
        console.print(table)
    if acc:
        table = Table(title=f"{title}: error rates against the baseline", title_justify="left")
        for col in ("metric", "what", "baseline", "measured", "limit", "verdict"):
            table.add_column(col, justify="left" if col in ("metric", "what", "verdict") else "right")
        for v in acc:
            table.add_row(v.name, v.description, "-" if v.baseline is None else f"{v.baseline:.4f}",
                          "-" if v.measured is None else f"{v.measured:.4f}",
                          "-" if v.limit is None else f"<= {v.limit:.4f}", _verdict_text(v))
        console.print(table)
    bad = sum(not v.ok and v.judged for v in verdicts)
    unjudged = sum(not v.judged for v in verdicts)
    console.print(f"{sum(v.ok for v in verdicts)}/{len(verdicts)} within tolerance"
                  + (f"; {bad} REGRESSION(S)" if bad else "") + (f"; {unjudged} NOT JUDGED" if unjudged else ""))

# ----------------------------------------------------------------------------------- baseline files


def load_baseline(path=DEFAULT_BASELINE) -> dict:
    return json.loads(Path(path).read_text())


def _git_commit() -> tuple[str | None, bool | None]:
    try:
        return (_git("rev-parse", "HEAD"),
                bool(_git("status", "--porcelain", "--untracked-files=no")))
    except (OSError, CannotJudge):
        return None, None


def write_baseline(measured: dict, path=DEFAULT_BASELINE, previous: dict | None = None) -> dict:
    """Write the error rates ``measured`` as the baseline (tolerances kept from ``previous`` for the same
    set-up revision; entries of ``previous`` not measured are kept as they were)."""
    prev = (previous or {}).get("metrics", {})
    metrics = {k: v for k, v in prev.items() if k not in measured and k in METRICS}
    for name, v in measured.items():
        ref = METRICS[name]
        old = prev.get(name, {})
        if int(old.get("revision", 1)) != ref.revision:
            old = {}
        metrics[name] = {"value": float(v["value"]), "kind": ref.kind,
                         "tolerance": float(old.get("tolerance", ref.tolerance)), "description": ref.description,
                         "revision": ref.revision, **{k: v[k] for k in ("seconds", "steps") if k in v}}
    sha, dirty = _git_commit()
    doc = {"about": "regression gate: error-rate baseline (python -m bench.speed.regression --update; docs/TRACKING.md)",
           "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "git_commit": sha, "git_dirty": dirty, "machine": machine(), "metrics": metrics}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def record_reference(path=DEFAULT_REFERENCE) -> str:
    """Record HEAD as the reference commit (a clean tree only: the reference must be a commit)."""
    sha, dirty = _git_commit()
    if sha is None or dirty:
        raise CannotJudge("--record needs a clean git checkout (commit first): the reference is a commit")
    Path(path).write_text(json.dumps({"commit": sha, "recorded_utc": datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "subject": _git("log", "-1", "--format=%s")},
        indent=2) + "\n")
    return sha

# ----------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.speed.regression", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", metavar="REV", help="reference commit (default: results/regression/reference.json)")
    ap.add_argument("--reference-tree", metavar="PATH", help="a source folder to use as the reference instead of a commit")
    ap.add_argument("--candidate-tree", metavar="PATH", default=str(ROOT),
                    help="the source folder under test (default: this checkout's working tree)")
    ap.add_argument("--only", nargs="+", metavar="TEXT", help="only probes / metrics whose name contains TEXT")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds per probe (default %(default)s)")
    ap.add_argument("--no-speed", action="store_true", help="judge only the error rates")
    ap.add_argument("--no-accuracy", action="store_true", help="judge only the speed probes")
    ap.add_argument("--baseline", default=str(DEFAULT_BASELINE), help="error-rate baseline (default: %(default)s)")
    ap.add_argument("--update", action="store_true", help="measure the error rates and write them as the baseline")
    ap.add_argument("--record", action="store_true", help="after a pass, record HEAD as the reference commit")
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the loader's search)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the timings and verdicts here")
    return ap


def _say(text):
    print(f"  {text}", flush=True)


def _update_baseline(args, path: Path, baseline) -> int:
    """--update: measure the error rates and write them as the baseline (2 when they cannot be measured)."""
    try:
        measured = measure(args.only, data_dir=args.data_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"regression gate: cannot measure: {exc}", file=sys.stderr)
        return 2
    doc = write_baseline(measured, path, baseline)
    render(judge(measured, doc), title=f"error-rate baseline written: {path}")
    return 0


def _speed_verdicts(args, probes, unjudgeable: list) -> tuple[list, dict]:
    """Time ``probes`` in the candidate tree against the reference tree (a folder, or a commit's worktree)."""
    try:
        with contextlib.ExitStack() as stack:
            if args.reference_tree:
                ref_tree, ref_name = Path(args.reference_tree), args.reference_tree
            else:
                sha, source = reference_commit(args.against)
                ref_tree = stack.enter_context(reference_tree(sha))
                ref_name = f"{sha[:10]} ({source})"
            print(f"regression gate: speed of {args.candidate_tree} against {ref_name}", flush=True)
            timings = compare(Path(args.candidate_tree), ref_tree, probes, rounds=args.rounds, log=_say)
        return judge_speed(timings), timings
    except CannotJudge as exc:
        unjudgeable.append(str(exc))
        print(f"regression gate: cannot judge speed: {exc}", file=sys.stderr)
        return [], {}


def _error_verdicts(args, path: Path, baseline, unjudgeable: list) -> list:
    """A short training's error rates against the committed baseline."""
    if baseline is None:
        unjudgeable.append(f"no error-rate baseline at {path}")
        print(f"regression gate: no baseline at {path}; create it with python -m bench.speed.regression --update",
              file=sys.stderr)
        return []
    try:
        t0 = time.perf_counter()
        measured = measure(args.only, data_dir=args.data_dir)
        _say("short training: mean error " + ", ".join(
            f"{p} {measured[k]['value']:.4f}" for p, k in (("fp32", "error_rate.mean"),
                                                          ("bf16", "error_rate.bf16.mean")) if k in measured)
            + f" ({time.perf_counter() - t0:.1f} s)")
        return judge(measured, baseline, require_all=not args.only)
    except (FileNotFoundError, ValueError) as exc:  # Fashion-MNIST missing or corrupt
        unjudgeable.append(f"cannot measure error rates: {exc}")
        print(f"regression gate: cannot measure error rates: {exc}", file=sys.stderr)
        return []


def _exit_code(verdicts, unjudgeable: list, record: bool) -> int:
    """1 on a judged regression; 2 when something could not be judged; 0 (and --record) otherwise."""
    speed = [v for v in verdicts if v.kind == "time"]
    if speed and not any(v.judged for v in speed):
        unjudgeable.append("the reference tree could run none of the speed probes: --against a newer commit")
    if any(not v.ok and v.judged for v in verdicts):
        return 1
    # a probe the reference tree lacks is shown as NOT JUDGED and passes; an error rate without a baseline does not
    if unjudgeable or not verdicts or any(not v.judged for v in verdicts if v.kind == "error"):
        return 2
    if record:
        try:
            print(f"regression gate: reference recorded: {record_reference()}")
        except CannotJudge as exc:
            print(f"regression gate: {exc}", file=sys.stderr)
            return 2
    return 0


def main(argv=None) -> int:
    """The gate: speed against the reference commit, error rates against the baseline; exit 0 / 1 / 2."""
    args = _parser().parse_args(argv)

    def wanted(name):
        return not args.only or any(o in name for o in args.only)

    path = Path(args.baseline)
    baseline = load_baseline(path) if path.exists() else None
    if args.update:
        return _update_baseline(args, path, baseline)
    verdicts, timings, unjudgeable = [], {}, []
    probes = [n for n in P.PROBES if wanted(n)]
    if not args.no_speed and probes:
        found, timings = _speed_verdicts(args, probes, unjudgeable)
        verdicts += found
    if not args.no_accuracy and any(wanted(n) for n in METRICS):
        verdicts += _error_verdicts(args, path, baseline, unjudgeable)
    if verdicts:
        render(verdicts)
    if args.json:
        Path(args.json).write_text(json.dumps({"timings": timings, "cannot_judge": unjudgeable,
                                               "verdicts": [dataclasses.asdict(v) for v in verdicts]}, indent=2))
    return _exit_code(verdicts, unjudgeable, args.record)

if __name__ == "__main__":
    sys.exit(main())
