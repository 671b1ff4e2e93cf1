"""The Numba CPU kernel's loops on contiguous steps u0, u0 + 1, ... of one tile (``lrcore.kernels.cpu``
splits the work into tiles of ``TILE`` steps and dispatches each leaf on contiguous steps here, to
``apply_contiguous``; arbitrary steps run its generic per-formula loops).

On contiguous steps the loops are built to vectorize: float steps come from float(u0) plus exact float
offsets (AVX2 has no int64 -> double conversion); per-step divisions become products with a reciprocal
(values then differ by an ulp or so, far inside the 1e-12 the backends keep); piecewise formulas run
segment by segment (constant runs of step, multistep, piecewise and staircase schedules filled with one
value each; one-cycle phases, periodic-cosine periods, cyclic cycles and restart cycles found once per
segment); exponentials multiply an exact anchor every ``ANCHOR`` steps by a tile's table of factors;
polynomial decays and inverse-sqrt multiply an exact anchor per block of up to ``SERIES_BLOCK`` steps by a
binomial series (``_binomial_series``: eight fused multiply-adds per step, no pow, sqrt or division),
exact near the end of a decay and early in training; elsewhere ``x ** power`` comes from the bits of x
(``_polynomial_log``) instead of a libm pow per step.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import formulas as F

TILE = 2048  # steps per tile of the kernel: the longest range these loops get
ANCHOR = 64  # steps between exact anchors of the exponential factors (``_exponential_anchored``)
OPTS = dict(fastmath={"contract"}, error_model="numpy")  # the compile options of every CPU kernel function
_OPTS = OPTS


_OFFSETS = np.arange(TILE, dtype=np.float64)
_EXACT = 2.0 ** 53  # below it, float(u0) + k is float(u0 + k) exactly


@njit(inline="always")
def _float_steps(dst, u0):
    """dst[q] = float(u0 + q), exactly as a conversion gives it; a vectorized add of float offsets
    while the steps stay below 2**53 (AVX2 has no int64 -> double conversion, which would keep the
    formula loops that read these from vectorizing)."""
    n = dst.shape[0]
    if float(u0) + float(n) < _EXACT:
        f0 = float(u0)
        for q in range(n):
            dst[q] = f0 + _OFFSETS[q]
    else:
        for q in range(n):
            dst[q] = float(u0 + q)


def _contiguous_loops(f):
    """f at float steps uf[k] (``_float_steps``: the same float(u) the formula would take), assigned or
    multiplied into b: a loop with no test and no conversion, which LLVM vectorizes."""
    @njit(**_OPTS)
    def loop(b, uf, assign, p, P, off):
        if assign:
            for k in range(b.shape[0]):
                b[k] = f(uf[k], p, P, off)
        else:
            for k in range(b.shape[0]):
                b[k] = b[k] * f(uf[k], p, P, off)
    return loop


_c_geometric, _c_inverse_sqrt = (_contiguous_loops(f) for f in (F.f_geometric, F.f_inverse_sqrt))


# Anneals a -> b over T steps on float steps, with the fractions q = min(u, T) / T and r = (T - min(u, T)) / T
# taken as products with 1 / T (a division per step is the bottleneck of these loops; the product differs
# from the quotient by at most an ulp, so values by a few ulp): the formulas of ``formulas.f_linear`` etc.

def _anneal_loops(g):
    """The loop of an anneal g(q, r, p) at steps u0, u0 + 1, ...: below 2**53 the float steps are
    float(u0) + offset inside the loop (no separate pass), else read from ``uf`` (``_float_steps``)."""
    @njit(**_OPTS)
    def loop(b, uf, assign, p, u0):
        T = p[2]
        inv = 1.0 / T
        n = b.shape[0]
        if float(u0) + float(n) < _EXACT:
            f0 = float(u0)
            if assign:
                for k in range(n):
                    uu = min(f0 + _OFFSETS[k], T)
                    b[k] = g((uu * inv), ((T - uu) * inv), p)
            else:
                for k in range(n):
                    uu = min(f0 + _OFFSETS[k], T)
                    b[k] = b[k] * g((uu * inv), ((T - uu) * inv), p)
            return
        _float_steps(uf, u0)
        for k in range(n):
            uu = min(uf[k], T)
            v = g((uu * inv), ((T - uu) * inv), p)
            b[k] = v if assign else b[k] * v
    return loop


@njit(inline="always")
def _g_linear(q, r, p):
    return p[0] * r + p[1] * q


@njit(inline="always")
def _g_cosine(q, r, p):
    return p[1] + (p[0] - p[1]) * F.cos_bump(r)


@njit(inline="always")
def _g_cosine_rising(q, r, p):
    return p[0] + (p[1] - p[0]) * F.cos_bump(q)


@njit(inline="always")
def _g_one_minus_sqrt(q, r, p):
    return p[1] + (p[0] - p[1]) * (r / (1.0 + math.sqrt(q)))


_c_linear, _c_cosine, _c_cosine_rising, _c_one_minus_sqrt = (
    _anneal_loops(g) for g in (_g_linear, _g_cosine, _g_cosine_rising, _g_one_minus_sqrt))


@njit(**_OPTS)
def _c_inverse_time(b, uf, assign, p, u0):
    """INVERSE_TIME (not staircase): p0 / (1 + p1 u / p2), u / p2 as u * (1 / p2); float(u) as
    float(u0) + k below 2**53, else from the float steps uf."""
    inv = 1.0 / p[2]
    n = b.shape[0]
    if float(u0) + float(n) < _EXACT:
        f0 = float(u0)
        for k in range(n):
            v = p[0] / (1.0 + p[1] * ((f0 + _OFFSETS[k]) * inv))
            b[k] = v if assign else b[k] * v
        return
    _float_steps(uf, u0)
    for k in range(n):
        v = p[0] / (1.0 + p[1] * (uf[k] * inv))
        b[k] = v if assign else b[k] * v


@njit(inline="always")
def _put(seg, v, assign):
    """seg[:] = v (assign) or seg[:] *= v."""
    if assign:
        for q in range(seg.shape[0]):
            seg[q] = v
    else:
        for q in range(seg.shape[0]):
            seg[q] = seg[q] * v


@njit(**_OPTS)
def _step_runs(b, u0, assign, p):
    """STEP on contiguous steps u0, u0 + 1, ...: constant runs of step_size steps, each value
    ``f_step``'s (p0 exp(k ln gamma)) computed once per run."""
    size = int(p[1])
    k = F.floor_div(u0, size)
    pos = u0 - k * size
    i = 0
    n = b.shape[0]
    while i < n:
        stop = min(n, i + size - pos)
        _put(b[i:stop], p[0] * F.exp_fast(float(k) * p[3]), assign)
        i, k, pos = stop, k + 1, 0


