"""The conformance suite: lrcore.compat against the real PyTorch, Keras, transformers, timm and optax.

A *generator* per constructor draws a JSON-safe parameter dict through a ``Draw`` (``RandomDraw``: a
seeded ``random.Random``, used by ``lrbench conformance``; ``HypothesisDraw``: hypothesis's
``st.data()``, used by ``tests/test_conformance.py``), so both draw from the same parameter ranges,
edge cases included (periods of 1, steps past the end, duplicate milestones, T_mult > 1, three-phase
one-cycle, exp_range, fractional t_mul / m_mul, cycle, warmup_target below the initial rate, warmup
longer than decay); ``draw_case`` / ``draw_momentum_case`` turn a draw into a ``Case`` (``EDGE_CASES``
are pinned ones). ``check`` runs the real framework (``reference.torch_oracle``: a real optimizer, SGD
with momentum or Adam for beta1; ``reference.keras_oracle``: the real schedule called per step) and
lrcore (numpy and numba backends) and returns the error and the offending steps; ``run`` is the
whole suite behind ``lrbench conformance``.

transformers, timm and optax (``reference.hf_oracle``, ``timm_oracle``, ``optax_oracle``) have generators of
their own (``HF``, ``TIMM``, ``OPTAX``) over the ranges each package accepts.

Tolerances (DESIGN.md): PyTorch, transformers, timm, optax (float64) relative error <= 1e-10 per step; Keras (float32)
|diff| <= 2e-6 |ref| + 1e-6 max|ref| (the *normalized error* |diff| / that bound must be <= 1).
Steps where the framework's own arithmetic is documented to differ (``EXPLAINED``) are not
tolerated in bulk: each such step is identified exactly and listed with its reason.
"""
from __future__ import annotations

import dataclasses
import math
import random
from typing import Callable

import numpy as np

from . import keras_oracle  # noqa: F401  (sets KERAS_BACKEND and quiets TensorFlow before keras loads)

TORCH_RTOL = 1e-10
KERAS_RTOL, KERAS_ATOL = 2e-6, 1e-6

# Real Python lambdas (LambdaLR: the factor at step t; MultiplicativeLR: the factor of step k).
LAMBDAS: dict[str, Callable] = {
    "0.95**t": lambda t: 0.95 ** t,
    "1/(1+0.1t)": lambda t: 1 / (1 + 0.1 * t),
    "warmup10": lambda t: min(1.0, (t + 1) / 10),
    "cos50": lambda t: 0.5 * (1 + math.cos(math.pi * min(t, 50) / 50)),
    "step20": lambda t: 1.0 if t < 20 else 0.1,
}
# CyclicLR scale_fn (of the cycle number or the step, by scale_mode)
SCALE_FNS: dict[str, Callable] = {
    "1/x": lambda x: 1.0 / x if x else 1.0,
    "0.9**x": lambda x: 0.9 ** x,
    "1/(1+0.1x)": lambda x: 1 / (1 + 0.1 * x),
}
MULT_LAMBDAS: dict[str, Callable] = {
    "0.95": lambda k: 0.95,
    "0.9 until 10": lambda k: 0.9 if k < 10 else 1.0,
    "1-0.5/(k+10)": lambda k: 1 - 0.5 / (k + 10),
}


# ----------------------------------------------------------------------------------------- draws

