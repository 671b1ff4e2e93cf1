"""Hugging Face ``transformers.optimization`` schedules as lrcore schedules (transformers is never imported).

``get_X(lr=..., **kwargs)`` takes the function's own keyword names and defaults, with ``lr`` (the
optimizer's learning rate) in place of the optimizer. The value at step t is the lr the returned
LambdaLR gives the optimizer after t ``scheduler.step()`` calls: ``lr * lr_lambda(t)``. Where
transformers differs from the usual recipe (reference/DIFFERENCES.md has the numbers):

* warmup is ``t / num_warmup_steps``: it starts at 0 and its last step (t = w - 1) is one step short of
  the peak, which comes at t = w; the ``_lr_rate`` variant warms up as ``(t + 1) / w`` (reaching the peak at
  t = w - 1) and starts its cosine one step in;
* the cosine is ``(1 + cos(2 pi num_cycles p)) / 2`` with p = (t - w) / (T - w): ``num_cycles=0.5`` is half a
  period, it reaches 0 at t = T and rises again after T (``get_cosine_schedule_with_warmup``); the hard
  restarts version holds 0 from T on;
* ``get_polynomial_decay_schedule_with_warmup`` ends at ``lr_end`` (1e-7 by default), ``get_inverse_sqrt_schedule``
  decays as ``1 / sqrt((t - w + timescale) / timescale)`` (its peak at t = w, not w - 1 as Noam's).

Formulas with no canonical lrcore schedule (hard restarts with num_cycles != 1, inverse sqrt, the
``_lr_rate`` variant, WSD's 1-sqrt warmup) are ``lrcore.Lambda`` expressions written as transformers
computes them. Step counts are integers >= 0 (transformers also runs negative ones; lrcore refuses them).
"""
from __future__ import annotations

from .. import _validate as V
from .. import schedules as S

__all__ = ["get_constant_schedule", "get_constant_schedule_with_warmup", "get_linear_schedule_with_warmup",
           "get_cosine_schedule_with_warmup", "get_cosine_with_hard_restarts_schedule_with_warmup",
           "get_polynomial_decay_schedule_with_warmup", "get_inverse_sqrt_schedule",
           "get_cosine_with_min_lr_schedule_with_warmup", "get_cosine_with_min_lr_schedule_with_warmup_lr_rate",
           "get_wsd_schedule", "get_scheduler", "get_reduce_on_plateau_schedule"]

SCHEDULER_TYPES = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                   "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                   "warmup_stable_decay", "greedy")


def _lr(o, lr):
    if lr is None:
        raise TypeError(f"{o}: lr (the optimizer's learning rate) is required")
    return V.rate(o, "lr", lr)


def _epoch(o, last_epoch):
    if last_epoch != -1:  # PyTorch then needs 'initial_lr' in the optimizer's param groups (a resumed run)
        raise ValueError(f"{o}: last_epoch must be -1 (a fresh scheduler), got {last_epoch!r}")


def _steps(o, name, v):
    return V.integer(o, name, v, low=0)


def _warm(lr, w, after):
    """t / max(1, w) for t < w (from 0; the peak at t = w), then ``after`` at t - w."""
    return S.Sequence([S.Linear(0.0, lr, w), after], [w]) if w > 0 else after


def _num(x) -> str:
    return repr(float(x))


def _periodic(o, lr, length, cycles, floor=0.0):
    """floor + (lr - floor)(1 + cos(2 pi cycles u / length)) / 2: a cosine of half-period length / (2 cycles)."""
    c = abs(V.real(o, "num_cycles", cycles))
    if c == 0.0:
        return S.Constant(lr)
    half = length / (2.0 * c)
    if not 0.0 < half < V.MAX_STEP:
        raise ValueError(f"{o}: num_cycles must give a half period in (0, 2**62) steps, got {cycles!r}")
    return S.Cosine(lr, half, floor=floor, periodic=True)


def get_constant_schedule(lr: float, last_epoch: int = -1) -> S.Schedule:
    """lr."""
    o = "get_constant_schedule"
    _epoch(o, last_epoch)
    return S.Constant(_lr(o, lr))


def get_constant_schedule_with_warmup(lr: float, num_warmup_steps: int, last_epoch: int = -1) -> S.Schedule:
    """lr * t / w for t < w, then lr."""
    o = "get_constant_schedule_with_warmup"
    _epoch(o, last_epoch)
    lr = _lr(o, lr)
    return _warm(lr, _steps(o, "num_warmup_steps", num_warmup_steps), S.Constant(lr))


