"""lrcore's canonical schedules: immutable values mapping an integer step t >= 0 to a learning rate.

Each class states its formula in its docstring, validates its parameters on construction, and has
two evaluations that tests hold against each other: ``_numpy`` (the readable reference, a direct
vectorized transcription of the formula) and ``_leaves`` (its lowering into the scalar formulas of
``lrcore.kernels.formulas`` that the compiled backends run).

>>> from lrcore import Cosine, Warmup, evaluate
>>> evaluate(Warmup(Cosine(lr=0.1, decay_steps=8), steps=2), 5).round(4).tolist()
[0.0, 0.05, 0.1, 0.0962, 0.0854]
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from . import _validate as V
from . import lambdas
from .base import Schedule, check_schedule
from .kernels import formulas as F
from .program import NEVER, Leaf, leaves_of, sequence

_dataclass = dataclasses.dataclass(frozen=True, repr=False)


def _progress(t, T):
    """(q, r): the fraction min(t, T) / T done and the fraction (T - min(t, T)) / T left."""
    tt = np.minimum(t, T).astype(np.float64)
    return tt / T, (T - tt) / T


def _sin2_half_pi(r):
    """sin(pi/2 r)**2 = (1 + cos(pi (1 - r))) / 2, well conditioned when r -> 0."""
    return np.sin(np.pi / 2 * r) ** 2


_check_schedule = check_schedule


@_dataclass
class Constant(Schedule):
    """lr at every step.

    >>> Constant(0.1)(1000)
    0.1
    """
    lr: float

    def __post_init__(self):
        self._set(lr=V.rate("Constant", "lr", self.lr))

    def _numpy(self, t):
        return np.full(t.shape, self.lr)

    def _leaves(self):
        return [Leaf(F.CONST, (self.lr,))]


@_dataclass
class Step(Schedule):
    """lr * gamma ** floor(t / step_size).

    >>> Step(lr=1.0, step_size=10, gamma=0.5)(25)
    0.25
    """
    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        self._set(lr=V.rate("Step", "lr", self.lr), step_size=V.integer("Step", "step_size", self.step_size, low=1),
                  gamma=V.real("Step", "gamma", self.gamma, low=0.0))

    def _numpy(self, t):
        return self.lr * self.gamma ** (t // self.step_size).astype(np.float64)

    def _leaves(self):
        return [Leaf(F.STEP, (self.lr, self.step_size, self.gamma, F.safe_log(self.gamma)))]


@_dataclass
class PiecewiseConstant(Schedule):
    """values[k] for boundaries[k-1] <= t < boundaries[k] (switching at each boundary).

    >>> PiecewiseConstant(boundaries=[10, 20], values=[1.0, 0.5, 0.1])(10)
    0.5
    """
    boundaries: tuple
    values: tuple

    def __post_init__(self):
        b = V.sorted_integers("PiecewiseConstant", "boundaries", self.boundaries)
        v = tuple(V.rate("PiecewiseConstant", f"values[{i}]", x)
                  for i, x in enumerate(V.sequence("PiecewiseConstant", "values", self.values)))
        V.length("PiecewiseConstant", "values", v, len(b) + 1, "one more than boundaries")
        self._set(boundaries=b, values=v)

    def _numpy(self, t):
        return np.asarray(self.values)[np.searchsorted(np.asarray(self.boundaries, np.int64), t, side="right")]

    def _leaves(self):
        return [Leaf(F.PIECEWISE, (len(self.boundaries), *self.boundaries, *self.values))]


@_dataclass
class MultiStep(Schedule):
    """lr * gamma ** (number of milestones <= t); a repeated milestone counts each time.

    >>> round(MultiStep(lr=1.0, milestones=[2, 4], gamma=0.1)(4), 12)
    0.01
    """
    lr: float
    milestones: tuple
    gamma: float = 0.1

    def __post_init__(self):
        self._set(lr=V.rate("MultiStep", "lr", self.lr),
                  milestones=V.sorted_integers("MultiStep", "milestones", self.milestones),
                  gamma=V.real("MultiStep", "gamma", self.gamma, low=0.0))

    def _numpy(self, t):
        count = np.searchsorted(np.asarray(self.milestones, np.int64), t, side="right")
        return self.lr * self.gamma ** count.astype(np.float64)

    def _leaves(self):
        k = np.arange(len(self.milestones) + 1, dtype=np.float64)
        return [Leaf(F.PIECEWISE, (len(self.milestones), *self.milestones, *(self.lr * self.gamma ** k)))]


@_dataclass
class Exponential(Schedule):
    """lr * decay_rate ** (t / decay_steps), the exponent floored if ``staircase``.

    >>> Exponential(lr=1.0, decay_rate=0.5, decay_steps=10)(20)
    0.25
    """
    lr: float
    decay_rate: float
    decay_steps: float = 1
    staircase: bool = False

    def __post_init__(self):
        o = type(self).__name__
        self._set(lr=V.rate(o, "lr", self.lr), decay_rate=V.real(o, "decay_rate", self.decay_rate, low=0.0),
                  decay_steps=_int_if_integral(V.duration(o, "decay_steps", self.decay_steps)),
                  staircase=V.flag(o, "staircase", self.staircase))

    def _exponent(self, t):
        e = t / self.decay_steps
        return np.floor(e) if self.staircase else e

    def _numpy(self, t):
        return self.lr * self.decay_rate ** self._exponent(t)

    def _leaves(self):
        return [Leaf(F.EXPONENTIAL, (self.lr, self.decay_rate, self.decay_steps, self.staircase,
                                     F.safe_log(self.decay_rate)))]


@_dataclass
class InverseTime(Exponential):
    """lr / (1 + decay_rate * t / decay_steps), the ratio floored if ``staircase``.

    >>> InverseTime(lr=1.0, decay_rate=0.5, decay_steps=10)(20)
    0.5
    """

    def _numpy(self, t):
        return self.lr / (1.0 + self.decay_rate * self._exponent(t))

    def _leaves(self):
        return [Leaf(F.INVERSE_TIME, (self.lr, self.decay_rate, self.decay_steps, self.staircase))]


@_dataclass
class Polynomial(Schedule):
    """(lr - end) * (1 - s / D) ** power + end with s = min(t, D), D = decay_steps; with ``cycle``,
    s = t and D = decay_steps * max(1, ceil(t / decay_steps)) (Keras PolynomialDecay).

    >>> Polynomial(lr=1.0, decay_steps=10, end=0.0, power=2.0)(5)
    0.25
    """
    lr: float
    decay_steps: float
    end: float = 0.0
    power: float = 1.0
    cycle: bool = False

    def __post_init__(self):
        o = "Polynomial"
        self._set(lr=V.rate(o, "lr", self.lr),
                  decay_steps=_int_if_integral(V.duration(o, "decay_steps", self.decay_steps)),
                  end=V.rate(o, "end", self.end), power=V.real(o, "power", self.power, low=0.0),
                  cycle=V.flag(o, "cycle", self.cycle))

    def _numpy(self, t):
        s = t.astype(np.float64)
        if self.cycle:
            D = self.decay_steps * np.maximum(1.0, np.ceil(s / self.decay_steps))
        else:
            D, s = self.decay_steps, np.minimum(s, self.decay_steps)
        return (self.lr - self.end) * np.maximum(1.0 - s / D, 0.0) ** self.power + self.end

    def _leaves(self):
        return [Leaf(F.POLYNOMIAL, (self.lr, self.end, self.decay_steps, self.power, self.cycle))]


@_dataclass
class Linear(Schedule):
    """start + (end - start) * min(t, steps) / steps, then end.

    >>> Linear(start=0.0, end=1.0, steps=4)(1)
    0.25
    """
    start: float
    end: float
    steps: int

    def __post_init__(self):
        self._set(start=V.rate("Linear", "start", self.start), end=V.rate("Linear", "end", self.end),
                  steps=V.integer("Linear", "steps", self.steps, low=1))

    def _numpy(self, t):
        q, r = _progress(t, self.steps)
        return self.start * r + self.end * q

    def _leaves(self):
        return [Leaf(F.LINEAR, (self.start, self.end, self.steps))]


@_dataclass
class Cosine(Schedule):
    """floor + (lr - floor) * (1 + cos(pi * min(t, T) / T)) / 2 with T = decay_steps, then floor.
    With ``periodic`` the cosine goes on past T and rises again (PyTorch CosineAnnealingLR; a fractional
    T, which PyTorch takes too, is evaluated into a table).
    With ``offset`` the cosine is ``offset`` steps further on at every step: min(t + offset, T) (Keras
    CosineDecay after a fractional warmup_steps; not with ``periodic``).
    Computed as floor + (lr - floor) * sin(pi/2 * (T - t') / T)**2 (no cancellation near floor).

    >>> round(Cosine(lr=1.0, decay_steps=10)(5), 12)
    0.5
    """
    lr: float
    decay_steps: float
    floor: float = 0.0
    periodic: bool = False
    offset: float = 0.0

    def __post_init__(self):
        T = V.duration("Cosine", "decay_steps", self.decay_steps)
        offset = V.real("Cosine", "offset", self.offset, low=0.0)
        if self.periodic and offset:
            raise ValueError(f"Cosine: offset must be 0 when periodic, got {self.offset!r}")
        self._set(lr=V.rate("Cosine", "lr", self.lr), decay_steps=_int_if_integral(T),
                  floor=V.rate("Cosine", "floor", self.floor), periodic=V.flag("Cosine", "periodic", self.periodic),
                  offset=_int_if_integral(offset) if offset else 0.0)

    def _numpy(self, t):
        T = self.decay_steps
        if self.periodic:
            d = np.abs(T - t % (2 * T))
            q, r = (T - d) / T, d / T
        else:
            q, r = _progress(t + self.offset if self.offset else t, T)
        if self.lr >= self.floor:
            return self.floor + (self.lr - self.floor) * _sin2_half_pi(r)
        return self.lr + (self.floor - self.lr) * _sin2_half_pi(q)  # rising: no cancellation near lr

    def _leaves(self):
        if self.periodic and not float(self.decay_steps).is_integer():
            return [Leaf(F.TABLE, (), table=self._numpy)]
        if self.offset:
            # three phases of the one-cycle formula: none reached (it ends at -offset), the cosine from
            # -offset to T - offset, then the floor
            T, d = float(self.decay_steps), float(self.offset)
            return [Leaf(F.PHASES, (3, F.COSINE, -d, self.lr, self.lr, T - d, self.lr, self.floor,
                                    float(NEVER), self.floor, self.floor))]
        op = F.COSINE_PERIODIC if self.periodic else (F.COSINE if self.lr >= self.floor else F.COSINE_RISING)
        return [Leaf(op, (self.lr, self.floor, self.decay_steps))]


@_dataclass
class CosineRestarts(Schedule):
    """SGDR: cycle i lasts period * t_mul**i steps; within it, at fraction q of the cycle,
    floor + (lr - floor) * m_mul**i * (1 + cos(pi q)) / 2.

    >>> CosineRestarts(lr=1.0, period=10, t_mul=2.0)(10)   # first step of the second cycle
    1.0
    """
    lr: float
    period: float
    t_mul: float = 1.0
    m_mul: float = 1.0
    floor: float = 0.0

    def __post_init__(self):
        o = "CosineRestarts"
        self._set(lr=V.rate(o, "lr", self.lr),
                  period=_int_if_integral(V.duration(o, "period", self.period)),
                  t_mul=V.real(o, "t_mul", self.t_mul, low=1.0), m_mul=V.real(o, "m_mul", self.m_mul, low=0.0),
                  floor=V.rate(o, "floor", self.floor))

    def _numpy(self, t):
        first, t_mul = float(self.period), self.t_mul
        if t_mul == 1.0 and first.is_integer():
            i, pos = (t // int(first)).astype(np.float64), (t % int(first)).astype(np.float64)
        else:
            uf = t.astype(np.float64)
            guess = uf / first if t_mul == 1.0 else np.log1p(uf / first * (t_mul - 1.0)) / np.log(t_mul)
            i = np.maximum(np.floor(guess), 0.0)
            # the guess can be one off from rounding: settle i with exactly the kernels' arithmetic
            start = np.vectorize(lambda k: F.restart_start(k, first, t_mul), otypes=[np.float64])
            for _ in range(4):
                down = (i > 0) & (start(i) > uf)
                up = ~down & (start(i + 1.0) <= uf)
                i = i - down + up
            pos = uf - start(i)
        length = first * np.vectorize(lambda k: t_mul ** k, otypes=[np.float64])(i)
        weight = self.m_mul ** i
        c = _sin2_half_pi((length - pos) / length)
        if self.lr >= self.floor:
            return self.floor + (self.lr - self.floor) * weight * c
        rest = np.where(weight == 1.0, _sin2_half_pi(pos / length), 1.0 - weight * c)
        return self.floor * rest + self.lr * (weight * c)

    def _leaves(self):
        return [Leaf(F.RESTARTS, (self.lr, self.floor, self.period, self.t_mul, self.m_mul))]


def _phases_numpy(t, ends, values, cosine):
    """Piecewise anneal: phase k ends at ends[k] going values[k] -> values[k+1]; the last extrapolates."""
    uf = t.astype(np.float64)
    out = np.empty_like(uf)
    done = np.zeros(uf.shape, bool)
    start = 0.0
    for k, end in enumerate(ends):
        here = ~done & ((uf <= end) | (k == len(ends) - 1))
        a, b = values[k], values[k + 1]
        r, q = (end - uf[here]) / (end - start), (uf[here] - start) / (end - start)
        if not cosine:
            out[here] = a * r + b * q
        elif a >= b:
            out[here] = b + (a - b) * _sin2_half_pi(r)
        else:
            out[here] = a + (b - a) * _sin2_half_pi(q)
        done |= here
        start = end
    return out


@_dataclass
class OneCycle(Schedule):
    """PyTorch's one-cycle policy. initial = max_lr / div_factor, min = initial / final_div_factor.
    Two phases: initial -> max_lr ending at step pct_start * total_steps - 1, then max_lr -> min ending
    at total_steps - 1. Three phases: initial -> max_lr -> initial (ending at 2 * pct_start *
    total_steps - 2) -> min. Annealing ``cos`` (b + (a - b)(1 + cos(pi q))/2) or ``linear``.
    Momentum runs max_momentum -> base_momentum -> max_momentum (``.momentum``). Step t is in the first
    phase whose end is >= t (else the last), starting at the previous end, as in PyTorch: with three
    phases and pct_start above about 0.5 the second phase ends past total_steps - 1, so the steps anneal
    through it and never reach the third. Only a step in a phase of no length is refused (PyTorch divides
    by zero there: pct_start * total_steps == 1). Steps from total_steps on hold the value at
    total_steps - 1 (PyTorch refuses to step further, and its value at exactly total_steps, one step
    past the schedule, extrapolates the last phase: negative when linear).

    >>> OneCycle(max_lr=1.0, total_steps=100, pct_start=0.5, anneal="linear")(49)
    1.0
    """
    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False
    cycle_momentum: bool = True
    base_momentum: float = 0.85
    max_momentum: float = 0.95
    quantity: str = "lr"

    def __post_init__(self):
        o = "OneCycle"
        self._set(max_lr=V.rate(o, "max_lr", self.max_lr),
                  total_steps=V.integer(o, "total_steps", self.total_steps, low=1),
                  pct_start=V.real(o, "pct_start", self.pct_start, low=0.0, high=1.0),
                  anneal=V.choice(o, "anneal", self.anneal, ("cos", "linear")),
                  div_factor=V.real(o, "div_factor", self.div_factor, low=0.0, low_open=True),
                  final_div_factor=V.real(o, "final_div_factor", self.final_div_factor, low=0.0, low_open=True),
                  three_phase=V.flag(o, "three_phase", self.three_phase),
                  cycle_momentum=V.flag(o, "cycle_momentum", self.cycle_momentum),
                  base_momentum=V.rate(o, "base_momentum", self.base_momentum),
                  max_momentum=V.rate(o, "max_momentum", self.max_momentum),
                  quantity=V.choice(o, "quantity", self.quantity, ("lr", "momentum")))
        ends = self._ends()
        for k, (lo, hi, start) in enumerate(self._reached()):
            if lo <= hi and ends[k] == start:
                raise ValueError(f"OneCycle: pct_start={self.pct_start} with total_steps={self.total_steps} puts step "
                                 f"{lo} in phase {k + 1}, which has no length (phase ends {list(ends)}; PyTorch "
                                 "divides by zero there); raise total_steps or change pct_start")
        if self.quantity == "momentum" and not self.cycle_momentum:
            raise ValueError("OneCycle: quantity='momentum' needs cycle_momentum=True")

    def _ends(self):
        T, p = self.total_steps, self.pct_start
        if self.three_phase:
            return (float(p * T) - 1, float(2 * p * T) - 2, float(T) - 1)
        return (float(p * T) - 1, float(T) - 1)

    def _reached(self):
        """(first, last, start) per phase: the steps 0 <= t < total_steps that PyTorch's rule (the first
        phase k with t <= end_k, else the last) puts in phase k (none when first > last), and its start
        (the previous phase's end). (PyTorch also computes a value at total_steps, on a last
        ``scheduler.step()`` after the last optimizer step; lrcore holds the value of total_steps - 1
        there, also where PyTorch would divide by zero, e.g. pct_start=1.) Phase ends need not increase: with three phases and pct_start above
        about 0.5 the second phase ends after total_steps - 1, so the steps anneal through the second
        phase and never reach the third."""
        ends, T = self._ends(), self.total_steps
        out, start = [], 0.0
        below = -math.inf  # every step in phase k is above all earlier ends
        for k, end in enumerate(ends):
            first = max(0, math.floor(below) + 1) if below > -math.inf else 0
            last = T - 1 if k == len(ends) - 1 else min(T - 1, math.floor(end))
            out.append((first, last, start))
            below, start = max(below, end), end
        return out

    def _values(self):
        initial = self.max_lr / self.div_factor
        low = initial / self.final_div_factor
        if self.quantity == "momentum":
            hi, lo = self.max_momentum, self.base_momentum
            return (hi, lo, hi, hi) if self.three_phase else (hi, lo, hi)
        return (initial, self.max_lr, initial, low) if self.three_phase else (initial, self.max_lr, low)

    @property
    def momentum(self):
        return dataclasses.replace(self, quantity="momentum") if self.cycle_momentum and self.quantity == "lr" else None

    def _final(self) -> float:
        """The value held from total_steps on: the value at total_steps - 1 (values[-1] when the last
        phase is reached; the second phase's value there when it is not)."""
        T = self.total_steps
        return float(_phases_numpy(np.array([T - 1]), self._ends(), self._values(), self.anneal == "cos")[0])

    def _numpy(self, t):
        return _phases_numpy(np.minimum(t, self.total_steps - 1), self._ends(), self._values(), self.anneal == "cos")

    def _leaves(self):
        ends, values = self._ends(), self._values()
        params = [len(ends), F.COSINE if self.anneal == "cos" else F.LINEAR]
        for k, end in enumerate(ends):
            params += [end, values[k], values[k + 1]]
        return [Leaf(F.PHASES, tuple(params), hi=self.total_steps),
                Leaf(F.CONST, (self._final(),), lo=self.total_steps)]


@_dataclass
class Cyclic(Schedule):
    """PyTorch's cyclical learning rate. total = up + down; cycle = floor(1 + t / total);
    x = 1 + t / total - cycle; rise x / (up / total) while x <= up / total, else fall
    (x - 1) / (up / total - 1); lr = base_lr + (max_lr - base_lr) * rise_or_fall * scale, where scale
    is 1 (triangular), 1 / 2**(cycle - 1) (triangular2) or gamma**t (exp_range). Momentum runs from
    max_momentum down to base_momentum as lr rises (``.momentum``). With exp_range and gamma > 1 the
    scale grows until gamma**t overflows float64 (PyTorch raises OverflowError there): steps from
    ``overflow_step()`` on raise ValueError. With ``scale_fn`` (a callable, or an expression string in t,
    as Lambda's fn) the scale is scale_fn(cycle) or scale_fn(t) by ``scale_mode`` and ``mode`` is ignored
    (PyTorch's custom scale_fn; evaluated into a table).

    >>> Cyclic(base_lr=0.0, max_lr=1.0, step_size_up=4)(2)
    0.5
    """
    base_lr: float
    max_lr: float
    step_size_up: int = 2000
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    scale_mode: str | None = None
    cycle_momentum: bool = True
    base_momentum: float = 0.8
    max_momentum: float = 0.9
    quantity: str = "lr"
    scale_fn: object = None

    def __post_init__(self):
        o = "Cyclic"
        if self.scale_fn is not None:
            _check_fn(o, self.scale_fn)
        down = self.step_size_up if self.step_size_down is None else self.step_size_down
        self._set(base_lr=V.rate(o, "base_lr", self.base_lr), max_lr=V.rate(o, "max_lr", self.max_lr),
                  step_size_up=_int_if_integral(V.duration(o, "step_size_up", self.step_size_up)),
                  step_size_down=_int_if_integral(V.duration(o, "step_size_down", down)),
                  mode=V.choice(o, "mode", self.mode, ("triangular", "triangular2", "exp_range")),
                  gamma=V.real(o, "gamma", self.gamma, low=0.0),
                  cycle_momentum=V.flag(o, "cycle_momentum", self.cycle_momentum),
                  base_momentum=V.rate(o, "base_momentum", self.base_momentum),
                  max_momentum=V.rate(o, "max_momentum", self.max_momentum),
                  quantity=V.choice(o, "quantity", self.quantity, ("lr", "momentum")))
        default_scale = "iterations" if self.mode == "exp_range" else "cycle"
        self._set(scale_mode=V.choice(o, "scale_mode", self.scale_mode or default_scale, ("cycle", "iterations")))
        if self.quantity == "momentum" and not self.cycle_momentum:
            raise ValueError("Cyclic: quantity='momentum' needs cycle_momentum=True")

    @property
    def momentum(self):
        return dataclasses.replace(self, quantity="momentum") if self.cycle_momentum and self.quantity == "lr" else None

    def overflow_step(self) -> int:
        """The first step at which the exp_range scale gamma**arg overflows float64 (NEVER if it cannot)."""
        if self.mode != "exp_range" or self.gamma <= 1.0 or self.scale_fn is not None:
            return NEVER
        a = max(1, int(math.log(1.7976931348623157e308) / math.log(self.gamma)) - 2)
        while True:  # the first integer power that Python's float ** (PyTorch's scale) overflows
            try:
                self.gamma ** a
            except OverflowError:
                break
            a += 1
        if self.scale_mode == "iterations":
            return min(a, NEVER)
        total = float(self.step_size_up) + float(self.step_size_down)
        t = max(0, math.floor((a - 1) * total) - 2)  # first t with cycle = floor(1 + t / total) >= a
        while math.floor(1.0 + t / total) < a:
            t += 1
        return min(t, NEVER)

    def _overflowed(self, u):
        if u.size == 0:
            return np.zeros(0)
        raise ValueError(f"Cyclic: gamma**t overflows float64 from step {self.overflow_step()} on (mode='exp_range', "
                         f"gamma={self.gamma}; PyTorch raises OverflowError there), got step {int(np.max(u))}")

    def _ends(self):
        if self.quantity == "momentum":
            return self.max_momentum, self.base_momentum
        return self.base_lr, self.max_lr

    def _numpy(self, t):
        base, peak = self._ends()
        total = float(self.step_size_up) + float(self.step_size_down)
        ratio = float(self.step_size_up) / total
        uf = t.astype(np.float64)
        cycle = np.floor(1.0 + uf / total)
        x = 1.0 + uf / total - cycle
        factor = np.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))
        if t.size and int(np.max(t)) >= self.overflow_step():
            self._overflowed(t[t >= self.overflow_step()])
        arg = cycle if self.scale_mode == "cycle" else uf
        if self.scale_fn is not None:
            scale = lambdas.apply(_callable(self.scale_fn), arg.astype(np.int64), "Cyclic")
            return base + (peak - base) * (factor * scale)
        scale = {"triangular": lambda a: np.ones_like(a), "triangular2": lambda a: 0.5 ** (a - 1.0),
                 "exp_range": lambda a: self.gamma ** a}[self.mode](arg)
        return base + (peak - base) * (factor * scale)

    def _leaves(self):
        if self.scale_fn is not None:
            return [Leaf(F.TABLE, (), table=self._numpy)]
        base, peak = self._ends()
        ln2 = math.log(2.0)
        c1, c0 = {"triangular": (0.0, 0.0), "triangular2": (-ln2, ln2), "exp_range": (F.safe_log(self.gamma), 0.0)}[self.mode]
        scale = F.SCALE_CYCLE if self.scale_mode == "cycle" else F.SCALE_ITERATIONS
        end = self.overflow_step()
        leaf = Leaf(F.CYCLIC, (base, peak, self.step_size_up, self.step_size_down, c1, c0, scale), hi=end)
        return [leaf] if end >= NEVER else [leaf, Leaf(F.TABLE, (), lo=end, table=self._overflowed)]


