"""Hypothesis strategies for lrcore's canonical schedules and for arrays of steps.

``schedules()`` draws valid instances of every class in ``lrcore.SCHEDULES`` with realistic
parameters (learning rates 1e-6..10, periods 1..10_000), composites nested up to ``depth`` levels;
``schedule_of(kind)`` draws one class; ``step_arrays()`` draws int64 1-D arrays of steps (empty,
unsorted, repeated, and huge); ``schedules_and_steps()`` draws a schedule with steps it can be
evaluated at (see ``max_step_for``).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import lrcore
from lrcore import (WSD, Chain, Constant, Cosine, CosineRestarts, Cyclic, Exponential, InverseSqrt, InverseTime, Lambda,
                    Linear, Multiplicative, MultiStep, OneCycle, PiecewiseConstant, Polynomial, Product, Sequence,
                    Step, Warmup)

# Expression strings for Lambda (a factor of the step) and Multiplicative (the factor of step k given
# k; a running product over every step). Small and fixed: each distinct string is compiled by Numba.
LAMBDA_FNS = ("0.99 ** t", "1 / (1 + 0.01 * t)", "min(1.0, (t + 1) / 100)", "exp(-0.001 * t)",
              "0.5 * (1 + cos(pi * min(t, 1000) / 1000))", "1.0 if t < 50 else 0.1")
SCALE_FNS = ("0.9 ** t", "1 / (1 + 0.1 * t)")  # Cyclic scale_fn of the cycle number or the step
MULTIPLICATIVE_FNS = ("0.99", "0.999 if t < 1000 else 1.0", "1 - 0.5 / (t + 10)")

# Largest step drawn for schedules containing Multiplicative (the library allows 1e8, but a running
# product over 1e8 steps costs ~1 s and 800 MB per evaluation).
MULTIPLICATIVE_MAX_TEST_STEP = 10 ** 5
# Largest step of the int64 program format: lrcore.program.NEVER = 2**62 is "no upper bound", so the
# random arrays stop one below it (steps >= 2**62 have their own tests in test_backends.py).
MAX_STEP = 2 ** 62 - 1

LR = st.floats(1e-6, 10.0)
PERIOD = st.integers(1, 10_000)
FRACTIONAL_PERIOD = st.floats(0.5, 10_000.0).filter(lambda x: not x.is_integer())
FRACTION = st.floats(0.0, 1.0)
GAMMA = st.sampled_from([True] * 7 + [False]).flatmap(lambda nz: st.floats(0.01, 1.0) if nz else st.just(0.0))


def lrs(zero: bool = True):
    """A learning rate in [1e-6, 10], sometimes (1 in 8) 0."""
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda nz: LR if nz or not zero else st.just(0.0))


def periods():
    """An integer period 1..10_000 or (sometimes) a fractional one."""
    return st.one_of(PERIOD, FRACTIONAL_PERIOD)


def milestones(max_size: int = 6, high: int = 10_000, unique: bool = False):
    """Sorted ints in [0, high], duplicates allowed unless ``unique``."""
    return st.lists(st.integers(0, high), max_size=max_size, unique=unique).map(sorted)


@st.composite
def _below(draw, lr):
    """A floor/end value in [0, lr] (0 often)."""
    return draw(st.one_of(st.just(0.0), FRACTION.map(lambda f: f * lr * 0.5)))


@st.composite
def constants(draw):
    return Constant(draw(lrs()))


@st.composite
def steps_(draw):
    return Step(lr=draw(lrs()), step_size=draw(PERIOD), gamma=draw(GAMMA))


@st.composite
def multisteps(draw):
    return MultiStep(lr=draw(lrs()), milestones=draw(milestones()), gamma=draw(GAMMA))


@st.composite
def piecewise_constants(draw):
    b = draw(milestones())
    return PiecewiseConstant(boundaries=b, values=draw(st.lists(lrs(), min_size=len(b) + 1, max_size=len(b) + 1)))


@st.composite
def exponentials(draw):
    return Exponential(lr=draw(lrs()), decay_rate=draw(st.floats(0.01, 1.0)), decay_steps=draw(periods()),
                       staircase=draw(st.booleans()))


@st.composite
def inverse_times(draw):
    return InverseTime(lr=draw(lrs()), decay_rate=draw(st.floats(0.0, 10.0)), decay_steps=draw(periods()),
                       staircase=draw(st.booleans()))


@st.composite
def polynomials(draw):
    lr = draw(lrs())
    return Polynomial(lr=lr, decay_steps=draw(periods()), end=draw(_below(lr)), power=draw(st.floats(0.0, 5.0)),
                      cycle=draw(st.booleans()))


@st.composite
def linears(draw):
    return Linear(start=draw(lrs()), end=draw(lrs()), steps=draw(PERIOD))


@st.composite
def cosines(draw):
    lr = draw(lrs())
    periodic = draw(st.booleans())
    offset = 0.0 if periodic else draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0), st.floats(0.0, 10_000.0)))
    return Cosine(lr=lr, decay_steps=draw(periods()), floor=draw(_below(lr)),
                  periodic=periodic, offset=offset)


@st.composite
def cosine_restarts(draw):
    lr = draw(lrs())
    t_mul = draw(st.one_of(st.sampled_from([1.0, 1.0, 2.0, 1.5, 3.0]), st.floats(1.0, 3.0)))
    m_mul = draw(st.one_of(st.just(1.0), st.floats(0.1, 1.0)))
    return CosineRestarts(lr=lr, period=draw(periods()), t_mul=t_mul, m_mul=m_mul, floor=draw(_below(lr)))


def one_cycle_phase_ends(total_steps: int, pct_start: float, three_phase: bool) -> tuple:
    """The phase ends of PyTorch's OneCycleLR (what OneCycle documents)."""
    T, p = total_steps, pct_start
    if three_phase:
        return (float(p * T) - 1, float(2 * p * T) - 2, float(T) - 1)
    return (float(p * T) - 1, float(T) - 1)


