"""Run a real timm scheduler and record the learning rate it sets at every step.

``timm_lrs(name, kwargs, n, lr)``: ``timm.scheduler.<name>(optimizer, **kwargs)`` on a fresh SGD optimizer of
rate ``lr``; the value at t is ``param_groups[0]["lr"]`` after ``step(t)`` (``t_in_epochs``, the default) or
``step_update(t)``, for t = 0..n-1 in order.

``import_timm_scheduler()`` imports ``timm.scheduler`` without running ``timm/__init__.py``: that file imports
timm's models and layers, and ``timm.layers`` imports torchvision, whose PyPI wheels for Linux are built
against CUDA torch and fail to import beside the CPU torch (``RuntimeError: operator torchvision::nms does
not exist``, pytorch/vision#8985, #9085; the CPU builds come only from PyTorch's own index). The scheduler
package needs only torch and numpy, so timm's real scheduler code runs here without torchvision.
"""
from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np

from .torch_oracle import make_optimizer


def import_timm_scheduler():
    """``timm.scheduler``, with the ``timm`` package registered as a bare namespace (its __init__ not run)."""
    if "timm.scheduler" in sys.modules:
        return sys.modules["timm.scheduler"]
    if "timm" not in sys.modules:
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.origin is None:
            raise ImportError("timm is not installed: pip install 'lrbench[timm]'")
        package = types.ModuleType("timm")
        package.__path__ = [str(Path(spec.origin).parent)]
        package.__spec__ = spec
        sys.modules["timm"] = package
    import logging

    import timm.scheduler
    logging.getLogger("timm").setLevel(logging.ERROR)  # "will have no effect" notes for t_initial=1
    return timm.scheduler


def timm_lrs(name: str, kwargs: dict, n: int, lr: float) -> np.ndarray:
    scheduler = import_timm_scheduler()
    opt = make_optimizer(lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = getattr(scheduler, name)(opt, **kwargs)
    step = sched.step if kwargs.get("t_in_epochs", True) else sched.step_update
    out = np.empty(n)
    for t in range(n):
        step(t)
        out[t] = opt.param_groups[0]["lr"]
    return out
