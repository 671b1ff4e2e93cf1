"""Numba CPU kernel: every schedule of a lowered program at every step, in parallel tiles.

Work is split into jobs of (schedule, tile of ``TILE`` steps), shared by ``prange`` over a few chunks
per core. Within a job each leaf is applied to a float64 tile buffer in one tight loop specialised
for its formula, so LLVM inlines and vectorizes it: the interpreter's dispatch costs one branch per
leaf and tile, never one per step. A leaf touches only the steps where it is active
(``lo <= t < hi``): contiguous steps give that range in O(1); arbitrary steps use the tile's min/max,
and a masked loop only where a leaf boundary falls inside the tile.

The loops on contiguous steps, built to vectorize (piecewise formulas segment by segment,
exponentials, polynomial decays and inverse-sqrt from exact anchors), are in ``cpu_contiguous``. float32
output: each tile is computed in float64 and rounded as it is stored (``_write_tile``), so no float64 copy
of the output is made.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from numba import njit, prange, types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import overload

from . import formulas as F
from .cpu_contiguous import OPTS, TILE, apply_contiguous

# Numba's SSA pass flags the inlined exp_fast loops of these files ("variable '...' is not in scope", an internal
# pedantic check, dozens of lines per compile); the values are checked against numpy by the tests.
warnings.filterwarnings("ignore", message=r"variable '.*' is not in scope", category=NumbaIRAssumptionWarning,
                        module=r".*[/\\]lrcore[/\\]kernels[/\\]cpu(_contiguous)?\Z")


def _drop_stale_cache() -> None:
    """Numba's cache of ``evaluate_program`` is keyed on this file only, yet the kernel inlines
    ``formulas.py`` and ``cpu_contiguous.py``: drop the cached machine code when one changed since it was written."""
    import hashlib
    from pathlib import Path
    here = Path(__file__).resolve().parent
    cache = here / "__pycache__"
    digest = hashlib.sha256((here / "formulas.py").read_bytes() + (here / "cpu_contiguous.py").read_bytes()
                            + Path(__file__).read_bytes()).hexdigest()
    stamp = cache / "cpu.formulas.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for f in cache.glob("cpu.*.nb[ic]"):
            f.unlink()
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: numba then compiles in memory
        pass


_drop_stale_cache()

CONTIGUOUS, CONTIGUOUS_ASSIGN, STEPS, STEPS_ASSIGN, MASKED = range(5)
_OPTS = OPTS


def _leaf_loops(f):
    """The tile loop of one formula f (a compile-time constant here, so LLVM inlines it): for j in
    [j0, j1), t = tstart + j (contiguous modes) or tt[j]; where lo <= t < hi, buf[j] becomes
    f(t - shift) (ASSIGN modes) or buf[j] * f(t - shift). Contiguous ranges come clipped to the leaf's
    [lo, hi) already, so their loops have no test at all; the others are one loop with selects and no
    negative indices (it runs over slices from 0), so LLVM vectorizes it."""
    @njit(**_OPTS)
    def loop(mode, buf, tt, j0, j1, tstart, lo, hi, shift, p, P, off):
        b = buf[j0:j1]
        ts = tt[j0:j1]
        t0 = tstart + j0
        if mode == CONTIGUOUS_ASSIGN:
            u0 = t0 - shift
            for k in range(b.shape[0]):
                u = u0 + k
                b[k] = f(u if u > 0 else 0, p, P, off)
            return
        if mode == CONTIGUOUS:
            u0 = t0 - shift
            for k in range(b.shape[0]):
                u = u0 + k
                b[k] = b[k] * f(u if u > 0 else 0, p, P, off)
            return
        assign = mode == STEPS_ASSIGN
        for k in range(b.shape[0]):
            t = ts[k]
            u = t - shift
            v = f(u if u > 0 else 0, p, P, off)
            old = b[k]
            new = v if assign else old * v
            b[k] = new if (t >= lo and t < hi) else old
    return loop


_const, _linear, _cosine, _cosine_rising, _cosine_periodic, _one_minus_sqrt, _geometric, _exponential, \
    _inverse_time, _polynomial, _step, _piecewise, _restarts_steps, _phases, _cyclic, _inverse_sqrt = (
        _leaf_loops(f) for f in (F.f_const, F.f_linear, F.f_cosine, F.f_cosine_rising, F.f_cosine_periodic,
                                 F.f_one_minus_sqrt,
                                 F.f_geometric, F.f_exponential, F.f_inverse_time, F.f_polynomial, F.f_step,
                                 F.f_piecewise, F.f_restarts, F.f_phases, F.f_cyclic, F.f_inverse_sqrt))


@njit(**_OPTS)
def _restarts(mode, buf, tt, j0, j1, tstart, lo, hi, shift, p, P, off):
    """RESTARTS on contiguous steps, one cycle at a time: the cycle, its length and weight come from
    ``restart_cycle`` once per cycle, so the per-step loop is a vectorizable cosine; positions within
    the cycle are pos0 + q, exactly what ``f_restarts`` computes step by step."""
    if mode != CONTIGUOUS and mode != CONTIGUOUS_ASSIGN:
        _restarts_steps(mode, buf, tt, j0, j1, tstart, lo, hi, shift, p, P, off)
        return
    b = buf[j0:j1]
    u0 = tstart + j0 - shift
    count = b.shape[0]
    first, t_mul = p[2], p[3]
    exact = t_mul == 1.0 and first == math.floor(first)
    k = 0
    while k < count:
        i, pos0 = F.restart_cycle(u0 + k, first, t_mul)
        length = first * t_mul ** i
        weight = p[4] ** i
        stop = min(count, k + max(1, int(math.ceil(length - pos0))))
        if not exact:  # float cycle ends: settle the last step of this cycle by the same test
            while stop > k + 1 and F.restart_cycle(u0 + stop - 1, first, t_mul)[0] != i:
                stop -= 1
            while stop < count and F.restart_cycle(u0 + stop, first, t_mul)[0] == i:
                stop += 1
        seg = b[k:stop]
        start = F.restart_start(i, first, t_mul)
        for q in range(seg.shape[0]):
            pos = pos0 + q if exact else float(u0 + k + q) - start
            v = F.restart_value(pos, length, weight, p)
            seg[q] = v if mode == CONTIGUOUS_ASSIGN else seg[q] * v
        k = stop


@njit(**_OPTS)
def _apply(op, mode, buf, tt, j0, j1, tstart, lo, hi, shift, p, P, off, scratch, fsteps):
    """Dispatch once per leaf and tile to the loop specialised for the leaf's formula: on contiguous
    steps to ``apply_contiguous``, else (or for a formula it has no loop for) to ``_apply_steps``."""
    if mode == CONTIGUOUS or mode == CONTIGUOUS_ASSIGN:
        b = buf[j0:j1]
        u0 = max(tstart + j0 - shift, 0)  # >= 0: the range is clipped to [lo, hi) and lo >= shift
        if apply_contiguous(op, b, u0, mode == CONTIGUOUS_ASSIGN, p, P, off, scratch, tt, fsteps):
            return
    _apply_steps(op, mode, buf, tt, j0, j1, tstart, lo, hi, shift, p, P, off)


@njit(**_OPTS)
def _apply_steps(op, mode, buf, tt, j0, j1, tstart, lo, hi, shift, p, P, off):
    """The leaf's generic loop (``_leaf_loops``): any mode, contiguous or arbitrary steps, masked or not."""
    a = (mode, buf, tt, j0, j1, tstart, lo, hi, shift, p, P, off)
    if op == F.CONST:
        _const(*a)
    elif op == F.LINEAR:
        _linear(*a)
    elif op == F.COSINE:
        _cosine(*a)
    elif op == F.COSINE_RISING:
        _cosine_rising(*a)
    elif op == F.COSINE_PERIODIC:
        _cosine_periodic(*a)
    elif op == F.ONE_MINUS_SQRT:
        _one_minus_sqrt(*a)
    elif op == F.GEOMETRIC:
        _geometric(*a)
    elif op == F.EXPONENTIAL:
        _exponential(*a)
    elif op == F.INVERSE_TIME:
        _inverse_time(*a)
    elif op == F.POLYNOMIAL:
        _polynomial(*a)
    elif op == F.STEP:
        _step(*a)
    elif op == F.PIECEWISE:
        _piecewise(*a)
    elif op == F.RESTARTS:
        _restarts(*a)
    elif op == F.PHASES:
        _phases(*a)
    elif op == F.CYCLIC:
        _cyclic(*a)
    elif op == F.INVERSE_SQRT:
        _inverse_sqrt(*a)


