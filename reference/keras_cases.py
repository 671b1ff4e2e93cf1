"""The Keras conformance cases: parameter generators for keras.optimizers.schedules' constructors, and the
real Keras schedule's values (run by ``reference.keras_oracle``).

A generator returns (kwargs, steps): kwargs in Keras's names.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import draws as D
from . import keras_oracle  # noqa: F401  (sets KERAS_BACKEND and quiets TensorFlow before keras loads)


def _k_period(d, hi: float = 60) -> float:
    """An integer period (1 often) or a fractional one."""
    return float(D.period(d, int(hi))) if d.integer(0, 3) else round(d.real(0.5, hi), 3)


def _k_exponential(d):
    ds = _k_period(d)
    # Keras checks only decay_steps > 0: decay_rate 0 (0 from step 1 on), 1, or > 1 (growth) too
    rate = d.choice([0.0, 1.0, d.real(1.0, 2.0)]) if d.integer(0, 4) == 0 else d.real(0.05, 1.0)
    return (dict(initial_learning_rate=D.lr(d), decay_steps=ds, decay_rate=rate, staircase=d.boolean()),
            d.integer(1, int(6 * ds) + 20))


def _k_inverse_time(d):
    ds = _k_period(d)
    rate = d.choice([0.0, d.real(5.0, 100.0)]) if d.integer(0, 4) == 0 else d.real(0.0, 5.0)
    return (dict(initial_learning_rate=D.lr(d), decay_steps=ds, decay_rate=rate, staircase=d.boolean()),
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
    return dict(boundaries=b, values=[D.lr(d) for _ in range(len(b) + 1)]), int(max(b)) + d.integer(1, 30)


def _k_polynomial(d):
    ds = _k_period(d)
    lr = D.lr(d)
    power = d.choice([0.0, 1.0, d.real(0.0, 0.1), d.real(4.0, 10.0)]) if d.integer(0, 4) == 0 else d.real(0.1, 4.0)
    kw = dict(initial_learning_rate=lr, decay_steps=ds, power=power, cycle=d.boolean())
    if d.boolean():
        kw["end_learning_rate"] = lr * d.choice([0.0, d.real(0.0, 0.5), d.real(1.0, 2.0)])
    return kw, d.integer(1, int(5 * ds) + 20)


def _k_cosine(d):
    ds = _k_period(d)
    lr = D.lr(d)
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
    kw = dict(initial_learning_rate=D.lr(d), first_decay_steps=first,
              t_mul=d.choice([1.0, 2.0, 2.0, 3.0, round(d.real(1.0, 3.0), 3)]),
              m_mul=d.choice([1.0, 0.5, 0.0, round(d.real(0.1, 1.0), 3), round(d.real(1.0, 1.5), 3)]),
              alpha=d.choice([0.0, d.real(0.0, 0.5), 1.0, d.real(1.0, 2.0)]))
    return kw, d.integer(1, int(10 * first) + 40)


KERAS: dict[str, Callable] = {
    "ExponentialDecay": _k_exponential, "PiecewiseConstantDecay": _k_piecewise, "PolynomialDecay": _k_polynomial,
    "InverseTimeDecay": _k_inverse_time, "CosineDecay": _k_cosine, "CosineDecayRestarts": _k_restarts,
}


def keras_values(case) -> np.ndarray:
    from .keras_oracle import import_keras, keras_lrs
    KS = import_keras().optimizers.schedules
    return keras_lrs(getattr(KS, case.name)(**case.params), case.steps)
