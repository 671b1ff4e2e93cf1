"""lrcore evaluation speed per schedule family, as a share of the machine's write limit.

The *write limit* is a Numba parallel loop writing ``i * c`` into the same preallocated float64 buffer
(every core, the fastest a kernel can fill that memory). Each family runs
``lrcore.evaluate(s, n, backend="numba", out=buf)`` into that buffer; ``evaluate_many`` of ``m`` mixed
schedules (every family, random parameters) writes ``m x k`` values. Both are measured side by side in
one process, alternating, several rounds (compilation excluded); a figure is the median of the
rounds' values per second, and the share is family / write limit of the same rounds.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

import lrcore


def _write_limit_kernel():
    import numba

    @numba.njit(parallel=True, cache=True)
    def fill(out, c):
        for i in numba.prange(out.shape[0]):
            out[i] = i * c
    return fill


def families(n: int) -> dict[str, lrcore.Schedule]:
    """One schedule per family, sized to ``n`` steps."""
    S = lrcore
    w = max(1, n // 100)
    return {
        "constant": S.Constant(0.1),
        "linear": S.Linear(0.1, 0.0, n),
        "cosine": S.Cosine(0.1, n, floor=1e-4),
        "warmup+cosine": S.Warmup(S.Cosine(0.1, n - w), steps=w, start_factor=1e-3),
        "cosine periodic": S.Cosine(0.1, max(1, n // 7), periodic=True),
        "step": S.Step(0.1, max(1, n // 10), 0.5),
        "multistep": S.MultiStep(0.1, [n // 4, n // 2, 3 * n // 4], 0.3),
        "piecewise constant": S.PiecewiseConstant([n // 5 * k for k in range(1, 5)], [0.1, 0.05, 0.02, 0.01, 0.005]),
        "exponential": S.Exponential(0.1, 0.5, max(1, n // 10)),
        "exponential staircase": S.Exponential(0.1, 0.5, max(1, n // 10), staircase=True),
        "inverse-time": S.InverseTime(0.1, 0.5, max(1, n // 10)),
        "polynomial (power 1.7)": S.Polynomial(0.1, n, end=1e-4, power=1.7),
        "cosine restarts": S.CosineRestarts(0.1, max(1, n // 20), t_mul=2.0, m_mul=0.9),
        "one-cycle (3 phase)": S.OneCycle(0.1, n, three_phase=True),
        "cyclic triangular": S.Cyclic(0.01, 0.1, max(1, n // 40)),
        "cyclic exp_range": S.Cyclic(0.01, 0.1, max(1, n // 40), mode="exp_range", gamma=1 - 10 / n),
        "inverse-sqrt": S.InverseSqrt(0.1, max(1, n // 50)),
        "wsd (1-sqrt)": S.WSD(0.1, n, n // 20, n // 5, cooldown="1-sqrt"),
        "Sequential(linear, cosine)": S.Sequence([S.Linear(0.0, 0.1, n // 10), S.Cosine(0.1, n - n // 10)], [n // 10]),
    }


def measure(n: int = 20_000_000, many: int = 1000, many_steps: int = 20_000, rounds: int = 5,
            names: list[str] | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Rows: family, values, values_per_second, write_limit_values_per_second, share, max_rel_err
    (numba vs the numpy backend at 4,000 sampled steps)."""
    fill = _write_limit_kernel()
    buf = np.empty(n)
    fill(buf, 1.5)
    cases: dict[str, Callable[[], object]] = {}
    check: dict[str, Callable[[], float]] = {}
    sample = np.unique(np.r_[np.random.default_rng(0).integers(0, n, 4000), np.arange(50), np.arange(n - 50, n)])
    for name, s in families(n).items():
        if names and name not in names:
            continue
        cases[name] = (lambda s=s: lrcore.evaluate(s, n, backend="numba", out=buf))
        check[name] = (lambda s=s: _rel_err(buf[sample], lrcore.evaluate(s, sample, backend="numpy")))
    mixed = mixed_schedules(many, many_steps)
    mbuf = buf[: many * many_steps].reshape(many, many_steps)
    label = f"evaluate_many {many} mixed x {many_steps}"
    if not names or label in names or "evaluate_many" in names:
        cases[label] = lambda: lrcore.evaluate_many(mixed, many_steps, backend="numba", out=mbuf)
        rows_idx = np.arange(0, many, 37)
        check[label] = lambda: _rel_err(mbuf[rows_idx], lrcore.evaluate_many([mixed[i] for i in rows_idx], many_steps,
                                                                             backend="numpy"))
    rows = []
    for name, fn in cases.items():
        fn()  # compile, fault in
        values = many * many_steps if name == label else n
        ours, limit = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            fill(buf, 1.5)
            limit.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            fn()
            ours.append(values / (time.perf_counter() - t))
        err = check[name]()
        row = dict(family=name, values=values, values_per_second=statistics.median(ours),
                   write_limit_values_per_second=statistics.median(limit),
                   share=statistics.median(o / lim for o, lim in zip(ours, limit)), max_rel_err=err)
        rows.append(row)
        log(f"{name:32s} {row['values_per_second']:.3g} values/s  {100 * row['share']:5.1f}% of the write limit "
            f"({row['write_limit_values_per_second']:.3g}/s)  max rel err {err:.2g}")
    return rows


