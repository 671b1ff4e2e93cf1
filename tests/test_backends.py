"""The backends of ``lrcore.evaluate`` against each other, and the evaluator's array plumbing.

Contract (DESIGN.md, Numerics): numpy vs numba agree to a relative error <= 1e-12 in float64; values
are never NaN (and, being learning rates, never negative); ``evaluate_many`` is one evaluation per
schedule stacked; float32 output is the float64 result rounded; ``out=`` buffers are written in place.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrcore
from lrcore import (Constant, Cosine, Cyclic, Lambda, Linear, Multiplicative, OneCycle, Product,
                    Sequence, Step, Warmup)
from strategies import max_step_for, schedules, schedules_and_steps, step_arrays

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-12, 1e-300
BACKENDS = ("numpy", "numba")


def assert_close(a, b, what="", rtol=RTOL, atol=ATOL):
    """|a - b| <= rtol * max(|a|, |b|) + atol elementwise (NaN or inf anywhere fails)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} != {b.shape}"
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)) + atol
    if not ok.all():
        i = np.flatnonzero(~ok.ravel())[:5]
        with np.errstate(all="ignore"):
            rel = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
        raise AssertionError(f"{what}: {int((~ok).sum())} of {ok.size} differ; at flat index {i.tolist()}: "
                             f"{a.ravel()[i].tolist()} vs {b.ravel()[i].tolist()} (rel {rel.ravel()[i].tolist()})")


def ev(s, steps, backend, **kw):
    return lrcore.evaluate(s, steps, backend=backend, **kw)


# --- properties over random schedules -------------------------------------------------------------------

@given(schedules_and_steps(max_size=100))
def test_numpy_and_numba_agree(case):
    s, steps = case
    assert_close(ev(s, steps, "numpy"), ev(s, steps, "numba"), f"{s} at {steps.tolist()}")
    n = min(max_step_for(s), 3000)
    assert_close(ev(s, n, "numpy"), ev(s, n, "numba"), f"{s} at 0..{n - 1}")


@given(schedules_and_steps(), st.sampled_from(BACKENDS))
def test_values_are_finite_and_non_negative(case, backend):
    s, steps = case
    v = ev(s, steps, backend)
    assert v.dtype == np.float64 and v.shape == steps.shape
    bad = ~(np.isfinite(v) & (v >= 0))
    assert not bad.any(), f"{s} ({backend}) at steps {steps[bad].tolist()}: {v[bad].tolist()}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("schedule", [
    OneCycle(max_lr=1.0, total_steps=100, anneal="linear"),
    OneCycle(max_lr=1.0, total_steps=100, anneal="linear", three_phase=True),
    OneCycle(max_lr=1.0, total_steps=100),
], ids=str)
def test_one_cycle_is_never_negative_around_total_steps(schedule, backend):
    """OneCycle's last phase extrapolates to t = total_steps (as PyTorch's does); a linear anneal
    extrapolated one step past min_lr = max_lr / 25e4 goes below zero. A learning rate is >= 0."""
    T = schedule.total_steps
    v = ev(schedule, np.arange(T - 3, T + 3), backend)
    assert np.all(v >= 0), f"{schedule} ({backend}) at steps {T - 3}..{T + 2}: {v.tolist()}"


@st.composite
def contiguous_cases(draw):
    s = draw(schedules())
    n = draw(st.one_of(st.integers(0, 50), st.integers(2000, 5000)))  # 2048-step tiles: cross a tile edge
    top = max_step_for(s) - n
    start = draw(st.one_of(st.just(0), st.integers(0, min(top, 20_000)), st.integers(0, top)))
    return s, start, n


@given(contiguous_cases(), st.sampled_from(BACKENDS))
def test_contiguous_steps_equal_explicit_arrays(case, backend):
    """``evaluate(s, n)`` and ``evaluate(s, range(a, b))`` are the explicit arrays arange(n), arange(a, b)."""
    s, start, n = case
    explicit = ev(s, np.arange(start, start + n, dtype=np.int64), backend)
    if start == 0:
        assert_close(ev(s, n, backend), explicit, f"{s} n={n} ({backend})")
    assert_close(ev(s, range(start, start + n), backend), explicit, f"{s} range({start}, {start + n}) ({backend})")