@njit(**_OPTS)
def _piecewise_runs(b, u0, assign, p, P, off):
    """PIECEWISE on contiguous steps: runs between boundaries (integers stored as floats), each
    filled with ``f_piecewise``'s value."""
    nb = int(p[0])
    n = b.shape[0]
    i = 0
    while i < n:
        u = u0 + i
        k = 0
        for j in range(nb):
            if float(u) >= P[off + 1 + j]:
                k += 1
        stop = n
        if k < nb:  # the next boundary above u: the run ends there
            stop = min(n, i + int(math.ceil(P[off + 1 + k] - float(u))))
        _put(b[i:max(stop, i + 1)], P[off + 1 + nb + k], assign)
        i = max(stop, i + 1)


@njit(**_OPTS)
def _phases_segments(b, u0, uf, assign, p, P, off):
    """PHASES (one-cycle) on contiguous steps: the phase is found once per segment (the steps it holds
    under ``f_phases``'s rule, the first phase whose end is >= u, which only moves forward as u grows),
    then the segment's values are ``f_phases``'s expressions, each case in a loop of its own without
    search; float(u) as float(u_i) + q below 2**53 (else read from the float steps uf)."""
    nph = int(p[0])
    n = b.shape[0]
    small = float(u0) + float(n) < _EXACT
    if not small:
        _float_steps(uf, u0)
    cosine = p[1] == F.COSINE
    i = 0
    while i < n:
        ustart = float(u0 + i)
        start = 0.0
        k = 0
        while k < nph - 1 and not ustart <= P[off + 2 + 3 * k]:
            start = P[off + 2 + 3 * k]
            k += 1
        o = off + 2 + 3 * k
        end, a, bb = P[o], P[o + 1], P[o + 2]
        stop = n
        if k < nph - 1:  # steps u <= end stay in phase k
            stop = min(n, max(i + 1, int(math.floor(end)) - u0 + 1))
        seg = b[i:stop]
        inv = 1.0 / (end - start)
        if small:  # x = ustart + q exactly
            if not cosine:
                for q in range(seg.shape[0]):
                    x = ustart + _OFFSETS[q]
                    v = a * ((end - x) * inv) + bb * ((x - start) * inv)
                    seg[q] = v if assign else seg[q] * v
            elif a >= bb:
                for q in range(seg.shape[0]):
                    v = bb + (a - bb) * F.cos_bump((end - (ustart + _OFFSETS[q])) * inv)
                    seg[q] = v if assign else seg[q] * v
            else:
                for q in range(seg.shape[0]):
                    v = a + (bb - a) * F.cos_bump(((ustart + _OFFSETS[q]) - start) * inv)
                    seg[q] = v if assign else seg[q] * v
        else:
            xs = uf[i:stop]
            for q in range(seg.shape[0]):
                x = xs[q]
                r = (end - x) * inv
                qq = (x - start) * inv
                if not cosine:
                    v = a * r + bb * qq
                elif a >= bb:
                    v = bb + (a - bb) * F.cos_bump(r)
                else:
                    v = a + (bb - a) * F.cos_bump(qq)
                seg[q] = v if assign else seg[q] * v
        i = stop


