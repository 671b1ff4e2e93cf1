"""The device-generic optimizer step of :class:`bench.train.optim.BatchedOptimizer` (``impl="torch"``):
every model of the stack in a few tensor operations per optimizer kind, no host sync.

Layout rule: at construction the stacked parameters are moved into one model-major buffer ``flat``
``(M, N)`` (``N`` = the parameters of one model) and each parameter becomes a view of it
(``p.data = flat[:, a:b].view(p.shape)``); gradients likewise live in ``gflat`` ``(M, N)``, whose views
``BatchedMLP.loss_and_grad`` writes into (a parameter's ``_lrbench_grad``). One optimizer operation then
covers all of a model's parameters. A gradient set by the caller (``p.grad = ...``, not the view) is
copied in first.

Runs: models are grouped into runs of equal ``(kind, nesterov, centered)``. When the stack repeats with
period ``P`` (the trainer's order: seed-major, the same optimizers per seed), a run is the strided view
``flat.view(S, P, N)[:, a:b]`` of all ``S = M / P`` periods at once, so the number of operations per step
does not grow with the number of seeds.

Per-model scalars (``-lr``, ``1 - beta1``, ``-lr / (1 - beta1**t)``, ...) are computed on the device in
float64 from the hyper-parameter vectors (which may be device tensors: a column of the trainer's lr
table), stacked into one ``(K, M)`` table and rounded to the parameter dtype in one cast, as torch
rounds its Python-float scalars. The update of each kind repeats the operation order of torch's
single-tensor implementation (see ``BatchedOptimizer._sgd`` and friends, the per-group loop this path
replaces), so both paths give the same numbers.

Frozen models (``active`` False), without cloning: their gradient rows are zeroed, the state
coefficients are set so that the state maps to itself (SGD ``buf * 1 + 0``, Adam ``lerp(m, 0, 0)`` and
``v * 1 + 0``, RMSprop ``sq * 1 + 0``), their step count does not advance, and the parameter update is
masked to zero (``p + 0``). A frozen model's parameters and finite state are left exactly as they
were (a diverged model's non-finite state may turn NaN; it is never read again).

SGD's momentum buffer starts as the first gradient of each model (per model, on the device: a model
that has not yet stepped with momentum != 0 gets ``buf = 0 * buf + 1 * g``), as torch.optim and the
numba path do.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["FusedStep", "flatten_params", "period"]


def period(sig: list) -> int:
    """The smallest P dividing len(sig) with sig[m] == sig[m % P] for every m."""
    M = len(sig)
    for P in range(1, M + 1):
        if M % P == 0 and all(sig[m] == sig[m % P] for m in range(M)):
            return P
    return M


def flatten_params(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Move stacked parameters into one (M, N) buffer (each becomes a view) and make an (M, N) gradient
    buffer whose views are each parameter's ``_lrbench_grad``; None when they differ in dtype or device."""
    p0 = params[0]
    if any(p.dtype != p0.dtype or p.device != p0.device or p.shape[0] != p0.shape[0] for p in params):
        return None
    M = p0.shape[0]
    sizes = [int(np.prod(p.shape[1:], dtype=np.int64)) for p in params]
    flat = torch.empty(M, sum(sizes), dtype=p0.dtype, device=p0.device)
    gflat = torch.zeros_like(flat)
    off = 0
    with torch.no_grad():
        for p, n in zip(params, sizes):
            view = flat[:, off:off + n]
            view.copy_(p.detach().reshape(M, n))
            p.data = view.view(p.shape)
            p._lrbench_grad = gflat[:, off:off + n].view(p.shape)
            off += n
    return flat, gflat


