"""pytest-benchmark: one ``scheduler.step()`` of lrcore's torch LRScheduler against PyTorch's own scheduler
giving the same learning rates (the optimizer step is not timed). Group: ``scheduler-step``."""
import pytest

torch = pytest.importorskip("torch")

from lrcore.compat import torch as T  # noqa: E402
from lrcore.integrations.torch import LrcoreScheduler  # noqa: E402

TOTAL = 100_000_000


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


SCHEDULERS = {
    "cosine": (lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=TOTAL),
               lambda: T.CosineAnnealingLR(lr=0.1, T_max=TOTAL)),
    "onecycle": (lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=TOTAL),
                 lambda: T.OneCycleLR(max_lr=0.1, total_steps=TOTAL)),
}


@pytest.mark.parametrize("family", sorted(SCHEDULERS))
@pytest.mark.parametrize("impl", ["lrcore", "torch"])
def test_scheduler_step(benchmark, impl, family):
    benchmark.group = f"scheduler-step-{family}"
    opt = _optimizer()
    make_torch, make_lrcore = SCHEDULERS[family]
    sched = LrcoreScheduler(opt, make_lrcore()) if impl == "lrcore" else make_torch(opt)
    opt.step()  # after the scheduler wraps it: no "scheduler.step() before optimizer.step()" warning
    benchmark(sched.step)