@njit(**_OPTS)
def _periodic_segments(b, u0, uf, assign, p):
    """COSINE_PERIODIC on contiguous steps, one half period at a time: w = u mod 2T runs w0, w0 + 1, ...
    without a division, d = |T - w| is T - w on the falling half (w <= T) and w - T on the rising one, in
    float (exact integers); values as ``f_cosine_periodic`` with d / T as d * (1 / T)."""
    T = int(p[2])
    period = 2 * T
    w = u0 - F.floor_div(u0, period) * period
    n = b.shape[0]
    if not float(u0) + float(n) < _EXACT or not float(period) < _EXACT:
        _float_steps(uf, u0)
        for q in range(n):
            v = F.f_cosine_periodic(u0 + q, p, p, 0)
            b[q] = v if assign else b[q] * v
        return
    fT = p[2]
    inv = 1.0 / fT
    falling = p[0] >= p[1]
    lo, hi = (p[1], p[0]) if falling else (p[0], p[1])
    amp = hi - lo
    i = 0
    while i < n:
        fw = float(w)
        if w <= T:  # d = T - w
            stop = min(n, i + T - w + 1)
            sign, base = -1.0, fT - fw
        else:       # d = w - T
            stop = min(n, i + period - w)
            sign, base = 1.0, fw - fT
        seg = b[i:stop]
        if falling:
            for q in range(seg.shape[0]):
                d = base + sign * _OFFSETS[q]
                v = lo + amp * F.cos_bump(d * inv)
                seg[q] = v if assign else seg[q] * v
        else:
            for q in range(seg.shape[0]):
                d = base + sign * _OFFSETS[q]
                v = lo + amp * F.cos_bump((fT - d) * inv)
                seg[q] = v if assign else seg[q] * v
        w += stop - i
        if w >= period:
            w = 0
        i = stop


