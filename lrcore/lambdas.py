"""User functions of the step: safe expression strings and Python callables, evaluated on arrays.

An expression string uses the variable ``t`` (an integer step), numbers, ``+ - * / // % **``,
comparisons, ``a if c else b`` and the functions in ``FUNCTIONS``. It is checked node by node with
``ast`` before it is compiled, so text from a config never runs arbitrary code. A callable (or a
checked expression) is compiled with Numba when it can be and applied to a whole array in one call;
otherwise it is applied with NumPy (vectorized if it accepts arrays, element by element if not).
"""
from __future__ import annotations

import ast
import functools
import math
import warnings
from typing import Callable

import numpy as np

from . import _validate as V

FUNCTIONS = {name: getattr(math, name) for name in
             ("exp", "log", "log1p", "sqrt", "cos", "sin", "tanh", "floor", "ceil")}
FUNCTIONS.update(min=min, max=max, abs=abs)
CONSTANTS = {"pi": math.pi, "e": math.e}
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call, ast.Name,
            ast.Load, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
            ast.Pow, ast.USub, ast.UAdd, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)


MAX_LENGTH = 4000  # characters of an expression string
MAX_DEPTH = 60     # levels of nesting of its syntax tree
_ARITY = {**dict.fromkeys(("exp", "log", "log1p", "sqrt", "cos", "sin", "tanh", "floor", "ceil", "abs"), (1, 1)),
          "min": (2, 64), "max": (2, 64)}


@functools.lru_cache(maxsize=1024)
def compile_expression(text: str, owner: str = "Lambda") -> Callable[[int], float]:
    """The function ``t -> value`` that ``text`` describes, after checking every node.

    Bounded before anything is compiled: at most ``MAX_LENGTH`` characters and ``MAX_DEPTH`` levels,
    only the allowed nodes, names and calls (with their argument counts); every sub-expression free of
    ``t`` is then folded to a float constant in float64 arithmetic (so ``9 ** 9 ** 9`` is an overflow
    error here, not minutes of integer arithmetic in a compiler), and ``t`` is read as a float."""
    if not isinstance(text, str):
        raise TypeError(f"{owner}: fn must be an expression string in t, got {text!r}")
    tree = V.expression(owner, "fn", text, max_length=MAX_LENGTH, max_depth=MAX_DEPTH,
                        invalid="fn is not a valid expression in t")
    callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"{owner}: fn may not contain {type(node).__name__} nodes: {V._clip(text)}")
        if isinstance(node, ast.Name) and node.id not in ("t", *FUNCTIONS, *CONSTANTS):
            raise ValueError(f"{owner}: unknown name {node.id!r} in fn {V._clip(text)}; "
                             f"use t, {', '.join(sorted([*FUNCTIONS, *CONSTANTS]))}")
        if isinstance(node, ast.Name) and node.id in FUNCTIONS and id(node) not in callees:
            raise ValueError(f"{owner}: {node.id} is a function; call it, in fn {V._clip(text)}")
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords):
                raise ValueError(f"{owner}: only calls of {', '.join(sorted(FUNCTIONS))} are allowed in fn "
                                 f"{V._clip(text)}")
            lo, hi = _ARITY[node.func.id]
            if not lo <= len(node.args) <= hi:
                want = f"{lo}" if lo == hi else f"{lo} to {hi}"
                raise ValueError(f"{owner}: {node.func.id} takes {want} arguments, got {len(node.args)} in fn "
                                 f"{V._clip(text)}")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool)
                                               or not isinstance(node.value, (int, float))):
            raise ValueError(f"{owner}: only numbers may appear as constants in fn {V._clip(text)}")
    body = _Folder(owner, text).fold(tree.body)
    body = _FloatDivision().visit(_FloatStep().visit(body))
    lam = ast.Expression(ast.Lambda(
        ast.arguments(posonlyargs=[], args=[ast.arg("t")], kwonlyargs=[], kw_defaults=[], defaults=[]), body))
    ast.fix_missing_locations(lam)
    namespace = {"__builtins__": {}, **FUNCTIONS, **CONSTANTS, "_float_floor": np.floor, "_float_step": np.float64}
    return eval(compile(lam, "<lrcore fn>", "eval"), namespace)  # checked and folded above


