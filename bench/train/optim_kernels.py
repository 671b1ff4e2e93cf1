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
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = ["TILE", "sgd", "rmsprop", "adam", "sgd_schedulefree", "adamw_schedulefree"]

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


@njit(inline="always")
def _lerp(x, y, w, w_minus_1, small):
    """torch.lerp(x, y, w) as ATen's ``lerp_vec``: ``fma(w, y - x, x)`` for ``|w| < 0.5``, else
    ``fma(w - 1, y - x, y)``."""
    return _fma(w, y - x, x) if small else _fma(w_minus_1, y - x, y)


@njit(**_OPTS)
def sgd(p, g, buf, rows, slot, first, neg_lr, momentum, keep, weight_decay, nesterov):
    """torch.optim.SGD on rows ``rows`` of ``p`` (M, n) with gradients ``g`` (overwritten as scratch).

    ``keep = 1 - dampening``. ``buf`` (K, n): momentum buffers; ``first[m]``: model m's buffer is not
    initialised yet (it becomes ``g``); the caller clears it after a step with ``momentum[m] != 0``.
    """
    n = p.shape[1]
    ntile = (n + TILE - 1) // TILE
    for job in prange(rows.shape[0] * ntile):
        m = rows[job // ntile]
        a = (job % ntile) * TILE
        b = min(a + TILE, n)
        pp, gg = p[m, a:b], g[m, a:b]
        lr, wd, mu, kp = neg_lr[m], weight_decay[m], momentum[m], keep[m]
        if wd != 0:
            for j in range(pp.shape[0]):
                gg[j] = _fma(pp[j], wd, gg[j])                        # grad.add(param, alpha=wd)
        if mu != 0:
            bb = buf[slot[m], a:b]
            if first[m]:
                for j in range(pp.shape[0]):
                    bb[j] = gg[j]                                    # buf = grad.clone()
            else:
                for j in range(pp.shape[0]):
                    bb[j] = _fma(gg[j], kp, bb[j] * mu)              # buf.mul_(mu).add_(grad, alpha=1-d)
            if nesterov[m]:
                for j in range(pp.shape[0]):
                    pp[j] = _fma(_fma(bb[j], mu, gg[j]), lr, pp[j])  # grad.add(buf, alpha=mu); p.add_
            else:
                for j in range(pp.shape[0]):
                    pp[j] = _fma(bb[j], lr, pp[j])                   # param.add_(buf, alpha=-lr)
        else:
            for j in range(pp.shape[0]):
                pp[j] = _fma(gg[j], lr, pp[j])                       # param.add_(grad, alpha=-lr)


@njit(**_OPTS)
def rmsprop(p, g, sq, grad_avg, buf, rows, slot, neg_lr, alpha, one_minus_alpha, w_minus_1, eps, weight_decay,
            momentum, centered):
    """torch.optim.RMSprop on rows ``rows``; ``sq`` / ``grad_avg`` / ``buf`` (K, n) state (the last two
    may be (0, n) when no model is centred / has momentum); ``w_minus_1 = (1 - alpha) - 1`` rounded as
    ATen's lerp computes it from the rounded weight."""
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
        if wd != 0:
            for j in range(pp.shape[0]):
                gg[j] = _fma(pp[j], wd, gg[j])                        # grad.add(param, alpha=wd)
        for j in range(pp.shape[0]):
            ss[j] = _fma(w * gg[j], gg[j], ss[j] * al)               # sq.mul_(a).addcmul_(g, g, value=1-a)
        cen = centered[m]
        ga = grad_avg[s, a:b] if cen else ss  # ss: a stand-in never read when not centred
        if cen:
            small = abs(w) < 0.5
            w1 = w_minus_1[m]
            for j in range(pp.shape[0]):
                ga[j] = _lerp(ga[j], gg[j], w, w1, small)            # grad_avg.lerp_(grad, 1 - alpha)
        # avg = sq.addcmul(ga, ga, value=-1).sqrt_().add_(eps) if centred, else sq.sqrt().add_(eps)
        if mu > 0:
            bb = buf[s, a:b]
            for j in range(pp.shape[0]):
                avg = np.sqrt(_fma(-ga[j], ga[j], ss[j]) if cen else ss[j]) + e
                bb[j] = bb[j] * mu + gg[j] / avg                     # buf.mul_(mu).addcdiv_(grad, avg)
                pp[j] = _fma(bb[j], lr, pp[j])                       # param.add_(buf, alpha=-lr)
        else:
            for j in range(pp.shape[0]):
                avg = np.sqrt(_fma(-ga[j], ga[j], ss[j]) if cen else ss[j]) + e
                pp[j] = pp[j] + (lr * gg[j]) / avg                   # param.addcdiv_(grad, avg, value=-lr)


@njit(**_OPTS)
def adam(p, g, exp_avg, exp_avg_sq, rows, slot, shrink, weight_decay, one_minus_beta1, w_minus_1, beta2,
         one_minus_beta2, neg_step, bc2_sqrt, eps):
    """torch.optim.Adam / AdamW on rows ``rows``: ``shrink = 1 - lr * wd`` (AdamW; 1 otherwise),
    ``weight_decay`` the L2 term (Adam; 0 for AdamW), ``neg_step = -lr / (1 - beta1**t)`` and
    ``bc2_sqrt = (1 - beta2**t) ** 0.5`` with ``t`` the model's step count after this step."""
    n = p.shape[1]
    ntile = (n + TILE - 1) // TILE
    for job in prange(rows.shape[0] * ntile):
        m = rows[job // ntile]
        s = slot[m]
        a = (job % ntile) * TILE
        b = min(a + TILE, n)
        pp, gg, mm, vv = p[m, a:b], g[m, a:b], exp_avg[s, a:b], exp_avg_sq[s, a:b]
        if shrink[m] != 1:
            sh = shrink[m]
            for j in range(pp.shape[0]):
                pp[j] = pp[j] * sh                                   # param.mul_(1 - lr * wd)
        if weight_decay[m] != 0:
            wd = weight_decay[m]
            for j in range(pp.shape[0]):
                gg[j] = _fma(pp[j], wd, gg[j])                        # grad.add(param, alpha=wd)
        w, w1 = one_minus_beta1[m], w_minus_1[m]
        small = abs(w) < 0.5
        b2, w2, step, c2, e = beta2[m], one_minus_beta2[m], neg_step[m], bc2_sqrt[m], eps[m]
        for j in range(pp.shape[0]):
            mj = _lerp(mm[j], gg[j], w, w1, small)                   # exp_avg.lerp_(grad, 1 - beta1)
            vj = _fma(w2 * gg[j], gg[j], vv[j] * b2)                 # v.mul_(b2).addcmul_(g, g, value=1-b2)
            mm[j] = mj
            vv[j] = vj
            pp[j] = pp[j] + (step * mj) / (np.sqrt(vj) / c2 + e)     # param.addcdiv_(m, v.sqrt()/c2 + eps, -step)


@njit(**_OPTS)
def sgd_schedulefree(p, g, z, rows, slot, first, neg_lr, ckp1, ckp1_minus_1, y_coef, weight_decay):
    """SGDScheduleFree's step on rows ``rows``: ``p`` holds y, ``z`` (K, n) the base sequence (set to y on
    a model's first step, ``first[m]``); ``y_coef = lr * (momentum * (1 - ckp1) - 1)``."""
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
            gj = _fma(pp[j], wd, gg[j]) if wd != 0 else gg[j]       # grad.add_(y, alpha=wd)
            yj = _lerp(pp[j], zz[j], c, c1, small)                  # y.lerp_(z, ckp1)
            pp[j] = _fma(gj, yc, yj)                                 # y.add_(grad, alpha=y_coef)
            zz[j] = _fma(gj, lr, zz[j])                              # z.sub_(grad, alpha=lr)


@njit(**_OPTS)
def adamw_schedulefree(p, g, z, exp_avg_sq, rows, slot, first, neg_lr, ckp1, ckp1_minus_1, y_coef, weight_decay,
                       beta2, one_minus_beta2, bias_correction2, eps):
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
            vj = _fma(w2 * gg[j], gg[j], vv[j] * b2)                 # v.mul_(b2).addcmul_(g, g, value=1-b2)
            vv[j] = vj
            gj = gg[j] / (np.sqrt(vj / bc2) + e)                     # grad.div_(v.div(bc2).sqrt_().add_(eps))
            if wd != 0:
                gj = _fma(pp[j], wd, gj)                             # grad.add_(y, alpha=wd)
            yj = _lerp(pp[j], zz[j], c, c1, small)                  # y.lerp_(z, ckp1)
            pp[j] = _fma(gj, yc, yj)                                 # y.add_(grad, alpha=y_coef)
            zz[j] = _fma(gj, lr, zz[j])                              # z.sub_(grad, alpha=lr)
