"""bench.train.optim_kernels: one launch per optimizer kind over every parameter of a stack (a table of jobs),
checked against simple references on fresh random inputs: the job table against a plain enumeration, every
optimizer kind of the matrix (float32 and bfloat16 gradients, parameters larger than a tile, a frozen
model) against torch.optim / the schedulefree package one model at a time, and the kernels compiled when the
optimizer is made (not inside a training step). No timing here: speed is measured by lrbench train-speed."""
import numpy as np
import pytest
import torch

from bench.train import optim_kernels as K
from bench.train.optim import BatchedOptimizer, torch_optimizer

#: kind and hyper-parameters of each optimizer of the matrix, one model each in a mixed stack
MATRIX = [("sgd", dict(lr=0.05)), ("sgd", dict(lr=0.02, momentum=0.9)),
          ("sgd", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-3)),
          ("rmsprop", dict(lr=1e-3)), ("adam", dict(lr=1e-3)), ("adamw", dict(lr=2e-3)),
          ("sgd_schedulefree", dict(lr=0.5)), ("adamw_schedulefree", dict(lr=2e-3))]
SHAPES = [(2, K.TILE + 5), (3,), (7, 600)]  # one parameter spans three tiles


def test_jobs_cover_every_tile_of_the_listed_models_once():
    rng = np.random.default_rng(0)
    for _ in range(20):
        sizes = [int(s) for s in rng.integers(1, 3 * K.TILE, rng.integers(1, 5))]
        rows = np.sort(rng.choice(6, rng.integers(0, 7), replace=False))
        got = sorted(map(tuple, K.jobs(sizes, rows).tolist()))
        want = sorted((i, int(m), a) for i, n in enumerate(sizes) for m in rows for a in range(0, n, K.TILE))
        assert got == want


def _stack(seed):
    g = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=g) for s in SHAPES]
    grads = [[torch.randn((len(MATRIX), *s), generator=g) * 0.1 for s in SHAPES] for _ in range(6)]
    return init, grads


def _hyper(kind_hyper):
    names = {n for _, h in kind_hyper for n in h}
    defaults = {"momentum": 0.0, "nesterov": False, "weight_decay": None}
    out = {}
    for n in names:
        vals = [h.get(n, defaults.get(n)) for k, h in kind_hyper]
        if n == "weight_decay":  # each kind's own default where not given (AdamW's 1e-2)
            from bench.train.optim import OPTIMIZER_DEFAULTS
            vals = [OPTIMIZER_DEFAULTS[k]["weight_decay"] if v is None else v for (k, _), v in zip(kind_hyper, vals)]
        out[n] = vals
    if "momentum" in out:  # the schedule-free kinds' own momentum default
        out["momentum"] = [0.9 if k == "sgd_schedulefree" else v for (k, _), v in zip(kind_hyper, out["momentum"])]
    return out


@pytest.mark.parametrize("grad_dtype", [torch.float32, torch.bfloat16])
def test_every_matrix_kind_against_one_model_references(grad_dtype):
    """A mixed stack (one model per kind) updated by the numba kernels, model 2 frozen for steps 2-3; each
    model against its reference optimizer fed the same (widened) gradients; the bfloat16 copy is the
    parameters rounded."""
    init, grads = _stack(1)
    M = len(MATRIX)
    stack = [torch.stack([t.clone()] * M) for t in init]
    if grad_dtype == torch.bfloat16:
        for p in stack:
            p._lrbench_low = p.to(torch.bfloat16)
            p._lrbench_low_version = p._version
    hyper = _hyper(MATRIX)
    opt = BatchedOptimizer(stack, [k for k, _ in MATRIX], impl="numba", **hyper)
    frozen = {2, 3}
    for t, gs in enumerate(grads):
        active = torch.tensor([not (m == 2 and t in frozen) for m in range(M)])
        opt.step(active=active, grads=[g.to(grad_dtype) for g in gs])
    for m, (kind, h) in enumerate(MATRIX):
        ref = [torch.nn.Parameter(t.clone()) for t in init]
        kw = {n: v[m] for n, v in hyper.items() if n in h or n == "weight_decay"}
        if kind == "sgd_schedulefree":
            kw["momentum"] = 0.9
        ropt = torch_optimizer(kind, ref, **{n: v for n, v in kw.items() if n != "nesterov" or v})
        for t, gs in enumerate(grads):
            if m == 2 and t in frozen:
                continue
            for p, g in zip(ref, gs):
                p.grad = g[m].to(grad_dtype).float()
            ropt.step()
        for p, r in zip(stack, ref):
            torch.testing.assert_close(p[m], r.detach(), rtol=2e-5, atol=1e-7, msg=f"{kind} {h}")
    if grad_dtype == torch.bfloat16:
        for p in stack:
            assert torch.equal(p._lrbench_low, p.to(torch.bfloat16))


def test_kernels_are_compiled_when_the_optimizer_is_made():
    """Constructing the optimizer compiles (or loads from numba's disk cache) its kinds' kernels for float32
    and bfloat16 gradients: the first training step does not."""
    params = [torch.zeros(2, 3, 4), torch.zeros(2, 4)]
    BatchedOptimizer(params, ["adam", "rmsprop"], impl="numba")
    for fn in (K.adam, K.rmsprop):
        grad_types = {str(sig[1].dtype.dtype) for sig in fn.signatures if sig[0].count == 2}
        assert {"float32", "uint16"} <= grad_types, (fn, fn.signatures)
