"""The Hugging Face transformers conformance cases: parameter generators for the schedule functions of
transformers.optimization (``get_scheduler`` too); ``reference.hf_oracle`` runs the real package on them.

A generator returns (kwargs, steps): kwargs in the package's own names plus "lr" (the optimizer's lr).
"""
from __future__ import annotations

from typing import Callable

from . import draws as D


def _h_constant(d):
    return dict(lr=D.lr(d)), d.integer(1, 40)


def _h_constant_warmup(d):
    w = D.warmup(d)
    return dict(lr=D.lr(d), num_warmup_steps=w), w + d.integer(1, 30)


def _h_training(d):
    """(w, T): T after w mostly, equal or before it sometimes (transformers divides by max(1, T - w))."""
    w = D.warmup(d)
    T = w + d.integer(1, 80) if d.integer(0, 5) else max(0, w - d.integer(0, 3))
    return w, T


def _h_linear(d):
    w, T = _h_training(d)
    return dict(lr=D.lr(d), num_warmup_steps=w, num_training_steps=T), max(w, T) + d.integer(1, 30)


def _h_cycles(d, default):
    return d.choice([default, default, 0, 1, 2, 3, round(d.real(0.1, 4.0), 3), d.real(0.0, 3.0)])


def _h_cosine(d):
    w, T = _h_training(d)
    kw = dict(lr=D.lr(d), num_warmup_steps=w, num_training_steps=T)
    c = _h_cycles(d, 0.5)
    if c != 0.5:
        kw["num_cycles"] = c
    return kw, max(w, T) + d.integer(1, 60)


def _h_restarts(d):
    w, T = _h_training(d)
    kw = dict(lr=D.lr(d), num_warmup_steps=w, num_training_steps=T)
    c = d.choice([1, 1, 0, 2, 3, 5, 7, round(d.real(0.2, 4.0), 3)])
    if c != 1:
        kw["num_cycles"] = c
    return kw, max(w, T) + d.integer(1, 30)


def _h_polynomial(d):
    w, T = _h_training(d)
    if T == w:  # transformers divides by T - w = 0 at step T (lrcore refuses): reach it
        T = w + d.integer(1, 40)
    lr = D.lr(d)
    kw = dict(lr=lr, num_warmup_steps=w, num_training_steps=T)
    if d.boolean():
        kw["lr_end"] = d.choice([0.0, lr * d.real(0.0, 0.9)])
    if d.boolean():
        kw["power"] = d.choice([0.0, 1.0, 2.0, d.real(0.1, 4.0)])
    return kw, max(w, T) + d.integer(1, 30)


def _h_inverse_sqrt(d):
    w = D.warmup(d)
    kw = dict(lr=D.lr(d), num_warmup_steps=w)
    if d.boolean():
        kw["timescale"] = d.choice([d.integer(1, 200), round(d.real(0.5, 100.0), 3)])
    return kw, w + d.integer(1, 200)


def _h_min_lr(d, rate_variant=False):
    w, T = _h_training(d)
    lr = D.lr(d)
    kw = dict(lr=lr, num_warmup_steps=w, num_training_steps=T)
    if d.boolean():
        kw["min_lr"] = lr * d.choice([0.0, d.real(0.0, 0.5), d.real(1.0, 1.5)])
    else:
        kw["min_lr_rate"] = d.choice([0.0, d.real(0.0, 0.5), 0.1])
    c = _h_cycles(d, 0.5)
    if c != 0.5:
        kw["num_cycles"] = c
    if rate_variant and d.boolean():
        kw["warmup_lr_rate"] = d.choice([0.0, d.real(0.0, 1.0)])
    return kw, max(w, T) + d.integer(1, 40)


def _h_wsd(d):
    w, dec = D.warmup(d), d.choice([0, 1, d.integer(2, 40), d.integer(2, 40)])
    s = d.integer(0, 40)
    kw = dict(lr=D.lr(d), num_warmup_steps=w, num_decay_steps=dec, warmup_type=d.choice(["linear", "cosine", "1-sqrt"]),
              decay_type=d.choice(["linear", "cosine", "1-sqrt"]))
    if d.boolean():
        kw["num_training_steps"] = w + s + dec
    else:
        kw["num_stable_steps"] = s
    if d.boolean():
        kw["min_lr_ratio"] = d.choice([0.0, 0.1, d.real(0.0, 1.0)])
    if d.integer(0, 3) == 0:
        kw["num_cycles"] = _h_cycles(d, 0.5)
    return kw, w + s + dec + d.integer(1, 30)


_HF_NAMES = {"linear": "get_linear_schedule_with_warmup", "cosine": "get_cosine_schedule_with_warmup",
             "cosine_with_restarts": "get_cosine_with_hard_restarts_schedule_with_warmup",
             "polynomial": "get_polynomial_decay_schedule_with_warmup", "constant": "get_constant_schedule",
             "constant_with_warmup": "get_constant_schedule_with_warmup", "inverse_sqrt": "get_inverse_sqrt_schedule",
             "cosine_with_min_lr": "get_cosine_with_min_lr_schedule_with_warmup",
             "cosine_warmup_with_min_lr": "get_cosine_with_min_lr_schedule_with_warmup_lr_rate",
             "warmup_stable_decay": "get_wsd_schedule"}


def _h_get_scheduler(d):
    """get_scheduler(name, ...) with a draw of that schedule's own generator (its extra keywords as
    scheduler_specific_kwargs)."""
    name = d.choice(sorted(_HF_NAMES))
    kw, steps = HF[_HF_NAMES[name]](d)
    out = dict(name=name, lr=kw.pop("lr"))
    for key in ("num_warmup_steps", "num_training_steps"):
        if key in kw:
            out[key] = kw.pop(key)
    if kw:
        out["scheduler_specific_kwargs"] = kw
    return out, steps


HF: dict[str, Callable] = {
    "get_constant_schedule": _h_constant, "get_constant_schedule_with_warmup": _h_constant_warmup,
    "get_linear_schedule_with_warmup": _h_linear, "get_cosine_schedule_with_warmup": _h_cosine,
    "get_cosine_with_hard_restarts_schedule_with_warmup": _h_restarts,
    "get_polynomial_decay_schedule_with_warmup": _h_polynomial, "get_inverse_sqrt_schedule": _h_inverse_sqrt,
    "get_cosine_with_min_lr_schedule_with_warmup": _h_min_lr,
    "get_cosine_with_min_lr_schedule_with_warmup_lr_rate": lambda d: _h_min_lr(d, True),
    "get_wsd_schedule": _h_wsd, "get_scheduler": _h_get_scheduler,
}
