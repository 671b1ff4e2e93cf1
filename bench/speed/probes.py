"""What the regression gate and the asv suite measure: speed probes, the training pair, error rates.

The gate (``bench.speed.regression``) runs :func:`serve` in one worker process per source tree (the commit under
test and its reference) and times the :data:`PROBES` there, so each tree's own ``lrcore`` and ``bench``
are measured by the same probe code (this file, from the tree under test). Project code is imported by
absolute name through :func:`project_module`, which also knows the older module names, so a reference
commit of an earlier layout is measured too. The asv suite imports this file the same way.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import statistics
import sys
import time
import traceback
from typing import Callable

import numpy as np

#: Where the batched model (``BatchedMLP``, ``BatchedOptimizer``, ``train_step``) and the chunk trainer
#: (``OPTIMIZERS``, ``TrainConfig``, ``batch_permutation``) live, newest layout first.
MODEL_MODULES = ("bench.train.model", "bench.batched")
TRAINER_MODULES = ("bench.train.batched", "bench.trainer")

#: (optimizer name, peak lr) of the training probes' models: the quick matrix's peaks.
TRAIN_OPTIMIZERS = [("sgd", 0.1), ("momentum", 0.01), ("nesterov", 0.01), ("rmsprop", 5e-4), ("adam", 1e-3),
                    ("adamw", 1e-3)]
#: The schedule of every model of the training probes (placeholders as the trainer's TrainConfig).
TRAIN_SCHEDULE = "Warmup(Cosine(lr=peak, decay_steps=total - total // 20), steps=total // 20)"
#: models (the runner's chunk on the CPU), paired seeds (a seed's models share its batches), torch and numba
#: threads (the trainers' own setting on the 2-core CPU), steps of each model per timed call.
TRAIN_MODELS, TRAIN_SEEDS, TRAIN_THREADS, TRAIN_STEPS = 36, 2, 2, 2


def project_module(*names: str):
    """The first of ``names`` that imports (a project module under its current or an older name)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
    raise ModuleNotFoundError(f"none of {', '.join(names)} in this tree")


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
                 widths=(784, 256, 128, 10), n_train: int = 6400, total: int = 10_000, seed: int = 0,
                 precision: str = "fp32"):
        import torch

        import lrcore
        from lrcore.integrations.torch import LrcoreScheduler
        model, trainer = project_module(*MODEL_MODULES), project_module(*TRAINER_MODULES)
        OPTIMIZER_DEFAULTS, BatchedMLP, BatchedOptimizer = (model.OPTIMIZER_DEFAULTS, model.BatchedMLP,
                                                            model.BatchedOptimizer)
        torch_optimizer, torch_reference_model = model.torch_optimizer, model.torch_reference_model
        OPTIMIZERS, TrainConfig, batch_permutation = trainer.OPTIMIZERS, trainer.TrainConfig, trainer.batch_permutation

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

        # batched: as bench.trainer.train_chunk builds it (bf16: the images rounded once, the stack's matmuls in
        # bfloat16; a tree without precision raises TypeError here, and the gate leaves the probe unjudged)
        self.lr_table = lrcore.evaluate_many(scheds, self.total).astype(np.float32)
        self.stack = BatchedMLP([c.seed for c in configs], widths, **({"precision": precision}
                                                                      if precision != "fp32" else {}))
        self.x_low = self.x.to(torch.bfloat16) if precision == "bf16" else self.x
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
        t = self.t_batched
        idx = self.perms[:, self._batch(t)]                                    # (seeds, B)
        train_step = project_module(*MODEL_MODULES).train_step  # looked up at each call (a test may swap it)
        losses, self.active = train_step(self.stack, self.opt, self.x_low[idx], self.y[idx],
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


def measure_error_rates(data=None, data_dir=None, precisions=("fp32", "bf16")) -> dict:
    """The short training's error rates per precision: ``error_rate.<config>`` (fp32) and
    ``error_rate.bf16.<config>`` -- separate metrics, never pooled."""
    from .shortrun import short_training
    out = {}
    for precision in precisions:
        r = short_training(data, data_dir=data_dir, precision=precision)
        key = "error_rate." if precision == "fp32" else f"error_rate.{precision}."
        out.update({f"{key}{k}": {"value": round(v, 6)} for k, v in r["error_rate"].items()})
        out[f"{key}mean"] = {"value": round(r["mean_error_rate"], 6), "seconds": r["seconds"], "steps": r["steps"]}
    return out


# ------------------------------------------------------------------------------ the gate's speed probes


def _probe_evaluate(n: int = 1_000_000):
    import lrcore
    s, out = warmup_cosine(n), np.empty(n)
    return lambda: lrcore.evaluate(s, n, backend="numba", out=out)


def _probe_evaluate_many(m: int = 200, n: int = 5000):
    import lrcore
    scheds, out = mixed_schedules(m, n), np.empty((m, n))
    return lambda: lrcore.evaluate_many(scheds, n, backend="numba", out=out)


def _probe_batched():
    pair = TrainingPair(TRAIN_MODELS, TRAIN_SEEDS)
    return lambda: pair.batched(TRAIN_STEPS)


def _probe_batched_bf16():
    pair = TrainingPair(TRAIN_MODELS, TRAIN_SEEDS, precision="bf16")
    return lambda: pair.batched(TRAIN_STEPS)


def _probe_sequential():
    pair = TrainingPair(len(TRAIN_OPTIMIZERS), 1)  # one model per optimizer: its cost is linear in models
    return lambda: pair.sequential(TRAIN_STEPS)


#: name -> (set-up returning the timed call, numba/torch threads, description). Each probe is timed in the
#: candidate's and the reference's tree, in turn; the gate judges the ratio of the two times. One thread:
#: two threads meet at a barrier in every torch op, and a busy neighbour on a 2-core machine then delays
#: one process's small ops 3x more than the other's (seen: unchanged code at 0.33x on 2 threads).
PROBES: dict[str, tuple[Callable[[], Callable[[], object]], int, str]] = {
    "evaluate.warmup_cosine": (_probe_evaluate, 1, "lrcore.evaluate, warmup+cosine, 1e6 steps, numba, 1 thread"),
    "evaluate_many.mixed": (_probe_evaluate_many, 1,
                            "lrcore.evaluate_many, 200 mixed schedules x 5000 steps, numba, 1 thread"),
    "train.batched_step": (_probe_batched, 1, f"batched trainer: {TRAIN_STEPS} steps of {TRAIN_MODELS} MLPs, 1 thread"),
    "train.batched_step.bf16": (_probe_batched_bf16, 1, f"batched trainer in bf16: {TRAIN_STEPS} steps of "
                                                        f"{TRAIN_MODELS} MLPs, 1 thread"),
    "train.sequential_step": (_probe_sequential, 1, f"sequential trainer (torch.optim): {TRAIN_STEPS} steps of "
                                                    f"each of {len(TRAIN_OPTIMIZERS)} MLPs, 1 thread"),
}

#: The prefix of the worker's answer lines (anything else a library prints on stdout is passed over).
REPLY = "@@lrbench-gate "


def serve(tree: str) -> None:
    """The worker loop: one JSON request per line on stdin (``{"probe": name, "inner": k}``), one answer
    line on stdout: the best of ``k`` calls in seconds, or the error. A probe is set up and called once
    (compilation, allocations) on its first request."""
    def reply(obj):
        sys.stdout.write(REPLY + json.dumps(obj) + "\n")
        sys.stdout.flush()

    # where the project's packages come from (looked up, not imported: the gate checks they are ``tree``'s)
    reply({"tree": tree, **{name: importlib.util.find_spec(name).origin for name in ("lrcore", "bench")}})
    ready: dict[str, Callable[[], object]] = {}
    for line in sys.stdin:
        req = json.loads(line)
        name = req["probe"]
        try:
            make, threads, _ = PROBES[name]
            with pinned_threads(threads):
                if name not in ready:
                    ready[name] = make()
                    ready[name]()
                seconds = best_time(ready[name], int(req.get("inner", 3)))
            reply({"seconds": seconds})
        except Exception as exc:  # reported to the gate, which says which tree failed and how
            reply({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]})
