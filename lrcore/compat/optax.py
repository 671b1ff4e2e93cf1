"""optax ``optax.schedules`` as lrcore schedules (optax and jax are never imported).

Same function names and arguments as optax; the value at t is ``schedule(t)`` computed in float64 (jax's
``jax_enable_x64`` on). ``join_schedules`` takes lrcore schedules (``lrcore.Sequence``); the dicts of
``boundaries_and_scales`` may also be given as lists of [boundary, scale] pairs (the JSON-safe text form).
Where optax differs from the usual recipe (numbers in reference/DIFFERENCES.md):

* ``warmup_cosine_decay_schedule``'s ``decay_steps`` *includes* the warmup (Keras's excludes it): the
  cosine lasts decay_steps - warmup_steps steps and reaches end_value at t = decay_steps; the warmup's last
  step (t = warmup_steps - 1) is one step short of the peak;
* ``exponential_decay`` holds init_value until ``transition_begin``, then decays continuously (or in
  stairs), clipped at ``end_value`` from below (rate < 1) or above (rate > 1);
* ``piecewise_constant_schedule`` scales at the boundary itself (as PyTorch's MultiStepLR);
  ``piecewise_interpolate_schedule`` and the one-cycle schedules interpolate between cumulative products
  of the scales, reaching each value at its boundary;
* ``cosine_decay_schedule``'s ``exponent`` raises the cosine factor to a power (an lrcore.Lambda then).

Negative values (optax's own tests use them) are accepted: such a schedule is a ``Signed`` one (positive parts less
negative parts; lrcore's canonical schedules stay non-negative; its text form is the optax call).
Not accepted (optax runs them): negative or fractional ``transition_begin`` and boundaries,
unsorted ``join_schedules`` boundaries, negative ``power`` (optax gives inf at the end).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import _validate as V
from .. import schedules as S
from ..base import Schedule, check_schedule
from ..kernels import formulas as F
from ..program import Leaf

__all__ = ["constant_schedule", "polynomial_schedule", "linear_schedule", "piecewise_constant_schedule",
           "exponential_decay", "cosine_decay_schedule", "piecewise_interpolate_schedule", "linear_onecycle_schedule",
           "cosine_onecycle_schedule", "warmup_constant_schedule", "warmup_cosine_decay_schedule",
           "warmup_exponential_decay_schedule", "sgdr_schedule", "join_schedules"]


def _num(x) -> str:
    return repr(float(x))


def _begin(o, name, v):
    """optax treats a negative transition_begin as 0; lrcore takes integers >= 0 (refusing other negatives)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
        return 0
    return V.integer(o, name, v, low=0)


def _after(begin, first, then):
    return S.Sequence([first, then], [begin]) if begin else then


@dataclasses.dataclass(frozen=True, repr=False)
class Signed(Schedule):
    """plus(t) - minus(t), both non-negative schedules: an optax schedule that takes negative values (lrcore's
    canonical schedules stay non-negative). Its text and dict forms are the optax call that built it."""
    plus: Schedule
    minus: Schedule
    call: str
    arguments: tuple

    def _numpy(self, t):
        return self.plus._numpy(t) - self.minus._numpy(t)

    def _leaves(self):
        return [Leaf(F.TABLE, (), table=self._numpy)]

    def _call(self):
        return f"optax.{self.call}", self.arguments

    __repr__ = __str__ = Schedule.__str__


def _signed(plus, minus, call, **arguments) -> Signed:
    """optax's schedules are linear in their values: one with negative values is the schedule of the positive
    parts less the schedule of the negative parts."""
    def frozen(v):
        if isinstance(v, dict):
            v = list(v.items())
        return tuple(frozen(x) for x in v) if isinstance(v, (list, tuple)) else v

    pairs = tuple((k, frozen(v)) for k, v in arguments.items())
    return Signed(plus, minus, call, pairs)


def _negated(s, call, **arguments) -> Signed:
    return _signed(S.Constant(0.0), s, call, **arguments)


def constant_schedule(value: float) -> S.Schedule:
    """value."""
    v = V.real("constant_schedule", "value", value)
    return S.Constant(v) if v >= 0 else _negated(S.Constant(-v), "constant_schedule", value=v)