class RandomDraw:
    """Draws from a seeded ``random.Random``."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def real(self, lo: float, hi: float) -> float:
        return self.rng.uniform(lo, hi)

    def boolean(self) -> bool:
        return self.rng.random() < 0.5

    def choice(self, options):
        return options[self.rng.randrange(len(options))]


class HypothesisDraw:
    """Draws through hypothesis (``data`` from ``st.data()``), with the same ranges as RandomDraw."""

    def __init__(self, data):
        from hypothesis import strategies as st
        self.data, self.st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def real(self, lo: float, hi: float) -> float:
        return self.data.draw(self.st.floats(lo, hi, allow_nan=False, allow_infinity=False))

    def boolean(self) -> bool:
        return self.data.draw(self.st.booleans())

    def choice(self, options):
        return self.data.draw(self.st.sampled_from(list(options)))


def _log_uniform(d, lo: float, hi: float) -> float:
    return float(10.0 ** d.real(math.log10(lo), math.log10(hi)))


def _lr(d) -> float:
    return _log_uniform(d, 1e-4, 1.0)


def _period(d, hi: int = 60) -> int:
    """A period, 1 (an edge case) often."""
    return d.choice([1, 1, 2, 3]) if d.integer(0, 3) == 0 else d.integer(1, hi)


def _fraction(d) -> float:
    return d.choice([0.0, 1.0, 0.5]) if d.integer(0, 4) == 0 else d.real(0.0, 1.0)


def _total_iters(d) -> int:
    """ConstantLR / LinearLR / PolynomialLR total_iters: PyTorch checks no sign (a negative one is never
    reached: the initial value holds, as with 0)."""
    return -d.integer(1, 3) if d.integer(0, 9) == 0 else d.integer(0, 40)


def _gamma(d) -> float:
    """A decay factor: PyTorch takes any gamma (its validation checks none); > 1 grows, 0 drops to 0 at once."""
    return d.choice([0.0, 1.0, d.real(1.0, 1.5)]) if d.integer(0, 4) == 0 else d.real(0.05, 1.0)


# ---------------------------------------------------------------------- torch parameter generators
# Each returns (kwargs, steps): kwargs in PyTorch's names plus "lr" (the optimizer's initial lr).

def _t_step(d):
    s = _period(d)
    return dict(lr=_lr(d), step_size=s, gamma=_gamma(d)), d.integer(1, 4 * s + 20)


def _t_multistep(d):
    ms = [d.integer(0, 60) for _ in range(d.integer(1, 5))]
    if d.boolean():
        ms.append(d.choice(ms))  # a duplicate milestone
    if d.boolean():
        ms = sorted(ms)
    if d.integer(0, 9) == 0:  # never reached by the (integer) step: PyTorch checks none
        ms.append(d.choice([-3, 2.5]))
    return dict(lr=_lr(d), milestones=ms, gamma=_gamma(d)), int(max(ms)) + d.integer(1, 30)


def _t_constant(d):
    n = _total_iters(d)
    # factor in [0, 1] (PyTorch's rule); with factor=0 PyTorch divides by zero at total_iters (both refuse then)
    factor = d.choice([0.0, 1.0, 1e-6]) if d.integer(0, 5) == 0 else d.real(0.01, 1.0)
    return dict(lr=_lr(d), factor=factor, total_iters=n), max(n, 0) + d.integer(1, 30)


def _t_linear(d):
    n = _total_iters(d)
    # start_factor in (0, 1], end_factor in [0, 1] (PyTorch's rules), tiny start factors too
    start = d.choice([1.0, 1e-8, _log_uniform(d, 1e-6, 1e-2)]) if d.integer(0, 4) == 0 else d.real(0.01, 1.0)
    return (dict(lr=_lr(d), start_factor=start, end_factor=_fraction(d), total_iters=n),
            max(n, 0) + d.integer(1, 30))


def _t_exponential(d):
    return dict(lr=_lr(d), gamma=d.choice([0.0, 1.0, d.real(1.0, 1.05)]) if d.integer(0, 4) == 0 else d.real(0.8, 1.0)), \
        d.integer(1, 200)


def _t_polynomial(d):
    n = _total_iters(d)
    power = d.choice([0.0, 1.0, d.real(0.0, 0.1), d.real(4.0, 10.0)]) if d.integer(0, 4) == 0 else d.real(0.1, 4.0)
    return dict(lr=_lr(d), total_iters=n, power=power), max(n, 0) + d.integer(1, 30)


def _t_cosine(d):
    T = _period(d) if d.integer(0, 5) else round(d.real(0.5, 30.0), 3)  # PyTorch takes a fractional T_max too
    lr = _lr(d)
    eta = d.choice([0.0, 0.0, lr * d.real(0.0, 0.5), lr * d.real(1.0, 3.0)])  # eta_min > lr: rising
    return dict(lr=lr, T_max=T, eta_min=eta), d.integer(1, int(5 * T) + 10)


def _t_warm_restarts(d):
    T0, mult = _period(d, 30), d.choice([1, 1, 2, 3, 4])
    lr = _lr(d)
    eta = d.choice([0.0, lr * d.real(0.0, 0.5), lr * d.real(1.0, 3.0)])  # eta_min > lr: rising
    return dict(lr=lr, T_0=T0, T_mult=mult, eta_min=eta), d.integer(1, 8 * T0 + 20)


def _t_cyclic(d):
    base = _lr(d)
    up = d.choice([_period(d, 30), round(d.real(0.5, 20.0), 3)])
    down = d.choice([None, _period(d, 30), round(d.real(0.5, 20.0), 3)])
    mode = d.choice(["triangular", "triangular2", "exp_range"])
    # PyTorch checks neither max_lr >= base_lr nor gamma <= 1 nor max_momentum >= base_momentum
    peak = base * d.choice([d.real(1.0, 20.0), d.real(1.0, 20.0), d.real(0.0, 1.0)])
    gamma = d.choice([d.real(0.9, 1.0), d.real(0.9, 1.0), d.real(1.0, 1.02)]) if mode == "exp_range" else d.real(0.5, 2.0)
    mom = sorted([d.real(0.7, 0.99), d.real(0.7, 0.99)])
    if d.integer(0, 3) == 0:
        mom.reverse()
    kw = dict(base_lr=base, max_lr=peak, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma,
              base_momentum=mom[0], max_momentum=mom[1])
    if d.boolean():  # ignored by PyTorch with a built-in mode
        kw["scale_mode"] = d.choice(["cycle", "iterations"])
    if d.integer(0, 3) == 0:  # a custom scale function: mode is ignored then, scale_mode ("cycle" by default) used
        kw["scale_fn"] = d.choice(sorted(SCALE_FNS))
    return kw, d.integer(1, int(6 * (up + (down or up))) + 10)


def _t_onecycle(d):
    three = d.boolean()
    T = d.integer(1, 300)
    # any pct_start PyTorch takes: phases may have no length (PyTorch divides by zero if a step lands in
    # one: both refuse) or end out of order (three phases with pct_start above ~0.5: the steps anneal
    # through the second phase and never reach the third)
    pct = d.choice([0.0, 1.0, 0.5, 1.0 / T, 2.0 / T, 0.5 + 0.5 / T]) if d.integer(0, 4) == 0 else d.real(0.0, 1.0)
    kw = dict(max_lr=_lr(d), total_steps=T, pct_start=pct, anneal_strategy=d.choice(["cos", "linear"]),
              div_factor=d.choice([d.real(2.0, 50.0), d.real(2.0, 50.0), d.real(0.5, 2.0)]),
              final_div_factor=_log_uniform(d, 0.5, 1e4), three_phase=three,
              base_momentum=d.real(0.7, 0.85), max_momentum=d.real(0.85, 0.99))
    if d.integer(0, 3) == 0:  # epochs * steps_per_epoch instead of total_steps
        kw.pop("total_steps")
        kw.update(epochs=1, steps_per_epoch=T)
    return kw, T


def _t_lambda(d):
    return dict(lr=_lr(d), lr_lambda=d.choice(sorted(LAMBDAS))), d.integer(1, 120)


def _t_multiplicative(d):
    return dict(lr=_lr(d), lr_lambda=d.choice(sorted(MULT_LAMBDAS))), d.integer(1, 120)


# children a SequentialLR may hold: every scheduler but ChainedScheduler and SequentialLR (PyTorch cannot
# restart those at a milestone); CyclicLR and OneCycleLR set the optimizer's lr and initial_lr when built,
# so the base rate of the children built after them depends on the order
_SEQ_CHILDREN = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
                 "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "LambdaLR", "MultiplicativeLR",
                 "CyclicLR", "OneCycleLR")
# children a ChainedScheduler may hold (see lrcore.compat.torch.ChainedScheduler): every scheduler; CyclicLR
# and OneCycleLR set lr (and momentum) outright and change the optimizer's initial_lr for those built after
_CHAIN_CHILDREN = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
                   "CosineAnnealingLR", "MultiplicativeLR", "LambdaLR", "CosineAnnealingWarmRestarts",
                   "CyclicLR", "OneCycleLR", "SequentialLR")
_CYCLERS = ("CyclicLR", "OneCycleLR")


def _t_sequential(d, cycles_momentum: bool = False):
    """2-4 children (with ``cycles_momentum``, one of them a CyclicLR or OneCycleLR that does)."""
    lr = _lr(d)
    k = d.integer(2, 4)
    forced = d.integer(0, k - 1) if cycles_momentum else -1
    children = []
    for i in range(k):
        name = d.choice(_CYCLERS) if i == forced else d.choice(_SEQ_CHILDREN)
        kw, _ = TORCH[name](d)
        kw["lr"] = lr
        if i == forced:
            kw["cycle_momentum"] = True
        # total_iters=0 is left out in children: at a milestone PyTorch's closed form divides by it
        # (LinearLR, PolynomialLR: ZeroDivisionError) or gives lr, not lr * factor (ConstantLR; not reproduced)
        if name in ("LinearLR", "PolynomialLR", "ConstantLR"):
            kw["total_iters"] = max(kw["total_iters"], 1)
        # negative milestones are left out too: PyTorch's closed form (used at a milestone) counts them
        if name == "MultiStepLR":
            kw["milestones"] = [m for m in kw["milestones"] if m >= 0 and float(m).is_integer()] or [0]
        children.append([name, kw])
    ms = sorted(d.integer(0, 40) if d.integer(0, 5) else 0 for _ in range(k - 1))
    return dict(lr=lr, schedulers=children, milestones=ms), ms[-1] + d.integer(1, 40)


def _t_chained(d, cycles_momentum: bool = False):
    """A chain of 2-4 schedulers (with ``cycles_momentum``, one of them a CyclicLR or OneCycleLR that does);
    steps stop at the shortest OneCycleLR's total_steps (PyTorch raises one step later)."""
    lr = _lr(d)
    children = []
    k = d.integer(2, 4)
    forced = d.integer(0, k - 1) if cycles_momentum else -1
    steps = d.integer(1, 150)
    for i in range(k):
        name = d.choice(_CYCLERS) if i == forced else d.choice(_CHAIN_CHILDREN)
        kw, n = TORCH[name](d)
        if name not in _CYCLERS:
            kw["lr"] = lr
            for _, child in kw.get("schedulers", []):  # a SequentialLR's children: the same optimizer
                child["lr"] = lr
        else:
            kw.pop("lr", None)
            if i == forced:
                kw["cycle_momentum"] = True
        if name == "OneCycleLR":
            steps = min(steps, n)
        if name == "CosineAnnealingLR" and kw["eta_min"] > 0:  # eta_min as a fraction of lr, as PyTorch's tests
            kw["eta_min"] = d.choice([1e-10, kw["eta_min"]])
        children.append([name, kw])
    return dict(lr=lr, schedulers=children), steps


# the torch constructors whose momentum (SGD momentum / Adam beta1) is a schedule too
MOMENTUM = ("CyclicLR", "OneCycleLR", "SequentialLR", "ChainedScheduler")

TORCH: dict[str, Callable] = {
    "StepLR": _t_step, "MultiStepLR": _t_multistep, "ConstantLR": _t_constant, "LinearLR": _t_linear,
    "ExponentialLR": _t_exponential, "PolynomialLR": _t_polynomial, "CosineAnnealingLR": _t_cosine,
    "CosineAnnealingWarmRestarts": _t_warm_restarts, "CyclicLR": _t_cyclic, "OneCycleLR": _t_onecycle,
    "SequentialLR": _t_sequential, "ChainedScheduler": _t_chained, "LambdaLR": _t_lambda,
    "MultiplicativeLR": _t_multiplicative,
}


# ---------------------------------------------------------------------- keras parameter generators

def _k_period(d, hi: float = 60) -> float:
    """An integer period (1 often) or a fractional one."""
    return float(_period(d, int(hi))) if d.integer(0, 3) else round(d.real(0.5, hi), 3)


def _k_exponential(d):
    ds = _k_period(d)
    # Keras checks only decay_steps > 0: decay_rate 0 (0 from step 1 on), 1, or > 1 (growth) too
    rate = d.choice([0.0, 1.0, d.real(1.0, 2.0)]) if d.integer(0, 4) == 0 else d.real(0.05, 1.0)
    return (dict(initial_learning_rate=_lr(d), decay_steps=ds, decay_rate=rate, staircase=d.boolean()),
            d.integer(1, int(6 * ds) + 20))


def _k_inverse_time(d):
    ds = _k_period(d)
    rate = d.choice([0.0, d.real(5.0, 100.0)]) if d.integer(0, 4) == 0 else d.real(0.0, 5.0)
    return (dict(initial_learning_rate=_lr(d), decay_steps=ds, decay_rate=rate, staircase=d.boolean()),
            d.integer(1, int(6 * ds) + 20))


def _k_piecewise(d):
    """Keras checks only len(values) == len(boundaries) + 1: boundaries may repeat, be unsorted (each
    value then counts where its own interval test holds: a sum, or 0 where none does), fractional (cast
    to the int64 step: truncated) or negative."""
    b = [d.integer(0, 60) for _ in range(d.integer(1, 5))]
    if d.boolean():
        b.append(d.choice(b))  # a duplicate boundary
    if d.integer(0, 3):
        b = sorted(b)
    if d.integer(0, 4) == 0:
        b = [x + d.choice([0.0, 0.5, round(d.real(0.0, 1.0), 3), -0.5]) for x in b]
    if d.integer(0, 6) == 0:
        b[0] = -d.choice([1, 3.5])
    return dict(boundaries=b, values=[_lr(d) for _ in range(len(b) + 1)]), int(max(b)) + d.integer(1, 30)


