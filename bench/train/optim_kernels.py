"""Numba CPU kernels of torch.optim's SGD, RMSprop and Adam / AdamW for a stack of models: one pass.

Each kernel updates every stacked parameter of a stack in one parallel launch: ``ps`` is a tuple of the
parameters, each viewed as ``(M, n_i)`` rows (model ``m`` owns row ``m``; float32 or float64), ``gs`` the
gradients and every state argument a tuple alike (one array per parameter). ``jobs`` (:func:`jobs`) lists
the work as (parameter, model, first element of a tile of ``TILE`` elements) for the models to update only
(frozen models are simply not listed: their parameters and state stay untouched). Optimizer state lives in ``(K, n)`` arrays holding only the models
of that optimizer kind; ``slot[m]`` is model ``m``'s row there. The per-model scalars (``neg_lr = -lr``,
``1 - alpha``, ``-lr / (1 - beta1**t)``, ...) are computed by the caller in float64 and rounded to the
parameter dtype, as torch rounds its Python-float scalars (``alpha=``, ``value=``, the ``lerp`` weight).

The jobs of all parameters are shared by one ``prange`` (one parallel region per optimizer kind and
step: each region ends in a barrier, where a thread that lost its core to another process holds the
other up); every element is read and written once per step (torch's single-tensor implementation makes 5-10 passes over memory, and
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

__all__ = ["TILE", "NO_LOW", "KERNELS", "jobs", "warm", "sgd", "rmsprop", "adam", "sgd_schedulefree",
           "adamw_schedulefree"]

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


def jobs(sizes, rows: np.ndarray) -> np.ndarray:
    """(J, 3) int64: (parameter index, model, tile start) of every tile of every parameter (``sizes``: the
    elements per model of each parameter) for the models ``rows``, largest parameters first."""
    rows = np.asarray(rows, np.int64)
    parts = []
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        starts = np.arange(0, sizes[i], TILE, dtype=np.int64)
        if rows.size == 0 or starts.size == 0:
            continue
        m = np.repeat(rows, starts.size)
        parts.append(np.stack([np.full(m.size, i, np.int64), m, np.tile(starts, rows.size)], axis=1))
    return np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)


@njit(inline="always")
def _tile(arr, row, a):
    """``arr[row, a:a + TILE]`` (clipped at the row's end)."""
    return arr[row, a:min(a + TILE, arr.shape[1])]


@njit(inline="always")
def _sgd_tile(pp, gg, lr, wd):
    for j in range(pp.shape[0]):
        gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])  # grad.add(param, alpha=wd)
        pp[j] = _fma(gj, lr, pp[j])                              # param.add_(grad, alpha=-lr)


@njit(inline="always")
def _sgd_momentum_tile(pp, gg, bb, lr, wd, mu, kp, nesterov, first):
    # grad.add(param, alpha=wd) where wd != 0 (below: gj)
    if first:
        for j in range(pp.shape[0]):
            gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])
            bb[j] = gj                                           # buf = grad.clone()
            pp[j] = _fma(_fma(bb[j], mu, gj), lr, pp[j]) if nesterov else _fma(bb[j], lr, pp[j])
    elif nesterov:
        for j in range(pp.shape[0]):
            gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])
            bb[j] = _fma(gj, kp, bb[j] * mu)                     # buf.mul_(mu).add_(grad, alpha=1-d)
            pp[j] = _fma(_fma(bb[j], mu, gj), lr, pp[j])         # grad.add(buf, alpha=mu); p.add_
    else:
        for j in range(pp.shape[0]):
            gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])
            bb[j] = _fma(gj, kp, bb[j] * mu)                     # buf.mul_(mu).add_(grad, alpha=1-d)
            pp[j] = _fma(bb[j], lr, pp[j])                       # param.add_(buf, alpha=-lr)


@njit(**_OPTS)
def sgd(ps, gs, bufs, lows, jobs, slot, first, neg_lr, momentum, keep, weight_decay, nesterov):
    """torch.optim.SGD on the ``jobs`` of parameters ``ps`` with gradients ``gs`` (float, or bfloat16 bits).

    ``keep = 1 - dampening``. ``bufs`` (K, n_i) each: momentum buffers; ``first[i, m]``: model m's buffer of
    parameter i is not initialised yet (it becomes ``g``); the caller clears it after a step with
    ``momentum[m] != 0``. ``lows``: the bfloat16 copy of each parameter to refresh, or :data:`NO_LOW`.
    """
    for job in prange(jobs.shape[0]):
        i, m, a = jobs[job, 0], jobs[job, 1], jobs[job, 2]
        mu = momentum[m]
        pp, gg = _tile(ps[i], m, a), _tile(gs[i], m, a)
        if mu != 0:
            _sgd_momentum_tile(pp, gg, _tile(bufs[i], slot[m], a), neg_lr[m], weight_decay[m], mu, keep[m],
                               nesterov[m], first[i, m])
        else:
            _sgd_tile(pp, gg, neg_lr[m], weight_decay[m])
        _store_low(lows[i], m, a, pp)