def polynomial_schedule(init_value: float, end_value: float, power: float, transition_steps: int,
                        transition_begin: int = 0) -> S.Schedule:
    """(init - end)(1 - c / transition_steps) ** power + end, c = clip(t - transition_begin, 0, transition_steps);
    init_value when transition_steps <= 0."""
    o = "polynomial_schedule"
    init, end = V.real(o, "init_value", init_value), V.real(o, "end_value", end_value)
    power = V.real(o, "power", power, low=0.0)
    if init < 0 or end < 0:  # (init - end) g + end = init g + end (1 - g): the positive parts less the negative
        return _signed(polynomial_schedule(max(init, 0.0), max(end, 0.0), power, transition_steps, transition_begin),
                       polynomial_schedule(max(-init, 0.0), max(-end, 0.0), power, transition_steps, transition_begin),
                       "polynomial_schedule", init_value=init, end_value=end, power=power,
                       transition_steps=transition_steps, transition_begin=transition_begin)
    steps = V.real(o, "transition_steps", transition_steps)
    if steps <= 0:
        return S.Constant(init)
    begin = _begin(o, "transition_begin", transition_begin)
    return _after(begin, S.Constant(init), S.Polynomial(init, V.duration(o, "transition_steps", steps), end=end,
                                                         power=power))


def linear_schedule(init_value: float, end_value: float, transition_steps: int,
                    transition_begin: int = 0) -> S.Schedule:
    """polynomial_schedule with power 1: an lrcore Linear (a whole number of steps), so that it translates as
    the linear ramp it is (Keras CosineDecay's warmup, transformers's warmups, timm's warmup_t)."""
    s = polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)
    p = s.schedules[-1] if isinstance(s, S.Sequence) else s
    if isinstance(p, S.Polynomial) and float(p.decay_steps).is_integer():
        line = S.Linear(p.lr, p.end, int(p.decay_steps))
        return S.Sequence([s.schedules[0], line], s.milestones) if isinstance(s, S.Sequence) else line
    return s


def _pairs(o, boundaries_and_scales):
    """Sorted (boundary, scale) pairs from a dict or a list of pairs (later keys win, as in a dict)."""
    if boundaries_and_scales is None:
        return []
    items = boundaries_and_scales.items() if isinstance(boundaries_and_scales, dict) else \
        V.sequence(o, "boundaries_and_scales", boundaries_and_scales)
    d = {}
    for i, item in enumerate(items):
        b, s = V.sequence(o, f"boundaries_and_scales[{i}]", item)
        d[V.real(o, f"boundaries_and_scales[{i}] boundary", b)] = V.real(o, f"boundaries_and_scales[{i}] scale", s)
    if any(s < 0 for s in d.values()):
        raise ValueError(f"{o}: boundaries_and_scales must have non-negative scale factors, got {sorted(d.items())}")
    return sorted(d.items())


def piecewise_constant_schedule(init_value: float, boundaries_and_scales=None) -> S.Schedule:
    """init_value times every scale whose boundary is <= t."""
    o = "piecewise_constant_schedule"
    v = V.real(o, "init_value", init_value)
    if v < 0:
        return _negated(piecewise_constant_schedule(-v, boundaries_and_scales), "piecewise_constant_schedule",
                        init_value=v, boundaries_and_scales=boundaries_and_scales)
    starts, values = [], [v]
    for b, s in _pairs(o, boundaries_and_scales):
        v = v * s  # optax: v * indicator + (1 - indicator) * scale * v, at t >= b
        at = max(0, min(math.ceil(b), V.MAX_STEP - 1))
        if at == 0:
            values[0] = v
        elif starts and starts[-1] == at:
            values[-1] = v
        else:
            starts.append(at)
            values.append(v)
    return S.PiecewiseConstant(starts, values) if starts else S.Constant(values[0])


