"""Lowering: a schedule tree becomes a flat list of leaves, and a list of schedules one program.

A leaf is one scalar formula (``lrcore.kernels.formulas``) active on ``lo <= t < hi`` and evaluated
at ``t - shift``. A schedule's value at ``t`` is the product of its active leaves, so composition needs
no stack and no recursion in a kernel:

* ``Sequence``: the leaves of child j are clipped to ``[m_{j-1}, m_j)`` and shifted by ``m_{j-1}``
  (clipping composes: the intersection of intervals is an interval);
* ``Product``: the union of the children's leaves;
* ``Warmup``: a ramp leaf, then the wrapped schedule shifted (or multiplied by the ramp).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence as Seq

import numpy as np

from .kernels import formulas as F

NEVER = 2 ** 62  # "no upper bound" for hi


@dataclasses.dataclass(frozen=True)
class Leaf:
    op: int
    params: tuple  # floats; the first eight are the formula's ``p``
    lo: int = 0
    hi: int = NEVER
    shift: int = 0
    table: Callable[[np.ndarray], np.ndarray] | None = None  # TABLE leaves: values at steps u >= 0

    def restricted(self, lo: int, hi: int, shift: int) -> "Leaf | None":
        """This leaf inside a child active on [lo, hi) whose own step 0 is the parent's step ``shift``."""
        new_lo, new_hi = max(lo, self.lo + shift), min(hi, self.hi + shift, NEVER)
        if new_lo >= new_hi:
            return None
        return dataclasses.replace(self, lo=new_lo, hi=new_hi, shift=self.shift + shift)


def sequence(children: Seq[list[Leaf]], milestones: Seq[int]) -> list[Leaf]:
    """Child j on [m_{j-1}, m_j), seeing its own step t - m_{j-1}."""
    bounds = [0, *milestones, NEVER]
    out = []
    for leaves, lo, hi in zip(children, bounds, bounds[1:]):
        out += [r for leaf in leaves if (r := leaf.restricted(lo, hi, lo)) is not None]
    return out


@functools.lru_cache(maxsize=65536)
def leaves_of(schedule) -> tuple[Leaf, ...]:
    return tuple(schedule._leaves())


@dataclasses.dataclass
class Program:
    """Flat arrays the kernels read: see ``lrcore.kernels.cpu.evaluate_program``."""
    sched_leaves: np.ndarray  # (S, 2) int64 leaf ranges
    leaves: np.ndarray        # (L, 5) int64: op, lo, hi, shift, offset into P
    P: np.ndarray             # float64 parameters, padded so that P[off:off+8] always exists
    tables: np.ndarray        # (R, n) float64 values of TABLE leaves at the evaluated steps


def build(schedules, steps: np.ndarray | None, t0: int, n: int) -> Program:
    """Program for ``schedules`` at steps ``steps`` (or ``t0 + arange(n)`` if ``steps`` is None)."""
    sched_leaves = np.zeros((len(schedules), 2), np.int64)
    rows, params, table_leaves = [], [], []
    for s, schedule in enumerate(schedules):
        sched_leaves[s, 0] = len(rows)
        for leaf in leaves_of(schedule):
            values = leaf.params
            if leaf.op == F.TABLE:
                values = (float(len(table_leaves)),)
                table_leaves.append(leaf)
            rows.append((leaf.op, leaf.lo, leaf.hi, leaf.shift, len(params)))
            params.extend(float(v) for v in values)
        sched_leaves[s, 1] = len(rows)
    P = np.zeros(len(params) + F.N_LEADING)
    P[: len(params)] = params
    leaves = np.array(rows, np.int64).reshape(-1, 5)
    tables = np.ones((len(table_leaves), n if table_leaves else 0))
    if table_leaves:
        t = np.arange(t0, t0 + n, dtype=np.int64) if steps is None else steps
        for r, leaf in enumerate(table_leaves):
            active = (t >= leaf.lo) & (t < leaf.hi)
            tables[r, active] = leaf.table(t[active] - leaf.shift)
    return Program(sched_leaves, leaves, P, tables)
