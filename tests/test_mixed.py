"""bench.train.mixed: the bfloat16 step (precision="bf16") against its definition.

Reference: the float32 step computed from bfloat16-rounded operands -- here in float64, one model at a time,
every matmul operand rounded to bfloat16 and every product rounded once to bfloat16 where the trainer keeps
it (the rounding rules of bench.train.mixed's docstring). The trainer's products accumulate in float32 in
another order, so a product lying within ~1e-7 of a bfloat16 rounding boundary may round the other way: a
few elements in 1e4 differ by one bfloat16 ulp, and such a flip in an activation moves what depends on it
by about as much. On fresh random inputs and real Fashion-MNIST batches, shared by a group of models and
per model, with oneDNN's bfloat16 matmuls (AMX / AVX512-BF16 here) and without (torch's own kernels, what
a CPU without bfloat16 hardware computes). The optimizer is float32 throughout: fed the widened bfloat16
gradient it gives exactly the float32 update, and writes the parameters' bfloat16 copy as torch rounds.
No wall-clock assertion anywhere.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numba import njit

from bench.train import model as BT
from bench.train import optim_kernels as K

BF = torch.bfloat16
SMALL = (784, 64, 32, 10)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def real():
    """Real Fashion-MNIST images and labels (random ones where the data set is not installed)."""
    try:
        from bench.train.data import load_fashion_mnist
        d = load_fashion_mnist("cpu")
        return d.x_train[:4096], d.y_train[:4096]
    except (FileNotFoundError, ValueError):  # pragma: no cover - machines without the data set
        g = torch.Generator().manual_seed(0)
        return torch.randn(4096, 784, generator=g), torch.randint(0, 10, (4096,), generator=g)


def r(t):
    """Round to bfloat16, back to float64."""
    return t.to(BF).to(torch.float64)


def reference_grads(ws, bs, x, y):
    """(loss, [dW0, db0, dW1, ...]) of one relu model: float64 arithmetic on bfloat16-rounded operands, each
    product rounded to bfloat16 once (bench.train.mixed's recipe)."""
    h, hs, zs = r(x), [], []
    hs.append(h)
    for l, (w, b) in enumerate(zip(ws, bs)):
        z = r(h @ r(w).T + r(b))
        zs.append(z)
        if l < len(ws) - 1:
            h = torch.relu(z)
            hs.append(h)
    B = x.shape[0]
    logp = torch.log_softmax(z.float(), 1).double()
    loss = float(-logp.gather(1, y[:, None]).mean())
    d = logp.exp()
    d[torch.arange(B), y] -= 1
    d = r(d / B)
    grads = [None] * (2 * len(ws))
    for l in range(len(ws) - 1, -1, -1):
        grads[2 * l], grads[2 * l + 1] = r(d.T @ hs[l]), r(d.sum(0))
        if l:
            d = r(d @ r(ws[l])) * (zs[l - 1] > 0)
    return loss, grads


def check_against_reference(model, x, y, groups):
    """Every model's loss and gradients against :func:`reference_grads`: the loss to 1e-5 relative; every
    gradient element within one bfloat16 ulp at the tensor's scale (2**-7 of its largest value); and most
    models exact: in the median model at most 1 element in 1,000 differs at all (a model whose activation or
    logit rounded the other way differs in a few % of its elements, each by less than that ulp). Returns
    the share of differing elements per model."""
    losses = model.loss_and_grad(x, y, groups)
    assert all(g.dtype == BF for g in model.grads) and all(p.grad is None for p in model.params)
    rows = [s for s, n in enumerate(groups) for _ in range(n)] if groups else range(model.n_models)
    shares = []
    for m, s in enumerate(rows):
        ws = [w[m].detach().double() for w in model.weights]
        bs = [b[m].detach().double() for b in model.biases]
        loss, ref = reference_grads(ws, bs, x[s].double(), y[s])
        assert abs(float(losses[m]) - loss) <= 1e-5 * abs(loss)
        differ = total = 0
        for k, (mine, want) in enumerate(zip(model.grads, ref)):
            off = (mine[m].double() - want).abs()
            assert float(off.max()) <= 2 ** -7 * float(want.abs().max()) + 1e-30, (m, k, float(off.max()))
            differ, total = differ + int((off > 0).sum()), total + off.numel()
        shares.append(differ / total)
    assert float(np.median(shares)) <= 1e-3, shares
    return shares


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "torch-kernels"])
@pytest.mark.parametrize("source", ["random", "fashion-mnist"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-batch", "per-model-batch"])
def test_one_bf16_step_equals_the_float32_step_on_rounded_operands(onednn, source, shared, real):
    g = torch.Generator().manual_seed(1 if source == "random" else 2)
    if source == "random":
        X, Y = torch.randn(1024, 784, generator=g), torch.randint(0, 10, (1024,), generator=g)
    else:
        X, Y = real
    idx = torch.randint(0, len(X), (3, 128), generator=g)
    x, y = X[idx], Y[idx]                                  # (3, 128, 784): a batch per group or per model
    model = BT.BatchedMLP([0, 1, 2, 3] if shared else [0, 1, 2], SMALL, precision="bf16")
    groups = [2, 1, 1] if shared else None
    with torch.backends.mkldnn.flags(enabled=onednn):
        shares = check_against_reference(model, x, y, groups)
    print(f"{source} {'shared' if shared else 'per model'} onednn={onednn}: share of gradient elements that "
          f"differ from the reference, per model: {', '.join(f'{v:.0e}' for v in shares)}")


def test_default_widths_one_step_against_the_reference(real):
    X, Y = real
    x, y = X[:256].view(2, 128, 784), Y[:256].view(2, 128)
    check_against_reference(BT.BatchedMLP([5, 6, 7], precision="bf16"), x, y, [2, 1])


@njit
def _bits(x):
    out = np.empty(x.shape[0], np.uint16)
    for i in range(x.shape[0]):
        out[i] = K._bf16(x[i])
    return out


@njit
def _widened(b):
    out = np.empty(b.shape[0], np.float32)
    for i in range(b.shape[0]):
        out[i] = K._widen(b[i])
    return out


def test_kernel_rounding_is_torchs():
    """The kernels' float32 -> bfloat16 rounding equals torch's bit for bit (ties to even, NaN, inf,
    subnormals, overflow to inf), and widening is exact."""
    g = torch.Generator().manual_seed(0)
    special = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-40, -1e-40, 3.4e38, -3.4e38,
                            1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -8 + 2 ** -20, 65504.0])
    ties = (torch.arange(-300, 300, dtype=torch.int32) * 65536 + 32768).view(torch.float32)  # exact halfway cases
    x = torch.cat([special, ties, torch.randn(100_000, generator=g) * 10.0 ** torch.randint(-30, 30, (100_000,),
                                                                                          generator=g)]).float()
    want = x.to(BF).view(torch.int16).numpy().view(np.uint16)
    got = _bits(x.numpy())
    nan = np.isnan(x.numpy())
    assert np.array_equal(got[~nan], want[~nan]) and (got[nan] == 0x7FC0).all()
    assert np.array_equal(_widened(want), x.to(BF).float().numpy(), equal_nan=True)


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_optimizer_on_bf16_gradients_is_the_float32_update(impl):
    """Every kind: a step on bfloat16 gradients equals the step on the same gradients widened to float32, bit
    for bit, and leaves each parameter's bfloat16 copy equal to the parameter rounded."""
    kinds = ["sgd", "sgd", "rmsprop", "adam", "adamw", "sgd_schedulefree", "adamw_schedulefree"]
    hyper = dict(lr=[0.05, 0.02, 1e-3, 1e-3, 1e-3, 0.5, 2e-3], momentum=[0.0, 0.9, 0.0, 0.9, 0.9, 0.9, 0.9],
                 nesterov=[False, True, False, False, False, False, False],
                 weight_decay=[1e-4, 0.0, 1e-4, 1e-3, 1e-2, 1e-4, 0.0])
    g = torch.Generator().manual_seed(3)
    shapes = [(7, 20, 30), (7, 20)]
    init = [torch.randn(s, generator=g) * 0.1 for s in shapes]
    stacks = {}
    for how in ("bf16", "widened"):
        params = [t.clone().requires_grad_() for t in init]
        for p in params:  # a bfloat16 copy to keep, as BatchedMLP(precision="bf16") makes
            p._lrbench_low, p._lrbench_low_version = p.detach().to(BF), p._version
        stacks[how] = (params, BT.BatchedOptimizer(params, kinds, impl=impl, **hyper))
    for t in range(12):
        grads = [(torch.randn(s, generator=g) * 0.01).to(BF) for s in shapes]
        active = torch.tensor([True] * 7) if t % 4 else torch.tensor([True, False] * 3 + [True])
        for how, (params, opt) in stacks.items():
            opt.step(active=active, grads=grads if how == "bf16" else [gr.float() for gr in grads])
    for (p, q) in zip(stacks["bf16"][0], stacks["widened"][0]):
        assert torch.equal(p, q)
        assert torch.equal(p._lrbench_low, p.detach().to(BF)) and p._lrbench_low_version == p._version


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_bf16_step_matches_torch_autocast(activation, real):
    """The same model under torch.autocast(bfloat16) (torch.nn.Sequential, autograd): the losses equal, the
    gradients agree to bfloat16 rounding (autocast rounds the bias gradients the same way; its products
    accumulate in another order)."""
    X, Y = real
    x, y = X[:128], Y[:128]
    model = BT.BatchedMLP([4, 9], SMALL, activation, precision="bf16")
    losses = model.loss_and_grad(x, y)
    for m in range(2):
        net = model.to_torch(m)
        with torch.autocast("cpu", dtype=BF):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        assert abs(float(loss) - float(losses[m])) <= 1e-5 * float(loss)
        for mine, p in zip(model.grads, net.parameters()):
            want = p.grad.double()
            off = (mine[m].double() - want).abs()
            assert float(off.max()) <= 2 ** -6 * float(want.abs().max()), activation
            assert float((off > 0).double().mean()) <= 2e-2


