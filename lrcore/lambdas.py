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

FUNCTIONS = {name: getattr(math, name) for name in
             ("exp", "log", "log1p", "sqrt", "cos", "sin", "tanh", "floor", "ceil")}
FUNCTIONS.update(min=min, max=max, abs=abs)
CONSTANTS = {"pi": math.pi, "e": math.e}
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call, ast.Name,
            ast.Load, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
            ast.Pow, ast.USub, ast.UAdd, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)


@functools.lru_cache(maxsize=1024)
def compile_expression(text: str, owner: str = "Lambda") -> Callable[[int], float]:
    """The function ``t -> value`` that ``text`` describes, after checking every node."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"{owner}: fn is not a valid expression in t: {text!r} ({e.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"{owner}: fn may not contain {type(node).__name__} nodes: {text!r}")
        if isinstance(node, ast.Name) and node.id not in ("t", *FUNCTIONS, *CONSTANTS):
            raise ValueError(f"{owner}: unknown name {node.id!r} in fn {text!r}; "
                             f"use t, {', '.join(sorted([*FUNCTIONS, *CONSTANTS]))}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                                               and not node.keywords):
            raise ValueError(f"{owner}: only calls of {', '.join(sorted(FUNCTIONS))} are allowed in fn {text!r}")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool)
                                               or not isinstance(node.value, (int, float))):
            raise ValueError(f"{owner}: only numbers may appear as constants in fn {text!r}")
    tree = _FloatDivision().visit(tree)
    lam = ast.Expression(ast.Lambda(
        ast.arguments(posonlyargs=[], args=[ast.arg("t")], kwonlyargs=[], kw_defaults=[], defaults=[]),
        tree.body))
    ast.fix_missing_locations(lam)
    namespace = {"__builtins__": {}, **FUNCTIONS, **CONSTANTS, "_float_floor": np.floor}
    return eval(compile(lam, f"<lrcore fn {text!r}>", "eval"), namespace)  # checked above


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
    compiled = _numba_apply(fn)
    if compiled is not None:
        values = compiled(u)
    else:
        try:
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
