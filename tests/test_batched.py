"""bench.train.model: the stacked MLP and optimizers against plain torch.nn + torch.optim.

Parity runs train one model 300 steps on real Fashion-MNIST batches of 64 (random data when the data set
is not installed) with the batched trainer and with torch, from the same initial weights.

float32 is checked for what float32 can promise on any CPU. Training is chaotic at float32 rounding: Adam
turns the ~1e-9 rounding noise of the gradient of a never-lit pixel into a full +-lr step, and a ReLU unit
sitting on 0 flips with a 1e-8 change (centred RMSprop with momentum: under ``ATEN_CPU_CAPABILITY=default``
the batched model flips one at step 20 and ends 5e-2 from torch, while torch nudged by one ulp, or run with
the AVX2 or AVX-512 kernels, stays within 2e-5). So:
(a) for the first SHORT steps, before rounding is amplified, the parameters agree element by element:
    |diff| <= 1e-5 + 1e-4 |torch| + 2 * envelope, the envelope being what float32 alone does to torch's run
    there: per element, the larger of how far torch moves when its initial weights are nudged by one ulp
    (up, and down) and how far it moves under PyTorch's other CPU kernel families (subprocesses:
    tests/kernel_families.py);
(b) over the whole run, the training-loss trajectories agree: per window of 50 steps, the mean losses
    within 1% + 2 * how far torch's own window mean moves under the other kernel families (a 10% change of
    the learning rate moves them 1-3%).
Exactness is proven where rounding cannot hide a difference: in float64 (1e-10 relative after 300 steps,
every optimizer, OneCycle lr and momentum included), and for the optimizer alone fed a fixed gradient
sequence (no feedback, no chaos): bit for bit for SGD where torch's float32 kernels fuse multiply-adds
(the AVX2 and AVX-512 families), to float32 rounding otherwise. tests/test_kernel_families.py reruns these
float32 tests under every family the CPU supports.
Parity widths are (784, 64, 32, 10) to keep the suite fast on two cores; the default widths are checked
at initialisation and in a shorter run.
"""
import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lrcore
from bench.train import model as BT
from kernel_families import current as current_family
from kernel_families import family_spread
from float32_parity import SHORT, compare_losses, window_means

STEPS, BATCH = 300, 64
SMALL = (784, 64, 32, 10)
RTOL, ATOL = 1e-4, 1e-5



@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one thread is faster and avoids OpenMP spin-waits on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def load_batches():
    """STEPS real Fashion-MNIST batches of 64 (x (64, 784) float32, y (64,) int64)."""
    try:
        from bench.train.data import load_fashion_mnist
        d = load_fashion_mnist("cpu")
        X, Y = d.x_train, d.y_train
    except (FileNotFoundError, ValueError):  # pragma: no cover - machines without the data set
        g = torch.Generator().manual_seed(0)
        X, Y = torch.randn(5000, 784, generator=g), torch.randint(0, 10, (5000,), generator=g)
    g = torch.Generator().manual_seed(123)
    out = []
    for _ in range(STEPS):
        idx = torch.randint(0, len(X), (BATCH,), generator=g)
        out.append((X[idx].clone(), Y[idx].clone()))
    return out


@pytest.fixture(scope="module")
def batches():
    return load_batches()


def torch_run(seed, kind, hyper, batches, widths=SMALL, lrs=None, moms=None, activation="relu", nudge=0,
              dtype=torch.float32, losses=None):
    """torch.nn + torch.optim; ``nudge`` +-1 moves every initial weight one ulp up / down first; each step's
    training loss is appended to ``losses`` when given."""
    torch.manual_seed(seed)
    net = BT.torch_reference_model(widths, activation).to(dtype)
    if nudge:
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.nextafter(p, torch.full_like(p, math.inf * nudge)))
    opt = BT.torch_optimizer(kind, net.parameters(), **hyper)
    for t, (x, y) in enumerate(batches):
        if lrs is not None:
            opt.param_groups[0]["lr"] = float(lrs[t])
        if moms is not None:
            if kind in ("adam", "adamw"):
                opt.param_groups[0]["betas"] = (float(moms[t]), opt.param_groups[0]["betas"][1])
            else:
                opt.param_groups[0]["momentum"] = float(moms[t])
        opt.zero_grad()
        loss = F.cross_entropy(net(x.to(dtype)), y)
        loss.backward()
        opt.step()
        if losses is not None:
            losses.append(float(loss))
    return [p.detach() for p in net.parameters()]