def _k_polynomial(d):
    ds = _k_period(d)
    lr = _lr(d)
    power = d.choice([0.0, 1.0, d.real(0.0, 0.1), d.real(4.0, 10.0)]) if d.integer(0, 4) == 0 else d.real(0.1, 4.0)
    kw = dict(initial_learning_rate=lr, decay_steps=ds, power=power, cycle=d.boolean())
    if d.boolean():
        kw["end_learning_rate"] = lr * d.choice([0.0, d.real(0.0, 0.5), d.real(1.0, 2.0)])
    return kw, d.integer(1, int(5 * ds) + 20)


def _k_cosine(d):
    ds = _k_period(d)
    lr = _lr(d)
    # alpha: Keras takes any; alpha in (0, 1] a floor, alpha > 1 a rise from lr to alpha * lr
    kw = dict(initial_learning_rate=lr, decay_steps=ds, alpha=d.choice([0.0, d.real(0.0, 0.5), 1.0, d.real(1.0, 3.0)]))
    n = int(2 * ds) + 20
    if d.boolean():  # Keras 3 warmup: target above or below the initial rate, warmup shorter or longer than decay
        w = d.integer(0, 80) if d.integer(0, 3) else round(d.real(0.0, 40.0), 3)  # fractional warmup_steps too
        kw.update(initial_learning_rate=d.choice([0.0, lr * d.real(0.0, 1.0), lr * d.real(1.0, 3.0)]),
                  warmup_target=lr, warmup_steps=w)
        n += math.ceil(w)
    return kw, d.integer(1, n)


def _k_restarts(d):
    first = _k_period(d, 30)
    kw = dict(initial_learning_rate=_lr(d), first_decay_steps=first,
              t_mul=d.choice([1.0, 2.0, 2.0, 3.0, round(d.real(1.0, 3.0), 3)]),
              m_mul=d.choice([1.0, 0.5, 0.0, round(d.real(0.1, 1.0), 3), round(d.real(1.0, 1.5), 3)]),
              alpha=d.choice([0.0, d.real(0.0, 0.5), 1.0, d.real(1.0, 2.0)]))
    return kw, d.integer(1, int(10 * first) + 40)


KERAS: dict[str, Callable] = {
    "ExponentialDecay": _k_exponential, "PiecewiseConstantDecay": _k_piecewise, "PolynomialDecay": _k_polynomial,
    "InverseTimeDecay": _k_inverse_time, "CosineDecay": _k_cosine, "CosineDecayRestarts": _k_restarts,
}


# ---------------------------------------------------------------- hf / timm / optax parameter generators
# Each returns (kwargs, steps) in the package's own names; hf and timm kwargs carry "lr" (the optimizer's lr).

def _w(d, hi: int = 30) -> int:
    """A warmup length: 0 and 1 (edges) often."""
    return d.choice([0, 0, 1]) if d.integer(0, 2) == 0 else d.integer(2, hi)


def _h_constant(d):
    return dict(lr=_lr(d)), d.integer(1, 40)


def _h_constant_warmup(d):
    w = _w(d)
    return dict(lr=_lr(d), num_warmup_steps=w), w + d.integer(1, 30)


def _h_training(d):
    """(w, T): T after w mostly, equal or before it sometimes (transformers divides by max(1, T - w))."""
    w = _w(d)
    T = w + d.integer(1, 80) if d.integer(0, 5) else max(0, w - d.integer(0, 3))
    return w, T


def _h_linear(d):
    w, T = _h_training(d)
    return dict(lr=_lr(d), num_warmup_steps=w, num_training_steps=T), max(w, T) + d.integer(1, 30)


def _h_cycles(d, default):
    return d.choice([default, default, 0, 1, 2, 3, round(d.real(0.1, 4.0), 3), d.real(0.0, 3.0)])


def _h_cosine(d):
    w, T = _h_training(d)
    kw = dict(lr=_lr(d), num_warmup_steps=w, num_training_steps=T)
    c = _h_cycles(d, 0.5)
    if c != 0.5:
        kw["num_cycles"] = c
    return kw, max(w, T) + d.integer(1, 60)


def _h_restarts(d):
    w, T = _h_training(d)
    kw = dict(lr=_lr(d), num_warmup_steps=w, num_training_steps=T)
    c = d.choice([1, 1, 0, 2, 3, 5, 7, round(d.real(0.2, 4.0), 3)])
    if c != 1:
        kw["num_cycles"] = c
    return kw, max(w, T) + d.integer(1, 30)


def _h_polynomial(d):
    w, T = _h_training(d)
    if T == w:  # transformers divides by T - w = 0 at step T (lrcore refuses): reach it
        T = w + d.integer(1, 40)
    lr = _lr(d)
    kw = dict(lr=lr, num_warmup_steps=w, num_training_steps=T)
    if d.boolean():
        kw["lr_end"] = d.choice([0.0, lr * d.real(0.0, 0.9)])
    if d.boolean():
        kw["power"] = d.choice([0.0, 1.0, 2.0, d.real(0.1, 4.0)])
    return kw, max(w, T) + d.integer(1, 30)


def _h_inverse_sqrt(d):
    w = _w(d)
    kw = dict(lr=_lr(d), num_warmup_steps=w)
    if d.boolean():
        kw["timescale"] = d.choice([d.integer(1, 200), round(d.real(0.5, 100.0), 3)])
    return kw, w + d.integer(1, 200)


def _h_min_lr(d, rate_variant=False):
    w, T = _h_training(d)
    lr = _lr(d)
    kw = dict(lr=lr, num_warmup_steps=w, num_training_steps=T)
    if d.boolean():
        kw["min_lr"] = lr * d.choice([0.0, d.real(0.0, 0.5), d.real(1.0, 1.5)])
    else:
        kw["min_lr_rate"] = d.choice([0.0, d.real(0.0, 0.5), 0.1])
    c = _h_cycles(d, 0.5)
    if c != 0.5:
        kw["num_cycles"] = c
    if rate_variant and d.boolean():
        kw["warmup_lr_rate"] = d.choice([0.0, d.real(0.0, 1.0)])
    return kw, max(w, T) + d.integer(1, 40)


def _h_wsd(d):
    w, dec = _w(d), d.choice([0, 1, d.integer(2, 40), d.integer(2, 40)])
    s = d.integer(0, 40)
    kw = dict(lr=_lr(d), num_warmup_steps=w, num_decay_steps=dec, warmup_type=d.choice(["linear", "cosine", "1-sqrt"]),
              decay_type=d.choice(["linear", "cosine", "1-sqrt"]))
    if d.boolean():
        kw["num_training_steps"] = w + s + dec
    else:
        kw["num_stable_steps"] = s
    if d.boolean():
        kw["min_lr_ratio"] = d.choice([0.0, 0.1, d.real(0.0, 1.0)])
    if d.integer(0, 3) == 0:
        kw["num_cycles"] = _h_cycles(d, 0.5)
    return kw, w + s + dec + d.integer(1, 30)


_HF_NAMES = {"linear": "get_linear_schedule_with_warmup", "cosine": "get_cosine_schedule_with_warmup",
             "cosine_with_restarts": "get_cosine_with_hard_restarts_schedule_with_warmup",
             "polynomial": "get_polynomial_decay_schedule_with_warmup", "constant": "get_constant_schedule",
             "constant_with_warmup": "get_constant_schedule_with_warmup", "inverse_sqrt": "get_inverse_sqrt_schedule",
             "cosine_with_min_lr": "get_cosine_with_min_lr_schedule_with_warmup",
             "cosine_warmup_with_min_lr": "get_cosine_with_min_lr_schedule_with_warmup_lr_rate",
             "warmup_stable_decay": "get_wsd_schedule"}


def _h_get_scheduler(d):
    """get_scheduler(name, ...) with a draw of that schedule's own generator (its extra keywords as
    scheduler_specific_kwargs)."""
    name = d.choice(sorted(_HF_NAMES))
    kw, steps = HF[_HF_NAMES[name]](d)
    out = dict(name=name, lr=kw.pop("lr"))
    for key in ("num_warmup_steps", "num_training_steps"):
        if key in kw:
            out[key] = kw.pop(key)
    if kw:
        out["scheduler_specific_kwargs"] = kw
    return out, steps


HF: dict[str, Callable] = {
    "get_constant_schedule": _h_constant, "get_constant_schedule_with_warmup": _h_constant_warmup,
    "get_linear_schedule_with_warmup": _h_linear, "get_cosine_schedule_with_warmup": _h_cosine,
    "get_cosine_with_hard_restarts_schedule_with_warmup": _h_restarts,
    "get_polynomial_decay_schedule_with_warmup": _h_polynomial, "get_inverse_sqrt_schedule": _h_inverse_sqrt,
    "get_cosine_with_min_lr_schedule_with_warmup": _h_min_lr,
    "get_cosine_with_min_lr_schedule_with_warmup_lr_rate": lambda d: _h_min_lr(d, True),
    "get_wsd_schedule": _h_wsd, "get_scheduler": _h_get_scheduler,
}