def _rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300))) if want.size else 0.0


def mixed_schedules(m: int, steps: int, seed: int = 0) -> list:
    """m schedules cycling through every family, random parameters sized to ``steps``."""
    rng = np.random.default_rng(seed)
    S = lrcore
    makers = [
        lambda lr, T: S.Constant(lr),
        lambda lr, T: S.Step(lr, int(rng.integers(1, T)), float(rng.uniform(0.1, 0.9))),
        lambda lr, T: S.MultiStep(lr, sorted(rng.integers(1, T, 3).tolist()), 0.3),
        lambda lr, T: S.Exponential(lr, float(rng.uniform(0.5, 0.99)), int(rng.integers(1, T // 10))),
        lambda lr, T: S.InverseTime(lr, float(rng.uniform(0.1, 2)), int(rng.integers(1, T // 10))),
        lambda lr, T: S.Polynomial(lr, int(rng.integers(1, T)), end=lr / 100, power=2.0, cycle=bool(rng.integers(2))),
        lambda lr, T: S.Cosine(lr, int(rng.integers(1, T)), floor=lr / 10, periodic=bool(rng.integers(2))),
        lambda lr, T: S.CosineRestarts(lr, int(rng.integers(1, T // 4)), t_mul=float(rng.choice([1.0, 2.0, 1.5])), m_mul=0.8),
        lambda lr, T: S.OneCycle(lr, T, three_phase=bool(rng.integers(2))),
        lambda lr, T: S.Cyclic(lr / 10, lr, int(rng.integers(1, T // 4)), mode=str(rng.choice(["triangular", "triangular2", "exp_range"])), gamma=0.9999),
        lambda lr, T: S.InverseSqrt(lr, int(rng.integers(0, T // 10))),
        lambda lr, T: S.WSD(lr, T, T // 20, T // 5, cooldown=str(rng.choice(["linear", "cosine", "1-sqrt"]))),
        lambda lr, T: S.Warmup(S.Cosine(lr, T - T // 50), T // 50),
        lambda lr, T: S.Sequence([S.Linear(0.0, lr, T // 10), S.Cosine(lr, T - T // 10)], [T // 10]),
        lambda lr, T: S.Product([S.Step(1.0, T // 3, 0.5), S.Exponential(lr, 0.9999)]),
    ]
    return [makers[i % len(makers)](float(10 ** rng.uniform(-4, 0)), steps) for i in range(m)]


def write(rows: list[dict], out_dir: Path, machine: dict) -> Path:
    """results/speed/evaluate_families_cpu.csv, the machine (CPU model, core count) on every row."""
    from ..results import write_csv
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{machine.get('cpu', '')} ({machine.get('cores', '')} cores, {machine.get('threads', '')} threads)"
    return write_csv(out_dir / "evaluate_families_cpu.csv", [{**r, "machine": name} for r in rows],
                     [*rows[0], "machine"])


def table(rows: list[dict]) -> str:
    lines = [f"{'family':34s} {'values/s':>10s} {'write limit/s':>14s} {'share':>7s} {'max rel err':>12s}"]
    for r in rows:
        lines.append(f"{r['family']:34s} {r['values_per_second']:10.3g} {r['write_limit_values_per_second']:14.3g} "
                     f"{100 * r['share']:6.1f}% {r['max_rel_err']:12.2g}")
    return "\n".join(lines)
