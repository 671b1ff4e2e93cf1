"""Text and dict forms of schedules.

``str(s)`` is constructor syntax (``Cosine(lr=0.1, decay_steps=1000)``) listing the parameters that
differ from their defaults; ``parse`` reads it back with ``ast``, never ``eval``: only calls of known
constructors (lrcore's names, or ``torch.X``, ``keras.X``, ``hf.X``, ``timm.X``, ``optax.X`` for the compat
constructors), numbers,
strings, booleans, None, lists/tuples, keywords and arithmetic on numbers and on the placeholder
names a caller passes (``parse("Cosine(lr=peak, decay_steps=total)", peak=0.1, total=1000)``).
``to_dict``/``from_dict`` give a JSON-safe nested dict with the class name under ``"type"``.
Writing both forms is ``lrcore.base`` (the ``Schedule`` base class); reading them back is here.
"""
from __future__ import annotations

import ast
import operator
from typing import Any

from . import _validate as V
from . import compat
from .base import Schedule, to_dict, to_text
from .schedules import SCHEDULES

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.Mod: operator.mod}


def from_dict(d: Any) -> Schedule:
    if not isinstance(d, dict) or "type" not in d:
        raise TypeError(f"from_dict: expected a dict with a 'type' key, got {d!r}")
    cls = _constructor(d["type"])
    kwargs = {k: _from_value(v) for k, v in d.items() if k != "type"}
    return _call(cls, d["type"], [], kwargs)


def _from_value(v):
    if isinstance(v, dict):
        return from_dict(v)
    if isinstance(v, list):
        return [_from_value(x) for x in v]
    return v


FRAMEWORKS = ("torch", "keras", "hf", "timm", "optax")


def _constructor(name: str):
    if name in SCHEDULES:
        return SCHEDULES[name]
    prefix, _, rest = name.partition(".")
    module = getattr(compat, prefix) if prefix in FRAMEWORKS else None
    if module is not None and rest in module.__all__:
        return getattr(module, rest)
    raise ValueError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}, "
                     + ", ".join(f"{f}.<{'|'.join(getattr(compat, f).__all__)}>" for f in FRAMEWORKS))


def _call(cls, name, args, kwargs):
    try:
        return cls(*args, **kwargs)
    except TypeError as e:
        if "argument" in str(e):
            raise TypeError(f"{name}: {e}") from None
        raise
    except (ArithmeticError, RecursionError) as e:  # a constructor's own arithmetic on extreme values
        why = "a value overflows float64" if isinstance(e, OverflowError) else f"{type(e).__name__}: {e}"
        raise ValueError(f"{name}: parameters out of range ({why})") from None


MAX_LENGTH = 20_000  # characters of schedule text
MAX_DEPTH = 100      # levels of nesting of its syntax tree


def parse(text: str, **names: float) -> Schedule:
    """The schedule that ``text`` describes (see the module docstring for what text may contain).

    Any text gives a schedule or a ValueError/TypeError naming the problem, quickly: the text is at
    most ``MAX_LENGTH`` characters and ``MAX_DEPTH`` levels deep; arithmetic on numbers is folded
    here (powers in float64, so ``9 ** 9 ** 9`` is an overflow error); complex results, overflows and
    zero divisors are errors; expression strings of ``Lambda``/``Multiplicative`` are checked and
    folded the same way (``lrcore.lambdas``) and compiled only when first evaluated."""
    if not isinstance(text, str):
        raise TypeError(f"parse: text must be a string, got {V._clip(repr(text))}")
    tree = V.expression("parse", "schedule text", text, max_length=MAX_LENGTH, max_depth=MAX_DEPTH,
                        invalid="not valid schedule text")
    text = V._clip(text)[1:-1] if len(text) > 200 else text  # error messages quote at most ~200 characters
    result = _eval(tree.body, names, text)
    if not isinstance(result, Schedule):
        raise ValueError(f"parse: {text!r} is a {type(result).__name__}, not a schedule")
    return result


def _eval(node, names, text):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(x, names, text) for x in node.elts]
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in ("inf", "nan"):
            return float(node.id)
        known = f"; placeholders given: {', '.join(sorted(names))}" if names else ""
        raise ValueError(f"parse: unknown name {node.id!r} in {text!r}{known}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _number(_eval(node.operand, names, text), text)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _number(_eval(node.left, names, text), text), _number(_eval(node.right, names, text), text)
        if isinstance(node.op, ast.Pow):  # in floats: 9 ** 9 ** 9 overflows at once instead of running for minutes
            a, b = float(a), float(b)
        try:
            v = _BINOPS[type(node.op)](a, b)
        except (ArithmeticError, ValueError) as e:
            why = "overflows float64" if isinstance(e, OverflowError) else str(e)
            raise ValueError(f"parse: arithmetic error at {ast.unparse(node)[:100]!r} ({why}) in {text!r}") from None
        if isinstance(v, complex):
            raise ValueError(f"parse: arithmetic error at {ast.unparse(node)[:100]!r} (a complex result) in {text!r}")
        return v
    if isinstance(node, ast.Call):
        name = _dotted(node.func, text)
        if any(k.arg is None for k in node.keywords):
            raise ValueError(f"parse: ** arguments are not allowed in {text!r}")
        args = [_eval(a, names, text) for a in node.args]
        kwargs = {k.arg: _eval(k.value, names, text) for k in node.keywords}
        return _call(_constructor(name), name, args, kwargs)
    raise ValueError(f"parse: {type(node).__name__} is not allowed in schedule text: {text!r}")


def _number(v, text):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"parse: arithmetic needs numbers, got {v!r} in {text!r}")
    return v


def _dotted(node, text) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    raise ValueError(f"parse: only calls of schedule names are allowed in {text!r}")