@njit(**_OPTS)
def _cyclic_segments(b, u0, uf, assign, p, scratch):
    """CYCLIC on contiguous steps, one cycle at a time: the cycle (``f_cyclic``'s floor, settled by
    the same float test at the segment's ends) and, for scale_mode='cycle', the scale are computed once
    per cycle; per step only x and the triangle (and gamma**u for 'iterations')."""
    total = p[2] + p[3]
    ratio = p[2] / total
    inv_rise, inv_fall = 1.0 / ratio, 1.0 / (ratio - 1.0)
    n = b.shape[0]
    per_cycle = p[6] == F.SCALE_CYCLE
    E = scratch[:ANCHOR]
    small = float(u0) + float(n) < _EXACT
    if not small:
        _float_steps(uf, u0)
    i = 0
    while i < n:
        cycle = math.floor(1.0 + float(u0 + i) / total)
        stop = min(n, i + max(1, int((cycle * total) - float(u0 + i))))
        while stop > i + 1 and math.floor(1.0 + float(u0 + stop - 1) / total) != cycle:
            stop -= 1
        while stop < n and math.floor(1.0 + float(u0 + stop) / total) == cycle:
            stop += 1
        cscale = F.exp_fast(p[4] * cycle + p[5])
        if not per_cycle:
            for q in range(ANCHOR):
                E[q] = F.exp_fast(float(q) * p[4])
        j = i
        while j < stop:  # blocks of ANCHOR steps: gamma**u = exp(p4 u_anchor + p5) exp(p4 q)
            jstop = min(stop, j + ANCHOR)
            seg = b[j:jstop]
            A = cscale if per_cycle else F.exp_fast(p[4] * float(u0 + j) + p[5])
            ufs = uf[j:jstop]
            fj = float(u0 + j)
            for q in range(seg.shape[0]):
                uq = fj + _OFFSETS[q] if small else ufs[q]
                x = 1.0 + uq / total - cycle  # a quotient, as f_cyclic: x cancels, so no reciprocal here
                rise = x * inv_rise
                fall = (x - 1.0) * inv_fall
                scale = A if per_cycle else A * E[q]
                v = p[0] + (p[1] - p[0]) * ((rise if x <= ratio else fall) * scale)
                seg[q] = v if assign else seg[q] * v
            j = jstop
        i = stop


_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951
_INV_LN2 = 1.4426950408889634


@njit(**_OPTS)
def _polynomial_log(b, u0, uf, assign, p, scratch, tt):
    """POLYNOMIAL on contiguous steps without a libm ``pow`` per step (which does not vectorize):
    x ** power = exp(power ln x), ln x from the bits of x (viewed as integers: exponent e and mantissa
    m in [sqrt(1/2), sqrt(2))), ln m = 2 atanh(f), f = (m - 1) / (m + 1), by its series to f**35
    (|f| <= 0.172: truncation < 1e-28); exp by ``exp_fast``. Relative error a few 1e-16 * |power ln x|
    (< 1e-13). x = 0 gives 0 (power > 0) or 1 (power 0); subnormal x (below 2**-1022) takes pow."""
    n = b.shape[0]
    xs = scratch[:n]
    D0, power = p[2], p[3]
    for q in range(n):  # the base, as f_polynomial
        s = uf[q]
        D = D0
        if p[4] != 0.0:
            mult = float(math.ceil(s / D))
            if mult < 1.0:
                mult = 1.0
            D = D * mult
        elif s > D:
            s = D
        xs[q] = max(1.0 - s / D, 0.0)
    if power == 1.0 or power == 2.0 or power == 0.5:  # the usual powers: exact as numpy's own fast paths
        for q in range(n):
            x = xs[q]
            w = x if power == 1.0 else (x * x if power == 2.0 else math.sqrt(x))
            v = (p[0] - p[1]) * w + p[1]
            b[q] = v if assign else b[q] * v
        return
    # ln x from the bits, in loops of integer-only and float-only operations (AVX2 has no int64 <-> double
    # conversion: the exponent becomes a double by the 2**52 trick, its bits OR-ed into those of 2**52)
    bits = xs.view(np.uint64)
    mant = tt[:n].view(np.uint64)
    for q in range(n):
        mant[q] = (bits[q] & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000)
        bits[q] = (bits[q] >> np.uint64(52)) | np.uint64(0x4330000000000000)
    ms = tt[:n].view(np.float64)
    for q in range(n):
        m = ms[q]
        e = xs[q] - (4503599627370496.0 + 1023.0)
        big = m > _SQRT2
        m = m * 0.5 if big else m
        e = e + 1.0 if big else e
        f = (m - 1.0) / (m + 1.0)
        f2 = f * f
        series = 1.0 + f2 * (1 / 3 + f2 * (1 / 5 + f2 * (1 / 7 + f2 * (1 / 9 + f2 * (1 / 11 + f2 * (1 / 13 + f2 * (
            1 / 15 + f2 * (1 / 17 + f2 * (1 / 19 + f2 * (1 / 21 + f2 * (1 / 23 + f2 * (1 / 25 + f2 * (
                1 / 27 + f2 * (1 / 29 + f2 * (1 / 31 + f2 * (1 / 33 + f2 * (1 / 35)))))))))))))))))
        ln = (e * _LN2_HI + 2.0 * f * series) + e * _LN2_LO
        # exp(power ln x) = 2**k exp(r), |r| <= ln2 / 2: exp(r) by exp_fast's polynomial, 2**k from bits below
        z = power * ln
        k = np.floor(z * _INV_LN2 + 0.5)  # np.floor stays a float (math.floor gives an int: a conversion)
        r = (z - k * _LN2_HI) - k * _LN2_LO
        er = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
            1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
                1 / 479001600 + r * (1 / 6227020800)))))))))))))
        special = (e == -1023.0) | (z <= -708.0) | (z >= 709.0)  # x = 0 or subnormal, or 2**k not normal (no branch)
        ms[q] = math.nan if special else er
        xs[q] = (0.0 if special else k) + (4503599627370496.0 + 1023.0)
    for q in range(n):  # 2**k: the biased exponent's bits moved into place
        bits[q] = (bits[q] & np.uint64(0x7FF)) << np.uint64(52)
    for q in range(n):
        w = ms[q] * xs[q]
        if w != w:  # x was 0 or subnormal, or x ** power under/overflows (rare): branch, so pow is not speculated
            s = float(u0 + q)
            D = D0
            if p[4] != 0.0:
                D = D * max(1.0, float(math.ceil(s / D)))
            elif s > D:
                s = D
            x = max(1.0 - s / D, 0.0)
            w = (1.0 if power == 0.0 else 0.0) if x == 0.0 else x ** power
        v = (p[0] - p[1]) * w + p[1]
        b[q] = v if assign else b[q] * v


