"""Hand-checked values of every schedule family, computed in the test from the formula that the class
documents (cited in each test), on both backends."""
from __future__ import annotations

import math

import numpy as np
import pytest

import lrcore
from lrcore import (WSD, Constant, Cosine, CosineRestarts, Cyclic, Exponential, InverseSqrt, InverseTime, Lambda,
                    Linear, Multiplicative, MultiStep, OneCycle, PiecewiseConstant, Polynomial, Product, Sequence,
                    Step, Warmup)

BACKENDS = ("numpy", "numba")


def check(s, expected: dict, rtol=1e-12, atol=1e-15):
    """s at the steps ``expected`` names equals the values there, on every backend."""
    steps = np.array(list(expected), np.int64)
    want = np.array(list(expected.values()), np.float64)
    for backend in BACKENDS:
        got = lrcore.evaluate(s, steps, backend=backend)
        ok = np.abs(got - want) <= rtol * np.abs(want) + atol
        assert ok.all(), (f"{s} ({backend}): at steps {steps[~ok].tolist()} got {got[~ok].tolist()}, "
                          f"expected {want[~ok].tolist()}")


def cos_anneal(a, b, q):
    """From a to b at fraction q: b + (a - b) (1 + cos(pi q)) / 2."""
    return b + (a - b) * (1 + math.cos(math.pi * q)) / 2


def test_constant():
    check(Constant(0.1), {0: 0.1, 1: 0.1, 10 ** 12: 0.1})
    check(Constant(0.0), {0: 0.0, 5: 0.0})


def test_step_halving():
    """lr * gamma ** floor(t / step_size)."""
    check(Step(lr=1.0, step_size=10, gamma=0.5), {0: 1.0, 9: 1.0, 10: 0.5, 19: 0.5, 25: 0.25, 39: 0.125, 40: 0.0625})
    check(Step(lr=0.3, step_size=1), {0: 0.3, 1: 0.03, 3: 0.3 * 1e-3})
    check(Step(lr=1.0, step_size=5, gamma=0.0), {0: 1.0, 4: 1.0, 5: 0.0, 10 ** 9: 0.0})  # 0 ** 0 = 1


def test_multistep_duplicate_milestones_count_twice():
    """lr * gamma ** (number of milestones <= t), a repeated milestone counting each time."""
    check(MultiStep(lr=1.0, milestones=[2, 5, 5], gamma=0.1),
          {0: 1.0, 1: 1.0, 2: 0.1, 4: 0.1, 5: 1e-3, 6: 1e-3, 10 ** 6: 1e-3})
    check(MultiStep(lr=1.0, milestones=[0, 3], gamma=0.5), {0: 0.5, 2: 0.5, 3: 0.25})
    check(MultiStep(lr=0.7, milestones=[]), {0: 0.7, 100: 0.7})


def test_piecewise_constant_switches_at_the_boundary():
    """values[k] for boundaries[k-1] <= t < boundaries[k]."""
    check(PiecewiseConstant(boundaries=[10, 20], values=[1.0, 0.5, 0.1]),
          {0: 1.0, 9: 1.0, 10: 0.5, 19: 0.5, 20: 0.1, 10 ** 9: 0.1})
    check(PiecewiseConstant(boundaries=[3, 3], values=[1.0, 0.5, 0.1]), {2: 1.0, 3: 0.1})
    check(PiecewiseConstant(boundaries=[], values=[0.4]), {0: 0.4, 7: 0.4})


