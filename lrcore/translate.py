"""Recipes across ecosystems: a schedule as the constructor call of torch, keras, hf, timm or optax, and back.

``to_code(s, framework)`` is the call (text) that reproduces ``s`` exactly in the framework, searched in this
order: the call that built ``s`` when a ``lrcore.compat`` constructor of that framework did (read back, the same
value); the framework's native constructors (the matchers below: a flat SequentialLR in torch, Linear as a
polynomial of power 1, timm's unshifted decays, ...); in torch a LambdaLR with the closed form written inline
(``lrcore._expr``: no lrcore import). With ``steps=N`` a form that agrees on steps 0..N-1 only (read back and
compared) is written too, with a comment saying so. Otherwise a ValueError names the obstacle (the package quirk),
the nearest native form with its largest deviation and the steps on which it is exact, and an exact alternative
that runs as printed (``lrcore._search``). torch, hf and timm text names ``optimizer`` and ends with
``# optimizer lr=X``, the learning rate that optimizer must be created with; the text assumes the usual imports
(``torch``, ``transformers``, ``timm``, ``keras``, ``optax``, ``jax.numpy as jnp``, ``math``).
``from_code(text, framework, lr=...)`` (``lrcore.codeform``) reads a package's own call text into a schedule.
"""
from __future__ import annotations

import ast
import math
import re

from . import _validate as V
from . import schedules as S
from . import _expr as E
from . import _search as X
from ._expr import lambda_text as _lambda_expr
from .codeform import from_code  # noqa: F401  (lrcore.from_code)

FRAMEWORKS = ("torch", "keras", "hf", "timm", "optax")
PREFIX = {"torch": "torch.optim.lr_scheduler.", "keras": "keras.optimizers.schedules.", "hf": "transformers.",
          "timm": "timm.scheduler.", "optax": "optax."}


class _NoForm(Exception):
    """The schedule (or a part of it) has no exact constructor in the framework."""


def _call(fw, name, *args, **kwargs) -> str:
    parts = [a if isinstance(a, str) else _lit(a) for a in args] + [f"{k}={_lit(v)}" for k, v in kwargs.items()]
    return f"{PREFIX[fw]}{name}(" + ", ".join(parts) + ")"