@st.composite
def segmented_cases(draw):
    """Schedules whose contiguous evaluation runs segment by segment (runs, phases, periods, cycles,
    anchors, the bit-level x ** power), over many segments and tiles, from a random start."""
    from strategies import schedule_of
    kind = draw(st.sampled_from(["Step", "MultiStep", "PiecewiseConstant", "OneCycle", "Cyclic", "Polynomial",
                                 "Exponential", "InverseTime", "Cosine", "Chain"]))
    s = draw(schedule_of(kind))
    top = max_step_for(s)
    n = draw(st.integers(1, 9000))
    start = draw(st.one_of(st.just(0), st.integers(0, min(top - n, 50_000)), st.integers(0, max(0, top - n))))
    return s, start, n


@given(segmented_cases())
def test_segmented_contiguous_paths_agree_with_numpy(case):
    s, start, n = case
    assert_close(ev(s, range(start, start + n), "numba"), ev(s, np.arange(start, start + n), "numpy"),
                 f"{s} range({start}, {start + n})")


@settings(max_examples=30)
@given(st.lists(schedules(depth=2), max_size=5), step_arrays(max_step=10 ** 5, max_size=30),
       st.sampled_from(BACKENDS))
def test_evaluate_many_equals_stacked_evaluations(ss, steps, backend):
    many = lrcore.evaluate_many(ss, steps, backend=backend)
    assert many.shape == (len(ss), len(steps)) and many.dtype == np.float64
    for i, s in enumerate(ss):
        assert_close(many[i], ev(s, steps, backend), f"row {i} {s} ({backend})")


@settings(max_examples=30)
@given(st.lists(schedules(depth=2), min_size=1, max_size=4), st.integers(0, 3000), st.sampled_from(BACKENDS))
def test_evaluate_many_contiguous_equals_stacked(ss, n, backend):
    many = lrcore.evaluate_many(ss, n, backend=backend)
    assert many.shape == (len(ss), n)
    assert_close(many, np.stack([ev(s, np.arange(n), backend) for s in ss]).reshape(len(ss), n), f"{ss}")


@settings(max_examples=30)
@given(schedules_and_steps(depth=2), st.sampled_from(BACKENDS))
def test_float32_is_float64_rounded(case, backend):
    s, steps = case
    v32, v64 = ev(s, steps, backend, dtype=np.float32), ev(s, steps, backend)
    assert v32.dtype == np.float32 and v32.shape == steps.shape
    expected = v64.astype(np.float32)
    assert np.all(np.abs(v32 - expected) <= np.spacing(np.abs(expected))), f"{s}: {v32} vs {expected}"
    assert np.array_equal(ev(s, steps, backend, dtype="float32"), v32)


@settings(max_examples=30)
@given(schedules_and_steps(depth=2), st.sampled_from(BACKENDS), st.sampled_from([np.float64, np.float32]))
def test_out_buffer_is_filled_and_returned(case, backend, dtype):
    s, steps = case
    expected = ev(s, steps, backend, dtype=dtype)
    out = np.full(len(steps), -7.0, dtype)
    got = ev(s, steps, backend, dtype=dtype, out=out)
    assert got.shape == out.shape and got.dtype == out.dtype
    assert len(steps) == 0 or np.shares_memory(got, out)
    np.testing.assert_array_equal(out, expected)

    many_out = np.full((2, len(steps)), -7.0, dtype)
    got = lrcore.evaluate_many([s, Constant(0.25)], steps, backend=backend, dtype=dtype, out=many_out)
    assert got is many_out
    np.testing.assert_array_equal(many_out[0], expected)
    np.testing.assert_array_equal(many_out[1], np.full(len(steps), 0.25, dtype))


def test_auto_backend_switches_at_its_threshold_and_agrees():
    s = Warmup(Cosine(lr=0.1, decay_steps=50_000, floor=1e-4), steps=500)
    from lrcore.evaluate import AUTO_NUMBA_MIN
    for n in (10, AUTO_NUMBA_MIN - 1, AUTO_NUMBA_MIN, 3 * AUTO_NUMBA_MIN):
        assert_close(lrcore.evaluate(s, n), ev(s, n, "numpy"), f"auto n={n}")
        assert_close(lrcore.evaluate(s, n), ev(s, n, "numba"), f"auto n={n}")


