"""Scalar formulas of the leaf operations: the one definition that every compiled backend uses.

A schedule is lowered (see ``lrcore.program``) into *leaves*; each leaf is one operation code, up to
eight leading parameters ``p`` (a tuple of floats), optional variable-length parameters in the flat
array ``P`` starting at ``off``, and is evaluated at ``u = t - shift >= 0``. Every function here has
the signature ``f(u, p, P, off) -> float`` and is ``register_jitable``: plain Python when called
directly, inlined machine code inside the Numba CPU kernels and the CUDA kernels.

No formula calls ``cos``: cosine anneals use the identity

    (1 + cos(pi * q)) / 2 = sin(pi / 2 * r) ** 2,   r = 1 - q  (the fraction that remains),

with ``r`` computed from integers (exact) and ``sin`` from a degree-21 Taylor polynomial, which is
exact to about 1 ulp on [-pi/2, pi/2], has no cancellation near the bottom of a cycle, and vectorizes.
"""
from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable

# Operation codes (the order is part of the lowered program format, not of the public API).
(CONST, LINEAR, COSINE, COSINE_RISING, COSINE_PERIODIC, ONE_MINUS_SQRT, GEOMETRIC, EXPONENTIAL, INVERSE_TIME,
 POLYNOMIAL, STEP, PIECEWISE, RESTARTS, PHASES, CYCLIC, INVERSE_SQRT, TABLE) = range(17)
N_LEADING = 8  # parameters passed to every formula as the tuple ``p``

# CYCLIC scale modes
SCALE_CYCLE, SCALE_ITERATIONS = range(2)

_HALF_PI = math.pi / 2
# Taylor coefficients (-1)**k / (2k+1)! for k = 1..10
_S3, _S5, _S7, _S9, _S11 = -1 / 6, 1 / 120, -1 / 5040, 1 / 362880, -1 / 39916800
_S13, _S15, _S17 = 1 / 6227020800, -1 / 1307674368000, 1 / 355687428096000
_S19, _S21 = -1 / 121645100408832000, 1 / 51090942171709440000


@register_jitable(inline="always")
def sin_half_pi(r):
    """sin(pi/2 * r) for |r| <= 1 (Taylor to x**21: truncation below 2e-18)."""
    x = r * _HALF_PI
    x2 = x * x
    return x * (1.0 + x2 * (_S3 + x2 * (_S5 + x2 * (_S7 + x2 * (_S9 + x2 * (
        _S11 + x2 * (_S13 + x2 * (_S15 + x2 * (_S17 + x2 * (_S19 + x2 * _S21))))))))))


_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # fdlibm's split of ln 2
_INV_LN2 = 1.4426950408889634
# 2**n = _POW2_LOW[n % 32] * _POW2_HIGH[n // 32 + 34] (two small exact tables, gathered in SIMD)
_POW2_LOW = np.array([2.0 ** k for k in range(32)])
_POW2_HIGH = np.array([0.0] + [2.0 ** (32 * k) for k in range(-33, 32)])  # 2**-1088 rounds to 0


@register_jitable(inline="always")
def exp_fast(x):
    """exp(x) to a few ulp without a libm call (so loops vectorize): x = n ln2 + r, |r| <= ln2/2,
    exp(r) by its Taylor polynomial to r**13 (truncation < 4e-18), times 2**n from two exact tables.
    0 below -745.2, inf above 709.79."""
    xc = min(max(x, -745.2), 709.79)
    n = math.floor(xc * _INV_LN2 + 0.5)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    e = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
            1 / 479001600 + r * (1 / 6227020800)))))))))))))
    k = int(n) if xc == xc else 0  # NaN: any index, the result is NaN below
    e = e * 2.0 if k > 1023 else e  # 2**1024 is not a float: take one factor 2 into e
    k = min(max(k, -1088), 1023)
    v = e * _POW2_LOW[k & 31] * _POW2_HIGH[(k >> 5) + 34]
    return 0.0 if x < -745.2 else (math.inf if x > 709.79 else (v if x == x else x))


