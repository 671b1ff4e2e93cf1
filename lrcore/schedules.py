"""lrcore's canonical schedules: immutable values mapping an integer step t >= 0 to a learning rate.

Each class states its formula in its docstring, validates its parameters on construction, and has
two evaluations that tests hold against each other: ``_numpy`` (the readable reference, a direct
vectorized transcription of the formula) and ``_leaves`` (its lowering into the scalar formulas of
``lrcore.kernels.formulas`` that the compiled backends run).

>>> from lrcore import Cosine, Warmup, evaluate
>>> evaluate(Warmup(Cosine(lr=0.1, decay_steps=8), steps=2), 5).round(4).tolist()
[0.0, 0.05, 0.1, 0.0962, 0.0854]
"""
from __future__ import annotations

# The schedules live in three modules, gathered here (``lrcore.schedules.X`` is ``lrcore.X``):
# ``closed_form`` (closed forms, sequences, products), ``user_functions`` (Lambda, Multiplicative) and
# ``chain`` (Chain, PyTorch's ChainedScheduler, with its rules).
from .base import Schedule, check_schedule  # noqa: F401
from .chain import MAX_CHAIN_STEP, Chain  # noqa: F401
from .closed_form import (WSD, Constant, Cosine, CosineRestarts, Cyclic, Exponential, InverseSqrt,  # noqa: F401
                          InverseTime, Linear, MultiStep, OneCycle, PiecewiseConstant, Polynomial, Product,
                          Sequence, Step, Warmup, _check_schedule, _int_if_integral)
from .user_functions import MAX_MULTIPLICATIVE_STEP, Lambda, Multiplicative  # noqa: F401


SCHEDULES: dict[str, type] = {cls.__name__: cls for cls in (
    Constant, Step, MultiStep, PiecewiseConstant, Exponential, InverseTime, Polynomial, Linear, Cosine,
    CosineRestarts, OneCycle, Cyclic, InverseSqrt, WSD, Warmup, Sequence, Product, Lambda, Multiplicative, Chain)}
