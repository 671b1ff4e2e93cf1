"""Mixed precision for :class:`bench.train.model.BatchedMLP` (``precision="bf16"``): the three matmuls of each
layer in bfloat16, float32 master weights, optimizer state, loss and softmax -- the recipe of
``torch.autocast(dtype=torch.bfloat16)``, written out for the stack; any device (CPU, CUDA).

Per layer ``l`` (``r()`` rounds to bfloat16, ``h`` the layer's input, already bfloat16; the data: ``r(x)``)::

    z = r(r(W) h + r(b));  a = act(z)  (bfloat16)              forward
    logits -> float32: log_softmax, loss, d = (softmax - onehot(y)) / B;  d = r(d)
    dW = r(d h^T);  db = r(sum_B d);  d_below = act'(r(r(W)^T d))   backward, every product in bfloat16

Products accumulate in float32 and are rounded once (bfloat16 outputs). Gradients stay in bfloat16 (as
autocast hands them to float32 parameters): the optimizer widens them exactly as it reads them. The
bfloat16 copy of each parameter (``p._lrbench_low``) is written by the optimizer while it updates the
parameter (no cast pass per step) and cast again here whenever ``p`` changed in another way
(``p._version``; :func:`low_params`).

Layout: activations are feature-major, ``(M, features, B)`` (``h^T`` per model), so that the first layer's
matmuls of a group of models sharing a batch are single GEMMs with no transposed copy:
``z (G*out, B) = W (G*out, in) @ x^T`` and ``dW (G*out, in) = d (G*out, B) @ x``; on a CPU with AMX these
run 2-4x faster than the batched matmul over a broadcast batch. Dropout masks therefore differ from the
float32 path's (another layout of the same generator's stream).
"""
from __future__ import annotations

import torch

from .activations import ACTIVATIONS, activation_backward

__all__ = ["BF16", "low_params", "forward", "loss_and_grad", "grad_buffers"]

BF16 = torch.bfloat16


def low_params(model) -> list[torch.Tensor]:
    """The bfloat16 copy of every parameter (``p._lrbench_low``, made on first use). A copy is valid while
    ``p._lrbench_low_version == p._version``: torch's in-place writes (a restore, ``lerp_``) advance the
    version and the copy is cast again; the numba optimizer writes ``p`` and its copy together
    (:mod:`bench.train.optim_kernels`), the torch optimizer casts after its step (:mod:`bench.train.optim`)."""
    out = []
    for p in model.params:
        low = getattr(p, "_lrbench_low", None)
        if low is None:
            low = p._lrbench_low = torch.empty(p.shape, dtype=BF16, device=p.device)
            p._lrbench_low_version = None
        if p._lrbench_low_version != p._version:
            with torch.no_grad():
                low.copy_(p)
            p._lrbench_low_version = p._version
        out.append(low)
    return out


def grad_buffers(model) -> list[torch.Tensor]:
    """The bfloat16 gradient buffers, one per parameter, kept between steps (``model.grads`` after a step)."""
    bufs = getattr(model, "_grads_low", None)
    if bufs is None:
        bufs = model._grads_low = [torch.empty(p.shape, dtype=BF16, device=p.device) for p in model.params]
    return bufs


def _first_layer(model, w, b, x, bounds) -> torch.Tensor:
    """z^T (M, out, B) = W x^T + b: one GEMM per group of models sharing a batch row of ``x``."""
    M, out, B = model.n_models, model.widths[1], x.shape[1]
    if bounds is None:  # a batch per model
        return torch.baddbmm(b.unsqueeze(2), w, x.transpose(1, 2))
    z = torch.empty(M, out, B, dtype=BF16, device=x.device)
    for s, (a, e) in enumerate(bounds):
        n = (e - a) * out
        torch.addmm(b[a:e].reshape(n, 1).expand(n, B), w[a:e].view(n, -1), x[s].t(), out=z[a:e].view(n, B))
    return z


def _layers(model, x, bounds, training: bool):
    """(logits^T (M, classes, B) bfloat16, per hidden layer (z, a, mask or None), each layer's input)."""
    low = low_params(model)
    ws, bs = low[0::2], low[1::2]
    act = ACTIVATIONS[model.activation][0]
    drop = training and model._any_dropout
    keep = model._keep.to(BF16)  # (M, 1, 1)
    last = len(ws) - 1
    hidden, inputs = [], [x]
    h = x
    for l, (w, b) in enumerate(zip(ws, bs)):
        z = _first_layer(model, w, b, x, bounds) if l == 0 else torch.baddbmm(b.unsqueeze(2), w, h)
        if l == last:
            return z, hidden, inputs
        a = z.relu_() if model.activation == "relu" else act(z)
        mask = None
        if drop:
            mask = torch.rand(a.shape, generator=model._drop_gen, device=a.device) < model._keep
        hidden.append((z, a, mask))
        h = a if mask is None else a * mask / keep
        inputs.append(h)


def _low_input(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == BF16 else x.to(BF16)


def forward(model, x, bounds, training: bool) -> torch.Tensor:
    """Logits (M, B, classes) in float32 (from the bfloat16 products); inputs as ``BatchedMLP.forward``."""
    logits_t = _layers(model, _low_input(x), bounds, training)[0]
    return logits_t.transpose(1, 2).float()


@torch.no_grad()
def loss_and_grad(model, x, y, bounds) -> torch.Tensor:
    """Per-model mean cross-entropy (M,) in float32; the gradients (bfloat16) into :func:`grad_buffers`
    (the module docstring gives every rounding). ``y``: (M, B) labels."""
    x = _low_input(x)
    B = x.shape[1]
    logits_t, hidden, inputs = _layers(model, x, bounds, training=True)
    last = len(model.weights) - 1
    logp = torch.log_softmax(logits_t.float(), 1)                      # (M, classes, B), float32
    yi = y.unsqueeze(1)
    losses = -logp.gather(1, yi).squeeze(1).mean(1)
    d = logp.exp_()
    d.scatter_add_(1, yi, torch.full(yi.shape, -1.0, dtype=d.dtype, device=d.device)).div_(B)
    d = d.to(BF16)
    grads = grad_buffers(model)
    ws = low_params(model)[0::2]  # valid: _layers has just refreshed them
    for l in range(last, -1, -1):
        gw, gb = grads[2 * l], grads[2 * l + 1]
        if l == 0 and bounds is not None:
            out = model.widths[1]
            for s, (a, e) in enumerate(bounds):
                n = (e - a) * out
                torch.mm(d[a:e].view(n, B), x[s], out=gw[a:e].view(n, -1))
        elif l == 0:
            torch.bmm(d, x, out=gw)
        else:
            torch.bmm(d, inputs[l].transpose(1, 2), out=gw)
        torch.sum(d, 2, out=gb)
        if l == 0:
            break
        g = torch.bmm(ws[l].transpose(1, 2), d)
        z, a, mask = hidden[l - 1]
        if mask is not None:
            g = g / model._keep.to(BF16) * mask
        d = activation_backward(model.activation, g, z, a)
    for p in model.params:
        p.grad = None
    model.grads = grads
    return losses
