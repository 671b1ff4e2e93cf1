"""Bad input raises ValueError/TypeError whose message names the constructor (or function), the
parameter and the rule (DESIGN.md: ``CosineAnnealingLR: T_max must be a positive integer, got 0``)."""
from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

import lrcore
from lrcore import (WSD, Chain, Constant, Cosine, CosineRestarts, Cyclic, Exponential, InverseSqrt, InverseTime, Lambda,
                    Linear, Multiplicative, MultiStep, OneCycle, PiecewiseConstant, Polynomial, Product, Sequence,
                    Step, Warmup)

NAN, INF = math.nan, math.inf
C = Constant(0.1)

# (constructor, kwargs, exception, regex on the message)
CASES = [
    # learning rates: negative, NaN, inf, wrong type, bool
    (Constant, dict(lr=-0.1), ValueError, r"Constant: lr must be >= 0, got -0.1"),
    (Constant, dict(lr=NAN), ValueError, r"Constant: lr must be finite, got nan"),
    (Constant, dict(lr=INF), ValueError, r"Constant: lr must be finite, got inf"),
    (Constant, dict(lr="0.1"), TypeError, r"Constant: lr must be a real number, got '0.1'"),
    (Constant, dict(lr=True), TypeError, r"Constant: lr must be a real number, got True"),
    (Constant, dict(lr=None), TypeError, r"Constant: lr must be a real number, got None"),
    # Step
    (Step, dict(lr=1.0, step_size=0), ValueError, r"Step: step_size must be a positive integer, got 0"),
    (Step, dict(lr=1.0, step_size=-3), ValueError, r"Step: step_size must be a positive integer, got -3"),
    (Step, dict(lr=1.0, step_size=2.5), ValueError, r"Step: step_size must be a positive integer, got 2.5"),
    (Step, dict(lr=1.0, step_size=True), TypeError, r"Step: step_size must be an integer, got True"),
    (Step, dict(lr=1.0, step_size="10"), TypeError, r"Step: step_size must be an integer, got '10'"),
    (Step, dict(lr=1.0, step_size=NAN), ValueError, r"Step: step_size must be .*got nan"),
    (Step, dict(lr=1.0, step_size=INF), ValueError, r"Step: step_size must be .*got inf"),
    (Step, dict(lr=1.0, step_size=10, gamma=-0.5), ValueError, r"Step: gamma must be >= 0, got -0.5"),
    (Step, dict(lr=1.0, step_size=10, gamma=NAN), ValueError, r"Step: gamma must be finite"),
    (Step, dict(lr=-1.0, step_size=10), ValueError, r"Step: lr must be >= 0"),
    # MultiStep
    (MultiStep, dict(lr=1.0, milestones=[5, 3]), ValueError, r"MultiStep: milestones must be sorted.*\[5, 3\]"),
    (MultiStep, dict(lr=1.0, milestones=[-1, 3]), ValueError, r"MultiStep: milestones\[0\] must be an integer >= 0"),
    (MultiStep, dict(lr=1.0, milestones=[1, 2.5]), ValueError, r"MultiStep: milestones\[1\] must be an integer"),
    (MultiStep, dict(lr=1.0, milestones=[1, True]), TypeError, r"MultiStep: milestones\[1\] must be an integer"),
    (MultiStep, dict(lr=1.0, milestones=5), TypeError, r"MultiStep: milestones must be a list, got 5"),
    (MultiStep, dict(lr=1.0, milestones="12"), TypeError, r"MultiStep: milestones must be a list"),
    (MultiStep, dict(lr=1.0, milestones=[1], gamma=INF), ValueError, r"MultiStep: gamma must be finite"),
    # PiecewiseConstant
    (PiecewiseConstant, dict(boundaries=[10, 20], values=[1.0, 0.5]), ValueError,
     r"PiecewiseConstant: values must have 3 entries \(one more than boundaries\), got 2"),
    (PiecewiseConstant, dict(boundaries=[10], values=[1.0, 0.5, 0.1]), ValueError,
     r"PiecewiseConstant: values must have 2 entries"),
    (PiecewiseConstant, dict(boundaries=[20, 10], values=[1.0, 0.5, 0.1]), ValueError,
     r"PiecewiseConstant: boundaries must be sorted"),
    (PiecewiseConstant, dict(boundaries=[10], values=[1.0, -0.5]), ValueError,
     r"PiecewiseConstant: values\[1\] must be >= 0"),
    (PiecewiseConstant, dict(boundaries=[10], values=[1.0, NAN]), ValueError,
     r"PiecewiseConstant: values\[1\] must be finite"),
    # Exponential / InverseTime
    (Exponential, dict(lr=1.0, decay_rate=0.5, decay_steps=0), ValueError,
     r"Exponential: decay_steps must be > 0, got 0"),
    (Exponential, dict(lr=1.0, decay_rate=-0.5), ValueError, r"Exponential: decay_rate must be >= 0"),
    (Exponential, dict(lr=1.0, decay_rate=0.5, staircase=1), TypeError,
     r"Exponential: staircase must be True or False, got 1"),
    (Exponential, dict(lr=1.0, decay_rate=NAN), ValueError, r"Exponential: decay_rate must be finite"),
    (InverseTime, dict(lr=1.0, decay_rate=0.5, decay_steps=-1), ValueError, r"InverseTime: decay_steps must be > 0"),
    (InverseTime, dict(lr=1.0, decay_rate=-1.0), ValueError, r"InverseTime: decay_rate must be >= 0"),
    # Polynomial
    (Polynomial, dict(lr=1.0, decay_steps=0), ValueError, r"Polynomial: decay_steps must be > 0"),
    (Polynomial, dict(lr=1.0, decay_steps=10, power=-1.0), ValueError, r"Polynomial: power must be >= 0"),
    (Polynomial, dict(lr=1.0, decay_steps=10, end=-1e-3), ValueError, r"Polynomial: end must be >= 0"),
    (Polynomial, dict(lr=1.0, decay_steps=10, cycle="yes"), TypeError, r"Polynomial: cycle must be True or False"),
    # Linear
    (Linear, dict(start=0.0, end=1.0, steps=0), ValueError, r"Linear: steps must be a positive integer, got 0"),
    (Linear, dict(start=0.0, end=-1.0, steps=5), ValueError, r"Linear: end must be >= 0"),
    (Linear, dict(start=INF, end=1.0, steps=5), ValueError, r"Linear: start must be finite"),
    # Cosine
    (Cosine, dict(lr=1.0, decay_steps=0), ValueError, r"Cosine: decay_steps must be > 0, got 0"),
    (Cosine, dict(lr=1.0, decay_steps=-10), ValueError, r"Cosine: decay_steps must be > 0"),
    (Cosine, dict(lr=1.0, decay_steps=INF), ValueError, r"Cosine: decay_steps must be finite"),
    (Cosine, dict(lr=1.0, decay_steps=10, offset=-1.0), ValueError, r"Cosine: offset must be >= 0, got -1.0"),
    (Cosine, dict(lr=1.0, decay_steps=10, periodic=True, offset=0.5), ValueError,
     r"Cosine: offset must be 0 when periodic, got 0.5"),
    (Cosine, dict(lr=1.0, decay_steps=-10.5, periodic=True), ValueError, r"Cosine: decay_steps must be > 0, got -10.5"),
    (Cosine, dict(lr=1.0, decay_steps=10, floor=-0.1), ValueError, r"Cosine: floor must be >= 0"),
    (Cosine, dict(lr=1.0, decay_steps=10, periodic=None), TypeError, r"Cosine: periodic must be True or False"),
    # CosineRestarts
    (CosineRestarts, dict(lr=1.0, period=0), ValueError, r"CosineRestarts: period must be > 0"),
    (CosineRestarts, dict(lr=1.0, period=10, t_mul=0.5), ValueError, r"CosineRestarts: t_mul must be >= 1"),
    (CosineRestarts, dict(lr=1.0, period=10, m_mul=-1.0), ValueError, r"CosineRestarts: m_mul must be >= 0"),
    (CosineRestarts, dict(lr=1.0, period=10, t_mul=NAN), ValueError, r"CosineRestarts: t_mul must be finite"),
    # OneCycle
    (OneCycle, dict(max_lr=0.1, total_steps=0), ValueError, r"OneCycle: total_steps must be a positive integer"),
    (OneCycle, dict(max_lr=0.1, total_steps=100.5), ValueError, r"OneCycle: total_steps must be a positive integer"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, pct_start=1.5), ValueError, r"OneCycle: pct_start must be <= 1"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, pct_start=-0.1), ValueError, r"OneCycle: pct_start must be >= 0"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, anneal="cosine"), ValueError,
     r"OneCycle: anneal must be one of 'cos', 'linear', got 'cosine'"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, div_factor=0), ValueError, r"OneCycle: div_factor must be > 0"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, final_div_factor=-1), ValueError,
     r"OneCycle: final_div_factor must be > 0"),
    (OneCycle, dict(max_lr=0.1, total_steps=10, pct_start=0.1), ValueError,
     r"OneCycle: pct_start=0.1 with total_steps=10 puts step 0 in phase 1, which has no length"),
    (OneCycle, dict(max_lr=0.1, total_steps=4, pct_start=0.25, anneal="linear"), ValueError,
     r"OneCycle: .*puts step 0 in phase 1, which has no length"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, pct_start=0.01, three_phase=True), ValueError,
     r"OneCycle: .*phase 1, which has no length"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, quantity="momentum", cycle_momentum=False), ValueError,
     r"OneCycle: quantity='momentum' needs cycle_momentum=True"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, quantity="beta"), ValueError, r"OneCycle: quantity must be one of"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, three_phase=1), TypeError, r"OneCycle: three_phase must be True or False"),
    (OneCycle, dict(max_lr=0.1, total_steps=100, base_momentum=-0.1), ValueError, r"OneCycle: base_momentum must be >= 0"),
    # Cyclic
    (Cyclic, dict(base_lr=0.1, max_lr=1.0, mode="triangle"), ValueError,
     r"Cyclic: mode must be one of 'triangular', 'triangular2', 'exp_range', got 'triangle'"),
    (Cyclic, dict(base_lr=0.1, max_lr=1.0, scale_mode="step"), ValueError, r"Cyclic: scale_mode must be one of 'cycle', 'iterations'"),
    (Cyclic, dict(base_lr=0.1, max_lr=1.0, step_size_up=0), ValueError, r"Cyclic: step_size_up must be > 0"),
    (Cyclic, dict(base_lr=0.1, max_lr=1.0, step_size_down=-2), ValueError, r"Cyclic: step_size_down must be > 0"),
    (Cyclic, dict(base_lr=0.1, max_lr=1.0, step_size_up=True), TypeError, r"Cyclic: step_size_up must be a real number"),
    (Cyclic, dict(base_lr=0.1, max_lr=1.0, mode="exp_range", gamma=-1.0), ValueError, r"Cyclic: gamma must be >= 0"),
    (Cyclic, dict(base_lr=-0.1, max_lr=1.0), ValueError, r"Cyclic: base_lr must be >= 0"),
    (Cyclic, dict(base_lr=0.1, max_lr=NAN), ValueError, r"Cyclic: max_lr must be finite"),
    (Cyclic, dict(base_lr=0.1, max_lr=1.0, quantity="momentum", cycle_momentum=False), ValueError,
     r"Cyclic: quantity='momentum' needs cycle_momentum=True"),
    # InverseSqrt
    (InverseSqrt, dict(lr=1.0, warmup_steps=-1), ValueError, r"InverseSqrt: warmup_steps must be an integer >= 0, got -1"),
    (InverseSqrt, dict(lr=1.0, warmup_steps=1.5), ValueError, r"InverseSqrt: warmup_steps must be an integer >= 0"),
    (InverseSqrt, dict(lr=1.0, warmup_steps=False), TypeError, r"InverseSqrt: warmup_steps must be an integer, got False"),
    # WSD
    (WSD, dict(lr=1.0, total_steps=100, warmup_steps=90, decay_steps=20), ValueError,
     r"WSD: warmup_steps \+ decay_steps must be <= total_steps, got 90 \+ 20 > 100"),
    (WSD, dict(lr=1.0, total_steps=100, warmup_steps=90), ValueError, r"WSD: warmup_steps \+ decay_steps .*90 \+ 20 > 100"),
    (WSD, dict(lr=1.0, total_steps=0), ValueError, r"WSD: total_steps must be a positive integer, got 0"),
    (WSD, dict(lr=1.0, total_steps=100, decay_steps=0), ValueError, r"WSD: decay_steps must be a positive integer"),
    (WSD, dict(lr=1.0, total_steps=100, warmup_steps=-5), ValueError, r"WSD: warmup_steps must be an integer >= 0"),
    (WSD, dict(lr=1.0, total_steps=100, cooldown="sqrt"), ValueError,
     r"WSD: cooldown must be one of 'linear', 'cosine', '1-sqrt', got 'sqrt'"),
    (WSD, dict(lr=1.0, total_steps=100, floor=-1.0), ValueError, r"WSD: floor must be >= 0"),
    (WSD, dict(lr=1.0, total_steps=True), TypeError, r"WSD: total_steps must be an integer, got True"),
    # Warmup
    (Warmup, dict(schedule=C, steps=10, start_factor=0.0, mode="exponential"), ValueError,
     r"Warmup: start_factor must be >= 1e-300, got 0.0"),
    (Warmup, dict(schedule=C, steps=10, start_factor=1.5), ValueError, r"Warmup: start_factor must be <= 1, got 1.5"),
    (Warmup, dict(schedule=C, steps=10, start_factor=-0.1), ValueError, r"Warmup: start_factor must be >= 0"),
    (Warmup, dict(schedule=C, steps=0), ValueError, r"Warmup: steps must be a positive integer, got 0"),
    (Warmup, dict(schedule=C, steps=10, mode="cosine"), ValueError, r"Warmup: mode must be one of 'linear', 'exponential'"),
    (Warmup, dict(schedule=C, steps=10, shift="no"), TypeError, r"Warmup: shift must be True or False"),
    (Warmup, dict(schedule=0.1, steps=10), TypeError, r"Warmup: schedule must be an lrcore schedule, got 0.1"),
    (Warmup, dict(schedule=Cosine, steps=10), TypeError, r"Warmup: schedule must be an lrcore schedule"),
    # Sequence
    (Sequence, dict(schedules=[C, 0.5], milestones=[3]), TypeError, r"Sequence: schedules\[1\] must be an lrcore schedule, got 0.5"),
    (Sequence, dict(schedules=[C, C], milestones=[]), ValueError,
     r"Sequence: milestones must have 1 entries \(one fewer than schedules\), got 0"),
    (Sequence, dict(schedules=[C, C, C], milestones=[5, 3]), ValueError, r"Sequence: milestones must be sorted"),
    (Sequence, dict(schedules=[C, C], milestones=[-1]), ValueError, r"Sequence: milestones\[0\] must be an integer >= 0"),
    (Sequence, dict(schedules=[], milestones=[]), ValueError, r"Sequence: schedules must not be empty"),
    (Sequence, dict(schedules=C, milestones=[]), TypeError, r"Sequence: schedules must be a list"),
    (Sequence, dict(schedules=[C, "Constant(0.1)"], milestones=[1]), TypeError, r"Sequence: schedules\[1\] must be an lrcore schedule"),
    # Product
    (Product, dict(schedules=[C, 2.0]), TypeError, r"Product: schedules\[1\] must be an lrcore schedule, got 2.0"),
    (Product, dict(schedules=[]), ValueError, r"Product: schedules must not be empty"),
    (Product, dict(schedules=[C], scale=-1.0), ValueError, r"Product: scale must be >= 0"),
    (Product, dict(schedules=[C], scale=NAN), ValueError, r"Product: scale must be finite"),
    # Lambda / Multiplicative
    (Lambda, dict(fn="t +"), ValueError, r"Lambda: fn is not a valid expression in t: 't \+'"),
    (Lambda, dict(fn="x * t"), ValueError, r"Lambda: unknown name 'x' in fn 'x \* t'"),
    (Lambda, dict(fn="__import__('os').getcwd()"), ValueError, r"Lambda: (fn may not contain Attribute nodes|only calls of)"),
    (Lambda, dict(fn="__import__"), ValueError, r"Lambda: unknown name '__import__'"),
    (Lambda, dict(fn="t.real"), ValueError, r"Lambda: fn may not contain Attribute nodes"),
    (Lambda, dict(fn="[t][0]"), ValueError, r"Lambda: fn may not contain (List|Subscript) nodes"),
    (Lambda, dict(fn="(lambda: 1)()"), ValueError, r"Lambda: (fn may not contain Lambda nodes|only calls of)"),
    (Lambda, dict(fn="lambda t: t"), ValueError, r"Lambda: fn may not contain Lambda nodes"),
    (Lambda, dict(fn="[t for t in (1, 2)]"), ValueError, r"Lambda: fn may not contain ListComp nodes"),
    (Lambda, dict(fn="sum([t for t in (1, 2)])"), ValueError, r"Lambda: (fn may not contain|only calls of)"),
    (Lambda, dict(fn="exp(t, base=2)"), ValueError, r"Lambda: only calls of .* are allowed"),
    (Lambda, dict(fn="'a' * t"), ValueError, r"Lambda: only numbers may appear as constants"),
    (Lambda, dict(fn="True * t"), ValueError, r"Lambda: only numbers may appear as constants"),
    (Lambda, dict(fn=0.5), TypeError, r"Lambda: fn must be a callable or an expression string in t, got 0.5"),
    (Lambda, dict(fn="0.9 ** t", lr=-1.0), ValueError, r"Lambda: lr must be >= 0"),
    (Chain, dict(schedules=[], lr=0.1), ValueError, r"Chain: schedules must not be empty"),
    (Chain, dict(schedules=[Cosine(0.1, 10)], lr=-1.0), ValueError, r"Chain: lr must be >= 0"),
    (Chain, dict(schedules=[0.1], lr=0.1), TypeError, r"Chain: schedules\[0\] must be an lrcore schedule"),
    (Chain, dict(schedules=[Cosine(0.1, 10)], lr=0.1), ValueError,
     r"Chain: schedules\[0\] \(Cosine\) has no chainable \(recursive\) PyTorch form"),
    (Chain, dict(schedules=[Step(0.1, 10), Step(0.1, 5)], lr=0.1, bases=[0.1]), ValueError,
     r"Chain: bases must have 2 entries \(one per scheduler, or none\), got 1"),
    (Chain, dict(schedules=[Step(0.1, 10)], lr=0.1, bases=[-0.1]), ValueError, r"Chain: bases\[0\] must be >= 0"),
    (Chain, dict(schedules=[Step(0.1, 10)], lr=0.1, bases=[[0.1, 0.1]]), ValueError,
     r"Chain: bases\[0\] must be a number for a Step"),
    (Chain, dict(schedules=[Step(0.1, 10)], lr=0.1, quantity="momentum"), ValueError,
     r"Chain: quantity='momentum' needs a scheduler that cycles momentum"),
    (Multiplicative, dict(fn="t ++"), ValueError, r"Multiplicative: fn is not a valid expression"),
    (Multiplicative, dict(fn="open('x')"), ValueError, r"Multiplicative: (unknown name 'open'|only calls of)"),
    (Multiplicative, dict(fn="t if open else 1"), ValueError, r"Multiplicative: unknown name 'open'"),
    (Multiplicative, dict(fn=None), TypeError, r"Multiplicative: fn must be a callable"),
    (Multiplicative, dict(fn="0.9", lr=NAN), ValueError, r"Multiplicative: lr must be finite"),
]


