"""lrcore.integrations.torch.LrcoreScheduler against lrcore.evaluate and against PyTorch's own schedulers."""
import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as L  # noqa: E402

import lrcore  # noqa: E402
from lrcore.compat import torch as T  # noqa: E402
from lrcore.integrations.torch import LrcoreScheduler  # noqa: E402

N = 200
SCHEDULES = [
    lrcore.Warmup(lrcore.Cosine(lr=0.1, decay_steps=150), steps=50),
    T.OneCycleLR(max_lr=0.1, total_steps=N),
    T.CyclicLR(lr=0.1, base_lr=0.01, max_lr=0.1, step_size_up=30),
    lrcore.WSD(lr=0.1, warmup_steps=10, decay_steps=40, total_steps=N),
    T.LinearLR(lr=0.1, start_factor=0.1, total_iters=150),
]


def sgd(lr=0.1, groups=1, momentum=0.9):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr * 10.0 ** -i} for i, p in enumerate(params)],
                           lr=lr, momentum=momentum)


def adam(lr=0.1):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def train(opt, sched, n, record):
    for _ in range(n):
        record.append([(g["lr"], g["momentum"] if "momentum" in g else g["betas"][0]) for g in opt.param_groups])
        loss = sum((p ** 2).sum() for g in opt.param_groups for p in g["params"]) + 1.0
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def resume(make_opt, make_sched, n, k, order):
    """lr/momentum per step of a run interrupted after k steps and resumed through torch.save/torch.load
    (weights_only default) of both state dicts; ``order``: build the scheduler before or after
    loading the optimizer's state."""
    opt = make_opt()
    sched = make_sched(opt)
    rec = []
    train(opt, sched, k, rec)
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    opt = make_opt()
    if order == "sched_first":
        sched = make_sched(opt)
        opt.load_state_dict(saved["opt"])
    else:
        opt.load_state_dict(saved["opt"])
        sched = make_sched(opt)
    sched.load_state_dict(saved["sched"])
    train(opt, sched, n - k, rec)
    return rec


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: type(s).__name__)
def test_follows_schedule_and_momentum(s):
    opt = sgd(groups=2)
    rec = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no step-order (or any other) warning in normal use
        sched = LrcoreScheduler(opt, s)
        train(opt, sched, N, rec)
    lr = np.array([[g[0] for g in r] for r in rec])
    want = lrcore.evaluate(s, N)
    assert np.array_equal(lr[:, 0], want)  # group 0 follows the schedule exactly
    ratio = opt.param_groups[1]["initial_lr"] / opt.param_groups[0]["initial_lr"]
    assert np.array_equal(lr[:, 1], want * ratio)  # group 1 keeps its ratio to group 0
    mom = np.array([r[0][1] for r in rec])
    if s.momentum is not None:
        assert np.array_equal(mom, lrcore.evaluate(s.momentum, N))
    else:
        assert np.all(mom == 0.9)


def test_matches_pytorch_onecycle_with_adam_betas():
    s = T.OneCycleLR(max_lr=0.1, total_steps=N)
    opt = adam()
    rec = []
    train(opt, LrcoreScheduler(opt, s), N, rec)
    opt2 = adam()
    ref = []
    train(opt2, L.OneCycleLR(opt2, max_lr=0.1, total_steps=N), N, ref)
    got, want = np.array(rec)[:, 0, :], np.array(ref)[:, 0, :]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    assert all(g["betas"][1] == 0.999 for g in opt.param_groups)


def test_reference_lr_and_chunk_boundaries():
    s = lrcore.Cosine(lr=1.0, decay_steps=100)
    opt = sgd(lr=0.5, groups=2)
    rec = []
    train(opt, LrcoreScheduler(opt, s, reference_lr=1.0, chunk=7), 120, rec)
    lr = np.array([[g[0] for g in r] for r in rec])
    want = lrcore.evaluate(s, 120)
    np.testing.assert_allclose(lr[:, 0], 0.5 * want, rtol=1e-15)
    np.testing.assert_allclose(lr[:, 1], 0.05 * want, rtol=1e-15)


def test_text_form_schedule_and_last_lr():
    opt = sgd()
    sched = LrcoreScheduler(opt, "Cosine(lr=0.1, decay_steps=10)")
    for _ in range(3):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [lrcore.evaluate(lrcore.Cosine(lr=0.1, decay_steps=10), 4)[3]]


