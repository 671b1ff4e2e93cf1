"""Run a real Hugging Face transformers schedule and record the learning rate of every optimizer step.

``hf_lrs(name, kwargs, n, lr)``: ``transformers.optimization.<name>(optimizer, **kwargs)`` (``get_scheduler``
too) on a fresh SGD optimizer of rate ``lr`` (``reference.torch_oracle``); the value at t is the lr after t
``scheduler.step()`` calls, the lr the (t+1)-th optimizer step uses.
"""
from __future__ import annotations

import numpy as np

from .torch_oracle import torch_lrs


def hf_lrs(name: str, kwargs: dict, n: int, lr: float) -> np.ndarray:
    from transformers import optimization
    fn = getattr(optimization, name)
    return torch_lrs(lambda opt: fn(optimizer=opt, **kwargs), n, lr=lr)