# (1 + y) ** power by its binomial series in blocks: on a block of K consecutive steps anchored at an exact
# value A (one libm pow or sqrt per block), step k's value is A (1 + y_k) ** power with |y_k| <= reach, and
# (1 + y) ** power = 1 + c1 y + ... + c8 y**8 (c_j = binom(power, j)) to 2**-56 relative: eight fused
# multiply-adds per step, no pow, no division, no sqrt. ``reach`` bounds the next term |c9| y**9 by 2**-57
# and |power y| by 1/4 (terms then fall by 4x or more: the tail is under 4/3 of the first dropped term, and
# the sum stays in [0.7, 1.3], so Horner's rounding is a few ulp).
SERIES_BLOCK = 256  # the longest block of one anchor
SERIES_MIN = 16     # a block shorter than this (the series reaches too few steps) is computed exactly


@njit(inline="always")
def _binomial_coefficients(power):
    c1 = power
    c2 = c1 * (power - 1.0) / 2.0
    c3 = c2 * (power - 2.0) / 3.0
    c4 = c3 * (power - 3.0) / 4.0
    c5 = c4 * (power - 4.0) / 5.0
    c6 = c5 * (power - 5.0) / 6.0
    c7 = c6 * (power - 6.0) / 7.0
    c8 = c7 * (power - 7.0) / 8.0
    c9 = c8 * (power - 8.0) / 9.0
    reach = 0.25 / max(abs(power), 1.0)
    if c9 != 0.0:
        reach = min(reach, (2.0 ** -57 / abs(c9)) ** (1.0 / 9.0))
    return (c1, c2, c3, c4, c5, c6, c7, c8), reach


@njit(inline="always")
def _binomial_series(y, c):
    """(1 + y) ** power for |y| <= reach (``_binomial_coefficients``)."""
    return 1.0 + y * (c[0] + y * (c[1] + y * (c[2] + y * (c[3] + y * (c[4] + y * (c[5] + y * (c[6] + y * c[7])))))))


