"""The PyTorch conformance cases: parameter generators for torch.optim.lr_scheduler's constructors, the
named lambdas they draw, and both sides of a case: the lrcore.compat.torch schedule and the real PyTorch
scheduler (run by ``reference.torch_oracle``).

A generator returns (kwargs, steps): kwargs in PyTorch's names plus "lr" (the optimizer's initial lr).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import draws as D

# Real Python lambdas (LambdaLR: the factor at step t; MultiplicativeLR: the factor of step k).
LAMBDAS: dict[str, Callable] = {
    "0.95**t": lambda t: 0.95 ** t,
    "1/(1+0.1t)": lambda t: 1 / (1 + 0.1 * t),
    "warmup10": lambda t: min(1.0, (t + 1) / 10),
    "cos50": lambda t: 0.5 * (1 + math.cos(math.pi * min(t, 50) / 50)),
    "step20": lambda t: 1.0 if t < 20 else 0.1,
}
# CyclicLR scale_fn (of the cycle number or the step, by scale_mode)
SCALE_FNS: dict[str, Callable] = {
    "1/x": lambda x: 1.0 / x if x else 1.0,
    "0.9**x": lambda x: 0.9 ** x,
    "1/(1+0.1x)": lambda x: 1 / (1 + 0.1 * x),
}
MULT_LAMBDAS: dict[str, Callable] = {
    "0.95": lambda k: 0.95,
    "0.9 until 10": lambda k: 0.9 if k < 10 else 1.0,
    "1-0.5/(k+10)": lambda k: 1 - 0.5 / (k + 10),
}


def _total_iters(d) -> int:
    """ConstantLR / LinearLR / PolynomialLR total_iters: PyTorch checks no sign (a negative one is never
    reached: the initial value holds, as with 0)."""
    return -d.integer(1, 3) if d.integer(0, 9) == 0 else d.integer(0, 40)


def _t_step(d):
    s = D.period(d)
    return dict(lr=D.lr(d), step_size=s, gamma=D.gamma(d)), d.integer(1, 4 * s + 20)


def _t_multistep(d):
    ms = [d.integer(0, 60) for _ in range(d.integer(1, 5))]
    if d.boolean():
        ms.append(d.choice(ms))  # a duplicate milestone
    if d.boolean():
        ms = sorted(ms)
    if d.integer(0, 9) == 0:  # never reached by the (integer) step: PyTorch checks none
        ms.append(d.choice([-3, 2.5]))
    return dict(lr=D.lr(d), milestones=ms, gamma=D.gamma(d)), int(max(ms)) + d.integer(1, 30)


def _t_constant(d):
    n = _total_iters(d)
    # factor in [0, 1] (PyTorch's rule); with factor=0 PyTorch divides by zero at total_iters (both refuse then)
    factor = d.choice([0.0, 1.0, 1e-6]) if d.integer(0, 5) == 0 else d.real(0.01, 1.0)
    return dict(lr=D.lr(d), factor=factor, total_iters=n), max(n, 0) + d.integer(1, 30)


def _t_linear(d):
    n = _total_iters(d)
    # start_factor in (0, 1], end_factor in [0, 1] (PyTorch's rules), tiny start factors too
    start = d.choice([1.0, 1e-8, D.log_uniform(d, 1e-6, 1e-2)]) if d.integer(0, 4) == 0 else d.real(0.01, 1.0)
    return (dict(lr=D.lr(d), start_factor=start, end_factor=D.fraction(d), total_iters=n),
            max(n, 0) + d.integer(1, 30))


def _t_exponential(d):
    return dict(lr=D.lr(d), gamma=d.choice([0.0, 1.0, d.real(1.0, 1.05)]) if d.integer(0, 4) == 0 else d.real(0.8, 1.0)), \
        d.integer(1, 200)


def _t_polynomial(d):
    n = _total_iters(d)
    power = d.choice([0.0, 1.0, d.real(0.0, 0.1), d.real(4.0, 10.0)]) if d.integer(0, 4) == 0 else d.real(0.1, 4.0)
    return dict(lr=D.lr(d), total_iters=n, power=power), max(n, 0) + d.integer(1, 30)


def _t_cosine(d):
    T = D.period(d) if d.integer(0, 5) else round(d.real(0.5, 30.0), 3)  # PyTorch takes a fractional T_max too
    lr = D.lr(d)
    eta = d.choice([0.0, 0.0, lr * d.real(0.0, 0.5), lr * d.real(1.0, 3.0)])  # eta_min > lr: rising
    return dict(lr=lr, T_max=T, eta_min=eta), d.integer(1, int(5 * T) + 10)


def _t_warm_restarts(d):
    T0, mult = D.period(d, 30), d.choice([1, 1, 2, 3, 4])
    lr = D.lr(d)
    eta = d.choice([0.0, lr * d.real(0.0, 0.5), lr * d.real(1.0, 3.0)])  # eta_min > lr: rising
    return dict(lr=lr, T_0=T0, T_mult=mult, eta_min=eta), d.integer(1, 8 * T0 + 20)


def _t_cyclic(d):
    base = D.lr(d)
    up = d.choice([D.period(d, 30), round(d.real(0.5, 20.0), 3)])
    down = d.choice([None, D.period(d, 30), round(d.real(0.5, 20.0), 3)])
    mode = d.choice(["triangular", "triangular2", "exp_range"])
    # PyTorch checks neither max_lr >= base_lr nor gamma <= 1 nor max_momentum >= base_momentum
    peak = base * d.choice([d.real(1.0, 20.0), d.real(1.0, 20.0), d.real(0.0, 1.0)])
    gamma = d.choice([d.real(0.9, 1.0), d.real(0.9, 1.0), d.real(1.0, 1.02)]) if mode == "exp_range" else d.real(0.5, 2.0)
    mom = sorted([d.real(0.7, 0.99), d.real(0.7, 0.99)])
    if d.integer(0, 3) == 0:
        mom.reverse()
    kw = dict(base_lr=base, max_lr=peak, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma,
              base_momentum=mom[0], max_momentum=mom[1])
    if d.boolean():  # ignored by PyTorch with a built-in mode
        kw["scale_mode"] = d.choice(["cycle", "iterations"])
    if d.integer(0, 3) == 0:  # a custom scale function: mode is ignored then, scale_mode ("cycle" by default) used
        kw["scale_fn"] = d.choice(sorted(SCALE_FNS))
    return kw, d.integer(1, int(6 * (up + (down or up))) + 10)


def _t_onecycle(d):
    three = d.boolean()
    T = d.integer(1, 300)
    # any pct_start PyTorch takes: phases may have no length (PyTorch divides by zero if a step lands in
    # one: both refuse) or end out of order (three phases with pct_start above ~0.5: the steps anneal
    # through the second phase and never reach the third)
    pct = d.choice([0.0, 1.0, 0.5, 1.0 / T, 2.0 / T, 0.5 + 0.5 / T]) if d.integer(0, 4) == 0 else d.real(0.0, 1.0)
    kw = dict(max_lr=D.lr(d), total_steps=T, pct_start=pct, anneal_strategy=d.choice(["cos", "linear"]),
              div_factor=d.choice([d.real(2.0, 50.0), d.real(2.0, 50.0), d.real(0.5, 2.0)]),
              final_div_factor=D.log_uniform(d, 0.5, 1e4), three_phase=three,
              base_momentum=d.real(0.7, 0.85), max_momentum=d.real(0.85, 0.99))
    if d.integer(0, 3) == 0:  # epochs * steps_per_epoch instead of total_steps
        kw.pop("total_steps")
        kw.update(epochs=1, steps_per_epoch=T)
    return kw, T


def _t_lambda(d):
    return dict(lr=D.lr(d), lr_lambda=d.choice(sorted(LAMBDAS))), d.integer(1, 120)


def _t_multiplicative(d):
    return dict(lr=D.lr(d), lr_lambda=d.choice(sorted(MULT_LAMBDAS))), d.integer(1, 120)


# children a SequentialLR may hold: every scheduler but ChainedScheduler and SequentialLR (PyTorch cannot
# restart those at a milestone); CyclicLR and OneCycleLR set the optimizer's lr and initial_lr when built,
# so the base rate of the children built after them depends on the order
_SEQ_CHILDREN = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
                 "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "LambdaLR", "MultiplicativeLR",
                 "CyclicLR", "OneCycleLR")
# children a ChainedScheduler may hold (see lrcore.compat.torch.ChainedScheduler): every scheduler; CyclicLR
# and OneCycleLR set lr (and momentum) outright and change the optimizer's initial_lr for those built after
_CHAIN_CHILDREN = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
                   "CosineAnnealingLR", "MultiplicativeLR", "LambdaLR", "CosineAnnealingWarmRestarts",
                   "CyclicLR", "OneCycleLR", "SequentialLR")
_CYCLERS = ("CyclicLR", "OneCycleLR")


def _t_sequential(d, cycles_momentum: bool = False):
    """2-4 children (with ``cycles_momentum``, one of them a CyclicLR or OneCycleLR that does)."""
    lr = D.lr(d)
    k = d.integer(2, 4)
    forced = d.integer(0, k - 1) if cycles_momentum else -1
    children = []
    for i in range(k):
        name = d.choice(_CYCLERS) if i == forced else d.choice(_SEQ_CHILDREN)
        kw, _ = TORCH[name](d)
        kw["lr"] = lr
        if i == forced:
            kw["cycle_momentum"] = True
        # total_iters=0 is left out in children: at a milestone PyTorch's closed form divides by it
        # (LinearLR, PolynomialLR: ZeroDivisionError) or gives lr, not lr * factor (ConstantLR; not reproduced)
        if name in ("LinearLR", "PolynomialLR", "ConstantLR"):
            kw["total_iters"] = max(kw["total_iters"], 1)
        # negative milestones are left out too: PyTorch's closed form (used at a milestone) counts them
        if name == "MultiStepLR":
            kw["milestones"] = [m for m in kw["milestones"] if m >= 0 and float(m).is_integer()] or [0]
        children.append([name, kw])
    ms = sorted(d.integer(0, 40) if d.integer(0, 5) else 0 for _ in range(k - 1))
    return dict(lr=lr, schedulers=children, milestones=ms), ms[-1] + d.integer(1, 40)


def _t_chained(d, cycles_momentum: bool = False):
    """A chain of 2-4 schedulers (with ``cycles_momentum``, one of them a CyclicLR or OneCycleLR that does);
    steps stop at the shortest OneCycleLR's total_steps (PyTorch raises one step later)."""
    lr = D.lr(d)
    children = []
    k = d.integer(2, 4)
    forced = d.integer(0, k - 1) if cycles_momentum else -1
    steps = d.integer(1, 150)
    for i in range(k):
        name = d.choice(_CYCLERS) if i == forced else d.choice(_CHAIN_CHILDREN)
        kw, n = TORCH[name](d)
        if name not in _CYCLERS:
            kw["lr"] = lr
            for _, child in kw.get("schedulers", []):  # a SequentialLR's children: the same optimizer
                child["lr"] = lr
        else:
            kw.pop("lr", None)
            if i == forced:
                kw["cycle_momentum"] = True
        if name == "OneCycleLR":
            steps = min(steps, n)
        if name == "CosineAnnealingLR" and kw["eta_min"] > 0:  # eta_min as a fraction of lr, as PyTorch's tests
            kw["eta_min"] = d.choice([1e-10, kw["eta_min"]])
        children.append([name, kw])
    return dict(lr=lr, schedulers=children), steps