@st.composite
def one_cycles(draw):
    T = draw(st.integers(2, 10_000))
    pct = draw(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.5 + 0.5 / T, 1.0 / T, 0.0, 1.0])))
    three = draw(st.booleans())
    base_m = draw(st.floats(0.5, 0.95))
    try:  # OneCycle refuses what PyTorch cannot step through (a step in a phase of no length)
        return OneCycle(max_lr=draw(LR), total_steps=T, pct_start=pct, anneal=draw(st.sampled_from(["cos", "linear"])),
                        div_factor=draw(st.floats(2.0, 100.0)), final_div_factor=draw(st.floats(1.0, 1e4)),
                        three_phase=three, cycle_momentum=draw(st.booleans()), base_momentum=base_m,
                        max_momentum=draw(st.floats(base_m, 0.99)))
    except ValueError:
        assume(False)


@st.composite
def cyclics(draw):
    base = draw(lrs())
    mode = draw(st.sampled_from(["triangular", "triangular2", "exp_range"]))
    base_m = draw(st.floats(0.5, 0.95))
    # exp_range gamma > 1 grows until gamma**t overflows (see max_step_for). (max_lr < base_lr, which
    # PyTorch takes too, is left to the conformance suite: base + (max - base) * 1 cancels to ~1e-16 base
    # at the bottom of each cycle, in PyTorch's formula as in lrcore's, so backends agree only absolutely)
    return Cyclic(base_lr=base, max_lr=base + draw(lrs()), step_size_up=draw(periods()),
                  step_size_down=draw(st.one_of(st.none(), periods())), mode=mode,
                  gamma=draw(st.one_of(st.floats(0.9, 1.0), st.floats(1.0, 1.01))) if mode == "exp_range" else 1.0,
                  scale_mode=draw(st.sampled_from([None, "cycle", "iterations"])),
                  cycle_momentum=draw(st.booleans()), base_momentum=base_m, max_momentum=draw(st.floats(base_m, 0.99)),
                  scale_fn=draw(st.sampled_from([None] * 6 + list(SCALE_FNS))))