def _timm_common(d, kw, prefix_default):
    if d.boolean():
        kw["warmup_t"] = _w(d, 20)
        if d.boolean():
            kw["warmup_lr_init"] = kw["lr"] * d.choice([0.0, d.real(0.0, 1.0), d.real(1.0, 2.0)])
    if d.boolean():
        kw["warmup_prefix"] = not prefix_default
    if d.boolean():
        kw["t_in_epochs"] = False
    return kw


def _timm_cycles(d, kw):
    lr = kw["lr"]
    if d.boolean():
        kw["lr_min"] = d.choice([0.0, lr * d.real(0.0, 0.5), lr * d.real(1.0, 2.0), 1e-6])
    if d.integer(0, 2) == 0:
        kw["cycle_mul"] = d.choice([2.0, 1.5, round(d.real(0.5, 3.0), 3), d.real(1.0, 3.0)])
    if d.integer(0, 2) == 0:
        kw["cycle_decay"] = d.choice([0.5, d.real(0.1, 1.0), d.real(1.0, 1.5)])
    if d.integer(0, 2) == 0:
        kw["cycle_limit"] = d.choice([0, 2, 3, 10, 1000])
    return kw


def _timm_steps(kw):
    cycles = min(kw.get("cycle_limit", 1), 4) + 1
    return kw.get("warmup_t", 0) + int(kw["t_initial"] * max(1.0, kw.get("cycle_mul", 1.0)) ** cycles * cycles) + 10


def _timm_cycle_scheduler(shape):
    """A generator of Cosine/Poly/TanhLRScheduler kwargs: cycles, then ``shape(d, kw)`` (the shape's own
    options), then warmup."""
    def draw(d):
        kw = _timm_cycles(d, dict(lr=_lr(d), t_initial=_period(d, 50)))
        shape(d, kw)
        kw = _timm_common(d, kw, False)
        return kw, d.integer(1, min(_timm_steps(kw), 400))
    return draw


def _k_decay(d, kw):
    if d.integer(0, 3) == 0:
        kw["k_decay"] = d.choice([2.0, 0.5, d.real(0.3, 3.0)])


def _poly_shape(d, kw):
    if d.boolean():
        kw["power"] = d.choice([1.0, 2.0, d.real(0.1, 4.0)])
    _k_decay(d, kw)


def _tanh_shape(d, kw):
    if d.boolean():
        lb, ub = sorted([d.real(-10.0, 5.0), d.real(-10.0, 5.0)])
        kw.update(lb=lb, ub=ub + 0.01)


_t_cosine_timm, _t_poly_timm, _t_tanh_timm = map(_timm_cycle_scheduler, (_k_decay, _poly_shape, _tanh_shape))


def _t_step_timm(d):
    kw = dict(lr=_lr(d), decay_t=d.choice([_period(d, 30), _period(d, 30), round(d.real(0.5, 20.0), 3)]))
    if d.boolean():
        kw["decay_rate"] = _gamma(d)
    kw = _timm_common(d, kw, True)
    return kw, kw.get("warmup_t", 0) + d.integer(1, int(5 * kw["decay_t"]) + 20)


def _t_multistep_timm(d):
    ms = sorted(d.integer(0, 60) for _ in range(d.integer(1, 5)))
    if d.integer(0, 4) == 0:  # timm bisects whatever list it is given
        ms.reverse()
    kw = dict(lr=_lr(d), decay_t=ms, decay_rate=_gamma(d))
    kw = _timm_common(d, kw, True)
    return kw, kw.get("warmup_t", 0) + max(ms) + d.integer(1, 30)


def _t_wsd_timm(d):
    T = _period(d, 80)
    lr = _lr(d)
    kw = dict(lr=lr, t_initial=T, decay_t=d.integer(1, T), decay_fn=d.choice(["1-sqrt", "linear", "cosine", "power", "exp"]))
    if d.boolean():
        kw["lr_min"] = d.choice([0.0, lr * d.real(0.0, 0.5), lr * d.real(1.0, 2.0)])
    if d.integer(0, 2) == 0:  # a decaying stable phase: stable_timescale defaults to warmup_t (timm refuses 0)
        kw["stable_fn"] = d.choice(["rsqrt", "power"])
        kw["stable_power"] = d.choice([0.5, d.real(0.1, 2.0)])
        if d.boolean():
            kw["stable_timescale"] = d.choice([d.integer(1, 50), d.real(0.5, 50.0)])
    if kw["decay_fn"] == "power" and d.boolean():
        kw["decay_power"] = d.real(0.1, 3.0)
    if kw["decay_fn"] == "exp" and d.boolean():
        kw["decay_ratio"] = d.real(0.01, 0.99)
    if d.boolean():
        kw["warmup_t"] = _w(d, 20)
        if d.boolean():
            kw["warmup_lr_init"] = lr * d.real(0.0, 1.0)
    if d.boolean():
        kw["t_in_epochs"] = False
    return kw, kw.get("warmup_t", 0) + T + d.integer(1, 30)


TIMM: dict[str, Callable] = {
    "CosineLRScheduler": _t_cosine_timm, "PolyLRScheduler": _t_poly_timm, "TanhLRScheduler": _t_tanh_timm,
    "StepLRScheduler": _t_step_timm, "MultiStepLRScheduler": _t_multistep_timm, "WSDLRScheduler": _t_wsd_timm,
}


def _o_steps(d):
    """transition_steps: positive mostly; 0 or negative (a constant schedule) or fractional sometimes."""
    return d.choice([0, -3, round(d.real(0.5, 30.0), 3)]) if d.integer(0, 4) == 0 else _period(d, 60)


def _o_begin(d):
    return d.choice([0, 0, d.integer(1, 30), -2])


def _o_constant(d):
    return dict(value=_lr(d)), d.integer(1, 20)


def _o_polynomial(d):
    kw = dict(init_value=_lr(d), end_value=d.choice([0.0, _lr(d)]),
              power=d.choice([1.0, 2.0, 0.0, d.real(0.0, 4.0)]), transition_steps=_o_steps(d),
              transition_begin=_o_begin(d))
    return kw, max(0, kw["transition_begin"]) + int(max(kw["transition_steps"], 0)) + d.integer(1, 30)


def _o_linear(d):
    kw = dict(init_value=_lr(d), end_value=d.choice([0.0, _lr(d)]), transition_steps=_o_steps(d),
              transition_begin=_o_begin(d))
    return kw, max(0, kw["transition_begin"]) + int(max(kw["transition_steps"], 0)) + d.integer(1, 30)


def _o_pairs(d, lo=-3):
    return [[d.choice([d.integer(lo, 60), d.integer(0, 60), round(d.real(0.0, 60.0), 2)]) if lo < 0 else
             d.integer(lo, 60), d.choice([d.real(0.0, 1.0), d.real(0.0, 2.0), 0.5, 0.0])] for _ in range(d.integer(0, 4))]


def _o_piecewise_constant(d):
    kw = dict(init_value=_lr(d))
    if d.integer(0, 5):
        kw["boundaries_and_scales"] = _o_pairs(d)
    return kw, d.integer(1, 80)


def _o_exponential(d):
    init = _lr(d)
    kw = dict(init_value=init, transition_steps=_o_steps(d),
              decay_rate=d.choice([d.real(0.1, 1.0), d.real(0.1, 1.0), d.real(1.0, 1.5), 0.0, 1.0]),
              transition_begin=_o_begin(d), staircase=d.boolean())
    if d.boolean():
        kw["end_value"] = init * d.choice([d.real(0.0, 1.0), d.real(1.0, 3.0), 0.0])
    return kw, d.integer(1, 150)


def _o_cosine(d):
    kw = dict(init_value=_lr(d), decay_steps=d.choice([_period(d, 60), round(d.real(0.5, 40.0), 3)]))
    if d.boolean():
        kw["alpha"] = d.choice([0.0, d.real(0.0, 0.5), d.real(1.0, 2.0)])
    if d.integer(0, 2) == 0:
        kw["exponent"] = d.choice([2.0, d.real(0.3, 3.0)])
    return kw, d.integer(1, int(kw["decay_steps"]) + 30)


def _o_interpolate(d):
    kw = dict(interpolate_type=d.choice(["linear", "cosine"]), init_value=_lr(d))
    if d.integer(0, 5):
        kw["boundaries_and_scales"] = _o_pairs(d, 0)
    return kw, d.integer(1, 90)


def _o_onecycle(d, linear):
    T = d.integer(1, 200)
    kw = dict(transition_steps=T, peak_value=_lr(d))
    if d.boolean():
        kw["pct_start"] = d.choice([d.real(0.0, 0.6), 0.0, 0.5])
    if linear and d.boolean():
        kw["pct_final"] = d.choice([d.real(kw.get("pct_start", 0.3), 1.0), 1.0])
    if d.boolean():
        kw["div_factor"] = d.real(1.0, 50.0)
        kw["final_div_factor"] = _log_uniform(d, 1.0, 1e4)
    return kw, d.integer(1, T + 30)


