"""A stack of M MLPs trained at once, with torch.optim's optimizers vectorised over the stack.

``python -m bench.train.model [--models 12 --steps 100 --batch-size 64 --threads 1 --device cpu]`` is a
micro benchmark: the same configurations trained batched and one at a time with torch.nn + torch.optim.

Model
-----
:class:`BatchedMLP` holds, for layer ``l``, ``weights[l]`` of shape ``(M, out, in)`` and ``biases[l]``
of shape ``(M, out)``; ``weights[l][m]`` is laid out as ``torch.nn.Linear.weight``. Layer ``l`` computes
``h @ W^T + b`` for every model with ``torch.baddbmm`` on ``(M, B, in)`` inputs. (This layout makes the
largest matmul of a step, the first layer's weight gradient ``d^T @ x`` with only B = 128 terms per
value, run at 170 GFLOP/s on the 2-core CPU instead of 95 for ``x^T @ d`` into ``(M, in, out)``.) The input batch is either shared by all models, ``(B, in)`` (the paired design), or per model,
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

Training step (:func:`train_step`): ``BatchedMLP.loss_and_grad`` runs the forward pass and writes every
parameter's gradient into buffers kept between steps, with the backward formulas autograd uses (the
same ATen backward kernels for the activations), so a step allocates none of its large tensors (on the
CPU, fresh gradient tensors of tens of MB each step cost page faults, 20% of a step). Gradients equal
autograd's to float32 rounding (``tests/test_batched.py``). Then :class:`bench.train.optim.BatchedOptimizer`
updates the stack (torch.optim's optimizers, every hyper-parameter a per-model vector).

FLOPs: :func:`step_flops` counts the matmuls of one training step (see there).

Precision: ``precision="fp32"`` (default) is all of the above in the parameters' dtype; ``"bf16"`` runs the
three matmuls of each layer in bfloat16 with float32 master weights (:mod:`bench.train.mixed`: the recipe,
its layout and roundings); then the gradients are ``model.grads`` (bfloat16) rather than ``p.grad``.
"""
from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..machine import matmul_flop_rate
from . import mixed
from .activations import ACTIVATIONS, activation_backward
from .config import PRECISIONS, TrainSpec
from .optim import OPTIMIZER_DEFAULTS, BatchedOptimizer, torch_optimizer

__all__ = ["ACTIVATIONS", "OPTIMIZER_DEFAULTS", "BatchedMLP", "BatchedOptimizer", "train_step", "step_flops", "forward_flops",
           "torch_reference_model", "torch_optimizer", "matmul_flop_rate"]


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


def forward_flops(widths: Sequence[int], n_examples: int, n_models: int = 1) -> int:
    """FLOPs of the matmuls of a forward pass (evaluation) of ``n_models`` MLPs over ``n_examples``:
    ``2 * n * in * out`` per layer."""
    return int(n_models) * sum(2 * int(n_examples) * i * o for i, o in zip(widths[:-1], widths[1:]))


# ------------------------------------------------------------------------------------------------ model