@st.composite
def inverse_sqrts(draw):
    return InverseSqrt(lr=draw(lrs()), warmup_steps=draw(st.integers(0, 10_000)))


@st.composite
def wsds(draw):
    lr = draw(lrs())
    total = draw(PERIOD)
    decay = draw(st.one_of(st.none(), st.integers(1, total)))
    d = max(1, round(0.2 * total)) if decay is None else decay
    return WSD(lr=lr, total_steps=total, warmup_steps=draw(st.integers(0, total - d)), decay_steps=decay,
               cooldown=draw(st.sampled_from(["linear", "cosine", "1-sqrt"])), floor=draw(_below(lr)))


@st.composite
def lambdas(draw):
    return Lambda(draw(st.sampled_from(LAMBDA_FNS)), lr=draw(lrs()))


@st.composite
def multiplicatives(draw):
    return Multiplicative(draw(st.sampled_from(MULTIPLICATIVE_FNS)), lr=draw(lrs()))


@st.composite
def warmups(draw, children):
    mode = draw(st.sampled_from(["linear", "exponential"]))
    start = draw(st.floats(1e-3, 1.0) if mode == "exponential" else FRACTION)
    return Warmup(draw(children), steps=draw(st.integers(1, 5_000)), start_factor=start, mode=mode,
                  shift=draw(st.booleans()))


@st.composite
def sequences(draw, children):
    kids = draw(st.lists(children, min_size=1, max_size=3))
    m = draw(st.lists(st.integers(0, 5_000), min_size=len(kids) - 1, max_size=len(kids) - 1).map(sorted))
    return Sequence(kids, milestones=m)


@st.composite
def products(draw, children):
    return Product(draw(st.lists(children, min_size=1, max_size=3)),
                   scale=draw(st.one_of(st.just(1.0), st.floats(0.1, 10.0))))


@st.composite
def chains(draw, children=None):
    """PyTorch ChainedScheduler recurrences (``children`` is unused: a chain holds schedulers with a
    chainable form, CyclicLR, OneCycleLR and SequentialLR included, built by lrcore.compat.torch with the
    chain's lr)."""
    from lrcore.compat import torch as T
    lr = draw(LR)
    rising = []
    makers = {
        "step": lambda: T.StepLR(lr=lr, step_size=draw(st.integers(1, 50)), gamma=draw(GAMMA)),
        "multistep": lambda: T.MultiStepLR(lr=lr, milestones=draw(milestones(high=200)), gamma=draw(GAMMA)),
        "constant": lambda: T.ConstantLR(lr=lr, factor=draw(st.floats(0.01, 1.0)), total_iters=draw(st.integers(0, 50))),
        "linear": lambda: T.LinearLR(lr=lr, start_factor=draw(st.floats(0.01, 1.0)), end_factor=draw(FRACTION),
                                     total_iters=draw(st.integers(0, 50))),
        "exponential": lambda: T.ExponentialLR(lr=lr, gamma=draw(st.floats(0.9, 1.0))),
        "polynomial": lambda: T.PolynomialLR(lr=lr, total_iters=draw(st.integers(0, 50)), power=draw(st.floats(0.1, 3.0))),
        "cosine": lambda: T.CosineAnnealingLR(lr=lr, T_max=draw(st.integers(1, 100)),
                                              eta_min=draw(st.sampled_from([0.0, 1e-10, lr / 10] + rising))),
        "restarts": lambda: T.CosineAnnealingWarmRestarts(lr=lr, T_0=draw(st.integers(1, 50)), T_mult=draw(st.integers(1, 3))),
        "lambda": lambda: T.LambdaLR(lr=lr, lr_lambda=draw(st.sampled_from(LAMBDA_FNS))),
        "multiplicative": lambda: T.MultiplicativeLR(lr=lr, lr_lambda=draw(st.sampled_from(MULTIPLICATIVE_FNS))),
        "cyclic": lambda: T.CyclicLR(base_lr=draw(LR), max_lr=draw(LR), step_size_up=draw(st.integers(1, 50)),
                                     mode=draw(st.sampled_from(["triangular", "triangular2"]))),
        "onecycle": lambda: T.OneCycleLR(max_lr=draw(LR), total_steps=draw(st.integers(20, 500)),
                                         three_phase=draw(st.booleans())),
        "sequential": lambda: T.SequentialLR([T.ExponentialLR(lr=lr, gamma=draw(st.floats(0.9, 1.0))),
                                              T.StepLR(lr=lr, step_size=draw(st.integers(1, 20)))],
                                             milestones=[draw(st.integers(0, 50))]),
    }
    kinds = draw(st.lists(st.sampled_from(sorted(makers)), min_size=1, max_size=4))
    # eta_min above lr only alone: chained with others, PyTorch's recursive cosine can add
    # (lr - eta_min)(1 - cos(pi / T)) / 2 < 0 to an lr they shrank, a negative rate (reference/DIFFERENCES.md)
    rising.extend([2 * lr] if len(kinds) == 1 else [])
    members = [makers[k]() for k in kinds]
    chain = T.ChainedScheduler(members, lr=lr)  # with PyTorch's bases when a CyclicLR / OneCycleLR is built first
    return chain if isinstance(chain, Chain) else Chain(members, lr=lr)  # (a Product: multiplicative ones only)


