"""Numba CPU kernels of torch.optim's SGD, RMSprop and Adam / AdamW for a stack of models: one pass.

Each kernel updates one stacked parameter, viewed as ``(M, n)`` rows (model ``m`` owns row ``m``;
float32 or float64), for the models listed in ``rows`` only (frozen models are simply not listed: their
parameters and state stay untouched). Optimizer state lives in ``(K, n)`` arrays holding only the models
of that optimizer kind; ``slot[m]`` is model ``m``'s row there. The per-model scalars (``neg_lr = -lr``,
``1 - alpha``, ``-lr / (1 - beta1**t)``, ...) are computed by the caller in float64 and rounded to the
parameter dtype, as torch rounds its Python-float scalars (``alpha=``, ``value=``, the ``lerp`` weight).

Work is split into jobs of (model, tile of ``TILE`` elements) shared by ``prange``; every element is
read and written once per step (torch's single-tensor implementation makes 5-10 passes over memory, and
on a stack larger than the caches those passes, not arithmetic, are its cost). Per model the formulas
are torch's (torch 2.x ``_single_tensor_*``), operation by operation in float32:

SGD (``wd`` weight decay, ``mu`` momentum, ``d`` dampening)::

    g = g + wd * p                               if wd != 0
    buf = g (first step with mu != 0) else buf * mu + (1 - d) * g   if mu != 0
    g = g + mu * buf (nesterov) else buf          if mu != 0
    p = p + (-lr) * g

RMSprop (``a`` alpha)::

    g = g + wd * p                               if wd != 0
    sq = sq * a + ((1 - a) * g) * g
    ga = lerp(ga, g, 1 - a); avg = sqrt(sq - ga * ga) + eps   if centered, else avg = sqrt(sq) + eps
    buf = buf * mu + g / avg; p = p + (-lr) * buf    if mu > 0, else p = p + ((-lr) * g) / avg

Adam / AdamW (``t`` the model's own step count, bias corrections in float64 on the host)::

    p = p * (1 - lr * wd)                         AdamW, if wd != 0
    g = g + wd * p                               Adam, if wd != 0
    m = lerp(m, g, 1 - b1);  v = v * b2 + ((1 - b2) * g) * g
    p = p + ((-lr / (1 - b1**t)) * m) / (sqrt(v) / sqrt(1 - b2**t) + eps)

Schedule-Free SGD / AdamW (the ``schedulefree`` package's ``SGDScheduleFree`` / ``AdamWScheduleFree``;
``y`` the parameters in train mode, ``z`` the base sequence, ``c = ckp1`` the averaging weight and
``lr`` the warmed-up lr, all per model, computed by the caller)::

    z = y                                         first step of the model
    AdamW: v = v * b2 + ((1 - b2) * g) * g;  g = g / (sqrt(v / (1 - b2**t)) + eps)
    g = g + wd * y                                if wd != 0
    y = lerp(y, z, c);  y = y + (lr * (beta * (1 - c) - 1)) * g;  z = z + (-lr) * g

``lerp(x, y, w) = x + w * (y - x)`` for ``|w| < 0.5``, else ``y - (y - x) * (1 - w)`` (torch's rule).
Where torch's vectorised CPU kernels fuse a multiply and an add into one FMA (``add`` with ``alpha``,
``addcmul``, ``lerp``), so do these kernels (an explicit ``llvm.fma``); elsewhere each operation is
rounded to float32 in torch's order. Fed the same gradients, the parameters equal torch.optim's bit for
bit (``tests/test_batched.py::test_optimizer_alone_matches_torch_optim``).

Mixed precision (bfloat16 matmuls, float32 master weights; ``bench.train.mixed``): the gradient ``g`` may be
a bfloat16 array (given as its ``uint16`` bits), widened exactly to float32 as it is read (``_widen``: the
bits shifted up by 16), so the update is the float32 update of that gradient; and ``low`` (``(M, n)``
``uint16``, or ``(0, n)`` for none) receives the bfloat16 copy of every updated row, rounded to nearest
even as torch rounds (``_bf16``), while the row is still in cache: the next step's matmul operands without
a cast pass over the weights. The gradient is never written (the weight decay term is added as it is read).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

__all__ = ["TILE", "NO_LOW", "sgd", "rmsprop", "adam", "sgd_schedulefree", "adamw_schedulefree"]

TILE = 4096
_OPTS = dict(cache=True, error_model="numpy", parallel=True)


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's llvm.fma): what torch's vectorised CPU kernels compute for
    ``add(x, y, alpha)`` (``fma(y, alpha, x)``), ``addcmul`` and ``lerp``."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return a(a, a, a), codegen


@intrinsic
def _f32_from_bits(typingctx, u):
    """The float32 whose bits are the low 32 bits of the unsigned integer ``u``."""
    if not (isinstance(u, types.Integer) and not u.signed and u.bitwidth >= 32):
        return None

    def codegen(context, builder, signature, args):
        bits = args[0] if u.bitwidth == 32 else builder.trunc(args[0], ir.IntType(32))
        return builder.bitcast(bits, ir.FloatType())
    return types.float32(u), codegen


@intrinsic
def _bits_of_f32(typingctx, x):
    """The bits of the float32 ``x``, as a uint32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