def test_bf16_copy_is_cast_again_after_other_writes(real):
    """A parameter written by torch (a restore, a schedule-free swap) gets a fresh bfloat16 copy before the next
    forward; the optimizer's own writes keep it valid without a cast."""
    X, Y = real
    x, y = X[:128], Y[:128]
    a = BT.BatchedMLP([0, 1], SMALL, precision="bf16")
    b = BT.BatchedMLP([2, 3], SMALL, precision="bf16")
    a.forward(x)  # copies made
    with torch.no_grad():
        for p, q in zip(a.params, b.params):
            p[1] = q[1]  # model 1 of a becomes model 1 of b
    torch.testing.assert_close(a.forward(x)[1], b.forward(x)[1], rtol=0, atol=0)
    opt = BT.BatchedOptimizer(a.params, "adam", lr=1e-3)
    for _ in range(3):
        BT.train_step(a, opt, x, y)
        assert all(torch.equal(p._lrbench_low, p.detach().to(BF)) for p in a.params)


def test_bf16_training_learns_like_fp32(real):
    """Three epochs of a small stack on 4096 real images: bfloat16 ends within a few points of float32."""
    X, Y = real
    acc = {}
    for precision in ("fp32", "bf16"):
        model = BT.BatchedMLP([0, 1], SMALL, precision=precision)
        opt = BT.BatchedOptimizer(model.params, ["adam", "sgd"], lr=[1e-3, 0.1], momentum=[0.9, 0.9])
        for epoch in range(3):
            perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(epoch))
            for k in range(0, len(X), 128):
                BT.train_step(model, opt, X[perm[k:k + 128]], Y[perm[k:k + 128]])
        acc[precision] = model.evaluate(X[:2048], Y[:2048])[1]
    assert (acc["bf16"] - acc["fp32"]).abs().max() < 0.03, acc
    assert (acc["bf16"] > 0.75).all(), acc


