"""A stack of M MLPs trained at once, with torch.optim's optimizers vectorised over the stack.

``python -m bench.batched [--models 12 --steps 100 --batch-size 64 --threads 1 --device cpu]`` is a
micro benchmark: the same configurations trained batched and one at a time with torch.nn + torch.optim.

Model
-----
:class:`BatchedMLP` holds, for layer ``l``, ``weights[l]`` of shape ``(M, in, out)`` and ``biases[l]``
of shape ``(M, out)``; layer ``l`` computes ``h @ W + b`` for every model with ``torch.baddbmm`` on
``(M, B, in)`` inputs. ``weights[l][m]`` is the *transpose* of ``torch.nn.Linear.weight`` (``(out,
in)``). The input batch is either shared by all models, ``(B, in)`` (the paired design), or per model,
``(M, B, in)``; labels likewise ``(B,)`` or ``(M, B)``. Activation (relu, gelu, tanh) after every hidden
layer, then dropout (an independent mask per model and example; scaling 1 / (1 - p) as
``torch.nn.Dropout``; the masks come from one ``torch.Generator`` of the stack, so with dropout a
model's masks depend on its position in the stack).

Initialisation rule (the parity rule): model ``m`` with seed ``s`` gets exactly the parameters of
``torch.nn.Sequential(Linear(w0, w1), act, Linear(w1, w2), act, ..., Linear(w[-2], w[-1]))`` built right
after ``torch.manual_seed(s)``: a ``torch.Generator`` seeded ``s`` draws, layer by layer in order, the
weight with ``kaiming_uniform_(a=sqrt(5))`` then the bias uniform on ``+-1/sqrt(fan_in)`` -- the calls
``nn.Linear.reset_parameters`` makes, with the same generator stream (CPU generator; the values are
drawn on the CPU and moved to the device, so the rule holds on every device).

Loss: ``losses(x, y)`` gives the ``(M,)`` per-model mean cross-entropy; training backpropagates their
sum, so model ``m``'s gradient is exactly its own (models share no parameter).

Optimizers
----------
:class:`BatchedOptimizer` implements ``torch.optim.SGD`` (momentum, dampening, nesterov), ``RMSprop``
(alpha, eps, momentum, centered), ``Adam`` and ``AdamW`` (no amsgrad, no maximize) with their default
hyper-parameters, following the formulas and the order of floating-point operations of torch's
single-tensor (CPU default) implementations. Every hyper-parameter is a per-model ``(M,)`` vector that can
change at any step (``step(lr=..., momentum=...)``, ``set(...)``), as setting ``param_groups`` in torch.
Scalars are computed in float64 (bias corrections ``1 - beta**t`` with the model's own step count ``t``)
and rounded to the parameter dtype, as torch does with Python-float hyper-parameters. One stack may mix
kinds (``kind=["adam", "adam", "sgd", ...]``); models of one kind are updated on slices of the stacked
tensors, so keep each kind contiguous (a run of equal kinds is one group).

``active`` (M,) bool freezes models: a frozen model's parameters, optimizer state and step count are left
exactly as they were. :func:`train_step` freezes models whose loss is not finite.

Notes where the vectorised form must choose (only matter when momentum is switched between zero and
non-zero during a run): the SGD momentum buffer (and RMSprop's) is allocated when a model of the group
first has momentum > 0 and is then updated every step for every model of the group; a model with momentum
0 gets ``buf = 0 * buf + g``, which gives torch's momentum-free update exactly (while ``buf`` is finite).

Updates are in place on the stacked tensors (one scratch buffer per parameter; ``p.grad`` is used as
scratch too), with per-model columns ``(M, 1, ...)`` broadcasting. Host synchronisation: one
``active.all()`` check per step when a mask is given, and a small host copy of the hyper-parameter
vectors whenever they are set (to choose code paths: weight decay present, momentum present, ...).

FLOPs: :func:`step_flops` counts the matmuls of one training step (see there).
"""
from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "OPTIMIZER_DEFAULTS", "BatchedMLP", "BatchedOptimizer", "train_step", "step_flops",
           "torch_reference_model", "torch_optimizer", "matmul_flop_rate"]

