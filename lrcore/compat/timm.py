"""timm ``timm.scheduler`` schedulers as lrcore schedules (timm is never imported).

``X(lr=..., **kwargs)`` takes the scheduler's own keyword names and defaults, with ``lr`` (the optimizer's
learning rate) in place of the optimizer. The value at t is the param group's lr after ``step(t)``
(``t_in_epochs=True``) or ``step_update(t)`` (``t_in_epochs=False``): timm's ``_get_lr(t)``; ``t_in_epochs``
only chooses which call moves it. Where timm differs from the usual recipe (numbers in
reference/DIFFERENCES.md):

* warmup is ``warmup_lr_init + t (lr - warmup_lr_init) / warmup_t`` for t < warmup_t: its last step is one
  step short of lr. Without ``warmup_prefix`` (the default of Cosine/Poly/Tanh) the decay is *not* shifted:
  at t = warmup_t it is already warmup_t steps into its first cycle, and the cycle ends at t_initial
  (TanhLRScheduler warms up to that shifted value instead of lr); StepLR and MultiStepLR shift by default.
* a cycle i (``cycle_mul``: length t_initial * cycle_mul**i, found with a float log; ``cycle_decay``: peak
  lr * cycle_decay**i; ``cycle_limit``: cycles before lr_min for good) anneals from its peak to lr_min and
  then restarts: the cosine reaches lr_min one step after the cycle's last step (the restart comes first);
  ``k_decay`` anneals t**k / t_i**k instead.
* MultiStepLRScheduler compares its milestones with t + 1: milestone m switches at t = m - 1.
* WSDLRScheduler's ``t_initial`` counts the steps after warmup; its cool-down starts at t_initial - decay_t
  after the warmup (``1-sqrt`` by default) and its stable phase may decay too (rsqrt, power).

Noise (``noise_range_t``) draws from torch's random generator: it is refused (ValueError naming it); the
other noise options do nothing without it. Canonical lrcore schedules are used where they are exact (a
single cosine or polynomial cycle, restarts without k_decay or cycle_mul, steps); the rest are
``lrcore.Lambda`` expressions written as timm computes them.
"""
from __future__ import annotations

import bisect
import math

import numpy as np

from .. import _validate as V
from .. import schedules as S

__all__ = ["CosineLRScheduler", "PolyLRScheduler", "TanhLRScheduler", "StepLRScheduler", "MultiStepLRScheduler",
           "WSDLRScheduler", "PlateauLRScheduler"]


def _num(x) -> str:
    return repr(float(x))


def _common(o, lr, t_in_epochs, noise_range_t, initialize):
    if lr is None:
        raise TypeError(f"{o}: lr (the optimizer's learning rate) is required")
    V.flag(o, "t_in_epochs", t_in_epochs)
    if noise_range_t is not None:
        raise ValueError(f"{o}: noise_range_t must be None: timm's noise draws from torch's random generator, which "
                         f"lrcore does not reproduce (got {noise_range_t!r})")
    if initialize is not True:
        raise ValueError(f"{o}: initialize must be True (False reads initial_lr from an optimizer), got {initialize!r}")
    return V.rate(o, "lr", lr)


def _warmup(o, warmup_t, warmup_lr_init):
    return V.integer(o, "warmup_t", warmup_t, low=0), V.rate(o, "warmup_lr_init", warmup_lr_init)


def _with_warmup(w, init, peak, after):
    """init + t (peak - init) / w for t < w, then ``after`` at t - w."""
    return S.Sequence([S.Linear(init, peak, w), after], [w]) if w else after


def _cycle_expr(x, T, cycle_mul, cycle_decay, cycle_limit, lr, lr_min, shape):
    """timm's cycle arithmetic at step ``x`` (an expression), as an lrcore.Lambda expression string."""
    T_, M = _num(T), _num(cycle_mul)
    if cycle_mul != 1.0:
        i = f"((log(1.0 - {x} / {T_} * (1.0 - {M})) / log({M})) // 1.0)"  # // is a float floor: NaN stays NaN
        t_i = f"({M} ** {i} * {T_})"
        t_curr = f"({x} - (1.0 - {M} ** {i}) / (1.0 - {M}) * {T_})"
    else:
        i = f"(({x} / {T_}) // 1.0)"
        t_i, t_curr = T_, f"({x} - {T_} * {i})"
    peak = f"({_num(lr)} * {_num(cycle_decay)} ** {i})"
    value = shape(peak, _num(lr_min), t_curr, t_i)
    # cycle_mul < 1: once 1 - x / T (1 - cycle_mul) <= 0 timm's math.log raises; 0 * log(...) is NaN there, an error
    domain = f" + 0.0 * log(1.0 - {x} / {T_} * (1.0 - {M}))" if cycle_mul < 1.0 else ""
    return f"(({value}) if {i} < {_num(cycle_limit)} else {_num(lr_min)}){domain}"


