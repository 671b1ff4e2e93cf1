"""A schedule's closed form written inline as code in the step, for ``lrcore.to_code``'s exact fallbacks.

``expression(s, dialect)`` is Python text of one expression in ``t`` (a float step) that computes ``s`` at
``t`` with no lrcore import: ``"math"`` (plain Python floats: a torch ``LambdaLR``'s ``lr_lambda``), ``"jnp"``
(jax.numpy, elementwise: an optax schedule) or ``"keras"`` (``keras.ops`` on a float64 tensor: a Keras
``LearningRateSchedule``). Each canonical schedule is written with lrcore's own arithmetic (the sin**2 form
of a cosine, the same products), so the values agree to float64 rounding; a schedule with no closed form
(a recurrence such as Chain or Multiplicative, a Python callable) raises ``NoExpression``.
"""
from __future__ import annotations

import ast
import math

from . import schedules as S


class NoExpression(Exception):
    """The schedule has no inline closed form in that dialect."""


class _Dialect:
    def __init__(self, prefix, minimum, maximum, lazy):
        self.prefix, self.minimum, self.maximum, self.lazy = prefix, minimum, maximum, lazy

    def f(self, name, *args):
        prefix = "" if self.lazy and name == "abs" else self.prefix
        return f"{prefix}{name}(" + ", ".join(args) + ")"

    def min(self, a, b):
        return f"{self.minimum}({a}, {b})"

    def max(self, a, b):
        return f"{self.maximum}({a}, {b})"

    def where(self, cond, a, b):
        return f"({a} if {cond} else {b})" if self.lazy else f"{self.prefix}where({cond}, {a}, {b})"


DIALECTS = {"math": _Dialect("math.", "min", "max", True),
            "jnp": _Dialect("jnp.", "jnp.minimum", "jnp.maximum", False),
            "keras": _Dialect("keras.ops.", "keras.ops.minimum", "keras.ops.maximum", False),
            "lrcore": _Dialect("", "min", "max", True)}  # an lrcore.Lambda expression string


def _n(x) -> str:
    return repr(float(x))


def _sin2(d, r):
    """sin(pi/2 r)**2 (lrcore's cosine, no cancellation near the floor)."""
    return f"{d.f('sin', f'{_n(math.pi / 2)} * {r}')} ** 2"


def _cosine(s, d, x):
    T = _n(s.decay_steps)
    if s.periodic:
        r = f"{d.f('abs', f'{T} - ({x}) % {_n(2 * s.decay_steps)}')} / {T}"
    else:
        u = f"({x} + {_n(s.offset)})" if s.offset else x
        r = f"({T} - {d.min(u, T)}) / {T}"
    if s.lr >= s.floor:
        return f"({_n(s.floor)} + {_n(s.lr - s.floor)} * {_sin2(d, r)})"
    return f"({_n(s.lr)} + {_n(s.floor - s.lr)} * {_sin2(d, f'(1.0 - {r})')})"


def _pieces(d, x, starts, values):
    """values[k] from starts[k-1] on (a step function), as nested conditionals."""
    out = _n(values[-1])
    for b, v in reversed(list(zip(starts, values))):
        out = d.where(f"{x} < {_n(b)}", _n(v), out)
    return out


def _lambda(s, d, x):
    if not isinstance(s.fn, str):
        raise NoExpression("a Python callable has no text form")
    from .lambdas import CONSTANTS

    class Rewrite(ast.NodeTransformer):
        def visit_Name(self, node):
            if node.id == "t":
                return ast.parse(x, mode="eval").body
            if node.id in CONSTANTS:
                return ast.Constant(getattr(math, node.id))
            return node

        def visit_Call(self, node):
            self.generic_visit(node)
            name = node.func.id
            args = [ast.unparse(a) for a in node.args]
            if name in ("min", "max") and len(args) == 2:
                text = getattr(d, name)(*args)
            elif name in ("min", "max"):
                raise NoExpression(f"{name} of {len(args)} arguments")
            else:
                text = d.f(name, *args)
            return ast.parse(text, mode="eval").body

        def visit_IfExp(self, node):
            self.generic_visit(node)
            return ast.parse(d.where(*(f"({ast.unparse(n)})" for n in (node.test, node.body, node.orelse))),
                             mode="eval").body

    body = Rewrite().visit(ast.parse(s.fn, mode="eval").body)
    if not d.lazy and any(isinstance(n, (ast.BoolOp, ast.Compare)) and
                          (isinstance(n, ast.BoolOp) or len(n.ops) > 1) for n in ast.walk(body)):
        raise NoExpression("and/or and chained comparisons are not elementwise")
    return f"{_n(s.lr)} * ({ast.unparse(body)})"


def _restarts(s, d, x):
    if s.t_mul != 1.0 or not float(s.period).is_integer():
        raise NoExpression("restarts with t_mul != 1")
    P = _n(s.period)
    i = d.f("floor", f"{x} / {P}")
    r = f"({P} - ({x} - {P} * {i})) / {P}"
    if s.lr < s.floor and s.m_mul != 1.0:
        raise NoExpression("rising restarts")
    w = f"{_n(s.m_mul)} ** {i}"
    if s.lr >= s.floor:
        return f"({_n(s.floor)} + {_n(s.lr - s.floor)} * {w} * {_sin2(d, r)})"
    return f"({_n(s.lr)} + {_n(s.floor - s.lr)} * {_sin2(d, f'(1.0 - {r})')})"