def _o_warmup_constant(d):
    w = _w(d)
    return dict(init_value=_lr(d) * d.choice([0.0, 1.0]), peak_value=_lr(d), warmup_steps=w), w + d.integer(1, 20)


def _o_warmup_cosine_kwargs(d):
    peak, w = _lr(d), _w(d)
    kw = dict(init_value=d.choice([0.0, peak * d.real(0.0, 1.0)]), peak_value=peak, warmup_steps=w,
              decay_steps=w + d.integer(1, 60))
    if d.boolean():
        kw["end_value"] = d.choice([0.0, peak * d.real(0.0, 0.5)])
    if d.integer(0, 3) == 0:
        kw["exponent"] = d.choice([2.0, d.real(0.3, 3.0)])
    return kw


def _o_warmup_cosine(d):
    kw = _o_warmup_cosine_kwargs(d)
    return kw, kw["decay_steps"] + d.integer(1, 30)


def _o_warmup_exponential(d):
    kw, _ = _o_exponential(d)
    w = _w(d)
    kw = dict(init_value=d.choice([0.0, _lr(d)]), peak_value=kw.pop("init_value"), warmup_steps=w, **kw)
    return kw, w + d.integer(1, 150)


def _o_sgdr(d):
    cycles = [_o_warmup_cosine_kwargs(d) for _ in range(d.integer(1, 3))]
    return dict(cosine_kwargs=cycles), sum(c["decay_steps"] for c in cycles) + d.integer(1, 20)


_JOINABLE = ("constant_schedule", "linear_schedule", "cosine_decay_schedule", "exponential_decay",
             "piecewise_constant_schedule", "warmup_cosine_decay_schedule")


def _o_join(d):
    k = d.integer(2, 3)
    children = []
    for _ in range(k):
        name = d.choice(_JOINABLE)
        children.append([name, OPTAX[name](d)[0]])
    bounds = sorted(d.integer(0, 40) for _ in range(k - 1))
    return dict(schedules=children, boundaries=bounds), bounds[-1] + d.integer(1, 60)


OPTAX: dict[str, Callable] = {
    "constant_schedule": _o_constant, "polynomial_schedule": _o_polynomial, "linear_schedule": _o_linear,
    "piecewise_constant_schedule": _o_piecewise_constant, "exponential_decay": _o_exponential,
    "cosine_decay_schedule": _o_cosine, "piecewise_interpolate_schedule": _o_interpolate,
    "linear_onecycle_schedule": lambda d: _o_onecycle(d, True), "cosine_onecycle_schedule": lambda d: _o_onecycle(d, False),
    "warmup_constant_schedule": _o_warmup_constant, "warmup_cosine_decay_schedule": _o_warmup_cosine,
    "warmup_exponential_decay_schedule": _o_warmup_exponential, "sgdr_schedule": _o_sgdr, "join_schedules": _o_join,
}
GENERATORS = {"hf": HF, "timm": TIMM, "optax": OPTAX}


# ------------------------------------------------------------------------------------------ cases

@dataclasses.dataclass
class Case:
    framework: str        # "torch" | "keras" | "hf" | "timm" | "optax"
    name: str             # the constructor
    params: dict          # JSON-safe kwargs (lambdas by their key in LAMBDAS / MULT_LAMBDAS)
    steps: int
    quantity: str = "lr"  # "lr" | "momentum"
    optimizer: str = "sgd"  # torch: "sgd" (momentum) | "adam" (beta1)

    @property
    def label(self) -> str:
        return f"{self.name}.momentum" if self.quantity == "momentum" else self.name


def draw_case(d, framework: str, name: str) -> Case:
    kw, steps = {"torch": TORCH, "keras": KERAS, **GENERATORS}[framework][name](d)
    return Case(framework, name, kw, max(1, steps))


def draw_momentum_case(d, name: str) -> Case:
    if name in ("ChainedScheduler", "SequentialLR"):
        kw, steps = {"ChainedScheduler": _t_chained, "SequentialLR": _t_sequential}[name](d, cycles_momentum=True)
    else:
        kw, steps = TORCH[name](d)
    return Case("torch", name, kw, max(1, steps), "momentum", d.choice(["sgd", "adam"]))