def get_linear_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                    last_epoch: int = -1) -> S.Schedule:
    """lr * t / w, then lr * max(0, (T - t) / max(1, T - w)): 0 from T on."""
    o = "get_linear_schedule_with_warmup"
    _epoch(o, last_epoch)
    lr, w = _lr(o, lr), _steps(o, "num_warmup_steps", num_warmup_steps)
    T = _steps(o, "num_training_steps", num_training_steps)
    return _warm(lr, w, S.Linear(lr, 0.0, T - w) if T - w >= 1 else S.Constant(0.0))


def get_cosine_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                    num_cycles: float = 0.5, last_epoch: int = -1) -> S.Schedule:
    """lr * t / w, then lr * max(0, (1 + cos(2 pi num_cycles p)) / 2), p = (t - w) / max(1, T - w)
    (num_cycles=0.5: 0 at T, rising again after it)."""
    o = "get_cosine_schedule_with_warmup"
    _epoch(o, last_epoch)
    lr, w = _lr(o, lr), _steps(o, "num_warmup_steps", num_warmup_steps)
    T = _steps(o, "num_training_steps", num_training_steps)
    return _warm(lr, w, _periodic(o, lr, max(1, T - w), num_cycles))


def get_cosine_with_hard_restarts_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                                       num_cycles: int = 1, last_epoch: int = -1) -> S.Schedule:
    """lr * t / w, then lr * (1 + cos(pi ((num_cycles p) % 1))) / 2 while p = (t - w) / max(1, T - w) < 1,
    then 0."""
    o = "get_cosine_with_hard_restarts_schedule_with_warmup"
    _epoch(o, last_epoch)
    lr, w = _lr(o, lr), _steps(o, "num_warmup_steps", num_warmup_steps)
    D = max(1, _steps(o, "num_training_steps", num_training_steps) - w)
    c = V.real(o, "num_cycles", num_cycles)
    if c == 1.0:
        cycles = S.Cosine(lr, D)  # one cycle: 0 from D on
    else:  # the cycle boundaries where transformers's float (c * p) % 1 puts them
        fn = f"max(0.0, 0.5 * (1.0 + cos(pi * (({_num(c)} * (t / {_num(D)})) % 1.0))))"
        cycles = S.Sequence([S.Lambda(fn, lr), S.Constant(0.0)], [D])
    return _warm(lr, w, cycles)


def get_polynomial_decay_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                              lr_end: float = 1e-7, power: float = 1.0,
                                              last_epoch: int = -1) -> S.Schedule:
    """lr * t / w, then (lr - lr_end)(1 - (t - w) / (T - w)) ** power + lr_end up to T, then lr_end."""
    o = "get_polynomial_decay_schedule_with_warmup"
    _epoch(o, last_epoch)
    lr, w = _lr(o, lr), _steps(o, "num_warmup_steps", num_warmup_steps)
    T = _steps(o, "num_training_steps", num_training_steps)
    lr_end = V.rate(o, "lr_end", lr_end)
    if not lr > lr_end:
        raise ValueError(f"{o}: lr_end must be smaller than lr, got lr_end={lr_end!r} >= lr={lr!r}")
    power = V.real(o, "power", power, low=0.0)
    if T == w:
        raise ValueError(f"{o}: num_training_steps must differ from num_warmup_steps (transformers divides by "
                         f"their difference at step {T}), got {T} and {w}")
    if T < w:
        return _warm(lr, w, S.Constant(lr_end))
    if power == 0.0:  # (1 - p) ** 0 = 1 up to T inclusive, lr_end after it
        return _warm(lr, w, S.Sequence([S.Constant(lr), S.Constant(lr_end)], [T - w + 1]))
    return _warm(lr, w, S.Polynomial(lr, T - w, end=lr_end, power=power))


def get_inverse_sqrt_schedule(lr: float, num_warmup_steps: int, timescale: int | None = None,
                              last_epoch: int = -1) -> S.Schedule:
    """lr * t / w, then lr / sqrt((t - w + timescale) / timescale); timescale defaults to w or 10,000."""
    o = "get_inverse_sqrt_schedule"
    _epoch(o, last_epoch)
    lr, w = _lr(o, lr), _steps(o, "num_warmup_steps", num_warmup_steps)
    tau = (w or 10_000) if timescale is None else V.real(o, "timescale", timescale, low=0.0, low_open=True)
    return _warm(lr, w, S.Lambda(f"1.0 / sqrt((t + {_num(tau)}) / {_num(tau)})", lr))