def _cycles(lr, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, off, shape, canonical):
    """timm's cycles seen ``off`` steps in (``shape`` at the cycle's peak, lr_min, t_curr, t_i): ``canonical(off)``,
    an exact lrcore schedule, or a Lambda of timm's own arithmetic."""
    sched = canonical(off) if canonical else None
    if sched is None:
        x = f"(t + {_num(off)})" if off else "t"
        sched = S.Lambda(_cycle_expr(x, t_initial, cycle_mul, cycle_decay, cycle_limit, lr, lr_min, shape), 1.0)
    return sched


def _cycle_args(o, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, warmup_prefix):
    T = V.integer(o, "t_initial", t_initial, low=1)
    return (T, V.rate(o, "lr_min", lr_min), V.real(o, "cycle_mul", cycle_mul, low=0.0, low_open=True),
            V.real(o, "cycle_decay", cycle_decay, low=0.0), V.real(o, "cycle_limit", cycle_limit),
            V.flag(o, "warmup_prefix", warmup_prefix))


def CosineLRScheduler(lr: float, t_initial: int, lr_min: float = 0., cycle_mul: float = 1., cycle_decay: float = 1.,
                      cycle_limit: int = 1, warmup_t: int = 0, warmup_lr_init: float = 0., warmup_prefix: bool = False,
                      t_in_epochs: bool = True, noise_range_t=None, noise_pct: float = 0.67, noise_std: float = 1.0,
                      noise_seed: int = 42, k_decay: float = 1.0, initialize: bool = True) -> S.Schedule:
    """Cycle i: lr_min + (lr cycle_decay**i - lr_min)(1 + cos(pi t_curr**k / t_i**k)) / 2 while i < cycle_limit."""
    o = "CosineLRScheduler"
    lr = _common(o, lr, t_in_epochs, noise_range_t, initialize)
    T, lr_min, M, D, L, prefix = _cycle_args(o, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, warmup_prefix)
    w, init = _warmup(o, warmup_t, warmup_lr_init)
    k = V.real(o, "k_decay", k_decay)

    def canonical(off):
        if M != 1.0 or k != 1.0:
            return None
        if L <= 0:
            return S.Constant(lr_min)
        if L == 1:
            return S.Cosine(lr, T, floor=lr_min, offset=off)
        if D == 1.0 or lr_min == 0.0:  # the restarts' peak lr D**i and floor lr_min
            k0, r = divmod(off, T)  # cycles already run at the first step, and the position in the current one
            if k0 >= math.ceil(L):
                return S.Constant(lr_min)
            peak = lr * D ** k0
            parts, starts = [S.CosineRestarts(peak * D if r else peak, T, m_mul=D, floor=lr_min)], []
            if r:  # the rest of the current cycle first
                parts, starts = [S.Cosine(peak, T, floor=lr_min, offset=r)] + parts, [T - r]
            end = math.ceil(L) * T - off
            if end < V.MAX_STEP:
                parts, starts = parts + [S.Constant(lr_min)], starts + [end]
            return S.Sequence(parts, starts) if starts else parts[0]
        return None

    def shape(peak, low, t_curr, t_i):
        return f"{low} + 0.5 * ({peak} - {low}) * (1.0 + cos(pi * {t_curr} ** {_num(k)} / {t_i} ** {_num(k)}))"

    return _with_warmup(w, init, lr, _cycles(lr, T, lr_min, M, D, L, 0 if prefix else w, shape, canonical))