@pytest.mark.parametrize("cls, kwargs, exc, match", CASES,
                         ids=[f"{c.__name__}-{'-'.join(f'{k}={v!r}'[:24] for k, v in kw.items())}"
                              for c, kw, *_ in CASES])
def test_constructor_rejects(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls(**kwargs)


def test_every_class_has_rejection_cases():
    assert {c.__name__ for c, *_ in CASES} == set(lrcore.SCHEDULES)


def test_missing_and_unknown_arguments_are_type_errors():
    with pytest.raises(TypeError, match="decay_steps"):
        Cosine(lr=0.1)
    with pytest.raises(TypeError, match="T_max"):
        Cosine(lr=0.1, decay_steps=10, T_max=10)


def test_schedules_are_immutable_and_hashable():
    s = Cosine(lr=0.1, decay_steps=10)
    with pytest.raises(Exception, match="cannot assign"):
        s.lr = 0.2
    assert hash(s) == hash(Cosine(lr=0.1, decay_steps=10.0))
    assert {s, Cosine(0.1, 10)} == {s}


@pytest.mark.parametrize("make", [
    lambda: Constant(10 ** 400),
    lambda: Step(lr=1.0, step_size=10, gamma=10 ** 400),
    lambda: Cosine(lr=0.1, decay_steps=10 ** 400),
    lambda: lrcore.parse("Constant(lr=10 ** 400)"),
], ids=["Constant.lr", "Step.gamma", "Cosine.decay_steps", "parse"])
def test_integers_too_large_for_a_float_are_value_errors(make):
    """float(10 ** 400) raises OverflowError; the constructors must turn it into a ValueError that names
    the parameter (DESIGN: ValueError/TypeError, never a bare Python/NumPy error)."""
    with pytest.raises(ValueError, match=r"(lr|gamma|decay_steps) must be|parse: arithmetic error"):
        make()


@pytest.mark.parametrize("make, expected", [
    (lambda: Step(lr=1.0, step_size=2 ** 64), 1.0),
    (lambda: Linear(start=1.0, end=0.0, steps=2 ** 64), 1.0),
    (lambda: MultiStep(lr=1.0, milestones=[2 ** 63]), 1.0),
    (lambda: Sequence([Constant(1.0), Constant(0.5)], milestones=[2 ** 63]), 1.0),
], ids=["Step.step_size", "Linear.steps", "MultiStep.milestones", "Sequence.milestones"])
def test_step_counts_beyond_int64_are_rejected_or_evaluated(make, expected):
    """Integer parameters have no upper bound; past int64 they must be rejected at construction
    (ValueError naming the parameter) or evaluate correctly -- not an OverflowError from NumPy or
    a wrong value from the kernel."""
    try:
        s = make()
    except ValueError as e:
        assert re.search(r"\w+: \w+(\[\d+\])? must be", str(e)), str(e)
        return
    for backend in ("numpy", "numba"):
        got = lrcore.evaluate(s, np.array([0, 5]), backend=backend)
        np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=f"{s} ({backend})")