def _lit(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_lit(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _int(x, what):
    if not float(x).is_integer():
        raise _NoForm(f"{what} must be a whole number of steps there, got {x}")
    return int(x)


# ------------------------------------------------------------------------------------------ torch

def _torch(s, base) -> str:
    """A torch scheduler reproducing s on an optimizer of rate ``base``."""
    if isinstance(s, S.Sequence):
        kids, milestones = _torch_children(_flat(s), base)
        return _call("torch", "SequentialLR", "optimizer", f"schedulers=[{', '.join(kids)}]", milestones=milestones)
    if isinstance(s, S.OneCycle) and s.quantity == "lr":
        return _call("torch", "OneCycleLR", "optimizer", max_lr=s.max_lr, total_steps=s.total_steps,
                     pct_start=s.pct_start, anneal_strategy=s.anneal, div_factor=s.div_factor,
                     final_div_factor=s.final_div_factor, three_phase=s.three_phase, cycle_momentum=False)
    if isinstance(s, S.Cyclic) and s.quantity == "lr" and s.scale_fn is None:
        return _call("torch", "CyclicLR", "optimizer", base_lr=s.base_lr, max_lr=s.max_lr,
                     step_size_up=s.step_size_up, step_size_down=s.step_size_down, mode=s.mode, gamma=s.gamma,
                     cycle_momentum=False)
    if isinstance(s, S.Lambda):
        scale = "" if s.lr == base else f"{_lit(s.lr / base)} * " if base else None
        if scale is None:
            raise _NoForm("a Lambda on an optimizer of rate 0")
        return _call("torch", "LambdaLR", "optimizer", f"lr_lambda=lambda t: {scale}({_lambda_expr(s.fn)})")
    lr = getattr(s, "lr", None)
    if isinstance(s, S.Constant):
        if base == 0 and s.lr:
            raise _NoForm("a constant on an optimizer of rate 0")
        return _call("torch", "LambdaLR", "optimizer", f"lr_lambda=lambda t: {_lit(s.lr / base) if base else '1.0'}")
    if isinstance(s, S.Linear):
        hi = base
        if hi <= 0 or s.start <= 0 or s.start > hi or s.end > hi:
            raise _NoForm("LinearLR's factors are start_factor in (0, 1] and end_factor in [0, 1] of the "
                          "optimizer's lr: it cannot start from 0 or rise above the lr")
        return _call("torch", "LinearLR", "optimizer", start_factor=s.start / hi, end_factor=s.end / hi,
                     total_iters=s.steps)
    if isinstance(s, S.PiecewiseConstant) and len(s.boundaries) == 1 and s.values[1] == base > 0 \
            and 0 <= s.values[0] <= base:  # PyTorch's warm-up by a constant factor
        return _call("torch", "ConstantLR", "optimizer", factor=s.values[0] / base, total_iters=s.boundaries[0])
    if isinstance(s, S.PiecewiseConstant) and s.values[0] == base and min(s.values) > 0 and len(set(
            s.values[k + 1] / s.values[k] for k in range(len(s.boundaries)))) == 1:
        as_steps = S.MultiStep(base, s.boundaries, s.values[1] / base)
        if X.deviation(as_steps, s, X.horizon(s))[2] is None:
            return _call("torch", "MultiStepLR", "optimizer", milestones=list(s.boundaries), gamma=as_steps.gamma)
    if lr is not None and lr != base:
        raise _NoForm(f"{type(s).__name__} starts at the optimizer's lr in PyTorch ({base}), here at {lr}")
    if isinstance(s, S.Step):
        return _call("torch", "StepLR", "optimizer", step_size=s.step_size, gamma=s.gamma)
    if isinstance(s, S.MultiStep):
        return _call("torch", "MultiStepLR", "optimizer", milestones=list(s.milestones), gamma=s.gamma)
    if type(s) is S.Exponential and s.decay_steps == 1:
        return _call("torch", "ExponentialLR", "optimizer", gamma=s.decay_rate)
    if type(s) is S.Exponential and s.staircase:
        return _call("torch", "StepLR", "optimizer", step_size=_int(s.decay_steps, "decay_steps"), gamma=s.decay_rate)
    if isinstance(s, S.Polynomial) and s.end == 0 and not s.cycle:
        return _call("torch", "PolynomialLR", "optimizer", total_iters=_int(s.decay_steps, "decay_steps"),
                     power=s.power)
    if isinstance(s, S.Cosine) and s.periodic and float(s.decay_steps).is_integer():
        return _call("torch", "CosineAnnealingLR", "optimizer", T_max=int(s.decay_steps), eta_min=s.floor)
    if isinstance(s, S.CosineRestarts) and s.m_mul == 1 and s.t_mul.is_integer():
        return _call("torch", "CosineAnnealingWarmRestarts", "optimizer", T_0=_int(s.period, "period"),
                     T_mult=int(s.t_mul), eta_min=s.floor)
    if isinstance(s, S.Cosine) and not s.periodic and not s.offset and s.floor <= s.lr and s.lr > 0:
        # a cosine that holds its floor: CosineAnnealingLR up to T_max, then ConstantLR at floor / lr
        T = _int(s.decay_steps, "decay_steps")
        return _call("torch", "SequentialLR", "optimizer", f"schedulers=[{_call('torch', 'CosineAnnealingLR', 'optimizer', T_max=T, eta_min=s.floor)}, "
                     f"{_call('torch', 'ConstantLR', 'optimizer', factor=s.floor / s.lr, total_iters=2 ** 62)}]",
                     milestones=[T])
    raise _NoForm(f"{type(s).__name__} has no torch.optim.lr_scheduler counterpart")


def _torch_children(s, base):
    """SequentialLR's children (flat: PyTorch's SequentialLR holds no SequentialLR) and milestones: a cosine that
    holds its floor is CosineAnnealingLR then ConstantLR at floor / lr; a child with no scheduler of its own a
    LambdaLR with its closed form inline."""
    kids, milestones = [], []
    bounds = [0, *s.milestones, math.inf]
    for j, c in enumerate(s.schedules):
        if j:
            milestones.append(bounds[j])
        room = bounds[j + 1] - bounds[j]
        if isinstance(c, S.Cosine) and not c.periodic and not c.offset and float(c.decay_steps).is_integer() \
                and c.lr == base and 0 < base and c.floor <= base:
            T = int(c.decay_steps)
            kids.append(_call("torch", "CosineAnnealingLR", "optimizer", T_max=T, eta_min=c.floor))
            if room > T + 1:  # it rises again after T: hold the floor from there
                kids.append(_call("torch", "ConstantLR", "optimizer", factor=c.floor / base, total_iters=2 ** 62))
                milestones.append(bounds[j] + T)
            continue
        try:
            k = _torch(c, base)
        except _NoForm:
            k = None
        if k is None or "SequentialLR(" in k:
            if not base > 0:
                raise _NoForm("a LambdaLR child needs an optimizer lr > 0")
            k = _call("torch", "LambdaLR", "optimizer", f"lr_lambda={E.torch_lambda(c, base)}")
        kids.append(k)
    return kids, milestones


def _flat(s):
    """A Sequence with its Sequence children spliced in (their milestones shifted by where they start)."""
    kids, ms = [], []
    bounds = [0, *s.milestones, math.inf]
    for j, c in enumerate(s.schedules):
        if j:
            ms.append(bounds[j])
        if isinstance(c, S.Sequence):  # its children that start before the parent's next milestone
            c = _flat(c)
            starts = [bounds[j] + m for m in c.milestones]
            keep = 1 + sum(1 for x in starts if x < bounds[j + 1])
            kids += list(c.schedules[:keep])
            ms += starts[:keep - 1]
        else:
            kids.append(c)
    return S.Sequence(kids, ms)


def _natural_base(s) -> float:
    """The optimizer lr a framework scheduler of s is built on: the schedule's own peak rate."""
    if isinstance(s, S.Sequence):
        return max(_natural_base(c) for c in s.schedules)
    if isinstance(s, S.Linear):
        return max(s.start, s.end)
    if isinstance(s, (S.OneCycle,)):
        return s.max_lr
    if isinstance(s, S.PiecewiseConstant):
        return max(s.values)
    if isinstance(s, S.Cyclic):
        return s.base_lr
    return float(getattr(s, "lr", 0.0))


# ------------------------------------------------------------------------------------------ keras

def _keras(s) -> str:
    if isinstance(s, S.Constant):
        return _call("keras", "ExponentialDecay", initial_learning_rate=s.lr, decay_steps=1, decay_rate=1.0)
    if type(s) is S.Exponential:
        return _call("keras", "ExponentialDecay", initial_learning_rate=s.lr, decay_steps=s.decay_steps,
                     decay_rate=s.decay_rate, staircase=s.staircase)
    if isinstance(s, S.InverseTime):
        return _call("keras", "InverseTimeDecay", initial_learning_rate=s.lr, decay_steps=s.decay_steps,
                     decay_rate=s.decay_rate, staircase=s.staircase)
    if isinstance(s, S.Step):
        return _call("keras", "ExponentialDecay", initial_learning_rate=s.lr, decay_steps=s.step_size,
                     decay_rate=s.gamma, staircase=True)
    if isinstance(s, (S.PiecewiseConstant, S.MultiStep)):
        b, v = (s.boundaries, s.values) if isinstance(s, S.PiecewiseConstant) else \
            (s.milestones, [s.lr * s.gamma ** k for k in range(len(s.milestones) + 1)])
        # Keras switches one step after a boundary: b - 1
        return _call("keras", "PiecewiseConstantDecay", boundaries=[x - 1 for x in b], values=list(v))
    if isinstance(s, S.Linear):  # transformers's linear decay: a polynomial of power 1
        return _call("keras", "PolynomialDecay", initial_learning_rate=s.start, decay_steps=s.steps,
                     end_learning_rate=s.end, power=1.0)
    if isinstance(s, S.Polynomial):
        return _call("keras", "PolynomialDecay", initial_learning_rate=s.lr, decay_steps=s.decay_steps,
                     end_learning_rate=s.end, power=s.power, cycle=s.cycle)
    if isinstance(s, S.Cosine) and not s.periodic and not s.offset and s.lr > 0:
        return _call("keras", "CosineDecay", initial_learning_rate=s.lr, decay_steps=s.decay_steps,
                     alpha=s.floor / s.lr)
    if isinstance(s, S.CosineRestarts) and s.lr > 0:
        return _call("keras", "CosineDecayRestarts", initial_learning_rate=s.lr, first_decay_steps=s.period,
                     t_mul=s.t_mul, m_mul=s.m_mul, alpha=s.floor / s.lr)
    if isinstance(s, S.Sequence) and len(s.schedules) == 2:
        warm, cos = s.schedules
        if isinstance(warm, S.Linear) and warm.steps == s.milestones[0] and isinstance(cos, S.Cosine) \
                and not cos.periodic and not cos.offset and cos.lr == warm.end and cos.lr > 0:
            return _call("keras", "CosineDecay", initial_learning_rate=warm.start, decay_steps=cos.decay_steps,
                         alpha=cos.floor / cos.lr, warmup_target=cos.lr, warmup_steps=warm.steps)
    raise _NoForm(f"{type(s).__name__} has no keras.optimizers.schedules counterpart (Keras has no way to join "
                  "schedules but CosineDecay's warmup)")


# ------------------------------------------------------------------------------------------ hf / timm

def _warmup_and(s, start_zero=True):
    """(w, warmup start, rest) for Sequence([Linear(a, peak, w), rest], [w]), else (0, None, s)."""
    if isinstance(s, S.Sequence) and len(s.schedules) == 2 and isinstance(s.schedules[0], S.Linear) \
            and s.schedules[0].steps == s.milestones[0]:
        warm, rest = s.schedules
        if (warm.end == _natural_base(rest) or not start_zero) and (warm.start == 0 or not start_zero):
            return warm.steps, warm.start, rest
    return 0, None, s


_FORMULAS = {  # the lrcore.Lambda expressions compat.hf / compat.timm write, read back into the package's call
    ("hf", "get_inverse_sqrt_schedule"): re.compile(r"1\.0 / sqrt\(\(t \+ (?P<timescale>[-+.e\d]+)\) / [-+.e\d]+\)"),
    ("timm", "StepLRScheduler"): re.compile(r"(?P<lr>[-+.e\d]+) \* (?P<decay_rate>[-+.e\d]+) \*\* "
                                            r"\(\(t \+ (?P<off>[-+.e\d]+)\) // (?P<decay_t>[-+.e\d]+)\)"),
}


def _formula(s, fw):
    """The package call whose formula compat wrote as an lrcore.Lambda (matched, rebuilt, the same value)."""
    from . import compat
    w, init, rest = _warmup_and(s, start_zero=(fw == "hf"))
    if not isinstance(rest, S.Lambda) or not isinstance(rest.fn, str):
        return None
    for (f, name), pattern in _FORMULAS.items():
        m = pattern.fullmatch(rest.fn)
        if f != fw or not m:
            continue
        g = {k: float(v) for k, v in m.groupdict().items()}
        if name == "StepLRScheduler":
            lr, kw = g["lr"], dict(decay_t=g["decay_t"], decay_rate=g["decay_rate"])
            kw.update(dict(warmup_t=w, warmup_lr_init=init, warmup_prefix=not g["off"]) if w else {})
        else:
            lr, kw = rest.lr, dict(num_warmup_steps=w, timescale=g["timescale"])
        if getattr(compat, fw).__dict__[name](lr, **kw) == s:
            return _call(fw, name, "optimizer", **kw) + f"  # optimizer lr={_lit(lr)}"
    return None


def _hf(s) -> str:
    w, _, rest = _warmup_and(s)
    peak = _natural_base(rest)
    opt = f"  # optimizer lr={_lit(peak)}"
    if _formula(s, "hf"):
        return _formula(s, "hf")
    if isinstance(rest, S.Constant):
        if w:
            return _call("hf", "get_constant_schedule_with_warmup", "optimizer", num_warmup_steps=w) + opt
        return _call("hf", "get_constant_schedule", "optimizer") + opt
    if isinstance(rest, S.Linear) and rest.start == peak and rest.end == 0:
        return _call("hf", "get_linear_schedule_with_warmup", "optimizer", num_warmup_steps=w,
                     num_training_steps=w + rest.steps) + opt
    if isinstance(rest, S.Cosine) and float(rest.decay_steps).is_integer() and not rest.offset and peak > 0:
        T = w + int(rest.decay_steps)
        if rest.periodic and rest.floor == 0:
            return _call("hf", "get_cosine_schedule_with_warmup", "optimizer", num_warmup_steps=w,
                         num_training_steps=T) + opt
        if rest.periodic:
            return _call("hf", "get_cosine_with_min_lr_schedule_with_warmup", "optimizer", num_warmup_steps=w,
                         num_training_steps=T, min_lr_rate=rest.floor / peak) + opt
        if rest.floor == 0:  # one hard-restart cycle holds 0 from T on
            return _call("hf", "get_cosine_with_hard_restarts_schedule_with_warmup", "optimizer", num_warmup_steps=w,
                         num_training_steps=T) + opt
        if w == 0:
            return _call("hf", "get_wsd_schedule", "optimizer", num_warmup_steps=0, num_decay_steps=T,
                         num_stable_steps=0, decay_type="cosine", min_lr_ratio=rest.floor / peak) + opt
    if isinstance(rest, S.Polynomial) and not rest.cycle and rest.power > 0 and rest.end < peak \
            and float(rest.decay_steps).is_integer():
        return _call("hf", "get_polynomial_decay_schedule_with_warmup", "optimizer", num_warmup_steps=w,
                     num_training_steps=w + int(rest.decay_steps), lr_end=rest.end, power=rest.power) + opt
    if isinstance(s, S.WSD) and (s.floor == 0 or s.warmup_steps == 0):
        return _call("hf", "get_wsd_schedule", "optimizer", num_warmup_steps=s.warmup_steps,
                     num_decay_steps=s.decay_steps, num_training_steps=s.total_steps, warmup_type="linear",
                     decay_type=s.cooldown, min_lr_ratio=s.floor / s.lr if s.lr else 0.0) + f"  # optimizer lr={_lit(s.lr)}"
    raise _NoForm("transformers's schedules are a linear warmup from 0 followed by a constant, linear, cosine, "
                  "polynomial, inverse-sqrt or WSD decay to 0 (or a min lr)")


def _timm(s) -> str:
    w, init, rest = _warmup_and(s, start_zero=False)
    peak = _natural_base(rest)
    opt = f"  # optimizer lr={_lit(peak)}"
    if _formula(s, "timm"):
        return _formula(s, "timm")
    warm = dict(warmup_t=w, warmup_lr_init=init) if w else {}
    n = 1
    if isinstance(rest, S.Sequence) and len(rest.schedules) == 2 and isinstance(rest.schedules[0], S.CosineRestarts) \
            and isinstance(rest.schedules[1], S.Constant) and rest.schedules[1].lr == rest.schedules[0].floor:
        r = rest.schedules[0]
        n, rest = rest.milestones[0] / float(r.period), r
        if not n.is_integer():
            raise _NoForm("timm's cycle_limit counts whole cycles")
    if isinstance(rest, S.Cosine) and not rest.periodic and float(rest.decay_steps).is_integer() \
            and (rest.offset in (0, w)):
        return _call("timm", "CosineLRScheduler", "optimizer", t_initial=int(rest.decay_steps), lr_min=rest.floor,
                     **warm, **({"warmup_prefix": True} if w and not rest.offset else {})) + opt
    if isinstance(rest, S.CosineRestarts) and rest.t_mul == 1 and float(rest.period).is_integer() \
            and (rest.m_mul == 1 or rest.floor == 0):
        return _call("timm", "CosineLRScheduler", "optimizer", t_initial=int(rest.period), lr_min=rest.floor,
                     cycle_decay=rest.m_mul, cycle_limit=int(n) if n > 1 else 2 ** 62, **warm,
                     **({"warmup_prefix": True} if w else {})) + opt
    if isinstance(rest, S.Linear) and rest.start == peak:  # a polynomial of power 1
        rest = S.Polynomial(rest.start, rest.steps, end=rest.end, power=1.0)
    if w and isinstance(rest, S.Polynomial) and rest.lr != s.schedules[0].end and not rest.cycle \
            and float(rest.decay_steps).is_integer():  # timm's unshifted decay (warmup_prefix=False)
        from .compat import timm as TM
        warm_end = s.schedules[0].end
        cand = TM.PolyLRScheduler(warm_end, t_initial=int(rest.decay_steps) + w, power=rest.power, lr_min=rest.end,
                                  warmup_t=w, warmup_lr_init=init)
        if X.deviation(cand, s, X.horizon(s))[2] is None:
            return _call("timm", "PolyLRScheduler", "optimizer", t_initial=int(rest.decay_steps) + w, power=rest.power,
                         lr_min=rest.end, warmup_t=w, warmup_lr_init=init) + f"  # optimizer lr={_lit(warm_end)}"
    if w and s.schedules[0].end != peak:
        raise _NoForm("timm's warmup ends at the optimizer's lr, where its decay (shifted or not) starts")
    if isinstance(rest, S.Polynomial) and not rest.cycle and float(rest.decay_steps).is_integer():
        return _call("timm", "PolyLRScheduler", "optimizer", t_initial=int(rest.decay_steps), power=rest.power,
                     lr_min=rest.end, **warm, **({"warmup_prefix": True} if w else {})) + opt
    if isinstance(rest, S.PiecewiseConstant) and min(rest.values) > 0 and len(set(
            rest.values[k + 1] / rest.values[k] for k in range(len(rest.boundaries)))) == 1 and \
            len(rest.values) > 1:  # a geometric step decay: MultiStepLRScheduler
        as_steps = S.MultiStep(rest.values[0], rest.boundaries, rest.values[1] / rest.values[0])
        if X.deviation(as_steps, rest, X.horizon(rest))[2] is None and not w:
            rest, peak = as_steps, as_steps.lr
            opt = f"  # optimizer lr={_lit(peak)}"
    if type(rest) is S.Exponential and rest.staircase and float(rest.decay_steps).is_integer():
        rest = S.Step(rest.lr, int(rest.decay_steps), rest.decay_rate)
    if isinstance(rest, S.Step):
        return _call("timm", "StepLRScheduler", "optimizer", decay_t=rest.step_size, decay_rate=rest.gamma, **warm) + opt
    if isinstance(rest, S.MultiStep):
        return _call("timm", "MultiStepLRScheduler", "optimizer", decay_t=[m + 1 for m in rest.milestones],
                     decay_rate=rest.gamma, **warm) + opt
    if isinstance(rest, S.Constant):
        return _call("timm", "StepLRScheduler", "optimizer", decay_t=1, decay_rate=1.0, **warm) + opt
    if isinstance(s, S.WSD):
        return _call("timm", "WSDLRScheduler", "optimizer", t_initial=s.total_steps - s.warmup_steps,
                     decay_t=s.decay_steps, lr_min=s.floor, decay_fn=s.cooldown, warmup_t=s.warmup_steps,
                     warmup_lr_init=0.0) + f"  # optimizer lr={_lit(s.lr)}"
    raise _NoForm("timm's schedulers are a linear warmup followed by cosine, polynomial or tanh cycles or steps")


# ------------------------------------------------------------------------------------------ optax

def _optax(s) -> str:
    if isinstance(s, S.Constant):
        return _call("optax", "constant_schedule", s.lr)
    if isinstance(s, S.Linear):
        return _call("optax", "linear_schedule", init_value=s.start, end_value=s.end, transition_steps=s.steps)
    if isinstance(s, S.Polynomial) and not s.cycle:
        return _call("optax", "polynomial_schedule", init_value=s.lr, end_value=s.end, power=s.power,
                     transition_steps=s.decay_steps)
    if type(s) is S.Exponential and s.decay_rate > 0:
        return _call("optax", "exponential_decay", init_value=s.lr, transition_steps=s.decay_steps,
                     decay_rate=s.decay_rate, staircase=s.staircase)
    if isinstance(s, S.Step) and s.gamma > 0:
        return _call("optax", "exponential_decay", init_value=s.lr, transition_steps=s.step_size, decay_rate=s.gamma,
                     staircase=True)
    if isinstance(s, S.PiecewiseConstant):
        v = s.values
        if any(a == 0 and b != 0 for a, b in zip(v, v[1:])):
            raise _NoForm("optax's piecewise_constant_schedule multiplies init_value by scales: it cannot leave 0")
        scales = {b: (y / x if x else 1.0) for b, x, y in zip(s.boundaries, v, v[1:])}
        return _call("optax", "piecewise_constant_schedule", init_value=v[0], boundaries_and_scales=scales)
    if isinstance(s, S.MultiStep):
        scales = {}
        for m in s.milestones:
            scales[m] = scales.get(m, 1.0) * s.gamma
        return _call("optax", "piecewise_constant_schedule", init_value=s.lr, boundaries_and_scales=scales)
    if isinstance(s, S.Cosine) and not s.periodic and not s.offset and s.lr > 0:
        return _call("optax", "cosine_decay_schedule", init_value=s.lr, decay_steps=s.decay_steps, alpha=s.floor / s.lr)
    if isinstance(s, S.Sequence):
        w, init, rest = _warmup_and(s, start_zero=False)
        if w and isinstance(rest, S.Cosine) and not rest.periodic and not rest.offset and rest.lr > 0 \
                and s.schedules[0].end == rest.lr \
                and float(rest.decay_steps).is_integer():
            return _call("optax", "warmup_cosine_decay_schedule", init_value=init, peak_value=rest.lr, warmup_steps=w,
                         decay_steps=w + int(rest.decay_steps), end_value=rest.floor)
        kids = ", ".join(_optax(c) for c in s.schedules)
        return _call("optax", "join_schedules", f"schedules=[{kids}]", boundaries=list(s.milestones))
    raise _NoForm(f"{type(s).__name__} has no optax.schedules counterpart")


def _rising_cosine(s) -> bool:
    return (isinstance(s, S.Cosine) and s.periodic) or \
        (isinstance(s, S.Sequence) and any(_rising_cosine(c) for c in s.schedules))


def _code(s, framework):
    """(text, None) when s has an exact form in framework, else (None, why not)."""
    text = X.origin_code(s, framework, _code_or_raise)
    if text:
        return text, None
    try:
        if framework == "torch":
            base = _natural_base(s)
            return _torch(s, base) + f"  # optimizer lr={_lit(base)}", None
        if framework in ("keras", "timm", "optax") and _rising_cosine(s):
            raise _NoForm("PyTorch's CosineAnnealingLR and transformers's cosine rise again after their horizon "
                          f"(T_max, num_training_steps): {framework}'s cosines hold their floor or restart")
        return {"keras": _keras, "hf": _hf, "timm": _timm, "optax": _optax}[framework](s), None
    except (_NoForm, E.NoExpression) as e:
        why = str(e)
    if framework == "torch":  # no dedicated scheduler: LambdaLR, the closed form inline
        try:
            base = _natural_base(s) or 1.0  # (negative or zero values: on an optimizer of rate 1)
            return _call("torch", "LambdaLR", "optimizer", f"lr_lambda={E.torch_lambda(s, base)}") + \
                f"  # optimizer lr={_lit(base)}", None
        except E.NoExpression:
            pass
    return None, why


def _code_or_raise(s, framework):
    text, why = _code(s, framework)
    if text is None:
        raise ValueError(why)
    return text


def _obstacle(s, fw, why) -> str:
    """The quirk that stands in the way, in the packages' terms."""
    leaves = list(_leaves(s))
    if fw != "timm" and any(isinstance(c, S.Cosine) and c.offset for c in leaves):
        return ("its cosine starts part-way through its cycle (timm's CosineLRScheduler without warmup_prefix runs "
                f"its cycle from step 0, under the warmup; Keras's CosineDecay after a fractional warmup_steps): {fw}'s "
                "cosines start at their peak")
    if any(callable(getattr(c, f, None)) for c in leaves for f in ("fn", "scale_fn")):
        return ("it holds a Python callable (LambdaLR's lr_lambda, CyclicLR's scale_fn, ...), which has no text form: "
                "give it as an expression string in t, e.g. lr_lambda='0.95 ** t'")
    if any(type(c).__name__ == "Signed" for c in leaves):
        return f"its values go negative (optax's schedules are linear in their values); {fw}'s take a rate >= 0 ({why})"
    if any(isinstance(c, (S.Chain, S.Multiplicative)) for c in leaves):
        return "it is a recurrence (PyTorch's ChainedScheduler or MultiplicativeLR) with no closed form"
    if "rise again" in why:
        return why
    if fw == "keras" and isinstance(s, S.Sequence):
        return f"Keras joins no schedules but CosineDecay's linear warmup ({why})"
    return why


def _leaves(s):
    yield s
    for c in getattr(s, "schedules", ()) or ():
        yield from _leaves(c)


def _refusal(s, fw, steps, why) -> str:
    near, best = "", None
    n = X.horizon(s) if steps is None else steps
    for v in X.variants(s, None):
        text, _ = _code(v, fw)
        r = text and X.read_back(text, fw)
        if r is None:
            continue
        size, at, first = X.deviation(r, s, max(n, X.horizon(s)))
        if best is None or size < best[0]:
            best = (size, at, first, text)
    if best:
        size, at, first, text = best
        near = (f"; nearest native form: {text} (largest deviation {size:.3g} at step {at}" +
                (f"; exact on steps 0..{first - 1}: to_code(..., steps={first}), lrbench translate --steps {first}"
                 if first else "") + ")")
    alt = X.alternative(s, fw, _natural_base(s), steps)
    return (f"to_code: {s} cannot be written exactly in {fw}" + (f" on steps 0..{steps - 1}" if steps else "") +
            f": {_obstacle(s, fw, why)}{near}; closest exact alternative: {alt}")


def to_code(schedule, framework: str, steps: int | None = None) -> str:
    """The constructor call (text) reproducing ``schedule`` exactly in ``framework`` (module docstring); with
    ``steps=N``, exactly on steps 0..N-1 (a comment says so when it differs later)."""
    from .base import check_schedule
    check_schedule("to_code", "schedule", schedule)
    V.choice("to_code", "framework", framework, FRAMEWORKS)
    if steps is not None:
        steps = V.integer("to_code", "steps", steps, low=1)
    text, why = _code(schedule, framework)
    if text:
        return text
    if steps is not None:
        for v in X.variants(schedule, steps):
            text, _ = _code(v, framework)
            r = text and X.read_back(text, framework)
            if r is not None and X.deviation(r, schedule, steps)[2] is None:
                return text + f"  # exact on steps 0..{steps - 1} only (to_code steps={steps})"
    raise ValueError(_refusal(schedule, framework, steps, why))
