"""``lrcore.to_code``'s search beyond the direct matchers of ``lrcore.translate``.

* ``origin_code``: a schedule a ``lrcore.compat`` constructor built is written back in its home framework as
  that very call (checked by reading it back with ``from_code``: the same schedule value).
* ``variants``: schedules equal to ``s`` on some first steps (a rising cosine as one that holds its floor, a
  sequence cut at N, a cosine started mid-cycle as one started at its peak): ``to_code(..., steps=N)`` writes a
  variant whose text, read back, agrees with ``s`` on steps 0..N-1; a refusal names the nearest one with its
  largest deviation.
* ``alternative``: an exact stand-in that runs as printed (the closed form written inline, lrcore._expr).
"""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from . import _expr as E
from . import schedules as S
from .codeform import OPTIMIZER_FRAMEWORKS, from_code
from .compat._origin import origin

PREFIX = {"torch": "torch.optim.lr_scheduler.", "keras": "keras.optimizers.schedules.", "hf": "transformers.",
          "timm": "timm.scheduler.", "optax": "optax."}
RTOL = 1e-12


def _lit(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_lit(x)}" for k, x in v.items()) + "}"
    return repr(v)


def optimizer_lr(text: str) -> float | None:
    m = re.search(r"# optimizer lr=(\S+)", text)
    return float(m.group(1)) if m else None


def read_back(text: str, fw: str):
    """The schedule lrcore reads from the text to_code wrote (None if it cannot be read)."""
    try:
        return from_code(text.split("  #")[0], fw, lr=optimizer_lr(text))
    except (ValueError, TypeError, ArithmeticError):
        return None


# ------------------------------------------------------------------------------------------ origin

def _argument(v, fw, code_of):
    from .base import Schedule
    if isinstance(v, Schedule):
        return code_of(v, fw).split("  #")[0]
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_argument(x, fw, code_of) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_argument(x, fw, code_of)}" for k, x in v.items()) + "}"
    if callable(v):
        raise ValueError("a Python callable has no text form")
    return _lit(v)


def origin_code(s, fw: str, code_of) -> str | None:
    """The compat call that built ``s`` (its origin), as the package's text, if it reads back as ``s``."""
    o = origin(s)
    if not o or o[0] != fw:
        return None
    _, name, args = o
    args = dict(args)
    lr = args.pop("lr", None)
    parts = []
    if name == "get_scheduler":
        parts.append(_lit(args.pop("name")))
    if fw in OPTIMIZER_FRAMEWORKS and name != "ChainedScheduler":  # ChainedScheduler(schedulers, optimizer=None)
        parts.append("optimizer")
    try:
        for k, v in args.items():
            if k == "last_epoch" and v == -1:
                continue
            if k == "boundaries_and_scales" and isinstance(v, (list, tuple)):  # optax takes a dict
                v = {b: x for b, x in v}
            if k == "lr_lambda" and isinstance(v, str):
                parts.append(f"{k}=lambda t: {_lambda_text(v)}")
                continue
            parts.append(f"{k}={_argument(v, fw, code_of)}")
    except ValueError:
        return None
    if name == "ChainedScheduler":
        parts.append("optimizer=optimizer")
    text = f"{PREFIX[fw]}{name}(" + ", ".join(parts) + ")"
    if fw in OPTIMIZER_FRAMEWORKS:
        base = lr if lr is not None else _first_lr(s)
        text += f"  # optimizer lr={_lit(float(base))}"
    return text if read_back(text, fw) == s else None


def _lambda_text(fn: str) -> str:
    return E.lambda_text(fn)


def _first_lr(s) -> float:
    o = origin(s)
    if o and o[2].get("lr") is not None:
        return o[2]["lr"]
    for c in getattr(s, "schedules", ()):
        return _first_lr(c)
    return float(getattr(s, "lr", getattr(s, "max_lr", 0.0)) or 0.0)


# ------------------------------------------------------------------------------------------ variants

def _map(s, fn):
    """fn applied to every leaf of s (Sequence children rebuilt)."""
    if isinstance(s, S.Sequence):
        return S.Sequence([_map(c, fn) for c in s.schedules], s.milestones)
    return fn(s)