def batched_run(seeds, kinds, hyper, batches, widths=SMALL, lrs=None, moms=None, active=None, activation="relu",
                dtype=torch.float32, impl="auto", losses=None):
    """The batched trainer; each step's (M,) losses are appended to ``losses`` when given."""
    model = BT.BatchedMLP(seeds, widths, activation, dtype=dtype)
    opt = BT.BatchedOptimizer(model.params, kinds, impl=impl, **hyper)
    for t, (x, y) in enumerate(batches):
        step_losses, _ = BT.train_step(model, opt, x.to(dtype), y, lr=None if lrs is None else lrs[:, t],
                                       momentum=None if moms is None else moms[:, t], active=active)
        if losses is not None:
            losses.append(step_losses.detach().clone())
    return model


def parity_run(seed, kind, hyper, batches, spread=None, **kw):
    """torch's parameters and, per element, how far torch moves from them under a one-ulp nudge or
    (``spread``, from :func:`family_spread`) under another kernel family: the envelope."""
    ref = torch_run(seed, kind, hyper, batches, **kw)
    up, down = (torch_run(seed, kind, hyper, batches, nudge=n, **kw) for n in (1, -1))
    env = [torch.maximum((u - r).abs(), (d - r).abs()) for r, u, d in zip(ref, up, down)]
    if spread is not None:
        env = [torch.maximum(e, f) for e, f in zip(env, spread)]
    return ref, env


def compare(model, m, ref, envelope=None):
    """(max abs diff, max rel diff) of model m's parameters against torch's, asserting the tolerance
    ATOL + RTOL |torch| + 2 * envelope (see the module docstring)."""
    worst_abs = worst_rel = 0.0
    for k, (stacked, r) in enumerate(zip(model.params, ref)):
        mine = stacked[m].detach()
        d = (mine - r).abs()
        worst_abs = max(worst_abs, float(d.max()))
        worst_rel = max(worst_rel, float((d / r.abs().clamp_min(1e-3)).max()))
        tol = ATOL + RTOL * r.abs() + (0 if envelope is None else 2 * envelope[k])
        bad = d > tol
        assert not bool(bad.any()), (f"parameter {k}: {int(bad.sum())} of {d.numel()} elements off; worst "
                                     f"{float((d - tol).max()):.2e} beyond tolerance (max diff {float(d.max()):.2e})")
    return worst_abs, worst_rel


CONFIGS = {
    "sgd": ("sgd", dict(lr=0.05)),
    "sgd_wd": ("sgd", dict(lr=0.05, weight_decay=1e-3, momentum=0.5, dampening=0.1)),
    "momentum": ("sgd", dict(lr=0.02, momentum=0.9)),
    "nesterov": ("sgd", dict(lr=0.02, momentum=0.9, nesterov=True)),
    "rmsprop": ("rmsprop", dict(lr=1e-3)),
    "rmsprop_centered_momentum": ("rmsprop", dict(lr=5e-4, centered=True, momentum=0.5)),
    "rmsprop_wd": ("rmsprop", dict(lr=5e-4, weight_decay=1e-4)),
    "adam": ("adam", dict(lr=1e-3)),
    "adam_wd": ("adam", dict(lr=1e-3, weight_decay=1e-3, beta2=0.99)),
    "adamw": ("adamw", dict(lr=1e-3)),
}