def _min_lr_rate(o, lr, min_lr, min_lr_rate):
    if min_lr is not None and min_lr_rate is not None:
        raise ValueError(f"{o}: give only one of min_lr or min_lr_rate, got both")
    if min_lr is not None:
        return V.rate(o, "min_lr", min_lr) / lr if lr else 0.0
    if min_lr_rate is None:
        raise ValueError(f"{o}: one of min_lr or min_lr_rate must be set")
    return V.rate(o, "min_lr_rate", min_lr_rate)


def get_cosine_with_min_lr_schedule_with_warmup(lr: float, num_warmup_steps: int, num_training_steps: int,
                                                num_cycles: float = 0.5, last_epoch: int = -1,
                                                min_lr: float | None = None,
                                                min_lr_rate: float | None = None) -> S.Schedule:
    """As get_cosine_schedule_with_warmup, the cosine between lr and lr * min_lr_rate (min_lr = lr * min_lr_rate)."""
    o = "get_cosine_with_min_lr_schedule_with_warmup"
    _epoch(o, last_epoch)
    lr, w = _lr(o, lr), _steps(o, "num_warmup_steps", num_warmup_steps)
    T = _steps(o, "num_training_steps", num_training_steps)
    m = _min_lr_rate(o, lr, min_lr, min_lr_rate)
    return _warm(lr, w, _periodic(o, lr, max(1, T - w), num_cycles, floor=lr * m))


def get_cosine_with_min_lr_schedule_with_warmup_lr_rate(lr: float, num_warmup_steps: int, num_training_steps: int,
                                                        num_cycles: float = 0.5, last_epoch: int = -1,
                                                        min_lr: float | None = None,
                                                        min_lr_rate: float | None = None,
                                                        warmup_lr_rate: float | None = None) -> S.Schedule:
    """Warmup (t + 1) / w (or warmup_lr_rate + (1 - warmup_lr_rate) t / max(1, w - 1)), then the min-lr cosine
    at p = (t - w + 1) / max(1, T - w): one step further on than get_cosine_with_min_lr_schedule_with_warmup."""
    o = "get_cosine_with_min_lr_schedule_with_warmup_lr_rate"
    _epoch(o, last_epoch)
    lr, w = _lr(o, lr), _steps(o, "num_warmup_steps", num_warmup_steps)
    T = _steps(o, "num_training_steps", num_training_steps)
    m = _min_lr_rate(o, lr, min_lr, min_lr_rate)
    c = V.real(o, "num_cycles", num_cycles)
    D = float(max(1, T - w))
    fn = (f"max(0.0, 0.5 * (1.0 + cos(pi * {_num(c)} * 2.0 * ((t + 1.0) / {_num(D)}))) * (1.0 - {_num(m)})"
          f" + {_num(m)})")
    after = S.Lambda(fn, lr)
    if w == 0:
        return after
    if warmup_lr_rate is None:
        warm = S.Lambda(f"(t + 1.0) / {_num(max(1, w))}", lr)
    else:
        r = V.rate(o, "warmup_lr_rate", warmup_lr_rate)
        warm = S.Lambda(f"{_num(r)} + (1.0 - {_num(r)}) * t / {_num(max(1, w - 1))}", lr)
    return S.Sequence([warm, after], [w])


_SHAPES = ("linear", "cosine", "1-sqrt")