@njit(**_OPTS)
def _polynomial_series(b, u0, uf, assign, p, scratch, tt):
    """POLYNOMIAL on contiguous steps: x ** power with x = N / D, N = D - s the steps left of the decay
    (with cycle, of the current cycle: D = decay_steps max(1, ceil(s / decay_steps)), as ``f_polynomial``),
    in blocks anchored at N_a: x ** power = (N_a / D) ** power (1 - d / N_a) ** power, d = s - s_a, the
    second factor by ``_binomial_series``. Steps where x is small (x < 1e-3 max(1, power): numpy's own
    1 - s / D there has a relative error above 1e-13 / power, which the exact form would not share), where
    the series reaches too few steps, or where the anchor is not a normal float go to ``_polynomial_log``
    (up to the end of the decay or of the cycle)."""
    n = b.shape[0]
    D0, power = p[2], p[3]
    cycle = p[4] != 0.0
    if not float(u0) + float(n) < _EXACT:
        _float_steps(uf, u0)
        _polynomial_log(b, u0, uf, assign, p, scratch, tt)
        return
    c, reach = _binomial_coefficients(power)
    xmin = 1e-3 * max(abs(power), 1.0)
    amp = p[0] - p[1]
    f0 = float(u0)
    i = 0
    while i < n:
        sa = f0 + float(i)
        D = D0
        if cycle:
            D = D0 * max(1.0, math.ceil(sa / D0))
        Na = D - sa
        K = min(n - i, SERIES_BLOCK)
        if Na > 0.0:
            K = min(K, int(reach * Na) + 1)
        A = (Na / D) ** power if Na > 0.0 else 0.0
        fast = Na >= xmin * D and (K >= SERIES_MIN or K == n - i) and A >= 1e-290
        if fast and cycle:  # the whole block in this cycle by f_polynomial's own test
            fast = D0 * max(1.0, math.ceil((sa + float(K - 1)) / D0)) == D
        if not fast:  # exactly, to the end of the decay (no cycle) or of this cycle
            K = n - i
            if cycle:
                K = min(K, max(1, int(Na) + 1))
            _float_steps(uf[i:i + K], u0 + i)
            _polynomial_log(b[i:i + K], u0 + i, uf[i:i + K], assign, p, scratch, tt)
            i += K
            continue
        m = -1.0 / Na
        seg = b[i:i + K]
        for q in range(K):
            v = amp * (A * _binomial_series(_OFFSETS[q] * m, c)) + p[1]
            seg[q] = v if assign else seg[q] * v
        i += K


@njit(**_OPTS)
def _inverse_sqrt_series(b, u0, uf, assign, p, P, off):
    """INVERSE_SQRT on contiguous steps, s = u + 1: warmup steps (s <= w) lr s / w as s * (1 / w); after it
    lr sqrt(w / s) (or lr / sqrt(s) for w = 0) as lr sqrt(w) s_a**-1/2 (1 + d / s_a)**-1/2 in blocks anchored
    at s_a (``_binomial_series``); steps too early for the series (s below ~16 / reach) exactly, as
    ``f_inverse_sqrt``."""
    n = b.shape[0]
    lr, w = p[0], p[1]
    if not float(u0) + float(n) < _EXACT:
        _float_steps(uf, u0)
        _c_inverse_sqrt(b, uf, assign, p, P, off)
        return
    c, reach = _binomial_coefficients(-0.5)
    scale = lr if w <= 0.0 else lr * math.sqrt(w)
    invw = 1.0 / w if w > 0.0 else 0.0
    f1 = float(u0) + 1.0
    i = 0
    while i < n:
        sa = f1 + float(i)
        if w > 0.0 and sa <= w:  # warmup: s = sa, sa + 1, ... <= w
            K = min(n - i, int(math.floor(w - sa)) + 1)
            seg = b[i:i + K]
            for q in range(K):
                v = lr * ((sa + _OFFSETS[q]) * invw)
                seg[q] = v if assign else seg[q] * v
            i += K
            continue
        K = min(n - i, SERIES_BLOCK, int(reach * sa) + 1)
        if K >= SERIES_MIN or K == n - i:
            A = scale / math.sqrt(sa)
            m = 1.0 / sa
            seg = b[i:i + K]
            for q in range(K):
                v = A * _binomial_series(_OFFSETS[q] * m, c)
                seg[q] = v if assign else seg[q] * v
            i += K
            continue
        K = min(n - i, max(1, int(SERIES_MIN / reach - sa)))  # exactly, up to where the series reaches
        _float_steps(uf[i:i + K], u0 + i)
        _c_inverse_sqrt(b[i:i + K], uf[i:i + K], assign, p, P, off)
        i += K