class FusedStep:
    """The torch path's step over a flattened stack (see the module docstring)."""

    def __init__(self, opt, flat: torch.Tensor, gflat: torch.Tensor):
        self.opt, self.flat, self.gflat = opt, flat, gflat
        M, N = flat.shape
        h = opt._host
        sig = [(k, bool(h.get("nesterov", np.zeros(M, bool))[m]), bool(h.get("centered", np.zeros(M, bool))[m]))
               for m, k in enumerate(opt.kinds)]
        P = period(sig)
        self.S, self.P = M // P, P
        self.runs = []  # (kind, a, b) within one period
        start = 0
        for m in range(1, P + 1):
            if m == P or sig[m] != sig[start]:
                self.runs.append((sig[start], start, m))
                start = m
        self.kinds = set(opt.kinds)
        dev = flat.device
        self.init = torch.zeros(M, dtype=torch.bool, device=dev)  # SGD: the buffer holds a gradient
        self._grad_views = [getattr(p, "_lrbench_grad", None) for p in opt.params]
        # coefficient rows: name -> value for frozen models (None: unchanged)
        rows = {"neg_lr": 0.0}
        if "sgd" in self.kinds:
            rows.update(wd=None, mu=None, mu_sgd=1.0, keep_sgd=0.0)
        if "rmsprop" in self.kinds:
            rows.update(wd=None, eps=None, alpha=1.0, w_rms=0.0, mu_rms=1.0)
        if self.kinds & {"adam", "adamw"}:
            rows.update(wd=None, eps=None, shrink=1.0, w1=0.0, b2=1.0, w2=0.0, c2=None, neg_step=None)
        if self.kinds & {"sgd_schedulefree", "adamw_schedulefree"}:
            rows.update(wd=None, z_keep=1.0, z_take=0.0, ckp1=0.0, y_coef=0.0)
            self.sf_started = torch.zeros(M, dtype=torch.bool, device=dev)  # z holds y of the first step
        if "adamw_schedulefree" in self.kinds:
            rows.update(eps=None, b2=1.0, w2=0.0, bc2=None)
        self.rows = {n: i for i, n in enumerate(rows)}
        self.frozen_value = torch.tensor([0.0 if v is None else v for v in rows.values()], dtype=torch.float64,
                                         device=dev).view(-1, 1)
        self.keep_row = torch.tensor([v is None for v in rows.values()], device=dev).view(-1, 1)
        self.scratch: dict = {}
        self.zero = torch.zeros((), dtype=flat.dtype, device=dev)
        self.keys = [("run",) + s + (a, b) for s, a, b in self.runs]  # opt.state keys

    # ------------------------------------------------------------------------------------------ helpers

    def _view(self, t: torch.Tensor, a: int, b: int) -> torch.Tensor:
        """Rows of run [a, b) of every period: (S, b - a, ...) view of an (M, ...) tensor."""
        return t.view(self.S, self.P, *t.shape[1:])[:, a:b]

    def _state(self, ri: int, name: str, like: torch.Tensor) -> torch.Tensor:
        st = self.opt.state.setdefault(self.keys[ri], {})
        if name not in st:
            st[name] = torch.zeros_like(like, memory_format=torch.contiguous_format)
        return st[name]

    def _tmp(self, ri: int, like: torch.Tensor) -> torch.Tensor:
        if ri not in self.scratch:
            self.scratch[ri] = torch.empty_like(like, memory_format=torch.contiguous_format)
        return self.scratch[ri]

    def _flags(self, a: int, b: int) -> dict:
        """Code-path choices of run [a, b) (every period) from the host copies; a hyper-parameter set as a
        device tensor counts as possibly non-zero."""
        h, dev_set = self.opt._host, self.opt._device_set
        rows = (np.arange(self.S)[:, None] * self.P + np.arange(a, b)[None, :]).ravel()
        f = {}
        for n in ("weight_decay", "momentum"):
            if n in h:
                f["nonzero_" + n] = n in dev_set or bool((h[n][rows] != 0).any())
                f["positive_" + n] = n in dev_set or bool((h[n][rows] > 0).any())
        return f

    def _grads(self, grads: list) -> torch.Tensor | None:
        """The (M, N) gradient: gflat when every gradient is its view, else the gradients copied in (a
        bfloat16 gradient widened to the parameters' dtype on the way)."""
        if all(g is None for g in grads):
            return None
        if any(g is None for g in grads):
            raise ValueError("BatchedOptimizer (impl='torch'): every parameter needs a gradient (the stack is "
                             "updated as one buffer)")
        for g, v in zip(grads, self._grad_views):
            if g is not v:
                v.copy_(g)
        return self.gflat

    def _coefficients(self, act: torch.Tensor | None) -> torch.Tensor:
        """(K, M) per-model scalars in float64, frozen models' rows overridden, rounded to the dtype."""
        H, opt = self.opt.hyper, self.opt
        out = {}
        lr = H["lr"]
        out["neg_lr"] = -lr
        if "sgd" in self.kinds:
            mu = H["momentum"]
            out["mu"] = mu
            out["mu_sgd"] = torch.where(self.init, mu, 0.0)
            out["keep_sgd"] = torch.where(self.init, 1.0 - H["dampening"], 1.0)
            started = mu != 0 if act is None else (mu != 0) & act
            self.init |= started
        if "rmsprop" in self.kinds:
            out["alpha"] = H["alpha"]
            out["w_rms"] = 1.0 - H["alpha"]
            out["mu_rms"] = H["momentum"]
        if "z_keep" in self.rows:
            sf = opt._sf_scalars(opt.steps, act)
            out["neg_lr"] = torch.where(opt._sf_any, -sf["lr"], out["neg_lr"])
            out["z_keep"] = self.sf_started.to(torch.float64)
            out["z_take"] = 1.0 - out["z_keep"]
            out["ckp1"], out["y_coef"] = sf["ckp1"], sf["y_coef"]
            if "bc2" in self.rows:
                out["bc2"] = sf["bc2"]
            self.sf_started |= opt._sf_any if act is None else opt._sf_any & act
        if "b2" in self.rows:
            out["b2"] = H["beta2"]
            out["w2"] = 1.0 - H["beta2"]
        if "wd" in self.rows:
            out["wd"] = H["weight_decay"]
        if "eps" in self.rows:
            out["eps"] = H["eps"]
        if "shrink" in self.rows:
            b1, b2 = H["beta1"], H["beta2"]
            t = opt.steps.clamp_min(1.0)  # a model that never stepped: unused, kept finite
            out["shrink"] = 1.0 - lr * H["weight_decay"]
            out["w1"] = 1.0 - b1
            out["c2"] = (1.0 - b2 ** t).sqrt()
            out["neg_step"] = -lr / (1.0 - b1 ** t)
        C = torch.stack([out[n].expand(opt.n_models) for n in self.rows])
        if act is not None:
            C = torch.where(act | self.keep_row, C, self.frozen_value)
        return C.to(self.flat.dtype)

    # ------------------------------------------------------------------------------------------- step

    @torch.no_grad()
    def step(self, act: torch.Tensor | None, grads: list):
        opt = self.opt
        G = self._grads(grads)
        if G is None:
            return
        if act is None:
            opt.steps = opt.steps + 1
        else:
            opt.steps = opt.steps + act.to(opt.steps.dtype)
            frozen = ~act
            G.masked_fill_(frozen.view(-1, 1), 0)
        C = self._coefficients(act)
        Cs = C.view(len(self.rows), self.S, self.P, 1)
        for ri, ((kind, nesterov, centered), a, b) in enumerate(self.runs):
            col = {n: Cs[i, :, a:b] for n, i in self.rows.items()}
            p, g = self._view(self.flat, a, b), self._view(G, a, b)
            off = None if act is None else self._view(frozen.view(-1, 1), a, b)
            f = self._flags(a, b)
            if kind == "sgd":
                self._sgd(ri, p, g, col, f, nesterov, off)
            elif kind == "rmsprop":
                self._rmsprop(ri, p, g, col, f, centered, off)
            elif kind in ("sgd_schedulefree", "adamw_schedulefree"):
                self._schedulefree(ri, p, g, col, f, kind)
            else:
                self._adam(ri, p, g, col, f, kind, off)

    @staticmethod
    def _weight_decay(p, g, c, f, off):
        """grad = grad.add(param, alpha=wd); frozen rows stay zero."""
        if f["nonzero_weight_decay"]:
            g.addcmul_(p, c["wd"])
            if off is not None:
                g.masked_fill_(off, 0)

    # The comments give torch's single-tensor operation each line reproduces (same rounding order).

    def _sgd(self, ri, p, g, c, f, nesterov, off):
        self._weight_decay(p, g, c, f, off)
        if f["nonzero_momentum"] or "buf" in self.opt.state.get(self.keys[ri], {}):
            buf = self._state(ri, "buf", g)
            buf.mul_(c["mu_sgd"]).addcmul_(g, c["keep_sgd"])        # buf.mul_(m).add_(g, alpha=1-d); first: g
            if nesterov:
                upd = g.addcmul_(buf, c["mu"])                       # grad = grad.add(buf, alpha=m)
                if off is not None:
                    upd.masked_fill_(off, 0)
            elif off is not None:
                upd = torch.where(off, self.zero, buf, out=self._tmp(ri, g))
            else:
                upd = buf
        else:
            upd = g                                                  # frozen rows are zero already
        p.addcmul_(upd, c["neg_lr"])                                 # param.add_(grad, alpha=-lr)

    def _rmsprop(self, ri, p, g, c, f, centered, off):
        self._weight_decay(p, g, c, f, off)
        sq, tmp = self._state(ri, "square_avg", g), self._tmp(ri, g)
        torch.mul(g, c["w_rms"], out=tmp)
        sq.mul_(c["alpha"]).addcmul_(tmp, g)                         # sq.mul_(a).addcmul_(g, g, value=1-a)
        if centered:
            ga = self._state(ri, "grad_avg", g)
            ga.lerp_(g, c["w_rms"])                                  # grad_avg.lerp_(grad, 1 - alpha)
            torch.addcmul(sq, ga, ga, value=-1, out=tmp).sqrt_()     # sq.addcmul(ga, ga, value=-1).sqrt_()
        else:
            torch.sqrt(sq, out=tmp)
        tmp.add_(c["eps"])                                           # avg.add_(eps)
        if f["positive_momentum"] or "buf" in self.opt.state.get(self.keys[ri], {}):
            buf = self._state(ri, "buf", g)
            buf.mul_(c["mu_rms"]).addcdiv_(g, tmp)                   # buf.mul_(m).addcdiv_(grad, avg)
            upd = buf if off is None else torch.where(off, self.zero, buf, out=tmp)
            p.addcmul_(upd, c["neg_lr"])                             # param.add_(buf, alpha=-lr)
        else:
            torch.div(g, tmp, out=tmp)
            if off is not None:
                tmp.masked_fill_(off, 0)
            p.addcmul_(tmp, c["neg_lr"])                             # param.addcdiv_(grad, avg, value=-lr)

    def _adam(self, ri, p, g, c, f, kind, off):
        if kind == "adamw":
            if f["nonzero_weight_decay"]:
                p.mul_(c["shrink"])                                  # param.mul_(1 - lr * weight_decay)
        else:
            self._weight_decay(p, g, c, f, off)
        m, v, tmp = self._state(ri, "exp_avg", g), self._state(ri, "exp_avg_sq", g), self._tmp(ri, g)
        m.lerp_(g, c["w1"])                                          # exp_avg.lerp_(grad, 1 - beta1)
        torch.mul(g, c["w2"], out=tmp)
        v.mul_(c["b2"]).addcmul_(tmp, g)                             # v.mul_(b2).addcmul_(g, g, value=1-b2)
        torch.sqrt(v, out=tmp).div_(c["c2"]).add_(c["eps"])          # (v.sqrt() / bc2_sqrt).add_(eps)
        torch.div(m, tmp, out=tmp)
        if off is not None:
            tmp.masked_fill_(off, 0)
        p.addcmul_(tmp, c["neg_step"])                               # param.addcdiv_(m, denom, value=-lr/bc1)

    def _schedulefree(self, ri, p, g, c, f, kind):
        """SGDScheduleFree / AdamWScheduleFree (foreach form): p holds y. Frozen models: g = 0 and
        ckp1 = y_coef = lr = 0, z kept, so y and z stay as they were."""
        if kind == "adamw_schedulefree":
            v, tmp = self._state(ri, "exp_avg_sq", g), self._tmp(ri, g)
            torch.mul(g, c["w2"], out=tmp)
            v.mul_(c["b2"]).addcmul_(tmp, g)                         # v.mul_(b2).addcmul_(g, g, value=1-b2)
            torch.div(v, c["bc2"], out=tmp).sqrt_().add_(c["eps"])   # v.div(bc2).sqrt_().add_(eps)
            g.div_(tmp)                                              # grad.div_(denom)
        if f["nonzero_weight_decay"]:
            g.addcmul_(p, c["wd"])                                   # grad.add_(y, alpha=wd)
        z = self._state(ri, "z", g)
        z.mul_(c["z_keep"]).addcmul_(p, c["z_take"])                 # first step: z = y.clone()
        p.lerp_(z, c["ckp1"])                                        # y.lerp_(z, ckp1)
        p.addcmul_(g, c["y_coef"])                                   # y.add_(grad, alpha=lr*(beta*(1-ckp1)-1))
        z.addcmul_(g, c["neg_lr"])                                   # z.sub_(grad, alpha=lr)

    @torch.no_grad()
    def sf_swap(self, weight: torch.Tensor):
        """``y.lerp_(z, weight)`` for the schedule-free models that have stepped (eval: ``1 - 1/beta``,
        train: ``1 - beta``; others get weight 0, which leaves them exactly as they are)."""
        w = torch.where(self.sf_started, weight, 0.0).to(self.flat.dtype).view(self.S, self.P, 1)
        for ri, ((kind, _, _), a, b) in enumerate(self.runs):
            if kind in ("sgd_schedulefree", "adamw_schedulefree"):
                st = self.opt.state.get(self.keys[ri], {})
                if "z" in st:
                    self._view(self.flat, a, b).lerp_(st["z"], w[:, a:b])