def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision"):
        BT.BatchedMLP([0], precision="fp16")
    with pytest.raises(ValueError, match="master weights"):
        BT.BatchedMLP([0], precision="bf16", dtype=torch.float64)


def test_bf16_device_path_makes_no_host_sync_per_step():
    """The torch optimizer path (what CUDA runs) in bf16: still no host sync per step, and the casts add only
    a few aten ops (the gradients widened into the flat buffer, the bfloat16 copies written after the update).
    Marginal cost of a step: the difference of a 20- and a 40-step run (bench.speed.count_ops)."""
    from bench.speed import count_ops
    from bench.train.data import load_fashion_mnist
    try:
        data = load_fashion_mnist("cpu")
    except (FileNotFoundError, ValueError) as e:  # pragma: no cover - machines without the data set
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    # the quick matrix's layer count at narrow widths: the ops and syncs of a step do not depend on the widths,
    # and emulated bf16 (CPUs without bf16 hardware) makes the real sizes take minutes
    short, long = (count_ops.count_chunk("quick", steps=n, data=data, precision="bf16", widths=(784, 32, 16, 10))
                   for n in (20, 40))
    syncs = (long["syncs"] - short["syncs"]) / 20
    ops = (long["ops"] - short["ops"]) / 20
    print(f"bf16, per training step, 72 models: {syncs:.2f} host syncs, {ops:.1f} kernel-launching aten ops")
    assert syncs == 0 and ops <= 140