def exponential_decay(init_value: float, transition_steps: int, decay_rate: float, transition_begin: int = 0,
                      staircase: bool = False, end_value: float | None = None) -> S.Schedule:
    """init_value until transition_begin, then init * decay_rate ** ((t - begin) / transition_steps) (floored if
    staircase), clipped at end_value (max when decay_rate < 1, else min)."""
    o = "exponential_decay"
    init = V.real(o, "init_value", init_value)
    if init < 0 and end_value is None:
        return _negated(exponential_decay(-init, transition_steps, decay_rate, transition_begin, staircase),
                        "exponential_decay", init_value=init, transition_steps=transition_steps, decay_rate=decay_rate,
                        transition_begin=transition_begin, staircase=staircase)
    steps = V.real(o, "transition_steps", transition_steps)
    if init < 0 or (end_value is not None and V.real(o, "end_value", end_value) < 0):
        return _clipped(o, init, steps, V.real(o, "decay_rate", decay_rate, low=0.0), transition_begin,
                        V.flag(o, "staircase", staircase), V.real(o, "end_value", end_value))
    rate = V.real(o, "decay_rate", decay_rate, low=0.0)
    staircase = V.flag(o, "staircase", staircase)
    if steps <= 0 or rate == 0:
        return S.Constant(init)
    begin = _begin(o, "transition_begin", transition_begin)
    sched = _after(begin, S.Constant(init), S.Exponential(init, rate, V.duration(o, "transition_steps", steps), staircase))
    if end_value is None:
        return sched
    end = V.real(o, "end_value", end_value)
    if rate == 1.0 or (rate < 1.0) == (end >= init):  # the clip binds from the start
        return S.Constant(V.rate(o, "end_value", min(init, end) if rate >= 1.0 else max(init, end)))
    if rate < 1.0 and end <= 0.0:
        return sched  # a decay to end <= 0 is never clipped
    return S.Sequence([sched, S.Constant(end)], [_crossing(init, rate, steps, begin, staircase, end)])


def _clipped(o, init, steps, rate, transition_begin, staircase, end) -> S.Schedule:
    """exponential_decay with a negative value and end_value, written as optax computes it (a Signed schedule of
    its positive and negative parts)."""
    args = dict(init_value=init, transition_steps=steps, decay_rate=rate, transition_begin=transition_begin,
                staircase=staircase, end_value=end)
    if steps <= 0 or rate == 0:
        value = _num(init)
    else:
        begin = _num(_begin(o, "transition_begin", transition_begin))
        p = f"((t - {begin}) / {_num(steps)})"
        p = f"floor({p})" if staircase else p
        value = f"({_num(init)} if t - {begin} <= 0.0 else {_num(init)} * {_num(rate)} ** {p})"
        value = f"{'max' if rate < 1.0 else 'min'}({value}, {_num(end)})"
    return _signed(S.Lambda(f"max({value}, 0.0)", 1.0), S.Lambda(f"max(-({value}), 0.0)", 1.0), o, **args)


def _crossing(init, rate, steps, begin, staircase, end) -> int:
    """The first step at which exponential_decay's clip at end binds, in optax's own arithmetic (bisection on
    the monotone decay), or MAX_STEP - 1 if it never does below 2**62."""
    def binds(t):
        e = (t - begin) / steps
        with np.errstate(over="ignore", under="ignore"):
            v = init * float(np.power(rate, math.floor(e) if staircase else e))
        return v <= end if rate < 1.0 else v >= end

    lo, hi = begin, V.MAX_STEP - 1
    if not binds(hi):
        return hi
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if binds(mid) else (mid + 1, hi)
    return lo


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0,
                          exponent: float = 1.0) -> S.Schedule:
    """init * ((1 - alpha) c ** exponent + alpha), c = (1 + cos(pi min(t, D) / D)) / 2."""
    o = "cosine_decay_schedule"
    init = V.real(o, "init_value", init_value)
    if not V.real(o, "decay_steps", decay_steps) > 0:
        raise ValueError(f"{o}: decay_steps must be > 0, got {decay_steps!r}")
    D = V.duration(o, "decay_steps", decay_steps)
    alpha, exponent = V.real(o, "alpha", alpha), V.real(o, "exponent", exponent, low=0.0)
    if exponent == 1.0 and init >= 0 and alpha >= 0:
        return S.Cosine(init, D, floor=alpha * init)
    c = f"(0.5 * (1.0 + cos(pi * min(t, {_num(D)}) / {_num(D)})))"
    if init >= 0 and alpha >= 0:
        return S.Lambda(f"(1.0 - {_num(alpha)}) * {c} ** {_num(exponent)} + {_num(alpha)}", init)
    # init (1 - alpha) c**e + init alpha: the positive terms less the negative ones
    a, b = init * (1.0 - alpha), init * alpha
    plus = S.Lambda(f"{_num(max(a, 0.0))} * {c} ** {_num(exponent)} + {_num(max(b, 0.0))}", 1.0)
    minus = S.Lambda(f"{_num(max(-a, 0.0))} * {c} ** {_num(exponent)} + {_num(max(-b, 0.0))}", 1.0)
    return _signed(plus, minus, o, init_value=init, decay_steps=decay_steps, alpha=alpha, exponent=exponent)