@pytest.mark.parametrize("text, name", [
    ("Cosine(lr=0.1, decay_steps=1e100)", "decay_steps"),
    ("Exponential(lr=0.1, decay_rate=0.5, decay_steps=1e30)", "decay_steps"),
    ("Polynomial(lr=0.1, decay_steps=2.0 ** 70)", "decay_steps"),
    ("CosineRestarts(lr=0.1, period=1e19)", "period"),
    ("Cyclic(base_lr=0.01, max_lr=0.1, step_size_up=1e40)", "step_size_up"),
])
def test_fractional_step_lengths_beyond_2_62_are_value_errors(text, name):
    """Lengths in steps that may be fractional are bounded like integer steps: a huge one is rejected
    at construction (it would overflow int64 inside the kernels), naming the parameter."""
    with pytest.raises(ValueError, match=rf"{name} must be < 2\*\*62"):
        lrcore.parse(text)


# --- evaluate ----------------------------------------------------------------------------------------------

S = Cosine(lr=0.1, decay_steps=10)
EVALUATE_CASES = [
    (dict(steps=-1), ValueError, r"steps must be >= 0, got -1"),
    (dict(steps=np.array([3, -2, 5])), ValueError, r"steps must be >= 0, got -2"),
    (dict(steps=[0, -1]), ValueError, r"steps must be >= 0, got -1"),
    (dict(steps=range(-3, 5)), ValueError, r"steps must be >= 0, got a range starting at -3"),
    (dict(steps=np.array([1.0, 2.5])), ValueError, r"steps must be integers, got .*2.5"),
    (dict(steps=np.array([1.0, NAN])), ValueError, r"steps must be integers, got .*nan"),
    (dict(steps=np.array([1.0, INF])), ValueError, r"steps must be integers, got .*inf"),
    (dict(steps=np.array([2.0 ** 63])), ValueError, r"steps must be < 2\*\*62"),
    (dict(steps=np.array([2 ** 64 - 1], np.uint64)), ValueError, r"steps must be < 2\*\*62"),
    (dict(steps=np.array([[1, 2], [3, 4]])), ValueError, r"steps must be a 1-D array, got shape \(2, 2\)"),
    (dict(steps=np.array(5)), ValueError, r"steps must be a 1-D array, got shape \(\)"),
    (dict(steps=3.0), ValueError, r"steps must be a 1-D array"),
    (dict(steps=np.array([True, False])), TypeError, r"steps must be integers, got an array of bool"),
    (dict(steps=True), TypeError, r"steps must be a count or a 1-D array of integers, got True"),
    (dict(steps=np.array(["1", "2"])), TypeError, r"steps must be integers, got an array of <U1"),
    (dict(steps=np.array([1 + 2j])), TypeError, r"steps must be integers, got an array of complex"),
    (dict(steps=[1, "2"]), TypeError, r"steps must be integers"),
    (dict(steps=5, backend="gpu"), ValueError, r"backend must be one of auto, numpy, numba, cuda, got 'gpu'"),
    (dict(steps=5, backend=None), ValueError, r"backend must be one of .*got None"),
    (dict(steps=5, dtype=np.int64), ValueError, r"dtype must be float64 or float32, got int64"),
    (dict(steps=5, dtype=np.float16), ValueError, r"dtype must be float64 or float32, got float16"),
    (dict(steps=5, dtype=np.complex128), ValueError, r"dtype must be float64 or float32, got complex128"),
    (dict(steps=5, out=np.zeros(4)), ValueError, r"out must be a C-contiguous numpy array of shape \(1, 5\) and dtype float64"),
    (dict(steps=5, out=np.zeros(5, np.float32)), ValueError, r"out must be .*dtype float64, got ndarray \(1, 5\) float32"),
    (dict(steps=5, dtype=np.float32, out=np.zeros(5)), ValueError, r"out must be .*dtype float32"),
    (dict(steps=5, out=np.zeros(10)[::2]), ValueError, r"out must be a C-contiguous numpy array"),
    (dict(steps=5, out=np.zeros((1, 5))), ValueError, r"out must be a 1-D numpy array"),
    (dict(steps=5, out=[0.0] * 5), ValueError, r"out must be a 1-D numpy array, got list"),
]