@_dataclass
class InverseSqrt(Schedule):
    """Noam / inverse square root: lr * min(s / w, sqrt(w / s)) with s = t + 1 and w = warmup_steps
    (a linear rise to lr at t = w - 1, then lr * sqrt(w / s)); w = 0 gives lr / sqrt(s).

    >>> InverseSqrt(lr=1.0, warmup_steps=4)(15)
    0.5
    """
    lr: float
    warmup_steps: int = 0

    def __post_init__(self):
        self._set(lr=V.rate("InverseSqrt", "lr", self.lr),
                  warmup_steps=V.integer("InverseSqrt", "warmup_steps", self.warmup_steps, low=0))

    def _numpy(self, t):
        s = t + 1.0
        w = self.warmup_steps
        return self.lr / np.sqrt(s) if w == 0 else self.lr * np.minimum(s / w, np.sqrt(w / s))

    def _leaves(self):
        return [Leaf(F.INVERSE_SQRT, (self.lr, self.warmup_steps))]


_COOLDOWN_SHAPES = {"linear": F.LINEAR, "cosine": F.COSINE, "1-sqrt": F.ONE_MINUS_SQRT}


@_dataclass
class WSD(Schedule):
    """Warmup-stable-decay: linear 0 -> lr over warmup_steps, lr until total_steps - decay_steps,
    then a cool-down to floor over decay_steps, linear, cosine or 1-sqrt
    (floor + (lr - floor)(1 - sqrt(q)) at fraction q of the cool-down); floor afterwards.
    decay_steps defaults to 20% of total_steps.

    >>> WSD(lr=1.0, total_steps=100, warmup_steps=10, decay_steps=20)(50)
    1.0
    """
    lr: float
    total_steps: int
    warmup_steps: int = 0
    decay_steps: int | None = None
    cooldown: str = "linear"
    floor: float = 0.0

    def __post_init__(self):
        o = "WSD"
        total = V.integer(o, "total_steps", self.total_steps, low=1)
        decay = max(1, round(0.2 * total)) if self.decay_steps is None else self.decay_steps
        self._set(lr=V.rate(o, "lr", self.lr), total_steps=total,
                  warmup_steps=V.integer(o, "warmup_steps", self.warmup_steps, low=0),
                  decay_steps=V.integer(o, "decay_steps", decay, low=1),
                  cooldown=V.choice(o, "cooldown", self.cooldown, _COOLDOWN_SHAPES),
                  floor=V.rate(o, "floor", self.floor))
        if self.floor > self.lr:
            raise ValueError(f"WSD: floor must be <= lr (a cool-down), got floor={self.floor} > lr={self.lr}")
        if self.warmup_steps + self.decay_steps > total:
            raise ValueError(f"WSD: warmup_steps + decay_steps must be <= total_steps, got "
                             f"{self.warmup_steps} + {self.decay_steps} > {total}")

    def _parts(self):
        w, d, T = self.warmup_steps, self.decay_steps, self.total_steps
        parts = ([Linear(0.0, self.lr, w)] if w else []) + [Constant(self.lr)]
        cool = Leaf(_COOLDOWN_SHAPES[self.cooldown], (self.lr, self.floor, d))
        return parts, ([w] if w else []) + [T - d], cool

    def _numpy(self, t):
        w, d, T = self.warmup_steps, self.decay_steps, self.total_steps
        q, r = _progress(np.maximum(t - (T - d), 0), d)
        if self.cooldown == "linear":
            cool = self.lr * r + self.floor * q
        elif self.cooldown == "cosine":
            cool = self.floor + (self.lr - self.floor) * _sin2_half_pi(r)
        else:
            cool = self.floor + (self.lr - self.floor) * (r / (1.0 + np.sqrt(q)))
        warm = self.lr * _progress(t, max(w, 1))[0]
        return np.where(t < w, warm, np.where(t < T - d, self.lr, cool))

    def _leaves(self):
        parts, milestones, cool = self._parts()
        return sequence([list(leaves_of(p)) for p in parts] + [[cool]], milestones)