def test_exponential_and_staircase():
    """lr * decay_rate ** (t / decay_steps), the exponent floored if staircase."""
    check(Exponential(lr=2.0, decay_rate=0.5, decay_steps=10),
          {0: 2.0, 5: 2.0 * 0.5 ** 0.5, 10: 1.0, 20: 0.5, 25: 2.0 * 0.5 ** 2.5})
    check(Exponential(lr=2.0, decay_rate=0.5, decay_steps=10, staircase=True),
          {0: 2.0, 5: 2.0, 9: 2.0, 10: 1.0, 19: 1.0, 20: 0.5, 25: 0.5})
    check(Exponential(lr=1.0, decay_rate=0.5, decay_steps=2.5), {5: 0.25, 6: 0.5 ** 2.4})
    check(Exponential(lr=1.0, decay_rate=0.5, decay_steps=2.5, staircase=True), {5: 0.25, 6: 0.25, 7: 0.25, 8: 0.125})
    check(Exponential(lr=1.0, decay_rate=0.96), {0: 1.0, 1: 0.96, 3: 0.96 ** 3})
    check(Exponential(lr=1.0, decay_rate=0.0), {0: 1.0, 1: 0.0})


def test_inverse_time():
    """lr / (1 + decay_rate * t / decay_steps), the ratio floored if staircase."""
    check(InverseTime(lr=1.0, decay_rate=0.5, decay_steps=10), {0: 1.0, 5: 0.8, 20: 0.5, 15: 1 / 1.75})
    check(InverseTime(lr=1.0, decay_rate=0.5, decay_steps=10, staircase=True), {9: 1.0, 15: 1 / 1.5, 20: 0.5})


def test_polynomial():
    """(lr - end) * (1 - min(t, D) / D) ** power + end."""
    s = Polynomial(lr=1.0, decay_steps=10, end=0.1, power=2.0)
    check(s, {0: 1.0, 5: 0.9 * 0.25 + 0.1, 9: 0.9 * 0.01 + 0.1, 10: 0.1, 20: 0.1})
    check(Polynomial(lr=1.0, decay_steps=4), {0: 1.0, 1: 0.75, 3: 0.25, 4: 0.0, 8: 0.0})
    check(Polynomial(lr=1.0, decay_steps=4, power=0.5), {1: math.sqrt(0.75), 4: 0.0})


def test_polynomial_cycle_keras_rule():
    """cycle: D = decay_steps * ceil(t / decay_steps), with multiplier 1 at t = 0 (Keras)."""
    s = Polynomial(lr=1.0, decay_steps=10, end=0.1, power=2.0, cycle=True)
    check(s, {
        0: 1.0,                                  # D = 10 * max(1, ceil(0)) = 10
        5: 0.9 * (1 - 5 / 10) ** 2 + 0.1,
        10: 0.1,                                 # D = 10 * ceil(1) = 10: the end value, not a restart
        11: 0.9 * (1 - 11 / 20) ** 2 + 0.1,      # D = 20
        15: 0.9 * (1 - 15 / 20) ** 2 + 0.1,
        20: 0.1,
        21: 0.9 * (1 - 21 / 30) ** 2 + 0.1,      # D = 30
    })


def test_linear():
    """start + (end - start) * min(t, steps) / steps."""
    check(Linear(start=0.1, end=1.0, steps=4), {0: 0.1, 1: 0.325, 2: 0.55, 4: 1.0, 100: 1.0})
    check(Linear(start=1.0, end=0.0, steps=10), {0: 1.0, 3: 0.7, 10: 0.0, 11: 0.0})


def test_cosine():
    """floor + (lr - floor) * (1 + cos(pi * min(t, T) / T)) / 2."""
    check(Cosine(lr=1.0, decay_steps=10), {0: 1.0, 2: cos_anneal(1, 0, 0.2), 5: 0.5, 9: cos_anneal(1, 0, 0.9),
                                           10: 0.0, 15: 0.0})
    check(Cosine(lr=1.0, decay_steps=10, floor=0.1), {0: 1.0, 5: 0.55, 10: 0.1, 1000: 0.1})
    check(Cosine(lr=1.0, decay_steps=2.5), {1: cos_anneal(1, 0, 0.4), 2: cos_anneal(1, 0, 0.8), 3: 0.0})


