"""Keras 3 ``keras.optimizers.schedules`` classes as lrcore schedules (keras is never imported).

The value at step t is ``schedule(t)``. Keras computes in float32; lrcore in float64, so values agree
to float32 rounding (see DESIGN.md). Where Keras differs from PyTorch's same-named idea:

* PiecewiseConstantDecay uses values[k] while b[k-1] < t <= b[k]: it switches one step *after* each
  boundary (PyTorch's MultiStepLR switches at the milestone).
* CosineDecay holds alpha * lr after decay_steps (PyTorch's CosineAnnealingLR rises again); with a
  warmup, decay_steps counts the steps *after* warmup_steps, and the cosine starts at warmup_target.
* CosineDecayRestarts scales the cosine's amplitude by m_mul**i but not its floor alpha * lr.
"""
from __future__ import annotations

import math

from .. import _validate as V
from .. import schedules as S

__all__ = ["ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay", "CosineDecay",
           "CosineDecayRestarts"]


def _positive(owner, name, value):
    return V.real(owner, name, value, low=0.0, low_open=True)


def ExponentialDecay(initial_learning_rate: float, decay_steps: float, decay_rate: float, staircase: bool = False,
                     name: str = "ExponentialDecay") -> S.Schedule:
    """initial_learning_rate * decay_rate ** (t / decay_steps), the exponent floored if staircase."""
    o = "ExponentialDecay"
    return S.Exponential(V.rate(o, "initial_learning_rate", initial_learning_rate),
                         V.real(o, "decay_rate", decay_rate, low=0.0), _positive(o, "decay_steps", decay_steps),
                         V.flag(o, "staircase", staircase))


def InverseTimeDecay(initial_learning_rate: float, decay_steps: float, decay_rate: float, staircase: bool = False,
                     name: str = "InverseTimeDecay") -> S.Schedule:
    """initial_learning_rate / (1 + decay_rate * t / decay_steps), the ratio floored if staircase."""
    o = "InverseTimeDecay"
    return S.InverseTime(V.rate(o, "initial_learning_rate", initial_learning_rate),
                         V.real(o, "decay_rate", decay_rate, low=0.0), _positive(o, "decay_steps", decay_steps),
                         V.flag(o, "staircase", staircase))


def PiecewiseConstantDecay(boundaries, values, name: str = "PiecewiseConstant") -> S.Schedule:
    """values[0] for t <= boundaries[0], values[k] for boundaries[k-1] < t <= boundaries[k], then values[-1]."""
    o = "PiecewiseConstantDecay"
    b = [V.real(o, f"boundaries[{i}]", x) for i, x in enumerate(V.sequence(o, "boundaries", boundaries))]
    v = V.sequence(o, "values", values)
    V.length(o, "values", v, len(b) + 1, "one more than boundaries")
    if any(y < x for x, y in zip(b, b[1:])):
        raise ValueError(f"{o}: boundaries must be sorted (non-decreasing), got {list(boundaries)}")
    # t > b  <=>  t >= floor(b) + 1 for integer steps t >= 0
    switch = [max(0, math.floor(x) + 1) for x in b]
    return S.PiecewiseConstant(switch, [V.rate(o, f"values[{i}]", x) for i, x in enumerate(v)])


def PolynomialDecay(initial_learning_rate: float, decay_steps: float, end_learning_rate: float = 0.0001,
                    power: float = 1.0, cycle: bool = False, name: str = "PolynomialDecay") -> S.Schedule:
    """(initial - end) * (1 - min(t, decay_steps) / decay_steps) ** power + end (decay_steps
    stretched to the next multiple of itself when cycle)."""
    o = "PolynomialDecay"
    return S.Polynomial(V.rate(o, "initial_learning_rate", initial_learning_rate), _positive(o, "decay_steps", decay_steps),
                        end=V.rate(o, "end_learning_rate", end_learning_rate), power=V.real(o, "power", power, low=0.0),
                        cycle=V.flag(o, "cycle", cycle))


def CosineDecay(initial_learning_rate: float, decay_steps: float, alpha: float = 0.0, name: str = "CosineDecay",
                warmup_target: float | None = None, warmup_steps: int = 0) -> S.Schedule:
    """Without warmup_target: initial * ((1 - alpha)(1 + cos(pi min(t, D) / D)) / 2 + alpha), D = decay_steps.
    With it: linear initial -> warmup_target over warmup_steps, then the same cosine from warmup_target."""
    o = "CosineDecay"
    initial = V.rate(o, "initial_learning_rate", initial_learning_rate)
    decay_steps = _positive(o, "decay_steps", decay_steps)
    alpha = V.real(o, "alpha", alpha, low=0.0)
    if warmup_target is None:
        return S.Cosine(initial, decay_steps, floor=alpha * initial)
    target = V.rate(o, "warmup_target", warmup_target)
    warmup_steps = V.integer(o, "warmup_steps", warmup_steps, low=0)
    cosine = S.Cosine(target, decay_steps, floor=alpha * target)
    if warmup_steps == 0:
        return cosine
    return S.Sequence([S.Linear(initial, target, warmup_steps), cosine], [warmup_steps])


def CosineDecayRestarts(initial_learning_rate: float, first_decay_steps: float, t_mul: float = 2.0,
                        m_mul: float = 1.0, alpha: float = 0.0, name: str = "SGDRDecay") -> S.Schedule:
    """SGDR: cycle i lasts first_decay_steps * t_mul**i steps; value
    initial * ((1 - alpha) * m_mul**i * (1 + cos(pi q)) / 2 + alpha) at fraction q of the cycle."""
    o = "CosineDecayRestarts"
    initial = V.rate(o, "initial_learning_rate", initial_learning_rate)
    alpha = V.real(o, "alpha", alpha, low=0.0)
    return S.CosineRestarts(initial, _positive(o, "first_decay_steps", first_decay_steps),
                            t_mul=V.real(o, "t_mul", t_mul, low=1.0), m_mul=V.real(o, "m_mul", m_mul, low=0.0),
                            floor=alpha * initial)
