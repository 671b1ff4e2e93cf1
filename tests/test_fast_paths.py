"""The numba kernel's contiguous fast paths against the numpy reference (DESIGN: <= 1e-12 relative).

The fast paths (``lrcore.kernels.cpu``) replace per-step libm calls and searches with per-block work:
``x ** power`` of Polynomial and ``s ** -1/2`` of InverseSqrt by a binomial series around an exact anchor
per block of up to ``SERIES_BLOCK`` steps (exact near the end of the decay and at the start of training),
one-cycle phases, periodic-cosine half periods and restart cycles found once per segment, and float32
output rounded as it is stored. Each is checked on fresh random parameters over ranges that cross block,
tile, phase and period boundaries, start anywhere (including near 2**53), and run past the decay's end.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrcore
from lrcore import CosineRestarts, Cosine, InverseSqrt, OneCycle, Polynomial, Product, Sequence, Warmup
from lrcore.kernels import cpu

RTOL = 1e-12


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape and np.all(np.isfinite(got))
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300))) if want.size else 0.0


def check(s, start: int, n: int):
    got = lrcore.evaluate(s, range(start, start + n), backend="numba")
    want = lrcore.evaluate(s, np.arange(start, start + n, dtype=np.int64), backend="numpy")
    assert rel_err(got, want) <= RTOL, f"{s} range({start}, {start + n}): rel err {rel_err(got, want):.3g}"


LR = st.floats(1e-6, 10.0)
LENGTH = st.integers(1, 3 * cpu.TILE + 17)


def _start(draw, landmarks, top):
    """A start near a landmark (a decay's end, a warmup's end, a period), anywhere below top, or 0."""
    mark = draw(st.sampled_from(landmarks))
    return max(0, min(top, draw(st.one_of(st.just(0), st.integers(max(0, mark - 3 * cpu.TILE), mark + 5),
                                          st.integers(0, top)))))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_polynomial_series_blocks(data):
    lr = data.draw(LR)
    D = data.draw(st.one_of(st.integers(1, 10 ** 4), st.integers(1, 10 ** 9),
                            st.floats(1.0, 1e7).filter(lambda d: not float(d).is_integer())))
    power = data.draw(st.one_of(st.floats(0.0, 5.0), st.floats(0.0, 200.0), st.sampled_from([0.0, 1.7, 3.0, 8.0])))
    end = data.draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0).map(lambda f: f * lr)))
    s = Polynomial(lr=lr, decay_steps=D, end=end, power=power, cycle=data.draw(st.booleans()))
    n = data.draw(LENGTH)
    check(s, _start(data.draw, [int(D), int(D * 0.999), int(D) // 2], 2 ** 53 + 10 ** 6), n)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_inverse_sqrt_series_blocks(data):
    w = data.draw(st.one_of(st.just(0), st.integers(0, 100), st.integers(0, 10 ** 7)))
    s = InverseSqrt(lr=data.draw(LR), warmup_steps=w)
    n = data.draw(LENGTH)
    check(s, _start(data.draw, [w, 1000, 4000, 2 ** 53 - 100], 2 ** 53 + 10 ** 6), n)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_periodic_cosine_half_periods(data):
    lr = data.draw(LR)
    T = data.draw(st.one_of(st.integers(1, 50), st.integers(1, 10 ** 7)))
    floor = data.draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0).map(lambda f: f * lr), st.floats(1.0, 3.0).map(
        lambda f: f * lr)))
    s = Cosine(lr=lr, decay_steps=T, floor=floor, periodic=True)
    check(s, _start(data.draw, [T, 2 * T, 7 * T], 2 ** 53 + 10 ** 6), data.draw(LENGTH))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_restart_cycles_and_one_cycle_phases(data):
    lr = data.draw(LR)
    period = data.draw(st.one_of(st.integers(1, 3000), st.floats(1.0, 3000.0)))
    t_mul = data.draw(st.one_of(st.sampled_from([1.0, 1.5, 2.0]), st.floats(1.0, 3.0)))
    floor = data.draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5).map(lambda f: f * lr), st.floats(1.0, 2.0).map(
        lambda f: f * lr)))
    r = CosineRestarts(lr=lr, period=period, t_mul=t_mul, m_mul=data.draw(st.floats(0.1, 1.0)), floor=floor)
    check(r, data.draw(st.one_of(st.integers(0, 10 ** 6), st.integers(0, 2 ** 50))), data.draw(LENGTH))
    T = data.draw(st.integers(2, 10 ** 6))
    try:
        o = OneCycle(max_lr=lr, total_steps=T, pct_start=data.draw(st.floats(0.0, 1.0)),
                     anneal=data.draw(st.sampled_from(["cos", "linear"])), three_phase=data.draw(st.booleans()),
                     div_factor=data.draw(st.floats(1.0, 1e4)))
    except ValueError:  # a phase of no length PyTorch cannot step through
        return
    check(o, _start(data.draw, [T, T // 3, T // 2], 10 ** 7), data.draw(LENGTH))


@pytest.mark.parametrize("schedule", [
    Polynomial(lr=0.1, decay_steps=200_000, end=1e-4, power=1.7),
    Polynomial(lr=0.1, decay_steps=150_000, power=37.5),
    InverseSqrt(lr=0.1, warmup_steps=4_000),
    InverseSqrt(lr=0.1, warmup_steps=0),
    Cosine(lr=0.1, decay_steps=7_001, floor=0.2, periodic=True),
    Product([Polynomial(lr=1.0, decay_steps=90_000, power=2.5), InverseSqrt(lr=0.3, warmup_steps=500)]),
    Sequence([Warmup(InverseSqrt(0.1, 100), 50), Polynomial(0.1, 60_000, power=0.7)], [70_000]),
], ids=str)
def test_whole_decays_and_float32(schedule):
    """Every step of a long decay (every block, tile and the exact tail), and float32 output equal to the
    float64 values rounded, written without a float64 copy of the whole output."""
    n = 210_000
    v64 = lrcore.evaluate(schedule, n, backend="numba")
    assert rel_err(v64, lrcore.evaluate(schedule, n, backend="numpy")) <= RTOL
    v32 = lrcore.evaluate(schedule, n, backend="numba", dtype=np.float32)
    assert v32.dtype == np.float32 and np.array_equal(v32, v64.astype(np.float32))
    out = np.empty(n, np.float32)
    tracemalloc.start()
    try:
        lrcore.evaluate(schedule, n, backend="numba", dtype=np.float32, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(out, v32)
    assert peak < 4 * n, f"evaluating into a float32 out= allocated {peak} bytes (a float64 copy is {8 * n})"


def test_evaluate_many_float32_is_float64_rounded():
    from bench.speed.families import mixed_schedules
    ss = mixed_schedules(60, 5_000, seed=3)
    v64 = lrcore.evaluate_many(ss, 5_000, backend="numba")
    assert rel_err(v64, lrcore.evaluate_many(ss, 5_000, backend="numpy")) <= RTOL
    out = np.full((60, 5_000), -1.0, np.float32)
    assert lrcore.evaluate_many(ss, 5_000, backend="numba", dtype=np.float32, out=out) is out
    assert np.array_equal(out, v64.astype(np.float32))