@njit(**_OPTS)
def _tile(s, a, m, t0, steps, contiguous, sched_leaves, leaves, P, tables, tt, scratch, fsteps, buf):
    """Schedule s at the m steps starting at index a, written into the float64 buffer buf (m values)."""
    if contiguous:
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
        j0, j1 = 0, m
        if contiguous:
            j0, j1 = max(lo - tmin, 0), min(hi - tmin, m)
            mode = CONTIGUOUS
        else:
            mode = STEPS if lo <= tmin and tmax < hi else MASKED
        if not assigned:
            if mode == MASKED or j0 > 0 or j1 < m:
                buf[:] = 1.0
            else:
                mode = CONTIGUOUS_ASSIGN if contiguous else STEPS_ASSIGN
            assigned = True
        if op == F.TABLE:
            if mode == CONTIGUOUS_ASSIGN or mode == STEPS_ASSIGN:
                buf[:] = 1.0
            row = tables[int(P[off])][a:a + m]
            for j in range(m):
                t = tmin + j if contiguous else tt[j]
                if t >= lo and t < hi:
                    buf[j] *= row[j]
        else:
            p = (P[off], P[off + 1], P[off + 2], P[off + 3], P[off + 4], P[off + 5], P[off + 6], P[off + 7])
            _apply(op, mode, buf, tt, j0, j1, tmin, lo, hi, shift, p, P, off, scratch, fsteps)
    if not assigned:
        buf[:] = 1.0


