"""The bottom of lrcore: the ``Schedule`` base class and its text and dict forms.

Every other module imports this one, and it imports nothing of lrcore but ``_validate``, so imports
point one way (``tests/test_lrcore_layout.py`` checks the module graph has no cycle):

    _validate <- base <- program/schedules <- compat <- textform (parse, from_dict) <- lrcore
                     <- evaluate (kernels)

``str(s)`` (``to_text``) is constructor syntax listing the parameters that differ from their defaults;
``s.to_dict()`` (``to_dict``) is a JSON-safe nested dict with the class name under ``"type"``. Both are
written from the dataclass fields alone; reading them back (``lrcore.parse``, ``lrcore.from_dict``)
needs the constructors and lives in ``lrcore.textform``. ``s(t)`` evaluates the schedule's own NumPy
formula (``_numpy``), the numpy backend of ``lrcore.evaluate``, at one step.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import _validate as V


class Schedule:
    """Base class: a pure function of the step with a text form and a dict form."""

    def __str__(self) -> str:
        return to_text(self)

    __repr__ = __str__

    def to_dict(self) -> dict:
        return to_dict(self)

    def __call__(self, t: int) -> float:
        """The learning rate at one step (the numpy backend)."""
        arr, _, _ = V.steps(np.array([t]))
        return float(self._numpy(arr)[0])

    @property
    def momentum(self) -> "Schedule | None":
        """The momentum (or Adam beta1) schedule that goes with this one, if it cycles momentum."""
        return None

    def _set(self, **values):
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def _numpy(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _leaves(self) -> list:  # of lrcore.program.Leaf  # pragma: no cover - abstract
        raise NotImplementedError


def check_schedule(owner: str, name: str, value) -> Schedule:
    """``value`` if it is a schedule, else TypeError naming the owner and parameter."""
    if not isinstance(value, Schedule):
        raise TypeError(f"{owner}: {name} must be an lrcore schedule, got {value!r}")
    return value


def _fields(s: Schedule):
    """(name, value) of the parameters that differ from the defaults (required ones always)."""
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        if f.default is dataclasses.MISSING or v != f.default or type(v) is not type(f.default):
            if f.name == "scale_mode" and v == ("iterations" if s.mode == "exp_range" else "cycle"):
                continue
            if f.name == "step_size_down" and v == s.step_size_up:
                continue
            yield f.name, v


def _value_text(v) -> str:
    if isinstance(v, Schedule):
        return to_text(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_value_text(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    if callable(v):
        return f"<callable {getattr(v, '__qualname__', type(v).__name__)}>"
    return repr(v)


def to_text(s: Schedule) -> str:
    """Constructor syntax: ``Name(param=value, ...)`` with the non-default parameters (a schedule with a
    ``_call`` method, such as compat.optax's signed ones, writes the call that builds it)."""
    if hasattr(s, "_call"):
        name, arguments = s._call()
        return f"{name}(" + ", ".join(f"{k}={_value_text(v)}" for k, v in arguments) + ")"
    return f"{type(s).__name__}(" + ", ".join(f"{k}={_value_text(v)}" for k, v in _fields(s)) + ")"


def _value_dict(v, where: str):
    if isinstance(v, Schedule):
        return to_dict(v)
    if isinstance(v, (tuple, list)):
        return [_value_dict(x, where) for x in v]
    if callable(v):
        raise TypeError(f"{where}: a Python callable has no dict/text form; give fn as an expression "
                        "string in t (e.g. fn='0.95 ** t')")
    return v


def to_dict(s: Schedule) -> dict:
    """``{"type": Name, param: value, ...}`` with the non-default parameters, nested schedules as dicts."""
    if hasattr(s, "_call"):
        name, arguments = s._call()
        return {"type": name, **{k: _value_dict(v, name) for k, v in arguments}}
    return {"type": type(s).__name__, **{k: _value_dict(v, type(s).__name__) for k, v in _fields(s)}}