class BatchedMLP:
    """M independent MLPs with stacked parameters (see the module docstring)."""

    def __init__(self, seeds: Sequence[int], widths: Sequence[int] = TrainSpec.widths, activation: str = "relu",
                 dropout=0.0, device="cpu", dtype=torch.float32, dropout_seed: int = 0, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"BatchedMLP: precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "bf16" and dtype != torch.float32:
            raise ValueError(f"BatchedMLP: precision 'bf16' keeps float32 master weights; dtype must be float32, "
                             f"got {dtype}")
        self.precision = precision
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
        self._any_dropout = bool((self.dropout > 0).any())  # read once: no scalar read-back per step
        self._drop_gen = torch.Generator(device=self.device).manual_seed(dropout_seed)
        ws, bs = [[] for _ in widths[1:]], [[] for _ in widths[1:]]
        for s in self.seeds:
            gen = torch.Generator().manual_seed(s)
            for l, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
                w, b = torch.empty(o, i), torch.empty(o)
                torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
                bound = 1 / math.sqrt(i) if i > 0 else 0
                torch.nn.init.uniform_(b, -bound, bound, generator=gen)
                ws[l].append(w)
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

    def _input(self, x: torch.Tensor, groups, who: str):
        """Validate a batch; returns (x, bounds): ``bounds`` None for per-model batches x (M, B, in), else
        the [start, stop) model range of each row of x (S, B, in) -- models in a range share that row."""
        M, n_in = self.n_models, self.widths[0]
        if x.dim() == 2:
            x, groups = x.unsqueeze(0), [M]
        if x.dim() != 3 or x.shape[2] != n_in:
            raise ValueError(f"BatchedMLP.{who}: x must be (B, {n_in}), ({M}, B, {n_in}) or (groups, B, {n_in}), "
                             f"got {tuple(x.shape)}")
        if groups is None:
            if x.shape[0] != M:
                raise ValueError(f"BatchedMLP.{who}: x has {x.shape[0]} batches for {M} models; give groups=")
            return x, None
        sizes = [int(g) for g in groups]
        if len(sizes) != x.shape[0] or sum(sizes) != M or min(sizes) < 1:
            raise ValueError(f"BatchedMLP.{who}: groups must be {x.shape[0]} positive sizes summing to {M}, "
                             f"got {sizes}")
        ends = np.cumsum(sizes).tolist()
        return x, list(zip([0] + ends[:-1], ends))

    @staticmethod
    def _group_batches(x, bounds):
        """(start, stop, that group's batch broadcast over its models, never copied) per group."""
        return [(a, e, x[s].unsqueeze(0).expand(e - a, *x.shape[1:])) for s, (a, e) in enumerate(bounds)]

    def _first_layer(self, x, bounds) -> torch.Tensor:
        """z = x @ W0^T + b0 for every model: one batched matmul per group of models sharing a batch."""
        w, b = self.weights[0], self.biases[0]
        if bounds is None:
            return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        parts = [(a, e, (b[a:e].unsqueeze(1), xs, w[a:e].transpose(1, 2))) for a, e, xs in self._group_batches(x, bounds)]
        if len(parts) == 1:
            return torch.baddbmm(*parts[0][2])
        if torch.is_grad_enabled():  # autograd (forward, losses) cannot write into out=
            return torch.cat([torch.baddbmm(*p) for _, _, p in parts])
        z = torch.empty(self.n_models, x.shape[1], self.widths[1], device=x.device, dtype=self.dtype)
        for a, e, p in parts:
            torch.baddbmm(*p, out=z[a:e])
        return z

    def _layers(self, x, bounds, training: bool):
        """Forward pass: (logits, per hidden layer (z, a, mask or None), each layer's input)."""
        act = ACTIVATIONS[self.activation][0]
        drop = training and self._any_dropout
        last = len(self.weights) - 1
        hidden, inputs = [], [x]
        h = None
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = self._first_layer(x, bounds) if l == 0 else torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if l == last:
                return z, hidden, inputs
            a = z.relu_() if self.activation == "relu" else act(z)  # relu's backward needs only a
            mask = None
            if drop:
                mask = torch.rand(a.shape, generator=self._drop_gen, device=a.device, dtype=a.dtype) < self._keep
            hidden.append((z, a, mask))
            h = a if mask is None else a * mask / self._keep
            inputs.append(h)

    def forward(self, x: torch.Tensor, training: bool = True, groups=None) -> torch.Tensor:
        """Logits (M, B, classes) for a shared batch ``x`` (B, in), per-model batches (M, B, in), or one
        batch per group of consecutive models, (S, B, in) with ``groups`` the S group sizes."""
        x, bounds = self._input(x, groups, "forward")
        if self.precision == "bf16":
            return mixed.forward(self, x, bounds, training)
        return self._layers(x, bounds, training)[0]

    __call__ = forward

    def _labels(self, y: torch.Tensor, B: int, groups) -> torch.Tensor:
        """Labels (M, B) from (B,) shared, (M, B) per model or (S, B) per group."""
        M = self.n_models
        if y.dim() == 1:
            return y.expand(M, B)
        if groups is not None and y.shape[0] != M:  # row of each model, built once (no per-step host sync)
            key = (tuple(int(g) for g in groups), y.device)
            cache = self.__dict__.setdefault("_label_rows", {})
            if key not in cache:
                cache[key] = torch.repeat_interleave(torch.arange(len(key[0])), torch.tensor(key[0])).to(y.device)
            return y.index_select(0, cache[key])
        return y

    def losses(self, x: torch.Tensor, y: torch.Tensor, training: bool = True, groups=None) -> torch.Tensor:
        """Per-model mean cross-entropy, shape (M,); ``y`` (B,) shared, (M, B) per model or (S, B) per group."""
        logits = self.forward(x, training, groups)
        M, B, C = logits.shape
        y = self._labels(y, B, groups)
        return F.cross_entropy(logits.reshape(M * B, C), y.reshape(M * B), reduction="none").view(M, B).mean(1)

    @torch.no_grad()
    def loss_and_grad(self, x: torch.Tensor, y: torch.Tensor, groups=None) -> torch.Tensor:
        """Per-model training losses (M,) of a batch; sets ``p.grad`` of every parameter to the gradient of
        their sum (each model's own gradient), in buffers reused from step to step; ``self.grads`` lists them.
        ``precision="bf16"``: :func:`bench.train.mixed.loss_and_grad` (bfloat16 gradients in ``self.grads``,
        ``p.grad`` None).

        Inputs as :meth:`forward` (same dropout masks from the stack's generator). Backward, per layer from
        the top (``d = dL/dz``, ``h`` the layer's input)::

            d_logits = (softmax(logits) - onehot(y)) / B        (mean cross-entropy per model)
            dW = d^T @ h,  db = sum_B d,  d_below = act'(d @ W)   (dropout: times mask / keep)
        """
        x, bounds = self._input(x, groups, "loss_and_grad")
        B = x.shape[1]
        y = self._labels(y, B, groups)
        if self.precision == "bf16":
            return mixed.loss_and_grad(self, x, y, bounds)
        h, hidden, inputs = self._layers(x, bounds, training=True)
        last = len(self.weights) - 1
        logp = torch.log_softmax(h, -1)
        yi = y.unsqueeze(2)
        losses = -logp.gather(2, yi).squeeze(2).mean(1)
        d = logp.exp_()
        d.scatter_add_(2, yi, torch.full(yi.shape, -1.0, dtype=d.dtype, device=d.device)).div_(B)
        grads = self._grad_buffers()
        for l in range(last, -1, -1):
            w = self.weights[l]
            if l == 0 and bounds is not None:
                for a, e, xs in self._group_batches(x, bounds):
                    torch.bmm(d[a:e].transpose(1, 2), xs, out=grads[0][a:e])
            else:
                torch.bmm(d.transpose(1, 2), inputs[l], out=grads[2 * l])
            torch.sum(d, 1, out=grads[2 * l + 1])
            if l == 0:
                break
            g = torch.bmm(d, w)
            z, a, mask = hidden[l - 1]
            if mask is not None:
                g = g / self._keep * mask
            d = activation_backward(self.activation, g, z, a)
        for p, g in zip(self.params, grads):
            p.grad = g
        self.grads = grads
        return losses

    def _grad_buffers(self) -> list[torch.Tensor]:
        """Gradient buffers kept between steps: the views of the optimizer's flat gradient buffer when it
        made them (``p._lrbench_grad``, :mod:`bench.train.optim_fused`), else tensors allocated once."""
        views = [getattr(p, "_lrbench_grad", None) for p in self.params]
        if all(v is not None for v in views):
            return views
        bufs = getattr(self, "_grads", None)
        if bufs is None:
            bufs = self._grads = [torch.empty_like(p) for p in self.params]
        return bufs

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
                lin.weight.copy_(w[m])
                lin.bias.copy_(b[m])
        return seq.to(device=self.device, dtype=self.dtype)

    def state(self) -> dict[str, torch.Tensor]:
        """Detached copies of the stacked parameters, keyed ``W0, b0, W1, ...``."""
        out = {}
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"W{l}"], out[f"b{l}"] = w.detach().clone(), b.detach().clone()
        return out


