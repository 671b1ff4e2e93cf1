"""Keras 3 ``keras.optimizers.schedules`` classes as lrcore schedules (keras is never imported).

The value at step t is ``schedule(t)``. Keras computes in float32; lrcore in float64, so values agree
to float32 rounding (see DESIGN.md). Where Keras differs from PyTorch's same-named idea:

* PiecewiseConstantDecay uses values[k] while b[k-1] < t <= b[k]: it switches one step *after* each
  boundary (PyTorch's MultiStepLR switches at the milestone). Boundaries are truncated to integers (Keras
  casts them to the int64 step); unsorted ones add up the values of every interval test that holds.
* CosineDecay holds alpha * lr after decay_steps (PyTorch's CosineAnnealingLR rises again); with a
  warmup, decay_steps counts the steps *after* warmup_steps, and the cosine starts at warmup_target
  (a fractional warmup_steps w: the cosine starts at step ceil(w), already ceil(w) - w steps in).
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
    """values[0] for t <= boundaries[0], values[k] for boundaries[k-1] < t <= boundaries[k], then values[-1].

    Keras checks only the lengths, and casts each boundary to the int64 step (truncating a fraction
    towards 0). Unsorted boundaries are taken as Keras computes them: the sum of values[0] * (t <= b[0]),
    values[-1] * (t > b[-1]) and values[k] * (b[k-1] < t <= b[k]) for each k, so where the intervals
    overlap their values add up and where none holds the rate is 0."""
    o = "PiecewiseConstantDecay"
    b = [V.real(o, f"boundaries[{i}]", x) for i, x in enumerate(V.sequence(o, "boundaries", boundaries))]
    v = [V.rate(o, f"values[{i}]", x) for i, x in enumerate(V.sequence(o, "values", values))]
    V.length(o, "values", v, len(b) + 1, "one more than boundaries")
    cut = [math.trunc(x) for x in b]  # Keras casts the boundaries to the int64 step
    # t > c  <=>  t >= c + 1 for integer steps t >= 0
    switch = [max(0, c + 1) for c in cut]
    if all(x <= y for x, y in zip(cut, cut[1:])):
        return S.PiecewiseConstant(switch, v)

    def keras(t):
        total = v[0] * (t <= cut[0]) + v[-1] * (t > cut[-1])
        return total + sum(x * (lo < t <= hi) for lo, hi, x in zip(cut, cut[1:], v[1:-1]))

    switch = sorted(set(switch) - {0})
    return S.PiecewiseConstant(switch, [float(keras(t)) for t in [0, *switch]])


def PolynomialDecay(initial_learning_rate: float, decay_steps: float, end_learning_rate: float = 0.0001,
                    power: float = 1.0, cycle: bool = False, name: str = "PolynomialDecay") -> S.Schedule:
    """(initial - end) * (1 - min(t, decay_steps) / decay_steps) ** power + end (decay_steps
    stretched to the next multiple of itself when cycle)."""
    o = "PolynomialDecay"
    return S.Polynomial(V.rate(o, "initial_learning_rate", initial_learning_rate), _positive(o, "decay_steps", decay_steps),
                        end=V.rate(o, "end_learning_rate", end_learning_rate), power=V.real(o, "power", power, low=0.0),
                        cycle=V.flag(o, "cycle", cycle))


def CosineDecay(initial_learning_rate: float, decay_steps: float, alpha: float = 0.0, name: str = "CosineDecay",
                warmup_target: float | None = None, warmup_steps: float = 0) -> S.Schedule:
    """Without warmup_target: initial * ((1 - alpha)(1 + cos(pi min(t, D) / D)) / 2 + alpha), D = decay_steps.
    With it: linear initial -> warmup_target over warmup_steps, then the same cosine from warmup_target."""
    o = "CosineDecay"
    initial = V.rate(o, "initial_learning_rate", initial_learning_rate)
    decay_steps = _positive(o, "decay_steps", decay_steps)
    alpha = V.real(o, "alpha", alpha, low=0.0)
    if warmup_target is None:
        return S.Cosine(initial, decay_steps, floor=alpha * initial)
    target = V.rate(o, "warmup_target", warmup_target)
    w = V.real(o, "warmup_steps", warmup_steps)
    if w <= 0:  # no warmup step (t < w never holds): the cosine at min(t - w, decay_steps)
        return S.Cosine(target, decay_steps, floor=alpha * target, offset=-w)
    c = math.ceil(w)  # the first step of the cosine; a fractional w starts it c - w steps in
    if c == w:
        return S.Sequence([S.Linear(initial, target, c), S.Cosine(target, decay_steps, floor=alpha * target)], [c])
    # steps 0..c-1 warm up linearly as initial + (target - initial) t / w (reaching the last one at c - 1)
    warm = S.Constant(initial) if c == 1 else S.Linear(initial, initial + (target - initial) * (c - 1) / w, c - 1)
    return S.Sequence([warm, S.Cosine(target, decay_steps, floor=alpha * target, offset=c - w)], [c])


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


from ._origin import record  # noqa: E402

record("keras", globals())
