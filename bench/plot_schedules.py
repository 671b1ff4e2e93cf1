"""Draw schedules from their text form (``lrbench plot "<text>" [...] --steps N -o file.png``).

Text is lrcore's constructor syntax (DESIGN.md), e.g. ``Cosine(lr=0.1, decay_steps=1000)`` or
``torch.OneCycleLR(max_lr=0.1, total_steps=1000)``, parsed by ``lrcore.parse`` (never ``eval``). The
placeholders ``total`` (= ``steps``) and, when given, ``peak`` may be used, as in matrix files
(``Warmup(Cosine(lr=peak, decay_steps=total - 100), steps=100)``); a ``keras-native:`` prefix is dropped.
Every schedule is evaluated at steps ``0 .. steps-1``. When some schedule cycles momentum (OneCycle,
Cyclic: ``schedule.momentum``), a second panel shows the momentum of those schedules.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["ScheduleTextError", "parse_schedule", "figure", "plot"]


class ScheduleTextError(ValueError):
    """Schedule text that cannot be drawn: names the argument (1-based), the text and the problem."""


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
    except (ValueError, TypeError) as e:
        msg = str(e)
        if "unknown name 'peak'" in msg:
            msg += " (pass --peak to give it a value)"
        raise ScheduleTextError(f"{where}: {msg}") from None


def figure(texts: Sequence[str], steps: int, *, peak: float | None = None, log: bool = False,
           labels: Sequence[str] | None = None):
    """The matplotlib figure: learning rates on the first axes, cycled momentum (if any) on a second."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import lrcore
    if int(steps) < 1:
        raise ValueError(f"plot: steps must be >= 1, got {steps}")
    if not texts:
        raise ValueError("plot: give at least one schedule text")
    scheds = [parse_schedule(t, steps, peak, i + 1) for i, t in enumerate(texts)]
    labels = list(labels) if labels is not None else [t.strip() for t in texts]
    values = []
    for i, s in enumerate(scheds):
        try:
            values.append(lrcore.evaluate(s, int(steps)))
        except (ValueError, TypeError) as e:
            raise ScheduleTextError(f"schedule {i + 1} ({texts[i]!r}): {e}") from None
    moms = [(i, s.momentum) for i, s in enumerate(scheds) if s.momentum is not None]
    fig, axes = plt.subplots(2 if moms else 1, 1, figsize=(8, 6.5 if moms else 4), squeeze=False, sharex=True,
                             layout="constrained")
    ax = axes[0, 0]
    x = np.arange(int(steps))

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
    ax.set_title(f"learning rate over {int(steps):,} steps")
    if moms:
        mx = axes[1, 0]
        for i, m in moms:  # same colour as the schedule's learning rate
            mx.plot(x, lrcore.evaluate(m, int(steps)), lw=1.5, color=colors[i], label=short(labels[i]))
        mx.set_ylabel("momentum / beta1")
        mx.grid(alpha=0.3)
        mx.legend(fontsize=7)
    axes[-1, 0].set_xlabel("step")
    return fig


def plot(texts: Sequence[str], steps: int, out, *, peak: float | None = None, log: bool = False,
         labels: Sequence[str] | None = None) -> Path:
    """Draw the schedules' learning rates (and cycled momentum) over ``steps`` steps into ``out`` (the
    format from its suffix: .png, .svg, .pdf)."""
    import matplotlib.pyplot as plt
    fig = figure(texts, steps, peak=peak, log=log, labels=labels)
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