@_dataclass
class Warmup(Schedule):
    """A warmup in front of any schedule. With peak = schedule(0) and f going from start_factor to 1
    over ``steps`` steps (linear: start + (1 - start) t / steps; exponential: start ** (1 - t / steps)):
    shift=True: peak * f(t) for t < steps, then schedule(t - steps);
    shift=False: schedule(t) * f(min(t, steps)).

    >>> Warmup(Constant(1.0), steps=4)(1)
    0.25
    """
    schedule: Schedule
    steps: int
    start_factor: float = 0.0
    mode: str = "linear"
    shift: bool = True

    def __post_init__(self):
        o = "Warmup"
        _check_schedule(o, "schedule", self.schedule)
        self._set(steps=V.integer(o, "steps", self.steps, low=1), mode=V.choice(o, "mode", self.mode, ("linear", "exponential")),
                  start_factor=V.real(o, "start_factor", self.start_factor, low=1e-300 if self.mode == "exponential" else 0.0,
                                      high=1.0),
                  shift=V.flag(o, "shift", self.shift))

    def _factor(self, t, peak=1.0):
        q, r = _progress(t, self.steps)
        if self.mode == "linear":
            return peak * self.start_factor * r + peak * q
        return peak * self.start_factor * (1.0 / self.start_factor) ** q

    def _numpy(self, t):
        if not self.shift:
            return self.schedule._numpy(t) * self._factor(t)
        out = np.empty(t.shape)
        warm = t < self.steps
        out[warm] = self._factor(t[warm], self.schedule._numpy(np.zeros(1, np.int64))[0])
        out[~warm] = self.schedule._numpy(t[~warm] - self.steps)
        return out

    def _leaves(self):
        op = F.LINEAR if self.mode == "linear" else F.GEOMETRIC
        if not self.shift:
            ramp = (self.start_factor, 1.0, self.steps, F.safe_log(1.0 / self.start_factor) if self.start_factor else 0.0)
            return [Leaf(op, ramp, hi=self.steps), *leaves_of(self.schedule)]
        peak = float(self.schedule._numpy(np.zeros(1, np.int64))[0])
        ramp = (peak * self.start_factor, peak, self.steps, F.safe_log(1.0 / self.start_factor) if self.start_factor else 0.0)
        ramp = Leaf(op, ramp) if peak > 0 else Leaf(F.CONST, (0.0,))
        return sequence([[ramp], list(leaves_of(self.schedule))], [self.steps])