def test_cosine_periodic_rises_again():
    """periodic: the cosine goes on past T, (1 + cos(pi t / T)) / 2 for every t (PyTorch CosineAnnealingLR)."""
    s = Cosine(lr=1.0, decay_steps=10, floor=0.2, periodic=True)
    check(s, {0: 1.0, 5: 0.6, 10: 0.2, 15: 0.6, 20: 1.0, 23: cos_anneal(1.0, 0.2, 2.3), 30: 0.2, 40: 1.0,
              10 ** 12: 1.0, 10 ** 12 + 10: 0.2})


def test_cosine_restarts_cycles_double():
    """Cycle i lasts period * t_mul ** i: with period 10 and t_mul 2, restarts at 10, 30, 70, 150."""
    s = CosineRestarts(lr=1.0, period=10, t_mul=2.0)
    check(s, {0: 1.0, 5: 0.5, 9: cos_anneal(1, 0, 0.9), 10: 1.0, 20: 0.5, 29: cos_anneal(1, 0, 19 / 20),
              30: 1.0, 50: 0.5, 69: cos_anneal(1, 0, 39 / 40), 70: 1.0, 110: 0.5, 150: 1.0})


def test_cosine_restarts_m_mul_and_floor():
    """floor + (lr - floor) * m_mul ** i * (1 + cos(pi q)) / 2 in cycle i."""
    check(CosineRestarts(lr=1.0, period=10, t_mul=2.0, m_mul=0.5),
          {0: 1.0, 10: 0.5, 20: 0.25, 30: 0.25, 50: 0.125, 70: 0.125})
    check(CosineRestarts(lr=1.0, period=10, m_mul=0.5, floor=0.1),
          {0: 1.0, 5: 0.55, 10: 0.1 + 0.9 * 0.5, 15: 0.1 + 0.9 * 0.25, 20: 0.1 + 0.9 * 0.25})


def test_cosine_restarts_fractional_period_and_t_mul():
    """Restart cycle starts: period * (t_mul ** i - 1) / (t_mul - 1), or period * i for t_mul = 1."""
    check(CosineRestarts(lr=1.0, period=2.5), {2: cos_anneal(1, 0, 0.8), 3: cos_anneal(1, 0, 0.2), 5: 1.0,
                                               7: cos_anneal(1, 0, 0.8), 10: 1.0})
    # t_mul 1.5: cycles start at 0, 10, 25, 47.5, 81.25
    check(CosineRestarts(lr=1.0, period=10, t_mul=1.5), {10: 1.0, 24: cos_anneal(1, 0, 14 / 15), 25: 1.0,
                                                         47: cos_anneal(1, 0, 22 / 22.5),
                                                         48: cos_anneal(1, 0, 0.5 / 33.75), 82: cos_anneal(1, 0, 0.75 / 50.625)})