@pytest.mark.parametrize("backend", ["numpy", "numba", "auto"])
@pytest.mark.parametrize("kwargs, exc, match", EVALUATE_CASES,
                         ids=[f"{'-'.join(f'{k}={v!r}'[:30] for k, v in kw.items())}" for kw, *_ in EVALUATE_CASES])
def test_evaluate_rejects(kwargs, exc, match, backend):
    kwargs = {"backend": backend, **kwargs}
    out = kwargs.get("out")
    before = out.copy() if isinstance(out, np.ndarray) else None
    with pytest.raises(exc, match=match):
        lrcore.evaluate(S, **kwargs)
    if before is not None:
        np.testing.assert_array_equal(out, before)  # nothing written on error


@pytest.mark.parametrize("call, exc, match", [
    (lambda: lrcore.evaluate(0.1, 5), TypeError, r"schedule must be an lrcore schedule, got 0.1"),
    (lambda: lrcore.evaluate("Constant(0.1)", 5), TypeError, r"schedule must be an lrcore schedule"),
    (lambda: lrcore.evaluate_many(S, 5), TypeError, r"evaluate_many takes a list of schedules; use evaluate for one"),
    (lambda: lrcore.evaluate_many([S, None], 5), TypeError, r"schedules\[1\] must be an lrcore schedule, got None"),
    (lambda: lrcore.evaluate_many([S], 5, out=np.zeros((5, 1))), ValueError, r"out must be .*shape \(1, 5\)"),
    (lambda: lrcore.evaluate_many([S, S], 5, out=np.zeros((2, 5)).T.copy().T), ValueError, r"out must be a C-contiguous"),
    (lambda: lrcore.evaluate(S, range(2 ** 63, 2 ** 63 + 2)), ValueError, r"steps must be"),
    (lambda: lrcore.evaluate(Multiplicative("0.9"), [10 ** 8 + 1]), ValueError,
     r"Multiplicative: steps must be <= 100000000 .*got 100000001"),
    (lambda: lrcore.evaluate(Multiplicative("0.9"), [10 ** 8 + 1], backend="numba"), ValueError,
     r"Multiplicative: steps must be <= 100000000"),
], ids=["float-schedule", "str-schedule", "many-single", "many-None", "many-out-shape", "many-out-order",
        "range-beyond-int64", "multiplicative-numpy", "multiplicative-numba"])
