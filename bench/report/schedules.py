"""Draw schedules from their text form (``lrbench plot "<text>" [...] --steps N -o file.png``).

``plot(texts, steps, out)`` parses each text with lrcore (placeholders ``total`` and ``peak``), samples
long ranges evenly, and draws learning rate (and momentum where a schedule cycles it). Details:
docs/BENCH.md, "bench/report/schedules.py".
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["ScheduleTextError", "parse_schedule", "plot_steps", "figure", "plot", "MAX_POINTS", "MAX_STEPS"]

MAX_POINTS = 100_000  # points drawn per curve; more steps are sampled evenly
MAX_STEPS = 2 ** 62  # lrcore's largest step (int64 arithmetic never overflows below it)


class ScheduleTextError(ValueError):
    """Schedule text that cannot be drawn: names the argument (1-based), the text and the problem."""


def _constructor(name: str):
    """The class or function that the text form ``name`` calls (``Cosine``, ``torch.StepLR``, ``optax.X``), or None."""
    import lrcore
    from lrcore import compat
    if name in lrcore.SCHEDULES:
        return lrcore.SCHEDULES[name]
    prefix, _, rest = name.partition(".")
    module = getattr(compat, prefix) if prefix in compat.__all__ else None
    return getattr(module, rest) if module is not None and rest in module.__all__ else None


def _parameters(name: str) -> list[str] | None:
    f = _constructor(name)
    try:
        return [p.name for p in inspect.signature(f).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)] if f is not None else None
    except (TypeError, ValueError):
        return None


def _argument_error(msg: str) -> str:
    """lrcore's ``"Name: Name.__init__() got an unexpected keyword argument 'x'"`` (and the other call errors
    of Python) said in the schedule's own terms: the unknown or missing parameter and the known ones."""
    m = re.match(r"([\w.]+): [\w.]+\(\) (.*)$", msg)
    if not m:  # not a call error (a rule of lrcore's own, already in its terms)
        return msg
    name, rest = m.groups()
    known = _parameters(name)
    known_txt = f"; known: {', '.join(known)}" if known else ""
    bad = re.search(r"unexpected keyword argument '(\w+)'", rest)
    if bad:
        return f"{name}: unknown parameter {bad.group(1)!r}{known_txt}"
    missing = re.search(r"missing \d+ required (?:positional |keyword-only )?arguments?: (.*)$", rest)
    if missing:
        names = re.findall(r"'(\w+)'", missing.group(1))
        return f"{name}: missing parameter{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}{known_txt}"
    twice = re.search(r"got multiple values for argument '(\w+)'", rest)
    if twice:
        return f"{name}: parameter {twice.group(1)!r} given twice (by position and by name){known_txt}"
    return f"{name}: {rest}{known_txt}"


def parse_schedule(text: str, steps: int, peak: float | None = None, index: int = 1):
    """The lrcore schedule of ``text`` (placeholders ``total`` = ``steps`` and ``peak``), or
    :class:`ScheduleTextError` that says which schedule and why."""
    import lrcore
    t = text.strip()
    if t.startswith("keras-native:"):
        t = t[len("keras-native:"):].strip()
    where = f"schedule {index} ({text!r})"
    if not t:
        raise ScheduleTextError(f"{where}: empty text; expected constructor syntax such as "
                                "'Cosine(lr=0.1, decay_steps=1000)'")
    if t.lower() == "plateau":
        raise ScheduleTextError(f"{where}: 'plateau' is reactive (it follows a validation loss), so it has no "
                                "fixed curve to draw")
    names = {"total": int(steps)}
    if peak is not None:
        names["peak"] = float(peak)
    try:
        return lrcore.parse(t, **names)
    except (ValueError, TypeError, OverflowError) as e:
        msg = str(e)
        if isinstance(e, TypeError):
            msg = _argument_error(msg)
        elif isinstance(e, OverflowError):
            msg = f"a number is too large ({msg})"
        if "unknown name 'peak'" in msg:
            msg += " (pass --peak to give it a value)"
        raise ScheduleTextError(f"{where}: {msg}") from None