@_dataclass
class Sequence(Schedule):
    """schedules[j](t - m[j-1]) for m[j-1] <= t < m[j] (m = milestones, m[-1] = 0): PyTorch SequentialLR.

    >>> Sequence([Constant(1.0), Linear(1.0, 0.0, 10)], milestones=[5])(10)
    0.5
    """
    schedules: tuple
    milestones: tuple

    def __post_init__(self):
        o = "Sequence"
        s = tuple(_check_schedule(o, f"schedules[{i}]", x) for i, x in enumerate(V.sequence(o, "schedules", self.schedules)))
        if not s:
            raise ValueError("Sequence: schedules must not be empty")
        m = V.sorted_integers(o, "milestones", self.milestones)
        V.length(o, "milestones", m, len(s) - 1, "one fewer than schedules")
        self._set(schedules=s, milestones=m)

    def _numpy(self, t):
        out = np.empty(t.shape)
        bounds = [0, *self.milestones, NEVER]
        for s, lo, hi in zip(self.schedules, bounds, bounds[1:]):
            here = (t >= lo) & (t < hi)
            out[here] = s._numpy(t[here] - lo)
        return out

    def _leaves(self):
        return sequence([list(leaves_of(s)) for s in self.schedules], self.milestones)


@_dataclass
class Product(Schedule):
    """scale * prod_j schedules[j](t): PyTorch's ChainedScheduler of multiplicative schedulers.

    >>> Product([Constant(0.5), Step(1.0, step_size=2, gamma=0.5)])(2)
    0.25
    """
    schedules: tuple
    scale: float = 1.0

    def __post_init__(self):
        o = "Product"
        s = tuple(_check_schedule(o, f"schedules[{i}]", x) for i, x in enumerate(V.sequence(o, "schedules", self.schedules)))
        if not s:
            raise ValueError("Product: schedules must not be empty")
        self._set(schedules=s, scale=V.rate(o, "scale", self.scale))

    def _numpy(self, t):
        out = np.full(t.shape, self.scale)
        for s in self.schedules:
            out = out * s._numpy(t)
        return out

    def _leaves(self):
        leaves = [leaf for s in self.schedules for leaf in leaves_of(s)]
        return leaves + ([Leaf(F.CONST, (self.scale,))] if self.scale != 1.0 else [])