def safe_log(x: float) -> float:
    """log(x) for lowering, with log(0) = -1e300 so that 0 * log(0) = 0 (x**0 = 1) and x * log(0) -> exp 0."""
    return math.log(x) if x > 0 else -1e300


@register_jitable(inline="always")
def floor_div(u, d):
    """u // d for integers u >= 0, d >= 1 without an integer division (a float estimate, refined
    with the exact remainder, then corrected by one), so that loops vectorize."""
    fd = float(d)
    k = int(math.floor(float(u) / fd))
    k = k + int(math.floor(float(u - k * d) / fd))  # exact remainder: fixes the estimate for u >= 2**53
    w = u - k * d
    k = k - 1 if w < 0 else k
    w = u - k * d
    return k + 1 if w >= d else k


@register_jitable(inline="always")
def cos_bump(r):
    """Weight of the start value of a cosine anneal with a fraction r left: sin(pi/2 r)**2."""
    s = sin_half_pi(r)
    return s * s


@register_jitable(inline="always")
def f_const(u, p, P, off):
    """value = p0."""
    return p[0]


# Anneals from a = p0 to b = p1 over T = p2 steps, then b. With q = min(u, T) / T and r = 1 - q (both
# from integers, so exact to rounding), each form below is a sum of non-negative terms when a, b >= 0:
# no cancellation at either end.

@register_jitable(inline="always")
def _progress(u, T):
    uu = float(u) if float(u) < T else T
    return uu / T, (T - uu) / T


@register_jitable(inline="always")
def f_linear(u, p, P, off):
    """a r + b q  (= a + (b - a) q)."""
    q, r = _progress(u, p[2])
    return p[0] * r + p[1] * q


@register_jitable(inline="always")
def f_cosine(u, p, P, off):
    """b + (a - b) sin(pi/2 r)^2  (= b + (a - b)(1 + cos(pi q)) / 2)."""
    q, r = _progress(u, p[2])
    return p[1] + (p[0] - p[1]) * cos_bump(r)


@register_jitable(inline="always")
def f_cosine_rising(u, p, P, off):
    """The same cosine when a < b, written a + (b - a) sin(pi/2 q)^2 (no cancellation near a)."""
    q, r = _progress(u, p[2])
    return p[0] + (p[1] - p[0]) * cos_bump(q)


@register_jitable(inline="always")
def f_cosine_periodic(u, p, P, off):
    """PyTorch CosineAnnealingLR past T: b + (a - b)(1 + cos(pi u / T)) / 2 for every u (period 2T),
    as b + (a - b) sin(pi/2 r)^2 with r = |T - u mod 2T| / T (T an integer), or, rising (a < b),
    a + (b - a) sin(pi/2 (1 - r))^2."""
    T = int(p[2])
    w = u - floor_div(u, 2 * T) * (2 * T)
    d = abs(T - w)
    if p[0] >= p[1]:
        return p[1] + (p[0] - p[1]) * cos_bump(float(d) / p[2])
    return p[0] + (p[1] - p[0]) * cos_bump(float(T - d) / p[2])


@register_jitable(inline="always")
def f_one_minus_sqrt(u, p, P, off):
    """b + (a - b)(1 - sqrt(q)), with 1 - sqrt(q) = r / (1 + sqrt(q))."""
    q, r = _progress(u, p[2])
    return p[1] + (p[0] - p[1]) * (r / (1.0 + math.sqrt(q)))


@register_jitable(inline="always")
def f_geometric(u, p, P, off):
    """a (b / a) ** q  (a > 0), as a exp(q ln(b / a)) with ln(b / a) = p3."""
    q, r = _progress(u, p[2])
    return p[0] * exp_fast(q * p[3])


@register_jitable(inline="always")
def _decay_exponent(u, p):
    e = float(u) / p[2]
    ef = math.floor(e)
    return ef if p[3] != 0.0 else e


@register_jitable(inline="always")
def f_exponential(u, p, P, off):
    """init p0 * rate p1 ** e, e = u / decay_steps p2 (floored if staircase p3); rate ** e computed
    as exp(e ln(rate)) with ln(rate) = p4."""
    return p[0] * exp_fast(_decay_exponent(u, p) * p[4])