ACTIVATIONS = {"relu": (torch.relu, torch.nn.ReLU), "gelu": (F.gelu, torch.nn.GELU),
               "tanh": (torch.tanh, torch.nn.Tanh)}

#: torch.optim's defaults (torch 2.x), per kind.
OPTIMIZER_DEFAULTS = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2),
}
_FLAGS = ("nesterov", "centered")


def step_flops(widths: Sequence[int], batch_size: int, n_models: int = 1, *, input_grad: bool = True) -> int:
    """FLOPs of the matmuls of one training step of ``n_models`` MLPs on ``batch_size`` examples each.

    Per layer (in -> out): forward ``2 * B * in * out`` (one multiply-add = 2 FLOPs); backward twice that
    (gradient of the weights, gradient of the layer input). ``input_grad=False`` leaves out the input
    gradient of the first layer, which autograd does not compute (the data needs no gradient): that is
    the work actually done. Elementwise work (bias, activation, loss, optimizer) is not counted.
    """
    total = 0
    for k, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        mm = 2 * batch_size * i * o
        total += mm * (3 if (input_grad or k > 0) else 2)
    return int(n_models) * total


# ------------------------------------------------------------------------------------------------ model

class BatchedMLP:
    """M independent MLPs with stacked parameters (see the module docstring)."""

    def __init__(self, seeds: Sequence[int], widths: Sequence[int] = (784, 256, 128, 10), activation: str = "relu",
                 dropout=0.0, device="cpu", dtype=torch.float32, dropout_seed: int = 0):
        if activation not in ACTIVATIONS:
            raise ValueError(f"BatchedMLP: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"BatchedMLP: widths must be >= 2 positive integers, got {widths}")
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("BatchedMLP: seeds must name at least one model")
        self.widths, self.activation = widths, activation
        self.device, self.dtype = torch.device(device), dtype
        M = len(self.seeds)
        p = torch.as_tensor(dropout, dtype=torch.float64).flatten()
        if p.numel() not in (1, M) or bool(((p < 0) | (p >= 1)).any()):
            raise ValueError(f"BatchedMLP: dropout must be a rate in [0, 1) or {M} of them, got {dropout!r}")
        self.dropout = p.expand(M).clone()
        self._keep = (1.0 - self.dropout).to(device=self.device, dtype=dtype).view(M, 1, 1)
        self._drop_gen = torch.Generator(device=self.device).manual_seed(dropout_seed)
        ws, bs = [[] for _ in widths[1:]], [[] for _ in widths[1:]]
        for s in self.seeds:
            gen = torch.Generator().manual_seed(s)
            for l, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
                w, b = torch.empty(o, i), torch.empty(o)
                torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
                bound = 1 / math.sqrt(i) if i > 0 else 0
                torch.nn.init.uniform_(b, -bound, bound, generator=gen)
                ws[l].append(w.t())
                bs[l].append(b)
        self.weights = [torch.stack(w).to(device=self.device, dtype=dtype).requires_grad_() for w in ws]
        self.biases = [torch.stack(b).to(device=self.device, dtype=dtype).requires_grad_() for b in bs]

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    @property
    def params(self) -> list[torch.Tensor]:
        """[W0, b0, W1, b1, ...]: the order of ``nn.Sequential(...).parameters()``."""
        return [t for pair in zip(self.weights, self.biases) for t in pair]

    def forward(self, x: torch.Tensor, training: bool = True) -> torch.Tensor:
        """Logits (M, B, classes) for a shared batch ``x`` (B, in) or per-model batches (M, B, in)."""
        M = self.n_models
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(M, *x.shape)
        if x.dim() != 3 or x.shape[0] != M or x.shape[2] != self.widths[0]:
            raise ValueError(f"BatchedMLP.forward: x must be (B, {self.widths[0]}) or ({M}, B, {self.widths[0]}), "
                             f"got {tuple(x.shape)}")
        act = ACTIVATIONS[self.activation][0]
        drop = training and bool((self.dropout > 0).any())
        h = x
        last = len(self.weights) - 1
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b.unsqueeze(1), h, w)
            if l < last:
                h = act(h)
                if drop:
                    mask = torch.rand(h.shape, generator=self._drop_gen, device=h.device, dtype=h.dtype) < self._keep
                    h = h * mask / self._keep
        return h

    __call__ = forward

    def losses(self, x: torch.Tensor, y: torch.Tensor, training: bool = True) -> torch.Tensor:
        """Per-model mean cross-entropy, shape (M,); ``y`` (B,) shared or (M, B) per model."""
        logits = self.forward(x, training)
        M, B, C = logits.shape
        y = y.expand(M, B) if y.dim() == 1 else y
        return F.cross_entropy(logits.reshape(M * B, C), y.reshape(M * B), reduction="none").view(M, B).mean(1)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 5000):
        """(mean loss (M,), accuracy (M,)) over a shared data set, in eval mode (no dropout), float64."""
        M = self.n_models
        loss = torch.zeros(M, dtype=torch.float64, device=self.device)
        correct = torch.zeros(M, dtype=torch.float64, device=self.device)
        for a in range(0, len(x), batch_size):
            xb, yb = x[a:a + batch_size], y[a:a + batch_size]
            logits = self.forward(xb, training=False)
            B, C = logits.shape[1:]
            ce = F.cross_entropy(logits.reshape(M * B, C), yb.expand(M, B).reshape(-1), reduction="none")
            loss += ce.view(M, B).double().sum(1)
            correct += (logits.argmax(-1) == yb).double().sum(1)
        return loss / len(x), correct / len(x)

    def to_torch(self, m: int) -> torch.nn.Sequential:
        """Model ``m`` as a plain ``torch.nn.Sequential`` (a copy of its current parameters)."""
        seq = torch_reference_model(self.widths, self.activation, float(self.dropout[m]))
        with torch.no_grad():
            linears = [mod for mod in seq if isinstance(mod, torch.nn.Linear)]
            for lin, w, b in zip(linears, self.weights, self.biases):
                lin.weight.copy_(w[m].t())
                lin.bias.copy_(b[m])
        return seq.to(device=self.device, dtype=self.dtype)

    def state(self) -> dict[str, torch.Tensor]:
        """Detached copies of the stacked parameters, keyed ``W0, b0, W1, ...``."""
        out = {}
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"W{l}"], out[f"b{l}"] = w.detach().clone(), b.detach().clone()
        return out