def PolyLRScheduler(lr: float, t_initial: int, power: float = 0.5, lr_min: float = 0., cycle_mul: float = 1.,
                    cycle_decay: float = 1., cycle_limit: int = 1, warmup_t: int = 0, warmup_lr_init: float = 0.,
                    warmup_prefix: bool = False, t_in_epochs: bool = True, noise_range_t=None,
                    noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42, k_decay: float = 1.0,
                    initialize: bool = True) -> S.Schedule:
    """Cycle i: lr_min + (lr cycle_decay**i - lr_min)(1 - t_curr**k / t_i**k) ** power while i < cycle_limit."""
    o = "PolyLRScheduler"
    lr = _common(o, lr, t_in_epochs, noise_range_t, initialize)
    T, lr_min, M, D, L, prefix = _cycle_args(o, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, warmup_prefix)
    w, init = _warmup(o, warmup_t, warmup_lr_init)
    k, p = V.real(o, "k_decay", k_decay), V.real(o, "power", power, low=0.0)

    def canonical(off):
        if M != 1.0 or k != 1.0 or L > 1:
            return None
        if L <= 0 or off >= T:
            return S.Constant(lr_min)
        # without warmup_prefix the cycle is off steps in: (1 - (u + off) / T) ** p = (1 - u / (T - off)) ** p
        # * ((T - off) / T) ** p, a polynomial from a lower start over the T - off steps left
        start = lr if not off else lr_min + (lr - lr_min) * ((T - off) / T) ** p
        return S.Polynomial(start, T - off, end=lr_min, power=p)

    def shape(peak, low, t_curr, t_i):
        return f"{low} + ({peak} - {low}) * (1.0 - {t_curr} ** {_num(k)} / {t_i} ** {_num(k)}) ** {_num(p)}"

    return _with_warmup(w, init, lr, _cycles(lr, T, lr_min, M, D, L, 0 if prefix else w, shape, canonical))


def TanhLRScheduler(lr: float, t_initial: int, lb: float = -7., ub: float = 3., lr_min: float = 0.,
                    cycle_mul: float = 1., cycle_decay: float = 1., cycle_limit: int = 1, warmup_t: int = 0,
                    warmup_lr_init: float = 0., warmup_prefix: bool = False, t_in_epochs: bool = True,
                    noise_range_t=None, noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42,
                    initialize: bool = True) -> S.Schedule:
    """Cycle i: lr_min + (lr cycle_decay**i - lr_min)(1 - tanh(lb (1 - r) + ub r)) / 2, r = t_curr / t_i; without
    warmup_prefix the warmup goes to the value at warmup_t."""
    o = "TanhLRScheduler"
    lr = _common(o, lr, t_in_epochs, noise_range_t, initialize)
    T, lr_min, M, D, L, prefix = _cycle_args(o, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, warmup_prefix)
    w, init = _warmup(o, warmup_t, warmup_lr_init)
    lb, ub = V.real(o, "lb", lb), V.real(o, "ub", ub)
    if not lb < ub:
        raise ValueError(f"{o}: lb must be < ub, got lb={lb!r}, ub={ub!r}")
    if L < 0:
        raise ValueError(f"{o}: cycle_limit must be >= 0, got {cycle_limit!r}")

    def shape(peak, low, t_curr, t_i):
        r = f"({t_curr} / {t_i})"
        return f"{low} + 0.5 * ({peak} - {low}) * (1.0 - tanh({_num(lb)} * (1.0 - {r}) + {_num(ub)} * {r}))"

    after = _cycles(lr, T, lr_min, M, D, L, 0 if prefix else w, shape, None)
    target = lr if prefix or not w else after(0)  # timm warms up to _get_lr(warmup_t) without the prefix
    return _with_warmup(w, init, target, after)


def StepLRScheduler(lr: float, decay_t: float, decay_rate: float = 1., warmup_t: int = 0, warmup_lr_init: float = 0.,
                    warmup_prefix: bool = True, t_in_epochs: bool = True, noise_range_t=None, noise_pct: float = 0.67,
                    noise_std: float = 1.0, noise_seed: int = 42, initialize: bool = True) -> S.Schedule:
    """lr * decay_rate ** (t // decay_t) (t counted from the end of warmup with warmup_prefix)."""
    o = "StepLRScheduler"
    lr = _common(o, lr, t_in_epochs, noise_range_t, initialize)
    d = V.real(o, "decay_t", decay_t, low=0.0, low_open=True)
    rate = V.real(o, "decay_rate", decay_rate, low=0.0)
    w, init = _warmup(o, warmup_t, warmup_lr_init)
    off = 0 if V.flag(o, "warmup_prefix", warmup_prefix) else w
    if off == 0 and d.is_integer() and d < V.MAX_STEP:
        after = S.Step(lr, int(d), rate)
    else:
        after = S.Lambda(f"{_num(lr)} * {_num(rate)} ** ((t + {_num(off)}) // {_num(d)})", 1.0)
    return _with_warmup(w, init, lr, after)