class _Folder:
    """Folds every sub-expression without ``t`` to a float Constant, in float64 (the arithmetic the
    compiled function does); an overflow, a zero divisor, a complex power or a math domain error
    there is a ValueError naming the sub-expression."""

    _BIN = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
            ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b,
            ast.FloorDiv: lambda a, b: math.floor(a / b), ast.Mod: lambda a, b: a - b * math.floor(a / b)}
    _CMP = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
            ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}

    def __init__(self, owner, text):
        self.owner, self.text = owner, text

    def _value(self, node, compute) -> ast.Constant:
        try:
            v = compute()
            if isinstance(v, complex):
                raise ValueError("a complex result")
            v = float(v)
        except (ArithmeticError, ValueError, TypeError) as e:
            why = "overflows float64" if isinstance(e, OverflowError) else f"{type(e).__name__}: {e}"
            raise ValueError(f"{self.owner}: fn cannot be computed at {ast.unparse(node)[:100]!r} "
                             f"({why}) in {V._clip(self.text)}") from None
        return ast.Constant(v)

    def fold(self, node):
        if isinstance(node, ast.Constant):
            return self._value(node, lambda: float(node.value))
        if isinstance(node, ast.Name):
            return self._value(node, lambda: CONSTANTS[node.id]) if node.id in CONSTANTS else node
        if isinstance(node, ast.UnaryOp):
            x = self.fold(node.operand)
            if isinstance(x, ast.Constant):
                return self._value(node, lambda: -x.value if isinstance(node.op, ast.USub) else x.value)
            return ast.UnaryOp(node.op, x)
        if isinstance(node, ast.BinOp):
            a, b = self.fold(node.left), self.fold(node.right)
            if isinstance(a, ast.Constant) and isinstance(b, ast.Constant):
                return self._value(node, lambda: self._BIN[type(node.op)](a.value, b.value))
            return ast.BinOp(a, node.op, b)
        if isinstance(node, ast.Compare):
            items = [self.fold(node.left), *(self.fold(c) for c in node.comparators)]
            if all(isinstance(x, ast.Constant) for x in items):
                return self._value(node, lambda: all(self._CMP[type(op)](x.value, y.value)
                                                     for op, x, y in zip(node.ops, items, items[1:])))
            return ast.Compare(items[0], node.ops, items[1:])
        if isinstance(node, ast.IfExp):
            test = self.fold(node.test)
            if isinstance(test, ast.Constant):
                return self.fold(node.body if test.value else node.orelse)
            return ast.IfExp(test, self.fold(node.body), self.fold(node.orelse))
        if isinstance(node, ast.Call):
            args = [self.fold(a) for a in node.args]
            if all(isinstance(a, ast.Constant) for a in args):
                return self._value(node, lambda: FUNCTIONS[node.func.id](*(a.value for a in args)))
            return ast.Call(node.func, args, [])
        raise ValueError(f"{self.owner}: fn may not contain {type(node).__name__} nodes: {V._clip(self.text)}")


class _FloatStep(ast.NodeTransformer):
    """t -> float64(t): the step is read as a float, so no path computes with unbounded Python integers."""

    def visit_Name(self, node):
        if node.id == "t":
            return ast.Call(ast.Name("_float_step", ast.Load()), [node], [])
        return node


class _FloatDivision(ast.NodeTransformer):
    """a // b -> floor(a / b) and a % b -> a - b * floor(a / b) in floats (np.floor): a zero divisor gives inf or NaN
    (reported as an error at that step) on every path, instead of 0 in compiled code."""

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)):
            floor = ast.Call(ast.Name("_float_floor", ast.Load()), [ast.BinOp(node.left, ast.Div(), node.right)], [])
            if isinstance(node.op, ast.FloorDiv):
                return floor
            return ast.BinOp(node.left, ast.Sub(), ast.BinOp(node.right, ast.Mult(), floor))
        return node


_COMPILED: dict = {}
PYTHON_MAX_SIZE = 64  # ``apply`` calls fn in Python up to this many steps (no Numba compile for one value)


def _numba_apply(fn):
    """A parallel Numba loop applying ``fn`` to an int64 array, or None if Numba cannot compile fn."""
    key = id(fn)
    if key in _COMPILED and _COMPILED[key][0] is fn:
        return _COMPILED[key][1]
    try:
        import numba

        from . import _threads
        _threads.ensure_started()  # keeps the caller's OpenMP thread count (see lrcore._threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jf = numba.njit(error_model="numpy")(fn)  # 1/0 -> inf, caught below, not an exception

            @numba.njit(parallel=True, error_model="numpy")
            def run(u):
                out = np.empty(u.shape[0])
                for i in numba.prange(u.shape[0]):
                    out[i] = jf(u[i])
                return out
            run(np.zeros(1, np.int64))  # compile now; fails here if fn is not compilable
    except Exception:
        run = None
    _COMPILED[key] = (fn, run)
    return run


def apply(fn: Callable, u: np.ndarray, owner: str = "Lambda") -> np.ndarray:
    """fn at every step of the int64 array ``u``, as float64; NaN, inf or negative values are errors."""
    u = np.asarray(u, np.int64)
    if u.size == 0:
        return np.zeros(0)
    compiled = _numba_apply(fn) if u.size > PYTHON_MAX_SIZE else None
    if compiled is not None:
        values = compiled(u)
    else:
        try:
            with np.errstate(all="ignore"):  # inf and NaN are reported below, by step
                values = np.asarray(fn(u), dtype=np.float64)
            if values.shape != u.shape:
                raise ValueError
        except Exception:
            values = np.empty(u.shape)
            for i, x in enumerate(u.tolist()):
                try:
                    values[i] = float(fn(x))
                except Exception as e:
                    raise ValueError(f"{owner}: fn raised {type(e).__name__} at step {x}: {e}") from None
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{owner}: fn returned {float(values[i])!r} at step {int(u[i])}; "
                         "a learning-rate factor must be finite and >= 0")
    return values