@njit(**_OPTS)
def _exponential_anchored(b, u0, assign, p, scratch):
    """EXPONENTIAL (not staircase) on contiguous steps: p0 rate**(u / D) = p0 exp(a) exp(c q) with
    a the exact exponent at an anchor every ``ANCHOR`` steps and q < ANCHOR the offset from it: the
    ANCHOR factors exp(c q) and the tile's anchors p0 exp(a) are computed once per tile (two vectorized
    passes of ``exp_fast``), then one multiplication per step. Relative error a few ulp plus
    |u ln(rate) / D| ulp (the exponent's own rounding, as in any pow)."""
    n = b.shape[0]
    c = p[4] / p[2]
    E = scratch[:ANCHOR]
    for q in range(ANCHOR):
        E[q] = F.exp_fast(float(q) * c)
    nblocks = (n + ANCHOR - 1) // ANCHOR
    A = scratch[ANCHOR:ANCHOR + nblocks]
    f0 = float(u0)
    small = f0 + float(n) < _EXACT
    for j in range(nblocks):  # float(u0 + j ANCHOR) without a conversion per anchor below 2**53
        uj = f0 + _OFFSETS[j] * ANCHOR if small else float(u0 + j * ANCHOR)
        A[j] = p[0] * F.exp_fast(uj / p[2] * p[4])
    i = 0
    j = 0
    while i < n:
        stop = min(n, i + ANCHOR)
        seg = b[i:stop]
        a = A[j]
        if assign:
            for q in range(seg.shape[0]):
                seg[q] = a * E[q]
        else:
            for q in range(seg.shape[0]):
                seg[q] = seg[q] * (a * E[q])
        i = stop
        j += 1


@njit(**_OPTS)
def _staircase_runs(b, u0, assign, p):
    """EXPONENTIAL / INVERSE_TIME with staircase on contiguous steps: runs of equal floor(u / D) (settled
    by the same float test at each run's ends), each value computed once."""
    n = b.shape[0]
    i = 0
    inverse = p[7] != 0.0
    while i < n:
        e = math.floor(float(u0 + i) / p[2])
        stop = min(n, i + max(1, int((e + 1.0) * p[2] - float(u0 + i))))
        while stop > i + 1 and math.floor(float(u0 + stop - 1) / p[2]) != e:
            stop -= 1
        while stop < n and math.floor(float(u0 + stop) / p[2]) == e:
            stop += 1
        v = p[0] / (1.0 + p[1] * e) if inverse else p[0] * F.exp_fast(e * p[4])
        _put(b[i:stop], v, assign)
        i = stop


@njit(**_OPTS)
def _restarts_contiguous(b, u0, uf, assign, p):
    """RESTARTS on contiguous steps, one cycle at a time: the cycle, its length and weight come from
    ``restart_cycle`` once per cycle; the position in the cycle is pos0 + q (t_mul = 1, integer period)
    or float(u) - start, as ``f_restarts`` computes it, float(u) as float(u_k) + q below 2**53 (else read
    from the float steps uf): no conversion per step."""
    count = b.shape[0]
    first, t_mul = p[2], p[3]
    exact = t_mul == 1.0 and first == math.floor(first)
    falling = p[0] >= p[1]
    small = float(u0) + float(count) < _EXACT
    if not small:
        _float_steps(uf, u0)
    k = 0
    while k < count:
        i, pos0 = F.restart_cycle(u0 + k, first, t_mul)
        length = first * t_mul ** i
        weight = p[4] ** i
        rest = length - pos0  # steps left in this cycle, to within rounding
        stop = min(count, k + max(1, int(math.ceil(rest))))
        inside = float(count - k) + 2.0 + 1e-12 * float(u0 + count) < rest  # the tile ends well inside it
        if not exact and not inside:  # float cycle ends: settle the last step of this cycle by the same test
            while stop > k + 1 and F.restart_cycle(u0 + stop - 1, first, t_mul)[0] != i:
                stop -= 1
            while stop < count and F.restart_cycle(u0 + stop, first, t_mul)[0] == i:
                stop += 1
        seg = b[k:stop]
        us = uf[k:stop]
        start = F.restart_start(i, first, t_mul)
        amp = (p[0] - p[1]) * weight
        inv = 1.0 / length
        fk = float(u0 + k)
        if falling and exact:  # the common cases in loops of their own: nothing but the cosine
            for q in range(seg.shape[0]):
                v = p[1] + amp * F.cos_bump((length - (pos0 + _OFFSETS[q])) * inv)
                seg[q] = v if assign else seg[q] * v
        elif falling and small:
            for q in range(seg.shape[0]):
                v = p[1] + amp * F.cos_bump((length - ((fk + _OFFSETS[q]) - start)) * inv)
                seg[q] = v if assign else seg[q] * v
        elif falling:
            for q in range(seg.shape[0]):
                v = p[1] + amp * F.cos_bump((length - (us[q] - start)) * inv)
                seg[q] = v if assign else seg[q] * v
        else:
            for q in range(seg.shape[0]):
                pos = pos0 + _OFFSETS[q] if exact else ((fk + _OFFSETS[q]) if small else us[q]) - start
                c = F.cos_bump((length - pos) * inv)
                rest = F.cos_bump(pos * inv) if weight == 1.0 else 1.0 - weight * c
                v = p[1] * rest + p[0] * (weight * c)
                seg[q] = v if assign else seg[q] * v
        k = stop