MAX_CHAIN_STEP = 10 ** 8
_CHUNK = 1 << 16


@_dataclass
class Chain(Schedule):
    """PyTorch's ChainedScheduler: the schedulers update one shared lr in list order at every step.

    lr_0 = lr times each scheduler's initial factor (ConstantLR's factor, LinearLR's start_factor);
    for t >= 1, each scheduler j in order applies its own *recursive* (chainable) PyTorch form to the
    lr the ones before it left: StepLR, MultiStepLR, ExponentialLR multiply by gamma at their steps;
    ConstantLR by 1 / factor at total_iters; LinearLR by 1 + (e - s) / (s N + (t - 1)(e - s)) up to N;
    PolynomialLR by ((1 - t / N) / (1 - (t - 1) / N)) ** power up to N; MultiplicativeLR by fn(t);
    CosineAnnealingLR (eta_min = m, base lr b, T = T_max) sets lr <- (1 + cos(pi t / T)) /
    (1 + cos(pi (t - 1) / T)) (lr - m) + m, except at t = T + 1 + 2kT where it *adds*
    (b - m)(1 - cos(pi / T)) / 2; LambdaLR and CosineAnnealingWarmRestarts set lr outright to their
    closed form. Each update is affine in lr (lr <- a_t lr + b_t), so the value is the recurrence
    evaluated by a sequential scan (``lrcore.kernels.scan``), O(max step); steps are bounded by
    ``MAX_CHAIN_STEP``.

    Where it differs from the product of closed forms: a cosine with eta_min != 0 anneals the
    *product* of the other factors towards eta_min (not the cosine times the factors), and past T_max
    the cosine's additive step replaces the product accumulated so far (reference/DIFFERENCES.md).
    Recursive factors like LinearLR's round differently from the closed form (~1e-16 per step). A cosine
    with eta_min above its base lr adds a negative amount past T_max; after the other schedulers shrank
    the lr that gives a negative rate, in PyTorch as here.

    CyclicLR and OneCycleLR (``Cyclic``, ``OneCycle``) set lr outright to their own value at each step
    (and the momentum, when they cycle it: the last one in list order wins, ``.momentum``). A
    SequentialLR (``Sequence``) resets lr to the optimizer's ``initial_lr`` when built, then steps its
    active child's chainable form; at a milestone it sets lr to that child's value at its step 0
    (MultiplicativeLR: multiplies lr by fn(0)). ``bases`` holds PyTorch's ``group["initial_lr"]`` as each
    scheduler was built, one entry per scheduler (a Sequence: ``[reset, base of each child]``); empty
    means ``lr`` for all. The schedules are given as built on an optimizer of rate ``lr`` and are
    rescaled to their base (their rates times base / lr; eta_min stays absolute). ``lrcore.compat.torch.ChainedScheduler`` computes it (a CyclicLR built first, or
    a OneCycleLR, changes it for the schedulers built after).

    >>> from lrcore import evaluate
    >>> from lrcore.compat import torch as T
    >>> c = Chain([T.StepLR(lr=1.0, step_size=2, gamma=0.5), T.CosineAnnealingLR(lr=1.0, T_max=2, eta_min=0.5)], lr=1.0)
    >>> evaluate(c, 5).round(6).tolist()   # PyTorch: the same
    [1.0, 0.75, 0.5, 0.75, 0.25]
    """
    schedules: tuple
    lr: float
    bases: tuple = ()
    quantity: str = "lr"

    def __post_init__(self):
        o = "Chain"
        s = tuple(check_schedule(o, f"schedules[{i}]", x) for i, x in enumerate(V.sequence(o, "schedules", self.schedules)))
        if not s:
            raise ValueError("Chain: schedules must not be empty")
        bases = tuple(_chain_base(o, f"bases[{i}]", b) for i, b in enumerate(V.sequence(o, "bases", self.bases)))
        if bases:
            V.length(o, "bases", bases, len(s), "one per scheduler, or none")
        self._set(schedules=s, lr=V.rate(o, "lr", self.lr), bases=bases,
                  quantity=V.choice(o, "quantity", self.quantity, ("lr", "momentum")))
        for i, x in enumerate(s):
            _chain_rule(x, i, self._base(i), self.lr)  # refuses what has no chainable form
        if self.quantity == "momentum" and not any(_cycles_momentum(x) for x in s):
            raise ValueError("Chain: quantity='momentum' needs a scheduler that cycles momentum (CyclicLR, OneCycleLR)")

    def _base(self, i):
        return self.bases[i] if self.bases else self.lr

    @property
    def momentum(self):
        if self.quantity == "lr" and any(_cycles_momentum(x) for x in self.schedules):
            return dataclasses.replace(self, quantity="momentum")
        return None

    def _rules(self):
        if self.quantity == "momentum":
            return [_momentum_rule(x) for x in self.schedules]
        return [_chain_rule(x, i, self._base(i), self.lr) for i, x in enumerate(self.schedules)]

    def _values(self, u):
        if u.size == 0:
            return np.zeros(0)
        top = int(u.max())
        if top > MAX_CHAIN_STEP:
            raise ValueError(f"Chain: steps must be <= {MAX_CHAIN_STEP} (a recurrence over every step), got {top}")
        from .kernels.scan import centered_scan
        rules = self._rules()
        x = self.lr if self.quantity == "lr" else 0.0  # (momentum: set by a cycling scheduler when built)
        for rule in rules:
            x = rule.initial(x)
        values = np.empty(top + 1)
        values[0] = x
        for lo in range(1, top + 1, _CHUNK):
            t = np.arange(lo, min(top + 1, lo + _CHUNK), dtype=np.int64)
            A, B = np.ones((len(rules), t.size)), np.zeros((len(rules), t.size))
            C = np.zeros((len(rules), t.size))
            for j, rule in enumerate(rules):
                rule.fill(t, A[j], B[j], C[j])
            x = centered_scan(A, C, B, x, values[lo:lo + t.size])
        return values[u]

    def _numpy(self, t):
        return self._values(np.asarray(t, np.int64))

    def _leaves(self):
        return [Leaf(F.TABLE, (), table=self._values)]


