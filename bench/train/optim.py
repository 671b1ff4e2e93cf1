"""torch.optim's SGD, RMSprop, Adam and AdamW for a stack of M models, every hyper-parameter a per-model vector.

:class:`BatchedOptimizer` implements ``torch.optim.SGD`` (momentum, dampening, nesterov), ``RMSprop``
(alpha, eps, momentum, centered), ``Adam`` and ``AdamW`` (no amsgrad, no maximize) with their default
hyper-parameters over stacked parameters (model ``m`` owns ``p[m]``). Every hyper-parameter is a per-model
``(M,)`` vector that can change at any step (``step(lr=..., momentum=...)``, ``set(...)``), as setting
``param_groups`` in torch. Scalars are computed in float64 (bias corrections ``1 - beta**t`` with the
model's own step count ``t``) and rounded to float32 where torch rounds its Python-float scalars. One
stack may mix kinds (``kind=["adam", "sgd", ...]``).

Schedule-Free SGD and AdamW (kinds ``sgd_schedulefree``, ``adamw_schedulefree``: the ``schedulefree``
package's ``SGDScheduleFree`` / ``AdamWScheduleFree``, their defaults and options ``warmup_steps``, ``r``,
``weight_lr_power``, all per model): the parameters hold the gradient point y while training; z (the
base sequence) is state and x (the average) is what :meth:`BatchedOptimizer.eval` puts in the parameters
(``y.lerp_(z, 1 - 1/beta)``; :meth:`BatchedOptimizer.train` goes back with ``1 - beta``), as the
package does. The per-step scalars (warmed-up lr, ``lr_max``, ``weight_sum``, ``ckp1``) are per-model
vectors (:meth:`BatchedOptimizer._sf_scalars`); parity with the package: ``tests/test_schedulefree.py``.

Two implementations, chosen by ``impl``:

* ``"numba"`` (default for float32 / float64 parameters on the CPU): :mod:`bench.train.optim_kernels`, one parallel pass
  over each parameter per step, per-model formulas with torch's semantics (including a momentum buffer
  that starts as the first gradient, per model). Frozen models are skipped.
* ``"torch"`` (any device, the default off the CPU): :mod:`bench.train.optim_fused`: the parameters are moved
  into one (M, N) buffer (each becomes a view of it) and each run of equal kind and flags is updated by a
  few tensor operations over all its models and parameters at once, in the operation order of torch's
  single-tensor implementations; per-model scalars are computed on the device, frozen models are masked
  (no clone, no host sync). Parameters that cannot share a buffer (mixed dtypes or devices) take the
  per-group loop below (``_step_torch``): slices of the stacked tensors per run of equal kind, frozen
  models saved and restored.

Both agree with torch.optim to float32 rounding over hundreds of steps and with each other
(``tests/test_batched.py``). Where the vectorised torch path must choose (only when momentum is switched
between zero and non-zero during a run): the SGD momentum buffer (and RMSprop's) is allocated when a
model of the group first has momentum > 0 and is then updated every step for every model of the group; a
model with momentum 0 gets ``buf = 0 * buf + g``, which gives torch's momentum-free update exactly.

``active`` (M,) bool freezes models: a frozen model's parameters, optimizer state and step count are left
exactly as they were.

Mixed precision (:mod:`bench.train.mixed`): ``step(grads=...)`` takes the gradients explicitly, float32 or
bfloat16 (widened exactly to the parameters' float32 as they are read: the update is float32 throughout);
a parameter with a bfloat16 copy (``p._lrbench_low``) gets it refreshed by the step (the numba kernels
write it while the row is in cache; the torch path casts after its update).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["OPTIMIZER_DEFAULTS", "SCHEDULE_FREE", "IMPLS", "BatchedOptimizer", "torch_optimizer"]

#: torch.optim's defaults (torch 2.x), per kind.
OPTIMIZER_DEFAULTS = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2),
    # the schedulefree package's defaults (1.4): SGDScheduleFree and AdamWScheduleFree
    "sgd_schedulefree": dict(lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0.0, r=0.0,
                             weight_lr_power=2.0),
    "adamw_schedulefree": dict(lr=0.0025, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, warmup_steps=0.0,
                               r=0.0, weight_lr_power=2.0),
}
#: The schedule-free kinds: parameters hold y in train mode and x after :meth:`BatchedOptimizer.eval`.
SCHEDULE_FREE = ("sgd_schedulefree", "adamw_schedulefree")
IMPLS = ("auto", "numba", "torch")
_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_FLAGS = ("nesterov", "centered")


def _rows(t: torch.Tensor, M: int) -> np.ndarray:
    """``t`` as an (M, n) numpy array without a copy; bfloat16 as its uint16 bits (the kernels widen them)."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).reshape(M, -1).numpy().view(np.uint16)
    return t.reshape(M, -1).numpy()