# Pinned edge cases users hit, run on every suite run besides the random ones.
EDGE_CASES: list[Case] = [
    Case("torch", "StepLR", dict(lr=0.1, step_size=1, gamma=0.5), 12),
    Case("torch", "MultiStepLR", dict(lr=0.1, milestones=[5, 5, 2, 9], gamma=0.5), 15),
    Case("torch", "CosineAnnealingLR", dict(lr=0.1, T_max=1), 6),
    Case("torch", "CosineAnnealingLR", dict(lr=0.1, T_max=7, eta_min=0.3), 40),
    Case("torch", "CosineAnnealingWarmRestarts", dict(lr=0.1, T_0=1, T_mult=2, eta_min=0.001), 40),
    Case("torch", "CosineAnnealingWarmRestarts", dict(lr=0.1, T_0=3, T_mult=3), 130),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=1, mode="exp_range", gamma=0.97), 40),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=2.5, step_size_down=1.5,
                                   mode="triangular2"), 40),
    Case("torch", "OneCycleLR", dict(max_lr=0.3, total_steps=40, three_phase=True, pct_start=0.3), 40),
    Case("torch", "OneCycleLR", dict(max_lr=0.3, total_steps=37, three_phase=True, anneal_strategy="linear"), 37),
    Case("torch", "OneCycleLR", dict(max_lr=0.3, total_steps=40, three_phase=True), 40, "momentum", "adam"),
    Case("torch", "OneCycleLR", dict(max_lr=1.07e-4, total_steps=221, pct_start=0.5976, three_phase=True), 221),
    Case("torch", "OneCycleLR", dict(max_lr=1.07e-4, total_steps=221, pct_start=0.5976, three_phase=True), 221,
         "momentum", "sgd"),
    Case("torch", "OneCycleLR", dict(max_lr=0.1, total_steps=10, pct_start=0.05, anneal_strategy="linear"), 10),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=0.95), 30,
         "momentum", "adam"),
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[5, 15], schedulers=[
        ["LinearLR", dict(lr=0.1, start_factor=0.1, total_iters=5)],
        ["CosineAnnealingWarmRestarts", dict(lr=0.1, T_0=4, T_mult=2)],
        ["MultiplicativeLR", dict(lr=0.1, lr_lambda="0.95")]]), 40),
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[6, 6], schedulers=[
        ["ExponentialLR", dict(lr=0.1, gamma=0.9)], ["StepLR", dict(lr=0.1, step_size=2)],
        ["MultiplicativeLR", dict(lr=0.1, lr_lambda="1-0.5/(k+10)")]]), 30),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["LinearLR", dict(lr=0.1, start_factor=0.1, total_iters=5)], ["CosineAnnealingLR", dict(lr=0.1, T_max=20)]]), 21),
    Case("torch", "LambdaLR", dict(lr=0.1, lr_lambda="cos50"), 80),
    Case("torch", "ChainedScheduler", dict(lr=1.0, schedulers=[  # PyTorch's residue on a value 6e-8 of the peak
        ["StepLR", dict(lr=1.0, step_size=1, gamma=1.0)],
        ["LinearLR", dict(lr=1.0, start_factor=0.10992733981159351, end_factor=5.960464477539063e-08, total_iters=1)]]), 2),
    # configurations lrcore used to refuse (PyTorch / Keras accept them and give defined values)
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3)], ["ExponentialLR", dict(lr=0.1, gamma=0.9)],
        ["CosineAnnealingLR", dict(lr=0.1, T_max=7, eta_min=0.001)]]), 40),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[  # CyclicLR's first value: the initial_lr left
        ["OneCycleLR", dict(max_lr=0.5, total_steps=40, three_phase=True)],
        ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, base_momentum=0.5, max_momentum=0.6)]]), 40),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["OneCycleLR", dict(max_lr=0.5, total_steps=40, three_phase=True)],
        ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, base_momentum=0.5, max_momentum=0.6)]]), 40,
         "momentum", "adam"),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[  # the last OneCycleLR's rates for both
        ["OneCycleLR", dict(max_lr=0.5, total_steps=40)],
        ["OneCycleLR", dict(max_lr=0.2, total_steps=30, pct_start=0.5, base_momentum=0.6, max_momentum=0.7)]]), 30,
         "momentum", "sgd"),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["StepLR", dict(lr=0.1, step_size=5, gamma=0.5)], ["OneCycleLR", dict(max_lr=0.5, total_steps=40)],
        ["CosineAnnealingLR", dict(lr=0.1, T_max=7)]]), 40),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["ExponentialLR", dict(lr=0.1, gamma=0.95)], ["SequentialLR", dict(lr=0.1, milestones=[5], schedulers=[
            ["LinearLR", dict(lr=0.1, start_factor=0.2, total_iters=5)], ["CosineAnnealingLR", dict(lr=0.1, T_max=10)]])]]),
         40),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["CyclicLR", dict(base_lr=0.02, max_lr=0.05, step_size_up=4, base_momentum=0.3, max_momentum=0.4)],
        ["SequentialLR", dict(lr=0.1, milestones=[0, 5], schedulers=[
            ["ExponentialLR", dict(lr=0.1, gamma=0.9)], ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3)],
            ["OneCycleLR", dict(max_lr=0.5, total_steps=40)]])]]), 30, "momentum", "sgd"),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["ConstantLR", dict(lr=0.1, factor=0.0, total_iters=8)], ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3)]]),
         8),
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[6], schedulers=[
        ["OneCycleLR", dict(max_lr=0.5, total_steps=20)], ["CosineAnnealingLR", dict(lr=0.1, T_max=10)]]), 30),
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[6], schedulers=[
        ["LinearLR", dict(lr=0.1, start_factor=0.5, total_iters=6)], ["CyclicLR", dict(base_lr=0.01, max_lr=0.1,
                                                                                     step_size_up=3)]]), 30,
         "momentum", "sgd"),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=1.01), 600),
    Case("torch", "CyclicLR", dict(base_lr=0.1, max_lr=0.01, step_size_up=2.5, mode="triangular2"), 40),
    Case("torch", "StepLR", dict(lr=0.1, step_size=3, gamma=1.5), 30),
    Case("torch", "CosineAnnealingLR", dict(lr=0.1, T_max=2.5, eta_min=0.01), 60),
    Case("torch", "CosineAnnealingLR", dict(lr=0.1, T_max=28.9999, eta_min=0.02), 150),  # PyTorch's rounding
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[0, 13], schedulers=[  # base: OneCycleLR's initial lr
        ["OneCycleLR", dict(max_lr=0.46, total_steps=19, div_factor=1.18, three_phase=True)],
        ["ExponentialLR", dict(lr=0.1, gamma=0.9)], ["CosineAnnealingLR", dict(lr=0.1, T_max=11.833)]]), 50),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["ExponentialLR", dict(lr=0.1, gamma=0.97)], ["CosineAnnealingLR", dict(lr=0.1, T_max=7.3, eta_min=0.01)]]), 80),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=1.5,
                                   scale_fn="0.9**x", scale_mode="iterations"), 40, "momentum", "adam"),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn="1/x"), 40),
    Case("torch", "LinearLR", dict(lr=0.1, start_factor=0.3, total_iters=-1), 10),
    Case("keras", "PiecewiseConstantDecay", dict(boundaries=[10, 44, 13, 52], values=[0.1, 0.2, 0.3, 0.4, 0.5]), 60),
    Case("keras", "PiecewiseConstantDecay", dict(boundaries=[-0.5, 3.7, 3.2], values=[0.1, 0.2, 0.3, 0.4]), 10),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.2, decay_steps=7.5, warmup_target=0.1, warmup_steps=3.7,
                                      alpha=0.2), 20),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.0, decay_steps=10, warmup_target=0.1, warmup_steps=-2.5), 15),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.1, decay_steps=20, alpha=2.0), 30),
    Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.05, first_decay_steps=10, alpha=0.1, t_mul=3.0,
                                              m_mul=4.0), 60),
    Case("keras", "ExponentialDecay", dict(initial_learning_rate=0.01, decay_steps=3, decay_rate=1.5), 30),
    Case("keras", "PolynomialDecay", dict(initial_learning_rate=1.0, decay_steps=42.031, power=0.5), 43),  # float32
    Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=2.0), 160),
    Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=1, t_mul=1.0), 10),
    Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=4.5, t_mul=1.5, m_mul=0.7,
                                              alpha=0.1), 120),
    Case("keras", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=10, power=2.0, cycle=True), 45),
    Case("keras", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=1, cycle=True), 5),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.01, decay_steps=10, warmup_target=0.001,
                                      warmup_steps=30), 60),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.0, decay_steps=1, warmup_target=0.1, warmup_steps=1), 5),
    Case("keras", "PiecewiseConstantDecay", dict(boundaries=[0, 3, 3, 8], values=[0.5, 0.4, 0.3, 0.2, 0.1]), 12),
    Case("keras", "ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=55, decay_rate=0.1,
                                           staircase=True), 120),
    Case("keras", "InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.5, staircase=True), 10),
    # transformers: the cosine rises again after T; hard-restart boundaries where (c * p) % 1 rounds below 1
    Case("hf", "get_cosine_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=10, num_training_steps=50), 120),
    Case("hf", "get_cosine_with_hard_restarts_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=0,
                                                                          num_training_steps=49, num_cycles=49), 60),
    Case("hf", "get_polynomial_decay_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=5, num_training_steps=20,
                                                                 power=0.0), 30),
    Case("hf", "get_polynomial_decay_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=5, num_training_steps=5), 10),
    Case("hf", "get_inverse_sqrt_schedule", dict(lr=0.1, num_warmup_steps=0), 300),
    Case("hf", "get_wsd_schedule", dict(lr=0.1, num_warmup_steps=7, num_decay_steps=9, num_stable_steps=5,
                                        warmup_type="1-sqrt", decay_type="1-sqrt", min_lr_ratio=0.1), 30),
    Case("hf", "get_scheduler", dict(name="cosine_with_min_lr", lr=0.1, num_warmup_steps=5, num_training_steps=20), 5),
    # timm: cycles found with a float log; k-decay; warmup without prefix; a shrinking cycle_mul runs out
    Case("timm", "CosineLRScheduler", dict(lr=0.1, t_initial=10, cycle_mul=2.0, cycle_limit=3, cycle_decay=0.5,
                                           warmup_t=4, lr_min=1e-3), 90),
    Case("timm", "CosineLRScheduler", dict(lr=0.1, t_initial=20, k_decay=2.0, warmup_t=5, warmup_prefix=True), 40),
    Case("timm", "PolyLRScheduler", dict(lr=0.1, t_initial=10, cycle_mul=0.5, cycle_limit=100), 30),
    Case("timm", "PolyLRScheduler", dict(lr=0.0011916076368523152, t_initial=42, lr_min=0.0003956203356268461,  # past
         cycle_mul=0.623, cycle_limit=3, warmup_t=18, warmup_lr_init=0.0008125620328565709), 165),  # cycle_limit too
    Case("timm", "TanhLRScheduler", dict(lr=0.1, t_initial=30, warmup_t=5, t_in_epochs=False), 40),
    Case("timm", "StepLRScheduler", dict(lr=0.1, decay_t=2.5, decay_rate=0.5, warmup_t=3, warmup_prefix=False), 30),
    Case("timm", "MultiStepLRScheduler", dict(lr=0.1, decay_t=[30, 10, 20], decay_rate=0.5), 40),
    Case("timm", "CosineLRScheduler", dict(lr=0.1, t_initial=10, lr_min=0.3, cycle_limit=2), 30),
    # optax: clipped decay, colliding one-cycle boundaries, what optax refuses
    Case("optax", "exponential_decay", dict(init_value=0.1, transition_steps=3, decay_rate=0.5, transition_begin=5,
                                            end_value=0.01), 40),
    Case("optax", "exponential_decay", dict(init_value=0.1, transition_steps=2.5, decay_rate=1.3, staircase=True,
                                            end_value=0.5), 40),
    Case("optax", "linear_onecycle_schedule", dict(transition_steps=2, peak_value=0.1), 5),
    Case("optax", "warmup_cosine_decay_schedule", dict(init_value=0.0, peak_value=0.1, warmup_steps=10,
                                                       decay_steps=10), 5),
    Case("optax", "cosine_decay_schedule", dict(init_value=0.1, decay_steps=0), 5),
    Case("optax", "join_schedules", dict(schedules=[
        ["linear_schedule", dict(init_value=0.0, end_value=0.1, transition_steps=5)],
        ["join_schedules", dict(schedules=[["constant_schedule", dict(value=0.1)],
                                           ["cosine_decay_schedule", dict(init_value=0.1, decay_steps=20)]],
                                boundaries=[3])]], boundaries=[5]), 40),
]


def all_labels() -> list[tuple[str, str]]:
    return ([("torch", n) for n in TORCH] + [("torch", f"{n}.momentum") for n in MOMENTUM]
            + [("keras", n) for n in KERAS] + [(fw, n) for fw, gen in GENERATORS.items() for n in gen])


# ------------------------------------------------------------------------------------ builders

def _resolve(name: str, kw: dict) -> dict:
    kw = dict(kw)
    if name == "LambdaLR":
        kw["lr_lambda"] = LAMBDAS[kw["lr_lambda"]]
    elif name == "MultiplicativeLR":
        kw["lr_lambda"] = MULT_LAMBDAS[kw["lr_lambda"]]
    elif name == "CyclicLR" and "scale_fn" in kw:
        kw["scale_fn"] = SCALE_FNS[kw["scale_fn"]]
    return kw