class _Rule:
    """One chained scheduler's update lr <- a_t lr + b_t (t >= 1) and its factor at construction."""

    def __init__(self, s):
        self.s = s

    def initial(self, x):
        return x

    def coefficients(self, t, a, b):  # a = 1, b = 0 given: the scheduler leaves lr as it is
        pass

    def fill(self, t, a, b, c):  # lr <- a (lr - c) + b; c = 0 given
        self.coefficients(t, a, b)


class _StepRule(_Rule):
    def coefficients(self, t, a, b):
        a[t % self.s.step_size == 0] = self.s.gamma


class _MultiStepRule(_Rule):
    def initial(self, x):  # a milestone at 0 multiplies at construction already
        return x * self.s.gamma ** float(self.s.milestones.count(0)) if 0 in self.s.milestones else x

    def coefficients(self, t, a, b):
        ms, counts = np.unique(np.asarray(self.s.milestones, np.int64), return_counts=True)
        if ms.size == 0:
            return
        i = np.minimum(np.searchsorted(ms, t), ms.size - 1)
        hit = ms[i] == t
        a[hit] = self.s.gamma ** counts[i[hit]].astype(np.float64)


class _ExponentialRule(_Rule):
    def coefficients(self, t, a, b):
        a[:] = self.s.decay_rate


class _ConstantLRRule(_Rule):
    """ConstantLR(factor, total_iters): PiecewiseConstant([N], [lr factor, lr])."""

    def __init__(self, s):
        super().__init__(s)
        self.factor = s.values[0] / s.values[1]

    def initial(self, x):
        return x * self.factor

    def coefficients(self, t, a, b):
        hit = t == self.s.boundaries[0]
        if self.factor == 0.0 and hit.any():
            raise ValueError(f"Chain: ConstantLR with factor=0 divides by zero at its step total_iters="
                             f"{self.s.boundaries[0]} (PyTorch raises ZeroDivisionError there)")
        a[hit] = 1.0 / self.factor if self.factor else 1.0


class _ConstantRule(_Rule):
    """Constant(c) (a framework constructor with total_iters=0): the factor c / lr once, at construction."""

    def __init__(self, s, lr):
        super().__init__(s)
        self.factor = s.lr / lr if lr else 1.0

    def initial(self, x):
        return x * self.factor


