"""The trainers by name (``TRAINERS``: name -> "module:function", imported on use, as timm's scheduler factory),
``train(name, configs, data, spec, device)``, the one check of which trainer, framework and precision go
together, and the one resolution of ``--device``. Importing this module imports no torch.
"""
from __future__ import annotations

import importlib
from typing import Callable, Sequence

from .config import PRECISIONS, ChunkResult, TrainConfig, TrainSpec

__all__ = ["TRAINERS", "trainer", "train", "pick_trainer", "check_combination", "resolve_device", "DeviceError"]

#: Every trainer, one signature: ``(configs, data, spec, *, device, progress) -> ChunkResult``.
TRAINERS = {
    "batched": "bench.train.batched:train_chunk",          # one stacked BatchedMLP for the whole chunk
    "sequential": "bench.train.sequential:train_sequential",  # torch.nn + torch.optim, one model at a time
    "keras": "bench.train.keras:train_keras",              # Keras model.fit, one model at a time
}


class DeviceError(ValueError):
    """A ``--device`` that cannot train here (no CUDA GPU, an unknown name)."""


def trainer(name: str) -> Callable:
    """The trainer function called ``name`` (imported now: torch / TensorFlow load only for the one used)."""
    if name not in TRAINERS:
        raise ValueError(f"trainer must be one of {tuple(TRAINERS)}, got {name!r}")
    module, _, func = TRAINERS[name].partition(":")
    return getattr(importlib.import_module(module), func)


def train(name: str, configs: Sequence[TrainConfig], data, spec: TrainSpec, device: str = "cpu",
          progress: Callable | None = None) -> ChunkResult:
    """Train ``configs`` with trainer ``name`` as ``spec`` says, on ``device``; ``progress(epoch, rows)`` after
    each epoch."""
    return trainer(name)(configs, data, spec, device=device, progress=progress)


def pick_trainer(framework: str | None, sequential: bool = False) -> str | None:
    """The trainer the command line asks for (``--sequential``, ``--framework``); None: the matrix's framework
    decides (:func:`check_combination`)."""
    if sequential and framework == "keras":
        raise ValueError("--sequential is the PyTorch one-at-a-time trainer; Keras always trains one at a time")
    if sequential:
        return "sequential"
    return {"keras": "keras", "torch": "batched"}.get(framework)


def check_combination(trainer: str | None, framework: str, precision: str) -> str | None:
    """The rule of which trainer, framework and precision train together: what is wrong, or None. Keras trains
    in float32 only; bf16 is the PyTorch trainers' (``trainer`` None: the framework's own trainer)."""
    if trainer is not None and trainer not in TRAINERS:
        return f"trainer must be one of {tuple(TRAINERS)}, got {trainer!r}"
    if precision not in PRECISIONS:
        return f"precision must be one of {PRECISIONS}, got {precision!r}"
    if precision != "fp32" and trainer == "keras":
        return f"precision {precision!r} trains in the PyTorch trainers only, not with Keras"
    if precision != "fp32" and framework != "torch" and trainer is None:
        return f"precision = {precision!r} trains in the PyTorch trainers only (framework = \"torch\")"
    return None


def resolve_device(device: str, trainer: str = "batched") -> str:
    """auto -> cuda:0 when torch sees a GPU, else cpu; cuda without a GPU is an error (:class:`DeviceError`).
    Keras trains on "cpu" here (TensorFlow places its ops itself)."""
    if trainer == "keras":
        return "cpu"
    import torch
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                          "use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise DeviceError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    return "cuda:0" if device == "cuda" else device