@register_jitable(inline="always")
def f_inverse_time(u, p, P, off):
    """init p0 / (1 + rate p1 * u / decay_steps p2), the ratio floored if staircase p3."""
    return p[0] / (1.0 + p[1] * _decay_exponent(u, p))


@register_jitable(inline="always")
def f_polynomial(u, p, P, off):
    """(init p0 - end p1) (1 - s / D) ** power p3 + end, s = min(u, D), D = decay_steps p2;
    with cycle p4: s = u and D = decay_steps * max(1, ceil(u / decay_steps))."""
    D = p[2]
    s = float(u)
    if p[4] != 0.0:
        mult = float(math.ceil(s / D))
        if mult < 1.0:
            mult = 1.0
        D = D * mult
    elif s > D:
        s = D
    return (p[0] - p[1]) * max(1.0 - s / D, 0.0) ** p[3] + p[1]  # >= 0: s / D rounds above 1 past 2**53


@register_jitable(inline="always")
def f_step(u, p, P, off):
    """init p0 * gamma p2 ** floor(u / step_size p1), as exp(k ln(gamma)) with ln(gamma) = p3."""
    return p[0] * exp_fast(float(floor_div(u, int(p[1]))) * p[3])


@register_jitable
def f_piecewise(u, p, P, off):
    """values[k], k = number of boundaries <= u; n = p0 boundaries at P[off+1:], then n+1 values."""
    n = int(p[0])
    uf = float(u)
    k = 0
    for j in range(n):
        if uf >= P[off + 1 + j]:
            k += 1
    return P[off + 1 + n + k]


@register_jitable(inline="always")
def restart_start(i, first, t_mul):
    """First step of restart cycle i: first * (t_mul**i - 1) / (t_mul - 1), or first * i."""
    if t_mul == 1.0:
        return first * i
    return first * (t_mul ** i - 1.0) / (t_mul - 1.0)


@register_jitable
def restart_cycle(u, first, t_mul):
    """(i, pos): the restart cycle i holding step u and u's position in it. Integer arithmetic when
    t_mul == 1 and first is an integer (exact for every u); else a closed-form guess of i settled by
    at most a few exact comparisons with restart_start."""
    if t_mul == 1.0 and first == math.floor(first):
        n = int(first)
        k = floor_div(u, n)
        return float(k), float(u - k * n)
    uf = float(u)
    if t_mul == 1.0:
        i = float(math.floor(uf / first))
    else:
        i = float(math.floor(math.log1p(uf / first * (t_mul - 1.0)) / math.log(t_mul)))
    i = max(i, 0.0)
    for _ in range(4):
        if i > 0.0 and restart_start(i, first, t_mul) > uf:
            i -= 1.0
        elif restart_start(i + 1.0, first, t_mul) <= uf:
            i += 1.0
        else:
            break  # settled: the further rounds would test the same i and change nothing
    return i, uf - restart_start(i, first, t_mul)


@register_jitable
def restart_value(pos, length, weight, p):
    """Value at position pos of a cycle of ``length`` steps whose amplitude weight is m_mul**i:
    floor + (lr - floor) w c with c = sin(pi/2 r)^2, r = (length - pos) / length; rising (lr < floor)
    as floor (1 - w c) + lr w c, with 1 - c = sin(pi/2 q)^2, q = pos / length, when w = 1."""
    c = cos_bump((length - pos) / length)
    if p[0] >= p[1]:
        return p[1] + (p[0] - p[1]) * weight * c
    rest = cos_bump(pos / length) if weight == 1.0 else 1.0 - weight * c
    return p[1] * rest + p[0] * (weight * c)


@register_jitable
def f_restarts(u, p, P, off):
    """SGDR: lr p0, floor p1, first period p2, t_mul p3, m_mul p4: in cycle i (length p2 * p3**i)
    floor + (lr - floor) m_mul**i (1 + cos(pi pos / length)) / 2 (see ``restart_value``)."""
    i, pos = restart_cycle(u, p[2], p[3])
    return restart_value(pos, p[2] * p[3] ** i, p[4] ** i, p)


