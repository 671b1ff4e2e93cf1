"""lrcore.compat.torch against the real torch.optim.lr_scheduler, a few configurations each.

(The exhaustive, hypothesis-driven conformance suite lives with the reference oracles.)
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as L  # noqa: E402

import lrcore  # noqa: E402
from lrcore.compat import torch as T  # noqa: E402
from reference.torch_oracle import torch_lrs  # noqa: E402

LR = 0.1
CASES = [
    ("StepLR", lambda o: L.StepLR(o, step_size=7, gamma=0.5), T.StepLR(lr=LR, step_size=7, gamma=0.5)),
    ("MultiStepLR", lambda o: L.MultiStepLR(o, milestones=[30, 10, 10]), T.MultiStepLR(lr=LR, milestones=[30, 10, 10])),
    ("ConstantLR", lambda o: L.ConstantLR(o, factor=0.25, total_iters=9), T.ConstantLR(lr=LR, factor=0.25, total_iters=9)),
    ("LinearLR", lambda o: L.LinearLR(o, start_factor=0.01, total_iters=40), T.LinearLR(lr=LR, start_factor=0.01, total_iters=40)),
    ("ExponentialLR", lambda o: L.ExponentialLR(o, gamma=0.97), T.ExponentialLR(lr=LR, gamma=0.97)),
    ("PolynomialLR", lambda o: L.PolynomialLR(o, total_iters=50, power=2.0), T.PolynomialLR(lr=LR, total_iters=50, power=2.0)),
    ("CosineAnnealingLR", lambda o: L.CosineAnnealingLR(o, T_max=40, eta_min=0.001),
     T.CosineAnnealingLR(lr=LR, T_max=40, eta_min=0.001)),
    ("CosineAnnealingWarmRestarts", lambda o: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01),
     T.CosineAnnealingWarmRestarts(lr=LR, T_0=5, T_mult=2, eta_min=0.01)),
    ("CyclicLR", lambda o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=7, step_size_down=5, mode="triangular2"),
     T.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=7, step_size_down=5, mode="triangular2")),
    ("CyclicLR-exp", lambda o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=6, mode="exp_range", gamma=0.99),
     T.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=6, mode="exp_range", gamma=0.99)),
    ("OneCycleLR", lambda o: L.OneCycleLR(o, max_lr=0.3, total_steps=150), T.OneCycleLR(max_lr=0.3, total_steps=150)),
    ("OneCycleLR-3", lambda o: L.OneCycleLR(o, max_lr=0.3, total_steps=101, pct_start=0.27, three_phase=True,
                                            anneal_strategy="linear"),
     T.OneCycleLR(max_lr=0.3, total_steps=101, pct_start=0.27, three_phase=True, anneal_strategy="linear")),
    ("SequentialLR", lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1, total_iters=10),
                                                  L.CosineAnnealingLR(o, T_max=90)], milestones=[10]),
     T.SequentialLR([T.LinearLR(lr=LR, start_factor=0.1, total_iters=10), T.CosineAnnealingLR(lr=LR, T_max=90)],
                    milestones=[10])),
    ("ChainedScheduler", lambda o: L.ChainedScheduler([L.ConstantLR(o, factor=0.5, total_iters=4),
                                                       L.ExponentialLR(o, gamma=0.9)]),
     T.ChainedScheduler([T.ConstantLR(lr=LR, factor=0.5, total_iters=4), T.ExponentialLR(lr=LR, gamma=0.9)], lr=LR)),
    ("LambdaLR", lambda o: L.LambdaLR(o, lambda t: 0.95 ** t), T.LambdaLR(lr=LR, lr_lambda=lambda t: 0.95 ** t)),
    ("LambdaLR-str", lambda o: L.LambdaLR(o, lambda t: 1 / (1 + t)), T.LambdaLR(lr=LR, lr_lambda="1 / (1 + t)")),
    ("MultiplicativeLR", lambda o: L.MultiplicativeLR(o, lambda t: 0.97), T.MultiplicativeLR(lr=LR, lr_lambda="0.97")),
]


@pytest.mark.parametrize("name,make,schedule", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_matches_pytorch(name, make, schedule, backend):
    n = 150 if name.startswith("OneCycle") and "3" not in name else 100
    want = torch_lrs(make, n, lr=LR)
    got = lrcore.evaluate(schedule, n, backend=backend)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", ["CyclicLR", "OneCycleLR"])
def test_momentum_matches_pytorch(name):
    make, schedule = {c[0]: (c[1], c[2]) for c in CASES}[name]
    want = torch_lrs(make, 100, lr=LR, momentum=True)
    np.testing.assert_allclose(lrcore.evaluate(schedule.momentum, 100), want, rtol=1e-10, atol=0)


def test_onecycle_matches_to_the_end_then_holds_the_final_value():
    """PyTorch's value at step total_steps (one step past the schedule) extrapolates the last phase
    (negative for a linear anneal); lrcore holds the final value from total_steps on."""
    for anneal in ("cos", "linear"):
        s = T.OneCycleLR(max_lr=0.3, total_steps=20, anneal_strategy=anneal)
        want = torch_lrs(lambda o: L.OneCycleLR(o, max_lr=0.3, total_steps=20, anneal_strategy=anneal), 21)
        got = lrcore.evaluate(s, 21)
        np.testing.assert_allclose(got[:20], want[:20], rtol=1e-10)
        final = 0.3 / 25 / 1e4
        assert lrcore.evaluate(s, np.array([20, 21, 10 ** 9])).tolist() == [final] * 3
        assert (want[20] < 0) == (anneal == "linear")


# Configurations PyTorch runs (its validation checks none of these) that lrcore used to refuse.
WIDE = [
    ("Chained-cyclic-first", lambda o: L.ChainedScheduler([
        L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3), L.ExponentialLR(o, gamma=0.9),
        L.CosineAnnealingLR(o, T_max=7, eta_min=0.001)]),
     T.ChainedScheduler([T.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=3), T.ExponentialLR(lr=LR, gamma=0.9),
                         T.CosineAnnealingLR(lr=LR, T_max=7, eta_min=0.001)], lr=LR), 60),
    ("Chained-onecycle", lambda o: L.ChainedScheduler([
        L.StepLR(o, step_size=5, gamma=0.5), L.OneCycleLR(o, max_lr=0.5, total_steps=40),
        L.LambdaLR(o, lambda t: 0.95 ** t)]),
     T.ChainedScheduler([T.StepLR(lr=LR, step_size=5, gamma=0.5), T.OneCycleLR(max_lr=0.5, total_steps=40),
                         T.LambdaLR(lr=LR, lr_lambda="0.95 ** t")], lr=LR), 40),
    ("Chained-two-cyclers", lambda o: L.ChainedScheduler([
        L.OneCycleLR(o, max_lr=0.5, total_steps=40, three_phase=True),
        L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, base_momentum=0.5, max_momentum=0.6)]),
     T.ChainedScheduler([T.OneCycleLR(max_lr=0.5, total_steps=40, three_phase=True),
                         T.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=3, base_momentum=0.5, max_momentum=0.6)],
                        lr=LR), 40),
    ("Chained-sequential", lambda o: L.ChainedScheduler([
        L.ExponentialLR(o, gamma=0.95),
        L.SequentialLR(o, [L.LinearLR(o, start_factor=0.2, total_iters=5), L.CosineAnnealingLR(o, T_max=10)],
                       milestones=[5])]),
     T.ChainedScheduler([T.ExponentialLR(lr=LR, gamma=0.95),
                         T.SequentialLR([T.LinearLR(lr=LR, start_factor=0.2, total_iters=5),
                                         T.CosineAnnealingLR(lr=LR, T_max=10)], milestones=[5])], lr=LR), 40),
    ("Sequential-onecycle", lambda o: L.SequentialLR(o, [L.OneCycleLR(o, max_lr=0.5, total_steps=20),
                                                         L.CosineAnnealingLR(o, T_max=10)], milestones=[6]),
     T.SequentialLR([T.OneCycleLR(max_lr=0.5, total_steps=20), T.CosineAnnealingLR(lr=LR, T_max=10)],
                    milestones=[6], lr=LR), 30),
    ("Sequential-cyclic", lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.5, total_iters=6),
                                                       L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3)],
                                                   milestones=[6]),
     T.SequentialLR([T.LinearLR(lr=LR, start_factor=0.5, total_iters=6),
                     T.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=3)], milestones=[6], lr=LR), 30),
    ("CyclicLR-exp-growing", lambda o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range",
                                                  gamma=1.01),
     T.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=1.01), 800),
    ("CyclicLR-max-below-base", lambda o: L.CyclicLR(o, base_lr=0.1, max_lr=0.01, step_size_up=2.5),
     T.CyclicLR(base_lr=0.1, max_lr=0.01, step_size_up=2.5), 30),
    ("CyclicLR-scale_fn", lambda o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range",
                                               scale_fn=lambda x: 0.9 ** x, scale_mode="iterations"),
     T.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", scale_fn="0.9 ** t",
                scale_mode="iterations"), 40),
    ("CyclicLR-scale_fn-callable", lambda o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3,
                                                        scale_fn=lambda x: 1 / x),
     T.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=lambda x: 1 / x), 40),
    ("CosineAnnealingLR-fractional", lambda o: L.CosineAnnealingLR(o, T_max=2.5, eta_min=0.01),
     T.CosineAnnealingLR(lr=LR, T_max=2.5, eta_min=0.01), 60),
    ("StepLR-growing", lambda o: L.StepLR(o, step_size=3, gamma=1.5), T.StepLR(lr=LR, step_size=3, gamma=1.5), 30),
    ("LinearLR-negative-total", lambda o: L.LinearLR(o, start_factor=0.3, total_iters=-1),
     T.LinearLR(lr=LR, start_factor=0.3, total_iters=-1), 10),
]


@pytest.mark.parametrize("name,make,schedule,n", WIDE, ids=[c[0] for c in WIDE])
def test_matches_pytorch_over_its_whole_range(name, make, schedule, n):
    want = torch_lrs(make, n, lr=LR)
    for backend in ("numpy", "numba"):
        got = lrcore.evaluate(schedule, n, backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15 * np.abs(want).max())
    if schedule.momentum is not None:  # SGD momentum and Adam beta1: the last cycler to set it wins
        for kind in ("sgd", "adam"):
            want = torch_lrs(make, n, lr=LR, kind=kind, momentum=True)
            np.testing.assert_allclose(lrcore.evaluate(schedule.momentum, n), want, rtol=1e-10, atol=0)


def test_chained_cyclic_starts_from_the_initial_lr_left_by_earlier_schedulers():
    """CyclicLR computes its first value before it stores its own base_lr: after a OneCycleLR it starts at
    OneCycleLR's initial lr (0.5 / 25 = 0.02), not at its base_lr 0.01."""
    s = {c[0]: c[2] for c in WIDE}["Chained-two-cyclers"]
    assert lrcore.evaluate(s, 2).tolist()[0] == pytest.approx(0.02, rel=1e-15)