def _widen(v):
    """A gradient element as the parameter's float: bfloat16 bits (uint16) -> float32 exactly; floats as they are."""


@overload(_widen, inline="always")
def _widen_impl(v):
    if v == types.uint16:
        return lambda v: _f32_from_bits(types.uint32(v) << 16)
    if isinstance(v, types.Float):
        return lambda v: v


@njit(inline="always")
def _bf16_of_f32(x):
    if x != x:
        return types.uint16(0x7FC0)
    u = _bits_of_f32(x)
    return types.uint16((u + (((u >> types.uint32(16)) & types.uint32(1)) + types.uint32(0x7FFF))) >> types.uint32(16))


def _bf16(x):
    """The bfloat16 bits (uint16) of ``x``: round to nearest even (torch's ``c10::BFloat16`` rule), NaN -> 0x7FC0."""


@overload(_bf16, inline="always")
def _bf16_impl(x):
    if x == types.float32:
        return lambda x: _bf16_of_f32(x)
    if x == types.float64:  # a float64 stack has no bfloat16 copy; typed only so that the kernels compile
        return lambda x: _bf16_of_f32(np.float32(x))


#: ``low`` for a stack without a bfloat16 copy: zero rows, so nothing is written.
NO_LOW = np.empty((0, 1), np.uint16)


@njit(inline="always")
def _store_low(low, m, a, pp):
    """The bfloat16 copy of an updated tile (``pp`` = ``p[m, a:a + len(pp)]``) into ``low[m]``, if there is one."""
    if low.shape[0] > 0:
        ll = low[m, a:a + pp.shape[0]]
        for j in range(pp.shape[0]):
            ll[j] = _bf16(pp[j])


@njit(inline="always")
def _lerp(x, y, w, w_minus_1, small):
    """torch.lerp(x, y, w) as ATen's ``lerp_vec``: ``fma(w, y - x, x)`` for ``|w| < 0.5``, else
    ``fma(w - 1, y - x, y)``."""
    return _fma(w, y - x, x) if small else _fma(w_minus_1, y - x, y)


@njit(**_OPTS)
def sgd(p, g, buf, rows, slot, first, neg_lr, momentum, keep, weight_decay, nesterov, low):
    """torch.optim.SGD on rows ``rows`` of ``p`` (M, n) with gradients ``g`` (float, or bfloat16 bits).

    ``keep = 1 - dampening``. ``buf`` (K, n): momentum buffers; ``first[m]``: model m's buffer is not
    initialised yet (it becomes ``g``); the caller clears it after a step with ``momentum[m] != 0``.
    ``low``: the bfloat16 copy of ``p`` to refresh, or :data:`NO_LOW`.
    """
    n = p.shape[1]
    ntile = (n + TILE - 1) // TILE
    for job in prange(rows.shape[0] * ntile):
        m = rows[job // ntile]
        a = (job % ntile) * TILE
        b = min(a + TILE, n)
        pp, gg = p[m, a:b], g[m, a:b]
        lr, wd, mu, kp = neg_lr[m], weight_decay[m], momentum[m], keep[m]
        # grad.add(param, alpha=wd) where wd != 0 (below: gj)
        if mu != 0:
            bb = buf[slot[m], a:b]
            if first[m]:
                for j in range(pp.shape[0]):
                    gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])
                    bb[j] = gj                                       # buf = grad.clone()
                    pp[j] = _fma(_fma(bb[j], mu, gj), lr, pp[j]) if nesterov[m] else _fma(bb[j], lr, pp[j])
            elif nesterov[m]:
                for j in range(pp.shape[0]):
                    gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])
                    bb[j] = _fma(gj, kp, bb[j] * mu)                 # buf.mul_(mu).add_(grad, alpha=1-d)
                    pp[j] = _fma(_fma(bb[j], mu, gj), lr, pp[j])     # grad.add(buf, alpha=mu); p.add_
            else:
                for j in range(pp.shape[0]):
                    gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])
                    bb[j] = _fma(gj, kp, bb[j] * mu)                 # buf.mul_(mu).add_(grad, alpha=1-d)
                    pp[j] = _fma(bb[j], lr, pp[j])                   # param.add_(buf, alpha=-lr)
        else:
            for j in range(pp.shape[0]):
                gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])
                pp[j] = _fma(gj, lr, pp[j])                          # param.add_(grad, alpha=-lr)
        _store_low(low, m, a, pp)