class TestOneCycle:
    """PyTorch's one-cycle policy: initial = max_lr / div_factor, min = initial / final_div_factor; phase 1
    ends at pct_start * total_steps - 1 (max_lr reached exactly there), the last at total_steps - 1."""

    def test_two_phase_cos(self):
        s = OneCycle(max_lr=1.0, total_steps=100)       # pct 0.3, div 25, final_div 1e4
        init, low = 1 / 25, 1 / 25 / 1e4
        check(s, {0: init, 10: cos_anneal(init, 1.0, 10 / 29), 29: 1.0, 30: cos_anneal(1.0, low, 1 / 70),
                  64: cos_anneal(1.0, low, 0.5), 99: low, 100: low, 101: low, 10 ** 6: low})  # held from total_steps on

    def test_two_phase_linear(self):
        s = OneCycle(max_lr=2.0, total_steps=100, pct_start=0.5, anneal="linear", div_factor=10, final_div_factor=100)
        init, low = 0.2, 0.002
        check(s, {0: init, 7: init + (2.0 - init) * 7 / 49, 49: 2.0, 74: 2.0 + (low - 2.0) * 25 / 50, 99: low,
                  500: low})

    def test_three_phase(self):
        # pct 0.25, T 100: phases end at 24, 48, 99: initial -> max -> initial -> min
        s = OneCycle(max_lr=1.0, total_steps=100, pct_start=0.25, three_phase=True)
        init, low = 0.04, 0.04 / 1e4
        check(s, {0: init, 12: cos_anneal(init, 1.0, 0.5), 24: 1.0, 36: cos_anneal(1.0, init, 0.5), 48: init,
                  60: cos_anneal(init, low, 12 / 51), 99: low, 200: low})
        check(OneCycle(max_lr=1.0, total_steps=100, pct_start=0.25, three_phase=True, anneal="linear"),
              {12: init + (1 - init) * 0.5, 36: 1.0 + (init - 1.0) * 0.5, 99: low})

    def test_fractional_phase_end(self):
        # pct 0.3, T 15: phase 1 ends at step 3.5: the peak itself falls between steps
        s = OneCycle(max_lr=1.0, total_steps=15, anneal="linear", div_factor=4.0, final_div_factor=2.0)
        check(s, {0: 0.25, 3: 0.25 + 0.75 * 3 / 3.5, 4: 1.0 + (0.125 - 1.0) * 0.5 / 10.5, 14: 0.125})

    def test_momentum(self):
        """max_momentum -> base_momentum -> max_momentum, as the learning rate goes up and down."""
        s = OneCycle(max_lr=1.0, total_steps=100)
        m = s.momentum
        assert isinstance(m, OneCycle) and m.quantity == "momentum" and m.momentum is None
        check(m, {0: 0.95, 29: 0.85, 64: cos_anneal(0.85, 0.95, 0.5), 99: 0.95, 1000: 0.95})
        m3 = OneCycle(max_lr=1.0, total_steps=100, pct_start=0.25, three_phase=True, anneal="linear",
                      base_momentum=0.8, max_momentum=0.9).momentum
        check(m3, {0: 0.9, 12: 0.85, 24: 0.8, 36: 0.85, 48: 0.9, 70: 0.9, 99: 0.9})
        assert OneCycle(max_lr=1.0, total_steps=100, cycle_momentum=False).momentum is None


class TestCyclic:
    """base + (max - base) * triangle(t) * scale; triangle rises over step_size_up, falls over step_size_down."""

    def test_triangular(self):
        s = Cyclic(base_lr=0.1, max_lr=1.0, step_size_up=4, step_size_down=6)
        check(s, {0: 0.1, 2: 0.55, 4: 1.0, 7: 0.55, 10: 0.1, 12: 0.55, 14: 1.0, 1004: 1.0})
        check(Cyclic(base_lr=0.0, max_lr=1.0, step_size_up=4), {0: 0.0, 1: 0.25, 4: 1.0, 6: 0.5, 8: 0.0})

    def test_triangular2_halves_each_cycle(self):
        s = Cyclic(base_lr=0.1, max_lr=1.0, step_size_up=4, step_size_down=6, mode="triangular2")
        check(s, {4: 1.0, 12: 0.1 + 0.9 * 0.5 * 0.5, 14: 0.1 + 0.9 * 0.5, 24: 0.1 + 0.9 * 0.25, 20: 0.1})

    def test_exp_range(self):
        s = Cyclic(base_lr=0.1, max_lr=1.0, step_size_up=4, step_size_down=6, mode="exp_range", gamma=0.9)
        check(s, {0: 0.1, 2: 0.1 + 0.9 * 0.5 * 0.9 ** 2, 4: 0.1 + 0.9 * 0.9 ** 4, 14: 0.1 + 0.9 * 0.9 ** 14})
        by_cycle = Cyclic(base_lr=0.1, max_lr=1.0, step_size_up=4, step_size_down=6, mode="exp_range", gamma=0.9,
                          scale_mode="cycle")
        check(by_cycle, {4: 0.1 + 0.9 * 0.9, 14: 0.1 + 0.9 * 0.81})

    def test_momentum(self):
        """Momentum falls from max_momentum to base_momentum as the learning rate rises."""
        s = Cyclic(base_lr=0.1, max_lr=1.0, step_size_up=4, step_size_down=6, base_momentum=0.8, max_momentum=0.9)
        m = s.momentum
        assert isinstance(m, Cyclic) and m.momentum is None
        check(m, {0: 0.9, 2: 0.85, 4: 0.8, 7: 0.85, 10: 0.9})
        m2 = Cyclic(base_lr=0.1, max_lr=1.0, step_size_up=4, step_size_down=6, mode="triangular2").momentum
        check(m2, {14: 0.9 - 0.1 * 0.5})
        assert Cyclic(base_lr=0.1, max_lr=1.0, cycle_momentum=False).momentum is None


