"""lrcore's PyTorch integration per step against PyTorch's own schedulers.

One ``scheduler.step()`` (the optimizer step is not timed) of ``lrcore.integrations.torch.LrcoreScheduler``
driving the schedule, against the ``torch.optim.lr_scheduler`` object that gives the same learning rates.
The schedules are 10^8 steps long, so the timing loop never runs off their end.
"""
from ._harness import MISSING, pin_threads, skip

# Imported once in asv's forkserver (not in every benchmark process): the package __init__ has already
# pointed sys.path at the commit under test when LRBENCH_ASV_PROJECT is set.
import lrcore  # noqa: F401,E402
try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    torch = None

TOTAL = 100_000_000
FAMILIES = ["cosine", "onecycle", "warmup_cosine"]


def torch_scheduler(family, opt):
    from torch.optim import lr_scheduler as L
    if family == "cosine":
        return L.CosineAnnealingLR(opt, T_max=TOTAL)
    if family == "onecycle":
        return L.OneCycleLR(opt, max_lr=0.1, total_steps=TOTAL)
    w = TOTAL // 100
    return L.SequentialLR(opt, [L.LinearLR(opt, start_factor=1e-3, total_iters=w),
                                L.CosineAnnealingLR(opt, T_max=TOTAL - w)], milestones=[w])


def lrcore_schedule(family):
    from lrcore.compat import torch as T
    if family == "cosine":
        return T.CosineAnnealingLR(lr=0.1, T_max=TOTAL)
    if family == "onecycle":
        return T.OneCycleLR(max_lr=0.1, total_steps=TOTAL)
    w = TOTAL // 100
    return T.SequentialLR(lr=0.1, schedulers=[T.LinearLR(lr=0.1, start_factor=1e-3, total_iters=w),
                                              T.CosineAnnealingLR(lr=0.1, T_max=TOTAL - w)], milestones=[w])


class TorchSchedulerStep:
    """Seconds per ``scheduler.step()``: lrcore's LRScheduler vs PyTorch's own (same learning rates)."""
    params = (["lrcore", "torch"], FAMILIES)
    param_names = ["scheduler", "family"]

    def setup(self, impl, family):
        try:
            import torch
        except ImportError:
            skip("torch not installed")
        pin_threads()
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        try:
            if impl == "lrcore":
                from lrcore.integrations.torch import LrcoreScheduler
                self.sched = LrcoreScheduler(opt, lrcore_schedule(family))
            else:
                self.sched = torch_scheduler(family, opt)
        except MISSING as exc:
            skip(f"not at this commit: {exc}")
        opt.step()
        for _ in range(10):  # first table chunk, torch's first-call checks
            self.sched.step()

    def time_step(self, impl, family):
        self.sched.step()
