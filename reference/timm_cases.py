"""The timm conformance cases: parameter generators for timm.scheduler's schedulers; ``reference.timm_oracle``
runs the real package on them.

A generator returns (kwargs, steps): kwargs in the package's own names plus "lr" (the optimizer's lr).
"""
from __future__ import annotations

from typing import Callable

from . import draws as D


def _timm_common(d, kw, prefix_default):
    if d.boolean():
        kw["warmup_t"] = D.warmup(d, 20)
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
        kw = _timm_cycles(d, dict(lr=D.lr(d), t_initial=D.period(d, 50)))
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
    kw = dict(lr=D.lr(d), decay_t=d.choice([D.period(d, 30), D.period(d, 30), round(d.real(0.5, 20.0), 3)]))
    if d.boolean():
        kw["decay_rate"] = D.gamma(d)
    kw = _timm_common(d, kw, True)
    return kw, kw.get("warmup_t", 0) + d.integer(1, int(5 * kw["decay_t"]) + 20)


def _t_multistep_timm(d):
    ms = sorted(d.integer(0, 60) for _ in range(d.integer(1, 5)))
    if d.integer(0, 4) == 0:  # timm bisects whatever list it is given
        ms.reverse()
    kw = dict(lr=D.lr(d), decay_t=ms, decay_rate=D.gamma(d))
    kw = _timm_common(d, kw, True)
    return kw, kw.get("warmup_t", 0) + max(ms) + d.integer(1, 30)


def _t_wsd_timm(d):
    T = D.period(d, 80)
    lr = D.lr(d)
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
        kw["warmup_t"] = D.warmup(d, 20)
        if d.boolean():
            kw["warmup_lr_init"] = lr * d.real(0.0, 1.0)
    if d.boolean():
        kw["t_in_epochs"] = False
    return kw, kw.get("warmup_t", 0) + T + d.integer(1, 30)


TIMM: dict[str, Callable] = {
    "CosineLRScheduler": _t_cosine_timm, "PolyLRScheduler": _t_poly_timm, "TanhLRScheduler": _t_tanh_timm,
    "StepLRScheduler": _t_step_timm, "MultiStepLRScheduler": _t_multistep_timm, "WSDLRScheduler": _t_wsd_timm,
}