LEAF_KINDS = {
    "Constant": constants, "Step": steps_, "MultiStep": multisteps, "PiecewiseConstant": piecewise_constants,
    "Exponential": exponentials, "InverseTime": inverse_times, "Polynomial": polynomials, "Linear": linears,
    "Cosine": cosines, "CosineRestarts": cosine_restarts, "OneCycle": one_cycles, "Cyclic": cyclics,
    "InverseSqrt": inverse_sqrts, "WSD": wsds, "Lambda": lambdas, "Multiplicative": multiplicatives,
    "Chain": chains,
}
COMPOSITE_KINDS = {"Warmup": warmups, "Sequence": sequences, "Product": products}
assert set(LEAF_KINDS) | set(COMPOSITE_KINDS) == set(lrcore.SCHEDULES), "a schedule class has no strategy"

# Table-driven schedules (Lambda, Multiplicative) call user code per evaluation: draw them less often.
_CHEAP_LEAVES = [k for k in LEAF_KINDS if k not in ("Lambda", "Multiplicative", "Chain")]


def leaf_schedules():
    """Any non-composite schedule (Lambda and Multiplicative at a lower rate)."""
    return st.sampled_from(_CHEAP_LEAVES * 3 + ["Lambda", "Multiplicative", "Chain"]).flatmap(lambda k: LEAF_KINDS[k]())


def schedules(depth: int = 3):
    """Any valid schedule; composites (Warmup, Sequence, Product) nest up to ``depth`` levels."""
    if depth <= 0:
        return leaf_schedules()
    children = schedules(depth - 1)
    composite = st.sampled_from(sorted(COMPOSITE_KINDS)).flatmap(lambda k: COMPOSITE_KINDS[k](children))
    return st.one_of(leaf_schedules(), composite)


def schedule_of(kind: str, depth: int = 2):
    """Schedules of class ``kind`` (a name in lrcore.SCHEDULES); composite children nest up to ``depth``."""
    if kind in LEAF_KINDS:
        return LEAF_KINDS[kind]()
    return COMPOSITE_KINDS[kind](schedules(depth - 1))


# --- steps ---------------------------------------------------------------------------------------------

def children_of(schedule) -> list:
    """The schedules directly inside a composite (empty for the others)."""
    if isinstance(schedule, Warmup):
        return [schedule.schedule]
    if isinstance(schedule, (Sequence, Product, Chain)):
        return list(schedule.schedules)
    return []


def walk(schedule):
    """The schedule and every schedule nested inside it."""
    yield schedule
    for child in children_of(schedule):
        yield from walk(child)