@njit(inline="always")
def _rmsprop_tile(pp, gg, ss, ga, bb, lr, wd, e, mu, al, w, w1, cen):
    small = abs(w) < 0.5
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


@njit(**_OPTS)
def rmsprop(ps, gs, sqs, grad_avgs, bufs, lows, jobs, slot, neg_lr, alpha, one_minus_alpha, w_minus_1, eps,
            weight_decay, momentum, centered):
    """torch.optim.RMSprop on the ``jobs``; ``sqs`` / ``grad_avgs`` / ``bufs`` (K, n_i) state (the last two
    may be (0, n_i) when no model is centred / has momentum); ``w_minus_1 = (1 - alpha) - 1`` rounded as
    ATen's lerp computes it from the rounded weight; ``lows`` as :func:`sgd`."""
    for job in prange(jobs.shape[0]):
        i, m, a = jobs[job, 0], jobs[job, 1], jobs[job, 2]
        s, mu, cen = slot[m], momentum[m], centered[m]
        pp, ss = _tile(ps[i], m, a), _tile(sqs[i], s, a)
        ga = _tile(grad_avgs[i], s, a) if cen else ss  # ss: a stand-in never read when not centred
        bb = _tile(bufs[i], s, a) if mu > 0 else ss    # likewise
        _rmsprop_tile(pp, _tile(gs[i], m, a), ss, ga, bb, neg_lr[m], weight_decay[m], eps[m], mu, alpha[m],
                      one_minus_alpha[m], w_minus_1[m], cen)
        _store_low(lows[i], m, a, pp)


@njit(inline="always")
def _adam_tile(pp, gg, mm, vv, sh, wd, w, w1, b2, w2, step, c2, e):
    small = abs(w) < 0.5
    for j in range(pp.shape[0]):
        pj = pp[j] * sh if sh != 1 else pp[j]                  # param.mul_(1 - lr * wd)
        gj = _fma(pj, wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])  # grad.add(param, alpha=wd)
        mj = _lerp(mm[j], gj, w, w1, small)                    # exp_avg.lerp_(grad, 1 - beta1)
        vj = _fma(w2 * gj, gj, vv[j] * b2)                     # v.mul_(b2).addcmul_(g, g, value=1-b2)
        mm[j] = mj
        vv[j] = vj
        pp[j] = pj + (step * mj) / (np.sqrt(vj) / c2 + e)      # param.addcdiv_(m, v.sqrt()/c2 + eps, -step)


@njit(**_OPTS)
def adam(ps, gs, exp_avgs, exp_avg_sqs, lows, jobs, slot, shrink, weight_decay, one_minus_beta1, w_minus_1, beta2,
         one_minus_beta2, neg_step, bc2_sqrt, eps):
    """torch.optim.Adam / AdamW on the ``jobs``: ``shrink = 1 - lr * wd`` (AdamW; 1 otherwise),
    ``weight_decay`` the L2 term (Adam; 0 for AdamW), ``neg_step = -lr / (1 - beta1**t)`` and
    ``bc2_sqrt = (1 - beta2**t) ** 0.5`` with ``t`` the model's step count after this step; ``lows`` as
    :func:`sgd`."""
    for job in prange(jobs.shape[0]):
        i, m, a = jobs[job, 0], jobs[job, 1], jobs[job, 2]
        s = slot[m]
        pp = _tile(ps[i], m, a)
        _adam_tile(pp, _tile(gs[i], m, a), _tile(exp_avgs[i], s, a), _tile(exp_avg_sqs[i], s, a), shrink[m],
                   weight_decay[m], one_minus_beta1[m], w_minus_1[m], beta2[m], one_minus_beta2[m], neg_step[m],
                   bc2_sqrt[m], eps[m])
        _store_low(lows[i], m, a, pp)