# the torch constructors whose momentum (SGD momentum / Adam beta1) is a schedule too
MOMENTUM = ("CyclicLR", "OneCycleLR", "SequentialLR", "ChainedScheduler")

TORCH: dict[str, Callable] = {
    "StepLR": _t_step, "MultiStepLR": _t_multistep, "ConstantLR": _t_constant, "LinearLR": _t_linear,
    "ExponentialLR": _t_exponential, "PolynomialLR": _t_polynomial, "CosineAnnealingLR": _t_cosine,
    "CosineAnnealingWarmRestarts": _t_warm_restarts, "CyclicLR": _t_cyclic, "OneCycleLR": _t_onecycle,
    "SequentialLR": _t_sequential, "ChainedScheduler": _t_chained, "LambdaLR": _t_lambda,
    "MultiplicativeLR": _t_multiplicative,
}


def momentum_params(d, name: str):
    """(kwargs, steps) of a momentum case: a SequentialLR / ChainedScheduler with a child that cycles momentum."""
    if name in ("ChainedScheduler", "SequentialLR"):
        return {"ChainedScheduler": _t_chained, "SequentialLR": _t_sequential}[name](d, cycles_momentum=True)
    return TORCH[name](d)


def _resolve(name: str, kw: dict) -> dict:
    kw = dict(kw)
    if name == "LambdaLR":
        kw["lr_lambda"] = LAMBDAS[kw["lr_lambda"]]
    elif name == "MultiplicativeLR":
        kw["lr_lambda"] = MULT_LAMBDAS[kw["lr_lambda"]]
    elif name == "CyclicLR" and "scale_fn" in kw:
        kw["scale_fn"] = SCALE_FNS[kw["scale_fn"]]
    return kw