@njit(**_OPTS)
def apply_contiguous(op, b, u0, assign, p, P, off, scratch, tt, fsteps):
    """Leaf ``op`` at the contiguous steps u0, u0 + 1, ... of b (assigned or multiplied in) by the loop specialised
    for its formula (segment loops for the piecewise ones: runs, phases, periods, cycles); False for a formula
    with no such loop (the caller runs its generic loop)."""
    uf = fsteps[:b.shape[0]]
    if op == F.GEOMETRIC:  # the others form their float steps themselves (or need none)
        _float_steps(uf, u0)
    if op == F.LINEAR:
        _c_linear(b, uf, assign, p, u0)
        return True
    if op == F.COSINE:
        _c_cosine(b, uf, assign, p, u0)
        return True
    if op == F.COSINE_RISING:
        _c_cosine_rising(b, uf, assign, p, u0)
        return True
    if op == F.ONE_MINUS_SQRT:
        _c_one_minus_sqrt(b, uf, assign, p, u0)
        return True
    if op == F.GEOMETRIC:
        _c_geometric(b, uf, assign, p, P, off)
        return True
    if op == F.INVERSE_TIME and p[3] == 0.0:
        _c_inverse_time(b, uf, assign, p, u0)
        return True
    if op == F.INVERSE_SQRT:
        _inverse_sqrt_series(b, u0, uf, assign, p, P, off)
        return True
    if op == F.RESTARTS:
        _restarts_contiguous(b, u0, uf, assign, p)
        return True
    if op == F.CONST:
        _put(b, p[0], assign)
        return True
    if op == F.STEP:
        _step_runs(b, u0, assign, p)
        return True
    if op == F.PIECEWISE:
        _piecewise_runs(b, u0, assign, p, P, off)
        return True
    if op == F.PHASES:
        _phases_segments(b, u0, uf, assign, p, P, off)
        return True
    if op == F.COSINE_PERIODIC:
        _periodic_segments(b, u0, uf, assign, p)
        return True
    if op == F.CYCLIC:
        _cyclic_segments(b, u0, uf, assign, p, scratch)
        return True
    if op == F.POLYNOMIAL:
        _polynomial_series(b, u0, uf, assign, p, scratch, tt)
        return True
    if op == F.EXPONENTIAL and p[3] != 0.0:
        _staircase_runs(b, u0, assign, (p[0], p[1], p[2], p[3], p[4], p[5], p[6], 0.0))
        return True
    if op == F.INVERSE_TIME and p[3] != 0.0:
        _staircase_runs(b, u0, assign, (p[0], p[1], p[2], p[3], p[4], p[5], p[6], 1.0))
        return True
    if op == F.EXPONENTIAL:
        _exponential_anchored(b, u0, assign, p, scratch)
        return True
    return False