def torch_reference_model(widths=TrainSpec.widths, activation="relu", dropout=0.0) -> torch.nn.Sequential:
    """The plain torch model a :class:`BatchedMLP` model is equivalent to (built with torch's RNG)."""
    layers = []
    for l, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(i, o))
        if l < len(widths) - 2:
            layers.append(ACTIVATIONS[activation][1]())
            if dropout > 0:
                layers.append(torch.nn.Dropout(dropout))
    return torch.nn.Sequential(*layers)


def train_step(model: BatchedMLP, opt: BatchedOptimizer, x: torch.Tensor, y: torch.Tensor, lr=None, momentum=None,
               active=None, groups=None, **hyper):
    """Forward, backward (:meth:`BatchedMLP.loss_and_grad`) and one optimizer step for the whole stack.

    Returns ``(losses, active)``: the (M,) per-model losses of this batch (before the update, detached)
    and the new mask ``active & isfinite(losses)``: a model whose loss is NaN/inf gets no update from
    this step and stays frozen when the caller passes the mask back in. ``x``, ``y``, ``groups``: as
    :meth:`BatchedMLP.forward`.
    """
    losses = model.loss_and_grad(x, y, groups)
    finite = torch.isfinite(losses)
    act = finite if active is None else finite & torch.as_tensor(active, dtype=torch.bool, device=finite.device)
    opt.step(lr=lr, momentum=momentum, active=act, grads=model.grads, **hyper)
    return losses, act


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


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.train.model",
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
    widths = TrainSpec.widths
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