def test_inverse_sqrt_peaks_at_warmup_end():
    """lr * min(s / w, sqrt(w / s)), s = t + 1: the peak lr is at t = w - 1 (s = w)."""
    check(InverseSqrt(lr=1.0, warmup_steps=4), {0: 0.25, 1: 0.5, 3: 1.0, 4: math.sqrt(4 / 5), 15: 0.5, 63: 0.25})
    check(InverseSqrt(lr=2.0), {0: 2.0, 3: 1.0, 99: 0.2})


class TestWSD:
    """Linear warmup to lr over warmup_steps, lr until total - decay, a cool-down to floor over decay_steps."""

    @pytest.mark.parametrize("cooldown, mid", [("linear", 0.55), ("cosine", 0.55),
                                               ("1-sqrt", 0.1 + 0.9 * (1 - math.sqrt(0.5)))])
    def test_shapes(self, cooldown, mid):
        s = WSD(lr=1.0, total_steps=100, warmup_steps=10, decay_steps=20, cooldown=cooldown, floor=0.1)
        check(s, {0: 0.0, 5: 0.5, 9: 0.9, 10: 1.0, 50: 1.0, 79: 1.0, 80: 1.0, 90: mid, 100: 0.1, 10 ** 9: 0.1})

    def test_quarter_points(self):
        q = 0.25  # step 85 of a cool-down over 80..100
        check(WSD(lr=1.0, total_steps=100, decay_steps=20, cooldown="1-sqrt"), {85: 1 - math.sqrt(q)})
        check(WSD(lr=1.0, total_steps=100, decay_steps=20, cooldown="cosine"), {85: cos_anneal(1, 0, q)})

    def test_default_decay_is_a_fifth(self):
        s = WSD(lr=1.0, total_steps=100)
        assert s.decay_steps == 20
        check(s, {0: 1.0, 79: 1.0, 90: 0.5, 100: 0.0})

    def test_no_stable_phase(self):
        check(WSD(lr=1.0, total_steps=10, warmup_steps=5, decay_steps=5), {0: 0.0, 4: 0.8, 5: 1.0, 7: 0.6, 10: 0.0})


class TestWarmup:
    """shift=True: peak * f(t) for t < steps (peak = schedule(0)), then schedule(t - steps);
    shift=False: schedule(t) * f(min(t, steps)); f linear start + (1 - start) t / steps or
    exponential start ** (1 - t / steps)."""

    def test_linear_shifted(self):
        s = Warmup(Cosine(lr=1.0, decay_steps=10), steps=5)
        check(s, {0: 0.0, 1: 0.2, 4: 0.8, 5: 1.0, 7: cos_anneal(1, 0, 0.2), 10: 0.5, 15: 0.0})
        check(Warmup(Constant(2.0), steps=5, start_factor=0.2), {0: 0.4, 1: 2 * (0.2 + 0.8 * 0.2), 5: 2.0})

    def test_exponential(self):
        s = Warmup(Constant(2.0), steps=4, start_factor=0.01, mode="exponential")
        check(s, {0: 0.02, 1: 2 * 0.01 ** 0.75, 2: 0.2, 3: 2 * 0.01 ** 0.25, 4: 2.0, 9: 2.0})

    def test_not_shifted(self):
        s = Warmup(Cosine(lr=1.0, decay_steps=10), steps=5, shift=False)
        check(s, {0: 0.0, 2: cos_anneal(1, 0, 0.2) * 0.4, 5: 0.5, 10: 0.0})
        check(Warmup(Step(1.0, step_size=2, gamma=0.5), steps=4, start_factor=0.01, mode="exponential", shift=False),
              {0: 0.01, 2: 0.5 * 0.1, 4: 0.25})

    def test_nested_warmup_of_a_sequence(self):
        s = Warmup(Sequence([Constant(0.5), Linear(0.5, 0.0, 10)], milestones=[3]), steps=2)
        check(s, {0: 0.0, 1: 0.25, 2: 0.5, 5: 0.5, 6: 0.5 * 0.9, 15: 0.0})