def _low_valid(p: torch.Tensor) -> bool:
    """Whether ``p``'s bfloat16 copy holds ``p`` (see :func:`bench.train.mixed.low_params`)."""
    return getattr(p, "_lrbench_low", None) is not None and getattr(p, "_lrbench_low_version", None) == p._version


def torch_optimizer(kind: str, params, **hyper) -> torch.optim.Optimizer:
    """The torch.optim optimizer for one of our kinds with our hyper-parameter names (beta1/beta2); the
    schedule-free kinds are the ``schedulefree`` package's optimizers, returned in train mode."""
    hyper = dict(hyper)
    if kind in ("adam", "adamw", "adamw_schedulefree"):
        b1, b2 = hyper.pop("beta1", 0.9), hyper.pop("beta2", 0.999)
        hyper["betas"] = (b1, b2)
    if kind in SCHEDULE_FREE:
        try:
            import schedulefree
        except ImportError:
            raise ImportError(f"optimizer {kind!r} in a one-model-at-a-time trainer needs the schedulefree "
                              "package: pip install schedulefree") from None
        cls = schedulefree.SGDScheduleFree if kind == "sgd_schedulefree" else schedulefree.AdamWScheduleFree
        opt = cls(params, **hyper)
        opt.train()
        return opt
    cls = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
           "adamw": torch.optim.AdamW}[kind]
    return cls(params, **hyper)