def lrcore_schedule(case: Case):
    """The lrcore.compat schedule of a case (its ``.momentum`` for momentum cases)."""
    if case.framework == "keras":
        from lrcore.compat import keras as K
        return getattr(K, case.name)(**case.params)
    if case.framework in GENERATORS:
        return ecosystem_schedule(case.framework, case.name, case.params)
    from lrcore.compat import torch as T

    def build(name, kw):
        kw = _resolve(name, kw)
        if name in ("SequentialLR", "ChainedScheduler"):
            kw["schedulers"] = [build(n, k) for n, k in kw["schedulers"]]
        return getattr(T, name)(**kw)

    s = build(case.name, case.params)
    return s.momentum if case.quantity == "momentum" else s


def torch_factory(case: Case) -> Callable:
    """``make_scheduler(optimizer)`` building the real PyTorch scheduler of a case."""
    from torch.optim import lr_scheduler as L

    def build(opt, name, kw):
        kw = _resolve(name, kw)
        kw.pop("lr", None)
        if name == "SequentialLR":
            return L.SequentialLR(opt, [build(opt, n, k) for n, k in kw["schedulers"]], milestones=kw["milestones"])
        if name == "ChainedScheduler":
            return L.ChainedScheduler([build(opt, n, k) for n, k in kw["schedulers"]])
        return getattr(L, name)(opt, **kw)

    return lambda opt: build(opt, case.name, case.params)


def torch_values(case: Case) -> np.ndarray:
    from .torch_oracle import torch_lrs
    return torch_lrs(torch_factory(case), case.steps, lr=case.params.get("lr", 0.1), kind=case.optimizer,
                     momentum=case.quantity == "momentum")


def ecosystem_schedule(framework: str, name: str, params: dict):
    """The lrcore.compat.hf / timm / optax schedule of ``name(**params)`` (optax's nested [name, kwargs] built)."""
    import importlib
    module = importlib.import_module(f"lrcore.compat.{framework}")
    kw = dict(params)
    if name == "join_schedules":
        kw["schedules"] = [ecosystem_schedule(framework, n, k) for n, k in kw["schedules"]]
    return getattr(module, name)(**kw)


def ecosystem_values(case: Case) -> np.ndarray:
    """The real package's values: hf after t scheduler.step() calls, timm after step(t) / step_update(t),
    optax's schedule(t) in float64."""
    kw = dict(case.params)
    if case.framework == "optax":
        from .optax_oracle import optax_lrs
        return optax_lrs(case.name, kw, case.steps)
    lr = kw.pop("lr")
    if case.framework == "hf":
        from .hf_oracle import hf_lrs
        return hf_lrs(case.name, kw, case.steps, lr)
    from .timm_oracle import timm_lrs
    return timm_lrs(case.name, kw, case.steps, lr)


def framework_values(case: Case) -> np.ndarray:
    if case.framework == "torch":
        return torch_values(case)
    return keras_values(case) if case.framework == "keras" else ecosystem_values(case)


def keras_values(case: Case) -> np.ndarray:
    from .keras_oracle import import_keras, keras_lrs
    KS = import_keras().optimizers.schedules
    return keras_lrs(getattr(KS, case.name)(**case.params), case.steps)


# ------------------------------------------------------------------------------- explained steps

def _restart_explained(case: Case, got: np.ndarray, want: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Keras CosineDecayRestarts finds the restart index i with a float32 log (and float32 t / first):
    next to a restart it can put step t in the previous or the next cycle. A step is explained when
    it is within one step of an exact restart and Keras's value is the float64 formula of cycle i - 1
    or i + 1 at that step (the fraction of the cycle then lies just outside [0, 1))."""
    p = case.params
    lr, first = p["initial_learning_rate"], p["first_decay_steps"]
    t_mul, m_mul, alpha = p.get("t_mul", 2.0), p.get("m_mul", 1.0), p.get("alpha", 0.0)

    def start(i):
        return first * i if t_mul == 1.0 else first * (t_mul ** i - 1.0) / (t_mul - 1.0)

    def value(t, i):
        frac = (t - start(i)) / (first * t_mul ** i)
        return lr * ((1 - alpha) * m_mul ** i * 0.5 * (1 + math.cos(math.pi * frac)) + alpha)

    scale = np.abs(want).max()
    ok = np.zeros(bad.shape, bool)
    for k, t in enumerate(bad):
        i = 0
        while start(i + 1) <= t:
            i += 1
        near = min(abs(t - start(i)), abs(start(i + 1) - t)) <= 1.0
        for j in (i - 1, i + 1):
            if near and j >= 0 and abs(value(t, j) - want[t]) <= KERAS_RTOL * abs(want[t]) + KERAS_ATOL * scale:
                ok[k] = True
    return ok


def chained_cosine_torch(case: Case, steps: np.ndarray) -> np.ndarray:
    """PyTorch's value of a ChainedScheduler holding one CosineAnnealingLR (eta_min = 0, period T) at steps
    t > T. Its chainable form reaches 0 at T + 2kT and then *adds* lr (1 - cos(pi / T)) / 2 at
    r = T + 1 + 2kT, which drops the factors the other schedulers had accumulated; after that they
    multiply again. With c the cosine's own value and f_j the other schedulers' values, stepped in list
    order: c(t) * prod_{j before the cosine} f_j(t) / f_j(r) * prod_{j after it} f_j(t) / f_j(r - 1)
    (a ratio is 1 where f_j has not changed: PyTorch's recursive forms stop multiplying after total_iters,
    even when their factor reached 0)."""
    import lrcore
    children = case.params["schedulers"]
    pos = [i for i, (n, _) in enumerate(children) if n == "CosineAnnealingLR"][0]
    T = children[pos][1]["T_max"]
    t = np.asarray(steps, np.int64)
    r = T + 1 + 2 * T * ((t - T - 1) // (2 * T))
    sched = [lrcore_schedule(Case("torch", n, k, 1)) for n, k in children]
    out = lrcore.evaluate(sched[pos], t)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, s in enumerate(sched):
            if j != pos:  # a factor that has not changed since the reset has not multiplied (0 / 0 included)
                now, then = lrcore.evaluate(s, t), lrcore.evaluate(s, r if j < pos else r - 1)
                out = out * np.where(now == then, 1.0, now / then)
    return out


def _chained_cosine_explained(case: Case, got, want, bad) -> np.ndarray:
    """(No longer in ``EXPLAINED``: lrcore's ChainedScheduler is now PyTorch's recurrence, ``lrcore.Chain``.)
    Past T_max, PyTorch's chained CosineAnnealingLR is not a product of factors (see
    ``chained_cosine_torch``); a product of closed forms differs there. A step is explained when it is
    past T_max and PyTorch's value is ``chained_cosine_torch``'s to the PyTorch tolerance."""
    T = [k["T_max"] for n, k in case.params["schedulers"] if n == "CosineAnnealingLR"][0]
    ok = bad > T
    if ok.any():
        formula = chained_cosine_torch(case, bad[ok])
        ok[ok] = errors("torch", formula, want[bad[ok]]) <= TORCH_RTOL
    return ok


def keras_restarts_float32(params: dict, steps: np.ndarray) -> np.ndarray:
    """Keras CosineDecayRestarts's own arithmetic, op by op, in numpy float32 (an emulation: numpy's
    float32 log/cos may differ from TensorFlow's by an ulp)."""
    f = np.float32
    t = np.asarray(steps).astype(f)
    lr, first = f(params["initial_learning_rate"]), f(params["first_decay_steps"])
    t_mul, m_mul, alpha = f(params.get("t_mul", 2.0)), f(params.get("m_mul", 1.0)), f(params.get("alpha", 0.0))
    cf = t / first
    if t_mul == f(1.0):
        i = np.floor(cf)
        cf = cf - i
    else:
        i = np.floor(np.log(f(1.0) - cf * (f(1.0) - t_mul)) / np.log(t_mul))
        sum_r = (f(1.0) - t_mul ** i) / (f(1.0) - t_mul)
        cf = (cf - sum_r) / t_mul ** i
    cosine = f(0.5) * m_mul ** i * (f(1.0) + np.cos(f(math.pi) * cf))
    return (lr * ((f(1.0) - alpha) * cosine + alpha)).astype(np.float64)


def keras_polynomial_float32(params: dict, steps: np.ndarray) -> np.ndarray:
    """Keras PolynomialDecay's own arithmetic, op by op, in numpy float32."""
    f = np.float32
    t = np.asarray(steps).astype(f)
    lr, end = f(params["initial_learning_rate"]), f(params.get("end_learning_rate", 0.0001))
    power, ds = f(params.get("power", 1.0)), f(params["decay_steps"])
    if params.get("cycle", False):
        ds = ds * np.where(t == 0, f(1.0), np.ceil(t / ds))
    else:
        t = np.minimum(t, ds)
    return ((lr - end) * (f(1.0) - t / ds) ** power + end).astype(np.float64)


def _float32_explained(emulate):
    def explain(case: Case, got, want, bad) -> np.ndarray:
        """Keras's float32 arithmetic: explained where Keras's value is reproduced (within the Keras
        tolerance) by the same formula evaluated op by op in float32 while lrcore's float64 value is not
        (e.g. PolynomialDecay near the end of a fractional decay_steps with power < 1: 1 - t / D cancels)."""
        emu = emulate(case.params, bad)
        tol = KERAS_RTOL * np.abs(want[bad]) + KERAS_ATOL * np.abs(want).max()
        return np.abs(emu - want[bad]) <= tol
    return explain