def test_empty_inputs():
    for backend in BACKENDS:
        assert ev(Constant(0.1), 0, backend).shape == (0,)
        assert ev(Cosine(0.1, 10), np.zeros(0, np.int64), backend).shape == (0,)
        assert ev(Multiplicative("0.9"), [], backend).shape == (0,)
        assert lrcore.evaluate_many([], 5, backend=backend).shape == (0, 5)
        assert lrcore.evaluate_many([Constant(0.1)], 0, backend=backend).shape == (1, 0)


def test_step_dtypes_are_accepted():
    """Any integer dtype, integral floats and Python lists give the same values as int64."""
    s = Sequence([Linear(0.0, 1.0, 10), Step(1.0, step_size=3, gamma=0.5)], milestones=[10])
    base = np.array([0, 3, 9, 10, 11, 25, 7], np.int64)
    expected = ev(s, base, "numpy")
    for backend in BACKENDS:
        for arr in (base.astype(np.int32), base.astype(np.uint16), base.astype(np.uint64), base.astype(np.float64),
                    base.tolist(), tuple(base.tolist())):
            assert_close(ev(s, arr, backend), expected, f"{type(arr).__name__} {getattr(arr, 'dtype', '')}")


def test_large_arrays_many_tiles_and_threads():
    """More than one tile per schedule and more jobs than threads: every slot written, in order."""
    ss = [Cosine(lr=1.0, decay_steps=9_000), Step(1.0, step_size=1000, gamma=0.5), Constant(0.3),
          Warmup(Linear(1.0, 0.0, 5_000), steps=1_000)]
    rng = np.random.default_rng(0)
    steps = rng.integers(0, 12_000, 50_000)
    many = lrcore.evaluate_many(ss, steps, backend="numba")
    assert_close(many, lrcore.evaluate_many(ss, steps, backend="numpy"), "random 50k")
    assert_close(lrcore.evaluate_many(ss, 20_001, backend="numba"),
                 lrcore.evaluate_many(ss, 20_001, backend="numpy"), "contiguous 20001")


# --- specific numerical cases -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("schedule", [
    Constant(0.5),
    Step(1.0, step_size=10),
    Sequence([Constant(1.0), Constant(0.5)], milestones=[5]),
], ids=str)
def test_steps_from_2_62_are_evaluated_or_rejected(schedule, backend):
    """The lowered programs use 2**62 as "no upper bound"
    (program.NEVER): steps >= 2**62 must give the schedule's value or a clear ValueError, never 1.0
    or uninitialised memory."""
    steps = np.array([2 ** 62 - 1, 2 ** 62, 2 ** 63 - 1], np.int64)
    try:
        got = ev(schedule, steps, backend)
    except ValueError as e:
        assert "steps" in str(e)
        return
    expected = schedule._numpy(np.array([2 ** 62 - 1] * 3, np.int64))  # the value is flat that far out
    assert_close(got, expected, f"{schedule} ({backend}) at 2**62-1, 2**62, 2**63-1")