@pytest.mark.parametrize("s", SCHEDULES[:3], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("order", ["sched_first", "opt_first"])
def test_resume_is_exact(s, order):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = resume(lambda: sgd(groups=2), lambda o: LrcoreScheduler(o, s), N, N, order)
        again = resume(lambda: sgd(groups=2), lambda o: LrcoreScheduler(o, s), N, 100, order)
    assert again == whole  # bit for bit, lr and momentum of every group at every step


@pytest.mark.parametrize("name,make", [
    ("LinearLR", lambda o: L.LinearLR(o, start_factor=0.1, total_iters=150)),
    ("OneCycleLR", lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=N)),
    ("SequentialLR", lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, 1.0, 120), L.ExponentialLR(o, 0.98)], [120])),
])
def test_pytorch_resume_depends_on_order(name, make):
    """PyTorch's schedulers resume exactly only when built before ``optimizer.load_state_dict``: built
    after it, their construction step runs again on the loaded lr (LinearLR and SequentialLR multiply
    it by start_factor until the next milestone; OneCycleLR resets lr and momentum to step 0's values
    for one step). LrcoreScheduler is exact in both orders (test_resume_is_exact)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = resume(sgd, make, N, N, "sched_first")
        assert resume(sgd, make, N, 100, "sched_first") == whole
        wrong = resume(sgd, make, N, 100, "opt_first")
    assert wrong[:100] == whole[:100]
    assert wrong[100] != whole[100]


def test_state_dict_checks():
    s = lrcore.Cosine(lr=0.1, decay_steps=10)
    sched = LrcoreScheduler(sgd(), s)
    state = sched.state_dict()
    other = LrcoreScheduler(sgd(), lrcore.Cosine(lr=0.1, decay_steps=20))
    with pytest.raises(ValueError, match="saved for schedule Cosine"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="base_lrs"):
        LrcoreScheduler(sgd(groups=2), s).load_state_dict(state)
    with pytest.raises(ValueError, match="lacks"):
        sched.load_state_dict({"last_epoch": 3})
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        sched.load_state_dict([1])


def test_bad_input():
    s = lrcore.Cosine(lr=0.1, decay_steps=10)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        LrcoreScheduler(torch.nn.Linear(2, 2), s)
    with pytest.raises(TypeError, match="schedule must be an lrcore schedule"):
        LrcoreScheduler(sgd(), 0.1)
    with pytest.raises(ValueError, match="last_epoch must be an integer >= -1"):
        LrcoreScheduler(sgd(), s, last_epoch=-2)
    with pytest.raises(ValueError, match="param_groups\\[0\\] has no 'initial_lr'"):
        LrcoreScheduler(sgd(), s, last_epoch=5)
    with pytest.raises(ValueError, match="reference_lr must be a finite number > 0"):
        LrcoreScheduler(sgd(), s, reference_lr=0.0)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        LrcoreScheduler(sgd(), s, chunk=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        LrcoreScheduler(sgd(), s, backend="gpu")
    with pytest.raises(ValueError, match="pass reference_lr"):
        LrcoreScheduler(sgd(lr=0.0), s)
    # momentum-cycling schedule on an optimizer without momentum or betas: say what to do
    p = [torch.nn.Parameter(torch.zeros(1))]
    for opt in (torch.optim.Adagrad(p, lr=0.1), torch.optim.Adadelta(p, lr=0.1)):
        with pytest.raises(ValueError, match="cycles momentum.*cycle_momentum=False"):
            LrcoreScheduler(opt, T.OneCycleLR(max_lr=0.1, total_steps=10))
        LrcoreScheduler(opt, T.OneCycleLR(max_lr=0.1, total_steps=10, cycle_momentum=False))
    with pytest.raises(ValueError):  # PyTorch's own message for comparison
        L.OneCycleLR(torch.optim.Adagrad(p, lr=0.1), max_lr=0.1, total_steps=10)


def test_step_with_epoch_and_last_epoch_resume():
    s = lrcore.Cosine(lr=0.1, decay_steps=100)
    opt = sgd()
    sched = LrcoreScheduler(opt, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch deprecates step(epoch)
        opt.step()
        sched.step(40)
    assert opt.param_groups[0]["lr"] == lrcore.evaluate(s, 41)[40]
    opt2 = sgd()
    opt2.load_state_dict(opt.state_dict())
    LrcoreScheduler(opt2, s, last_epoch=40)  # PyTorch's convention: one step on construction
    assert opt2.param_groups[0]["lr"] == lrcore.evaluate(s, 42)[41]


def test_import_lrcore_imports_no_framework():
    code = "import sys, lrcore, lrcore.compat.torch, lrcore.reactive; print('torch' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