def piecewise_interpolate_schedule(interpolate_type: str, init_value: float, boundaries_and_scales=None) -> S.Schedule:
    """Between boundaries b[k] <= t < b[k+1] (b[0] = 0), from v[k] to v[k+1] (v: cumulative products of the
    scales), linearly or by a cosine; v[-1] after the last boundary."""
    o = "piecewise_interpolate_schedule"
    if interpolate_type not in ("linear", "cosine"):
        raise ValueError(f"{o}: interpolate_type must be either 'cosine' or 'linear', got {interpolate_type!r}")
    init = V.real(o, "init_value", init_value)
    if init < 0:
        return _negated(piecewise_interpolate_schedule(interpolate_type, -init, boundaries_and_scales), o,
                        interpolate_type=interpolate_type, init_value=init, boundaries_and_scales=boundaries_and_scales)
    pairs = _pairs(o, boundaries_and_scales)
    bounds = [0] + [V.integer(o, "boundaries_and_scales boundary", b, low=0) for b, _ in pairs]
    values = list(np.cumprod([init] + [s for _, s in pairs]))
    children, milestones = [], []
    for k in range(len(pairs)):
        size = max(bounds[k + 1] - bounds[k], 1)
        a, b = float(values[k]), float(values[k + 1])
        children.append(S.Linear(a, b, size) if interpolate_type == "linear" else S.Cosine(a, size, floor=b))
        milestones.append(bounds[k + 1])
    children.append(S.Constant(float(values[-1])))
    return S.Sequence(children, milestones[:len(children) - 1]) if len(children) > 1 else children[0]


def _factors(o, peak_value, div_factor, final_div_factor):
    return (V.real(o, "peak_value", peak_value), V.real(o, "div_factor", div_factor, low=0.0, low_open=True),
            V.real(o, "final_div_factor", final_div_factor, low=0.0, low_open=True))


def _onecycle(o, kind, transition_steps, boundaries_and_scales, init):
    if not V.real(o, "transition_steps", transition_steps) > 0:
        raise ValueError(f"{o}: transition_steps must be > 0, got {transition_steps!r}")
    return piecewise_interpolate_schedule(kind, init, boundaries_and_scales)


def linear_onecycle_schedule(transition_steps: int, peak_value: float, pct_start: float = 0.3, pct_final: float = 0.85,
                             div_factor: float = 25.0, final_div_factor: float = 1e4) -> S.Schedule:
    """Linear from peak / div_factor to peak at int(pct_start T), back at int(pct_final T), to
    peak / div_factor / final_div_factor at T."""
    o = "linear_onecycle_schedule"
    T = V.integer(o, "transition_steps", transition_steps, low=-V.MAX_STEP)
    peak_value, div_factor, final_div_factor = _factors(o, peak_value, div_factor, final_div_factor)
    return _onecycle(o, "linear", T, {int(pct_start * T): div_factor, int(pct_final * T): 1.0 / div_factor,
                                      T: 1.0 / final_div_factor}, peak_value / div_factor)


