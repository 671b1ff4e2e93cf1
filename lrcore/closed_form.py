"""lrcore's closed-form schedules, and the sequences and products of schedules.

Each class states its formula in its docstring, validates its parameters on construction, and has
two evaluations that tests hold against each other: ``_numpy`` (the readable reference, a direct
vectorized transcription of the formula) and ``_leaves`` (its lowering into the scalar formulas of
``lrcore.kernels.formulas`` that the compiled backends run). ``lrcore.schedules`` gathers these with
``Chain`` (``lrcore.chain``) and the user-function schedules (``lrcore.user_functions``).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import _validate as V
from . import lambdas
from .base import Schedule, check_schedule
from .kernels import formulas as F
from .program import NEVER, Leaf, leaves_of, sequence
from .user_functions import _callable, _check_fn

_dataclass = dataclasses.dataclass(frozen=True, repr=False)


def _progress(t, T):
    """(q, r): the fraction min(t, T) / T done and the fraction (T - min(t, T)) / T left."""
    tt = np.minimum(t, T).astype(np.float64)
    return tt / T, (T - tt) / T


def _sin2_half_pi(r):
    """sin(pi/2 r)**2 = (1 + cos(pi (1 - r))) / 2, well conditioned when r -> 0."""
    return np.sin(np.pi / 2 * r) ** 2


_check_schedule = check_schedule


def _int_if_integral(x: float):
    return int(x) if float(x).is_integer() else x


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
