"""Constructors with the frameworks' own names, keywords and defaults, returning lrcore schedules.

``lrcore.compat.torch`` mirrors ``torch.optim.lr_scheduler``; ``lrcore.compat.keras`` mirrors
``keras.optimizers.schedules``. Neither imports its framework: they are pure constructors.
"""
from . import keras, torch

__all__ = ["torch", "keras"]