def _restarts_explained(case: Case, got, want, bad) -> np.ndarray:
    """Keras's float32 arithmetic in CosineDecayRestarts: (a) the restart index comes from a float32 log,
    so next to a restart a step can land in the neighbouring cycle (``_restart_explained``); (b) with
    t_mul != 1 the fraction of the cycle is (t / first - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i, a
    float32 cancellation whose error grows with the cycle index (t_mul near 1 is worst). A step is
    explained by (b) when Keras's value is reproduced (within the Keras tolerance) by the same formula
    evaluated op by op in float32 (``keras_restarts_float32``) while lrcore's float64 value is not."""
    emu = keras_restarts_float32(case.params, bad)
    tol = KERAS_RTOL * np.abs(want[bad]) + KERAS_ATOL * np.abs(want).max()
    float32_noise = np.abs(emu - want[bad]) <= tol
    return float32_noise | _restart_explained(case, got, want, bad)


def _residue_explained(case: Case, got, want, bad) -> np.ndarray:
    """PyTorch's recursive forms compute each step's factor from the previous lr, e.g. LinearLR's
    ``lr * (1 + (end - start) / (start * total_iters + (t - 1) * (end - start)))``: the cancellation in
    ``1 + ...`` leaves an absolute error of a few ulp of the peak, e.g. -9.3e-18 where the value is 0, or
    5.960464476941381e-08 for 5.960464477539063e-08 (LinearLR end_factor=2**-24 * ...). Relative to a value
    far below the peak that exceeds 1e-10. Explained: |lrcore - PyTorch| <= 1e-14 max|PyTorch| (45 ulp of
    the peak) at a step where the value is below 1e-4 of the peak."""
    peak = np.abs(want).max()
    return (np.abs(got[bad] - want[bad]) <= 1e-14 * peak) & (np.abs(want[bad]) <= 1e-4 * peak)


def _uses_chained_cosine(case: Case) -> bool:
    names = [n for n, _ in case.params["schedulers"]]
    return names.count("CosineAnnealingLR") == 1 and len(names) > 1


# (framework, constructor or None for all) -> [(reason, applies(case), explain(case, got, want, bad) -> mask)]
EXPLAINED: dict[tuple, list] = {
    ("torch", None): [("PyTorch's recursive form: an absolute rounding residue (<= 1e-14 of the peak) on values "
                       "far below the peak", lambda c: True, _residue_explained)],
    **{(fw, None): [("the package's (1 + cos) / 2 (or 1 - p) cancels near the floor: an absolute rounding residue "
                     "(<= 1e-14 of the peak) on values far below the peak", lambda c: True, _residue_explained)]
       for fw in ("hf", "timm", "optax")},
    ("keras", "PolynomialDecay"): [("Keras's float32 arithmetic: 1 - t / decay_steps cancels near the end of the "
                                    "decay", lambda c: True, _float32_explained(keras_polynomial_float32))],
    ("keras", "CosineDecayRestarts"): [("Keras's float32 arithmetic: restart index from a float32 log, float32 "
                                        "cancellation in the fraction of the cycle", lambda c: True, _restarts_explained)],
}


def _rules(case: Case):
    return EXPLAINED.get((case.framework, None), []) + EXPLAINED.get((case.framework, case.name), [])


# ------------------------------------------------------------------------------------ comparison

@dataclasses.dataclass
class Result:
    case: Case
    err: float                 # torch: max relative error; keras: max normalized error (<= 1 passes)
    bad: list                  # steps over tolerance and not explained
    explained: list            # steps over tolerance, explained (see EXPLAINED)
    got: np.ndarray
    want: np.ndarray
    reasons: list = dataclasses.field(default_factory=list)  # why the explained steps differ

    @property
    def ok(self) -> bool:
        return not self.bad


def errors(framework: str, got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per-step error in units of the tolerance's natural scale: relative error (torch) or the
    normalized error |diff| / (2e-6 |ref| + 1e-6 max|ref|) (keras)."""
    diff = np.abs(got - want)
    if framework != "keras":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(diff == 0, 0.0, diff / np.abs(want))
    bound = KERAS_RTOL * np.abs(want) + KERAS_ATOL * np.abs(want).max()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff == 0, 0.0, diff / bound)


def limit(framework: str) -> float:
    return 1.0 if framework == "keras" else TORCH_RTOL


def check(case: Case, want: np.ndarray | None = None) -> Result:
    """Run the framework (unless ``want`` is given) and lrcore (numpy and numba) on one case."""
    import lrcore
    refused = None
    if want is None:
        try:
            want = framework_values(case)
        except (ValueError, TypeError, ArithmeticError, AssertionError, KeyError) as e:  # the framework's own validation decides
            refused = e
    try:
        schedule = lrcore_schedule(case)
    except (ValueError, TypeError) as e:
        empty = np.zeros(0)
        if refused is not None:  # both refuse
            return Result(case, 0.0, [], [], empty, empty, [f"both refuse: {type(refused).__name__}"])
        return Result(case, math.inf, [f"lrcore refuses what the framework accepts: {e}"], [], empty, want)
    if refused is not None and case.framework in GENERATORS:
        # transformers, timm, optax: what the package refuses (when built or at a step), lrcore refuses too
        try:
            lrcore.evaluate(schedule, case.steps, backend="numpy")
        except ValueError:
            empty = np.zeros(0)
            return Result(case, 0.0, [], [], empty, empty, [f"both refuse at a step: {type(refused).__name__}"])
        return Result(case, math.inf, [f"lrcore accepts what {case.framework} refuses: {type(refused).__name__}: "
                                       f"{refused}"], [], np.zeros(0), np.zeros(0))
    if refused is not None:  # lrcore is defined where the framework raises: nothing to compare
        empty = np.zeros(0)
        return Result(case, 0.0, [], [], empty, empty, [f"framework refuses: {type(refused).__name__}: {refused}"])
    err = np.zeros(case.steps)
    got = None
    for backend in ("numpy", "numba"):
        try:
            g = lrcore.evaluate(schedule, case.steps, backend=backend)
        except ValueError as e:
            return Result(case, math.inf, [f"lrcore refuses a step the framework computes: {e}"], [], np.zeros(0), want)
        got = g if got is None else got
        err = np.maximum(err, errors(case.framework, g, want))
    bad = np.flatnonzero(~(err <= limit(case.framework)))
    explained = np.zeros(0, np.int64)
    reasons = []
    for reason, applies, explain in _rules(case):
        if bad.size and applies(case):
            ok = explain(case, got, want, bad)
            if ok.any():
                reasons.append(reason)
            explained, bad = np.concatenate([explained, bad[ok]]), bad[~ok]
    shown = np.delete(err, explained)
    return Result(case, float(shown.max()) if shown.size else 0.0, bad.tolist(), sorted(explained.tolist()), got, want,
                  reasons)


def describe(r: Result, k: int = 5) -> str:
    c = r.case
    s = r.bad[:k]
    if s and isinstance(s[0], str):
        return f"{c.framework} {c.label} {c.params} steps={c.steps}: {s[0]}"
    opt = f" ({c.optimizer})" if c.quantity == "momentum" else ""
    return (f"{c.framework} {c.label}{opt} {c.params} steps={c.steps}: error {r.err:.3g} at steps {s}; "
            f"lrcore {r.got[s].tolist()} vs framework {r.want[s].tolist()}")


def run(examples: int = 20, seed: int = 0, frameworks=("torch", "keras", "hf", "timm", "optax"), log=None) -> list[dict]:
    """The whole suite: ``examples`` random cases per constructor (and per momentum schedule).
    Returns one summary row per (framework, schedule) and, in each row, the failing results."""
    rows = []
    for fw, label in all_labels():
        if fw not in frameworks:
            continue
        name, _, mom = label.partition(".")
        results = [check(c) for c in EDGE_CASES if (c.framework, c.label) == (fw, label)]
        for i in range(examples):
            d = RandomDraw(_seed(seed, fw, label, i))
            case = draw_momentum_case(d, name) if mom else draw_case(d, fw, name)
            results.append(check(case))
        fails = [r for r in results if not r.ok]
        row = dict(framework=fw, schedule=label, cases=len(results),
                   max_err=max(r.err for r in results),
                   err_measure="relative" if fw != "keras" else "|diff| / (2e-6|ref| + 1e-6 max|ref|)",
                   limit=limit(fw),
                   explained_steps=sum(len(r.explained) for r in results),
                   verdict="pass" if not fails else f"FAIL ({len(fails)} cases)", failures=fails)
        rows.append(row)
        if log:
            log(row)
    return rows


def _seed(seed: int, fw: str, label: str, i: int) -> int:
    import zlib
    return zlib.crc32(f"{seed}/{fw}/{label}/{i}".encode())