class _LinearRule(_Rule):
    def __init__(self, s, lr):
        super().__init__(s)
        self.start, self.end = s.start / lr, s.end / lr

    def initial(self, x):
        return x * self.start

    def coefficients(self, t, a, b):
        N, s0, d = self.s.steps, self.start, self.end - self.start
        on = t <= N
        a[on] = 1.0 + d / (N * s0 + (t[on] - 1) * d)


class _PolynomialRule(_Rule):
    def coefficients(self, t, a, b):
        N = float(self.s.decay_steps)
        on = t <= N
        tf = t[on].astype(np.float64)
        a[on] = ((1.0 - tf / N) / (1.0 - (tf - 1.0) / N)) ** self.s.power


class _MultiplicativeRule(_Rule):
    def coefficients(self, t, a, b):
        a[:] = lambdas.apply(_callable(self.s.fn), t, "Multiplicative")


class _CosineRule(_Rule):
    def fill(self, t, a, b, c):  # PyTorch's order: ratio * (lr - eta_min) + eta_min
        self.coefficients(t, a, b)
        add = (t - 1 - self.s.decay_steps) % (2 * self.s.decay_steps) == 0
        c[:] = np.where(add, 0.0, self.s.floor)
        b[~add] = self.s.floor

    def coefficients(self, t, a, b):
        T, m, base = self.s.decay_steps, self.s.floor, self.s.lr
        if not float(T).is_integer():  # no additive step; PyTorch divides by 1 + cos(pi (t - 1) / T) = 0 where
            # (t - 1) / T is an odd integer (T = 2/3: t = 3)
            k = (t - 1) / T
            zero = (np.abs(k - np.round(k)) < 1e-9) & (np.round(k) % 2 == 1)
            if zero.any():
                raise ValueError(f"Chain: CosineAnnealingLR(T_max={T}) divides by zero at step {int(t[zero][0])} "
                                 "(1 + cos(pi (t - 1) / T_max) = 0; PyTorch raises ZeroDivisionError there)")
        add = (t - 1 - T) % (2 * T) == 0
        tf = t.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # r is 0 / 0 at the additive steps, not used there
            if float(T).is_integer():
                r = (1.0 + np.cos(np.pi * tf / T)) / (1.0 + np.cos(np.pi * (tf - 1.0) / T))
            else:  # math.cos, PyTorch's: near a zero of the denominator an ulp of cos is amplified
                cos = np.vectorize(math.cos, otypes=[np.float64])
                r = (1.0 + cos(math.pi * tf / T)) / (1.0 + cos(math.pi * (tf - 1.0) / T))
            a[:] = np.where(add, 1.0, r)
            b[:] = np.where(add, (base - m) * (1.0 - math.cos(math.pi / T)) / 2.0, m - m * r)


class _OutrightRule(_Rule):
    """A scheduler that sets lr to its closed form (LambdaLR, CosineAnnealingWarmRestarts)."""

    def initial(self, x):
        return float(self.s._numpy(np.zeros(1, np.int64))[0])

    def coefficients(self, t, a, b):
        a[:] = 0.0
        b[:] = self.s._numpy(t)


class _CyclicRule(_OutrightRule):
    """CyclicLR sets lr to its own value at each step; when built, its first value is computed before it
    stores its own base_lr, from the optimizer's ``initial_lr`` (``base``): base_lr if it is built first,
    else the initial_lr an earlier scheduler left (``None``: its own value at step 0)."""

    def __init__(self, s, base=None):
        super().__init__(s)
        self.base = base

    def initial(self, x):
        return super().initial(x) if self.base is None else self.base


class _SequenceRule(_Rule):
    """SequentialLR in a chain: built, it resets lr to ``initial_lr`` (``reset``) and takes the first
    active child's initial factor; at step t its active child applies its chainable update at its own
    step t - milestone, except at the milestone itself, where the child's ``_update_lr(0)`` sets lr to
    the child's value at step 0 (MultiplicativeLR, with no closed form: multiplies lr by fn(0))."""

    def __init__(self, s, i, base, lr):
        super().__init__(s)
        reset, kids = (base[0], base[1:]) if isinstance(base, tuple) else (base, (base,) * len(s.schedules))
        if len(kids) != len(s.schedules):
            raise ValueError(f"Chain: bases[{i}] must be [reset, one base per child of the Sequence], got {list(base)}")
        self.reset = reset
        self.kids = [c if isinstance(b, tuple) else _rescaled(c, b, lr) for c, b in zip(s.schedules, kids)]
        # a CyclicLR child's first value (SequentialLR steps it again once built) is its own value at 0
        self.rules = [_CyclicRule(c) if isinstance(c, Cyclic) and c.quantity == "lr" else _chain_rule(c, i, b, lr)
                      for c, b in zip(s.schedules, kids)]
        self.ms = np.asarray(s.milestones, np.int64)
        self.first = int(np.searchsorted(self.ms, 0, side="right"))

    def initial(self, x):
        return self.rules[self.first].initial(self.reset)

    def fill(self, t, a, b, c):
        idx = np.searchsorted(self.ms, t, side="right")
        starts = np.concatenate([[0], self.ms])[idx]
        restart = (idx > 0) & (starts == t)
        for j, (rule, child) in enumerate(zip(self.rules, self.kids)):
            on = idx == j
            r = on & restart
            if r.any():
                if isinstance(child, Multiplicative):
                    a[r] = lambdas.apply(_callable(child.fn), np.zeros(1, np.int64), "Multiplicative")[0]
                else:
                    a[r], b[r] = 0.0, child._numpy(np.zeros(1, np.int64))[0]
            k = on & ~restart
            if k.any():
                aa, bb, cc = np.ones(int(k.sum())), np.zeros(int(k.sum())), np.zeros(int(k.sum()))
                rule.fill(t[k] - starts[k], aa, bb, cc)
                a[k], b[k], c[k] = aa, bb, cc


def _cycles_momentum(s) -> bool:
    if isinstance(s, (Cyclic, OneCycle)):
        return s.cycle_momentum and s.quantity == "lr"
    return isinstance(s, Sequence) and any(_cycles_momentum(c) for c in s.schedules)


class _SequenceMomentumRule(_Rule):
    """The momentum a SequentialLR in a chain leaves: each child that cycles momentum set it when built
    (the last one wins), then the first active child again; at step t the active child sets it if it
    cycles momentum (at its own step t - milestone, 0 at the milestone)."""

    def __init__(self, s):
        super().__init__(s)
        self.ms = np.asarray(s.milestones, np.int64)
        self.first = int(np.searchsorted(self.ms, 0, side="right"))

    def initial(self, x):
        for c in self.s.schedules:
            if _cycles_momentum(c):
                x = float(c.momentum._numpy(np.zeros(1, np.int64))[0])
        c = self.s.schedules[self.first]
        return float(c.momentum._numpy(np.zeros(1, np.int64))[0]) if _cycles_momentum(c) else x

    def coefficients(self, t, a, b):
        idx = np.searchsorted(self.ms, t, side="right")
        starts = np.concatenate([[0], self.ms])[idx]
        for j, c in enumerate(self.s.schedules):
            on = idx == j
            if on.any() and _cycles_momentum(c):
                a[on], b[on] = 0.0, c.momentum._numpy(t[on] - starts[on])