def torch_reference_model(widths=(784, 256, 128, 10), activation="relu", dropout=0.0) -> torch.nn.Sequential:
    """The plain torch model a :class:`BatchedMLP` model is equivalent to (built with torch's RNG)."""
    layers = []
    for l, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(i, o))
        if l < len(widths) - 2:
            layers.append(ACTIVATIONS[activation][1]())
            if dropout > 0:
                layers.append(torch.nn.Dropout(dropout))
    return torch.nn.Sequential(*layers)


def torch_optimizer(kind: str, params, **hyper) -> torch.optim.Optimizer:
    """The torch.optim optimizer for one of our kinds with our hyper-parameter names (beta1/beta2)."""
    hyper = dict(hyper)
    if kind in ("adam", "adamw"):
        b1, b2 = hyper.pop("beta1", 0.9), hyper.pop("beta2", 0.999)
        hyper["betas"] = (b1, b2)
    cls = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
           "adamw": torch.optim.AdamW}[kind]
    return cls(params, **hyper)


# ------------------------------------------------------------------------------------------- optimizers

class BatchedOptimizer:
    """torch.optim SGD / RMSprop / Adam / AdamW over a stack, every hyper-parameter a per-model vector."""

    def __init__(self, params: Sequence[torch.Tensor], kind, **hyper):
        self.params = list(params)
        if not self.params:
            raise ValueError("BatchedOptimizer: no parameters")
        M = self.params[0].shape[0]
        self.device = self.params[0].device
        kinds = [kind] * M if isinstance(kind, str) else list(kind)
        if len(kinds) != M:
            raise ValueError(f"BatchedOptimizer: kind must be one name or {M} names, got {len(kinds)}")
        for k in kinds:
            if k not in OPTIMIZER_DEFAULTS:
                raise ValueError(f"BatchedOptimizer: kind must be one of {sorted(OPTIMIZER_DEFAULTS)}, got {k!r}")
        self.kinds, self.n_models = kinds, M
        self.groups = []  # (kind, start, stop), contiguous runs
        start = 0
        for m in range(1, M + 1):
            if m == M or kinds[m] != kinds[start]:
                self.groups.append((kinds[start], start, m))
                start = m
        names = {n for k in set(kinds) for n in OPTIMIZER_DEFAULTS[k]}
        unknown = set(hyper) - names
        if unknown:
            raise ValueError(f"BatchedOptimizer: unknown hyper-parameter(s) {sorted(unknown)} for kinds "
                             f"{sorted(set(kinds))}; known: {sorted(names)}")
        self.hyper: dict[str, torch.Tensor] = {}
        self._host, self._nonzero, self._positive, self._any_flag, self._all_flag = {}, {}, {}, {}, {}
        for n in sorted(names):
            default = np.array([OPTIMIZER_DEFAULTS[k].get(n, 0.0) for k in kinds], dtype=np.float64)
            self.hyper[n] = self._vector(n, default)
        self.set(**hyper)
        self.steps = torch.zeros(M, dtype=torch.float64, device=self.device)  # per-model step counts
        self.state: dict = {}

    def _vector(self, name, value) -> torch.Tensor:
        """Validate on the host, keep a host copy (``_host``) for choosing code paths, return the device copy."""
        dtype = torch.bool if name in _FLAGS else torch.float64
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
        v = torch.as_tensor(np.asarray(value), dtype=dtype).flatten()
        if v.numel() == 1:
            v = v.expand(self.n_models)
        if v.numel() != self.n_models:
            raise ValueError(f"BatchedOptimizer: {name} must be a scalar or {self.n_models} values, got {v.numel()}")
        if dtype != torch.bool and not bool(torch.isfinite(v).all()):
            raise ValueError(f"BatchedOptimizer: {name} must be finite, got {value!r}")
        v = v.clone()
        self._host[name] = v
        if dtype == torch.bool:
            self._any_flag[name], self._all_flag[name] = bool(v.any()), bool(v.all())
        else:
            self._nonzero[name], self._positive[name] = bool((v != 0).any()), bool((v > 0).any())
        return v.to(self.device)

    def set(self, **hyper):
        """Set hyper-parameters (scalar or (M,) each) from now on, like editing torch's param_groups."""
        for n, value in hyper.items():
            if value is None:
                continue
            if n not in self.hyper:
                raise ValueError(f"BatchedOptimizer: unknown hyper-parameter {n!r}; known: {sorted(self.hyper)}")
            self.hyper[n] = self._vector(n, value)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr=None, momentum=None, beta1=None, active=None, **hyper):
        """One update of every active model with its own gradient (``p.grad``, which may be overwritten).

        ``lr``, ``momentum``, ``beta1`` and any other hyper-parameter: scalar or (M,), kept for later
        steps. ``momentum`` is also used as Adam/AdamW's beta1 unless ``beta1`` is given (as torch's
        OneCycleLR / CyclicLR cycle ``betas[0]``). ``active``: (M,) bool, frozen models are not touched.
        Updates are in place; when some model is frozen, the touched tensors are saved first and the
        frozen models' slices restored afterwards (one host check ``active.all()`` per step).
        """
        if momentum is not None and beta1 is None and "beta1" in self.hyper:
            beta1 = momentum
        if momentum is not None and "momentum" not in self.hyper:
            momentum = None
        self.set(lr=lr, momentum=momentum, beta1=beta1, **hyper)
        act = None
        if active is not None:
            act = torch.as_tensor(active, dtype=torch.bool, device=self.device).flatten()
            if act.numel() != self.n_models:
                raise ValueError(f"BatchedOptimizer.step: active must have {self.n_models} values")
            if bool(act.all()):
                act = None
        new_steps = self.steps + 1 if act is None else torch.where(act, self.steps + 1, self.steps)
        for gi, (kind, a, b) in enumerate(self.groups):
            h = {n: v[a:b] for n, v in self.hyper.items()}
            ga = None if act is None else act[a:b]
            for pi, p in enumerate(self.params):
                if p.grad is None:
                    continue
                st = self.state.setdefault((gi, pi), {})
                pv, g = p[a:b], p.grad[a:b]
                if ga is None:
                    getattr(self, "_" + kind)(pv, g, st, h, new_steps[a:b], kind)
                    continue
                # some model frozen: save, update everything in place, restore the frozen models' slices
                keys = [k for k, t in st.items() if self._is_state(k, t)]
                saved = {k: st[k].clone() for k in keys}
                saved_p, init_before = pv.clone(), st.get("init")
                getattr(self, "_" + kind)(pv, g, st, h, new_steps[a:b], kind)
                pv.copy_(torch.where(self._bcol(ga, pv), pv, saved_p))
                for k, t in st.items():
                    if self._is_state(k, t):  # state created in this step starts at zero for frozen models
                        old = saved[k] if k in saved else torch.zeros((), dtype=t.dtype, device=t.device)
                        t.copy_(torch.where(self._bcol(ga, t), t, old))
                if "init" in st:
                    before = init_before if init_before is not None else torch.zeros_like(ga)
                    st["init"] = before | ga
                    st["all_init"] = bool(st["init"].all())
        self.steps = new_steps

    # --- helpers
    @staticmethod
    def _is_state(key, t) -> bool:
        return isinstance(t, torch.Tensor) and t.dtype != torch.bool and not key.startswith("_")

    @staticmethod
    def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(m,) float64 -> (m, 1, ...) in the parameter dtype, broadcasting over one model's tensor."""
        return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    @staticmethod
    def _bcol(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    @staticmethod
    def _scratch(st, like):
        if "_scratch" not in st:
            st["_scratch"] = torch.empty_like(like)
        return st["_scratch"]

    # The comments give torch's single-tensor operation each line reproduces (same rounding order).

    # --- torch.optim.SGD
    def _sgd(self, p, g, st, h, steps, kind):
        c = self._col
        if self._nonzero["weight_decay"]:
            g.addcmul_(p, c(h["weight_decay"], p))                 # grad = grad.add(param, alpha=wd)
        mom = h["momentum"]
        if "buf" not in st and self._nonzero["momentum"]:
            st["buf"] = torch.zeros_like(p)
            st["init"] = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
        if "buf" in st:
            buf = st["buf"]
            if not st.get("all_init"):                               # first step: buf = grad.clone()
                first = self._bcol(~st["init"], p)
                buf.copy_(torch.where(first, g, buf * c(mom, p) + c(1 - h["dampening"], p) * g))
                st["init"] = torch.ones_like(st["init"])
                st["all_init"] = True
            else:
                buf.mul_(c(mom, p)).addcmul_(g, c(1 - h["dampening"], p))  # buf.mul_(m).add_(g, alpha=1-d)
            if self._any_flag["nesterov"]:
                nest = self._bcol(h["nesterov"], p)
                g = torch.where(nest, g.addcmul(buf, c(mom, p)), buf) if not self._all_flag["nesterov"] \
                    else g.addcmul_(buf, c(mom, p))                  # grad = grad.add(buf, alpha=m)
            else:
                g = buf
        p.addcmul_(g, c(-h["lr"], p))                                # param.add_(grad, alpha=-lr)

    # --- torch.optim.RMSprop
    def _rmsprop(self, p, g, st, h, steps, kind):
        c = self._col
        if self._nonzero["weight_decay"]:
            g.addcmul_(p, c(h["weight_decay"], p))
        if "square_avg" not in st:
            st["square_avg"] = torch.zeros_like(p)
        alpha = h["alpha"]
        sq, tmp = st["square_avg"], self._scratch(st, p)
        torch.mul(g, c(1 - alpha, p), out=tmp)
        sq.mul_(c(alpha, p)).addcmul_(tmp, g)                        # sq.mul_(a).addcmul_(g, g, value=1-a)
        if self._any_flag["centered"]:
            if "grad_avg" not in st:
                st["grad_avg"] = torch.zeros_like(p)
            ga = st["grad_avg"]
            ga.lerp_(g, c(1 - alpha, p))                             # grad_avg.lerp_(grad, 1 - alpha)
            torch.addcmul(sq, ga, ga, value=-1, out=tmp).sqrt_()     # sq.addcmul(ga, ga, value=-1).sqrt_()
            if not self._all_flag["centered"]:
                tmp.copy_(torch.where(self._bcol(h["centered"], p), tmp, sq.sqrt()))
        else:
            torch.sqrt(sq, out=tmp)
        tmp.add_(c(h["eps"], p))                                     # avg.add_(eps)
        if "buf" not in st and self._positive["momentum"]:
            st["buf"] = torch.zeros_like(p)
        if "buf" in st:
            st["buf"].mul_(c(h["momentum"], p)).addcdiv_(g, tmp)      # buf.mul_(m).addcdiv_(grad, avg)
            p.addcmul_(st["buf"], c(-h["lr"], p))                    # param.add_(buf, alpha=-lr)
        else:
            torch.div(g, tmp, out=tmp)
            p.addcmul_(tmp, c(-h["lr"], p))                          # param.addcdiv_(grad, avg, value=-lr)

    # --- torch.optim.Adam / AdamW
    def _adam(self, p, g, st, h, steps, kind):
        c = self._col
        lr, wd, b1, b2 = h["lr"], h["weight_decay"], h["beta1"], h["beta2"]
        if kind == "adamw":
            if self._nonzero["weight_decay"]:
                p.mul_(c(1 - lr * wd, p))                            # param.mul_(1 - lr * weight_decay)
        elif self._nonzero["weight_decay"]:
            g.addcmul_(p, c(wd, p))                                  # grad = grad.add(param, alpha=wd)
        if "exp_avg" not in st:
            st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        m, v, tmp = st["exp_avg"], st["exp_avg_sq"], self._scratch(st, p)
        m.lerp_(g, c(1 - b1, p))                                     # exp_avg.lerp_(grad, 1 - beta1)
        torch.mul(g, c(1 - b2, p), out=tmp)
        v.mul_(c(b2, p)).addcmul_(tmp, g)                            # v.mul_(b2).addcmul_(g, g, value=1-b2)
        bc1 = 1 - b1 ** steps                                        # float64, each model's own step count
        bc2 = 1 - b2 ** steps
        torch.sqrt(v, out=tmp).div_(c(bc2.sqrt(), p)).add_(c(h["eps"], p))  # (v.sqrt() / bc2_sqrt).add_(eps)
        torch.div(m, tmp, out=tmp)
        p.addcmul_(tmp, c(-(lr / bc1), p))                           # param.addcdiv_(m, denom, value=-lr/bc1)

    _adamw = _adam


def train_step(model: BatchedMLP, opt: BatchedOptimizer, x: torch.Tensor, y: torch.Tensor, lr=None, momentum=None,
               active=None, **hyper):
    """Forward, backward and one optimizer step for the whole stack.

    Returns ``(losses, active)``: the (M,) per-model losses of this batch (before the update, detached)
    and the new mask ``active & isfinite(losses)``: a model whose loss is NaN/inf gets no update from
    this step and stays frozen when the caller passes the mask back in. No host synchronisation.
    """
    opt.zero_grad()
    losses = model.losses(x, y, training=True)
    losses.sum().backward()
    finite = torch.isfinite(losses.detach())
    act = finite if active is None else finite & torch.as_tensor(active, dtype=torch.bool, device=finite.device)
    opt.step(lr=lr, momentum=momentum, active=act, **hyper)
    return losses.detach(), act


# ------------------------------------------------------------------------------------ micro benchmark

def _bench_configs(n_models: int):
    """(kind, hyper, seed) for a spread of torch.optim configurations."""
    base = [("sgd", dict(lr=0.05)), ("sgd", dict(lr=0.02, momentum=0.9)),
            ("sgd", dict(lr=0.02, momentum=0.9, nesterov=True)), ("rmsprop", dict(lr=1e-3)),
            ("adam", dict(lr=1e-3)), ("adamw", dict(lr=1e-3))]
    return [(base[k % len(base)][0], base[k % len(base)][1], k // len(base)) for k in range(n_models)]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flop_rate(device, n=1024, repeats=5) -> float:
    """FLOP/s of one float32 ``n x n`` torch matmul (``2 n^3`` FLOPs), best of ``repeats``."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.batched",
                                 description="Batched vs one-at-a-time training of small MLPs on the CPU.")
    ap.add_argument("--models", type=int, default=12)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads (default 1: on a shared 2-core machine two OpenMP threads make "
                         "timings depend on the other load; 0 keeps torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    M, steps, B = args.models, args.steps, args.batch_size
    widths = (784, 256, 128, 10)
    try:
        from .data import load_fashion_mnist
        data = load_fashion_mnist(dev, args.data_dir)
        X, Y, source = data.x_train, data.y_train, "Fashion-MNIST"
    except (FileNotFoundError, ValueError) as exc:  # the benchmark also runs without the data set
        print(f"(Fashion-MNIST unavailable: {str(exc).splitlines()[0]}; using random data)")
        g = torch.Generator().manual_seed(0)
        X, Y, source = torch.randn(50000, 784, generator=g), torch.randint(0, 10, (50000,), generator=g), "random"
        X, Y = X.to(dev), Y.to(dev)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, len(X), (B,), generator=gen).to(dev) for _ in range(steps)]
    configs = _bench_configs(M)
    configs.sort(key=lambda c: c[0])  # kinds contiguous: one slice per kind
    kinds = [c[0] for c in configs]

    # batched
    model = BatchedMLP([c[2] for c in configs], widths, device=dev)
    hyper = {}
    for name in {n for _, h, _ in configs for n in h}:
        hyper[name] = [h.get(name, OPTIMIZER_DEFAULTS[k].get(name, 0.0)) for k, h, _ in configs]
    opt = BatchedOptimizer(model.params, kinds, **hyper)
    for idx in batches[:3]:  # warm-up (allocations, thread pools), untimed
        losses, active = train_step(model, opt, X[idx], Y[idx])
    _sync(dev)
    t0 = time.perf_counter()
    for idx in batches:
        losses, active = train_step(model, opt, X[idx], Y[idx])
    _sync(dev)
    t_batched = time.perf_counter() - t0

    # one at a time, plain torch
    t_plain = 0.0
    for kind, h, seed in configs:
        torch.manual_seed(seed)
        net = torch_reference_model(widths).to(dev)
        topt = torch_optimizer(kind, net.parameters(), **h)
        for k, idx in enumerate(batches[:3] + batches):  # the same 3 untimed warm-up steps
            if k == 3:
                _sync(dev)
                t0 = time.perf_counter()
            topt.zero_grad()
            F.cross_entropy(net(X[idx]), Y[idx]).backward()
            topt.step()
        _sync(dev)
        t_plain += time.perf_counter() - t0

    rate_b, rate_p = M * steps / t_batched, M * steps / t_plain
    flops = step_flops(widths, B, M, input_grad=False)
    mm = matmul_flop_rate(dev)
    print(f"data {source}; {M} models ({', '.join(sorted(set(kinds)))}), widths {widths}, batch {B}, {steps} steps, "
          f"torch {torch.__version__}, {dev}, {torch.get_num_threads()} threads")
    print(f"batched      : {rate_b:10.1f} model-steps/s  ({t_batched:.2f} s)")
    print(f"one at a time: {rate_p:10.1f} model-steps/s  ({t_plain:.2f} s)")
    print(f"speed-up     : {rate_b / rate_p:10.2f} x")
    print(f"batched matmul work: {flops * steps / t_batched / 1e9:.2f} GFLOP/s executed "
          f"({step_flops(widths, B, M) * steps / t_batched / 1e9:.2f} by the 6*B*in*out convention); "
          f"torch 1024^3 sgemm: {mm / 1e9:.2f} GFLOP/s "
          f"({flops * steps / t_batched / mm:.0%} of it)")


if __name__ == "__main__":
    main()