@njit(**_OPTS)
def rmsprop(p, g, sq, grad_avg, buf, rows, slot, neg_lr, alpha, one_minus_alpha, w_minus_1, eps, weight_decay,
            momentum, centered, low):
    """torch.optim.RMSprop on rows ``rows``; ``sq`` / ``grad_avg`` / ``buf`` (K, n) state (the last two
    may be (0, n) when no model is centred / has momentum); ``w_minus_1 = (1 - alpha) - 1`` rounded as
    ATen's lerp computes it from the rounded weight; ``low`` as :func:`sgd`."""
    n = p.shape[1]
    ntile = (n + TILE - 1) // TILE
    for job in prange(rows.shape[0] * ntile):
        m = rows[job // ntile]
        s = slot[m]
        a = (job % ntile) * TILE
        b = min(a + TILE, n)
        pp, gg, ss = p[m, a:b], g[m, a:b], sq[s, a:b]
        lr, wd, e, mu = neg_lr[m], weight_decay[m], eps[m], momentum[m]
        al, w = alpha[m], one_minus_alpha[m]
        cen = centered[m]
        ga = grad_avg[s, a:b] if cen else ss  # ss: a stand-in never read when not centred
        small = abs(w) < 0.5
        w1 = w_minus_1[m]
        bb = buf[s, a:b] if mu > 0 else ss    # likewise
        for j in range(pp.shape[0]):
            gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])  # grad.add(param, alpha=wd)
            ss[j] = _fma(w * gj, gj, ss[j] * al)                   # sq.mul_(a).addcmul_(g, g, value=1-a)
            if cen:
                ga[j] = _lerp(ga[j], gj, w, w1, small)             # grad_avg.lerp_(grad, 1 - alpha)
            # avg = sq.addcmul(ga, ga, value=-1).sqrt_().add_(eps) if centred, else sq.sqrt().add_(eps)
            avg = np.sqrt(_fma(-ga[j], ga[j], ss[j]) if cen else ss[j]) + e
            if mu > 0:
                bb[j] = bb[j] * mu + gj / avg                      # buf.mul_(mu).addcdiv_(grad, avg)
                pp[j] = _fma(bb[j], lr, pp[j])                     # param.add_(buf, alpha=-lr)
            else:
                pp[j] = pp[j] + (lr * gj) / avg                    # param.addcdiv_(grad, avg, value=-lr)
        _store_low(low, m, a, pp)


@njit(**_OPTS)
def adam(p, g, exp_avg, exp_avg_sq, rows, slot, shrink, weight_decay, one_minus_beta1, w_minus_1, beta2,
         one_minus_beta2, neg_step, bc2_sqrt, eps, low):
    """torch.optim.Adam / AdamW on rows ``rows``: ``shrink = 1 - lr * wd`` (AdamW; 1 otherwise),
    ``weight_decay`` the L2 term (Adam; 0 for AdamW), ``neg_step = -lr / (1 - beta1**t)`` and
    ``bc2_sqrt = (1 - beta2**t) ** 0.5`` with ``t`` the model's step count after this step; ``low`` as
    :func:`sgd`."""
    n = p.shape[1]
    ntile = (n + TILE - 1) // TILE
    for job in prange(rows.shape[0] * ntile):
        m = rows[job // ntile]
        s = slot[m]
        a = (job % ntile) * TILE
        b = min(a + TILE, n)
        pp, gg, mm, vv = p[m, a:b], g[m, a:b], exp_avg[s, a:b], exp_avg_sq[s, a:b]
        sh, wd = shrink[m], weight_decay[m]
        w, w1 = one_minus_beta1[m], w_minus_1[m]
        small = abs(w) < 0.5
        b2, w2, step, c2, e = beta2[m], one_minus_beta2[m], neg_step[m], bc2_sqrt[m], eps[m]
        for j in range(pp.shape[0]):
            pj = pp[j] * sh if sh != 1 else pp[j]                  # param.mul_(1 - lr * wd)
            gj = _fma(pj, wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])  # grad.add(param, alpha=wd)
            mj = _lerp(mm[j], gj, w, w1, small)                    # exp_avg.lerp_(grad, 1 - beta1)
            vj = _fma(w2 * gj, gj, vv[j] * b2)                     # v.mul_(b2).addcmul_(g, g, value=1-b2)
            mm[j] = mj
            vv[j] = vj
            pp[j] = pj + (step * mj) / (np.sqrt(vj) / c2 + e)      # param.addcdiv_(m, v.sqrt()/c2 + eps, -step)
        _store_low(low, m, a, pp)