def MultiStepLRScheduler(lr: float, decay_t, decay_rate: float = 1., warmup_t: int = 0, warmup_lr_init: float = 0.,
                         warmup_prefix: bool = True, t_in_epochs: bool = True, noise_range_t=None,
                         noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42,
                         initialize: bool = True) -> S.Schedule:
    """lr * decay_rate ** bisect_right(decay_t, t + 1): milestone m switches at t = m - 1 (any list: timm's bisect)."""
    o = "MultiStepLRScheduler"
    lr = _common(o, lr, t_in_epochs, noise_range_t, initialize)
    ms = [V.real(o, f"decay_t[{i}]", m) for i, m in enumerate(V.sequence(o, "decay_t", decay_t))]
    rate = V.real(o, "decay_rate", decay_rate, low=0.0)
    w, init = _warmup(o, warmup_t, warmup_lr_init)
    off = 0 if V.flag(o, "warmup_prefix", warmup_prefix) else w
    # bisect_right(ms, t + 1) changes only where t + 1 reaches a milestone: at t = ceil(m) - 1 (clipped to 0)
    starts = sorted({max(0, min(math.ceil(m) - 1 - off, V.MAX_STEP - 1)) for m in ms} | {0})
    counts = [bisect.bisect_right(ms, s + off + 1) for s in starts]
    if ms == sorted(ms) and counts == sorted(counts):
        milestones = [s for s, a, b in zip(starts, [0, *counts], counts) for _ in range(b - a)]
        after = S.MultiStep(lr, milestones, rate)
    else:
        after = S.PiecewiseConstant(starts[1:], [lr * rate ** c for c in counts])
    return _with_warmup(w, init, lr, after)


_STABLE_FNS = ("constant", "rsqrt", "power")
_DECAY_FNS = ("linear", "1-sqrt", "cosine", "power", "exp")
_COOLDOWNS = {"linear": lambda lr, low, d: S.Linear(lr, low, d), "cosine": lambda lr, low, d: S.Cosine(lr, d, floor=low),
              "1-sqrt": lambda lr, low, d: S.WSD(lr, total_steps=d, decay_steps=d, cooldown="1-sqrt", floor=low)}


