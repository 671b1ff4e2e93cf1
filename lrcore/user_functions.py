"""Schedules built on a user function of the step: ``Lambda`` (PyTorch LambdaLR) and ``Multiplicative``
(MultiplicativeLR), and the checks of such a function (also ``Cyclic``'s ``scale_fn``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from . import _validate as V
from . import lambdas
from .base import Schedule
from .kernels import formulas as F
from .program import Leaf

_dataclass = dataclasses.dataclass(frozen=True, repr=False)


def _check_fn(owner, fn):
    if isinstance(fn, str):
        lambdas.compile_expression(fn, owner)
    elif not callable(fn):
        raise TypeError(f"{owner}: fn must be a callable or an expression string in t, got {fn!r}")
    return fn


def _callable(fn) -> Callable:
    return lambdas.compile_expression(fn) if isinstance(fn, str) else fn


@_dataclass
class _UserFunction(Schedule):
    """A schedule built on a user function ``fn`` of the step; evaluated into a table per call."""
    fn: object
    lr: float = 1.0

    def __post_init__(self):
        _check_fn(type(self).__name__, self.fn)
        self._set(lr=V.rate(type(self).__name__, "lr", self.lr))

    def _values(self, u):  # pragma: no cover - abstract
        raise NotImplementedError

    def _numpy(self, t):
        return self._values(t)

    def _leaves(self):
        return [Leaf(F.TABLE, (), table=self._values)]


@_dataclass
class Lambda(_UserFunction):
    """lr * fn(t): PyTorch LambdaLR. ``fn`` is a Python callable (Numba-compiled when it can be) or an
    expression string in t such as ``"0.95 ** t"`` (only the string form has a text/dict form).

    >>> Lambda("0.5 ** t", lr=2.0)(3)
    0.25
    """

    def _values(self, u):
        return self.lr * lambdas.apply(_callable(self.fn), u, "Lambda")


MAX_MULTIPLICATIVE_STEP = 10 ** 8


@_dataclass
class Multiplicative(_UserFunction):
    """lr * prod_{k=1..t} fn(k): PyTorch MultiplicativeLR (a running product, so steps are bounded by
    ``MAX_MULTIPLICATIVE_STEP``).

    >>> Multiplicative("0.5", lr=1.0)(3)
    0.125
    """

    def _values(self, u):
        if u.size == 0:
            return np.zeros(0)
        top = int(u.max())
        if top > MAX_MULTIPLICATIVE_STEP:
            raise ValueError(f"Multiplicative: steps must be <= {MAX_MULTIPLICATIVE_STEP} (a running product "
                             f"over every step), got {top}")
        factors = lambdas.apply(_callable(self.fn), np.arange(1, top + 1), "Multiplicative")
        running = np.concatenate([[self.lr], self.lr * np.cumprod(factors)])
        return running[u]
