"""Constructors with the frameworks' own names, keywords and defaults, returning lrcore schedules.

``lrcore.compat.torch`` mirrors ``torch.optim.lr_scheduler``; ``lrcore.compat.keras`` mirrors
``keras.optimizers.schedules``; ``lrcore.compat.hf`` transformers's ``get_*_schedule*``;
``lrcore.compat.timm`` ``timm.scheduler``; ``lrcore.compat.optax`` ``optax.schedules``. None imports its
framework: they are pure constructors.
"""
from . import hf, keras, optax, timm, torch

__all__ = ["torch", "keras", "hf", "timm", "optax"]
