"""Numba CPU kernel: every schedule of a lowered program at every step, in parallel tiles.

Work is split into jobs of (schedule, tile of ``TILE`` steps), shared by ``prange`` over a few chunks
per core. Within a job each leaf is applied to a float64 tile buffer in one tight loop specialised
for its formula, so LLVM inlines and vectorizes it: the interpreter's dispatch costs one branch per
leaf and tile, never one per step. A leaf touches only the steps where it is active
(``lo <= t < hi``): contiguous steps give that range in O(1); arbitrary steps use the tile's min/max,
and a masked loop only where a leaf boundary falls inside the tile.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import formulas as F

TILE = 2048
_OPTS = dict(fastmath={"contract"}, error_model="numpy")


@njit(**_OPTS)
def _leaf(f, masked, buf, tt, j0, j1, lo, hi, shift, p, P, off, assign):
    """buf[j] = (or *=) f(tt[j] - shift) for j0 <= j < j1 (if masked, only where lo <= tt[j] < hi)."""
    if masked:
        for j in range(j0, j1):
            t = tt[j]
            u = t - shift
            v = f(u if u > 0 else 0, p, P, off)
            buf[j] = buf[j] * v if (t >= lo and t < hi) else buf[j]
    elif assign:
        for j in range(j0, j1):
            buf[j] = f(tt[j] - shift, p, P, off)
    else:
        for j in range(j0, j1):
            buf[j] *= f(tt[j] - shift, p, P, off)


@njit(**_OPTS)
def _apply(op, masked, buf, tt, j0, j1, lo, hi, shift, p, P, off, assign):
    """Dispatch once per leaf and tile to the loop specialised for the leaf's formula."""
    a = (masked, buf, tt, j0, j1, lo, hi, shift, p, P, off, assign)
    if op == F.CONST:
        _leaf(F.f_const, *a)
    elif op == F.LINEAR:
        _leaf(F.f_linear, *a)
    elif op == F.COSINE:
        _leaf(F.f_cosine, *a)
    elif op == F.COSINE_PERIODIC:
        _leaf(F.f_cosine_periodic, *a)
    elif op == F.ONE_MINUS_SQRT:
        _leaf(F.f_one_minus_sqrt, *a)
    elif op == F.GEOMETRIC:
        _leaf(F.f_geometric, *a)
    elif op == F.EXPONENTIAL:
        _leaf(F.f_exponential, *a)
    elif op == F.INVERSE_TIME:
        _leaf(F.f_inverse_time, *a)
    elif op == F.POLYNOMIAL:
        _leaf(F.f_polynomial, *a)
    elif op == F.STEP:
        _leaf(F.f_step, *a)
    elif op == F.PIECEWISE:
        _leaf(F.f_piecewise, *a)
    elif op == F.RESTARTS:
        _leaf(F.f_restarts, *a)
    elif op == F.PHASES:
        _leaf(F.f_phases, *a)
    elif op == F.CYCLIC:
        _leaf(F.f_cyclic, *a)
    elif op == F.INVERSE_SQRT:
        _leaf(F.f_inverse_sqrt, *a)


@njit(**_OPTS)
def _tile(s, a, m, t0, steps, contiguous, sched_leaves, leaves, P, tables, buf, tt, out):
    """Schedule s at the m steps starting at index a, through the buffers buf and tt, into out."""
    if contiguous:
        for j in range(m):
            tt[j] = t0 + a + j
        tmin = t0 + a
        tmax = t0 + a + m - 1
    else:
        ts = steps[a:a + m]
        tmin = ts[0]
        tmax = ts[0]
        for j in range(m):
            tt[j] = ts[j]
            tmin = min(tmin, ts[j])
            tmax = max(tmax, ts[j])
    assigned = False
    for l in range(sched_leaves[s, 0], sched_leaves[s, 1]):
        op, lo, hi, shift, off = leaves[l, 0], leaves[l, 1], leaves[l, 2], leaves[l, 3], leaves[l, 4]
        if hi <= tmin or lo > tmax:
            continue
        masked = False
        j0, j1 = 0, m
        if contiguous:
            j0, j1 = max(lo - tmin, 0), min(hi - tmin, m)
        else:
            masked = not (lo <= tmin and tmax < hi)
        if not assigned and (masked or j0 > 0 or j1 < m):
            buf[:m] = 1.0
            assigned = True
        if op == F.TABLE:
            row = tables[int(P[off])]
            for j in range(j0, j1):
                if tt[j] >= lo and tt[j] < hi:
                    buf[j] = row[a + j] if not assigned else buf[j] * row[a + j]
        else:
            p = (P[off], P[off + 1], P[off + 2], P[off + 3], P[off + 4], P[off + 5], P[off + 6], P[off + 7])
            _apply(op, masked, buf, tt, j0, j1, lo, hi, shift, p, P, off, not assigned)
        assigned = True
    if not assigned:
        buf[:m] = 1.0
    o = out[s, a:a + m]
    for j in range(m):
        o[j] = buf[j]


@njit(parallel=True, cache=True, **_OPTS)
def evaluate_program(t0, steps, contiguous, sched_leaves, leaves, P, tables, out, threads):
    """out[s, i] = product of the active leaves of schedule s at step t_i.

    t_i = t0 + i if ``contiguous`` else steps[i]; schedule s owns leaves
    sched_leaves[s, 0] <= l < sched_leaves[s, 1]; leaves[l] = (op, lo, hi, shift, off);
    a TABLE leaf reads tables[P[off], i]. Jobs are split in 8 chunks per thread.
    """
    S, n = out.shape
    ntiles = (n + TILE - 1) // TILE
    jobs = S * ntiles
    chunks = min(jobs, 8 * threads)
    for c in prange(chunks):
        buf = np.empty(TILE)
        tt = np.empty(TILE, np.int64)
        for job in range(c * jobs // chunks, (c + 1) * jobs // chunks):
            s = job // ntiles
            a = (job - s * ntiles) * TILE
            _tile(s, a, min(TILE, n - a), t0, steps, contiguous, sched_leaves, leaves, P, tables, buf, tt, out)
