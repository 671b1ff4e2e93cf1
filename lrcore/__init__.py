"""lrcore: learning-rate schedules as immutable values, evaluated for millions of steps at once.

>>> import lrcore
>>> s = lrcore.Warmup(lrcore.Cosine(lr=0.1, decay_steps=900), steps=100)
>>> lrcore.evaluate(s, 1000).shape
(1000,)
>>> lrcore.parse(str(s)) == s
True
"""
from .evaluate import evaluate, evaluate_many
from .reactive import EarlyStopping, Plateau
from .schedules import (SCHEDULES, WSD, Chain, Constant, Cosine, CosineRestarts, Cyclic, Exponential,
                        InverseSqrt, InverseTime, Lambda, Linear, Multiplicative, MultiStep, OneCycle,
                        PiecewiseConstant, Polynomial, Product, Schedule, Sequence, Step, Warmup)
from .textform import from_dict, parse
from .translate import from_code, to_code

__version__ = "0.1.0"
__all__ = ["evaluate", "evaluate_many", "parse", "from_dict", "to_code", "from_code", "Schedule", "Plateau", "EarlyStopping", *SCHEDULES]