def _run_isolated(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (for cases that hang or crash the process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, timeout=timeout,
                          capture_output=True, text=True)


def test_restarts_huge_steps_terminate():
    """CosineRestarts with t_mul=1 at t >= period * 2**53: the kernel's search for the cycle index
    (formulas.restart_index) must end (i + 1.0 == i in float64 there). Killed after 8 s."""
    r = _run_isolated("""
        import signal, numpy as np, lrcore
        s = lrcore.CosineRestarts(lr=1.0, period=10)
        lrcore.evaluate(s, np.array([5]), backend="numba")     # compile / load the kernel first
        signal.alarm(8)                                       # default action: terminate
        steps = np.array([10 * 2 ** 53, 2 ** 62 - 1], np.int64)
        a = lrcore.evaluate(s, steps, backend="numba")
        b = lrcore.evaluate(s, steps, backend="numpy")
        print("OK", a.tolist(), b.tolist())
    """)
    assert r.returncode == 0 and "OK" in r.stdout, (
        f"CosineRestarts(lr=1.0, period=10) at t=10*2**53 did not finish (rc={r.returncode}): {r.stderr[-2000:]}")


def test_exponential_warmup_with_tiny_start_factor_is_safe():
    """start_factor=1e-320: 1 / start_factor overflows to inf. The result must be a clear error (at
    construction or evaluation) or finite values on both backends (it must not crash the interpreter)."""
    r = _run_isolated("""
        import numpy as np, lrcore
        for backend in ("numpy", "numba"):
            try:
                w = lrcore.Warmup(lrcore.Constant(1e-6), steps=10, start_factor=1e-320, mode="exponential")
                v = lrcore.evaluate(w, np.arange(12), backend=backend)
            except (ValueError, TypeError) as e:
                print("REJECTED", backend, e)
                continue
            print("VALUES", backend, v.tolist(), bool(np.all(np.isfinite(v) & (v >= 0))))
    """)
    assert r.returncode == 0, f"interpreter died (rc={r.returncode}, -11 is SIGSEGV): {r.stderr[-2000:]}"
    for line in r.stdout.splitlines():
        if line.startswith("VALUES"):
            assert line.endswith("True"), line


@pytest.mark.parametrize("schedule", [
    OneCycle(max_lr=1.0, total_steps=100_000, div_factor=1e4),                  # rising cosine, start 1e-4
    OneCycle(max_lr=1.0, total_steps=100_000, anneal="linear"),                 # long linear phases
    OneCycle(max_lr=1.0, total_steps=100_000, three_phase=True, anneal="linear"),
    Cosine(lr=1e-4, decay_steps=30_000, floor=1.0),                             # a cosine rise
], ids=str)
def test_backends_agree_on_ill_conditioned_anneals(schedule):
    """Anneals whose end value is far below the start (or a rise from a small value) are where a
    formula of the form b + (a - b) * w cancels; the backends must still agree to 1e-12."""
    steps = np.arange(0, 100_001, 7)
    assert_close(ev(schedule, steps, "numpy"), ev(schedule, steps, "numba"), str(schedule))


@pytest.mark.parametrize("backend", BACKENDS)
def test_exp_range_with_growing_gamma_never_gives_nan(backend):
    """gamma > 1 with exp_range: gamma ** t overflows to inf and, at a cycle start where the triangle
    is 0, 0 * inf = NaN. DESIGN: never NaN, so a clear ValueError (or finite values)."""
    try:
        c = Cyclic(base_lr=0.1, max_lr=1.0, step_size_up=10, mode="exp_range", gamma=1.5)
        with np.errstate(all="ignore"):
            v = ev(c, np.array([0, 5, 20, 2000, 2020]), backend)
    except ValueError:
        return
    assert not np.isnan(v).any(), v


def test_lambda_expression_is_compiled_once():
    """Evaluating a Lambda with an expression string must not recompile it on every call (each
    compile costs ~0.3 s and is kept forever in lrcore.lambdas._COMPILED): counted, not timed."""
    from lrcore import lambdas
    s, m = Lambda("0.97 ** t + 0 * t", lr=0.5), Multiplicative("0.97 + 0 * t")
    n = lambdas.PYTHON_MAX_SIZE + 100  # above it, expression strings run Numba-compiled
    ev(s, n, "numpy")
    ev(m, n, "numba")  # the first calls compile
    compiled, parsed = len(lambdas._COMPILED), lambdas.compile_expression.cache_info().misses
    for _ in range(5):
        ev(s, n, "numpy")
        ev(m, n, "numba")
        ev(Lambda("0.97 ** t + 0 * t", lr=0.25), 10, "numba")
    assert len(lambdas._COMPILED) == compiled, "an expression string was compiled again"
    assert lambdas.compile_expression.cache_info().misses == parsed, "an expression string was parsed again"


def test_python_callables_are_evaluated_on_both_backends():
    def halve_every_10(t):
        return 0.5 ** (t // 10)

    lam, mul = Lambda(halve_every_10, lr=2.0), Multiplicative(lambda t: 0.9, lr=1.0)
    steps = np.array([0, 9, 10, 25, 3], np.int64)
    for backend in BACKENDS:
        assert_close(ev(lam, steps, backend), 2.0 * 0.5 ** (steps // 10), f"Lambda ({backend})")
        assert_close(ev(mul, steps, backend), 0.9 ** steps.astype(float), f"Multiplicative ({backend})", rtol=1e-13)
        assert_close(ev(Product([lam, mul]), steps, backend), 2.0 * 0.5 ** (steps // 10) * 0.9 ** steps.astype(float),
                     f"Product ({backend})", rtol=1e-13)


def test_schedule_call_is_the_numpy_value():
    s = Warmup(Cosine(lr=0.1, decay_steps=90), steps=10)
    assert s(0) == 0.0 and s(10) == pytest.approx(0.1, rel=1e-15)
    for t in (3, 55, 1000):
        assert s(t) == ev(s, np.array([t]), "numpy")[0]