def _held(c):
    """A rising cosine as one that holds its floor (equal up to T)."""
    if isinstance(c, S.Cosine) and c.periodic and float(c.decay_steps).is_integer():
        return dataclasses.replace(c, periodic=False)
    return c


def _restarted(c):
    """A cosine started mid-cycle (offset) as one started at its peak over the steps left."""
    if isinstance(c, S.Cosine) and c.offset and c.decay_steps - c.offset >= 1:
        return S.Cosine(c.lr, c.decay_steps - c.offset, floor=c.floor)
    return c


def _cut(s, n):
    if not isinstance(s, S.Sequence):
        return s
    keep = 1 + sum(1 for m in s.milestones if m < n)
    return S.Sequence(s.schedules[:keep], s.milestones[:keep - 1]) if keep > 1 else s.schedules[0]


def _rewarmed(s):
    """A linear warmup started from 0 (transformers's), and the schedule without its warmup."""
    if isinstance(s, S.Sequence) and isinstance(s.schedules[0], S.Linear) and s.schedules[0].steps == s.milestones[0]:
        w = s.schedules[0]
        rest = S.Sequence(s.schedules[1:], [m - s.milestones[0] for m in s.milestones[1:]]) \
            if len(s.schedules) > 2 else s.schedules[1]
        return [S.Sequence([S.Linear(0.0, w.end, w.steps), *s.schedules[1:]], s.milestones), rest]
    return []


def variants(s, n: int | None):
    out = []
    for v in (_map(s, _held), _map(s, _restarted), _map(_map(s, _held), _restarted), *_rewarmed(s),
              *_rewarmed(_map(s, _held))):
        if n is not None:
            v = _cut(v, n)
        if v not in out and v != s:
            out.append(v)
    if n is not None and _cut(s, n) != s:
        out.insert(0, _cut(s, n))
    return out


def horizon(s) -> int:
    """Steps that show every phase of s twice over (for the deviation of a near form)."""
    total = 0.0
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        if isinstance(v, S.Schedule):
            total += horizon(v)
        elif isinstance(v, tuple) and v and isinstance(v[0], S.Schedule):
            total += sum(horizon(c) for c in v)
        elif isinstance(v, tuple) and f.name in ("milestones", "boundaries"):
            total += max(v, default=0)
        elif f.name in ("steps", "decay_steps", "period", "step_size", "total_steps", "step_size_up",
                        "warmup_steps") and isinstance(v, (int, float)) and math.isfinite(v):
            total += v
    return int(min(max(3 * total + 10, 100), 200_000))


def deviation(a, b, n: int):
    """(largest |a - b|, its step, first step where they differ beyond RTOL) over steps 0..n-1."""
    from .evaluate import evaluate
    x, y = evaluate(a, n), evaluate(b, n)
    err = np.abs(x - y)
    bad = err > RTOL * np.maximum(np.abs(x), np.abs(y)) + 1e-300
    j = int(np.argmax(err))
    return float(err[j]), j, (int(np.argmax(bad)) if bad.any() else None)


# ------------------------------------------------------------------------------------------ alternative

def alternative(s, fw: str, base: float, n: int | None) -> str:
    """An exact stand-in in fw's terms that runs as printed (no lrcore import where the closed form is written)."""
    try:
        base = base or 1.0
        if fw in OPTIMIZER_FRAMEWORKS:
            return (f"torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda={E.torch_lambda(s, base)})  "
                    f"# optimizer lr={_lit(float(base))}" + ("" if fw == "torch" else
                                                              f" ({fw} trains with any torch scheduler)"))
        if fw == "keras":
            return E.keras_schedule(s)
        if fw == "optax":
            return E.optax_lambda(s)
    except E.NoExpression:
        pass
    steps = n or horizon(s)
    text = repr(str(s))
    if fw == "keras":
        return f"lrcore.integrations.keras.LrcoreSchedule(lrcore.parse({text}), steps={steps})"
    if fw == "optax":
        return (f"(lambda values: lambda count: values[jnp.minimum(count, {steps - 1})])"
                f"(jnp.asarray(lrcore.evaluate(lrcore.parse({text}), {steps})))  # exact on steps 0..{steps - 1}")
    b = float(base) or 1.0
    return (f"torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda t, s=lrcore.parse({text}): s(t) / {b!r})"
            f"  # optimizer lr={b!r}")