def _wsd(s, d, x):
    w, dd, T = s.warmup_steps, s.decay_steps, s.total_steps
    D = _n(dd)
    u = d.min(d.max(f"{x} - {_n(T - dd)}", "0.0"), D)
    q, r = f"({u} / {D})", f"(({D} - {u}) / {D})"
    if s.cooldown == "linear":
        cool = f"({_n(s.lr)} * {r} + {_n(s.floor)} * {q})"
    elif s.cooldown == "cosine":
        cool = f"({_n(s.floor)} + {_n(s.lr - s.floor)} * {_sin2(d, r)})"
    else:
        cool = f"({_n(s.floor)} + {_n(s.lr - s.floor)} * ({r} / (1.0 + {d.f('sqrt', q)})))"
    W = _n(max(w, 1))
    warm = f"({_n(s.lr)} * ({d.min(x, W)} / {W}))"
    return d.where(f"{x} < {_n(w)}", warm, d.where(f"{x} < {_n(T - dd)}", _n(s.lr), cool))


def expression(s, dialect: str, x: str = "t") -> str:
    """``s`` at step ``x`` (a float expression) as code in ``dialect`` (module docstring)."""
    d = DIALECTS[dialect]
    if isinstance(s, S.Constant):
        return _n(s.lr)
    if isinstance(s, S.Step):
        return f"{_n(s.lr)} * {_n(s.gamma)} ** {d.f('floor', f'{x} / {_n(s.step_size)}')}"
    if isinstance(s, S.PiecewiseConstant):
        return _pieces(d, x, s.boundaries, s.values)
    if isinstance(s, S.MultiStep):
        return _pieces(d, x, s.milestones, [s.lr * s.gamma ** k for k in range(len(s.milestones) + 1)])
    if type(s) in (S.Exponential, S.InverseTime):
        e = d.f("floor", f"{x} / {_n(s.decay_steps)}") if s.staircase else f"({x} / {_n(s.decay_steps)})"
        if type(s) is S.Exponential:
            return f"{_n(s.lr)} * {_n(s.decay_rate)} ** {e}"
        return f"{_n(s.lr)} / (1.0 + {_n(s.decay_rate)} * {e})"
    if isinstance(s, S.Polynomial):
        D = _n(s.decay_steps)
        if s.cycle:
            big = f"{D} * {d.max('1.0', d.f('ceil', f'{x} / {D}'))}"
            base = d.max(f"1.0 - {x} / ({big})", "0.0")
        else:
            base = d.max(f"1.0 - {d.min(x, D)} / {D}", "0.0")
        return f"({_n(s.lr - s.end)} * {base} ** {_n(s.power)} + {_n(s.end)})"
    if isinstance(s, S.Linear):
        n = _n(s.steps)
        u = d.min(x, n)
        return f"({_n(s.start)} * (({n} - {u}) / {n}) + {_n(s.end)} * ({u} / {n}))"
    if isinstance(s, S.Cosine):
        return _cosine(s, d, x)
    if isinstance(s, S.CosineRestarts):
        return _restarts(s, d, x)
    if isinstance(s, S.Lambda):
        return _lambda(s, d, x)
    if isinstance(s, S.Product):
        return " * ".join([_n(s.scale)] + [f"({expression(c, dialect, x)})" for c in s.schedules])
    if isinstance(s, S.InverseSqrt):
        u, w = f"({x} + 1.0)", _n(s.warmup_steps)
        if not s.warmup_steps:
            return f"{_n(s.lr)} / {d.f('sqrt', u)}"
        return f"{_n(s.lr)} * {d.min(f'{u} / {w}', d.f('sqrt', f'{w} / {u}'))}"
    if isinstance(s, S.WSD):
        return _wsd(s, d, x)
    if type(s).__name__ == "Signed":  # compat.optax's schedules of negative values: plus - minus
        return f"(({expression(s.plus, dialect, x)}) - ({expression(s.minus, dialect, x)}))"
    if isinstance(s, S.Sequence):
        bounds = [0, *s.milestones]
        out = None
        for j in reversed(range(len(s.schedules))):
            b = bounds[j]
            here = expression(s.schedules[j], dialect, f"({x} - {_n(b)})" if b else x)
            out = here if out is None else d.where(f"{x} < {_n(bounds[j + 1])}", here, out)
        return out
    raise NoExpression(f"{type(s).__name__} has no inline closed form")


def torch_lambda(s, base: float) -> str:
    """``lambda t: ...`` for a torch LambdaLR on an optimizer of rate ``base`` (> 0)."""
    return f"lambda t: ({expression(s, 'math')}) / {_n(base)}"


def optax_lambda(s) -> str:
    """An optax schedule (a callable of the step count) computing ``s`` in jax.numpy."""
    return f"lambda count: (lambda t: {expression(s, 'jnp')})(jnp.asarray(count, jnp.float64))"


def keras_schedule(s) -> str:
    """A one-expression Keras LearningRateSchedule computing ``s`` in float64 keras.ops."""
    body = expression(s, "keras")
    return ('type("Schedule", (keras.optimizers.schedules.LearningRateSchedule,), {"__call__": lambda self, step: '
            f'(lambda t: keras.ops.cast({body}, "float32"))(keras.ops.cast(step, "float64"))}})()')


def lambda_text(fn) -> str:
    """An lrcore expression string as Python code in t (math.* for its functions)."""
    if not isinstance(fn, str):
        raise NoExpression("a Python callable has no text form")
    from .lambdas import CONSTANTS, FUNCTIONS
    tree = ast.parse(fn, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and (node.id in CONSTANTS or node.id in FUNCTIONS) \
                and node.id not in ("min", "max", "abs"):
            node.id = f"math.{node.id}"
    return ast.unparse(tree)
