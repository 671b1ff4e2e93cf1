"""Run a real PyTorch scheduler and record the learning rate of every optimizer step.

``torch_lrs(make_scheduler, n)``: ``make_scheduler(optimizer)`` builds the scheduler on a fresh SGD
optimizer (one parameter, lr=``lr``, momentum 0.9 so momentum-cycling schedulers work); then for
t = 0..n-1 the lr in ``param_groups[0]`` is recorded, ``optimizer.step()`` and ``scheduler.step()`` run.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np


def make_optimizer(lr: float, kind: str = "sgd"):
    import torch
    p = torch.nn.Parameter(torch.zeros(1))
    if kind == "adam":
        return torch.optim.Adam([p], lr=lr)
    return torch.optim.SGD([p], lr=lr, momentum=0.9)


def torch_lrs(make_scheduler: Callable, n: int, lr: float = 0.1, kind: str = "sgd",
              momentum: bool = False) -> np.ndarray:
    """Learning rates (or momentum / beta1 if ``momentum``) used by optimizer steps 1..n."""
    opt = make_optimizer(lr, kind)
    sched = make_scheduler(opt)
    out = np.empty(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(n):
            g = opt.param_groups[0]
            out[t] = (g["betas"][0] if "betas" in g else g["momentum"]) if momentum else g["lr"]
            opt.step()
            if t < n - 1:
                sched.step()
    return out