@register_jitable
def f_phases(u, p, P, off):
    """PyTorch OneCycleLR phases: n = p0 phases, anneal p1 (COSINE or LINEAR); phase k ends at step
    P[off+2+3k] (float) going from a = P[off+3+3k] to b = P[off+4+3k]; the last phase extrapolates.
    With q the fraction of the phase done and r = 1 - q: linear a r + b q; cosine as ``f_cosine``."""
    n = int(p[0])
    uf = float(u)
    start = 0.0
    for k in range(n):
        o = off + 2 + 3 * k
        end = P[o]
        if uf <= end or k == n - 1:
            a = P[o + 1]
            b = P[o + 2]
            r = (end - uf) / (end - start)
            q = (uf - start) / (end - start)
            if p[1] != COSINE:
                return a * r + b * q
            if a >= b:
                return b + (a - b) * cos_bump(r)
            return a + (b - a) * cos_bump(q)
        start = end
    return 0.0


@register_jitable(inline="always")
def f_cyclic(u, p, P, off):
    """PyTorch CyclicLR: base p0, peak p1, up p2, down p3 steps. With total = up + down,
    cycle = floor(1 + u / total), x = 1 + u / total - cycle: rise x / ratio while x <= ratio = up / total,
    else fall (x - 1) / (ratio - 1); times scale = exp(p4 * arg + p5) with arg = cycle (p6 == 0) or
    u: (0, 0) triangular, (-ln 2, ln 2) triangular2 (1 / 2**(cycle - 1)), (ln gamma, 0) exp_range."""
    total = p[2] + p[3]
    ratio = p[2] / total
    uf = float(u)
    cycle = math.floor(1.0 + uf / total)
    x = 1.0 + uf / total - cycle
    rise = x / ratio
    fall = (x - 1.0) / (ratio - 1.0)
    arg = cycle if p[6] == SCALE_CYCLE else uf
    scale = exp_fast(p[4] * arg + p[5])
    return p[0] + (p[1] - p[0]) * ((rise if x <= ratio else fall) * scale)


@register_jitable(inline="always")
def f_inverse_sqrt(u, p, P, off):
    """Noam: peak p0 * min(s / w, sqrt(w / s)) with s = u + 1, w = warmup p1 (w = 0: peak / sqrt(s))."""
    s = float(u) + 1.0
    w = p[1]
    if w <= 0.0:
        return p[0] / math.sqrt(s)
    return p[0] * min(s / w, math.sqrt(w / s))


@register_jitable(inline="always")
def leaf_value(op, u, p, P, off):
    """Dispatch on the operation code (TABLE leaves are read by the caller)."""
    if op == CONST:
        return f_const(u, p, P, off)
    if op == LINEAR:
        return f_linear(u, p, P, off)
    if op == COSINE:
        return f_cosine(u, p, P, off)
    if op == COSINE_RISING:
        return f_cosine_rising(u, p, P, off)
    if op == COSINE_PERIODIC:
        return f_cosine_periodic(u, p, P, off)
    if op == ONE_MINUS_SQRT:
        return f_one_minus_sqrt(u, p, P, off)
    if op == GEOMETRIC:
        return f_geometric(u, p, P, off)
    if op == EXPONENTIAL:
        return f_exponential(u, p, P, off)
    if op == INVERSE_TIME:
        return f_inverse_time(u, p, P, off)
    if op == POLYNOMIAL:
        return f_polynomial(u, p, P, off)
    if op == STEP:
        return f_step(u, p, P, off)
    if op == PIECEWISE:
        return f_piecewise(u, p, P, off)
    if op == RESTARTS:
        return f_restarts(u, p, P, off)
    if op == PHASES:
        return f_phases(u, p, P, off)
    if op == CYCLIC:
        return f_cyclic(u, p, P, off)
    if op == INVERSE_SQRT:
        return f_inverse_sqrt(u, p, P, off)
    return math.nan
