"""The optax conformance cases: parameter generators for optax.schedules' schedules (``join_schedules``
of them too); ``reference.optax_oracle`` runs the real package on them.

A generator returns (kwargs, steps): kwargs in the package's own names.
"""
from __future__ import annotations

from typing import Callable

from . import draws as D


def _o_steps(d):
    """transition_steps: positive mostly; 0 or negative (a constant schedule) or fractional sometimes."""
    return d.choice([0, -3, round(d.real(0.5, 30.0), 3)]) if d.integer(0, 4) == 0 else D.period(d, 60)


def _o_begin(d):
    return d.choice([0, 0, d.integer(1, 30), -2])


def _o_constant(d):
    return dict(value=D.lr(d)), d.integer(1, 20)


def _o_polynomial(d):
    kw = dict(init_value=D.lr(d), end_value=d.choice([0.0, D.lr(d)]),
              power=d.choice([1.0, 2.0, 0.0, d.real(0.0, 4.0)]), transition_steps=_o_steps(d),
              transition_begin=_o_begin(d))
    return kw, max(0, kw["transition_begin"]) + int(max(kw["transition_steps"], 0)) + d.integer(1, 30)


def _o_linear(d):
    kw = dict(init_value=D.lr(d), end_value=d.choice([0.0, D.lr(d)]), transition_steps=_o_steps(d),
              transition_begin=_o_begin(d))
    return kw, max(0, kw["transition_begin"]) + int(max(kw["transition_steps"], 0)) + d.integer(1, 30)


def _o_pairs(d, lo=-3):
    return [[d.choice([d.integer(lo, 60), d.integer(0, 60), round(d.real(0.0, 60.0), 2)]) if lo < 0 else
             d.integer(lo, 60), d.choice([d.real(0.0, 1.0), d.real(0.0, 2.0), 0.5, 0.0])] for _ in range(d.integer(0, 4))]


def _o_piecewise_constant(d):
    kw = dict(init_value=D.lr(d))
    if d.integer(0, 5):
        kw["boundaries_and_scales"] = _o_pairs(d)
    return kw, d.integer(1, 80)


def _o_exponential(d):
    init = D.lr(d)
    kw = dict(init_value=init, transition_steps=_o_steps(d),
              decay_rate=d.choice([d.real(0.1, 1.0), d.real(0.1, 1.0), d.real(1.0, 1.5), 0.0, 1.0]),
              transition_begin=_o_begin(d), staircase=d.boolean())
    if d.boolean():
        kw["end_value"] = init * d.choice([d.real(0.0, 1.0), d.real(1.0, 3.0), 0.0])
    return kw, d.integer(1, 150)


def _o_cosine(d):
    kw = dict(init_value=D.lr(d), decay_steps=d.choice([D.period(d, 60), round(d.real(0.5, 40.0), 3)]))
    if d.boolean():
        kw["alpha"] = d.choice([0.0, d.real(0.0, 0.5), d.real(1.0, 2.0)])
    if d.integer(0, 2) == 0:
        kw["exponent"] = d.choice([2.0, d.real(0.3, 3.0)])
    return kw, d.integer(1, int(kw["decay_steps"]) + 30)


def _o_interpolate(d):
    kw = dict(interpolate_type=d.choice(["linear", "cosine"]), init_value=D.lr(d))
    if d.integer(0, 5):
        kw["boundaries_and_scales"] = _o_pairs(d, 0)
    return kw, d.integer(1, 90)


def _o_onecycle(d, linear):
    T = d.integer(1, 200)
    kw = dict(transition_steps=T, peak_value=D.lr(d))
    if d.boolean():
        kw["pct_start"] = d.choice([d.real(0.0, 0.6), 0.0, 0.5])
    if linear and d.boolean():
        kw["pct_final"] = d.choice([d.real(kw.get("pct_start", 0.3), 1.0), 1.0])
    if d.boolean():
        kw["div_factor"] = d.real(1.0, 50.0)
        kw["final_div_factor"] = D.log_uniform(d, 1.0, 1e4)
    return kw, d.integer(1, T + 30)


def _o_warmup_constant(d):
    w = D.warmup(d)
    return dict(init_value=D.lr(d) * d.choice([0.0, 1.0]), peak_value=D.lr(d), warmup_steps=w), w + d.integer(1, 20)


def _o_warmup_cosine_kwargs(d):
    peak, w = D.lr(d), D.warmup(d)
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
    w = D.warmup(d)
    kw = dict(init_value=d.choice([0.0, D.lr(d)]), peak_value=kw.pop("init_value"), warmup_steps=w, **kw)
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