def plot_steps(steps: int) -> np.ndarray:
    """The steps drawn for a ``steps``-step plot: all of ``0 .. steps-1`` up to :data:`MAX_POINTS` of them,
    else :data:`MAX_POINTS` evenly spaced ones that include the first and the last step."""
    steps = int(steps)
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"plot: steps must be in [1, 2**62], got {steps}")
    if steps <= MAX_POINTS:
        return np.arange(steps, dtype=np.int64)
    x = np.linspace(0.0, float(steps - 1), MAX_POINTS).round()
    x = np.minimum(x.astype(np.int64), steps - 1)  # float rounding near 2**62 must not pass the last step
    return np.unique(x)


def _evaluate(schedule, x: np.ndarray, where: str, what: str = "") -> np.ndarray:
    """``schedule`` at the steps ``x``; :class:`ScheduleTextError` names the schedule."""
    import lrcore
    whole = len(x) and x[0] == 0 and x[-1] == len(x) - 1  # every step: the count form, as lrcore.evaluate(s, n)
    try:
        return lrcore.evaluate(schedule, len(x) if whole else x)
    except OverflowError as e:  # lrcore bounds its step parameters below 2**62; a guard all the same
        raise ScheduleTextError(f"{where}: {what}cannot be evaluated: overflow ({e})") from None
    except (ValueError, TypeError) as e:
        raise ScheduleTextError(f"{where}: {what}{e}") from None


def figure(texts: Sequence[str], steps: int, *, peak: float | None = None, log: bool = False,
           labels: Sequence[str] | None = None):
    """The matplotlib figure: learning rates on the first axes, cycled momentum (if any) on a second."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = plot_steps(steps)
    if not texts:
        raise ValueError("plot: give at least one schedule text")
    scheds = [parse_schedule(t, steps, peak, i + 1) for i, t in enumerate(texts)]
    labels = list(labels) if labels is not None else [t.strip() for t in texts]
    values = [_evaluate(s, x, f"schedule {i + 1} ({texts[i]!r})") for i, s in enumerate(scheds)]
    moms = [(i, _evaluate(s.momentum, x, f"schedule {i + 1} ({texts[i]!r})", "momentum: "))
            for i, s in enumerate(scheds) if s.momentum is not None]
    fig, axes = plt.subplots(2 if moms else 1, 1, figsize=(8, 6.5 if moms else 4), squeeze=False, sharex=True,
                             layout="constrained")
    ax = axes[0, 0]

    def short(label):
        label = label.replace("$", r"\$")
        return label if len(label) <= 90 else label[:89] + "…"

    colors = []
    for lab, v in zip(labels, values):
        colors.append(ax.plot(x, v, lw=1.5, label=short(lab))[0].get_color())
    ax.set_ylabel("learning rate")
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    sampled = f" (drawn at {len(x):,} evenly spaced steps)" if len(x) < int(steps) else ""
    ax.set_title(f"learning rate over {int(steps):,} steps{sampled}")
    if moms:
        mx = axes[1, 0]
        for i, m in moms:  # same colour as the schedule's learning rate
            mx.plot(x, m, lw=1.5, color=colors[i], label=short(labels[i]))
        mx.set_ylabel("momentum / beta1")
        mx.grid(alpha=0.3)
        mx.legend(fontsize=7)
    axes[-1, 0].set_xlabel("step")
    return fig


def plot(texts: Sequence[str], steps: int, out, *, peak: float | None = None, log: bool = False,
         labels: Sequence[str] | None = None) -> Path:
    """Draw the schedules' learning rates (and cycled momentum) over ``steps`` steps into ``out`` (the
    format from its suffix: .png, .svg, .pdf). A file that cannot be written raises ``OSError`` naming it."""
    import matplotlib.pyplot as plt
    fig = figure(texts, steps, peak=peak, log=log, labels=labels)
    out = Path(out)
    try:
        if out.parent and not out.parent.exists():
            out.parent.mkdir(parents=True)
        fig.savefig(out, dpi=100)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {str(out)!r}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return out