def WSDLRScheduler(lr: float, t_initial: int, decay_t: int, lr_min: float = 0., stable_fn: str = "constant",
                   stable_timescale: float | None = None, stable_power: float = 0.5, decay_fn: str = "1-sqrt",
                   decay_power: float = 0.5, decay_ratio: float = 0.1, warmup_t: int = 0, warmup_lr_init: float = 0.,
                   t_in_epochs: bool = True, noise_range_t=None, noise_pct: float = 0.67, noise_std: float = 1.0,
                   noise_seed: int = 42, initialize: bool = True) -> S.Schedule:
    """Warmup, then s(u) = max(lr f(u), lr_min) at u = t - warmup_t (f = 1, or (1 + u / stable_timescale) **
    -power for rsqrt / power), and from u = t_initial - decay_t on lr_min + (s(u) - lr_min) g(q),
    q = min((u - t_initial + decay_t) / decay_t, 1), g the decay_fn (linear, 1-sqrt, cosine, power, exp)."""
    o = "WSDLRScheduler"
    lr = _common(o, lr, t_in_epochs, noise_range_t, initialize)
    T = V.integer(o, "t_initial", t_initial, low=1)
    d = V.integer(o, "decay_t", decay_t, low=1)
    if d > T:
        raise ValueError(f"{o}: decay_t must be in (0, t_initial], got decay_t={decay_t!r} > t_initial={t_initial!r}")
    low = V.rate(o, "lr_min", lr_min)
    V.choice(o, "stable_fn", stable_fn, _STABLE_FNS)
    if callable(decay_fn):
        raise ValueError(f"{o}: decay_fn must be one of {', '.join(map(repr, _DECAY_FNS))} (a Python callable has no "
                         "text form in lrcore), got a callable")
    V.choice(o, "decay_fn", decay_fn, _DECAY_FNS)
    ratio = V.real(o, "decay_ratio", decay_ratio, low=0.0, low_open=True, high=1.0, high_open=True)
    dp = V.real(o, "decay_power", decay_power, low=0.0, low_open=True)
    sp = V.real(o, "stable_power", stable_power, low=0.0, low_open=True)
    w, init = _warmup(o, warmup_t, warmup_lr_init)
    if stable_fn != "constant":
        tau = w if stable_timescale is None else stable_timescale
        tau = V.real(o, "stable_timescale", tau, low=0.0, low_open=True)
    if stable_fn == "constant" and decay_fn in _COOLDOWNS:
        after = S.Constant(low) if lr <= low else \
            S.Sequence([S.Constant(lr), _COOLDOWNS[decay_fn](lr, low, d)], [T - d])
        return _with_warmup(w, init, lr, after)
    L_, low_ = _num(lr), _num(low)
    f = "1.0" if stable_fn == "constant" else f"(1.0 + t / {_num(tau)}) ** -{_num(0.5 if stable_fn == 'rsqrt' else sp)}"
    stable = f"max({L_} * {f}, {low_})"
    q = f"min((t - {_num(T - d)}) / {_num(d)}, 1.0)"
    g = {"linear": f"1.0 - {q}", "1-sqrt": f"1.0 - sqrt({q})", "cosine": f"0.5 * (1.0 + cos(pi * {q}))",
         "power": f"1.0 - {q} ** {_num(dp)}", "exp": f"({_num(ratio)} ** {q} - {_num(ratio)}) / (1.0 - {_num(ratio)})"}
    fn = f"({stable} if t - {_num(T - d)} <= 0.0 else {low_} + ({stable} - {low_}) * ({g[decay_fn]}))"
    return _with_warmup(w, init, lr, S.Lambda(fn, 1.0))


class PlateauLRScheduler:
    """timm's PlateauLRScheduler (reactive: PyTorch's ReduceLROnPlateau behind a warmup) for ``M`` models:
    ``step(epoch, metrics)`` returns the new lrs (shape (M,)). For ``epoch <= warmup_t`` the lr is
    ``warmup_lr_init + epoch * (lr - warmup_lr_init) / warmup_t`` (``warmup_lr_init`` itself at epoch 0 when
    warmup_t = 0: timm's ``epoch <= warmup_t``) and the plateau is not stepped; later epochs step PyTorch's
    ReduceLROnPlateau (``lrcore.Plateau``, torch semantics) on the current lr. ``mode`` defaults to 'max'."""

    def __init__(self, lr: float, decay_rate: float = 0.1, patience_t: int = 10, threshold: float = 1e-4,
                 cooldown_t: int = 0, warmup_t: int = 0, warmup_lr_init: float = 0., lr_min: float = 0.,
                 mode: str = "max", noise_range_t=None, noise_type: str = "normal", noise_pct: float = 0.67,
                 noise_std: float = 1.0, noise_seed=None, initialize: bool = True, M: int = 1):
        from ..reactive import Plateau
        o = "PlateauLRScheduler"
        lr = _common(o, lr, True, noise_range_t, initialize)
        self.warmup_t, self.warmup_lr_init = _warmup(o, warmup_t, warmup_lr_init)
        self.step_size = (lr - self.warmup_lr_init) / self.warmup_t if self.warmup_t else 1.0
        self.plateau = Plateau(M, lr, factor=decay_rate, patience=patience_t, threshold=threshold,
                               cooldown=cooldown_t, min_lr=lr_min, mode=mode, semantics="torch")

    def step(self, epoch: int, metrics) -> np.ndarray:
        epoch = V.integer("PlateauLRScheduler", "epoch", epoch, low=0)
        if epoch <= self.warmup_t:
            self.plateau.lr = np.full(self.plateau.M, self.warmup_lr_init + epoch * self.step_size)
            return self.plateau.lr.copy()
        return self.plateau.step(metrics)


from ._origin import record  # noqa: E402

record("timm", globals())