def test_initialisation_equals_nn_linear_under_manual_seed():
    model = BT.BatchedMLP([0, 7, 12345])
    for m, s in enumerate([0, 7, 12345]):
        torch.manual_seed(s)
        ref = list(BT.torch_reference_model().parameters())
        for stacked, r in zip(model.params, ref):
            mine = stacked[m].detach()
            assert torch.equal(mine, r.detach())
    assert [tuple(w.shape) for w in model.weights] == [(3, 256, 784), (3, 128, 256), (3, 10, 128)]
    assert [tuple(b.shape) for b in model.biases] == [(3, 256), (3, 128), (3, 10)]


@pytest.mark.float32_parity
@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_forward_and_loss_match_torch(activation, batches):
    x, y = batches[0]
    model = BT.BatchedMLP([3, 4], activation=activation)
    logits = model(x)
    for m in range(2):
        net = model.to_torch(m)
        torch.testing.assert_close(logits[m], net(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.losses(x, y)[m], F.cross_entropy(net(x), y), rtol=1e-5, atol=1e-6)
    per_model = torch.stack([x, batches[1][0]])
    torch.testing.assert_close(model(per_model)[1], model.to_torch(1)(batches[1][0]), rtol=1e-5, atol=1e-6)


#: The float32 runs of the frozen-model and default-width tests: (seed, kind, hyper, steps, widths).
FROZEN = {
    "sgd": dict(lr=[0.02, 0.5, 0.01], momentum=[0.9, 0.9, 0.8]),
    "rmsprop": dict(lr=[1e-3, 1.0, 5e-4], momentum=[0.0, 0.5, 0.5], centered=[False, True, True]),
    "adam": dict(lr=[1e-3, 1.0, 2e-3], weight_decay=[0.0, 0.1, 1e-3]),
    "adamw": dict(lr=[1e-3, 1.0, 2e-3]),
}
REFERENCE_RUNS = {
    **{name: (5, kind, hyper, STEPS, SMALL) for name, (kind, hyper) in CONFIGS.items()},
    **{f"frozen_{kind}_{m}": (seed, kind, {k: v[m] for k, v in hyper.items()}, 100, SMALL)
       for kind, hyper in FROZEN.items() for m, seed in ((0, 1), (2, 3))},
    "default_widths": (9, "adamw", dict(lr=1e-3), 50, (784, 256, 128, 10)),
}


def family_references() -> dict:
    """Per REFERENCE_RUNS entry, torch's float32 run: [its parameters after SHORT steps, [its training loss at
    every step]]."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batches = load_batches()
        out = {}
        for name, (seed, kind, hyper, steps, widths) in REFERENCE_RUNS.items():
            losses = []
            torch_run(seed, kind, hyper, batches[:steps], widths=widths, losses=losses)
            out[name] = [torch_run(seed, kind, hyper, batches[:SHORT], widths=widths),
                         [torch.tensor(losses, dtype=torch.float64)]]
        return out
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def references():
    """Per REFERENCE_RUNS entry: torch's run (family_references) and its spread over the other kernel families
    (of the parameters after SHORT steps, and of the window means of the losses)."""
    here = family_references()
    spread = family_spread("test_batched", here)
    # a window mean moves at most by the mean of the per-step moves
    return {name: dict(short=params, short_spread=spread[name][0], losses=losses,
                       loss_spread=window_means(spread[name][1][0]))
            for name, (params, (losses,)) in here.items()}


@pytest.fixture(scope="module")
def envelopes(references):
    """Per REFERENCE_RUNS entry: torch's parameters after SHORT steps and their envelope (nudges, families)."""
    out = {}
    for name, (seed, kind, hyper, steps, widths) in REFERENCE_RUNS.items():
        out[name] = parity_run(seed, kind, hyper, load_batches()[:SHORT], widths=widths,
                               spread=references[name]["short_spread"])
    return out


def check_parity(name, impl, batches, references, envelopes, model_seeds=None, hyper=None, active=None, m=0):
    """(a) and (b) of the module docstring for REFERENCE_RUNS[name], as model ``m`` of a stack."""
    seed, kind, own, steps, widths = REFERENCE_RUNS[name]
    seeds, hyper = model_seeds or [seed], hyper or own
    ref, env = envelopes[name]
    short = batched_run(seeds, kind, hyper, batches[:SHORT], widths=widths, active=active, impl=impl)
    worst_abs, worst_rel = compare(short, m, ref, env)
    losses = []
    model = batched_run(seeds, kind, hyper, batches[:steps], widths=widths, active=active, impl=impl, losses=losses)
    r = references[name]
    loss_rel = compare_losses([float(v[m]) for v in losses], r["losses"], r["loss_spread"])
    print(f"{name} [{impl}]: after {SHORT} steps max abs {worst_abs:.2e}, max rel {worst_rel:.2e}; "
          f"{steps}-step loss windows within {loss_rel:.2%}")
    return model


@pytest.mark.float32_parity
@pytest.mark.parametrize("impl", ["numba", "torch"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_parity_constant_hyperparameters(name, impl, batches, references, envelopes):
    check_parity(name, impl, batches, references, envelopes)


ONECYCLE = ["sgd", "nesterov", "rmsprop", "adam", "adamw"]


def onecycle_setup(kind):
    """lr and momentum (beta1 for Adam) tables from lrcore's OneCycle, and the optimizer's settings."""
    s = lrcore.OneCycle(max_lr={"sgd": 0.05, "nesterov": 0.05, "rmsprop": 5e-4}.get(kind, 3e-3), total_steps=STEPS)
    lrs, moms = lrcore.evaluate_many([s], STEPS), lrcore.evaluate_many([s.momentum], STEPS)
    tkind = "sgd" if kind == "nesterov" else kind
    hyper = dict(momentum=0.9, nesterov=True) if kind == "nesterov" else \
        (dict(momentum=0.9) if kind in ("sgd", "rmsprop") else {})
    return tkind, hyper, lrs, moms


# The whole trainer in float64 against torch in float64: rounding differences are 1e-16, so the chaos
# that float32 training shows (a ReLU unit on 0 flipping with a 1e-8 change: momentum-Nesterov with the
# OneCycle schedule does so at step ~70 in float32 and ends 5e-2 away, while torch nudged by one ulp
# stays 3e-7 away) cannot hide a real difference: measured differences are 1e-16 to 3e-14.
F64_RTOL, F64_ATOL = 1e-10, 1e-12


@pytest.mark.parametrize("impl", ["numba", "torch"])
@pytest.mark.parametrize("name", list(CONFIGS) + [f"onecycle_{k}" for k in ONECYCLE])
def test_parity_float64(name, impl, batches):
    if name.startswith("onecycle_"):
        kind, hyper, lrs, moms = onecycle_setup(name[len("onecycle_"):])
    else:
        (kind, hyper), lrs, moms = CONFIGS[name], None, None
    ref = torch_run(7, kind, hyper, batches, lrs=None if lrs is None else lrs[0],
                    moms=None if moms is None else moms[0], dtype=torch.float64)
    model = batched_run([7], kind, hyper, batches, lrs=lrs, moms=moms, dtype=torch.float64, impl=impl)
    worst = 0.0
    for k, (p, r) in enumerate(zip(model.params, ref)):
        assert p.dtype == torch.float64
        d = (p[0].detach() - r).abs()
        worst = max(worst, float(d.max()))
        assert bool((d <= F64_ATOL + F64_RTOL * r.abs()).all()), (name, impl, k, float(d.max()))
    print(f"float64 {name} [{impl}]: max abs diff {worst:.1e}")


@pytest.mark.float32_parity
@pytest.mark.parametrize("kind,hyper", list(FROZEN.items()))
@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_three_models_one_frozen(kind, hyper, impl, batches, references, envelopes):
    """Three models with their own hyper-parameters in one stack, the middle one frozen: it keeps its initial
    parameters exactly, and each of the others trains as torch does with its own (parity (a) and (b))."""
    active = torch.tensor([True, False, True])
    fresh = BT.BatchedMLP([1, 2, 3], SMALL)
    for m in (0, 2):
        model = check_parity(f"frozen_{kind}_{m}", impl, batches, references, envelopes, model_seeds=[1, 2, 3],
                             hyper=hyper, active=active, m=m)
        for p, q in zip(model.params, fresh.params):
            assert torch.equal(p[1], q[1])  # frozen: exactly the initial parameters


@pytest.mark.float32_parity
@pytest.mark.parametrize("activation,dropout,shared", [("relu", 0.0, True), ("relu", 0.0, False),
                                                         ("gelu", 0.0, True), ("tanh", 0.3, False),
                                                         ("relu", 0.5, True)])
def test_loss_and_grad_equals_autograd(activation, dropout, shared, batches):
    """The written-out backward pass against autograd on the same forward (same dropout masks)."""
    model = BT.BatchedMLP([0, 1, 2], SMALL, activation, dropout)
    x, y = batches[0]
    if not shared:
        x = torch.stack([batches[k][0] for k in range(3)])
        y = torch.stack([batches[k][1] for k in range(3)])
    state = model._drop_gen.get_state()
    model.losses(x, y).sum().backward()
    auto = [p.grad.clone() for p in model.params]
    auto_losses = model.losses(x, y, training=False) if dropout == 0 else None
    model._drop_gen.set_state(state)
    for p in model.params:
        p.grad = None
    losses = model.loss_and_grad(x, y)
    assert losses.shape == (3,) and not losses.requires_grad
    if auto_losses is not None:
        torch.testing.assert_close(losses, auto_losses.detach(), rtol=1e-6, atol=1e-7)
    for p, g in zip(model.params, auto):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
    grads = [p.grad for p in model.params]
    model.loss_and_grad(x, y)
    assert all(p.grad is g for p, g in zip(model.params, grads))  # buffers reused, no new tensors
    with pytest.raises(ValueError, match="loss_and_grad"):
        model.loss_and_grad(torch.zeros(4, 5), y)


def _fixed_gradients(n_steps, shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=g) * 0.1 for s in shapes]
    return init, [[torch.randn(s, generator=g) * 0.01 for s in shapes] for _ in range(n_steps)]


@pytest.mark.float32_parity
@pytest.mark.parametrize("impl", ["numba", "torch"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_optimizer_alone_matches_torch_optim(name, impl):
    """The optimizer without a model: the same gradient sequence (no feedback from the parameters, so
    no chaos) into torch.optim and into a stack of 3 models with their own lr, changed every step, one of
    them frozen for a while. SGD is reproduced bit for bit where torch's float32 kernels fuse multiply-adds
    as the numba kernel does (the AVX2 and AVX-512 families; the default family rounds the product first),
    to float32 rounding otherwise; RMSprop / Adam to float32 rounding (torch's float32 sqrt is not correctly
    rounded on every CPU: 1 ulp off in 17% of values here)."""
    kind, hyper = CONFIGS[name]
    shapes = [(50, 20), (20,), (20, 3)]
    init, grads = _fixed_gradients(120, shapes)
    scale = np.array([1.0, 0.5, 2.0])
    lrs = hyper["lr"] * scale[:, None] * (1 + 0.5 * np.sin(np.arange(len(grads)) / 7.0))[None, :]
    frozen = range(30, 50)  # model 1 frozen for these steps
    stack = [torch.stack([t.clone()] * 3).requires_grad_() for t in init]
    opt = BT.BatchedOptimizer(stack, kind, impl=impl, **{k: v for k, v in hyper.items() if k != "lr"})
    assert opt.impl == impl
    for t, gs in enumerate(grads):
        for p, g in zip(stack, gs):
            p.grad = torch.stack([g * (1 + m) for m in range(3)])
        opt.step(lr=lrs[:, t], active=torch.tensor([True, t not in frozen, True]))
    for m in range(3):
        ref = [torch.nn.Parameter(t.clone()) for t in init]
        topt = BT.torch_optimizer(kind, ref, **hyper)
        for t, gs in enumerate(grads):
            if m == 1 and t in frozen:
                continue
            topt.param_groups[0]["lr"] = float(lrs[m, t])
            for p, g in zip(ref, gs):
                p.grad = g * (1 + m)
            topt.step()
        for p, r in zip(stack, ref):
            if kind == "sgd" and current_family() in ("avx2", "avx512"):
                assert torch.equal(p[m].detach(), r.detach()), (name, impl, m)
            else:
                torch.testing.assert_close(p[m].detach(), r.detach(), rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_freezing_midway_keeps_parameters_and_state(impl, batches):
    model = BT.BatchedMLP([1, 2], SMALL)
    opt = BT.BatchedOptimizer(model.params, "adam", impl=impl, lr=1e-3)
    for x, y in batches[:10]:
        BT.train_step(model, opt, x, y)
    params = [p.detach().clone() for p in model.params]
    state = {k: {n: t.clone() for n, t in st.items() if not n.startswith("_")} for k, st in opt.state.items()}
    for x, y in batches[10:20]:
        BT.train_step(model, opt, x, y, active=torch.tensor([False, True]))
    assert opt.steps.tolist() == [10.0, 20.0]
    for p, q in zip(model.params, params):
        assert torch.equal(p[0], q[0]) and not torch.equal(p[1], q[1])
    for k, st in state.items():
        for n, t in st.items():
            assert torch.equal(opt.state[k][n][0], t[0])


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_models_in_a_stack_do_not_influence_each_other(impl, batches):
    kinds = ["adam", "adam", "rmsprop", "sgd", "sgd"]
    hyper = dict(lr=[1e-3, 3e-3, 1e-3, 0.05, 0.02], momentum=[0.0, 0.0, 0.0, 0.9, 0.5],
                 weight_decay=[0, 1e-3, 0, 0, 1e-4], nesterov=[False, False, False, True, False])
    seeds = [0, 1, 2, 3, 4]
    together = batched_run(seeds, kinds, hyper, batches[:60], impl=impl)
    for m in range(5):
        own = {k: v[m] for k, v in hyper.items() if k in BT.OPTIMIZER_DEFAULTS[kinds[m]]}
        alone = batched_run([seeds[m]], kinds[m], own, batches[:60], impl=impl)
        for p, q in zip(together.params, alone.params):
            torch.testing.assert_close(p[m], q[0], rtol=1e-6, atol=1e-7)
        if kinds[m] == "sgd":  # and each equals torch
            compare(together, m, *parity_run(seeds[m], "sgd", own, batches[:60]))


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_diverging_model_is_frozen_and_others_continue(impl, batches):
    model = BT.BatchedMLP([0, 1], SMALL)
    opt = BT.BatchedOptimizer(model.params, "sgd", impl=impl, lr=[1e7, 0.05])
    active = torch.tensor([True, True])
    for x, y in batches[:30]:
        losses, active = BT.train_step(model, opt, x, y, active=active)
    assert active.tolist() == [False, True]
    frozen = [p[0].detach().clone() for p in model.params]
    assert int(opt.steps[0]) < 30 and int(opt.steps[1]) == 30
    for x, y in batches[30:35]:
        losses, active = BT.train_step(model, opt, x, y, active=active)
    assert all(torch.equal(p[0], f) for p, f in zip(model.params, frozen))
    assert all(bool(torch.isfinite(p[1]).all()) for p in model.params)


@pytest.mark.float32_parity
def test_default_widths_short_parity(batches, references, envelopes):
    check_parity("default_widths", "auto", batches, references, envelopes)


def test_dropout_masks_differ_per_model_and_eval_has_none(batches):
    x, _ = batches[0]
    model = BT.BatchedMLP([4, 4], SMALL, dropout=0.5)
    a = model(x, training=True)
    assert not torch.equal(a[0], a[1])  # same weights, different masks
    b = model(x, training=False)
    assert torch.equal(b[0], b[1])
    torch.testing.assert_close(b[0], model.to_torch(0).eval()(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dropout"):
        BT.BatchedMLP([1], dropout=1.0)


@pytest.mark.float32_parity
def test_evaluate_matches_torch(batches):
    x = torch.cat([b[0] for b in batches[:10]])
    y = torch.cat([b[1] for b in batches[:10]])
    model = BT.BatchedMLP([0, 1], SMALL)
    loss, acc = model.evaluate(x, y, batch_size=100)
    for m in range(2):
        out = model.to_torch(m)(x)
        assert abs(float(loss[m]) - float(F.cross_entropy(out, y).detach())) < 1e-5
        assert float(acc[m]) == float((out.detach().argmax(1) == y).double().mean())


def test_step_flops():
    w = (784, 256, 128, 10)
    per_layer = [784 * 256, 256 * 128, 128 * 10]
    assert BT.step_flops(w, 64) == sum(6 * 64 * n for n in per_layer)
    assert BT.step_flops(w, 64, 12) == 12 * BT.step_flops(w, 64)
    assert BT.step_flops(w, 64, input_grad=False) == BT.step_flops(w, 64) - 2 * 64 * 784 * 256
    assert BT.forward_flops(w, 1000, 3) == 3 * sum(2 * 1000 * n for n in per_layer)


def test_grouped_batches_equal_per_model_batches(batches):
    """x (S, B, in) with group sizes: each group of consecutive models shares its row (the trainer's
    paired design), exactly as if every model had been given its copy."""
    model = BT.BatchedMLP([0, 1, 2, 3, 4], SMALL)
    x = torch.stack([batches[0][0], batches[1][0]])
    y = torch.stack([batches[0][1], batches[1][1]])
    groups = [3, 2]
    per_model_x, per_model_y = x[[0, 0, 0, 1, 1]], y[[0, 0, 0, 1, 1]]
    want = model.loss_and_grad(per_model_x, per_model_y)
    want_grads = [p.grad.clone() for p in model.params]
    got = model.loss_and_grad(x, y, groups)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    for p, g in zip(model.params, want_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(model.losses(x, y, groups=groups), model.losses(per_model_x, per_model_y))
    with torch.no_grad():
        torch.testing.assert_close(model(x, groups=groups), model(per_model_x))
    for bad in ([3, 3], [5], [0, 5]):
        with pytest.raises(ValueError, match="groups"):
            model.loss_and_grad(x, y, bad)
    with pytest.raises(ValueError, match="groups="):
        model.loss_and_grad(x, y)


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        BT.BatchedMLP([0], activation="swish")
    model = BT.BatchedMLP([0, 1], SMALL)
    with pytest.raises(ValueError, match="kind"):
        BT.BatchedOptimizer(model.params, "lamb")
    with pytest.raises(ValueError, match="unknown hyper"):
        BT.BatchedOptimizer(model.params, "sgd", betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="2 values"):
        BT.BatchedOptimizer(model.params, "sgd", lr=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        BT.BatchedOptimizer(model.params, "sgd", lr=math.nan)
    opt = BT.BatchedOptimizer(model.params, ["adam", "sgd"])
    assert opt.groups == [("adam", 0, 1), ("sgd", 1, 2)]
    assert np.allclose(opt.hyper["lr"].numpy(), [1e-3, 1e-3])
    assert opt.hyper["weight_decay"].tolist() == [0.0, 0.0]
    assert BT.BatchedOptimizer(model.params, "adamw").hyper["weight_decay"].tolist() == [1e-2, 1e-2]
    assert BT.BatchedOptimizer(model.params, "rmsprop").hyper["alpha"].tolist() == [0.99, 0.99]