def contains(schedule, cls) -> bool:
    return any(isinstance(s, cls) for s in walk(schedule))


def max_step_for(schedule) -> int:
    """The largest step the random step arrays use for ``schedule``.

    * Multiplicative is a running product over every step: capped at MULTIPLICATIVE_MAX_TEST_STEP.
    * CosineRestarts with t_mul == 1 past period * 2**52 steps: the numba kernel's restart search
      (``formulas.restart_index``) never ends there (i + 1.0 == i in float64); that bug has its own
      test (test_backends.py::test_restarts_huge_steps_terminate), so the random arrays stay below it.
    """
    cap = MAX_STEP
    for s in walk(schedule):
        if isinstance(s, (Multiplicative, Chain)):  # running products / recurrences over every step
            cap = min(cap, MULTIPLICATIVE_MAX_TEST_STEP)
        if isinstance(s, CosineRestarts) and s.t_mul == 1.0:
            cap = min(cap, int(s.period * 2 ** 52))
        if isinstance(s, Cyclic) and s.mode == "exp_range" and s.gamma > 1.0:
            # gamma**t grows: steps from overflow_step() on raise, and the values overflow to inf a little
            # earlier (as PyTorch's); the random arrays stay where gamma**arg <= 1e250
            arg = int(math.log(1e250) / math.log(s.gamma))
            total = float(s.step_size_up) + float(s.step_size_down)
            cap = min(cap, s.overflow_step() - 1, arg if s.scale_mode == "iterations" else int((arg - 1) * total))
    return cap


def interesting_steps(schedule, offset: int = 0) -> set:
    """Steps near the schedule's own landmarks (periods, milestones, phase ends, their halves), in the
    coordinates of the outermost schedule (children of Sequence and shifted Warmup start later)."""
    out = set()
    for f in dataclasses.fields(schedule):
        v = getattr(schedule, f.name)
        values = v if isinstance(v, tuple) else (v,)
        for x in values:
            if isinstance(x, (int, float)) and not isinstance(x, bool) and 1 <= x <= 1e7:
                for y in (math.floor(x) - 1, math.floor(x), math.ceil(x), math.floor(x) + 1, x // 2, 2 * x, 3 * x):
                    out.add(offset + int(y))
    if isinstance(schedule, Sequence):
        for start, child in zip((0, *schedule.milestones), schedule.schedules):
            out |= interesting_steps(child, offset + start)
    elif isinstance(schedule, Warmup):
        out |= interesting_steps(schedule.schedule, offset + (schedule.steps if schedule.shift else 0))
    else:
        for child in children_of(schedule):
            out |= interesting_steps(child, offset)
    return {t for t in out if t >= 0}


@st.composite
def step_arrays(draw, max_step: int = MAX_STEP, max_size: int = 40, landmarks=()):
    """int64 1-D arrays of steps in [0, max_step]: empty, unsorted, repeated, small, medium and huge
    (and, given ``landmarks``, often near those)."""
    size = draw(st.integers(0, max_size))
    if size == 0:
        return np.zeros(0, np.int64)
    values = st.one_of(st.integers(0, min(100, max_step)), st.integers(0, min(20_000, max_step)),
                       st.integers(0, max_step), st.sampled_from(sorted({0, 1, max_step, max_step // 2})))
    landmarks = sorted(t for t in landmarks if t <= max_step)
    if landmarks:
        values = st.one_of(values, st.sampled_from(landmarks), st.sampled_from(landmarks))
    pool = draw(st.lists(values, min_size=1, max_size=size))
    order = draw(st.lists(st.integers(0, len(pool) - 1), min_size=size, max_size=size))
    return np.array([pool[i] for i in order], np.int64)


@st.composite
def schedules_and_steps(draw, depth: int = 3, max_size: int = 40):
    """(schedule, steps) with steps capped by ``max_step_for(schedule)``."""
    s = draw(schedules(depth))
    return s, draw(step_arrays(max_step_for(s), max_size=max_size, landmarks=interesting_steps(s)))
