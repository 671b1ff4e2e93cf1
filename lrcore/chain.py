"""``Chain``: PyTorch's ChainedScheduler, a recurrence over every step, and the rules that give each
chained scheduler's recursive (chainable) update as lr <- a_t (lr - c_t) + b_t.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import _validate as V
from . import lambdas
from .base import Schedule, check_schedule
from .closed_form import (Constant, Cosine, CosineRestarts, Cyclic, Exponential, Linear, MultiStep, OneCycle,
                          PiecewiseConstant, Polynomial, Sequence, Step)
from .kernels import formulas as F
from .program import Leaf
from .user_functions import Lambda, Multiplicative, _callable

_dataclass = dataclasses.dataclass(frozen=True, repr=False)


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
