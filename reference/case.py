"""One conformance case and its two sides: ``Case``, the lrcore.compat schedule of a case
(``lrcore_schedule``), the real framework's values (``framework_values``), and the tolerances and per-step
``errors`` they are compared with.

Tolerances (DESIGN.md): PyTorch, transformers, timm, optax (float64) relative error <= 1e-10 per step; Keras (float32)
|diff| <= 2e-6 |ref| + 1e-6 max|ref| (the *normalized error* |diff| / that bound must be <= 1).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import torch_cases
from .keras_cases import keras_values
from .torch_cases import torch_values

TORCH_RTOL = 1e-10
KERAS_RTOL, KERAS_ATOL = 2e-6, 1e-6
ECOSYSTEM = ("hf", "timm", "optax")  # the frameworks whose generators are GENERATORS (reference.conformance)


@dataclasses.dataclass
class Case:
    framework: str        # "torch" | "keras" | "hf" | "timm" | "optax"
    name: str             # the constructor
    params: dict          # JSON-safe kwargs (lambdas by their key in LAMBDAS / MULT_LAMBDAS)
    steps: int
    quantity: str = "lr"  # "lr" | "momentum"
    optimizer: str = "sgd"  # torch: "sgd" (momentum) | "adam" (beta1)

    @property
    def label(self) -> str:
        return f"{self.name}.momentum" if self.quantity == "momentum" else self.name


def lrcore_schedule(case: Case):
    """The lrcore.compat schedule of a case (its ``.momentum`` for momentum cases)."""
    if case.framework == "keras":
        from lrcore.compat import keras as K
        return getattr(K, case.name)(**case.params)
    if case.framework in ECOSYSTEM:
        return ecosystem_schedule(case.framework, case.name, case.params)
    s = torch_cases.compat_schedule(case.name, case.params)
    return s.momentum if case.quantity == "momentum" else s


def ecosystem_schedule(framework: str, name: str, params: dict):
    """The lrcore.compat.hf / timm / optax schedule of ``name(**params)`` (optax's nested [name, kwargs] built)."""
    import importlib
    module = importlib.import_module(f"lrcore.compat.{framework}")
    kw = dict(params)
    if name == "join_schedules":
        kw["schedules"] = [ecosystem_schedule(framework, n, k) for n, k in kw["schedules"]]
    return getattr(module, name)(**kw)


def ecosystem_values(case: Case) -> np.ndarray:
    """The real package's values: hf after t scheduler.step() calls, timm after step(t) / step_update(t),
    optax's schedule(t) in float64."""
    kw = dict(case.params)
    if case.framework == "optax":
        from .optax_oracle import optax_lrs
        return optax_lrs(case.name, kw, case.steps)
    lr = kw.pop("lr")
    if case.framework == "hf":
        from .hf_oracle import hf_lrs
        return hf_lrs(case.name, kw, case.steps, lr)
    from .timm_oracle import timm_lrs
    return timm_lrs(case.name, kw, case.steps, lr)


def framework_values(case: Case) -> np.ndarray:
    if case.framework == "torch":
        return torch_values(case)
    return keras_values(case) if case.framework == "keras" else ecosystem_values(case)


def errors(framework: str, got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per-step error in units of the tolerance's natural scale: relative error (torch) or the
    normalized error |diff| / (2e-6 |ref| + 1e-6 max|ref|) (keras)."""
    diff = np.abs(got - want)
    if framework != "keras":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(diff == 0, 0.0, diff / np.abs(want))
    bound = KERAS_RTOL * np.abs(want) + KERAS_ATOL * np.abs(want).max()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff == 0, 0.0, diff / bound)


def limit(framework: str) -> float:
    return 1.0 if framework == "keras" else TORCH_RTOL