def test_growing_exp_range_raises_where_pytorch_overflows():
    make, s = {c[0]: (c[1], c[2]) for c in WIDE}["CyclicLR-exp-growing"]
    end = s.overflow_step()
    with pytest.raises(OverflowError):
        torch_lrs(make, end + 1, lr=LR)
    for backend in ("numpy", "numba"):
        assert np.isfinite(lrcore.evaluate(s, np.array([end - 1]), backend=backend)).all()
        with pytest.raises(ValueError, match=rf"Cyclic: gamma\*\*t overflows float64 from step {end} on"):
            lrcore.evaluate(s, np.array([0, end]), backend=backend)


def test_sequential_with_a_cycler_needs_the_optimizer_lr():
    with pytest.raises(TypeError, match="SequentialLR: lr .* is required with a CyclicLR or OneCycleLR child"):
        T.SequentialLR([T.ExponentialLR(lr=LR, gamma=0.9), T.OneCycleLR(max_lr=0.5, total_steps=20)], milestones=[6])


def test_chained_constant_factor_zero_raises_where_pytorch_divides_by_zero():
    s = T.ChainedScheduler([T.ConstantLR(lr=LR, factor=0.0, total_iters=4), T.ExponentialLR(lr=LR, gamma=0.9)], lr=LR)
    assert lrcore.evaluate(s, 4).tolist() == [0.0] * 4
    with pytest.raises(ZeroDivisionError):
        torch_lrs(lambda o: L.ChainedScheduler([L.ConstantLR(o, factor=0.0, total_iters=4), L.ExponentialLR(o, gamma=0.9)]),
                  6, lr=LR)
    with pytest.raises(ValueError, match="ConstantLR with factor=0 divides by zero"):
        lrcore.evaluate(s, 6)