def cosine_onecycle_schedule(transition_steps: int, peak_value: float, pct_start: float = 0.3,
                             div_factor: float = 25.0, final_div_factor: float = 1e4) -> S.Schedule:
    """Cosine from peak / div_factor to peak at int(pct_start T), then to peak / div_factor / final_div_factor at T."""
    o = "cosine_onecycle_schedule"
    T = V.integer(o, "transition_steps", transition_steps, low=-V.MAX_STEP)
    peak_value, div_factor, final_div_factor = _factors(o, peak_value, div_factor, final_div_factor)
    return _onecycle(o, "cosine", T, {int(pct_start * T): div_factor, int(T): 1.0 / (div_factor * final_div_factor)},
                     peak_value / div_factor)


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> S.Schedule:
    """Linear from init_value to peak_value over warmup_steps, then peak_value."""
    return linear_schedule(init_value, peak_value, warmup_steps)


def join_schedules(schedules, boundaries) -> S.Schedule:
    """schedules[k](t - boundaries[k-1]) from boundaries[k-1] on (lrcore.Sequence)."""
    o = "join_schedules"
    schedules = [check_schedule(o, f"schedules[{i}]", s) for i, s in enumerate(V.sequence(o, "schedules", schedules))]
    boundaries = V.sorted_integers(o, "boundaries", boundaries)
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"{o}: boundaries must have one entry fewer than schedules, got {len(boundaries)} for "
                         f"{len(schedules)} schedules")
    return S.Sequence(schedules, boundaries) if boundaries else schedules[0]


def warmup_cosine_decay_schedule(init_value: float, peak_value: float, warmup_steps: int, decay_steps: int,
                                 end_value: float = 0.0, exponent: float = 1.0) -> S.Schedule:
    """Linear init -> peak over warmup_steps, then a cosine peak -> end_value over decay_steps - warmup_steps."""
    o = "warmup_cosine_decay_schedule"
    peak = V.real(o, "peak_value", peak_value)
    alpha = 0.0 if peak == 0.0 else V.real(o, "end_value", end_value) / peak
    w = V.integer(o, "warmup_steps", warmup_steps, low=0)
    if not V.real(o, "decay_steps", decay_steps) - w > 0:
        raise ValueError(f"{o}: decay_steps must be > warmup_steps (the cosine lasts decay_steps - warmup_steps "
                         f"steps), got decay_steps={decay_steps!r}, warmup_steps={warmup_steps!r}")
    return join_schedules([linear_schedule(init_value, peak, w),
                           cosine_decay_schedule(peak, decay_steps - w, alpha, exponent)], [w])


def warmup_exponential_decay_schedule(init_value: float, peak_value: float, warmup_steps: int, transition_steps: int,
                                      decay_rate: float, transition_begin: int = 0, staircase: bool = False,
                                      end_value: float | None = None) -> S.Schedule:
    """Linear init -> peak over warmup_steps, then exponential_decay from peak_value."""
    w = V.integer("warmup_exponential_decay_schedule", "warmup_steps", warmup_steps, low=0)
    return join_schedules([linear_schedule(init_value, peak_value, w),
                           exponential_decay(peak_value, transition_steps, decay_rate, transition_begin, staircase,
                                             end_value)], [w])


def sgdr_schedule(cosine_kwargs) -> S.Schedule:
    """warmup_cosine_decay_schedule(**kwargs) for each entry, one after the other (each lasting its decay_steps)."""
    o = "sgdr_schedule"
    schedules, boundaries, step = [], [], 0
    for i, kwargs in enumerate(V.sequence(o, "cosine_kwargs", cosine_kwargs)):
        if isinstance(kwargs, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in kwargs):
            kwargs = dict(kwargs)  # [name, value] pairs: the text form of a dict
        if not isinstance(kwargs, dict):
            raise TypeError(f"{o}: cosine_kwargs[{i}] must be a dict of warmup_cosine_decay_schedule arguments, "
                            f"got {kwargs!r}")
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        step += V.integer(o, f"cosine_kwargs[{i}]['decay_steps']", kwargs.get("decay_steps"), low=1)
        boundaries.append(step)
    if not schedules:
        raise ValueError(f"{o}: cosine_kwargs must not be empty")
    return join_schedules(schedules, boundaries[:-1])


from ._origin import record  # noqa: E402

record("optax", globals())
