"""The regression gate: machine-independent speed ratios and a short training's error rates, judged
against a committed baseline.

    python -m bench.regression                       # measure, judge against results/regression/baseline.json
    python -m bench.regression --update              # measure and write the baseline (commit it)
    python -m bench.regression --only speedup        # just the metrics whose name contains "speedup"

Exit status: 0 when every metric is within its tolerance, 1 on a regression, 2 when the gate cannot judge
(no baseline file, Fashion-MNIST missing, or a metric with no baseline value of its current set-up -- see
``Metric.revision``; the table then says NOT JUDGED and how to re-measure that baseline). The judged
table is printed whenever something was measured.

What is measured (:data:`METRICS`)
----------------------------------
Ratios of two timings taken in the same process, interleaved, so that the machine's speed and its other
load cancel out to first order (absolute times are asv's job, not the gate's):

* ``speedup.numba_vs_lrcore_numpy``: warmup + cosine at 10^6 steps, lrcore's own numpy backend time over
  its numba backend time. This is the one that catches "the kernel fell back to the numpy path".
* ``speedup.numba_vs_closed_form``: the same schedule, a hand-written numpy closed form (``np.where`` +
  ``np.cos``, what users would write) over lrcore numba.
* ``speedup.many_numba_vs_numpy``: ``evaluate_many`` of 200 mixed schedules x 5,000 steps, numpy backend
  over numba (the per-schedule Python loop against one kernel launch).
* ``speedup.batched_vs_sequential`` (set-up revision 2): :class:`TrainingPair`, the two trainers' own
  inner steps on the same 36 MLPs (the runner's chunk on the CPU; 784-256-128-10; sgd, momentum,
  nesterov, rmsprop, adam, adamw; two paired seeds, so two groups of 18 models sharing a batch of 128),
  2 steps of each model per timed call, best of 3 calls per round: the
  sequential trainer's step (``torch.nn`` + ``torch.optim`` + ``LrcoreScheduler``, one model after the
  other) over the batched trainer's (``bench.batched.train_step`` on a ``BatchedMLP`` stack with
  ``BatchedOptimizer``'s default implementation, groups, the lr column of an lrcore table). This one
  runs on 2 threads (numba and torch), the trainers' setting on the 2-core CPU: batching pays off on
  the CPU through the parallel work it gives both cores (on one thread the stack's forward/backward is
  only ~10% faster than a per-model loop's, too little to tell the two apart).

The kernel ratios run numba and torch on one thread (``numba.set_num_threads(1)``,
``torch.set_num_threads(1)``): they compare code paths, not how many idle cores a shared machine had.
Each ratio is the median over ``repeats`` rounds; in a round each side's time is the best of ``inner``
calls.

Accuracy: ``error_rate.<config>`` for every configuration of :mod:`bench.shortrun` (300 deterministic
steps of the batched trainer on 6,400 Fashion-MNIST images, scored on the 10,000 test images) and
``error_rate.mean``.

Tolerances (per metric, stored in the baseline file, defaults in :data:`METRICS`)
---------------------------------------------------------------------------------
* speed-ups: ``measured >= baseline / factor`` (factor 3 for the lrcore kernels, 1.6 for training). A
  kernel that falls back to numpy drops ``numba_vs_lrcore_numpy`` from ~25x to ~1x; shared-machine noise
  moves these ratios by well under 2x. The training ratio is the median of 3 fresh processes (1.5x-2.4x
  each on the idle 2-core CPU; higher with other load, which slows the many small ops of the sequential
  side more); its limit (~1.2x) says "batched faster than one at a time": it catches a batched step
  that does a multiple of its work (the test recomputes the forward and backward pass twice more: 0.8x),
  not a per-model loop, which only costs ~1.4x on this CPU and cannot be told from noise here (the
  asv ``track_batched_over_sequential`` history shows such drifts).
* error rates: ``measured <= baseline + 0.01`` (absolute; 100 of the 10,000 test images). The training is
  bit-reproducible on one machine; the band absorbs a different CPU or torch build. An lr schedule scaled by
  0.01 or a lost momentum term costs several points.
Improvements never fail the gate; refresh the baseline with ``--update`` when they are intended.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["Metric", "METRICS", "Verdict", "measure", "judge", "render", "load_baseline", "write_baseline", "main",
           "DEFAULT_BASELINE"]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BASELINE = ROOT / "results" / "regression" / "baseline.json"


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    kind: str          # "speedup" (higher is better; tolerance = factor) | "error" (lower is better; absolute)
    tolerance: float
    description: str
    #: The measurement's set-up revision: bumped when what is measured changes, so that a baseline value of
    #: the old set-up is not used as the reference of the new one (a baseline entry without one is revision 1).
    revision: int = 1


def _error_metrics() -> dict[str, Metric]:
    from .shortrun import CONFIGS, EPOCHS, N_TRAIN
    out = {}
    for name, opt, lr, text in CONFIGS:
        out[f"error_rate.{name}"] = Metric(f"error_rate.{name}", "error", 0.01,
                                           f"test error, {opt} lr {lr:g}, {EPOCHS} epochs of {N_TRAIN}")
    out["error_rate.mean"] = Metric("error_rate.mean", "error", 0.01, "mean test error of the short run")
    return out


#: (bench.trainer optimizer name, peak lr) of the training speed ratio's models: the quick matrix's peaks.
TRAIN_OPTIMIZERS = [("sgd", 0.1), ("momentum", 0.01), ("nesterov", 0.01), ("rmsprop", 5e-4), ("adam", 1e-3),
                    ("adamw", 1e-3)]
#: The schedule of every model of the training speed ratio (placeholders as bench.trainer.TrainConfig).
TRAIN_SCHEDULE = "Warmup(Cosine(lr=peak, decay_steps=total - total // 20), steps=total // 20)"
#: ``speedup.batched_vs_sequential``: models (the runner's chunk on the CPU), paired seeds (the models of a
#: seed share its batches), torch and numba threads (the trainers' own setting on the 2-core CPU: batching
#: pays off there through parallel work), steps of each model per timed call.
TRAIN_MODELS, TRAIN_SEEDS, TRAIN_THREADS, TRAIN_STEPS = 36, 2, 2, 2


METRICS: dict[str, Metric] = {
    "speedup.numba_vs_lrcore_numpy": Metric(
        "speedup.numba_vs_lrcore_numpy", "speedup", 3.0,
        "warmup+cosine 1e6 steps: lrcore numpy backend / numba backend"),
    "speedup.numba_vs_closed_form": Metric(
        "speedup.numba_vs_closed_form", "speedup", 3.0,
        "warmup+cosine 1e6 steps: numpy closed form / lrcore numba"),
    "speedup.many_numba_vs_numpy": Metric(
        "speedup.many_numba_vs_numpy", "speedup", 3.0,
        "evaluate_many 200 mixed x 5000 steps: numpy / numba backend"),
    "speedup.batched_vs_sequential": Metric(
        "speedup.batched_vs_sequential", "speedup", 1.6,
        f"{TRAIN_MODELS} MLPs ({TRAIN_SEEDS} seed groups) x {TRAIN_STEPS} steps, {TRAIN_THREADS} threads: "
        "sequential trainer (torch.optim + LrcoreScheduler) / batched train_step", revision=2),
    **_error_metrics(),
}

# ------------------------------------------------------------------------------------------ measurements


@contextlib.contextmanager
def pinned_threads(n: int = 1):
    """numba and torch on ``n`` threads inside the block (each restored after; torch only if imported;
    numba capped at its ``NUMBA_NUM_THREADS``)."""
    import numba
    old_numba = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        numba.set_num_threads(old_numba)
        if torch is not None:
            torch.set_num_threads(old_torch)


def single_threaded():
    """numba and torch on one thread inside the block."""
    return pinned_threads(1)


def best_time(fn: Callable[[], object], inner: int) -> float:
    best = math.inf
    for _ in range(inner):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def paired_speedup(slow: Callable[[], object], fast: Callable[[], object], *, repeats: int = 7,
                   inner: int = 3) -> dict:
    """Median over ``repeats`` rounds of best-of-``inner`` time(slow) / time(fast), interleaved."""
    slow(), fast()  # warm-up: compilation, allocations, page faults
    ratios, ts, tf = [], [], []
    for _ in range(repeats):
        a = best_time(slow, inner)
        b = best_time(fast, inner)
        ts.append(a), tf.append(b), ratios.append(a / b)
    return {"value": statistics.median(ratios), "slow_s": statistics.median(ts), "fast_s": statistics.median(tf),
            "spread": [min(ratios), max(ratios)]}


def warmup_cosine(n: int, peak: float = 0.1, start_factor: float = 1e-3):
    import lrcore
    w = max(1, n // 100)
    return lrcore.Warmup(lrcore.Cosine(lr=peak, decay_steps=n - w), steps=w, start_factor=start_factor)


def closed_form(t: np.ndarray, n: int, peak: float = 0.1, start_factor: float = 1e-3) -> np.ndarray:
    """The warmup + cosine schedule as people write it by hand with numpy."""
    w = max(1, n // 100)
    warm = peak * (start_factor + (1 - start_factor) * t / w)
    cos = 0.5 * peak * (1 + np.cos(np.pi * (t - w) / (n - w)))
    return np.where(t < w, warm, cos)


def mixed_schedules(m: int, steps: int, seed: int = 0) -> list:
    """``m`` schedules cycling through lrcore's families with random parameters sized to ``steps``."""
    import lrcore as S
    rng = np.random.default_rng(seed)
    makers = [
        lambda lr, T: S.Constant(lr),
        lambda lr, T: S.Step(lr, int(rng.integers(1, T)), float(rng.uniform(0.1, 0.9))),
        lambda lr, T: S.Exponential(lr, float(rng.uniform(0.5, 0.99)), int(rng.integers(1, T // 10))),
        lambda lr, T: S.Cosine(lr, int(rng.integers(1, T))),
        lambda lr, T: S.CosineRestarts(lr, int(rng.integers(1, T // 4)), t_mul=2.0),
        lambda lr, T: S.OneCycle(lr, T),
        lambda lr, T: S.Warmup(S.Cosine(lr, T - T // 50), steps=T // 50),
    ]
    return [makers[i % len(makers)](float(10 ** rng.uniform(-4, 0)), steps) for i in range(m)]


def measure_numba_vs_lrcore_numpy(n: int = 1_000_000, repeats: int = 7) -> dict:
    import lrcore
    s = warmup_cosine(n)
    out = np.empty(n)
    with single_threaded():
        return paired_speedup(lambda: lrcore.evaluate(s, n, backend="numpy"),
                              lambda: lrcore.evaluate(s, n, backend="numba", out=out), repeats=repeats)


def measure_numba_vs_closed_form(n: int = 1_000_000, repeats: int = 7) -> dict:
    import lrcore
    s = warmup_cosine(n)
    out = np.empty(n)
    with single_threaded():
        return paired_speedup(lambda: closed_form(np.arange(n), n),
                              lambda: lrcore.evaluate(s, n, backend="numba", out=out), repeats=repeats)


def measure_many_numba_vs_numpy(m: int = 200, n: int = 5000, repeats: int = 5) -> dict:
    import lrcore
    scheds = mixed_schedules(m, n)
    out = np.empty((m, n))
    with single_threaded():
        return paired_speedup(lambda: lrcore.evaluate_many(scheds, n, backend="numpy"),
                              lambda: lrcore.evaluate_many(scheds, n, backend="numba", out=out), repeats=repeats,
                              inner=2)


class TrainingPair:
    """One training step of ``n_models`` MLPs as each trainer takes it, on the same data, schedules and models.

    * batched (:meth:`batched_step`): ``bench.trainer.train_chunk``'s inner step -- the stack ordered by
      seed then optimizer, one batch per seed gathered from the training set, ``(seeds, B, in)``, shared
      by that seed's models (``groups``), ``bench.batched.train_step`` with the step's column of the
      float32 lr table (``lrcore.evaluate_many``), the active mask, and the loss summed on the device;
      :class:`bench.batched.BatchedOptimizer` with its default implementation.
    * sequential (:meth:`sequential_step`): ``bench.sequential.train_one``'s inner step for each model in
      turn -- plain ``torch.nn.Sequential`` (``torch_reference_model``) + ``torch.optim``
      (``torch_optimizer`` with ``bench.trainer.OPTIMIZERS``'s hyper-parameters) +
      ``lrcore.integrations.torch.LrcoreScheduler``; ``zero_grad(set_to_none=True)``, forward, ``loss.item()``,
      backward, ``step()``, ``scheduler.step()``.

    Models cycle through :data:`TRAIN_OPTIMIZERS` and ``n_seeds`` seeds (model k: seed ``k % n_seeds``,
    optimizer ``k // n_seeds``), all with :data:`TRAIN_SCHEDULE` over ``total`` steps. Random inputs
    (``n_train`` examples, ``bench.trainer.batch_permutation`` order per seed): speed does not depend on
    the pixels, and no data set is needed.
    """

    def __init__(self, n_models: int = TRAIN_MODELS, n_seeds: int = TRAIN_SEEDS, batch_size: int = 128,
                 widths=(784, 256, 128, 10), n_train: int = 6400, total: int = 10_000, seed: int = 0):
        import torch

        import lrcore
        try:
            from bench.train.batched import OPTIMIZERS, TrainConfig, batch_permutation
            from bench.train.model import OPTIMIZER_DEFAULTS, BatchedMLP, BatchedOptimizer, torch_optimizer, \
                torch_reference_model
        except ImportError:  # a commit before the bench/train/ layout (asv history)
            from bench.batched import OPTIMIZER_DEFAULTS, BatchedMLP, BatchedOptimizer, torch_optimizer, \
                torch_reference_model
            from bench.trainer import OPTIMIZERS, TrainConfig, batch_permutation
        from lrcore.integrations.torch import LrcoreScheduler

        self.torch, self.F = torch, torch.nn.functional
        n_seeds = min(int(n_seeds), int(n_models))
        configs = [TrainConfig(f"m{k}", *TRAIN_OPTIMIZERS[(k // n_seeds) % len(TRAIN_OPTIMIZERS)],
                               schedule=TRAIN_SCHEDULE, seed=k % n_seeds) for k in range(n_models)]
        # bench.trainer.train_chunk's order: seed-major, then optimizer kind
        configs.sort(key=lambda c: (c.seed, OPTIMIZERS[c.optimizer][0], c.optimizer))
        self.configs, self.B, self.total = configs, int(batch_size), int(total)
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n_train, widths[0], generator=g)
        self.y = torch.randint(0, widths[-1], (n_train,), generator=g)
        seeds = sorted({c.seed for c in configs})
        self.groups = [sum(c.seed == s for c in configs) for s in seeds]
        self.perms = torch.stack([batch_permutation(s, 0, n_train) for s in seeds])  # (seeds, N)
        self.steps_per_epoch = n_train // self.B                                       # full batches only
        self.seed_row = [seeds.index(c.seed) for c in configs]
        scheds = [c.parse(self.total) for c in configs]

        # batched: as bench.trainer.train_chunk builds it
        self.lr_table = lrcore.evaluate_many(scheds, self.total).astype(np.float32)
        self.stack = BatchedMLP([c.seed for c in configs], widths)
        kinds = [OPTIMIZERS[c.optimizer][0] for c in configs]
        hyper = {}
        for name in {n for c in configs for n in OPTIMIZERS[c.optimizer][1]}:
            hyper[name] = [OPTIMIZERS[c.optimizer][1].get(name, OPTIMIZER_DEFAULTS[k].get(name, 0.0))
                           for c, k in zip(configs, kinds)]
        self.opt = BatchedOptimizer(self.stack.params, kinds, lr=self.lr_table[:, 0], **hyper)
        self.active = torch.ones(len(configs), dtype=torch.bool)
        self.loss_sum = torch.zeros(len(configs), dtype=torch.float64)
        self.t_batched = 0

        # sequential: as bench.sequential.train_one builds each model
        self.models = []  # [net, optimizer, scheduler, steps taken]
        for c, sched in zip(configs, scheds):
            torch.manual_seed(c.seed)
            net = torch_reference_model(widths)
            kind, h = OPTIMIZERS[c.optimizer]
            opt = torch_optimizer(kind, net.parameters(), lr=float(c.peak_lr), **h)
            self.models.append([net, opt, LrcoreScheduler(opt, sched), 0])

    def _batch(self, t: int):
        k = t % self.steps_per_epoch
        return slice(k * self.B, (k + 1) * self.B)

    def batched_step(self):
        try:  # looked up at each call (a test may swap train_step)
            from bench.train import model as batched
        except ImportError:  # a commit before the bench/train/ layout (asv history)
            import bench.batched as batched
        t = self.t_batched
        idx = self.perms[:, self._batch(t)]                                    # (seeds, B)
        losses, self.active = batched.train_step(self.stack, self.opt, self.x[idx], self.y[idx],
                                                       lr=self.lr_table[:, t % self.total], active=self.active,
                                                       groups=self.groups)
        self.loss_sum += losses.double()
        self.t_batched = t + 1

    def _sequential(self, m: int, steps: int):
        net, opt, sched, t = self.models[m]
        perm = self.perms[self.seed_row[m]]
        for t in range(t, t + steps):
            idx = perm[self._batch(t)]
            opt.zero_grad(set_to_none=True)
            loss = self.F.cross_entropy(net(self.x[idx]), self.y[idx])
            if not math.isfinite(loss.item()):  # train_one's divergence check (never true here)
                break
            loss.backward()
            opt.step()
            sched.step()
        self.models[m][3] = t + 1

    def sequential_step(self):
        for m in range(len(self.models)):
            self._sequential(m, 1)

    def batched(self, steps: int):
        for _ in range(steps):
            self.batched_step()

    def sequential(self, steps: int):
        """``steps`` steps of each model, one model after the other (as the sequential trainer runs)."""
        for m in range(len(self.models)):
            self._sequential(m, steps)


def measure_batched_vs_sequential(n_models: int = TRAIN_MODELS, steps: int = TRAIN_STEPS, repeats: int = 5,
                                  threads: int = TRAIN_THREADS, n_seeds: int = TRAIN_SEEDS) -> dict:
    """Sequential over batched time of ``steps`` steps of :class:`TrainingPair` (each model ``steps`` steps)."""
    import torch  # noqa: F401  (imported before pinned_threads so that it sets torch's threads too)
    pair = TrainingPair(n_models, n_seeds)
    with pinned_threads(threads):
        return paired_speedup(lambda: pair.sequential(steps), lambda: pair.batched(steps), repeats=repeats, inner=3)


def measure_error_rates(data=None, data_dir=None) -> dict:
    from .shortrun import short_training
    r = short_training(data, data_dir=data_dir)
    out = {f"error_rate.{k}": {"value": round(v, 6)} for k, v in r["error_rate"].items()}
    out["error_rate.mean"] = {"value": round(r["mean_error_rate"], 6), "seconds": r["seconds"], "steps": r["steps"]}
    return out


def measure_batched_vs_sequential_fresh(repeats: int = 5, runs: int = 3) -> dict:
    """:func:`measure_batched_vs_sequential` in ``runs`` fresh Python processes, the median of their
    ratios: the sequential side (many small torch ops) runs 2-3x slower in a process where torch's and
    numba's thread counts were changed before (as the kernel ratios do: ``single_threaded``), which would
    make the ratio depend on what ran first; one fresh process still scatters by +-20% on a shared VM."""
    code = ("import json, bench.speed.regression as R; "
            f"print(json.dumps(R.measure_batched_vs_sequential(repeats={int(repeats)})))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    results = []
    for _ in range(int(runs)):
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"measuring speedup.batched_vs_sequential failed:\n{r.stderr[-2000:]}")
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    results.sort(key=lambda x: x["value"])
    mid = dict(results[len(results) // 2])
    mid["runs"] = [round(x["value"], 4) for x in results]
    return mid


def measure(only=None, *, data=None, data_dir=None, repeats: int | None = None, log=None) -> dict:
    """Measure the metrics whose names contain one of ``only`` (all by default): {name: {"value": ...}}."""
    def wanted(name):
        return not only or any(o in name for o in only)

    speed = {
        "speedup.numba_vs_lrcore_numpy": measure_numba_vs_lrcore_numpy,
        "speedup.numba_vs_closed_form": measure_numba_vs_closed_form,
        "speedup.many_numba_vs_numpy": measure_many_numba_vs_numpy,
        "speedup.batched_vs_sequential": measure_batched_vs_sequential_fresh,
    }
    out = {}
    for name, fn in speed.items():
        if wanted(name):
            t0 = time.perf_counter()
            out[name] = fn() if repeats is None else fn(repeats=repeats)
            if log:
                log(f"{name}: {out[name]['value']:.2f}x ({time.perf_counter() - t0:.1f} s)")
    if any(wanted(n) for n in METRICS if n.startswith("error_rate.")):
        t0 = time.perf_counter()
        errs = measure_error_rates(data, data_dir)
        out.update({k: v for k, v in errs.items() if wanted(k)})
        if log:
            log(f"short training: mean error {errs['error_rate.mean']['value']:.4f} ({time.perf_counter() - t0:.1f} s)")
    return out

# ---------------------------------------------------------------------------------------------- judging


@dataclasses.dataclass
class Verdict:
    name: str
    kind: str
    description: str
    baseline: float | None
    measured: float | None
    limit: float | None
    ok: bool
    note: str = ""
    #: False when there was nothing to judge against (no baseline value of this set-up, not measured)
    judged: bool = True


def judge(measured: dict, baseline: dict, *, require_all: bool = True) -> list[Verdict]:
    """One verdict per metric of the baseline (and per measured metric the baseline lacks).

    ``measured``: {name: {"value": x} or x}; ``baseline``: the baseline file's dict (``{"metrics": {name:
    {"value", "kind", "tolerance", "revision"}}}``). Verdicts that cannot judge (``judged=False``, never ok):
    a metric of the baseline that was not measured (left out unless ``require_all``), a measured metric the
    baseline lacks, and one whose baseline value is of another set-up revision than :data:`METRICS`'s (the
    measurement changed since the baseline was written): the note says how to re-measure its baseline.
    """
    def val(v):
        return None if v is None else float(v["value"] if isinstance(v, dict) else v)

    base = baseline.get("metrics", {})
    out = []
    for name in list(base) + [n for n in measured if n not in base]:
        ref = METRICS.get(name)
        b = base.get(name, {})
        stale = bool(b) and ref is not None and int(b.get("revision", 1)) != ref.revision
        if stale:  # the current set-up's kind, tolerance and description; the old value is no reference
            b = {}
        kind = b.get("kind", ref.kind if ref else "speedup")
        tol = float(b.get("tolerance", ref.tolerance if ref else 0.0))
        desc = b.get("description", ref.description if ref else "")
        got, want = val(measured.get(name)), val(b) if b else None
        if got is None:
            if require_all:
                out.append(Verdict(name, kind, desc, want, None, None, False, "not measured", judged=False))
            continue
        if want is None:
            how = f"python -m bench.regression --update --only {name}"
            note = (f"baseline is of set-up revision {int(base[name].get('revision', 1))}, the gate measures "
                    f"revision {ref.revision}: {how}") if stale else f"no baseline: {how}"
            out.append(Verdict(name, kind, desc, None, got, None, False, note, judged=False))
            continue
        if not math.isfinite(got):
            out.append(Verdict(name, kind, desc, want, got, None, False, "not finite"))
            continue
        if kind == "speedup":
            limit = want / tol
            ok = got >= limit
            note = "" if ok else f"{want / got:.1f}x slower than baseline"
        else:
            limit = want + tol
            ok = got <= limit
            note = "" if ok else f"+{got - want:.4f} error"
        if ok and kind == "error" and got < want - tol:
            note = "better than baseline (--update?)"
        out.append(Verdict(name, kind, desc, want, got, limit, ok, note))
    return out


def _fmt(kind: str, v: float | None, limit=False) -> str:
    if v is None:
        return "-"
    if kind == "speedup":
        return f"{'>= ' if limit else ''}{v:.2f}x"
    return f"{'<= ' if limit else ''}{v:.4f}"


def render(verdicts: list[Verdict], title: str = "regression gate", file=None) -> None:
    """Print the judged table (rich)."""
    from rich.console import Console
    from rich.table import Table
    table = Table(title=title, title_justify="left")
    for col, just in (("metric", "left"), ("what", "left"), ("baseline", "right"), ("measured", "right"),
                      ("limit", "right"), ("verdict", "left")):
        table.add_column(col, justify=just)
    for v in verdicts:
        verdict = "[green]ok[/]" if v.ok else "[bold red]REGRESSION[/]" if v.judged else "[bold yellow]NOT JUDGED[/]"
        if v.note:
            verdict += f" ({v.note})"
        table.add_row(v.name, v.description, _fmt(v.kind, v.baseline), _fmt(v.kind, v.measured),
                      _fmt(v.kind, v.limit, limit=True), verdict)
    console = Console(file=file, width=None if (file or sys.stdout).isatty() else 160)
    console.print(table)
    bad = sum(not v.ok and v.judged for v in verdicts)
    unjudged = sum(not v.judged for v in verdicts)
    console.print(f"{sum(v.ok for v in verdicts)}/{len(verdicts)} within tolerance"
                  + (f"; {bad} REGRESSION(S)" if bad else "") + (f"; {unjudged} NOT JUDGED" if unjudged else ""))

# --------------------------------------------------------------------------------------------- baseline


def load_baseline(path=DEFAULT_BASELINE) -> dict:
    return json.loads(Path(path).read_text())


def _git_commit() -> tuple[str | None, bool | None]:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return None, None


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "torch"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


def write_baseline(measured: dict, path=DEFAULT_BASELINE, previous: dict | None = None) -> dict:
    """Write ``measured`` as the baseline (tolerances kept from ``previous`` where it has them for the same
    set-up revision). An entry of ``measured`` that has a ``revision`` is one carried over from the previous
    baseline unmeasured (``--update --only``): it keeps its revision and description."""
    prev = (previous or {}).get("metrics", {})
    metrics = {}
    for name, v in measured.items():
        ref = METRICS.get(name)
        if "revision" in v:  # carried over unmeasured: kept as it was
            entry = {k: v[k] for k in ("value", "kind", "tolerance", "description", "revision") if k in v}
        else:
            old = prev.get(name, {})
            if int(old.get("revision", 1)) != ref.revision:  # a new set-up: its own kind and tolerance
                old = {}
            entry = {"value": float(v["value"]), "kind": old.get("kind", ref.kind),
                     "tolerance": float(old.get("tolerance", ref.tolerance)), "description": ref.description,
                     "revision": ref.revision}
        for extra in ("slow_s", "fast_s", "spread", "seconds"):
            if extra in v:
                entry[extra] = v[extra]
        metrics[name] = entry
    sha, dirty = _git_commit()
    doc = {"about": "regression gate baseline: python -m bench.regression --update (see docs/TRACKING.md)",
           "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "git_commit": sha, "git_dirty": dirty, "machine": platform.node(), "cpu": _cpu_name(),
           "cpu_count": os.cpu_count(), "versions": _versions(), "metrics": metrics}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

# -------------------------------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.regression", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=str(DEFAULT_BASELINE), help="baseline JSON (default: %(default)s)")
    ap.add_argument("--update", action="store_true", help="write the measurements as the new baseline")
    ap.add_argument("--only", nargs="+", metavar="TEXT", help="only metrics whose name contains TEXT")
    ap.add_argument("--repeats", type=int, default=None, help="rounds per speed ratio (default 7 for the kernels, 5 for training)")
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the loader's search)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the measurements and verdicts here")
    args = ap.parse_args(argv)

    path = Path(args.baseline)
    baseline = None
    if path.exists():
        baseline = load_baseline(path)
    elif not args.update:
        print(f"regression gate: no baseline at {path}; create it with python -m bench.regression --update",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        measured = measure(args.only, data_dir=args.data_dir, repeats=args.repeats,
                           log=lambda s: print(f"  measured {s}", flush=True))
    except (FileNotFoundError, ValueError) as exc:  # Fashion-MNIST missing or corrupt
        print(f"regression gate: cannot measure: {exc}", file=sys.stderr)
        return 2
    print(f"  ({time.perf_counter() - t0:.1f} s)")
    if args.update:
        if baseline is not None and args.only:  # keep the metrics that were not re-measured
            merged = {k: {**v, "revision": int(v.get("revision", 1))} for k, v in baseline["metrics"].items()
                      if k not in measured}
            merged.update(measured)
            measured = merged
        doc = write_baseline(measured, path, baseline)
        render(judge(measured, doc), title=f"regression baseline written: {path}")
        return 0
    verdicts = judge(measured, baseline, require_all=not args.only)
    render(verdicts, title=f"regression gate vs {path} (commit {str(baseline.get('git_commit'))[:10]})")
    if args.json:
        Path(args.json).write_text(json.dumps({"measured": measured,
                                               "verdicts": [dataclasses.asdict(v) for v in verdicts]}, indent=2))
    if any(not v.ok and v.judged for v in verdicts):
        return 1
    return 0 if all(v.ok for v in verdicts) else 2


if __name__ == "__main__":
    sys.exit(main())