def _momentum_rule(s) -> _Rule:
    """How a chained scheduler changes the momentum: CyclicLR / OneCycleLR set it outright, a SequentialLR
    through its active child, the others leave it."""
    if isinstance(s, Sequence):
        return _SequenceMomentumRule(s)
    if _cycles_momentum(s):
        return _OutrightRule(s.momentum)
    return _Rule(s)


def _chain_base(owner, name, b):
    if isinstance(b, (tuple, list)):
        return tuple(_chain_base(owner, f"{name}[{i}]", x) for i, x in enumerate(b))
    return V.rate(owner, name, b)


def _rescaled(s, base, lr):
    """Schedule ``s``, given as built on an optimizer of initial lr ``lr``, built on one of ``base``
    instead (its rates times base / lr; CosineAnnealingLR's eta_min stays absolute)."""
    f = base / lr if lr else 1.0
    if f == 1.0:
        return s
    R = dataclasses.replace
    if isinstance(s, (Step, MultiStep, Exponential, Constant, Lambda, Multiplicative, Cosine, CosineRestarts)):
        return R(s, lr=s.lr * f)
    if isinstance(s, Polynomial):
        return R(s, lr=s.lr * f, end=s.end * f)
    if isinstance(s, PiecewiseConstant):
        return R(s, values=[v * f for v in s.values])
    if isinstance(s, Linear):
        return R(s, start=s.start * f, end=s.end * f)
    if isinstance(s, Chain) and s.quantity == "lr" and len(s.schedules) == 1 and not s.bases:
        return R(s, schedules=[_rescaled(s.schedules[0], base, lr)], lr=s.lr * f)  # (fractional T_max cosine)
    return s


def _chain_rule(s, i, base, lr) -> _Rule:
    """The chainable update of schedule ``s`` (schedules[i] of a Chain of initial rate ``lr``; ``base``:
    the optimizer's ``initial_lr`` when it was built, a tuple for a Sequence), or a ValueError."""
    if isinstance(s, Sequence):
        return _SequenceRule(s, i, base, lr)
    if isinstance(s, Chain) and s.quantity == "lr" and len(s.schedules) == 1 and not s.bases:
        return _chain_rule(s.schedules[0], i, base, lr)  # a recurrence of one (CosineAnnealingLR, fractional T_max)
    if isinstance(base, tuple):
        raise ValueError(f"Chain: bases[{i}] must be a number for a {type(s).__name__}, got {list(base)}")
    s = _rescaled(s, base, lr)
    lr = base
    if isinstance(s, Cyclic) and s.quantity == "lr":
        return _CyclicRule(s, lr)
    if isinstance(s, OneCycle) and s.quantity == "lr":
        return _OutrightRule(s)
    if isinstance(s, Step):
        return _StepRule(s)
    if isinstance(s, MultiStep):
        return _MultiStepRule(s)
    if type(s) is Exponential and s.decay_steps == 1 and not s.staircase:
        return _ExponentialRule(s)
    if isinstance(s, PiecewiseConstant) and len(s.boundaries) == 1 and s.values[0] >= 0 and s.values[1] > 0:
        return _ConstantLRRule(s)
    if isinstance(s, Linear) and s.start > 0 and lr > 0:
        return _LinearRule(s, lr)
    if isinstance(s, Polynomial) and not s.cycle and s.end == 0.0 and float(s.decay_steps).is_integer():
        return _PolynomialRule(s)
    if isinstance(s, Multiplicative):
        return _MultiplicativeRule(s)
    if isinstance(s, Cosine) and s.periodic:
        return _CosineRule(s)
    if isinstance(s, (Lambda, CosineRestarts)):
        return _OutrightRule(s)
    if isinstance(s, Constant):
        return _ConstantRule(s, lr)
    raise ValueError(f"Chain: schedules[{i}] ({type(s).__name__}) has no chainable (recursive) PyTorch form; chain "
                     "StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR, CosineAnnealingLR, "
                     "MultiplicativeLR, LambdaLR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR or SequentialLR")


def _check_fn(owner, fn):
    if isinstance(fn, str):
        lambdas.compile_expression(fn, owner)
    elif not callable(fn):
        raise TypeError(f"{owner}: fn must be a callable or an expression string in t, got {fn!r}")
    return fn


def _callable(fn) -> Callable:
    return lambdas.compile_expression(fn) if isinstance(fn, str) else fn


@_dataclass
class _UserFunction(Schedule):
    """A schedule built on a user function ``fn`` of the step; evaluated into a table per call."""
    fn: object
    lr: float = 1.0

    def __post_init__(self):
        _check_fn(type(self).__name__, self.fn)
        self._set(lr=V.rate(type(self).__name__, "lr", self.lr))

    def _values(self, u):  # pragma: no cover - abstract
        raise NotImplementedError

    def _numpy(self, t):
        return self._values(t)

    def _leaves(self):
        return [Leaf(F.TABLE, (), table=self._values)]


@_dataclass
class Lambda(_UserFunction):
    """lr * fn(t): PyTorch LambdaLR. ``fn`` is a Python callable (Numba-compiled when it can be) or an
    expression string in t such as ``"0.95 ** t"`` (only the string form has a text/dict form).

    >>> Lambda("0.5 ** t", lr=2.0)(3)
    0.25
    """

    def _values(self, u):
        return self.lr * lambdas.apply(_callable(self.fn), u, "Lambda")


MAX_MULTIPLICATIVE_STEP = 10 ** 8


@_dataclass
class Multiplicative(_UserFunction):
    """lr * prod_{k=1..t} fn(k): PyTorch MultiplicativeLR (a running product, so steps are bounded by
    ``MAX_MULTIPLICATIVE_STEP``).

    >>> Multiplicative("0.5", lr=1.0)(3)
    0.125
    """

    def _values(self, u):
        if u.size == 0:
            return np.zeros(0)
        top = int(u.max())
        if top > MAX_MULTIPLICATIVE_STEP:
            raise ValueError(f"Multiplicative: steps must be <= {MAX_MULTIPLICATIVE_STEP} (a running product "
                             f"over every step), got {top}")
        factors = lambdas.apply(_callable(self.fn), np.arange(1, top + 1), "Multiplicative")
        running = np.concatenate([[self.lr], self.lr * np.cumprod(factors)])
        return running[u]


def _int_if_integral(x: float):
    return int(x) if float(x).is_integer() else x


SCHEDULES: dict[str, type] = {cls.__name__: cls for cls in (
    Constant, Step, MultiStep, PiecewiseConstant, Exponential, InverseTime, Polynomial, Linear, Cosine,
    CosineRestarts, OneCycle, Cyclic, InverseSqrt, WSD, Warmup, Sequence, Product, Lambda, Multiplicative, Chain)}