@njit(**_OPTS)
def sgd_schedulefree(p, g, z, rows, slot, first, neg_lr, ckp1, ckp1_minus_1, y_coef, weight_decay, low):
    """SGDScheduleFree's step on rows ``rows``: ``p`` holds y, ``z`` (K, n) the base sequence (set to y on
    a model's first step, ``first[m]``); ``y_coef = lr * (momentum * (1 - ckp1) - 1)``; ``low`` as :func:`sgd`."""
    n = p.shape[1]
    ntile = (n + TILE - 1) // TILE
    for job in prange(rows.shape[0] * ntile):
        m = rows[job // ntile]
        a = (job % ntile) * TILE
        b = min(a + TILE, n)
        pp, gg, zz = p[m, a:b], g[m, a:b], z[slot[m], a:b]
        if first[m]:
            for j in range(pp.shape[0]):
                zz[j] = pp[j]                                        # z = y.clone()
        wd, c, c1, yc, lr = weight_decay[m], ckp1[m], ckp1_minus_1[m], y_coef[m], neg_lr[m]
        small = abs(c) < 0.5
        for j in range(pp.shape[0]):
            gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])  # grad.add_(y, alpha=wd)
            yj = _lerp(pp[j], zz[j], c, c1, small)                  # y.lerp_(z, ckp1)
            pp[j] = _fma(gj, yc, yj)                                 # y.add_(grad, alpha=y_coef)
            zz[j] = _fma(gj, lr, zz[j])                              # z.sub_(grad, alpha=lr)
        _store_low(low, m, a, pp)


@njit(**_OPTS)
def adamw_schedulefree(p, g, z, exp_avg_sq, rows, slot, first, neg_lr, ckp1, ckp1_minus_1, y_coef, weight_decay,
                       beta2, one_minus_beta2, bias_correction2, eps, low):
    """AdamWScheduleFree's step on rows ``rows`` (see :func:`sgd_schedulefree`; ``y_coef`` with beta1,
    ``bias_correction2 = 1 - beta2**t``)."""
    n = p.shape[1]
    ntile = (n + TILE - 1) // TILE
    for job in prange(rows.shape[0] * ntile):
        m = rows[job // ntile]
        s = slot[m]
        a = (job % ntile) * TILE
        b = min(a + TILE, n)
        pp, gg, zz, vv = p[m, a:b], g[m, a:b], z[s, a:b], exp_avg_sq[s, a:b]
        if first[m]:
            for j in range(pp.shape[0]):
                zz[j] = pp[j]                                        # z = y.clone()
        wd, c, c1, yc, lr = weight_decay[m], ckp1[m], ckp1_minus_1[m], y_coef[m], neg_lr[m]
        b2, w2, bc2, e = beta2[m], one_minus_beta2[m], bias_correction2[m], eps[m]
        small = abs(c) < 0.5
        for j in range(pp.shape[0]):
            g0 = _widen(gg[j])
            vj = _fma(w2 * g0, g0, vv[j] * b2)                       # v.mul_(b2).addcmul_(g, g, value=1-b2)
            vv[j] = vj
            gj = g0 / (np.sqrt(vj / bc2) + e)                        # grad.div_(v.div(bc2).sqrt_().add_(eps))
            if wd != 0:
                gj = _fma(pp[j], wd, gj)                             # grad.add_(y, alpha=wd)
            yj = _lerp(pp[j], zz[j], c, c1, small)                  # y.lerp_(z, ckp1)
            pp[j] = _fma(gj, yc, yj)                                 # y.add_(grad, alpha=y_coef)
            zz[j] = _fma(gj, lr, zz[j])                              # z.sub_(grad, alpha=lr)
        _store_low(low, m, a, pp)