def compat_schedule(name: str, params: dict):
    """The lrcore.compat.torch schedule of ``name(**params)`` (a SequentialLR's / ChainedScheduler's children built)."""
    from lrcore.compat import torch as T
    kw = _resolve(name, params)
    if name in ("SequentialLR", "ChainedScheduler"):
        kw["schedulers"] = [compat_schedule(n, k) for n, k in kw["schedulers"]]
    return getattr(T, name)(**kw)


def torch_factory(case) -> Callable:
    """``make_scheduler(optimizer)`` building the real PyTorch scheduler of a case."""
    from torch.optim import lr_scheduler as L

    def build(opt, name, kw):
        kw = _resolve(name, kw)
        kw.pop("lr", None)
        if name == "SequentialLR":
            return L.SequentialLR(opt, [build(opt, n, k) for n, k in kw["schedulers"]], milestones=kw["milestones"])
        if name == "ChainedScheduler":
            return L.ChainedScheduler([build(opt, n, k) for n, k in kw["schedulers"]])
        return getattr(L, name)(opt, **kw)

    return lambda opt: build(opt, case.name, case.params)


def torch_values(case) -> np.ndarray:
    from .torch_oracle import torch_lrs
    return torch_lrs(torch_factory(case), case.steps, lr=case.params.get("lr", 0.1), kind=case.optimizer,
                     momentum=case.quantity == "momentum")