@njit(inline="always")
def _sf_tile(pp, gg, zz, vv, first, wd, c, c1, yc, lr, b2, w2, bc2, e, adamw):
    """One tile of SGDScheduleFree (``adamw`` False; ``vv`` unused) or AdamWScheduleFree."""
    if first:
        for j in range(pp.shape[0]):
            zz[j] = pp[j]                                        # z = y.clone()
    small = abs(c) < 0.5
    for j in range(pp.shape[0]):
        if adamw:
            g0 = _widen(gg[j])
            vj = _fma(w2 * g0, g0, vv[j] * b2)                   # v.mul_(b2).addcmul_(g, g, value=1-b2)
            vv[j] = vj
            gj = g0 / (np.sqrt(vj / bc2) + e)                    # grad.div_(v.div(bc2).sqrt_().add_(eps))
            if wd != 0:
                gj = _fma(pp[j], wd, gj)                         # grad.add_(y, alpha=wd)
        else:
            gj = _fma(pp[j], wd, _widen(gg[j])) if wd != 0 else _widen(gg[j])  # grad.add_(y, alpha=wd)
        yj = _lerp(pp[j], zz[j], c, c1, small)                  # y.lerp_(z, ckp1)
        pp[j] = _fma(gj, yc, yj)                                 # y.add_(grad, alpha=y_coef)
        zz[j] = _fma(gj, lr, zz[j])                              # z.sub_(grad, alpha=lr)


@njit(**_OPTS)
def sgd_schedulefree(ps, gs, zs, lows, jobs, slot, first, neg_lr, ckp1, ckp1_minus_1, y_coef, weight_decay):
    """SGDScheduleFree's step on the ``jobs``: ``ps`` hold y, ``zs`` (K, n_i) the base sequence (set to y on
    a model's first step, ``first[m]``); ``y_coef = lr * (momentum * (1 - ckp1) - 1)``; ``lows`` as :func:`sgd`."""
    for job in prange(jobs.shape[0]):
        i, m, a = jobs[job, 0], jobs[job, 1], jobs[job, 2]
        pp, zz = _tile(ps[i], m, a), _tile(zs[i], slot[m], a)
        c = ckp1[m]
        _sf_tile(pp, _tile(gs[i], m, a), zz, zz, first[m], weight_decay[m], c, ckp1_minus_1[m], y_coef[m],
                 neg_lr[m], c, c, c, c, False)
        _store_low(lows[i], m, a, pp)


@njit(**_OPTS)
def adamw_schedulefree(ps, gs, zs, exp_avg_sqs, lows, jobs, slot, first, neg_lr, ckp1, ckp1_minus_1, y_coef,
                       weight_decay, beta2, one_minus_beta2, bias_correction2, eps):
    """AdamWScheduleFree's step on the ``jobs`` (see :func:`sgd_schedulefree`; ``y_coef`` with beta1,
    ``bias_correction2 = 1 - beta2**t``)."""
    for job in prange(jobs.shape[0]):
        i, m, a = jobs[job, 0], jobs[job, 1], jobs[job, 2]
        s = slot[m]
        pp = _tile(ps[i], m, a)
        _sf_tile(pp, _tile(gs[i], m, a), _tile(zs[i], s, a), _tile(exp_avg_sqs[i], s, a), first[m],
                 weight_decay[m], ckp1[m], ckp1_minus_1[m], y_coef[m], neg_lr[m], beta2[m], one_minus_beta2[m],
                 bias_correction2[m], eps[m], True)
        _store_low(lows[i], m, a, pp)


#: kind -> (kernel, the number of state tuples it takes, the number of per-model vectors after ``slot``)
KERNELS = {"sgd": (sgd, 1, 6), "rmsprop": (rmsprop, 3, 8), "adam": (adam, 2, 9), "adamw": (adam, 2, 9),
           "sgd_schedulefree": (sgd_schedulefree, 1, 6), "adamw_schedulefree": (adamw_schedulefree, 2, 10)}
#: the vectors of each kernel that are flags (bool); sgd's ``first`` is (n_params, M), the others (M,)
_BOOL = {"sgd": (0, 5), "rmsprop": (7,), "adam": (), "adamw": (), "sgd_schedulefree": (0,),
         "adamw_schedulefree": (0,)}


def warm(kind: str, n_params: int, dtype, grad_dtype) -> None:
    """Compile (or load from the on-disk cache) ``kind``'s kernel for ``n_params`` parameters of ``dtype``
    with gradients of ``grad_dtype`` (``np.uint16``: bfloat16 bits), by a call with no jobs: what the first
    training step would otherwise do inside the timed training."""
    fn, n_states, n_vec = KERNELS[kind]
    dt = np.dtype(dtype)
    arr = lambda t: tuple(np.zeros((0, 1), t) for _ in range(n_params))
    vecs = []
    for v in range(n_vec):
        shape = (n_params, 1) if (kind == "sgd" and v == 0) else (1,)
        vecs.append(np.zeros(shape, np.bool_ if v in _BOOL[kind] else dt))
    fn(arr(dt), arr(grad_dtype), *(arr(dt) for _ in range(n_states)), arr(np.uint16), np.zeros((0, 3), np.int64),
       np.zeros(1, np.int64), *vecs)
