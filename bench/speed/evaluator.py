"""Evaluator speed: lrcore against plain NumPy, PyTorch and Keras, measured side by side in one run.

``run(...)`` times one warmup + cosine schedule and ``evaluate_many`` of mixed schedules (``lrbench speed``);
``write`` puts ``evaluate_cpu.csv`` / ``.json`` under the results root's ``speed/``. Cases, methods and
accuracy columns: docs/BENCH.md, "bench/speed/evaluator.py".
Every schedule family against the machine's write limit: ``family_rows`` (``bench.speed.families``,
``evaluate_families_cpu.csv``).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import lrcore

from .families import mixed_schedules  # every family, random parameters



@dataclass
class Row:
    case: str
    method: str
    steps: int  # values computed per run
    seconds: float  # median (or extrapolated) seconds for ``steps`` values
    timed_steps: int  # values actually computed in the timed run
    max_rel_err: float | None = None
    share: float | None = None  # families case: median share of the write limit, measured alongside

    @property
    def rate(self) -> float:
        return self.steps / self.seconds


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: compile, fault in memory
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def warmup_cosine(n: int, peak: float = 0.1, start_factor: float = 1e-3):
    w = max(1, n // 100)
    return lrcore.Warmup(lrcore.Cosine(lr=peak, decay_steps=n - w), steps=w, start_factor=start_factor), w


def numpy_closed_form(t: np.ndarray, n: int, peak: float = 0.1, start_factor: float = 1e-3) -> np.ndarray:
    """What people write by hand: linear warmup, then 0.5 * peak * (1 + cos(pi * progress))."""
    w = max(1, n // 100)
    warm = peak * (start_factor + (1 - start_factor) * t / w)
    cos = 0.5 * peak * (1 + np.cos(np.pi * (t - w) / (n - w)))
    return np.where(t < w, warm, cos)


def exact_values(t: np.ndarray, n: int, peak: float = 0.1, start_factor: float = 1e-3) -> np.ndarray:
    """The same schedule with 40-digit arithmetic (mpmath)."""
    import mpmath
    mpmath.mp.dps = 40
    w = max(1, n // 100)
    out = []
    for s in t.tolist():
        if s < w:
            v = mpmath.mpf(peak) * (mpmath.mpf(start_factor) + (1 - mpmath.mpf(start_factor)) * mpmath.mpf(s) / w)
        else:
            v = mpmath.mpf(peak) * (1 + mpmath.cos(mpmath.pi * mpmath.mpf(s - w) / (n - w))) / 2
        out.append(float(v))
    return np.array(out)


def sample_steps(n: int, k: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = max(1, n // 100)
    edges = np.r_[np.arange(0, 50), np.arange(w - 50, w + 50), np.arange(n - 200, n)]
    return np.unique(np.r_[edges, rng.integers(0, n, k)]).astype(np.int64)


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))


def torch_loop(n: int, total: int, peak: float = 0.1, start_factor: float = 1e-3) -> np.ndarray:
    """The first n learning rates of the total-step schedule, PyTorch stepping once per step."""
    import torch
    from torch.optim import lr_scheduler as L
    w = max(1, total // 100)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = L.SequentialLR(opt, [L.LinearLR(opt, start_factor=start_factor, total_iters=w),
                                 L.CosineAnnealingLR(opt, T_max=total - w)], milestones=[w])
    out = np.empty(n)
    for t in range(n):
        out[t] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return out


def keras_calls(n: int, total: int, peak: float = 0.1, start_factor: float = 1e-3) -> np.ndarray | None:
    """The first n values of the total-step Keras schedule, called once per step (None without keras)."""
    try:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
    except ImportError:
        return None
    w = max(1, total // 100)
    sched = keras.optimizers.schedules.CosineDecay(initial_learning_rate=peak * start_factor,
                                                   decay_steps=total - w, warmup_target=peak, warmup_steps=w)
    step = keras.Variable(0, dtype="int64")
    out = np.empty(n)
    for t in range(n):
        step.assign(t)
        out[t] = float(sched(step))
    return out


def run(n: int = 50_000_000, many: int = 1000, many_steps: int = 100_000, repeats: int = 5,
        torch_steps: int = 100_000, keras_steps: int = 2_000, log: Callable[[str], None] = print) -> list[Row]:
    """Measure every method; returns rows (also for tests with small sizes)."""
    rows: list[Row] = []
    sched, w = warmup_cosine(n)
    sample = sample_steps(n)
    exact = exact_values(sample, n)
    case = f"warmup(1%)+cosine, {n:.0e} steps, float64"

    log("lrcore numba (reused output buffer)")
    out = np.empty(n)
    sec = median_time(lambda: lrcore.evaluate(sched, n, backend="numba", out=out), repeats)
    rows.append(Row(case, "lrcore numba", n, sec, n, rel_err(out[sample], exact)))

    log("lrcore numba (fresh output array)")
    sec = median_time(lambda: lrcore.evaluate(sched, n, backend="numba"), repeats)
    rows.append(Row(case, "lrcore numba, new array", n, sec, n, rows[-1].max_rel_err))

    log("lrcore numpy backend")
    reps = max(1, repeats // 2)
    sec = median_time(lambda: lrcore.evaluate(sched, n, backend="numpy"), reps)
    rows.append(Row(case, "lrcore numpy", n, sec, n, rel_err(lrcore.evaluate(sched, sample, backend="numpy"), exact)))

    log("plain numpy closed form")
    t = np.arange(n, dtype=np.int64)
    sec = median_time(lambda: numpy_closed_form(t, n), reps)
    rows.append(Row(case, "numpy closed form", n, sec, n, rel_err(numpy_closed_form(sample, n), exact)))
    del t

    log(f"PyTorch SequentialLR loop ({torch_steps:.0e} steps, extrapolated)")
    try:
        torch_loop(10, n)  # import and warm up outside the timed run
        start = time.perf_counter()
        lrs = torch_loop(torch_steps, n)
        sec = time.perf_counter() - start
        prefix = sample[sample < torch_steps]
        rows.append(Row(case, "PyTorch SequentialLR loop", n, sec * n / torch_steps, torch_steps,
                        rel_err(lrs[prefix], exact[: prefix.size])))
    except ImportError:
        log("  torch not installed: skipped")

    log(f"Keras CosineDecay(warmup) per-step calls ({keras_steps:.0e} steps, extrapolated)")
    keras_calls(10, n)
    start = time.perf_counter()
    lrs = keras_calls(keras_steps, n)
    if lrs is None:
        log("  keras not installed: skipped")
    else:
        sec = time.perf_counter() - start
        prefix = sample[sample < keras_steps]
        rows.append(Row(case, "Keras CosineDecay calls", n, sec * n / keras_steps, keras_steps,
                        rel_err(lrs[prefix], exact[: prefix.size])))

    case = f"evaluate_many: {many} mixed schedules x {many_steps:.0e} steps"
    log(case)
    scheds = mixed_schedules(many, many_steps)
    out = np.empty((many, many_steps))
    sec = median_time(lambda: lrcore.evaluate_many(scheds, many_steps, backend="numba", out=out), repeats)
    ref = lrcore.evaluate_many(scheds, many_steps, backend="numpy")
    err = float(np.max(np.abs(out - ref) / np.maximum(np.abs(ref), 1e-300)))
    rows.append(Row(case, "lrcore numba evaluate_many", many * many_steps, sec, many * many_steps, err))
    sec = median_time(lambda: lrcore.evaluate_many(scheds, many_steps, backend="numpy"), 1)
    rows.append(Row(case, "lrcore numpy evaluate_many", many * many_steps, sec, many * many_steps, 0.0))
    rows += family_rows(min(n, FAMILY_STEPS), many, repeats, log)
    return rows


FAMILY_STEPS = 20_000_000
FAMILY_CASE = "families: lrcore numba into a reused buffer vs the write limit"
WRITE_LIMIT = "write limit (numba parallel i * c)"


def family_rows(n: int, many: int, repeats: int, log: Callable[[str], None] = print) -> list[Row]:
    """Every schedule family (and evaluate_many of ``many`` mixed schedules, n values in all) against the
    write limit, side by side in this process (``bench.speed.families``); the table's ratio column is the
    share of the write limit."""
    from . import families
    log(f"families: {n:.0e} steps each, against the write limit")
    fam = families.measure(n=n, many=many, many_steps=max(100, n // many), rounds=max(3, repeats), log=log)
    limit = statistics.median(r["write_limit_values_per_second"] for r in fam)
    out = [Row(FAMILY_CASE, WRITE_LIMIT, n, n / limit, n, None, 1.0)]
    out += [Row(FAMILY_CASE, r["family"], r["values"], r["values"] / r["values_per_second"], r["values"],
                r["max_rel_err"], r["share"]) for r in fam]
    log("\n" + families.table(fam))
    return out


def table(rows: list[Row]) -> list[dict]:
    """Rows as dicts with the ratio to the plain numpy closed form (case 1) or numpy backend (case 2)."""
    base = {}
    for r in rows:
        if r.method in ("numpy closed form", "lrcore numpy evaluate_many", WRITE_LIMIT):
            base[r.case] = r.rate
    # families: the ratio is the share of the write limit measured round by round alongside
    return [{"case": r.case, "method": r.method, "values": r.steps, "timed_values": r.timed_steps,
             "median_seconds": r.seconds, "values_per_second": r.rate,
             "speedup_vs_numpy": r.share if r.share is not None else (r.rate / base[r.case] if r.case in base else None),
             "max_rel_err": r.max_rel_err} for r in rows]


def write(rows: list[Row], out_dir: Path, meta: dict) -> Path:
    """<out_dir>/evaluate_cpu.csv and .json (rows + machine)."""
    from ..results import write_csv, write_text  # here: the asv suite loads this module outside the package
    out_dir.mkdir(parents=True, exist_ok=True)
    records = table(rows)
    path = out_dir / "evaluate_cpu.csv"
    write_csv(path, [{**rec, "machine": f"{meta['cpu']} ({meta['threads']} threads)"} for rec in records],
              list(records[0]) + ["machine"])
    write_text(out_dir / "evaluate_cpu.json", json.dumps({"machine": meta, "rows": records}, indent=2))
    fam = [r for r in rows if r.case == FAMILY_CASE and r.method != WRITE_LIMIT]
    if fam:
        from . import families
        limit = next(r.rate for r in rows if r.method == WRITE_LIMIT)
        families.write([dict(family=r.method, values=r.steps, values_per_second=r.rate,
                             write_limit_values_per_second=limit, share=r.share, max_rel_err=r.max_rel_err)
                        for r in fam], out_dir, meta)
    return path