def test_sequence():
    """schedules[j](t - milestones[j-1]) on [milestones[j-1], milestones[j])."""
    s = Sequence([Constant(1.0), Linear(1.0, 0.0, 10), Step(0.5, step_size=2, gamma=0.5)], milestones=[5, 15])
    check(s, {0: 1.0, 4: 1.0, 5: 1.0, 10: 0.5, 14: 0.1, 15: 0.5, 16: 0.5, 18: 0.25})
    check(Sequence([Constant(1.0), Constant(2.0), Constant(3.0)], milestones=[5, 5]), {4: 1.0, 5: 3.0})
    check(Sequence([Constant(1.0), Constant(2.0)], milestones=[0]), {0: 2.0, 9: 2.0})
    check(Sequence([Constant(0.3)], milestones=[]), {0: 0.3})
    inner = Sequence([Constant(1.0), Cosine(1.0, 4)], milestones=[2])
    check(Sequence([Constant(9.0), inner], milestones=[10]), {9: 9.0, 10: 1.0, 12: 1.0, 14: 0.5, 16: 0.0})


def test_product():
    """scale * prod_j schedules[j](t)."""
    check(Product([Constant(0.5), Step(1.0, step_size=2, gamma=0.5)], scale=2.0), {0: 1.0, 2: 0.5, 4: 0.25})
    check(Product([Product([Constant(0.5), Constant(0.5)]), Linear(0.0, 1.0, 4)]), {2: 0.125, 8: 0.25})
    check(Product([Sequence([Constant(1.0), Constant(0.1)], milestones=[3]), Cosine(1.0, 10)], scale=0.0),
          {0: 0.0, 5: 0.0})


def test_lambda():
    """lr * fn(t)."""
    check(Lambda("0.5 ** t", lr=2.0), {0: 2.0, 1: 1.0, 3: 0.25})
    check(Lambda("1.0 if t < 3 else 0.1"), {2: 1.0, 3: 0.1})
    check(Lambda("min(1.0, (t + 1) / 4) * exp(-0.0 * t) + 0 * sqrt(t)", lr=0.8), {0: 0.2, 3: 0.8, 9: 0.8})
    check(Sequence([Constant(1.0), Lambda("0.5 ** t")], milestones=[3]), {3: 1.0, 5: 0.25})


def test_multiplicative_running_product():
    """lr * prod_{k=1..t} fn(k)."""
    check(Multiplicative("0.5", lr=1.0), {0: 1.0, 1: 0.5, 3: 0.125})
    check(Multiplicative("0.5 if t % 2 == 0 else 1.0", lr=4.0), {0: 4.0, 1: 4.0, 2: 2.0, 3: 2.0, 4: 1.0, 5: 1.0})
    check(Multiplicative("1 / t", lr=1.0), {1: 1.0, 2: 0.5, 4: 1 / 24, 6: 1 / 720})
    check(Sequence([Constant(1.0), Multiplicative("0.5")], milestones=[10]), {10: 1.0, 12: 0.25})


def test_call_gives_single_values():
    assert Step(lr=1.0, step_size=10, gamma=0.5)(25) == 0.25
    assert Cosine(lr=1.0, decay_steps=10)(5) == pytest.approx(0.5, rel=1e-15)
    assert isinstance(Constant(0.1)(3), float)
