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