def _write_tile(s, a, m, t0, steps, contiguous, sched_leaves, leaves, P, tables, tt, scratch, fsteps, tbuf, out):
    """``_tile`` into out[s, a:a+m]: in place for float64 output; for float32 into the float64 tile buffer
    tbuf, then each value rounded once on its store (no float64 copy of the whole output)."""


@overload(_write_tile, jit_options=_OPTS)
def _write_tile_impl(s, a, m, t0, steps, contiguous, sched_leaves, leaves, P, tables, tt, scratch, fsteps, tbuf,
                     out):
    if out.dtype == types.float64:
        def direct(s, a, m, t0, steps, contiguous, sched_leaves, leaves, P, tables, tt, scratch, fsteps, tbuf, out):
            _tile(s, a, m, t0, steps, contiguous, sched_leaves, leaves, P, tables, tt, scratch, fsteps,
                  out[s, a:a + m])
        return direct

    def rounded(s, a, m, t0, steps, contiguous, sched_leaves, leaves, P, tables, tt, scratch, fsteps, tbuf, out):
        b = tbuf[:m]
        _tile(s, a, m, t0, steps, contiguous, sched_leaves, leaves, P, tables, tt, scratch, fsteps, b)
        row = out[s, a:a + m]
        for j in range(m):
            row[j] = b[j]
    return rounded


@njit(parallel=True, cache=True, **_OPTS)
def evaluate_program(t0, steps, contiguous, sched_leaves, leaves, P, tables, out, threads):
    """out[s, i] (float64, or float32: the float64 value rounded) = product of the active leaves of
    schedule s at step t_i.

    t_i = t0 + i if ``contiguous`` else steps[i]; schedule s owns leaves
    sched_leaves[s, 0] <= l < sched_leaves[s, 1]; leaves[l] = (op, lo, hi, shift, off);
    a TABLE leaf reads tables[P[off], i]. Jobs are split in 8 chunks per thread.
    """
    S, n = out.shape
    ntiles = (n + TILE - 1) // TILE
    jobs = S * ntiles
    chunks = min(jobs, 8 * threads)
    for c in prange(chunks):
        tt = np.empty(TILE, np.int64)
        scratch = np.empty(TILE)
        fsteps = np.empty(TILE)
        tbuf = np.empty(TILE)
        for job in range(c * jobs // chunks, (c + 1) * jobs // chunks):
            s = job // ntiles
            a = (job - s * ntiles) * TILE
            _write_tile(s, a, min(TILE, n - a), t0, steps, contiguous, sched_leaves, leaves, P, tables, tt, scratch,
                        fsteps, tbuf, out)
