"""Which package constructor built a schedule: ``origin(s)`` is ``(framework, name, arguments)`` for a schedule
that a ``lrcore.compat`` constructor returned (the arguments as the caller gave them), else None.

``lrcore.to_code`` writes such a schedule back in its home framework as that very call (exact by construction:
the compat constructor reproduces the package); the origin is not part of the schedule's value (equality,
hash, text and dict forms ignore it).
"""
from __future__ import annotations

import functools
import inspect

from ..base import Schedule

ATTRIBUTE = "_lrcore_origin"


def origin(s):
    return getattr(s, ATTRIBUTE, None)


def _recorded(framework: str, fn):
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def constructor(*args, **kwargs):
        s = fn(*args, **kwargs)
        if isinstance(s, Schedule):
            arguments = dict(signature.bind(*args, **kwargs).arguments)
            object.__setattr__(s, ATTRIBUTE, (framework, fn.__name__, arguments))
        return s

    return constructor


def record(framework: str, namespace: dict) -> None:
    """Wrap every constructor in ``namespace["__all__"]`` so that its schedules carry their origin."""
    for name in namespace["__all__"]:
        namespace[name] = _recorded(framework, namespace[name])