class BatchedOptimizer:
    """torch.optim SGD / RMSprop / Adam / AdamW over a stack, every hyper-parameter a per-model vector."""

    def __init__(self, params: Sequence[torch.Tensor], kind, impl: str = "auto", **hyper):
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
        if impl not in IMPLS:
            raise ValueError(f"BatchedOptimizer: impl must be one of {IMPLS}, got {impl!r}")
        dtype = self.params[0].dtype
        on_cpu = all(p.device.type == "cpu" and p.dtype == dtype and p.is_contiguous() for p in self.params) \
            and dtype in _NP_DTYPES
        if impl == "numba" and not on_cpu:
            raise ValueError("BatchedOptimizer: impl='numba' needs contiguous float32 or float64 parameters "
                             "(all one dtype) on the CPU")
        self.impl = ("numba" if on_cpu else "torch") if impl == "auto" else impl
        self.kinds, self.n_models = kinds, M
        names = {n for k in set(kinds) for n in OPTIMIZER_DEFAULTS[k]}
        unknown = set(hyper) - names
        if unknown:
            raise ValueError(f"BatchedOptimizer: unknown hyper-parameter(s) {sorted(unknown)} for kinds "
                             f"{sorted(set(kinds))}; known: {sorted(names)}")
        self.hyper: dict[str, torch.Tensor] = {}
        self._host: dict[str, np.ndarray] = {}
        self._device_set: set[str] = set()  # hyper-parameters last given as device tensors (no host copy)
        for n in sorted(names):
            default = np.array([OPTIMIZER_DEFAULTS[k].get(n, 0.0) for k in kinds], dtype=np.float64)
            self.hyper[n] = self._vector(n, default)
        self.set(**hyper)
        # groups: contiguous runs of equal (kind, nesterov, centered) -- the torch path's slices
        sig = [(k, bool(self._host.get("nesterov", np.zeros(M, bool))[m]),
                bool(self._host.get("centered", np.zeros(M, bool))[m])) for m, k in enumerate(kinds)]
        self.groups = []  # (kind, start, stop)
        start = 0
        for m in range(1, M + 1):
            if m == M or sig[m] != sig[start]:
                self.groups.append((kinds[start], start, m))
                start = m
        self.steps = torch.zeros(M, dtype=torch.float64, device=self.device)  # per-model step counts
        self._steps_host = np.zeros(M, np.float64)
        kind_arr = np.array(kinds)
        self._rows = {k: np.flatnonzero(kind_arr == k) for k in dict.fromkeys(kinds)}
        self._slot = np.zeros(M, np.int64)
        for rows in self._rows.values():
            self._slot[rows] = np.arange(len(rows))
        self.state: dict = {}
        # schedule-free bookkeeping (the package's per-group lr_max / weight_sum, here per model)
        self.training = True
        self._sf_kinds = [k for k in SCHEDULE_FREE if k in self._rows]
        if self._sf_kinds:
            for m, k in enumerate(kinds):
                beta = self._host["momentum" if k == "sgd_schedulefree" else "beta1"][m] if k in SCHEDULE_FREE else .5
                if not 0 < beta < 1:
                    raise ValueError(f"BatchedOptimizer: {k} needs momentum / beta1 in (0, 1) (model {m}: {beta})")
            is_k = lambda k: torch.as_tensor(kind_arr == k, device=self.device)
            self._sf_mask = {k: is_k(k) for k in SCHEDULE_FREE}
            self._sf_any = self._sf_mask["sgd_schedulefree"] | self._sf_mask["adamw_schedulefree"]
            self.sf_lr_max = torch.full((M,), -1.0, dtype=torch.float64, device=self.device)
            self.sf_weight_sum = torch.zeros(M, dtype=torch.float64, device=self.device)
            self._sf_started = np.zeros(M, np.bool_)  # numba path: z holds y of the model's first step
        self._fused = None
        self._jobs: dict = {}  # the numba path's job tables, by (kind, rows, parameter sizes)
        if self.impl == "numba":
            self._warm()
        if self.impl == "torch":  # one (M, N) buffer for the whole stack (bench.train.optim_fused), when possible
            from .optim_fused import FusedStep, flatten_params
            flat = flatten_params(self.params)
            if flat is not None:
                self._fused = FusedStep(self, *flat)
            elif self._sf_kinds:
                raise ValueError("BatchedOptimizer: the schedule-free kinds need all parameters in one dtype on one "
                                 "device (impl='torch' updates them as one buffer)")

    def _warm(self):
        """Compile or load the numba kernels of this stack's kinds now (float gradients, and bfloat16 ones for a
        float32 stack: mixed precision), so that no training step pays for it (numba caches them on disk:
        compiled once per machine, loaded in well under a second after that)."""
        from lrcore import _threads

        from . import optim_kernels as K
        _threads.ensure_started()  # numba's pool, started without resetting torch's thread count
        dt = np.dtype(_NP_DTYPES[self.params[0].dtype])
        for kind in self._rows:
            for gd in (dt, np.dtype(np.uint16)) if dt == np.float32 else (dt,):
                K.warm(kind, len(self.params), dt, gd)

    def _vector(self, name, value) -> torch.Tensor:
        """Validate on the host, keep the host copy (``_host``, for choosing code paths), return it on the device.

        After construction, the torch path takes a float tensor already on the device as it is (a column of
        the trainer's lr table): no validation, since reading it back would be a host sync per step."""
        dtype = np.bool_ if name in _FLAGS else np.float64
        if (self.impl == "torch" and hasattr(self, "_fused") and isinstance(value, torch.Tensor)
                and value.device == self.device
                and dtype is np.float64 and value.dtype.is_floating_point and value.numel() in (1, self.n_models)):
            self._device_set.add(name)
            return value.detach().to(torch.float64).reshape(-1).expand(self.n_models)
        self._device_set.discard(name)
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        v = np.asarray(value, dtype=dtype).ravel()
        if v.size == 1:
            v = np.repeat(v, self.n_models)
        if v.size != self.n_models:
            raise ValueError(f"BatchedOptimizer: {name} must be a scalar or {self.n_models} values, got {v.size}")
        if dtype is np.float64 and not np.isfinite(v).all():
            raise ValueError(f"BatchedOptimizer: {name} must be finite, got {value!r}")
        v = v.copy()
        self._host[name] = v
        return torch.from_numpy(v).to(self.device)

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

    # ------------------------------------------------------------------------------ schedule-free

    def _sf_beta(self) -> torch.Tensor:
        """(M,) float64: momentum of sgd_schedulefree models, beta1 of adamw_schedulefree ones, else 0."""
        beta = torch.zeros(self.n_models, dtype=torch.float64, device=self.device)
        for k, name in (("sgd_schedulefree", "momentum"), ("adamw_schedulefree", "beta1")):
            if k in self._sf_kinds:
                beta = torch.where(self._sf_mask[k], self.hyper[name], beta)
        return beta

    def _sf_scalars(self, steps: torch.Tensor, act: torch.Tensor | None) -> dict:
        """The schedulefree package's per-step scalars, per model, in float64 (``steps``: the step counts
        after this step, ``k + 1``)::

            lr = lr * ((k + 1) / warmup_steps if k < warmup_steps else 1)
            lr_max = max(lr, lr_max);  weight = (k + 1)**r * lr_max**weight_lr_power
            weight_sum += weight;  ckp1 = weight / weight_sum (0 when weight_sum == 0)
            y_coef = lr * (beta * (1 - ckp1) - 1);  bias_correction2 = 1 - beta2**(k + 1)

        ``lr_max`` and ``weight_sum`` advance for active models only."""
        H = self.hyper
        steps = steps.clamp_min(1.0)  # a frozen model that never stepped: unused, kept finite
        warm = H["warmup_steps"]
        lr = H["lr"] * torch.where(steps <= warm, steps / warm.clamp_min(1.0), 1.0)
        lr_max = torch.maximum(lr, self.sf_lr_max)
        weight = steps ** H["r"] * lr_max ** H["weight_lr_power"]
        wsum = self.sf_weight_sum + weight
        if act is None:
            upd = self._sf_any
        else:
            upd = self._sf_any & act
        self.sf_lr_max = torch.where(upd, lr_max, self.sf_lr_max)
        self.sf_weight_sum = torch.where(upd, wsum, self.sf_weight_sum)
        ckp1 = torch.where(wsum != 0, weight / torch.where(wsum != 0, wsum, 1.0), 0.0)
        out = dict(lr=lr, ckp1=ckp1, y_coef=lr * (self._sf_beta() * (1 - ckp1) - 1))
        if "beta2" in H:
            out["bc2"] = 1 - H["beta2"] ** steps
        return out

    @torch.no_grad()
    def eval(self):
        """Schedule-free models: parameters y -> x (``p.lerp_(z, 1 - 1/beta)``), as the package's
        ``optimizer.eval()``; evaluate and save the model in this mode. Other kinds: untouched."""
        if self._sf_kinds and self.training:
            self._sf_swap(1 - 1 / self._sf_beta().clamp_min(1e-300))
        self.training = False

    @torch.no_grad()
    def train(self):
        """Back to y (``p.lerp_(z, 1 - beta)``), as the package's ``optimizer.train()``."""
        if self._sf_kinds and not self.training:
            self._sf_swap(1 - self._sf_beta())
        self.training = True

    def _sf_swap(self, weight: torch.Tensor):
        """``p.lerp_(z, weight)`` for every schedule-free model that has stepped (has a z)."""
        if self._fused is not None:
            self._fused.sf_swap(weight)
            self._refresh_low()
            return
        w = weight.to(self.params[0].dtype).cpu()
        for kind in self._sf_kinds:
            rows = self._rows[kind]
            rows = rows[self._sf_started[rows]]
            if rows.size == 0:
                continue
            r_t, s_t = torch.from_numpy(rows), torch.from_numpy(self._slot[rows])
            for pi, p in enumerate(self.params):
                st = self.state.get((kind, pi), {})
                if "z" not in st:
                    continue
                P = p.detach().view(self.n_models, -1)
                Z = st["z"].view(st["z"].shape[0], -1)
                P[r_t] = torch.lerp(P[r_t], Z[s_t], w[r_t].view(-1, 1))

    @torch.no_grad()
    def step(self, lr=None, momentum=None, beta1=None, active=None, grads=None, **hyper):
        """One update of every active model with its own gradient (``p.grad``, or ``grads``: one per parameter,
        float32 or bfloat16; a float gradient may be overwritten).

        ``lr``, ``momentum``, ``beta1`` and any other hyper-parameter: scalar or (M,), kept for later
        steps. ``momentum`` is also used as Adam/AdamW's beta1 unless ``beta1`` is given (as torch's
        OneCycleLR / CyclicLR cycle ``betas[0]``). ``active``: (M,) bool, frozen models are not touched.
        """
        if momentum is not None and beta1 is None and "beta1" in self.hyper:
            beta1 = momentum
        if momentum is not None and "momentum" not in self.hyper:
            momentum = None
        if self._sf_kinds and not self.training:
            raise RuntimeError("BatchedOptimizer.step: the schedule-free models are in eval mode (parameters hold "
                               "x); call train() before stepping, as with the schedulefree package")
        self.set(lr=lr, momentum=momentum, beta1=beta1, **hyper)
        act = None
        if active is not None:
            act = torch.as_tensor(active, dtype=torch.bool, device=self.device).flatten()
            if act.numel() != self.n_models:
                raise ValueError(f"BatchedOptimizer.step: active must have {self.n_models} values")
            if self.impl == "numba" and bool(act.all()):  # the device path never reads the mask back
                act = None
        grads = [p.grad for p in self.params] if grads is None else list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"BatchedOptimizer.step: grads must give {len(self.params)} gradients, got {len(grads)}")
        if self.impl == "numba":
            self._step_numba(None if act is None else act.cpu().numpy(), grads)
        else:
            self._step_torch(act, grads)
            self._refresh_low()

    def _refresh_low(self):
        """The torch path: cast each parameter's bfloat16 copy after the parameters changed."""
        for p in self.params:
            low = getattr(p, "_lrbench_low", None)
            if low is not None:
                low.copy_(p)
                p._lrbench_low_version = p._version

    # ------------------------------------------------------------------------------------ numba path

    def _step_numba(self, act: np.ndarray | None, grads: list):
        from . import optim_kernels as K
        h = self._host
        if act is None:
            self._steps_host += 1
        else:
            self._steps_host[act] += 1
        self.steps = torch.from_numpy(self._steps_host.copy())
        M = self.n_models
        dt = np.dtype(_NP_DTYPES[self.params[0].dtype])
        r = lambda v: np.asarray(v, np.float64).astype(dt)  # float64 scalars rounded as torch rounds them
        sf = None
        if self._sf_kinds:
            sf = {k: v.numpy() for k, v in self._sf_scalars(
                torch.from_numpy(self._steps_host.copy()), None if act is None else torch.from_numpy(act)).items()}
        for kind, all_rows in self._rows.items():
            rows = all_rows if act is None else all_rows[act[all_rows]]
            if rows.size == 0:
                continue
            K_ = len(all_rows)
            if kind == "sgd":
                scalars = (r(-h["lr"]), r(h["momentum"]), r(1.0 - h["dampening"]), r(h["weight_decay"]),
                           h["nesterov"])
            elif kind == "rmsprop":
                w = r(1.0 - h["alpha"])
                scalars = (r(-h["lr"]), r(h["alpha"]), w, w - dt.type(1), r(h["eps"]), r(h["weight_decay"]),
                           r(h["momentum"]), h["centered"])
            elif kind in SCHEDULE_FREE:
                c = r(sf["ckp1"])
                scalars = (r(-sf["lr"]), c, c - dt.type(1), r(sf["y_coef"]), r(h["weight_decay"]))
                if kind == "adamw_schedulefree":
                    scalars += (r(h["beta2"]), r(1.0 - h["beta2"]), r(sf["bc2"]), r(h["eps"]))
            else:
                t = np.maximum(self._steps_host, 1.0)  # frozen models that never stepped: unused, kept finite
                decoupled = kind == "adamw"
                w = r(1.0 - h["beta1"])
                scalars = (r(1.0 - h["lr"] * h["weight_decay"]) if decoupled else np.ones(M, dt),
                           np.zeros(M, dt) if decoupled else r(h["weight_decay"]), w, w - dt.type(1),
                           r(h["beta2"]), r(1.0 - h["beta2"]), r(-(h["lr"] / (1.0 - h["beta1"] ** t))),
                           r((1.0 - h["beta2"] ** t) ** 0.5), r(h["eps"]))
            self._launch(K, kind, rows, K_, scalars, grads, act)
            if kind in SCHEDULE_FREE:
                self._sf_started[rows] = True

    def _launch(self, K, kind: str, rows: np.ndarray, K_: int, scalars: tuple, grads: list, act):
        """One kernel launch for every parameter of ``kind`` that has a gradient (its state made on first use),
        one per gradient dtype should they differ."""
        h, M = self._host, self.n_models
        by_dtype: dict = {}
        for pi, p in enumerate(self.params):
            if grads[pi] is not None:
                G = _rows(grads[pi], M)
                by_dtype.setdefault(G.dtype, []).append((pi, p, G))
        for group in by_dtype.values():
            ps, gs, lows, states, firsts = [], [], [], [], []
            for pi, p, G in group:
                st = self.state.setdefault((kind, pi), {})
                ps.append(p.detach().view(M, -1).numpy())
                gs.append(G)
                # the bfloat16 copy, written with the update: when it was valid (frozen rows keep theirs) or
                # every row is updated
                lows.append(_rows(p._lrbench_low, M) if getattr(p, "_lrbench_low", None) is not None and (
                    act is None or _low_valid(p)) else K.NO_LOW)
                states.append(self._kind_state(st, kind, rows, K_, p))
                if kind == "sgd":
                    firsts.append(st.get("_first", np.zeros(M, np.bool_)))
            key = (kind, rows.tobytes(), tuple(P.shape[1] for P in ps))
            jobs = self._jobs.get(key)
            if jobs is None:
                jobs = self._jobs[key] = K.jobs([P.shape[1] for P in ps], rows)
            first = (np.stack(firsts),) if kind == "sgd" else (~self._sf_started,) if kind in SCHEDULE_FREE else ()
            fn = K.KERNELS[kind][0]
            fn(tuple(ps), tuple(gs), *(tuple(col) for col in zip(*states)), tuple(lows), jobs, self._slot, *first,
               *scalars)
            for (pi, p, G), L in zip(group, lows):
                st = self.state[(kind, pi)]
                if kind == "sgd" and "_first" in st:
                    st["_first"][rows[h["momentum"][rows] != 0]] = False
                if L is not K.NO_LOW:
                    p._lrbench_low_version = p._version

    def _kind_state(self, st: dict, kind: str, rows: np.ndarray, K_: int, p: torch.Tensor) -> tuple:
        """The (K, n) state arrays of one parameter that ``kind``'s kernel takes (made on first use; a (0, n)
        stand-in for state no model of the kind needs)."""
        h = self._host
        shape = (K_, *p.shape[1:])
        empty = np.zeros((0, p[0].numel()), _NP_DTYPES[p.dtype])

        def zeros(name):
            if name not in st:
                st[name] = torch.zeros(shape, dtype=p.dtype)
        flat = lambda name: st[name].view(K_, -1).numpy() if name in st else empty
        if kind == "sgd":
            if "momentum_buffer" not in st and (h["momentum"][rows] != 0).any():
                zeros("momentum_buffer")
                st["_first"] = np.ones(self.n_models, np.bool_)
            return (flat("momentum_buffer"),)
        if kind in SCHEDULE_FREE:
            zeros("z")
            if kind == "sgd_schedulefree":
                return (flat("z"),)
            zeros("exp_avg_sq")
            return flat("z"), flat("exp_avg_sq")
        if kind == "rmsprop":
            zeros("square_avg")
            if "grad_avg" not in st and h["centered"][rows].any():
                zeros("grad_avg")
            if "momentum_buffer" not in st and (h["momentum"][rows] > 0).any():
                zeros("momentum_buffer")
            return flat("square_avg"), flat("grad_avg"), flat("momentum_buffer")
        zeros("exp_avg")
        zeros("exp_avg_sq")
        return flat("exp_avg"), flat("exp_avg_sq")

    # ------------------------------------------------------------------------------------ torch path

    def _step_torch(self, act: torch.Tensor | None, grads: list):
        if self._fused is not None:
            self._fused.step(act, grads)
            return
        if act is not None and bool(act.all()):
            act = None
        new_steps = self.steps + 1 if act is None else torch.where(act, self.steps + 1, self.steps)
        for gi, (kind, a, b) in enumerate(self.groups):
            h = {n: v[a:b] for n, v in self.hyper.items()}
            flags = self._group_flags(a, b)
            ga = None if act is None else act[a:b]
            for pi, p in enumerate(self.params):
                if grads[pi] is None:
                    continue
                st = self.state.setdefault((gi, pi), {})
                pv, g = p[a:b], grads[pi][a:b].to(p.dtype)
                if ga is None:
                    getattr(self, "_" + kind)(pv, g, st, h, new_steps[a:b], kind, flags)
                    continue
                # some model frozen: save, update everything in place, restore the frozen models' slices
                keys = [k for k, t in st.items() if self._is_state(k, t)]
                saved = {k: st[k].clone() for k in keys}
                saved_p, init_before = pv.clone(), st.get("init")
                getattr(self, "_" + kind)(pv, g, st, h, new_steps[a:b], kind, flags)
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

    def _group_flags(self, a: int, b: int) -> dict:
        """Code-path choices of group [a, b) from the host copies of its hyper-parameters."""
        h = self._host
        f = {}
        for n in ("weight_decay", "momentum"):
            if n in h:
                f["nonzero_" + n], f["positive_" + n] = bool((h[n][a:b] != 0).any()), bool((h[n][a:b] > 0).any())
        for n in _FLAGS:
            if n in h:
                f["any_" + n], f["all_" + n] = bool(h[n][a:b].any()), bool(h[n][a:b].all())
        return f

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

    def _sgd(self, p, g, st, h, steps, kind, f):
        c = self._col
        if f["nonzero_weight_decay"]:
            g.addcmul_(p, c(h["weight_decay"], p))                 # grad = grad.add(param, alpha=wd)
        mom = h["momentum"]
        if "buf" not in st and f["nonzero_momentum"]:
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
            if f["any_nesterov"]:
                nest = self._bcol(h["nesterov"], p)
                g = torch.where(nest, g.addcmul(buf, c(mom, p)), buf) if not f["all_nesterov"] \
                    else g.addcmul_(buf, c(mom, p))                  # grad = grad.add(buf, alpha=m)
            else:
                g = buf
        p.addcmul_(g, c(-h["lr"], p))                                # param.add_(grad, alpha=-lr)

    def _rmsprop(self, p, g, st, h, steps, kind, f):
        c = self._col
        if f["nonzero_weight_decay"]:
            g.addcmul_(p, c(h["weight_decay"], p))
        if "square_avg" not in st:
            st["square_avg"] = torch.zeros_like(p)
        alpha = h["alpha"]
        sq, tmp = st["square_avg"], self._scratch(st, p)
        torch.mul(g, c(1 - alpha, p), out=tmp)
        sq.mul_(c(alpha, p)).addcmul_(tmp, g)                        # sq.mul_(a).addcmul_(g, g, value=1-a)
        if f["any_centered"]:
            if "grad_avg" not in st:
                st["grad_avg"] = torch.zeros_like(p)
            ga = st["grad_avg"]
            ga.lerp_(g, c(1 - alpha, p))                             # grad_avg.lerp_(grad, 1 - alpha)
            torch.addcmul(sq, ga, ga, value=-1, out=tmp).sqrt_()     # sq.addcmul(ga, ga, value=-1).sqrt_()
            if not f["all_centered"]:
                tmp.copy_(torch.where(self._bcol(h["centered"], p), tmp, sq.sqrt()))
        else:
            torch.sqrt(sq, out=tmp)
        tmp.add_(c(h["eps"], p))                                     # avg.add_(eps)
        if "buf" not in st and f["positive_momentum"]:
            st["buf"] = torch.zeros_like(p)
        if "buf" in st:
            st["buf"].mul_(c(h["momentum"], p)).addcdiv_(g, tmp)      # buf.mul_(m).addcdiv_(grad, avg)
            p.addcmul_(st["buf"], c(-h["lr"], p))                    # param.add_(buf, alpha=-lr)
        else:
            torch.div(g, tmp, out=tmp)
            p.addcmul_(tmp, c(-h["lr"], p))                          # param.addcdiv_(grad, avg, value=-lr)

    def _adam(self, p, g, st, h, steps, kind, f):
        c = self._col
        lr, wd, b1, b2 = h["lr"], h["weight_decay"], h["beta1"], h["beta2"]
        if kind == "adamw":
            if f["nonzero_weight_decay"]:
                p.mul_(c(1 - lr * wd, p))                            # param.mul_(1 - lr * weight_decay)
        elif f["nonzero_weight_decay"]:
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