def get_wsd_schedule(lr: float, num_warmup_steps: int, num_decay_steps: int, num_training_steps: int | None = None,
                     num_stable_steps: int | None = None, warmup_type: str = "linear", decay_type: str = "cosine",
                     min_lr_ratio: float = 0, num_cycles: float = 0.5, last_epoch: int = -1) -> S.Schedule:
    """Warmup from lr * min_lr_ratio to lr over w steps (linear, cosine or 1-sqrt), lr for num_stable_steps
    (default T - w - d), decay over d steps to lr * min_lr_ratio (linear, cosine with num_cycles, 1-sqrt), then
    lr * min_lr_ratio."""
    o = "get_wsd_schedule"
    _epoch(o, last_epoch)
    if num_training_steps is None and num_stable_steps is None:
        raise ValueError(f"{o}: either num_training_steps or num_stable_steps must be specified")
    V.choice(o, "warmup_type", warmup_type, _SHAPES)
    V.choice(o, "decay_type", decay_type, _SHAPES)
    lr, w = _lr(o, lr), _steps(o, "num_warmup_steps", num_warmup_steps)
    d = _steps(o, "num_decay_steps", num_decay_steps)
    if num_stable_steps is None:
        T = _steps(o, "num_training_steps", num_training_steps)
        if T < w + d:
            raise ValueError(f"{o}: num_training_steps must be >= num_warmup_steps + num_decay_steps (lrcore: the "
                             f"phases would overlap), got {T} < {w} + {d}")
        s = T - w - d
    else:
        s = _steps(o, "num_stable_steps", num_stable_steps)
    m = V.rate(o, "min_lr_ratio", min_lr_ratio)
    floor = lr * m
    W, Dd = _num(max(1, w)), _num(max(1, d))
    if warmup_type == "linear":
        warm = S.Linear(floor, lr, w) if w else S.Constant(lr)
    elif warmup_type == "cosine":
        warm = S.Cosine(floor, w, floor=lr) if w else S.Constant(lr)
    else:
        warm = S.Lambda(f"max(0.0, (1.0 - sqrt(1.0 - t / {W})) * (1.0 - {_num(m)}) + {_num(m)})", lr)
    if decay_type == "linear":
        cool = S.Linear(lr, floor, d) if d else S.Constant(floor)
    elif decay_type == "cosine":
        cycles = V.real(o, "num_cycles", num_cycles)
        cool = S.Cosine(lr, d, floor=floor) if cycles == 0.5 and d else _periodic(o, lr, max(1, d), cycles, floor)
    elif floor <= lr and d:
        cool = S.WSD(lr, total_steps=d, decay_steps=d, cooldown="1-sqrt", floor=floor)
    else:
        cool = S.Lambda(f"max(0.0, (1.0 - sqrt(t / {Dd})) * (1.0 - {_num(m)}) + {_num(m)})", lr)
    return S.Sequence([warm, S.Constant(lr), cool, S.Constant(floor)], [w, w + s, w + s + d])


def get_scheduler(name: str, lr: float, num_warmup_steps: int | None = None, num_training_steps: int | None = None,
                  scheduler_specific_kwargs: dict | None = None):
    """transformers's ``get_scheduler``: the schedule of ``name`` (``SchedulerType``) with its own checks."""
    o = "get_scheduler"
    name = getattr(name, "value", name)
    if name not in SCHEDULER_TYPES:
        raise ValueError(f"{o}: name must be one of {', '.join(map(repr, SCHEDULER_TYPES))}, got {name!r}")
    kwargs = dict(scheduler_specific_kwargs or {})
    if name == "constant":
        return get_constant_schedule(lr)
    if name == "reduce_lr_on_plateau":
        return get_reduce_on_plateau_schedule(lr, **kwargs)
    if name == "greedy":
        raise ValueError(f"{o}: name='greedy' (GreedyLR) is a reactive controller lrcore does not reproduce")
    if num_warmup_steps is None:
        raise ValueError(f"{o}: {name} requires num_warmup_steps")
    if name == "constant_with_warmup":
        return get_constant_schedule_with_warmup(lr, num_warmup_steps=num_warmup_steps)
    if name == "inverse_sqrt":
        return get_inverse_sqrt_schedule(lr, num_warmup_steps=num_warmup_steps, **kwargs)
    if name == "warmup_stable_decay":
        return get_wsd_schedule(lr, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, **kwargs)
    if num_training_steps is None:
        raise ValueError(f"{o}: {name} requires num_training_steps")
    fn = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup,
          "cosine_with_restarts": get_cosine_with_hard_restarts_schedule_with_warmup,
          "polynomial": get_polynomial_decay_schedule_with_warmup,
          "cosine_with_min_lr": get_cosine_with_min_lr_schedule_with_warmup,
          "cosine_warmup_with_min_lr": get_cosine_with_min_lr_schedule_with_warmup_lr_rate}[name]
    return fn(lr, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, **kwargs)


def get_reduce_on_plateau_schedule(lr: float, **kwargs):
    """PyTorch's ReduceLROnPlateau (transformers returns it as is): an ``lrcore.Plateau`` of one model with
    torch semantics and the same keywords (mode, factor, patience, threshold, threshold_mode, cooldown,
    min_lr, eps); ``step([metric])`` gives the new lr."""
    from ..reactive import Plateau
    return Plateau(1, _lr("get_reduce_on_plateau_schedule", lr), semantics="torch", **kwargs)


from ._origin import record  # noqa: E402

record("hf", globals())