def test_parity_on_a_cpu_without_bfloat16_hardware():
    """A CPU without AVX512-BF16 / AMX (the AMD EPYC machines): oneDNN limited to AVX2 and ATen's AVX2 kernels, in
    a subprocess (the limits are read at start-up); the step still meets its definition."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    here = Path(__file__).resolve().parent
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]); import test_mixed as T; "
            "from bench.train import model as BT; "
            "torch.set_num_threads(1); g = torch.Generator().manual_seed(4); "
            "x, y = torch.randn(2, 128, 784, generator=g), torch.randint(0, 10, (2, 128), generator=g); "
            "T.check_against_reference(BT.BatchedMLP([0, 1, 2], T.SMALL, precision='bf16'), x, y, [2, 1]); "
            "print(torch.backends.cpu.get_cpu_capability())")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
           "PYTHONPATH": os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code, str(here)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "AVX2"


def test_bf16_trainer_torch_path_equals_numba_path():
    """A bf16 chunk (every optimizer, a plateau schedule, early stopping, a diverging model) trained with both
    optimizer implementations on real data: the same history to float32 rounding, as in fp32
    (tests/test_device_path.py); the bfloat16 copies are written by the kernels on one path, cast on the other."""
    from bench.train.batched import TrainConfig, train_chunk
    from bench.train.data import load_fashion_mnist
    try:
        small = load_fashion_mnist("cpu").head(20 * 128, 1000, 1000)
    except (FileNotFoundError, ValueError) as e:  # pragma: no cover - machines without the data set
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    configs = [TrainConfig(f"{opt}-{seed}", opt, lr, "Cosine(lr=peak, decay_steps=total)", seed)
               for seed in (0, 1) for opt, lr in (("sgd", 0.1), ("nesterov", 0.01), ("rmsprop", 5e-4),
                                                  ("adamw", 1e-3), ("adamw_schedulefree", 2.5e-3))]
    configs += [TrainConfig("plateau", "adam", 1e-3, "plateau", 0), TrainConfig("diverges", "sgd", 1e6, seed=0)]
    from bench.train.config import TrainSpec
    spec = TrainSpec(epochs=2, widths=SMALL, plateau=dict(factor=0.1, patience=0), early_stopping=1, precision="bf16")
    a = train_chunk(configs, small, spec.replace(optim_impl="numba"))
    b = train_chunk(configs, small, spec.replace(optim_impl="torch"))
    assert a.throughput["precision"] == b.throughput["precision"] == "bf16"
    for col in ("trained", "diverged", "stopped", "epoch", "model"):
        assert a.history[col].tolist() == b.history[col].tolist(), col
    assert bool(a.summary.loc[a.summary.name == "diverges", "diverged"].iloc[0])
    ok = ~a.history.diverged
    for col in ("lr", "train_loss", "val_loss", "val_acc"):
        np.testing.assert_allclose(b.history.loc[ok, col], a.history.loc[ok, col], rtol=5e-3, atol=5e-3, err_msg=col)
    np.testing.assert_allclose(b.summary.test_acc, a.summary.test_acc, atol=1e-2)
