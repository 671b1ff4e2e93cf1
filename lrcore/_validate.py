"""Parameter rules shared by every constructor.

Each helper takes the owner (the constructor's name), the parameter's name and its value, and
either returns the value in canonical form or raises ``ValueError``/``TypeError`` with a message
of the form ``"Owner: name must be <rule>, got <value>"``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np


def _fail(owner: str, name: str, rule: str, value: Any, exc=ValueError):
    raise exc(f"{owner}: {name} must be {rule}, got {value!r}")


def real(owner: str, name: str, value: Any, *, low: float | None = None, low_open: bool = False,
         high: float | None = None, high_open: bool = False) -> float:
    """A finite real number, optionally bounded (closed bounds unless ``*_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(owner, name, "a real number", value, TypeError)
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v):
        _fail(owner, name, "finite", value)
    if low is not None and (v < low or (low_open and v == low)):
        _fail(owner, name, f"{'>' if low_open else '>='} {low:g}", value)
    if high is not None and (v > high or (high_open and v == high)):
        _fail(owner, name, f"{'<' if high_open else '<='} {high:g}", value)
    return v


def rate(owner: str, name: str, value: Any) -> float:
    """A learning rate or momentum: finite and >= 0."""
    return real(owner, name, value, low=0.0)


MAX_STEP = 2 ** 62  # steps, periods and milestones stay below this (int64 arithmetic never overflows)


def integer(owner: str, name: str, value: Any, *, low: int = 0) -> int:
    """An integer with low <= value < 2**62 (integral floats are accepted, bools are not)."""
    if isinstance(value, bool):
        _fail(owner, name, "an integer", value, TypeError)
    if isinstance(value, numbers.Integral):
        v = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        v = int(value)
    else:
        _fail(owner, name, "an integer" if not isinstance(value, numbers.Real) else
              ("a positive integer" if low == 1 else f"an integer >= {low}"), value,
              TypeError if not isinstance(value, numbers.Real) else ValueError)
    if v < low:
        _fail(owner, name, "a positive integer" if low == 1 else f"an integer >= {low}", value)
    if v >= MAX_STEP:
        _fail(owner, name, "< 2**62", value)
    return v


def duration(owner: str, name: str, value: Any) -> float:
    """A length in steps that may be fractional (decay_steps, period, ...): 0 < value < 2**62."""
    v = real(owner, name, value, low=0.0, low_open=True)
    if v >= MAX_STEP:
        _fail(owner, name, "< 2**62", value)
    return v


def flag(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(owner, name, "True or False", value, TypeError)
    return value


def choice(owner: str, name: str, value: Any, options: Iterable[str]) -> str:
    options = tuple(options)
    if value not in options:
        _fail(owner, name, "one of " + ", ".join(repr(o) for o in options), value)
    return value


def sequence(owner: str, name: str, value: Any) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        _fail(owner, name, "a list", value, TypeError)
    return tuple(value)


def sorted_integers(owner: str, name: str, value: Any, *, strict: bool = False, low: int = 0) -> tuple:
    """A list of integers >= low in non-decreasing (or increasing, if ``strict``) order."""
    items = tuple(integer(owner, f"{name}[{i}]", v, low=low) for i, v in enumerate(sequence(owner, name, value)))
    for a, b in zip(items, items[1:]):
        if b < a or (strict and b == a):
            _fail(owner, name, "sorted in increasing order" if strict else "sorted (non-decreasing)", list(value))
    return items


def length(owner: str, name: str, value: tuple, expected: int, why: str) -> None:
    if len(value) != expected:
        raise ValueError(f"{owner}: {name} must have {expected} entries ({why}), got {len(value)}")


def steps(steps) -> tuple[np.ndarray | None, int, int]:
    """(array or None, t0, n): None means the contiguous steps t0 .. t0 + n - 1."""
    if isinstance(steps, bool):
        raise TypeError(f"steps must be a count or a 1-D array of integers, got {steps!r}")
    if isinstance(steps, numbers.Integral):
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if steps > MAX_STEP:
            raise ValueError(f"steps must be <= 2**62, got {steps}")
        return None, 0, int(steps)
    if isinstance(steps, range) and steps.step == 1:
        if steps.start < 0:
            raise ValueError(f"steps must be >= 0, got a range starting at {steps.start}")
        if len(steps) and steps.stop > MAX_STEP:
            raise ValueError(f"steps must be < 2**62, got a range up to {steps.stop - 1}")
        return None, steps.start, max(0, len(steps))
    arr = np.asarray(steps)
    if arr.ndim != 1:
        raise ValueError(f"steps must be a 1-D array, got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        if arr.size:
            raise TypeError(f"steps must be integers, got an array of {arr.dtype}")
        arr = arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.floor(arr)))][0]
            raise ValueError(f"steps must be integers, got {bad!r}")
    if arr.size and arr.max() >= MAX_STEP:
        raise ValueError(f"steps must be < 2**62, got {arr.max()!r}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"steps must be >= 0, got {arr.min()}")
    return arr, 0, arr.size


def expression(owner: str, what: str, text: str, *, max_length: int, max_depth: int, invalid: str = ""):
    """``ast.parse(text, mode="eval")`` of text from a config or the CLI, bounded: at most
    ``max_length`` characters and ``max_depth`` levels of nesting (``invalid``: the syntax error's words) (checked without recursion), so that
    hostile text gives a ValueError naming the limit, never a RecursionError, MemoryError or a long parse."""
    import ast
    if len(text) > max_length:
        raise ValueError(f"{owner}: {what} must be at most {max_length} characters, got {len(text)}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"{owner}: {invalid or what + ' is not valid'}: {_clip(text)} ({e.msg})") from None
    except (RecursionError, MemoryError, ValueError, OverflowError):
        raise ValueError(f"{owner}: {what} is nested too deeply (at most {max_depth} levels): {_clip(text)}") from None
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"{owner}: {what} is nested too deeply (at most {max_depth} levels): {_clip(text)}")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree


def _clip(text: str, n: int = 200) -> str:
    """repr of text, shortened to about n characters for error messages."""
    return repr(text) if len(text) <= n else repr(text[:n]) + f"... ({len(text)} characters)"