def test_evaluate_rejects_other(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn, step, match", [
    ("-1.0", 1, r"Lambda: fn returned (np\.float64\()?-1\.0\)? at step 1; a learning-rate factor must be finite and >= 0"),
    ("1 - t", 3, r"Lambda: fn returned (np\.float64\()?-2\.0\)? at step 3"),
    ("log(t)", 0, r"Lambda: fn returned -inf at step 0|Lambda: .*step 0"),
    ("1 / (t - 3)", 3, r"Lambda: .*step 3"),
    ("1 // (t - 3)", 3, r"Lambda: .*step 3"),
    ("t % (t - 3)", 3, r"Lambda: .*step 3"),
    ("sqrt(t - 5)", 3, r"Lambda: .*step 3"),
])
def test_lambda_values_that_are_not_rates_are_value_errors(fn, step, match, backend):
    """An expression that is valid text but gives a negative, infinite or undefined value at some step
    raises ValueError naming Lambda and the step (not ZeroDivisionError, SystemError or NaN)."""
    with pytest.raises(ValueError, match=match):
        lrcore.evaluate(Lambda(fn), np.array([step]), backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_multiplicative_bad_factor_is_a_value_error(backend):
    with pytest.raises(ValueError, match=r"Multiplicative: fn returned (np\.float64\()?-0\.5\)? at step 2"):
        lrcore.evaluate(Multiplicative("1.0 if t < 2 else -0.5"), 5, backend=backend)


def _cuda_usable() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True
    try:
        from lrcore.kernels import cuda
    except ImportError:
        return False
    return cuda.gpu_available()


@pytest.mark.parametrize("call", [
    lambda: lrcore.evaluate(S, 5, backend="cuda"),
    lambda: lrcore.evaluate_many([S], 5, backend="cuda"),
], ids=["evaluate", "evaluate_many"])
def test_cuda_backend_without_a_gpu_is_a_clear_value_error(call):
    """Where no CUDA GPU (or the simulator) is usable, backend='cuda' raises ValueError saying so."""
    if _cuda_usable():
        pytest.skip("a CUDA GPU or the CUDA simulator is usable here")
    with pytest.raises(ValueError, match=r"backend='cuda'"):
        call()
